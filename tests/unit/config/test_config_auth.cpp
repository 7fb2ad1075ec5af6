// [auth] hash_workers and max_failed_per_minute.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"

using namespace hato;

TEST_CASE("[auth] hash_workers and max_failed_per_minute: defaults, values, range errors") {
    config::AppConfig c = config::defaults();
    CHECK(c.auth.hash_workers == 1);
    CHECK(c.auth.max_failed_per_minute == 30);
    std::vector<std::string> errors;
    REQUIRE(config::load_string("[auth]\nhash_workers = 4\nmax_failed_per_minute = 0\n", "t.toml", c, errors));
    CHECK(c.auth.hash_workers == 4);
    CHECK(c.auth.max_failed_per_minute == 0);

    config::AppConfig d = config::defaults();
    CHECK_FALSE(config::load_string("[auth]\nhash_workers = 0\nmax_failed_per_minute = -1\n", "t.toml", d, errors));
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].find("t.toml:2:16: auth.hash_workers: value 0 out of range 1..64") != std::string::npos);
    CHECK(errors[1].find("t.toml:3:25: auth.max_failed_per_minute: value -1 out of range") != std::string::npos);
    CHECK(d.auth.hash_workers == 1);   // a failed load changes nothing
}
