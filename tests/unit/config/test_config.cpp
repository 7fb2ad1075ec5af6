#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

namespace {

// Field-by-field comparison (the structs have no operator==), with the
// field named in the failure message.
void check_equal(const AppConfig& a, const AppConfig& b) {
    CHECK(a.event_backend == b.event_backend);
    REQUIRE(a.listeners.size() == b.listeners.size());
    for (size_t i = 0; i < a.listeners.size(); ++i) {
        CHECK(a.listeners[i].address == b.listeners[i].address);
        CHECK(a.listeners[i].port == b.listeners[i].port);
    }
    const broker::Config& x = a.broker;
    const broker::Config& y = b.broker;
    CHECK(x.max_connections == y.max_connections);
    CHECK(x.max_packet_size == y.max_packet_size);
    CHECK(x.max_inflight == y.max_inflight);
    CHECK(x.max_queued_messages == y.max_queued_messages);
    CHECK(x.max_queued_bytes == y.max_queued_bytes);
    CHECK(x.max_output_bytes == y.max_output_bytes);
    CHECK(x.slow_client_timeout_ms == y.slow_client_timeout_ms);
    CHECK(x.slow_consumer_ms == y.slow_consumer_ms);
    CHECK(x.max_subscriptions_per_client == y.max_subscriptions_per_client);
    CHECK(x.max_topic_levels == y.max_topic_levels);
    CHECK(x.max_topic_length == y.max_topic_length);
    CHECK(x.max_client_id_length == y.max_client_id_length);
    CHECK(x.max_sessions == y.max_sessions);
    CHECK(x.max_retained_messages == y.max_retained_messages);
    CHECK(x.max_connect_packet_size == y.max_connect_packet_size);
    CHECK(x.connect_timeout_ms == y.connect_timeout_ms);
    CHECK(x.server_keep_alive == y.server_keep_alive);
    CHECK(x.max_keep_alive == y.max_keep_alive);
    CHECK(x.receive_maximum == y.receive_maximum);
    CHECK(x.topic_alias_maximum == y.topic_alias_maximum);
    CHECK(x.max_outbound_topic_aliases == y.max_outbound_topic_aliases);
    CHECK(x.maximum_qos == y.maximum_qos);
    CHECK(x.retain_available == y.retain_available);
    CHECK(x.wildcard_subscriptions == y.wildcard_subscriptions);
    CHECK(x.shared_subscriptions == y.shared_subscriptions);
    CHECK(x.subscription_identifiers == y.subscription_identifiers);
    CHECK(x.max_message_expiry == y.max_message_expiry);
    CHECK(x.max_session_expiry == y.max_session_expiry);
    CHECK(x.response_information == y.response_information);
    CHECK(a.storage_enabled == b.storage_enabled);
    CHECK(a.storage.dir == b.storage.dir);
    CHECK(a.storage.segment_bytes == b.storage.segment_bytes);
    CHECK(a.storage.max_bytes == b.storage.max_bytes);
    CHECK(a.storage.sync == b.storage.sync);
    CHECK(a.sync_interval_ms == b.sync_interval_ms);
    CHECK(a.log_level == b.log_level);
}

}  // namespace

TEST_CASE("conf/hato.toml equals the built-in defaults") {
    AppConfig parsed = config::defaults();
    // Start from values that differ, so the file must set every field.
    parsed.listeners.clear();
    std::vector<std::string> errors;
    bool ok = config::load_file(HATO_SOURCE_ROOT "/conf/hato.toml", parsed, errors);
    for (const auto& e : errors) INFO(e);
    REQUIRE(ok);
    REQUIRE(errors.empty());
    check_equal(parsed, config::defaults());
}

TEST_CASE("defaults have one listener and the documented values") {
    AppConfig d = config::defaults();
    REQUIRE(d.listeners.size() == 1);
    CHECK(d.listeners[0].address == "127.0.0.1");
    CHECK(d.listeners[0].port == 1883);
    CHECK(d.storage.dir == "/var/lib/hato");
    CHECK(d.storage.segment_bytes == 64ull << 20);
    CHECK(d.broker.max_packet_size == 1048576);
}

TEST_CASE("an empty file keeps the defaults") {
    AppConfig c;
    CHECK(load("", c).empty());
    check_equal(c, config::defaults());
}

