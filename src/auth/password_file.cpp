#include "auth/password_file.hpp"
#include "auth/text_file.hpp"

#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include <cstring>
#include <map>
#include <utility>

namespace hato::auth {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool derive(const PasswordEntry& e, std::string_view password, uint8_t out[64]) {
    if (e.kind == PasswordEntry::Kind::Sha512) {
        std::vector<uint8_t> buf(password.begin(), password.end());
        buf.insert(buf.end(), e.salt.begin(), e.salt.end());
        return wc_Sha512Hash(buf.data(), word32(buf.size()), out) == 0;
    }
    return wc_PBKDF2(out, reinterpret_cast<const byte*>(password.data()), int(password.size()),
                     e.salt.data(), int(e.salt.size()), int(e.iterations), 64, WC_SHA512) == 0;
}

bool equal_constant_time(const uint8_t* a, const uint8_t* b, size_t n) {
    uint8_t diff = 0;
    for (size_t i = 0; i < n; ++i) diff |= uint8_t(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace

std::string base64_encode(const uint8_t* data, size_t len) {
    std::string out;
    out.reserve((len + 2) / 3 * 4);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = uint32_t(data[i]) << 16;
        if (i + 1 < len) v |= uint32_t(data[i + 1]) << 8;
        if (i + 2 < len) v |= data[i + 2];
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
        out += i + 1 < len ? kB64[(v >> 6) & 63] : '=';
        out += i + 2 < len ? kB64[v & 63] : '=';
    }
    return out;
}

bool base64_decode(std::string_view text, std::vector<uint8_t>& out) {
    out.clear();
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = b64_value(c);
        if (v < 0) return false;
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(uint8_t(acc >> bits));
        }
    }
    return !out.empty();
}

bool parse_hash(std::string_view text, PasswordEntry& out) {
    // Split on '$': "", "7", iterations, salt, hash   or   "", "6", salt, hash
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == '$') {
            parts.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    }
    if (parts.size() == 5 && parts[0].empty() && parts[1] == "7") {
        uint32_t it = 0;
        if (parts[2].empty() || parts[2].size() > 9) return false;
        for (char c : parts[2]) {
            if (c < '0' || c > '9') return false;
            it = it * 10 + uint32_t(c - '0');
        }
        if (it == 0) return false;
        out.kind = PasswordEntry::Kind::Pbkdf2Sha512;
        out.iterations = it;
        return base64_decode(parts[3], out.salt) && base64_decode(parts[4], out.hash) && out.hash.size() == 64;
    }
    if (parts.size() == 4 && parts[0].empty() && parts[1] == "6") {
        out.kind = PasswordEntry::Kind::Sha512;
        out.iterations = 0;
        return base64_decode(parts[2], out.salt) && base64_decode(parts[3], out.hash) && out.hash.size() == 64;
    }
    return false;
}

bool PasswordFile::load(const std::string& path, std::vector<std::string>& errors) {
    std::string text;
    return read_text_file(path, text, errors) && parse(text, path, errors);
}

bool PasswordFile::parse(std::string_view text, const std::string& name, std::vector<std::string>& errors) {
    std::unordered_map<std::string, PasswordEntry> users;
    size_t before = errors.size();
    size_t line_no = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line[0] == '#') continue;
        size_t colon = line.find(':');
        std::string where = name + ":" + std::to_string(line_no) + ": ";
        if (colon == std::string_view::npos || colon == 0) {
            errors.push_back(where + "expected user:hash");
            continue;
        }
        PasswordEntry e;
        if (!parse_hash(line.substr(colon + 1), e)) {
            errors.push_back(where + "user '" + std::string(line.substr(0, colon)) +
                             "': not a $6$ or $7$ hash (plain-text file? run hato-passwd -U)");
            continue;
        }
        users[std::string(line.substr(0, colon))] = std::move(e);
    }
    if (errors.size() != before) return false;
    users_ = std::move(users);
    std::map<std::pair<PasswordEntry::Kind, uint32_t>, size_t> costs;
    for (const auto& [name, e] : users_) ++costs[{e.kind, e.iterations}];
    dummy_ = PasswordEntry{};
    dummy_.iterations = kDefaultIterations;
    size_t most = 0;
    for (const auto& [cost, n] : costs)
        if (n >= most) {   // ties: the dearer (the map is in ascending order)
            most = n;
            dummy_.kind = cost.first;
            dummy_.iterations = cost.second;
        }
    dummy_.salt.assign(12, 0x5a);
    dummy_.hash.assign(64, 0);
    return true;
}

bool PasswordFile::verify(std::string_view user, std::string_view password) const {
    auto it = users_.find(std::string(user));
    const PasswordEntry& e = it == users_.end() ? dummy_ : it->second;
    uint8_t got[64];
    if (!derive(e, password, got)) return false;
    bool same = e.hash.size() == 64 && equal_constant_time(got, e.hash.data(), 64);
    return same && it != users_.end();
}

std::string hash_password(std::string_view password, uint32_t iterations) {
    PasswordEntry e;
    e.iterations = iterations;
    e.salt.resize(12);
    size_t got = 0;
    while (got < e.salt.size()) {
        ssize_t n = getrandom(e.salt.data() + got, e.salt.size() - got, 0);
        if (n > 0) got += size_t(n);
    }
    uint8_t out[64];
    derive(e, password, out);
    return "$7$" + std::to_string(iterations) + "$" + base64_encode(e.salt.data(), e.salt.size()) + "$" +
           base64_encode(out, 64);
}

}  // namespace hato::auth
