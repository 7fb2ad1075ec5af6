// Command line: picks the configuration, applies overrides, then either
// checks it, inspects a store, or runs the broker.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "app/bridge_runner.hpp"
#include "app/config_check.hpp"
#include "app/log.hpp"
#include "app/migrate_command.hpp"
#include "app/server.hpp"
#include "broker/state_inspector.hpp"
#include "config/config.hpp"
#include "hato_build.h"
#include "store/inspect.hpp"

namespace {

constexpr int kExitUsage = 2;

const char kUsage[] =
    "usage: hato [--config FILE] [--backend auto|io_uring|epoll] [--port N] [--data DIR]\n"
    "       hato --check-config [--config FILE]\n"
    "       hato store verify DIR\n"
    "       hato store dump DIR\n"
    "       hato migrate MOSQUITTO_CONF [-o HATO_TOML] [--strict]\n"
    "       hato --version | --help\n"
    "\n"
    "  -c, --config FILE   TOML configuration (default: built-in, see conf/hato.toml)\n"
    "      --check-config  validate the configuration, print OK or every error, exit\n"
    "      --backend NAME  override [broker] event_backend\n"
    "      --port N        override the first listener's port (0: any free port)\n"
    "      --data DIR      override [storage] dir\n"
    "  store verify DIR    check every record of the append log in DIR\n"
    "  store dump DIR      print every record of the append log in DIR\n"
    "  migrate FILE        convert a mosquitto.conf to hato.toml (see hato migrate --help)\n";

struct Options {
    std::string config_path;
    bool check_config = false;
    std::string backend;   // empty: from the config
    std::string data_dir;  // empty: from the config
    int port = -1;         // -1: from the config
    std::string store_command;  // "verify" | "dump"
    std::string store_dir;
};

int usage_error(const std::string& message) {
    std::fprintf(stderr, "hato: %s\n%s", message.c_str(), kUsage);
    return kExitUsage;
}

// Parses argv into `opt`. Returns -1 to go on, else an exit code.
int parse_args(int argc, char** argv, Options& opt) {
    std::vector<std::string> args(argv + 1, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        // Options taking a value accept both "--opt VALUE" and "--opt=VALUE".
        auto value = [&](const std::string& name, std::string& out) -> bool {
            if (a == name) {
                if (i + 1 >= args.size()) return false;
                out = args[++i];
                return true;
            }
            out = a.substr(name.size() + 1);
            return true;
        };
        auto is = [&](const char* name) { return a == name || a.rfind(std::string(name) + "=", 0) == 0; };

        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("hato %s\n", HATO_VERSION);
            return 0;
        } else if (a == "--check-config") {
            opt.check_config = true;
        } else if (a == "-c" || is("--config")) {
            if (!value(a == "-c" ? "-c" : "--config", opt.config_path)) return usage_error(a + " needs a FILE");
        } else if (is("--backend")) {
            if (!value("--backend", opt.backend)) return usage_error("--backend needs a NAME");
            if (opt.backend != "auto" && opt.backend != "io_uring" && opt.backend != "epoll")
                return usage_error("--backend must be auto, io_uring or epoll");
        } else if (is("--port")) {
            std::string text;
            if (!value("--port", text)) return usage_error("--port needs a number");
            char* end = nullptr;
            long port = std::strtol(text.c_str(), &end, 10);
            if (text.empty() || *end != '\0' || port < 0 || port > 65535)
                return usage_error("--port must be 0..65535");
            opt.port = static_cast<int>(port);
        } else if (is("--data")) {
            if (!value("--data", opt.data_dir) || opt.data_dir.empty()) return usage_error("--data needs a DIR");
        } else if (a == "store") {
            if (i + 2 >= args.size() || (args[i + 1] != "verify" && args[i + 1] != "dump"))
                return usage_error("expected: store verify DIR | store dump DIR");
            opt.store_command = args[i + 1];
            opt.store_dir = args[i + 2];
            i += 2;
        } else {
            return usage_error("unknown argument: " + a);
        }
    }
    return -1;
}

// Blocks of 128 KiB .. 32 MiB (a large PUBLISH being reassembled, its
// message, output buffers) come from the heap and are reused, instead of
// being mapped fresh and unmapped for every message: on a VM the page
// faults of a fresh mapping cost more than the copies into it (1 MiB
// messages: about 6x the bytes/s at a sixth of the CPU per byte). These are
// the values glibc's dynamic threshold reaches by itself once a 32 MiB block
// was freed (it never lowers them again); set here, they hold from the start.
// Free memory this keeps is given back once a second (Server::give_back_heap).
void keep_large_blocks() {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
    using namespace hato;
    keep_large_blocks();
    if (argc >= 2 && std::string(argv[1]) == "migrate")
        return app::migrate_command(std::vector<std::string>(argv + 2, argv + argc));
    Options opt;
    if (int code = parse_args(argc, argv, opt); code >= 0) return code;

    if (!opt.store_command.empty()) {
        broker::StateInspector schema;   // the broker's records and bridge queues
        if (opt.store_command == "verify") return store::store_verify(opt.store_dir, std::cout, &schema);
        return store::store_dump(opt.store_dir, std::cout, &schema);
    }

    config::AppConfig cfg = config::defaults();
    if (!opt.config_path.empty()) {
        std::vector<std::string> errors;
        if (!config::load_file(opt.config_path, cfg, errors)) {
            for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
            return 1;
        }
    }
    if (!opt.backend.empty()) cfg.event_backend = opt.backend;
    if (opt.port >= 0) cfg.listeners.at(0).port = static_cast<uint16_t>(opt.port);
    if (!opt.data_dir.empty()) cfg.storage.dir = opt.data_dir;

    if (opt.check_config) {
        // The files the configuration names are read too (password and ACL
        // files, certificates, the bridges' files), so their errors show up
        // here first.
        std::vector<std::string> errors, warnings;
        bool ok = app::check_config_files(cfg, errors, warnings);
        for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
        if (!ok) {
            for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
            return 1;
        }
        std::printf("OK\n");
        return 0;
    }

    app::set_log_level(cfg.log_level);
    app::log_info("hato %s starting (config: %s)", HATO_VERSION,
                  opt.config_path.empty() ? "built-in defaults" : opt.config_path.c_str());
    // What --check-config warns of reaches the log too: a service is
    // started and reloaded without it. (Errors stop the start further on.)
    {
        std::vector<std::string> errors, warnings;
        app::check_bridge_files(cfg, errors, warnings);
        for (const auto& w : warnings) app::log_warn("%s", w.c_str());
    }
    // SIGHUP: the same file and overrides again, checked like --check-config.
    app::ConfigLoader loader = [opt](config::AppConfig& out, std::vector<std::string>& errors) {
        out = config::defaults();
        if (!opt.config_path.empty() && !config::load_file(opt.config_path, out, errors)) return false;
        if (!opt.backend.empty()) out.event_backend = opt.backend;
        if (opt.port >= 0) out.listeners.at(0).port = static_cast<uint16_t>(opt.port);
        if (!opt.data_dir.empty()) out.storage.dir = opt.data_dir;
        std::vector<std::string> warnings;
        bool ok = app::check_config_files(out, errors, warnings);
        for (const auto& w : warnings) app::log_warn("reload: %s", w.c_str());
        return ok;
    };
    return app::run_server(cfg, std::move(loader));
}
