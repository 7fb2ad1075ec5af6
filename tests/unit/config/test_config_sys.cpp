// [sys] interval: default, parsing, range and type errors.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("[sys] interval is 10 seconds by default, as conf/hato.toml says") {
    CHECK(config::defaults().sys_interval_s == 10);
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    REQUIRE(config::load_file(HATO_SOURCE_ROOT "/conf/hato.toml", c, errors));
    CHECK(c.sys_interval_s == 10);
}

TEST_CASE("[sys] interval is read; 0 turns $SYS off") {
    AppConfig c;
    CHECK(load("[sys]\ninterval = 1\n", c).empty());
    CHECK(c.sys_interval_s == 1);
    CHECK(load("[sys]\ninterval = 0\n", c).empty());
    CHECK(c.sys_interval_s == 0);
}

TEST_CASE("[sys] errors name the key and its position") {
    AppConfig c;
    auto errors = load("[sys]\ninterval = -1\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:12: sys.interval: value -1 out of range 0..86400");
    errors = load("[sys]\ninterval = \"10\"\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:12: sys.interval: expected integer, got string");
    errors = load("[sys]\nintervall = 5\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:1: sys.intervall: unknown key");
}
