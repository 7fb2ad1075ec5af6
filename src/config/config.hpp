// The one TOML file, parsed into plain structs. Unknown keys and wrong types
// are errors, each reported as "file:line:column: key: message".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "broker/config.hpp"
#include "modbus/value.hpp"
#include "store/log.hpp"

namespace hato::config {

// [[listener]] tls = { ... } (or a [listener.tls] sub-table).
struct ListenerTls {
    bool enabled = false;              // the key is present
    std::string cert;                  // PEM certificate chain (required)
    std::string key;                   // PEM private key (required)
    std::string ca;                    // PEM CA bundle for client certificates
    bool require_client_cert = false;  // needs ca
    bool identity_as_username = false; // needs require_client_cert
    std::string min_version = "1.2";   // "1.2" | "1.3"
    bool operator==(const ListenerTls&) const = default;
};

enum class ListenerProtocol : uint8_t { Mqtt, WebSockets };

struct Listener {
    std::string address = "127.0.0.1";
    uint16_t port = 1883;
    ListenerTls tls;
    // protocol = "websockets": MQTT over WebSockets (wss with tls).
    ListenerProtocol protocol = ListenerProtocol::Mqtt;
    std::string path = "/mqtt";                // the upgrade's path; "" accepts any
    std::vector<std::string> allowed_origins;  // empty: any Origin
    std::vector<std::string> trusted_proxies;  // peers whose X-Forwarded-For is logged
    // Overrides [auth] allow_anonymous on this listener (unset: [auth] decides).
    std::optional<bool> allow_anonymous;
    // Connections this listener accepts at once; 0 = only [limits] max_connections.
    uint32_t max_connections = 0;
    // A password file of this listener's own, used there instead of [auth]
    // password_file; empty: [auth] decides.
    std::string password_file;
    // Likewise an ACL file of its own, instead of [auth] acl_file.
    std::string acl_file;
    bool operator==(const Listener&) const = default;
};

// [auth]
struct AuthConfig {
    // Unset: anonymous clients are allowed on loopback listeners only.
    // Set: applies to every listener that does not set its own.
    std::optional<bool> allow_anonymous;
    std::string password_file;  // empty: none
    std::string acl_file;       // empty: no ACL (everything allowed)
    uint32_t hash_workers = 1;            // threads that check passwords off the reactor
    uint32_t max_failed_per_minute = 30;  // failed logins per source address; 0 = no limit
};

// [metrics]: the HTTP endpoint for Prometheus, health checks and the status page.
struct MetricsConfig {
    std::string address = "127.0.0.1";
    uint16_t port = 0;   // 0: off
};

// [[bridge]] and its [[bridge.topic]] rules (docs/bridge.md).
struct BridgeTopic {
    std::string pattern;                 // local filter for out, remote filter for in
    std::string direction = "out";       // "out" | "in" | "both"
    uint8_t qos = 1;
    std::string local_prefix;
    std::string remote_prefix;
    bool operator==(const BridgeTopic&) const = default;
};

// tls = { ca, cert, key, server_name, insecure } of a [[bridge]].
struct BridgeTls {
    bool enabled = false;
    std::string ca;                      // empty: the system's CAs
    std::string cert;                    // client certificate (mutual TLS)
    std::string key;
    std::string server_name;             // SNI and the name verified; empty: address
    bool insecure = false;               // no verification of the upstream
    bool operator==(const BridgeTls&) const = default;
};

struct Bridge {
    std::string name;
    std::string address;
    uint16_t port = 1883;
    std::string protocol = "mqttv311";   // "mqttv311" | "mqttv5"
    std::string client_id;               // empty: "<name>.<hostname>"
    std::string username;                // empty: none
    std::string password_file;           // empty: no password
    uint16_t keep_alive = 60;
    bool clean_start = false;
    uint32_t session_expiry = 86400;
    uint32_t reconnect_min_ms = 1000;
    uint32_t reconnect_max_ms = 120000;
    bool try_private = true;
    // 0: 100 on mqttv5 (capped by the upstream's Receive Maximum), 20 on
    // mqttv311, which has no way to say its limit: Mosquitto's default
    // max_inflight_messages, past which it drops QoS 2 messages with a
    // refusal a 3.1.1 PUBREC cannot carry (the bridge took them as received).
    uint16_t inflight = 0;
    uint32_t max_packet_size = 0;        // largest packet the upstream takes; 0 = what a v5 upstream says
    uint64_t max_queued_bytes = 1073741824;
    std::string when_full = "drop_oldest";   // "drop_oldest" | "drop_new"
    bool queue_qos0 = false;
    bool notifications = true;           // the state topic on the upstream too (will)
    BridgeTls tls;
    std::vector<BridgeTopic> topics;
    bool operator==(const Bridge&) const = default;
};

// [[modbus]] devices and their [[modbus.point]]s (docs/modbus.md).
struct ModbusPoint {
    std::string name;                    // topic: "<topic_prefix>/<name>"
    modbus::Kind kind = modbus::Kind::Holding;
    uint16_t address = 0;                // 0-based
    modbus::Format format;               // type, word/byte order, scale, offset, count
    bool every_poll = false;             // publish = "every_poll" (else "on_change")
    double deadband = 0.0;
    uint8_t qos = 1;
    bool retain = true;
    bool writable = false;               // "<topic>/set" writes it
    bool raw = false;                    // payload = "raw": the bare value as text
    bool operator==(const ModbusPoint&) const = default;
};

struct ModbusDevice {
    std::string name;
    std::string transport = "tcp";       // "tcp" | "rtu"
    std::string host;                    // tcp
    uint16_t port = 502;
    std::string serial;                  // rtu
    uint32_t baud = 19200;
    char parity = 'E';                   // 'N' | 'E' | 'O'
    uint8_t data_bits = 8;
    uint8_t stop_bits = 1;
    uint8_t unit_id = 1;
    uint32_t poll_interval_ms = 1000;
    uint32_t timeout_ms = 500;
    uint32_t reconnect_max_ms = 30000;
    uint16_t max_gap = 0;                // unused registers/bits one read may span to join points
    std::string topic_prefix;            // default "modbus/<name>"
    std::string status_topic;            // default "<topic_prefix>/$status"
    std::vector<ModbusPoint> points;
    bool operator==(const ModbusDevice&) const = default;
};

enum class LogLevel : uint8_t { Error, Warn, Info, Debug };

struct AppConfig {
    std::string event_backend = "auto";    // [broker] auto | io_uring | epoll
    std::vector<Listener> listeners;        // [[listener]]; default: one on 127.0.0.1:1883
    broker::Config broker;                  // [limits], [mqtt]
    bool storage_enabled = true;            // [storage] enabled
    store::Options storage;                 // [storage] dir, sync, ...
    uint32_t sync_interval_ms = 100;        // [storage] sync_interval_ms (sync = "interval")
    uint32_t sync_window_us = 2000;         // [storage] sync_window_us (sync = "always"; 0 = no window)
    uint32_t sync_batch_bytes = 65536;      // [storage] sync_batch_bytes (0 = no size trigger)
    LogLevel log_level = LogLevel::Info;    // [log] level
    AuthConfig auth;                        // [auth]
    MetricsConfig metrics;                  // [metrics]
    uint32_t sys_interval_s = 10;           // [sys] interval: $SYS topics every N seconds, 0 = off
    std::vector<Bridge> bridges;            // [[bridge]]
    std::vector<ModbusDevice> modbus;       // [[modbus]]
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_address(const std::string& address);
// A queued message is stored as one record: its packet plus the record's own
// fields. One larger than a segment could never be stored, so a message the
// broker accepts must always fit: whether `max_packet_size` does.
bool packets_fit_segments(const AppConfig& c);
// Whether clients without credentials may connect on listener `index`:
// the listener's allow_anonymous, else [auth]'s, else loopback only.
bool anonymous_allowed(const AppConfig& cfg, size_t index);

// The built-in defaults, equal to conf/hato.toml.
AppConfig defaults();

// Parses `path` over defaults(). Returns false with one entry per problem
// in `errors` ("file:line:column: key: message").
bool load_file(const std::string& path, AppConfig& out, std::vector<std::string>& errors);
// Same, from a string (tests); `name` is used in messages.
bool load_string(const std::string& text, const std::string& name, AppConfig& out,
                 std::vector<std::string>& errors);

}  // namespace hato::config
