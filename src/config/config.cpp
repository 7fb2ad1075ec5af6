// TOML -> AppConfig. Every table is read by a TableReader that remembers which
// keys it asked for, so whatever is left over is reported as unknown. Errors
// are collected (never thrown) and sorted by position, so one run of
// `hato --check-config` shows every problem in file order.
#include "config/config.hpp"

#include <arpa/inet.h>

#include <cmath>

#include <toml++/toml.h>

#include "broker/persistence.hpp"
#include "modbus/codec.hpp"
#include "mqtt/codec.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

namespace hato::config {

AppConfig defaults() {
    AppConfig c;
    c.event_backend = "auto";
    c.listeners = {Listener{}};  // 127.0.0.1:1883, plain MQTT
    c.broker = broker::Config{};
    c.storage_enabled = true;
    c.storage.dir = "/var/lib/hato";
    c.storage.sync = store::SyncMode::Always;
    c.storage.segment_bytes = 64ull << 20;
    c.storage.max_bytes = 0;
    c.sync_interval_ms = 100;
    c.sync_window_us = 2000;
    c.sync_batch_bytes = 65536;
    c.log_level = LogLevel::Info;
    c.sys_interval_s = 10;
    return c;
}

namespace {

constexpr uint64_t kMiB = 1ull << 20;
// MQTT's largest packet: 1 fixed header byte + 4 length bytes + 268435455.
constexpr int64_t kMaxMqttPacket = 268435460;

struct Error {
    uint32_t line;
    uint32_t column;
    std::string text;
};

class Errors {
public:
    explicit Errors(std::string file) : file_(std::move(file)) {}

    void add(const toml::source_region& where, const std::string& key, const std::string& msg) {
        std::ostringstream s;
        s << file_ << ':' << where.begin.line << ':' << where.begin.column << ": " << key << ": " << msg;
        list_.push_back({where.begin.line, where.begin.column, s.str()});
    }
    void add_raw(uint32_t line, uint32_t column, const std::string& text) {
        list_.push_back({line, column, text});
    }
    bool empty() const { return list_.empty(); }

    // Appends the collected messages to `out`, in file order.
    void flush_into(std::vector<std::string>& out) {
        std::stable_sort(list_.begin(), list_.end(), [](const Error& a, const Error& b) {
            return a.line != b.line ? a.line < b.line : a.column < b.column;
        });
        for (auto& e : list_) out.push_back(std::move(e.text));
        list_.clear();
    }

private:
    std::string file_;
    std::vector<Error> list_;
};

std::string type_name(const toml::node& n) {
    std::ostringstream s;
    s << n.type();
    return s.str();
}

// Reads the keys of one table into typed fields; each getter leaves the
// field untouched (the default) when the key is absent or invalid.
class TableReader {
public:
    TableReader(Errors& errors, const toml::table& table, std::string prefix)
        : errors_(errors), table_(table), prefix_(std::move(prefix)) {}

    template <typename T>
    void integer(const char* key, int64_t min, int64_t max, T& out) {
        const toml::node* n = lookup(key);
        if (!n) return;
        if (!n->is_integer()) return wrong_type(*n, key, "integer");
        int64_t v = n->as_integer()->get();
        if (v < min || v > max) {
            std::ostringstream s;
            s << "value " << v << " out of range " << min << ".." << max;
            return errors_.add(n->source(), path(key), s.str());
        }
        out = static_cast<T>(v);
    }

    // A float or an integer, as a double.
    void number(const char* key, double& out) {
        const toml::node* n = lookup(key);
        if (!n) return;
        if (n->is_floating_point()) out = n->as_floating_point()->get();
        else if (n->is_integer()) out = double(n->as_integer()->get());
        else wrong_type(*n, key, "number");
    }

    void boolean(const char* key, bool& out) {
        const toml::node* n = lookup(key);
        if (!n) return;
        if (!n->is_boolean()) return wrong_type(*n, key, "boolean");
        out = n->as_boolean()->get();
    }

    void string(const char* key, std::string& out, bool allow_empty) {
        const toml::node* n = lookup(key);
        if (!n) return;
        if (!n->is_string()) return wrong_type(*n, key, "string");
        const std::string& v = n->as_string()->get();
        if (v.empty() && !allow_empty) return errors_.add(n->source(), path(key), "must not be empty");
        out = v;
    }

    // A string restricted to a fixed set of words, mapped to `E`.
    template <typename E>
    void choice(const char* key, std::initializer_list<std::pair<const char*, E>> words, E& out) {
        const toml::node* n = lookup(key);
        if (!n) return;
        if (!n->is_string()) return wrong_type(*n, key, "string");
        const std::string& v = n->as_string()->get();
        std::string allowed;
        for (const auto& [word, value] : words) {
            if (v == word) {
                out = value;
                return;
            }
            allowed += allowed.empty() ? "" : " | ";
            allowed += word;
        }
        errors_.add(n->source(), path(key), "\"" + v + "\" is not one of " + allowed);
    }

    // Marks `key` as known and returns its node (or nullptr).
    const toml::node* lookup(const char* key) {
        known_.insert(key);
        return table_.get(key);
    }

    std::string path(std::string_view key) const {
        return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
    }

