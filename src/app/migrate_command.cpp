#include "app/migrate_command.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "app/config_check.hpp"
#include "config/config.hpp"
#include "config/migrate.hpp"

namespace hato::app {
namespace {

constexpr int kExitUsage = 2;

const char kMigrateUsage[] =
    "usage: hato migrate MOSQUITTO_CONF [-o HATO_TOML] [--strict]\n"
    "  Writes the equivalent hato.toml (stdout without -o), then checks it like\n"
    "  --check-config. --strict: exit 1 if any Mosquitto line has no hato\n"
    "  equivalent (each is a NOT MAPPED comment in the output).\n";

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return std::nullopt;
    std::ostringstream s;
    s << f.rdbuf();
    if (f.bad()) return std::nullopt;
    return s.str();
}

std::optional<std::vector<std::string>> list_dir(const std::string& dir) {
    std::error_code ec;
    std::vector<std::string> names;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) return std::nullopt;
    for (const auto& e : it)
        if (e.is_regular_file(ec)) names.push_back(e.path().filename().string());
    return names;
}

}  // namespace

int migrate_command(const std::vector<std::string>& args) {
    std::string in_path, out_path;
    bool strict = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-h" || a == "--help") {
            std::fputs(kMigrateUsage, stdout);
            return 0;
        } else if (a == "--strict") {
            strict = true;
        } else if (a == "-o" || a == "--output") {
            if (i + 1 >= args.size()) {
                std::fprintf(stderr, "hato migrate: %s needs a FILE\n%s", a.c_str(), kMigrateUsage);
                return kExitUsage;
            }
            out_path = args[++i];
        } else if (a.rfind("--output=", 0) == 0) {
            out_path = a.substr(9);
        } else if (!a.empty() && a[0] != '-' && in_path.empty()) {
            in_path = a;
        } else {
            std::fprintf(stderr, "hato migrate: unknown argument: %s\n%s", a.c_str(), kMigrateUsage);
            return kExitUsage;
        }
    }
    if (in_path.empty()) {
        std::fprintf(stderr, "hato migrate: which mosquitto.conf?\n%s", kMigrateUsage);
        return kExitUsage;
    }
    std::optional<std::string> text = read_text(in_path);
    if (!text) {
        std::fprintf(stderr, "hato migrate: cannot read %s\n", in_path.c_str());
        return 1;
    }

    config::MigrateInput input;
    input.name = in_path;
    input.text = *text;
    input.list_dir = list_dir;
    input.read_file = read_text;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) input.hostname = host;
    config::MigrateResult result = config::migrate_mosquitto(input);

    if (out_path.empty()) {
        std::fputs(result.toml.c_str(), stdout);
        std::fflush(stdout);
    } else {
        std::ofstream f(out_path, std::ios::binary | std::ios::trunc);
        f << result.toml;
        f.close();
        if (!f) {
            std::fprintf(stderr, "hato migrate: cannot write %s\n", out_path.c_str());
            return 1;
        }
    }

    if (!result.unmapped.empty()) {
        std::fprintf(stderr, "hato migrate: %zu Mosquitto line(s) without a hato equivalent (NOT MAPPED comments):\n",
                     result.unmapped.size());
        for (const std::string& u : result.unmapped) std::fprintf(stderr, "  %s\n", u.c_str());
    }

    // The same checks as --check-config, on the text just written.
    config::AppConfig cfg = config::defaults();
    std::vector<std::string> errors, warnings;
    const std::string name = out_path.empty() ? "<stdout>" : out_path;
    bool ok = config::load_string(result.toml, name, cfg, errors) && app::check_config_files(cfg, errors, warnings);
    for (const std::string& w : warnings) std::fprintf(stderr, "hato migrate: warning: %s\n", w.c_str());
    if (!ok) {
        std::fprintf(stderr, "hato migrate: the converted configuration does not pass --check-config:\n");
        for (const std::string& e : errors) std::fprintf(stderr, "  %s\n", e.c_str());
        return 1;
    }
    std::fprintf(stderr, "hato migrate: the converted configuration passes --check-config\n");
    if (strict && !result.unmapped.empty()) {
        std::fprintf(stderr, "hato migrate: --strict: %zu line(s) not mapped\n", result.unmapped.size());
        return 1;
    }
    return 0;
}

}  // namespace hato::app
