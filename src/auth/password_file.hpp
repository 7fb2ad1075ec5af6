// Mosquitto-compatible password files: one `user:hash` per line, where hash is
// `$7$iterations$salt$hash` (PBKDF2-HMAC-SHA512) or `$6$salt$hash`
// (SHA512 of password then salt), salt and hash in base64. Files written by
// `mosquitto_passwd` are read as they are, and ours can go back to Mosquitto.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hato::auth {

constexpr uint32_t kDefaultIterations = 101000;

struct PasswordEntry {
    enum class Kind : uint8_t { Sha512, Pbkdf2Sha512 } kind = Kind::Pbkdf2Sha512;
    uint32_t iterations = 0;
    std::vector<uint8_t> salt;
    std::vector<uint8_t> hash;
};

class PasswordFile {
public:
    // Parses the file; on error returns false and appends "file:line: message"
    // entries to `errors` (the file is not half-loaded).
    bool load(const std::string& path, std::vector<std::string>& errors);
    bool parse(std::string_view text, const std::string& name, std::vector<std::string>& errors);

    // Constant-time comparison of the derived hash; an unknown user costs the
    // same work as a known one, so timing does not tell which part was wrong:
    // the dummy checked for it has the hash kind and iteration count most of
    // the file's users have (mosquitto_passwd writes 101 rounds, hato-passwd
    // 101 000: a fixed dummy told a migrated file's names apart).
    bool verify(std::string_view user, std::string_view password) const;

    bool has_user(std::string_view user) const { return users_.count(std::string(user)) != 0; }
    const PasswordEntry& unknown_user_entry() const { return dummy_; }   // tests
    size_t size() const { return users_.size(); }

private:
    std::unordered_map<std::string, PasswordEntry> users_;
    PasswordEntry dummy_{PasswordEntry::Kind::Pbkdf2Sha512, kDefaultIterations, {}, {}};   // an unknown user's
};

// `$7$iterations$salt$hash` for `password` with a fresh random salt.
std::string hash_password(std::string_view password, uint32_t iterations);

// Parses the part after "user:". False if it is not a hash we read.
bool parse_hash(std::string_view text, PasswordEntry& out);

std::string base64_encode(const uint8_t* data, size_t len);
bool base64_decode(std::string_view text, std::vector<uint8_t>& out);

}  // namespace hato::auth