    // Reports every key that no getter asked for.
    void reject_unknown() {
        for (const auto& [key, node] : table_) {
            if (known_.count(std::string(key.str()))) continue;
            errors_.add(key.source(), path(key.str()), node.is_table() ? "unknown table" : "unknown key");
        }
    }

private:
    void wrong_type(const toml::node& n, const char* key, const char* expected) {
        errors_.add(n.source(), path(key), std::string("expected ") + expected + ", got " + type_name(n));
    }

    Errors& errors_;
    const toml::table& table_;
    std::string prefix_;
    std::set<std::string> known_;
};

// Returns the sub-table `name` of `root` (marking it known), or nullptr if
// absent or not a table (the latter reported).
const toml::table* sub_table(TableReader& root, Errors& errors, const char* name) {
    const toml::node* n = root.lookup(name);
    if (!n) return nullptr;
    if (!n->is_table()) {
        errors.add(n->source(), name, "expected table, got " + type_name(*n));
        return nullptr;
    }
    return n->as_table();
}

void read_broker(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "broker");
    std::string backend = c.event_backend;
    r.choice<std::string>("event_backend",
                          {{"auto", "auto"}, {"io_uring", "io_uring"}, {"epoll", "epoll"}}, backend);
    c.event_backend = backend;
    r.reject_unknown();
}

// tls = { cert, key, ca, require_client_cert, identity_as_username,
// min_version }: an inline table or a [listener.tls] sub-table alike.
// What the reactor binds: an IPv4 or IPv6 literal (IPv6 may be in
// brackets), or empty for 0.0.0.0. A host name is not resolved.
bool is_ip_literal(const std::string& address) {
    std::string host = address;
    if (host.empty()) return true;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    in6_addr buf{};
    return inet_pton(AF_INET, host.c_str(), &buf) == 1 || inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

// Two sockets on one port of these addresses could not both be bound.
bool addresses_overlap(const std::string& a, const std::string& b) {
    auto wildcard = [](const std::string& x) { return x.empty() || x == "0.0.0.0" || x == "::" || x == "[::]"; };
    return a == b || wildcard(a) || wildcard(b);
}

void read_listener_tls(Errors& errors, const toml::node& n, const std::string& where, ListenerTls& tls) {
    if (!n.is_table()) {
        errors.add(n.source(), where, "expected table, got " + type_name(n));
        return;
    }
    TableReader r(errors, *n.as_table(), where);
    tls.enabled = true;
    r.string("cert", tls.cert, false);
    r.string("key", tls.key, false);
    r.string("ca", tls.ca, true);
    r.boolean("require_client_cert", tls.require_client_cert);
    r.boolean("identity_as_username", tls.identity_as_username);
    r.choice<std::string>("min_version", {{"1.2", "1.2"}, {"1.3", "1.3"}}, tls.min_version);
    r.reject_unknown();
    if (tls.cert.empty()) errors.add(n.source(), where + ".cert", "required with tls");
    if (tls.key.empty()) errors.add(n.source(), where + ".key", "required with tls");
    if (tls.require_client_cert && tls.ca.empty())
        errors.add(n.source(), where + ".require_client_cert", "needs ca (the CA that signs client certificates)");
    if (tls.identity_as_username && !tls.require_client_cert)
        errors.add(n.source(), where + ".identity_as_username", "needs require_client_cert = true");
}

// An array of non-empty strings (each kept in `out`), only with websockets.
void read_ws_strings(Errors& errors, TableReader& r, const char* key, bool ws, const char* example,
                     std::vector<std::string>& out) {
    const toml::node* n = r.lookup(key);
    if (!n) return;
    if (!ws) errors.add(n->source(), r.path(key), "only with protocol = \"websockets\"");
    const toml::array* arr = n->as_array();
    if (!arr) return errors.add(n->source(), r.path(key), "expected array of strings, got " + type_name(*n));
    for (const toml::node& o : *arr) {
        if (!o.is_string() || o.as_string()->get().empty())
            errors.add(o.source(), r.path(key), std::string("expected non-empty strings (such as \"") + example + "\")");
        else
            out.push_back(o.as_string()->get());
    }
}

// protocol, and with "websockets" only: path, allowed_origins, trusted_proxies.
void read_listener_websockets(Errors& errors, TableReader& r, Listener& l) {
    r.choice<ListenerProtocol>("protocol",
                               {{"mqtt", ListenerProtocol::Mqtt}, {"websockets", ListenerProtocol::WebSockets}},
                               l.protocol);
    bool ws = l.protocol == ListenerProtocol::WebSockets;
    if (const toml::node* n = r.lookup("path")) {
        r.string("path", l.path, true);
        if (!ws) errors.add(n->source(), r.path("path"), "only with protocol = \"websockets\"");
        else if (n->is_string() && !l.path.empty() && (l.path[0] != '/' || l.path.find_first_of(" ?#") != std::string::npos))
            errors.add(n->source(), r.path("path"), "must start with / and hold no space, ? or # (or be empty: any path)");
    }
    read_ws_strings(errors, r, "allowed_origins", ws, "https://hmi.example", l.allowed_origins);
    read_ws_strings(errors, r, "trusted_proxies", ws, "127.0.0.1", l.trusted_proxies);
}

void read_listeners(Errors& errors, const toml::node& n, AppConfig& c) {
    const toml::array* arr = n.as_array();
    if (arr && arr->empty()) {
        errors.add(n.source(), "listener", "at least one listener is required");
        return;
    }
    if (!arr || !arr->is_array_of_tables()) {
        errors.add(n.source(), "listener", "expected array of tables ([[listener]]), got " + type_name(n));
        return;
    }
    // A [[listener]] list replaces the built-in default listener.
    c.listeners.clear();
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        TableReader r(errors, t, "listener[" + std::to_string(i) + "]");
        Listener l;
        r.string("address", l.address, false);
        r.integer("port", 0, 65535, l.port);  // 0: the kernel picks a free port
        if (const toml::node* tls = r.lookup("tls")) read_listener_tls(errors, *tls, r.path("tls"), l.tls);
        read_listener_websockets(errors, r, l);
        if (r.lookup("allow_anonymous")) {
            bool anonymous = false;
            r.boolean("allow_anonymous", anonymous);
            l.allow_anonymous = anonymous;
        }
        r.integer("max_connections", 0, std::numeric_limits<uint32_t>::max(), l.max_connections);
        r.string("password_file", l.password_file, false);
        r.string("acl_file", l.acl_file, false);
        r.reject_unknown();
        if (const toml::node* a = t.get("address"); a && !is_ip_literal(l.address))
            errors.add(a->source(), r.path("address"),
                       "\"" + l.address + "\" is not an IP address (a listener binds one: 127.0.0.1, 0.0.0.0, ::1, ::)");
        for (size_t j = 0; j < c.listeners.size(); ++j)
            if (l.port != 0 && c.listeners[j].port == l.port && addresses_overlap(c.listeners[j].address, l.address)) {
                const toml::node* port = t.get("port");
                errors.add(port ? port->source() : t.source(), r.path("port"),
                           "listener[" + std::to_string(j) + "] already listens on port " + std::to_string(l.port) +
                               " of an address that overlaps this one");
                break;
            }
        c.listeners.push_back(std::move(l));
    }
}

void read_limits(Errors& errors, const toml::table& t, broker::Config& b) {
    TableReader r(errors, t, "limits");
    constexpr int64_t u32 = std::numeric_limits<uint32_t>::max();
    r.integer("max_connections", 1, u32, b.max_connections);
    r.integer("max_packet_size", 2, kMaxMqttPacket, b.max_packet_size);
    r.integer("max_inflight", 1, 65535, b.max_inflight);
    r.integer("max_queued_messages", 1, u32, b.max_queued_messages);
    r.integer("max_queued_bytes", 0, std::numeric_limits<int64_t>::max(), b.max_queued_bytes);
    r.integer("max_output_bytes", 1, std::numeric_limits<int64_t>::max(), b.max_output_bytes);
    r.integer("slow_client_timeout_ms", 0, std::numeric_limits<int64_t>::max(), b.slow_client_timeout_ms);
    r.integer("slow_consumer_ms", 0, std::numeric_limits<int64_t>::max(), b.slow_consumer_ms);
    r.integer("max_connect_packet_size", 2, kMaxMqttPacket, b.max_connect_packet_size);
    r.integer("connect_timeout_ms", 1, std::numeric_limits<int64_t>::max(), b.connect_timeout_ms);
    r.integer("max_subscriptions_per_client", 0, u32, b.max_subscriptions_per_client);
    // Deeper than 1024 the tree's path hashes and a match's probes stop being cheap.
    r.integer("max_topic_levels", 1, 1024, b.max_topic_levels);
    r.integer("max_topic_length", 1, 65535, b.max_topic_length);
    r.integer("max_client_id_length", 23, 65535, b.max_client_id_length);   // 23: what MQTT requires
    r.integer("max_sessions", 0, u32, b.max_sessions);
    r.integer("max_retained_messages", 0, u32, b.max_retained_messages);
    r.reject_unknown();
}

void read_mqtt(Errors& errors, const toml::table& t, broker::Config& b) {
    TableReader r(errors, t, "mqtt");
    constexpr int64_t u32 = std::numeric_limits<uint32_t>::max();
    r.integer("server_keep_alive", 0, 65535, b.server_keep_alive);
    r.integer("max_keep_alive", 0, 65535, b.max_keep_alive);
    if (b.max_keep_alive != 0 && b.server_keep_alive > b.max_keep_alive)
        if (const toml::node* n = r.lookup("server_keep_alive"))
            errors.add(n->source(), r.path("server_keep_alive"), "must not exceed max_keep_alive");
    r.integer("receive_maximum", 1, 65535, b.receive_maximum);
    r.integer("topic_alias_maximum", 0, 65535, b.topic_alias_maximum);
    r.integer("outbound_topic_alias_maximum", 0, 65535, b.max_outbound_topic_aliases);
    r.integer("maximum_qos", 0, 2, b.maximum_qos);
    r.boolean("retain_available", b.retain_available);
    r.boolean("wildcard_subscriptions", b.wildcard_subscriptions);
    r.boolean("shared_subscriptions", b.shared_subscriptions);
    r.boolean("subscription_identifiers", b.subscription_identifiers);
    r.integer("max_message_expiry", 0, u32, b.max_message_expiry);
    r.integer("max_session_expiry", 0, u32, b.max_session_expiry);
    r.string("response_information", b.response_information, true);
    r.reject_unknown();
}

void read_storage(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "storage");
    r.boolean("enabled", c.storage_enabled);
    r.string("dir", c.storage.dir, false);
    r.choice<store::SyncMode>("sync",
                              {{"always", store::SyncMode::Always},
                               {"interval", store::SyncMode::Interval},
                               {"off", store::SyncMode::Off}},
                              c.storage.sync);
    r.integer("sync_interval_ms", 1, 3600 * 1000, c.sync_interval_ms);
    // Beyond a second the held acknowledgements would meet clients' timeouts.
    r.integer("sync_window_us", 0, 1000 * 1000, c.sync_window_us);
    r.integer("sync_batch_bytes", 0, 64 * 1024 * 1024, c.sync_batch_bytes);
    uint64_t segment_mb = c.storage.segment_bytes / kMiB;
    r.integer("segment_size_mb", 1, 4096, segment_mb);
    c.storage.segment_bytes = segment_mb * kMiB;
    uint64_t max_mb = c.storage.max_bytes / kMiB;
    r.integer("max_bytes_mb", 0, int64_t{1} << 40, max_mb);
    c.storage.max_bytes = max_mb * kMiB;
    r.reject_unknown();
}

