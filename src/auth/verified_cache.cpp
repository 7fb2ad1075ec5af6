#include "auth/verified_cache.hpp"

#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha512.h>

namespace hato::auth {

VerifiedCache::VerifiedCache(size_t capacity) : capacity_(capacity ? capacity : 1) {
    size_t got = 0;
    while (got < sizeof salt_) {
        ssize_t n = getrandom(salt_ + got, sizeof salt_ - got, 0);
        if (n > 0) got += size_t(n);
    }
}

std::string VerifiedCache::key(std::string_view user, std::string_view password) const {
    // The name's length goes in first, so ("ab", "c") and ("a", "bc") differ.
    uint64_t user_len = user.size();
    uint8_t digest[WC_SHA512_DIGEST_SIZE];
    wc_Sha512 sha;
    wc_InitSha512(&sha);
    wc_Sha512Update(&sha, salt_, sizeof salt_);
    wc_Sha512Update(&sha, reinterpret_cast<const byte*>(&user_len), sizeof user_len);
    wc_Sha512Update(&sha, reinterpret_cast<const byte*>(user.data()), word32(user.size()));
    wc_Sha512Update(&sha, reinterpret_cast<const byte*>(password.data()), word32(password.size()));
    wc_Sha512Final(&sha, digest);
    wc_Sha512Free(&sha);
    return std::string(reinterpret_cast<const char*>(digest), 32);
}

void VerifiedCache::insert(const std::string& key) {
    if (!keys_.insert(key).second) return;
    order_.push_back(key);
    while (keys_.size() > capacity_) {
        keys_.erase(order_.front());
        order_.pop_front();
    }
}

void VerifiedCache::clear() {
    keys_.clear();
    order_.clear();
    ++generation_;
}

}  // namespace hato::auth
