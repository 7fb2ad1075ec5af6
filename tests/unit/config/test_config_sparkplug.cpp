// [sparkplug] aware: default, parsing, errors, and the documented file.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("sparkplug aware is off by default, also in conf/hato.toml") {
    CHECK_FALSE(config::defaults().broker.sparkplug_aware);
    AppConfig c;
    CHECK(load("[sparkplug]\n", c).empty());
    CHECK_FALSE(c.broker.sparkplug_aware);
    AppConfig documented = config::defaults();
    documented.broker.sparkplug_aware = true;   // the file must set it back
    std::vector<std::string> errors;
    CHECK(config::load_file(HATO_SOURCE_ROOT "/conf/hato.toml", documented, errors));
    CHECK(errors.empty());
    CHECK_FALSE(documented.broker.sparkplug_aware);
}

TEST_CASE("sparkplug aware is read from [sparkplug]") {
    AppConfig c;
    CHECK(load("[sparkplug]\naware = true\n", c).empty());
    CHECK(c.broker.sparkplug_aware);
}

TEST_CASE("sparkplug aware must be a boolean; other keys are unknown") {
    AppConfig c;
    auto errors = load("[sparkplug]\naware = \"yes\"\nnamespace = \"spBv1.0\"\n", c);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0] == "t.toml:2:9: sparkplug.aware: expected boolean, got string");
    CHECK(errors[1] == "t.toml:3:1: sparkplug.namespace: unknown key");
    CHECK_FALSE(c.broker.sparkplug_aware);
}