void read_log(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "log");
    r.choice<LogLevel>("level",
                       {{"error", LogLevel::Error},
                        {"warn", LogLevel::Warn},
                        {"info", LogLevel::Info},
                        {"debug", LogLevel::Debug}},
                       c.log_level);
    r.reject_unknown();
}

void read_auth(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "auth");
    bool anonymous = false;
    if (r.lookup("allow_anonymous")) {
        r.boolean("allow_anonymous", anonymous);
        c.auth.allow_anonymous = anonymous;
    }
    r.string("password_file", c.auth.password_file, false);
    r.string("acl_file", c.auth.acl_file, false);
    r.integer("hash_workers", 1, 64, c.auth.hash_workers);
    r.integer("max_failed_per_minute", 0, 1000000, c.auth.max_failed_per_minute);
    r.boolean("allow_session_takeover_by_other_user", c.broker.allow_session_takeover_by_other_user);
    r.reject_unknown();
}

void read_metrics(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "metrics");
    r.string("address", c.metrics.address, false);
    r.integer("port", 0, 65535, c.metrics.port);  // 0: no metrics endpoint
    r.reject_unknown();
    if (const toml::node* a = t.get("address"); a && !is_ip_literal(c.metrics.address))
        errors.add(a->source(), "metrics.address", "\"" + c.metrics.address + "\" is not an IP address");
    // The same port as an MQTT listener on an overlapping address could not be bound.
    const toml::node* port = t.get("port");
    for (size_t i = 0; port && c.metrics.port != 0 && i < c.listeners.size(); ++i) {
        const Listener& l = c.listeners[i];
        if (l.port != c.metrics.port) continue;
        if (!addresses_overlap(l.address, c.metrics.address)) continue;
        errors.add(port->source(), "metrics.port",
                   std::to_string(l.port) + " is also the port of listener[" + std::to_string(i) + "] (" + l.address + ")");
    }
}