TEST_CASE("values are read into their fields") {
    AppConfig c;
    auto errors = load(R"(
[broker]
event_backend = "epoll"
[[listener]]
address = "0.0.0.0"
port = 0
[[listener]]
address = "::1"
port = 8883
[limits]
max_connections = 5
max_queued_bytes = 4096
max_subscriptions_per_client = 0
max_topic_levels = 8
max_topic_length = 300
max_client_id_length = 100
max_sessions = 0
max_retained_messages = 7
[mqtt]
maximum_qos = 1
retain_available = false
response_information = "resp/"
outbound_topic_alias_maximum = 3
[storage]
enabled = false
dir = "/tmp/h"
sync = "interval"
sync_interval_ms = 250
segment_size_mb = 2
max_bytes_mb = 10
[log]
level = "debug"
)",
                       c);
    CHECK(errors.empty());
    CHECK(c.event_backend == "epoll");
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].address == "0.0.0.0");
    CHECK(c.listeners[0].port == 0);
    CHECK(c.listeners[1].address == "::1");
    CHECK(c.listeners[1].port == 8883);
    CHECK(c.broker.max_connections == 5);
    CHECK(c.broker.max_queued_bytes == 4096);
    CHECK(c.broker.max_subscriptions_per_client == 0);
    CHECK(c.broker.max_topic_levels == 8);
    CHECK(c.broker.max_topic_length == 300);
    CHECK(c.broker.max_client_id_length == 100);
    CHECK(c.broker.max_sessions == 0);
    CHECK(c.broker.max_retained_messages == 7);
    CHECK(c.broker.maximum_qos == 1);
    CHECK_FALSE(c.broker.retain_available);
    CHECK(c.broker.response_information == "resp/");
    CHECK(c.broker.max_outbound_topic_aliases == 3);
    CHECK_FALSE(c.storage_enabled);
    CHECK(c.storage.dir == "/tmp/h");
    CHECK(c.storage.sync == store::SyncMode::Interval);
    CHECK(c.sync_interval_ms == 250);
    CHECK(c.storage.segment_bytes == 2ull << 20);
    CHECK(c.storage.max_bytes == 10ull << 20);
    CHECK(c.log_level == config::LogLevel::Debug);
}

TEST_CASE("a listener without a port gets 1883") {
    AppConfig c;
    CHECK(load("[[listener]]\naddress = \"10.0.0.1\"\n", c).empty());
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].address == "10.0.0.1");
    CHECK(c.listeners[0].port == 1883);
}

TEST_CASE("every error is collected, in file order, with position and key") {
    AppConfig c;
    auto errors = load(R"([limits]
max_connections = "many"
bogus = 1
[mqtt]
maximum_qos = 3
receive_maximum = 0
[[listener]]
port = 70000
[storage]
sync = "sometimes"
[unknown_table]
x = 1
)",
                       c);
    REQUIRE(errors.size() == 7);
    CHECK(errors[0] == "t.toml:2:19: limits.max_connections: expected integer, got string");
    CHECK(errors[1] == "t.toml:3:1: limits.bogus: unknown key");
    CHECK(errors[2] == "t.toml:5:15: mqtt.maximum_qos: value 3 out of range 0..2");
    CHECK(errors[3] == "t.toml:6:19: mqtt.receive_maximum: value 0 out of range 1..65535");
    CHECK(errors[4].rfind("t.toml:8:8: listener[0].port: value 70000 out of range 0..65535", 0) == 0);
    CHECK(errors[5].find("storage.sync: \"sometimes\" is not one of always | interval | off") !=
          std::string::npos);
    CHECK(errors[6].rfind("t.toml:11:", 0) == 0);
    CHECK(errors[6].find("unknown_table: unknown table") != std::string::npos);
}

TEST_CASE("a failed load leaves the output untouched") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    CHECK_FALSE(config::load_string("[limits]\nmax_connections = 7\nmax_inflight = 0\n", "t.toml", c,
                                    errors));
    CHECK(errors.size() == 1);
    CHECK(c.broker.max_connections == 10000);
}

TEST_CASE("wrong shapes are errors") {
    AppConfig c;
    CHECK(load("broker = 1\n", c).at(0) == "t.toml:1:10: broker: expected table, got integer");
    CHECK(load("[listener]\nport = 1\n", c).at(0).find("listener: expected array of tables") !=
          std::string::npos);
    CHECK(load("listener = []\n", c).at(0).find("at least one listener") != std::string::npos);
    CHECK(load("[storage]\ndir = \"\"\n", c).at(0).find("storage.dir: must not be empty") !=
          std::string::npos);
    CHECK(load("[mqtt]\nretain_available = 1\n", c).at(0).find("expected boolean, got integer") !=
          std::string::npos);
    CHECK(load("[limits]\nmax_packet_size = 1.5\n", c).at(0).find("expected integer, got floating") !=
          std::string::npos);
    CHECK(load("top = 1\n", c).at(0) == "t.toml:1:1: top: unknown key");
}

