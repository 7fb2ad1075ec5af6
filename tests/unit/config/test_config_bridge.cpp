// [[bridge]] and [[bridge.topic]]: values, defaults, and the refusals.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;

TEST_CASE("a bridge with its topics is read, and its session gets the queue budget") {
    config::AppConfig c;
    std::vector<std::string> errors;
    REQUIRE(load(R"(
[[bridge]]
name = "site"
address = "10.0.0.1"
port = 8883
protocol = "mqttv5"
client_id = "gw-17"
keep_alive = 30
reconnect_min_ms = 500
reconnect_max_ms = 60000
try_private = false
max_queued_bytes = 4096
when_full = "drop_new"
queue_qos0 = true
tls = { ca = "/etc/hato/ca.pem", cert = "/etc/hato/gw.crt", key = "/etc/hato/gw.key", server_name = "broker.site.lan" }

[[bridge.topic]]
pattern = "plant/#"
direction = "out"
qos = 2
remote_prefix = "site/gw17/"

[[bridge.topic]]
pattern = "cmd/#"
direction = "in"
local_prefix = "remote/"
)", c, errors));
    REQUIRE(c.bridges.size() == 1);
    const config::Bridge& b = c.bridges[0];
    CHECK(b.name == "site");
    CHECK(b.port == 8883);
    CHECK(b.protocol == "mqttv5");
    CHECK(b.keep_alive == 30);
    CHECK_FALSE(b.try_private);
    CHECK(b.when_full == "drop_new");
    REQUIRE(b.topics.size() == 2);
    CHECK(b.topics[0].qos == 2);
    CHECK(b.topics[0].remote_prefix == "site/gw17/");
    CHECK(b.topics[1].direction == "in");
    CHECK(b.topics[1].qos == 1);
    REQUIRE(c.broker.session_budgets.size() == 1);
    CHECK(c.broker.session_budgets[0].client_id == "$bridge/site");
    CHECK(c.broker.session_budgets[0].max_bytes == 4096);
    CHECK_FALSE(c.broker.session_budgets[0].drop_oldest);
    CHECK(c.broker.session_budgets[0].queue_qos0);
    CHECK(b.tls.enabled);
    CHECK(b.tls.ca == "/etc/hato/ca.pem");
    CHECK(b.tls.cert == "/etc/hato/gw.crt");
    CHECK(b.tls.key == "/etc/hato/gw.key");
    CHECK(b.tls.server_name == "broker.site.lan");
    CHECK_FALSE(b.tls.insecure);
}

TEST_CASE("bridge refusals name the key") {
    config::AppConfig c;
    std::vector<std::string> errors;
    CHECK_FALSE(load(R"(
[[bridge]]
name = "a/b"
address = "x"
tls = { ca = "ca.pem", cert = "c.pem", sni = "x" }
queue_qos0 = 1
when_full = "drop_all"
reconnect_min_ms = 5000
reconnect_max_ms = 100

[[bridge.topic]]
pattern = "x/#"
direction = "both"
local_prefix = "l/"

[[bridge.topic]]
pattern = "$share/g/plant/#"

[[bridge.topic]]
pattern = "plant/#/x"
direction = "in"
)", c, errors));
    CHECK(has(errors, "bridge[0].topic[1].pattern: \"$share/g/plant/#\": a shared subscription cannot be a bridge rule"));
    CHECK(has(errors, "bridge[0].topic[2].pattern: \"plant/#/x\" is not a valid topic filter"));
    CHECK(has(errors, "bridge[0].name"));
    CHECK(has(errors, "bridge[0].tls.key: cert and key go together"));
    CHECK(has(errors, "bridge[0].tls.sni: unknown key"));
    CHECK(has(errors, "bridge[0].queue_qos0: expected boolean"));
    CHECK(has(errors, "bridge[0].when_full"));
    CHECK(has(errors, "bridge[0].reconnect_max_ms"));
    CHECK(has(errors, "bridge[0].topic[0].direction"));
    for (const auto& e : errors) CHECK(e.rfind("t.toml:", 0) == 0);
}

TEST_CASE("a bridge needs an address and a topic, and a unique name") {
    config::AppConfig c;
    std::vector<std::string> errors;
    CHECK_FALSE(load(R"(
[[bridge]]
name = "a"
[[bridge]]
name = "a"
address = "h"
[[bridge.topic]]
pattern = "#"
)", c, errors));
    CHECK(has(errors, "bridge[0].address"));
    CHECK(has(errors, "bridge[0].topic"));
    CHECK(has(errors, "already used"));
}