void read_sys(Errors& errors, const toml::table& t, AppConfig& c) {
    TableReader r(errors, t, "sys");
    r.integer("interval", 0, 86400, c.sys_interval_s);
    r.reject_unknown();
}

void read_sparkplug(Errors& errors, const toml::table& t, broker::Config& b) {
    TableReader r(errors, t, "sparkplug");
    r.boolean("aware", b.sparkplug_aware);
    r.reject_unknown();
}

// packets_fit_segments, with the keys to change named.
void check_record_fits(Errors& errors, const toml::table& root, const AppConfig& c) {
    if (packets_fit_segments(c)) return;
    const uint64_t need = uint64_t(c.broker.max_packet_size) + broker::kMaxRecordOverhead;
    const toml::node* seg = root.at_path("storage.segment_size_mb").node();
    const toml::node* pkt = root.at_path("limits.max_packet_size").node();
    auto at = [](const toml::node* n) {
        if (!n) return std::string(" (the default)");
        std::ostringstream s;
        s << " (line " << n->source().begin.line << ':' << n->source().begin.column << ')';
        return s.str();
    };
    std::ostringstream s;
    s << "a message of limits.max_packet_size = " << c.broker.max_packet_size << at(pkt) << " is stored as a record of up to "
      << need << " bytes, more than one segment of storage.segment_size_mb = " << c.storage.segment_bytes / kMiB
      << at(seg) << "; lower limits.max_packet_size to at most "
      << (c.storage.segment_bytes > broker::kMaxRecordOverhead ? c.storage.segment_bytes - broker::kMaxRecordOverhead : 0)
      << " or raise storage.segment_size_mb to at least " << (need + kMiB - 1) / kMiB;
    if (seg) errors.add(seg->source(), "storage.segment_size_mb", s.str());
    else errors.add(pkt->source(), "limits.max_packet_size", s.str());
}

