// [mqtt] max_keep_alive and its relation to server_keep_alive.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;

namespace {

std::vector<std::string> load(const std::string& text, config::AppConfig& out) {
    return config_test::load(text, out, "k.toml");
}

}  // namespace

TEST_CASE("max_keep_alive: default 0 (no bound), read, range checked") {
    config::AppConfig c;
    CHECK(load("", c).empty());
    CHECK(c.broker.max_keep_alive == 0);
    CHECK(load("[mqtt]\nmax_keep_alive = 300\nserver_keep_alive = 60\n", c).empty());
    CHECK(c.broker.max_keep_alive == 300);
    CHECK(c.broker.server_keep_alive == 60);
    auto errors = load("[mqtt]\nmax_keep_alive = 70000\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("mqtt.max_keep_alive") != std::string::npos);
}

TEST_CASE("server_keep_alive above max_keep_alive is an error at the server_keep_alive key") {
    config::AppConfig c;
    auto errors = load("[mqtt]\nmax_keep_alive = 30\nserver_keep_alive = 60\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "k.toml:3:21: mqtt.server_keep_alive: must not exceed max_keep_alive");
    CHECK(load("[mqtt]\nmax_keep_alive = 0\nserver_keep_alive = 60\n", c).empty());
}
