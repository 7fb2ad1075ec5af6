// [metrics]: off by default (also in conf/hato.toml), parsing, errors.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("metrics: off by default, in the built-in defaults and in conf/hato.toml") {
    CHECK(config::defaults().metrics.port == 0);
    CHECK(config::defaults().metrics.address == "127.0.0.1");
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    REQUIRE(config::load_file(HATO_SOURCE_ROOT "/conf/hato.toml", c, errors));
    CHECK(c.metrics.port == 0);
    CHECK(c.metrics.address == "127.0.0.1");
}

TEST_CASE("metrics: address and port are read") {
    AppConfig c;
    CHECK(load("[metrics]\naddress = \"0.0.0.0\"\nport = 9883\n", c).empty());
    CHECK(c.metrics.address == "0.0.0.0");
    CHECK(c.metrics.port == 9883);
}

TEST_CASE("metrics: bad values and unknown keys name the key and position") {
    AppConfig c;
    auto errors = load("[metrics]\nport = 70000\naddress = \"\"\npath = \"/m\"\n", c);
    REQUIRE(errors.size() == 3);
    CHECK(errors[0] == "t.toml:2:8: metrics.port: value 70000 out of range 0..65535");
    CHECK(errors[1] == "t.toml:3:11: metrics.address: must not be empty");
    CHECK(errors[2] == "t.toml:4:1: metrics.path: unknown key");
    errors = load("[metrics]\nport = \"9883\"\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:8: metrics.port: expected integer, got string");
}

TEST_CASE("metrics: a port shared with a listener on an overlapping address is an error") {
    AppConfig c;
    auto errors = load("[metrics]\nport = 1883\n", c);   // the default listener is 127.0.0.1:1883
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:8: metrics.port: 1883 is also the port of listener[0] (127.0.0.1)");
    errors = load("[[listener]]\naddress = \"0.0.0.0\"\nport = 9883\n[metrics]\nport = 9883\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("metrics.port: 9883 is also the port of listener[0] (0.0.0.0)") != std::string::npos);
    CHECK(load("[[listener]]\naddress = \"10.0.0.1\"\nport = 9883\n[metrics]\nport = 9883\n", c).empty());
    CHECK(load("[[listener]]\nport = 0\n[metrics]\nport = 0\n", c).empty());
}