TEST_CASE("TOML syntax errors carry a position") {
    AppConfig c;
    auto errors = load("[limits]\nmax_connections = = 3\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("t.toml:2:", 0) == 0);
    CHECK(errors[0].find("syntax: ") != std::string::npos);
}

TEST_CASE("a missing file is an error naming the path") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    CHECK_FALSE(config::load_file("/nonexistent/hato.toml", c, errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("/nonexistent/hato.toml: cannot open") == 0);
}

TEST_CASE("listener tls as an inline table and as a sub-table") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    const char* text =
        "[[listener]]\nport = 8883\n"
        "tls = { cert = \"s.crt\", key = \"s.key\", ca = \"ca.crt\", require_client_cert = true,"
        " identity_as_username = true, min_version = \"1.3\" }\n"
        "[[listener]]\naddress = \"0.0.0.0\"\nport = 8884\n"
        "[listener.tls]\ncert = \"a.crt\"\nkey = \"a.key\"\n";
    REQUIRE(config::load_string(text, "t.toml", c, errors));
    REQUIRE(c.listeners.size() == 2);
    const config::ListenerTls& a = c.listeners[0].tls;
    CHECK(a.enabled);
    CHECK(a.cert == "s.crt");
    CHECK(a.key == "s.key");
    CHECK(a.ca == "ca.crt");
    CHECK(a.require_client_cert);
    CHECK(a.identity_as_username);
    CHECK(a.min_version == "1.3");
    const config::ListenerTls& b = c.listeners[1].tls;
    CHECK(b.enabled);
    CHECK(b.cert == "a.crt");
    CHECK_FALSE(b.require_client_cert);
    CHECK(b.min_version == "1.2");
    CHECK_FALSE(config::defaults().listeners[0].tls.enabled);
}

TEST_CASE("tls errors name the key and position") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    const char* text =
        "[[listener]]\n"
        "tls = { cert = \"s.crt\", identity_as_username = true, min_version = \"1.1\", ciphers = \"x\" }\n";
    CHECK_FALSE(config::load_string(text, "t.toml", c, errors));
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    CHECK(all.find("t.toml:2:") != std::string::npos);
    CHECK(all.find("listener[0].tls.key: required") != std::string::npos);
    CHECK(all.find("listener[0].tls.min_version: \"1.1\" is not one of 1.2 | 1.3") != std::string::npos);
    CHECK(all.find("listener[0].tls.ciphers: unknown key") != std::string::npos);
    CHECK(all.find("listener[0].tls.identity_as_username: needs require_client_cert") != std::string::npos);

    errors.clear();
    CHECK_FALSE(config::load_string("[[listener]]\ntls = { cert = \"a\", key = \"b\", require_client_cert = true }\n",
                                    "t.toml", c, errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("require_client_cert: needs ca") != std::string::npos);
}

TEST_CASE("[auth] keys and the anonymous default per listener") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    const char* listeners =
        "[[listener]]\naddress = \"127.0.0.1\"\n"
        "[[listener]]\naddress = \"0.0.0.0\"\nport = 1884\n"
        "[[listener]]\naddress = \"::1\"\nport = 1885\n";
    REQUIRE(config::load_string(listeners, "t.toml", c, errors));
    CHECK_FALSE(c.auth.allow_anonymous.has_value());
    CHECK(config::anonymous_allowed(c, 0));
    CHECK_FALSE(config::anonymous_allowed(c, 1));
    CHECK(config::anonymous_allowed(c, 2));

    std::string with_auth = std::string(listeners) +
        "[auth]\nallow_anonymous = true\npassword_file = \"/etc/hato/passwd\"\nacl_file = \"/etc/hato/acl\"\n";
    REQUIRE(config::load_string(with_auth, "t.toml", c, errors));
    CHECK(c.auth.password_file == "/etc/hato/passwd");
    CHECK(c.auth.acl_file == "/etc/hato/acl");
    // An explicit value applies to every listener.
    CHECK(config::anonymous_allowed(c, 1));
    REQUIRE(config::load_string("[auth]\nallow_anonymous = false\n", "t.toml", c, errors));
    CHECK_FALSE(config::anonymous_allowed(c, 0));

    CHECK_FALSE(config::load_string("[auth]\nallow_anonymous = \"no\"\npasswords = \"x\"\n", "t.toml", c, errors));
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].find("t.toml:2:19: auth.allow_anonymous: expected boolean") != std::string::npos);
    CHECK(errors[1].find("auth.passwords: unknown key") != std::string::npos);
}

// The reactor binds an address, not a name; and a second listener on a port
// an earlier one holds could not be bound. Both failed only at start (or at a
// reload), without a line number.
TEST_CASE("listener and metrics addresses are IP addresses; no two listeners on one port") {
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    CHECK_FALSE(config::load_string("[[listener]]\naddress = \"localhost\"\n"
                                    "[[listener]]\naddress = \"[::1]\"\nport = 1884\n"
                                    "[[listener]]\naddress = \"0.0.0.0\"\nport = 1884\n"
                                    "[[listener]]\naddress = \"10.0.0.1\"\nport = 1885\n"
                                    "[[listener]]\naddress = \"10.0.0.2\"\nport = 1885\n"
                                    "[[listener]]\nport = 0\n[[listener]]\nport = 0\n"
                                    "[metrics]\naddress = \"gw.local\"\nport = 9100\n",
                                    "t.toml", c, errors));
    std::string all;
    for (const std::string& e : errors) all += e + "\n";
    INFO(all);
    CHECK(errors.size() == 3);
    CHECK(all.find("t.toml:2:11: listener[0].address: \"localhost\" is not an IP address") != std::string::npos);
    CHECK(all.find("t.toml:8:8: listener[2].port: listener[1] already listens on port 1884") != std::string::npos);
    CHECK(all.find("metrics.address: \"gw.local\" is not an IP address") != std::string::npos);
}
