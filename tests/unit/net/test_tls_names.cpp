// Which certificate names may become a user name (identity_as_username).
#include <doctest/doctest.h>

#include <string_view>

#include "net/tls.hpp"

using hato::net::clean_cert_name;

namespace {
bool clean(std::string_view s) {
    return clean_cert_name({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}
}  // namespace

TEST_CASE("certificate names: UTF-8 without NUL only") {
    CHECK(clean("alice"));
    CHECK(clean(""));
    CHECK(clean("sensor-1.plant.example"));
    CHECK(clean("J\xC3\xBCrgen"));                 // ü
    CHECK(clean("\xE6\x9D\xB1\xE4\xBA\xAC"));      // 東京
    CHECK(clean("\xF0\x9F\x94\x91"));              // U+1F511
    CHECK_FALSE(clean(std::string_view("alice\0.evil", 11)));
    CHECK_FALSE(clean(std::string_view("\0", 1)));
    CHECK_FALSE(clean("\xFF"));                    // never valid
    CHECK_FALSE(clean("al\xC3"));                  // cut short
    CHECK_FALSE(clean("\xC3\x28"));                // bad continuation
    CHECK_FALSE(clean("\xC0\xAF"));                // overlong '/'
    CHECK_FALSE(clean("\xC0\x80"));                // overlong NUL
    CHECK_FALSE(clean("\xE0\x80\xAF"));            // overlong
    CHECK_FALSE(clean("\xED\xA0\x80"));            // surrogate U+D800
    CHECK_FALSE(clean("\xF4\x90\x80\x80"));        // above U+10FFFF
    CHECK_FALSE(clean("\xF8\x88\x80\x80\x80"));    // 5-byte form
}