// [[bridge]] with its [[bridge.topic]] rules.
void read_bridge_topics(Errors& errors, const toml::node& n, const std::string& where, Bridge& b) {
    const toml::array* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        errors.add(n.source(), where, "expected array of tables ([[bridge.topic]]), got " + type_name(n));
        return;
    }
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        TableReader r(errors, t, where + "[" + std::to_string(i) + "]");
        BridgeTopic topic;
        r.string("pattern", topic.pattern, false);
        r.choice<std::string>("direction", {{"out", "out"}, {"in", "in"}, {"both", "both"}}, topic.direction);
        r.integer("qos", 0, 2, topic.qos);
        r.string("local_prefix", topic.local_prefix, true);
        r.string("remote_prefix", topic.remote_prefix, true);
        r.reject_unknown();
        std::string_view group, inner;
        bool shared_ok = true;
        if (topic.pattern.empty()) errors.add(t.source(), r.path("pattern"), "required");
        else if (mqtt::parse_shared(topic.pattern, group, inner, shared_ok))
            // No message matches it by name (an inbound one would be dropped
            // as not the rule's), and a local shared subscription cannot
            // have No Local (the bridge's session would be refused for ever).
            errors.add(t.source(), r.path("pattern"),
                       "\"" + topic.pattern + "\": a shared subscription cannot be a bridge rule");
        else if (!mqtt::valid_topic_filter(topic.pattern))
            errors.add(t.source(), r.path("pattern"), "\"" + topic.pattern + "\" is not a valid topic filter");
        // Prefixes are glued to topics as they are: a wildcard in one would
        // make every rewritten topic invalid.
        for (const std::string* p : {&topic.local_prefix, &topic.remote_prefix})
            if (p->find_first_of("+#") != std::string::npos)
                errors.add(t.source(), r.path(p == &topic.local_prefix ? "local_prefix" : "remote_prefix"),
                           "must not contain + or #");
        // "both" with one prefix empty would carry a message back over the
        // bridge under another name, for ever: refused. (Two different
        // prefixes: a warning, see warn_about_rules.)
        if (topic.direction == "both" && topic.local_prefix != topic.remote_prefix &&
            (topic.local_prefix.empty() || topic.remote_prefix.empty()))
            errors.add(t.source(), r.path("direction"),
                       "\"both\" with only one of local_prefix / remote_prefix set would loop messages");
        b.topics.push_back(std::move(topic));
    }
}

// tls = { ca, cert, key, server_name, insecure } of a bridge (client side).
void read_bridge_tls(Errors& errors, const toml::node& n, const std::string& where, BridgeTls& tls) {
    if (!n.is_table()) {
        errors.add(n.source(), where, "expected table, got " + type_name(n));
        return;
    }
    TableReader r(errors, *n.as_table(), where);
    tls.enabled = true;
    r.string("ca", tls.ca, true);
    r.string("cert", tls.cert, true);
    r.string("key", tls.key, true);
    r.string("server_name", tls.server_name, true);
    r.boolean("insecure", tls.insecure);
    r.reject_unknown();
    if (tls.cert.empty() != tls.key.empty())
        errors.add(n.source(), where + (tls.cert.empty() ? ".cert" : ".key"), "cert and key go together");
}

void read_bridges(Errors& errors, const toml::node& n, AppConfig& c) {
    const toml::array* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        errors.add(n.source(), "bridge", "expected array of tables ([[bridge]]), got " + type_name(n));
        return;
    }
    constexpr int64_t u32 = std::numeric_limits<uint32_t>::max();
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        TableReader r(errors, t, "bridge[" + std::to_string(i) + "]");
        Bridge b;
        r.string("name", b.name, false);
        r.string("address", b.address, false);
        r.integer("port", 1, 65535, b.port);
        r.choice<std::string>("protocol", {{"mqttv311", "mqttv311"}, {"mqttv5", "mqttv5"}}, b.protocol);
        r.string("client_id", b.client_id, false);
        r.string("username", b.username, false);
        r.string("password_file", b.password_file, false);
        r.integer("keep_alive", 0, 65535, b.keep_alive);
        r.boolean("clean_start", b.clean_start);
        r.integer("session_expiry", 0, u32, b.session_expiry);
        r.integer("reconnect_min_ms", 1, u32, b.reconnect_min_ms);
        r.integer("reconnect_max_ms", 1, u32, b.reconnect_max_ms);
        r.boolean("try_private", b.try_private);
        r.integer("inflight", 1, 65535, b.inflight);
        r.integer("max_packet_size", 0, u32, b.max_packet_size);
        r.integer("max_queued_bytes", 0, std::numeric_limits<int64_t>::max(), b.max_queued_bytes);
        r.choice<std::string>("when_full", {{"drop_oldest", "drop_oldest"}, {"drop_new", "drop_new"}}, b.when_full);
        r.boolean("queue_qos0", b.queue_qos0);
        r.boolean("notifications", b.notifications);
        if (const toml::node* tls = r.lookup("tls")) read_bridge_tls(errors, *tls, r.path("tls"), b.tls);
        if (const toml::node* topics = r.lookup("topic")) read_bridge_topics(errors, *topics, r.path("topic"), b);
        r.reject_unknown();
        if (b.name.empty()) errors.add(t.source(), r.path("name"), "required");
        else if (b.name.find_first_of("/+#") != std::string::npos)
            errors.add(t.source(), r.path("name"), "must not contain / + or #");
        if (b.address.empty()) errors.add(t.source(), r.path("address"), "required");
        if (b.topics.empty()) errors.add(t.source(), r.path("topic"), "at least one [[bridge.topic]] is required");
        if (b.reconnect_max_ms < b.reconnect_min_ms)
            errors.add(t.source(), r.path("reconnect_max_ms"), "must not be below reconnect_min_ms");
        for (const Bridge& other : c.bridges)
            if (!b.name.empty() && other.name == b.name)
                errors.add(t.source(), r.path("name"), "\"" + b.name + "\" is already used by another bridge");
        // The bridge's outbound queue is its local session's queue.
        c.broker.session_budgets.push_back(
            {std::string(broker::Config::kBridgeClientIdPrefix) + b.name, b.max_queued_bytes, b.when_full == "drop_oldest", b.queue_qos0});
        c.bridges.push_back(std::move(b));
    }
}

