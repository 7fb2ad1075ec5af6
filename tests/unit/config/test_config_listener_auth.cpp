// [[listener]] allow_anonymous (overrides [auth] allow_anonymous and the
// loopback default on its listener only) and max_connections.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("listener allow_anonymous overrides the loopback default") {
    AppConfig c;
    auto errors = load(R"([[listener]]
address = "127.0.0.1"
allow_anonymous = false
[[listener]]
address = "0.0.0.0"
port = 1884
allow_anonymous = true
[[listener]]
address = "0.0.0.0"
port = 1885
)", c);
    REQUIRE(errors.empty());
    CHECK(c.listeners[0].allow_anonymous == false);
    CHECK_FALSE(config::anonymous_allowed(c, 0));
    CHECK(config::anonymous_allowed(c, 1));
    CHECK_FALSE(config::anonymous_allowed(c, 2));   // unset: loopback only
    CHECK_FALSE(config::anonymous_allowed(c, 3));   // no such listener
}

TEST_CASE("listener allow_anonymous overrides [auth] allow_anonymous, both ways") {
    AppConfig c;
    auto errors = load(R"([[listener]]
address = "10.0.0.1"
allow_anonymous = true
[[listener]]
address = "10.0.0.2"
[auth]
allow_anonymous = false
)", c);
    REQUIRE(errors.empty());
    CHECK(config::anonymous_allowed(c, 0));
    CHECK_FALSE(config::anonymous_allowed(c, 1));
    errors = load(R"([[listener]]
address = "127.0.0.1"
allow_anonymous = false
[[listener]]
address = "10.0.0.2"
[auth]
allow_anonymous = true
)", c);
    REQUIRE(errors.empty());
    CHECK_FALSE(config::anonymous_allowed(c, 0));
    CHECK(config::anonymous_allowed(c, 1));
}

TEST_CASE("listener allow_anonymous must be a boolean") {
    AppConfig c;
    auto errors = load("[[listener]]\naddress = \"127.0.0.1\"\nallow_anonymous = 1\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:3:19: listener[0].allow_anonymous: expected boolean, got integer");
}

TEST_CASE("the default listener leaves anonymous access to [auth]") {
    CHECK_FALSE(config::defaults().listeners[0].allow_anonymous.has_value());
}

TEST_CASE("listener max_connections: 0 (none of its own) by default, read, range checked") {
    CHECK(config::defaults().listeners[0].max_connections == 0);
    AppConfig c;
    REQUIRE(load("[[listener]]\nmax_connections = 5\n[[listener]]\nport = 1884\n", c).empty());
    CHECK(c.listeners[0].max_connections == 5);
    CHECK(c.listeners[1].max_connections == 0);
    auto errors = load("[[listener]]\nmax_connections = -1\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "t.toml:2:19: listener[0].max_connections: value -1 out of range 0..4294967295");
}

TEST_CASE("listener password_file: empty by default, read, must not be empty") {
    CHECK(config::defaults().listeners[0].password_file.empty());
    AppConfig c;
    REQUIRE(load("[[listener]]\npassword_file = \"/etc/hato/passwd-lan\"\n", c).empty());
    CHECK(c.listeners[0].password_file == "/etc/hato/passwd-lan");
    auto errors = load("[[listener]]\npassword_file = \"\"\nacl_file = \"\"\n", c);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0] == "t.toml:2:17: listener[0].password_file: must not be empty");
    CHECK(errors[1] == "t.toml:3:12: listener[0].acl_file: must not be empty");
}
