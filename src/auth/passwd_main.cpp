// hato-passwd: manages password files like mosquitto_passwd, and writes the
// same `$7$` PBKDF2-SHA512 entries, so files move between the two brokers.
//   hato-passwd -c FILE USER         create/overwrite FILE with USER (prompts twice)
//   hato-passwd [-b] FILE USER [PASS] add or update USER (-b: password on the command line)
//   hato-passwd -D FILE USER         delete USER
//   hato-passwd -U FILE              hash a plain-text user:password file in place
//   -I N                             PBKDF2 iterations (default 101000)
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "auth/password_file.hpp"

namespace {

int usage() {
    std::fputs("usage: hato-passwd [-c] [-b] [-I iterations] FILE USER [PASSWORD]\n"
               "       hato-passwd -D FILE USER\n"
               "       hato-passwd -U FILE\n", stderr);
    return 2;
}

bool read_lines(const std::string& path, std::vector<std::string>& lines) {
    std::ifstream f(path);
    if (!f) return false;
    for (std::string l; std::getline(f, l);) {
        if (!l.empty() && l.back() == '\r') l.pop_back();
        lines.push_back(l);
    }
    return true;
}

// Writes via a temporary file and rename, so a crash never leaves half a file.
bool write_lines(const std::string& path, const std::vector<std::string>& lines) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        if (!f) return false;
        for (const auto& l : lines) f << l << '\n';
        if (!f.flush()) return false;
    }
    ::chmod(tmp.c_str(), 0600);
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string prompt(const char* text) {
    std::fputs(text, stderr);
    termios old{};
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= tcflag_t(~ECHO);
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string pw;
    std::getline(std::cin, pw);
    if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fputs("\n", stderr);
    return pw;
}

std::string user_of(const std::string& line) { return line.substr(0, line.find(':')); }

}  // namespace

int main(int argc, char** argv) {
    bool create = false, batch = false, del = false, upgrade = false;
    uint32_t iterations = hato::auth::kDefaultIterations;
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c") create = true;
        else if (a == "-b") batch = true;
        else if (a == "-D") del = true;
        else if (a == "-U") upgrade = true;
        else if (a == "-I" && i + 1 < argc) {
            long n = std::atol(argv[++i]);
            if (n < 1 || n > 100000000) { std::fputs("hato-passwd: bad iteration count\n", stderr); return 2; }
            iterations = uint32_t(n);
        } else if (a == "-h" || a == "--help") { usage(); return 0; }
        else if (!a.empty() && a[0] == '-') return usage();
        else args.push_back(a);
    }
    if (upgrade) {
        if (args.size() != 1 || create || del) return usage();
        std::vector<std::string> lines;
        if (!read_lines(args[0], lines)) { std::perror(args[0].c_str()); return 1; }
        for (auto& l : lines) {
            size_t colon = l.find(':');
            if (l.empty() || l[0] == '#' || colon == std::string::npos) continue;
            hato::auth::PasswordEntry e;
            if (hato::auth::parse_hash(std::string_view(l).substr(colon + 1), e)) continue;  // already hashed
            l = l.substr(0, colon) + ":" + hato::auth::hash_password(std::string_view(l).substr(colon + 1), iterations);
        }
        return write_lines(args[0], lines) ? 0 : (std::perror(args[0].c_str()), 1);
    }
    if (del) {
        if (args.size() != 2 || create) return usage();
        std::vector<std::string> lines, kept;
        if (!read_lines(args[0], lines)) { std::perror(args[0].c_str()); return 1; }
        bool found = false;
        for (auto& l : lines) {
            if (user_of(l) == args[1]) found = true;
            else kept.push_back(l);
        }
        if (!found) { std::fprintf(stderr, "hato-passwd: user %s not found\n", args[1].c_str()); return 1; }
        return write_lines(args[0], kept) ? 0 : (std::perror(args[0].c_str()), 1);
    }
    if (args.size() != (batch ? 3u : 2u)) return usage();
    const std::string& file = args[0];
    const std::string& user = args[1];
    if (user.find(':') != std::string::npos || user.empty()) {
        std::fputs("hato-passwd: user names may not be empty or contain ':'\n", stderr);
        return 1;
    }
    std::string pw;
    if (batch) {
        pw = args[2];
    } else {
        pw = prompt("Password: ");
        if (prompt("Reenter password: ") != pw) { std::fputs("hato-passwd: passwords do not match\n", stderr); return 1; }
    }
    std::vector<std::string> lines;
    if (!create && !read_lines(file, lines)) {
        std::fprintf(stderr, "hato-passwd: cannot read %s (use -c to create it)\n", file.c_str());
        return 1;
    }
    std::string entry = user + ":" + hato::auth::hash_password(pw, iterations);
    bool replaced = false;
    for (auto& l : lines)
        if (user_of(l) == user) { l = entry; replaced = true; }
    if (!replaced) lines.push_back(entry);
    return write_lines(file, lines) ? 0 : (std::perror(file.c_str()), 1);
}