// [[modbus]] devices with their [[modbus.point]]s.
void read_modbus_points(Errors& errors, const toml::node& n, const std::string& where, ModbusDevice& d) {
    const toml::array* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        errors.add(n.source(), where, "expected array of tables ([[modbus.point]]), got " + type_name(n));
        return;
    }
    using modbus::Kind;
    using modbus::Type;
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        TableReader r(errors, t, where + "[" + std::to_string(i) + "]");
        ModbusPoint p;
        r.string("name", p.name, false);
        const toml::node* kind = r.lookup("kind");
        r.choice<Kind>("kind", {{"holding", Kind::Holding}, {"input", Kind::Input}, {"coil", Kind::Coil},
                                {"discrete", Kind::Discrete}},
                       p.kind);
        const toml::node* address = r.lookup("address");
        r.integer("address", 0, 65535, p.address);
        const bool bits = modbus::is_bit_kind(p.kind);
        p.format.type = bits ? Type::Bool : Type::U16;
        const toml::node* type = r.lookup("type");
        r.choice<Type>("type", {{"bool", Type::Bool}, {"u16", Type::U16}, {"i16", Type::I16}, {"u32", Type::U32},
                                {"i32", Type::I32}, {"u64", Type::U64}, {"i64", Type::I64}, {"f32", Type::F32},
                                {"f64", Type::F64}, {"string", Type::String}},
                       p.format.type);
        const toml::node* count = r.lookup("count");
        r.integer("count", 1, modbus::kMaxReadRegisters, p.format.count);
        r.choice<bool>("word_order", {{"big", true}, {"little", false}}, p.format.word_big);
        r.choice<bool>("byte_order", {{"big", true}, {"little", false}}, p.format.byte_big);
        const toml::node* scale = r.lookup("scale");
        r.number("scale", p.format.scale);
        r.number("offset", p.format.offset);
        r.choice<bool>("publish", {{"on_change", false}, {"every_poll", true}}, p.every_poll);
        const toml::node* deadband = r.lookup("deadband");
        r.number("deadband", p.deadband);
        r.integer("qos", 0, 2, p.qos);
        r.boolean("retain", p.retain);
        const toml::node* writable = r.lookup("writable");
        r.boolean("writable", p.writable);
        r.choice<bool>("payload", {{"json", false}, {"raw", true}}, p.raw);
        r.reject_unknown();

        if (p.name.empty()) errors.add(t.source(), r.path("name"), "required");
        else if (p.name.find_first_of("+#") != std::string::npos)
            errors.add(t.source(), r.path("name"), "must not contain + or #");
        if (!kind) errors.add(t.source(), r.path("kind"), "required");
        if (!address) errors.add(t.source(), r.path("address"), "required");
        if (bits && p.format.type != Type::Bool)
            errors.add(type ? type->source() : t.source(), r.path("type"), "coil and discrete points are \"bool\"");
        if (p.format.type == Type::String && !count)
            errors.add(type ? type->source() : t.source(), r.path("count"),
                       "a \"string\" needs count (its registers)");
        if (p.format.type != Type::String && count)
            errors.add(count->source(), r.path("count"), "only for type = \"string\"");
        if (scale && !std::isfinite(p.format.scale))
            errors.add(scale->source(), r.path("scale"), "must be a finite number");
        else if (scale && p.format.scale == 0.0) errors.add(scale->source(), r.path("scale"), "must not be 0");
        if (!std::isfinite(p.format.offset))
            errors.add(r.lookup("offset")->source(), r.path("offset"), "must be a finite number");
        if (deadband && !(p.deadband >= 0))   // NaN too
            errors.add(deadband->source(), r.path("deadband"), "must not be negative");
        // One write (function 16) carries at most 123 registers.
        if (p.writable && p.format.type == Type::String && p.format.count > modbus::kMaxWriteRegisters)
            errors.add(count->source(), r.path("count"),
                       "a writable \"string\" has at most " + std::to_string(modbus::kMaxWriteRegisters) +
                           " registers (one Modbus write)");
        if (p.writable && (p.kind == Kind::Input || p.kind == Kind::Discrete))
            errors.add(writable->source(), r.path("writable"),
                       std::string("a") + (p.kind == Kind::Input ? "n input register" : " discrete input") +
                           " is read-only: only holding and coil points are writable");
        const uint32_t w = modbus::width(p.kind, p.format);
        const toml::source_region& at = address ? address->source() : t.source();
        if (w > 0 && uint32_t(p.address) + w > 65536)
            errors.add(at, r.path("address"),
                       std::to_string(p.address) + " + " + std::to_string(w) + " registers ends past 65535");
        // Two points on the same register or bit would publish it twice
        // and a write to one would change the other.
        for (const ModbusPoint& o : d.points) {
            if (!p.name.empty() && o.name == p.name)
                errors.add(t.source(), r.path("name"), "\"" + p.name + "\" is already used in this device");
            const uint32_t ow = modbus::width(o.kind, o.format);
            if (o.kind != p.kind || w == 0 || ow == 0) continue;
            if (p.address < uint32_t(o.address) + ow && o.address < uint32_t(p.address) + w)
                errors.add(at, r.path("address"),
                           "overlaps point \"" + o.name + "\" (address " + std::to_string(o.address) + ", " +
                               std::to_string(ow) + (modbus::is_bit_kind(o.kind) ? " bit)" : " register(s))"));
        }
        d.points.push_back(std::move(p));
    }
}

