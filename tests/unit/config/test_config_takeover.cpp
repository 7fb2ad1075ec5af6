// [auth] allow_session_takeover_by_other_user: default, parsing, errors.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("allow_session_takeover_by_other_user is off by default") {
    CHECK_FALSE(config::defaults().broker.allow_session_takeover_by_other_user);
    AppConfig c;
    CHECK(load("[auth]\n", c).empty());
    CHECK_FALSE(c.broker.allow_session_takeover_by_other_user);
}

TEST_CASE("allow_session_takeover_by_other_user is read from [auth]") {
    AppConfig c;
    CHECK(load("[auth]\nallow_session_takeover_by_other_user = true\n", c).empty());
    CHECK(c.broker.allow_session_takeover_by_other_user);
}

TEST_CASE("allow_session_takeover_by_other_user must be a boolean") {
    AppConfig c;
    auto errors = load("[auth]\nallow_session_takeover_by_other_user = 1\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:40: auth.allow_session_takeover_by_other_user: expected boolean, got integer");
}
