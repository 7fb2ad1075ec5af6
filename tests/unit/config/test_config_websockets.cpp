// [[listener]] protocol, path, allowed_origins and trusted_proxies.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;

TEST_CASE("listeners default to plain MQTT; websockets listeners default to /mqtt, any origin") {
    config::AppConfig c = config::defaults();
    CHECK(c.listeners[0].protocol == config::ListenerProtocol::Mqtt);
    auto errors = load("[[listener]]\nport = 1\n[[listener]]\nport = 2\nprotocol = \"websockets\"\n", c);
    REQUIRE(errors.empty());
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].protocol == config::ListenerProtocol::Mqtt);
    CHECK(c.listeners[1].protocol == config::ListenerProtocol::WebSockets);
    CHECK(c.listeners[1].path == "/mqtt");
    CHECK(c.listeners[1].allowed_origins.empty());
    CHECK(c.listeners[1].trusted_proxies.empty());
}

TEST_CASE("websockets keys are read") {
    config::AppConfig c;
    auto errors = load(R"([[listener]]
port = 8443
protocol = "websockets"
path = ""
allowed_origins = ["https://hmi.plant", "http://10.0.0.5:1880"]
trusted_proxies = ["127.0.0.1"]
tls = { cert = "/c.crt", key = "/c.key" }
)", c);
    REQUIRE(errors.empty());
    const config::Listener& l = c.listeners[0];
    CHECK(l.path.empty());
    CHECK(l.allowed_origins == std::vector<std::string>{"https://hmi.plant", "http://10.0.0.5:1880"});
    CHECK(l.trusted_proxies == std::vector<std::string>{"127.0.0.1"});
    CHECK(l.tls.enabled);
}

TEST_CASE("websockets keys: errors with position and key") {
    config::AppConfig c;
    auto errors = load(R"([[listener]]
protocol = "http"
[[listener]]
path = "/mqtt"
allowed_origins = ["x"]
[[listener]]
protocol = "websockets"
path = "mqtt"
allowed_origins = "https://a"
trusted_proxies = [1, ""]
)", c);
    CHECK(has(errors, "t.toml:2:12: listener[0].protocol: \"http\" is not one of mqtt | websockets"));
    CHECK(has(errors, "t.toml:4:8: listener[1].path: only with protocol = \"websockets\""));
    CHECK(has(errors, "t.toml:5:19: listener[1].allowed_origins: only with protocol = \"websockets\""));
    CHECK(has(errors, "t.toml:8:8: listener[2].path: must start with /"));
    CHECK(has(errors, "t.toml:9:19: listener[2].allowed_origins: expected array of strings, got string"));
    CHECK(has(errors, "t.toml:10:20: listener[2].trusted_proxies: expected non-empty strings"));
    CHECK(has(errors, "t.toml:10:23: listener[2].trusted_proxies: expected non-empty strings"));
}