// Every topic a device publishes or takes writes on.
std::vector<std::string> modbus_topics(const ModbusDevice& d) {
    std::vector<std::string> out{d.status_topic};
    for (const ModbusPoint& p : d.points) {
        const std::string topic = d.topic_prefix + "/" + p.name;
        out.push_back(topic);
        out.push_back(topic + "/set");
        out.push_back(topic + "/set/result");
    }
    return out;
}

void read_modbus(Errors& errors, const toml::node& n, AppConfig& c) {
    const toml::array* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        errors.add(n.source(), "modbus", "expected array of tables ([[modbus]]), got " + type_name(n));
        return;
    }
    constexpr int64_t u32 = std::numeric_limits<uint32_t>::max();
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        TableReader r(errors, t, "modbus[" + std::to_string(i) + "]");
        ModbusDevice d;
        r.string("name", d.name, false);
        r.choice<std::string>("transport", {{"tcp", "tcp"}, {"rtu", "rtu"}}, d.transport);
        const bool tcp = d.transport == "tcp";
        // Keys of the other transport are a mistake, not something to ignore.
        auto only = [&](const char* key, bool ok) {
            const toml::node* k = r.lookup(key);
            if (k && !ok)
                errors.add(k->source(), r.path(key),
                           std::string("only for transport = \"") + (tcp ? "rtu" : "tcp") + "\"");
            return k != nullptr && ok;
        };
        if (only("host", tcp)) r.string("host", d.host, false);
        if (only("port", tcp)) r.integer("port", 1, 65535, d.port);
        if (only("serial", !tcp)) r.string("serial", d.serial, false);
        if (only("baud", !tcp)) {
            const toml::node* b = r.lookup("baud");
            r.integer("baud", 1, u32, d.baud);
            static constexpr uint32_t rates[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400};
            if (b->is_integer() && std::find(std::begin(rates), std::end(rates), d.baud) == std::end(rates))
                errors.add(b->source(), r.path("baud"),
                           "not a supported rate (1200 2400 4800 9600 19200 38400 57600 115200 230400)");
        }
        if (only("parity", !tcp)) r.choice<char>("parity", {{"N", 'N'}, {"E", 'E'}, {"O", 'O'}}, d.parity);
        if (only("data_bits", !tcp)) r.integer("data_bits", 7, 8, d.data_bits);
        if (only("stop_bits", !tcp)) r.integer("stop_bits", 1, 2, d.stop_bits);
        r.integer("unit_id", 0, 255, d.unit_id);
        r.integer("poll_interval_ms", 10, u32, d.poll_interval_ms);
        r.integer("timeout_ms", 1, 600000, d.timeout_ms);
        r.integer("reconnect_max_ms", 100, u32, d.reconnect_max_ms);
        r.integer("max_gap", 0, modbus::kMaxReadRegisters, d.max_gap);
        r.string("topic_prefix", d.topic_prefix, false);
        r.string("status_topic", d.status_topic, false);
        const toml::node* points = r.lookup("point");
        if (points) read_modbus_points(errors, *points, r.path("point"), d);
        r.reject_unknown();

        if (d.name.empty()) errors.add(t.source(), r.path("name"), "required");
        else if (d.name.find_first_of("/+#") != std::string::npos)
            errors.add(t.source(), r.path("name"), "must not contain / + or #");
        for (const ModbusDevice& o : c.modbus)
            if (!d.name.empty() && o.name == d.name)
                errors.add(t.source(), r.path("name"), "\"" + d.name + "\" is already used by another device");
        if (tcp && d.host.empty()) errors.add(t.source(), r.path("host"), "required for transport = \"tcp\"");
        if (!tcp && d.serial.empty()) errors.add(t.source(), r.path("serial"), "required for transport = \"rtu\"");
        // 0 is the broadcast address on a serial line: nothing ever answers it.
        if (!tcp && (d.unit_id == 0 || d.unit_id > 247))
            errors.add(t.source(), r.path("unit_id"), "RTU unit ids are 1..247 (0 is broadcast, never answered)");
        if (!tcp && d.data_bits != 8)
            errors.add(t.source(), r.path("data_bits"), "Modbus RTU frames have 8 data bits (7 is Modbus ASCII)");
        // Devices on one RS-485 line share its port (one request on the line
        // at a time): one speed and framing, and a unit id each.
        for (const ModbusDevice& o : c.modbus) {
            if (tcp || o.transport != "rtu" || o.serial != d.serial) continue;
            if (o.baud != d.baud || o.parity != d.parity || o.data_bits != d.data_bits || o.stop_bits != d.stop_bits)
                errors.add(t.source(), r.path("serial"),
                           "device \"" + o.name + "\" uses " + d.serial +
                               " with another baud, parity, data_bits or stop_bits: devices on one line share them");
            else if (o.unit_id == d.unit_id)
                errors.add(t.source(), r.path("unit_id"),
                           "device \"" + o.name + "\" on " + d.serial + " has unit_id " +
                               std::to_string(d.unit_id) + " too");
            else
                continue;
            break;   // one line per device is enough
        }
        if (!points) errors.add(t.source(), r.path("point"), "at least one [[modbus.point]] is required");
        if (d.topic_prefix.empty()) d.topic_prefix = "modbus/" + d.name;
        if (d.status_topic.empty()) d.status_topic = d.topic_prefix + "/$status";
        for (const char* key : {"topic_prefix", "status_topic"}) {
            const std::string& v = std::string_view(key) == "topic_prefix" ? d.topic_prefix : d.status_topic;
            if (v.find_first_of("+#") != std::string::npos)
                errors.add(t.source(), r.path(key), "must not contain + or #");
        }
        // Two devices on one topic would mix their values, and a /set meant
        // for one would write the other's register.
        const std::vector<std::string> mine = modbus_topics(d);
        for (const ModbusDevice& o : c.modbus) {
            const std::vector<std::string> theirs = modbus_topics(o);
            const auto clash = std::find_first_of(mine.begin(), mine.end(), theirs.begin(), theirs.end());
            if (clash == mine.end()) continue;
            errors.add(t.source(), r.path(*clash == d.status_topic ? "status_topic" : "topic_prefix"),
                       "topic \"" + *clash + "\" is device \"" + o.name + "\"'s too: give each device its own "
                       "topic_prefix and status_topic");
            break;
        }
        c.modbus.push_back(std::move(d));
    }
}

