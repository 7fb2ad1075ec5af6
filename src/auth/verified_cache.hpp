// Name+password pairs a password check accepted, so a reconnect storm of
// legitimate devices costs one hash lookup each, not 90 ms of PBKDF2. Only a
// keyed digest is kept (SHA-512 over a random per-process salt, the name and
// the password): no password sits in memory, and the digest is useless
// outside this process. Bounded (oldest out first); the owner empties it
// whenever the password file changes.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>

namespace hato::auth {

class VerifiedCache {
public:
    static constexpr size_t kDefaultCapacity = 4096;

    explicit VerifiedCache(size_t capacity = kDefaultCapacity);

    // The digest stored for this pair (cheap: one SHA-512).
    std::string key(std::string_view user, std::string_view password) const;

    bool contains(const std::string& key) const { return keys_.count(key) != 0; }
    void insert(const std::string& key);
    // Forgets everything and starts a new generation: a check that began
    // before (against the old password file) must not fill the new one.
    void clear();
    uint64_t generation() const { return generation_; }
    size_t size() const { return keys_.size(); }

private:
    size_t capacity_;
    uint8_t salt_[32];
    uint64_t generation_ = 1;
    std::unordered_set<std::string> keys_;
    std::deque<std::string> order_;   // insertion order, for eviction
};

}  // namespace hato::auth