void read_root(Errors& errors, const toml::table& root, AppConfig& c) {
    TableReader r(errors, root, "");
    if (const toml::table* t = sub_table(r, errors, "broker")) read_broker(errors, *t, c);
    if (const toml::node* n = r.lookup("listener")) read_listeners(errors, *n, c);
    if (const toml::table* t = sub_table(r, errors, "limits")) read_limits(errors, *t, c.broker);
    if (const toml::table* t = sub_table(r, errors, "mqtt")) read_mqtt(errors, *t, c.broker);
    if (const toml::table* t = sub_table(r, errors, "storage")) read_storage(errors, *t, c);
    if (const toml::table* t = sub_table(r, errors, "log")) read_log(errors, *t, c);
    if (const toml::table* t = sub_table(r, errors, "auth")) read_auth(errors, *t, c);
    if (const toml::table* t = sub_table(r, errors, "metrics")) read_metrics(errors, *t, c);
    if (const toml::table* t = sub_table(r, errors, "sys")) read_sys(errors, *t, c);
    if (const toml::node* n = r.lookup("bridge")) read_bridges(errors, *n, c);
    if (const toml::node* n = r.lookup("modbus")) read_modbus(errors, *n, c);
    if (const toml::table* t = sub_table(r, errors, "sparkplug")) read_sparkplug(errors, *t, c.broker);
    r.reject_unknown();
    check_record_fits(errors, root, c);
}

}  // namespace

bool packets_fit_segments(const AppConfig& c) {
    return !c.storage_enabled ||
           uint64_t(c.broker.max_packet_size) + broker::kMaxRecordOverhead <= c.storage.segment_bytes;
}

bool is_loopback_address(const std::string& address) {
    // 127.0.0.0/8 written as a dotted quad, the IPv6 loopback, or the name.
    return address.rfind("127.", 0) == 0 || address == "::1" || address == "localhost";
}

bool anonymous_allowed(const AppConfig& cfg, size_t index) {
    if (index < cfg.listeners.size() && cfg.listeners[index].allow_anonymous)
        return *cfg.listeners[index].allow_anonymous;
    if (cfg.auth.allow_anonymous) return *cfg.auth.allow_anonymous;
    return index < cfg.listeners.size() && is_loopback_address(cfg.listeners[index].address);
}

bool load_string(const std::string& text, const std::string& name, AppConfig& out,
                 std::vector<std::string>& errors) {
    Errors collected(name);
    // Parse into a copy so a failed load leaves `out` as it was.
    AppConfig parsed = out;
    try {
        toml::table root = toml::parse(text, name);
        read_root(collected, root, parsed);
    } catch (const toml::parse_error& e) {
        // Syntax errors stop the parser, so there is at most one of these.
        const auto& begin = e.source().begin;
        std::ostringstream s;
        s << name << ':' << begin.line << ':' << begin.column << ": syntax: " << e.description();
        collected.add_raw(begin.line, begin.column, s.str());
    }
    if (!collected.empty()) {
        collected.flush_into(errors);
        return false;
    }
    out = std::move(parsed);
    return true;
}

bool load_file(const std::string& path, AppConfig& out, std::vector<std::string>& errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors.push_back(path + ": cannot open: " + std::strerror(errno));
        return false;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        errors.push_back(path + ": read error: " + std::strerror(errno));
        return false;
    }
    return load_string(text.str(), path, out, errors);
}

}  // namespace hato::config
