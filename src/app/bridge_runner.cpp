#include "app/bridge_runner.hpp"

#include <netdb.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "app/log.hpp"
#include "bridge/backoff.hpp"
#include "bridge/link.hpp"
#include "mqtt/codec.hpp"
#include "net/tls.hpp"

namespace hato::app {

namespace {

constexpr int kConnectTimeoutS = 10;
constexpr int kMaxFlushRounds = 8;
// A connection resets the reconnect backoff only once it has stayed up this
// long: an upstream that takes the session and drops it at once (overloaded,
// or another gateway using the same client id) would otherwise be hit at
// reconnect_min_ms for ever.
constexpr uint64_t kStableLinkMs = 30000;

bridge::Direction direction_of(const std::string& d) {
    if (d == "in") return bridge::Direction::In;
    if (d == "both") return bridge::Direction::Both;
    return bridge::Direction::Out;
}

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "hato";
    return buf;
}

// TCP lets a connect to a local port nobody listens on meet itself when the
// kernel picks that same port as the source (simultaneous open): the bridge
// would then talk MQTT to its own CONNECT until the set-up timeout.
bool connected_to_itself(int fd) {
    sockaddr_storage self{}, peer{};
    socklen_t self_len = sizeof self, peer_len = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
        return false;
    return self_len == peer_len && std::memcmp(&self, &peer, self_len) == 0;
}

// Name resolution and a blocking connect (bounded by SO_SNDTIMEO), on a
// helper thread. Returns the fd, or -1 with `why`.
int connect_blocking(const std::string& host, uint16_t port, std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
        why = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    why = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = std::strerror(errno);
            continue;
        }
        timeval tv{kConnectTimeoutS, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            if (!connected_to_itself(fd)) break;
            why = "the connection reached itself (nothing listens on that local port)";
            ::close(fd);
            fd = -1;
            continue;
        }
        why = std::strerror(errno);
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        timeval none{0, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    }
    return fd;
}

}  // namespace

struct BridgeRunner::Entry final : bridge::LinkOutput {
    Entry(const config::Bridge& c, bridge::LinkConfig lc, net::Reactor& r, uint64_t seed)
        : cfg(c), link(std::move(lc), *this), backoff(c.reconnect_min_ms, c.reconnect_max_ms, seed), reactor(r) {}

    const config::Bridge cfg;
    bridge::Link link;
    bridge::Backoff backoff;
    net::Reactor& reactor;
    broker::Broker* broker = nullptr;
    BridgeRunner* runner = nullptr;

    net::ConnId up = 0;                 // upstream connection, 0: none
    uint64_t local = 0;                 // virtual local connection, 0: none
    std::vector<uint8_t> local_out;     // broker output not yet handed to the link
    bool local_close_requested = false; // the broker closed the local connection
    bool was_ready = false;             // the link reached Ready on this connection
    uint64_t ready_since_ms = 0;        // when it did (kStableLinkMs)
    bool retired = false;               // removed by a reload; erased once its threads and sockets are gone
    uint64_t next_attempt_ms = 0;
    uint64_t reload_attempt_ms = 0;   // a reload last brought an attempt forward (reload_passwords)

    // The connect in progress on a helper thread.
    std::thread worker;
    bool connecting = false;
    std::atomic<bool> connect_done{false};
    int connect_fd = -1;
    std::string connect_why;

    // TLS to the upstream: the context is built once at start, a session
    // per connection. The link speaks plaintext; the bytes are transformed here.
    std::shared_ptr<net::TlsContext> tls_ctx;
    std::unique_ptr<net::TlsConn> tls;
    std::string tls_error;   // why the last TLS session failed, for the log

    void note_ready() {
        if (!link.ready() || was_ready) return;
        was_ready = true;
        ready_since_ms = reactor.now_ms();
    }

    void send_tls_output() {
        std::vector<uint8_t>& out = tls->output();
        if (out.empty()) return;
        reactor.send(up, out);
        out.clear();
    }
    void tls_failed() {
        tls_error = "TLS: " + tls->error();
        send_tls_output();   // the alert, if any
        reactor.close(up, true);
    }
    void upstream_send(std::span<const uint8_t> bytes) override {
        if (!up) return;
        if (!tls) return reactor.send(up, bytes);
        if (tls->write(bytes) == net::TlsConn::Status::Failed) return tls_failed();
        send_tls_output();
    }
    void upstream_close() override {
        if (!up) return;
        if (tls) {
            tls->shutdown();
            send_tls_output();
        }
        reactor.close(up, true);
    }
    void local_open() override {
        local = kLocalBit | ++runner->next_local_;
        local_out.clear();
        local_close_requested = false;
        broker->on_open(local, 0, "bridge:" + cfg.name);
    }
    void local_send(std::span<const uint8_t> bytes) override {
        if (local) broker->on_data(local, bytes);
    }
    void local_close() override {
        if (!local) return;
        uint64_t id = local;
        local = 0;
        local_out.clear();
        broker->on_close(id);
    }
    std::vector<std::string> local_filters() override {
        return broker->session_filters(bridge::Link::local_client_id(cfg.name));
    }
    // Kept as a retained message in the log, one filter a line: durable
    // like the bridge's queue, and in the same store.
    std::vector<std::string> upstream_filters() override {
        std::vector<std::string> out;
        const std::string text = broker->retained_payload(bridge::Link::upstream_filters_topic(cfg.name));
        size_t start = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            if (end > start) out.push_back(text.substr(start, end - start));
            start = end + 1;
        }
        return out;
    }
    void remember_upstream_filters(const std::vector<std::string>& filters) override {
        std::string text;
        for (const std::string& f : filters) text += f + '\n';
        // An empty retained payload removes the message: nothing is remembered.
        broker->keep_retained(bridge::Link::upstream_filters_topic(cfg.name),
                              {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    }
    void upstream_session_new(std::span<const uint16_t> answered_here) override {
        const size_t n = broker->resend_released_qos2(bridge::Link::local_client_id(cfg.name), answered_here);
        if (n != 0)
            log_warn("bridge %s: the upstream has no session for us: %zu QoS 2 message(s) it had not completed "
                     "are sent again (a duplicate there is possible, a loss is not)",
                     cfg.name.c_str(), n);
    }
    void log(int level, const std::string& text) override {
        if (level == 0) log_info("%s", text.c_str());
        else log_warn("%s", text.c_str());
    }
};

namespace {

net::TlsClientSettings tls_settings(const config::BridgeTls& t) {
    net::TlsClientSettings s;
    s.ca = t.ca;
    s.cert = t.cert;
    s.key = t.key;
    s.insecure = t.insecure;
    return s;
}

// The client context of a bridge with `tls` (null without); false and `err`
// when its files do not load.
bool client_context(const config::Bridge& c, std::shared_ptr<net::TlsContext>& ctx, std::string& err) {
    if (!c.tls.enabled) return true;
    std::string why;
    ctx = net::TlsContext::create_client(tls_settings(c.tls), why);
    if (ctx) return true;
    if (!err.empty()) err += "; ";
    err += "bridge " + c.name + ": tls: " + why;
    return false;
}

void warn_insecure(const config::Bridge& c) {
    if (c.tls.enabled && c.tls.insecure)
        log_warn("bridge %s: tls.insecure = true: the upstream's certificate is not verified", c.name.c_str());
}

// A bridge gone from the configuration leaves its in rules subscribed in
// its persistent upstream session, and nothing connects to unsubscribe
// them: its remembered filters say so.
void warn_upstream_filters(const broker::Broker& broker, const std::vector<std::string>& configured) {
    const std::string_view prefix = broker::Config::kBridgeClientIdPrefix, suffix = "/upstream_filters";
    for (const auto& [topic, payload] : broker.retained_matching("$bridge/+/upstream_filters")) {
        const std::string name = topic.substr(prefix.size(), topic.size() - prefix.size() - suffix.size());
        if (std::find(configured.begin(), configured.end(), name) != configured.end()) continue;
        size_t filters = 0;
        for (size_t start = 0; start < payload.size();) {
            size_t end = payload.find('\n', start);
            if (end == std::string::npos) end = payload.size();
            if (end > start) ++filters;
            start = end + 1;
        }
        if (filters == 0) continue;
        log_warn("bridge %s is not configured but %zu filter(s) of its in rules may remain subscribed in its "
                 "upstream session: to clear them, configure it once with clean_start = true, or with no in "
                 "rules so it unsubscribes them",
                 name.c_str(), filters);
    }
}

}  // namespace

BridgeRunner::BridgeRunner(const std::vector<config::Bridge>& cfgs, net::Reactor& reactor)
    : reactor_(reactor), host_(host_name()) {
    seed_ = uint64_t(getpid()) * 0x9E3779B97F4A7C15ull ^ reactor.now_ms();
    for (const config::Bridge& c : cfgs) add_entry(c);
}

BridgeRunner::Entry& BridgeRunner::add_entry(const config::Bridge& c) {
    bridge::LinkConfig lc;
    lc.name = c.name;
    lc.version = c.protocol == "mqttv5" ? mqtt::Version::V5 : mqtt::Version::V311;
    lc.client_id = c.client_id.empty() ? c.name + "." + host_ : c.client_id;
    if (!c.username.empty()) lc.username = c.username;
    lc.keep_alive = c.keep_alive;
    lc.clean_start = c.clean_start;
    lc.session_expiry = c.session_expiry;
    lc.try_private = c.try_private;
    lc.inflight = c.inflight != 0 ? c.inflight : lc.version == mqtt::Version::V5 ? 100 : 20;
    lc.max_packet_size = c.max_packet_size;
    lc.notifications = c.notifications;
    for (const config::BridgeTopic& t : c.topics)
        lc.topics.push_back({t.pattern, direction_of(t.direction), t.qos, t.local_prefix, t.remote_prefix});
    entries_.push_back(std::make_unique<Entry>(c, std::move(lc), reactor_, seed_++));
    entries_.back()->runner = this;
    entries_.back()->broker = broker_;
    return *entries_.back();
}

BridgeRunner::~BridgeRunner() {
    for (auto& e : entries_) {
        if (e->worker.joinable()) e->worker.join();
        if (e->connect_fd >= 0) ::close(e->connect_fd);
    }
    if (event_fd_ >= 0) ::close(event_fd_);
}

bool BridgeRunner::read_password(const config::Bridge& c, std::string& out, std::string& err) {
    std::ifstream in(c.password_file, std::ios::binary);
    if (!in) {
        if (!err.empty()) err += "; ";
        err += "bridge " + c.name + ": password_file " + c.password_file + ": " + std::strerror(errno);
        return false;
    }
    std::ostringstream s;
    s << in.rdbuf();
    out = s.str();
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return true;
}

bool BridgeRunner::load_passwords(std::string& err) {
    bool ok = true;
    for (auto& e : entries_) {
        if (e->cfg.password_file.empty() || e->retired) continue;
        std::string pw;
        if (!read_password(e->cfg, pw, err)) {
            ok = false;
            continue;   // the previous password stays
        }
        e->link.set_password(std::move(pw));
    }
    return ok;
}

bool BridgeRunner::empty() const {
    for (const auto& e : entries_)
        if (!e->retired) return false;
    return true;
}

bool BridgeRunner::ensure_event_fd(std::string& err) {
    if (event_fd_ >= 0) return true;
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) {
        err = std::string("bridge: eventfd: ") + std::strerror(errno);
        return false;
    }
    reactor_.watch_readable(event_fd_, [this] { collect(); });
    return true;
}

void BridgeRunner::settle_unconfigured(broker::Broker& broker, const std::vector<config::Bridge>& cfgs) {
    std::vector<std::string> names;
    for (const config::Bridge& c : cfgs) names.push_back(c.name);
    const std::string_view prefix = broker::Config::kBridgeClientIdPrefix;
    for (const std::string& id : broker.session_ids_with_prefix(prefix)) {
        const std::string name = id.substr(prefix.size());
        if (std::find(names.begin(), names.end(), name) != names.end()) continue;
        if (const size_t removed = broker.remove_session_subscriptions(id))
            log_info("bridge %s is not configured: its %zu local subscription(s) are removed, so nothing more is "
                     "queued for it; its %zu queued message(s) stay in the store and are sent if it is "
                     "configured again",
                     name.c_str(), removed, size_t(broker.session_queue(id).messages));
    }
    warn_upstream_filters(broker, names);
}

void BridgeRunner::retire(Entry& e) {
    e.retired = true;
    if (e.up) reactor_.close(e.up, true);   // on_upstream_close clears `up`
    if (e.local) {
        uint64_t id = e.local;
        e.local = 0;
        e.local_out.clear();
        broker_->on_close(id);   // the persistent session keeps its queue
    }
}

bool BridgeRunner::reconfigure(const std::vector<config::Bridge>& cfgs, std::string& err) {
    auto live = [this](const std::string& name) -> Entry* {
        for (auto& e : entries_)
            if (!e->retired && e->cfg.name == name) return e.get();
        return nullptr;
    };
    // Every new password and TLS context first: a bad one changes nothing.
    std::vector<std::string> passwords(cfgs.size());
    std::vector<std::shared_ptr<net::TlsContext>> contexts(cfgs.size());
    bool ok = true;
    for (size_t i = 0; i < cfgs.size(); ++i) {
        Entry* e = live(cfgs[i].name);
        if (e && e->cfg == cfgs[i]) continue;
        if (!cfgs[i].password_file.empty()) ok &= read_password(cfgs[i], passwords[i], err);
        ok &= client_context(cfgs[i], contexts[i], err);
    }
    if (!ok || !ensure_event_fd(err)) return false;
    for (auto& ep : entries_) {
        Entry& e = *ep;
        if (e.retired) continue;
        auto it = std::find_if(cfgs.begin(), cfgs.end(), [&](const config::Bridge& c) { return c.name == e.cfg.name; });
        if (it != cfgs.end() && *it == e.cfg) continue;
        log_info("bridge %s: %s", e.cfg.name.c_str(),
                 it == cfgs.end() ? "removed by the reload" : "changed by the reload, reconnecting");
        retire(e);
    }
    for (size_t i = 0; i < cfgs.size(); ++i) {
        if (live(cfgs[i].name)) continue;
        Entry& e = add_entry(cfgs[i]);
        if (!passwords[i].empty()) e.link.set_password(std::move(passwords[i]));
        e.tls_ctx = std::move(contexts[i]);
        warn_insecure(e.cfg);
        if (started_) e.link.prime();   // the local session first, as at start
    }
    flush();
    return true;
}

void BridgeRunner::reload_passwords() {
    std::string err;
    if (!load_passwords(err)) log_error("%s (the previous password stays in use)", err.c_str());
    // A reload is often the fix for why a bridge is down (a password, a
    // certificate): it tries again now, not after a backoff that a long
    // refusal has grown to reconnect_max_ms. The backoff keeps its count
    // (if that was not the fix, the next wait is as long as before), and
    // a storm of reloads brings an attempt forward once per reconnect_min_ms.
    const uint64_t now = reactor_.now_ms();
    for (auto& e : entries_) {
        if (e->retired || e->up || e->connecting || e->next_attempt_ms <= now) continue;
        if (e->reload_attempt_ms != 0 && now - e->reload_attempt_ms < e->cfg.reconnect_min_ms) continue;
        e->reload_attempt_ms = now;
        e->next_attempt_ms = now;
        log_info("bridge %s: reloaded, connecting again now", e->cfg.name.c_str());
    }
}

bool BridgeRunner::start(broker::Broker& broker, std::string& err) {
    broker_ = &broker;
    started_ = true;
    for (auto& e : entries_) e->broker = &broker;
    if (!load_passwords(err)) return false;
    for (auto& e : entries_) {
        if (!client_context(e->cfg, e->tls_ctx, err)) return false;
        warn_insecure(e->cfg);
    }
    if (entries_.empty()) return true;
    if (!ensure_event_fd(err)) return false;
    // The local sessions first: what is published before the first
    // upstream connection is queued. Connecting starts once they exist.
    for (auto& e : entries_) e->link.prime();
    flush();
    return true;
}

void BridgeRunner::attempt(Entry& e, uint64_t /*now*/) {
    if (stopping_ || e.connecting || e.up) return;
    e.connecting = true;
    e.connect_done = false;
    e.connect_fd = -1;
    const int efd = event_fd_;
    Entry* ep = &e;
    std::string host = e.cfg.address;
    uint16_t port = e.cfg.port;
    e.worker = std::thread([ep, efd, host, port] {
        std::string why;
        int fd = connect_blocking(host, port, why);
        ep->connect_fd = fd;
        ep->connect_why = std::move(why);
        ep->connect_done.store(true, std::memory_order_release);
        uint64_t one = 1;
        ssize_t n = write(efd, &one, sizeof one);
        (void)n;
    });
}

void BridgeRunner::collect() {
    uint64_t count;
    while (read(event_fd_, &count, sizeof count) == ssize_t(sizeof count)) {
    }
    const uint64_t now = reactor_.now_ms();
    for (auto& ep : entries_) {
        Entry& e = *ep;
        if (!e.connecting || !e.connect_done.load(std::memory_order_acquire)) continue;
        e.worker.join();
        e.connecting = false;
        int fd = e.connect_fd;
        e.connect_fd = -1;
        if (e.retired) {
            if (fd >= 0) ::close(fd);
            continue;
        }
        if (fd < 0) {
            schedule_retry(e, now, "connect to " + e.cfg.address + ":" + std::to_string(e.cfg.port) + " failed: " +
                                       e.connect_why);
            continue;
        }
        if (stopping_) {
            ::close(fd);
            continue;
        }
        e.up = reactor_.adopt(fd);
        if (!e.up) {
            ::close(fd);
            schedule_retry(e, now, "the event backend cannot take the connection");
            continue;
        }
        log_info("bridge %s: connected to %s:%u, starting %sMQTT session", e.cfg.name.c_str(), e.cfg.address.c_str(),
                 unsigned(e.cfg.port), e.tls_ctx ? "TLS and " : "");
        e.tls_error.clear();
        if (e.tls_ctx) {
            const std::string& sni = e.cfg.tls.server_name.empty() ? e.cfg.address : e.cfg.tls.server_name;
            e.tls = std::make_unique<net::TlsConn>(e.tls_ctx, sni);
            if (e.tls->start() == net::TlsConn::Status::Failed) {
                e.tls_failed();
                continue;
            }
            e.send_tls_output();
        }
        e.link.on_upstream_open(now);
    }
}

void BridgeRunner::schedule_retry(Entry& e, uint64_t now, const std::string& why) {
    if (stopping_) return;
    const uint64_t delay = e.backoff.next_delay_ms();
    e.next_attempt_ms = now + delay;
    log_warn("bridge %s: %s; retrying in %llu ms (attempt %u)", e.cfg.name.c_str(), why.c_str(),
             static_cast<unsigned long long>(delay), e.backoff.attempts());
}

bool BridgeRunner::owns_upstream(net::ConnId id) const {
    for (const auto& e : entries_)
        if (e->up == id) return true;
    return false;
}

void BridgeRunner::on_upstream_data(net::ConnId id, std::span<const uint8_t> bytes) {
    for (auto& e : entries_) {
        if (e->up != id) continue;
        if (e->retired) return;
        if (e->tls) {
            std::vector<uint8_t> plain;
            const bool ok = e->tls->on_ciphertext(bytes, plain) == net::TlsConn::Status::Ok;
            e->send_tls_output();
            if (!plain.empty()) e->link.on_upstream_data(plain, reactor_.now_ms());
            if (!ok && e->up == id) e->tls_failed();
        } else {
            e->link.on_upstream_data(bytes, reactor_.now_ms());
        }
        e->note_ready();
        return;
    }
}

void BridgeRunner::on_upstream_close(net::ConnId id, int error) {
    for (auto& e : entries_) {
        if (e->up != id) continue;
        e->up = 0;
        e->tls.reset();
        if (e->retired) return;
        std::string why = !e->tls_error.empty()         ? e->tls_error
                          : !e->link.last_error().empty() ? e->link.last_error()
                          : error                       ? std::string(std::strerror(error))
                                                        : std::string("upstream closed the connection");
        e->link.on_upstream_closed();
        if (e->was_ready && reactor_.now_ms() - e->ready_since_ms >= kStableLinkMs) e->backoff.reset();
        e->was_ready = false;
        schedule_retry(*e, reactor_.now_ms(), "disconnected (" + why + ")");
        return;
    }
}

void BridgeRunner::local_send(uint64_t id, std::span<const uint8_t> bytes) {
    for (auto& e : entries_)
        if (e->local == id) {
            e->local_out.insert(e->local_out.end(), bytes.begin(), bytes.end());
            return;
        }
}

size_t BridgeRunner::local_queued(uint64_t id) const {
    for (const auto& e : entries_)
        if (e->local == id) return e->local_out.size() + (e->up ? reactor_.queued_bytes(e->up) : 0);
    return 0;
}

void BridgeRunner::local_close(uint64_t id) {
    for (auto& e : entries_)
        if (e->local == id) e->local_close_requested = true;
}

void BridgeRunner::flush() {
    for (int round = 0; round < kMaxFlushRounds; ++round) {
        bool any = false;
        for (auto& ep : entries_) {
            Entry& e = *ep;
            if (e.retired) continue;
            if (!e.local_out.empty()) {
                any = true;
                std::vector<uint8_t> bytes;
                bytes.swap(e.local_out);
                e.link.on_local_data(bytes);
                e.note_ready();   // the local side's answers end the set-up
                if (e.local_out.empty()) {
                    bytes.clear();
                    e.local_out.swap(bytes);   // keeps the capacity
                }
            }
            if (e.local_close_requested && e.local_out.empty()) {
                e.local_close_requested = false;
                if (e.local) {
                    uint64_t id = e.local;
                    e.local = 0;
                    broker_->on_close(id);
                    e.link.on_local_closed();
                }
            }
        }
        if (!any) break;
    }
}

void BridgeRunner::on_tick(uint64_t now_ms) {
    flush();
    // A full budget is reported once per episode, with its count, at most
    // every 10 s while it lasts.
    const uint64_t dropped = broker_->stats().budget_dropped;
    const uint64_t room = broker_->stats().room_dropped;
    if ((dropped != dropped_reported_ || room != room_reported_) && now_ms - dropped_log_ms_ >= 10000) {
        // Which bridges lost them (both causes): with several, the one whose
        // data it was. Counted by name, as a bridge's count outlives a reload
        // that replaces its entry.
        std::string by_bridge;
        uint64_t named = 0;
        for (auto& e : entries_) {
            if (e->retired) continue;
            const uint64_t d = broker_->session_queue(bridge::Link::local_client_id(e->cfg.name)).dropped;
            uint64_t& last = bridge_dropped_reported_[e->cfg.name];
            if (d <= last) continue;
            by_bridge += (by_bridge.empty() ? "" : ", ") + e->cfg.name + " " + std::to_string(d - last);
            named += d - last;
            last = d;
        }
        const uint64_t total = (dropped - dropped_reported_) + (room - room_reported_);
        if (total > named)
            by_bridge += (by_bridge.empty() ? "" : ", ") + std::string("bridges no longer configured ") +
                         std::to_string(total - named);
        if (dropped != dropped_reported_)
            log_warn("bridge queues at max_queued_bytes: %llu message(s) dropped (when_full) since the last report",
                     static_cast<unsigned long long>(dropped - dropped_reported_));
        if (room != room_reported_)
            log_warn("store full: the oldest %llu bridge message(s) dropped to make room (when_full = "
                     "\"drop_oldest\") since the last report",
                     static_cast<unsigned long long>(room - room_reported_));
        log_warn("bridge messages dropped since the last report, by bridge: %s", by_bridge.c_str());
        dropped_reported_ = dropped;
        room_reported_ = room;
        dropped_log_ms_ = now_ms;
    }
    // Removed bridges go once their connect thread and socket are gone.
    std::erase_if(entries_, [](const std::unique_ptr<Entry>& e) { return e->retired && !e->up && !e->connecting; });
    for (auto& e : entries_) {
        if (e->retired) continue;
        e->link.on_tick(now_ms);
        if (stopping_ || e->up || e->connecting) continue;
        if (!e->link.primed()) {
            if (e->link.state() == bridge::Link::State::Down && !e->local) e->link.prime();
            continue;
        }
        if (now_ms >= e->next_attempt_ms) attempt(*e, now_ms);
    }
}

std::vector<BridgeStatus> BridgeRunner::status() const {
    std::vector<BridgeStatus> out;
    for (const auto& e : entries_) {
        if (e->retired) continue;
        BridgeStatus b;
        b.name = e->cfg.name;
        b.connected = e->link.ready();
        if (broker_) {
            const broker::Broker::QueueInfo q = broker_->session_queue(bridge::Link::local_client_id(e->cfg.name));
            b.backlog_messages = q.messages;
            b.backlog_bytes = q.bytes;
            b.oldest_age_s = double(q.oldest_age_ms) / 1000.0;
            b.backlog_dropped = q.dropped;
        }
        b.forwarded_out = e->link.forwarded_out();
        b.forwarded_in = e->link.forwarded_in();
        b.too_large_out = e->link.too_large_out();
        b.too_large_in = e->link.too_large_in();
        b.unmappable_out = e->link.unmappable_out();
        b.unmappable_in = e->link.unmappable_in();
        b.refused_out = e->link.refused_out();
        b.refused_in = e->link.refused_in();
        b.closes_on_same = e->link.closes_on_same_message();
        out.push_back(std::move(b));
    }
    return out;
}

void BridgeRunner::sys_topics(std::vector<broker::SysMessage>& out) const {
    for (const BridgeStatus& b : status()) {
        const std::string base = "$SYS/broker/hato/bridge/" + b.name + "/";
        out.push_back({base + "state", b.connected ? "1" : "0"});
        out.push_back({base + "backlog/messages", std::to_string(b.backlog_messages)});
        out.push_back({base + "backlog/bytes", std::to_string(b.backlog_bytes)});
        out.push_back({base + "backlog/oldest_age_s", std::to_string(uint64_t(b.oldest_age_s))});
    }
}

void BridgeRunner::stop() {
    stopping_ = true;
    for (auto& e : entries_)
        if (e->up) reactor_.close(e->up, true);
}

namespace {

// Rules that run but cannot do all they say: the bridge drops or changes
// such messages (counted), so the check says it before they flow.
void warn_about_rules(const config::Bridge& b, const broker::Config& local, std::vector<std::string>& warnings) {
    const std::string where = "bridge \"" + b.name + "\": ";
    for (const config::BridgeTopic& t : b.topics) {
        const bridge::Direction d = direction_of(t.direction);
        const bool in = d != bridge::Direction::Out, out = d != bridge::Direction::In;
        // The prefix a rule strips is a whole topic it matches: that topic maps to "".
        if (in && t.local_prefix.empty() && !t.remote_prefix.empty() && mqtt::topic_matches(t.pattern, t.remote_prefix))
            warnings.push_back(where + "rule '" + t.pattern + "': an upstream message on '" + t.remote_prefix +
                               "' maps to an empty local topic and is dropped (give it a local_prefix)");
        if (out && t.remote_prefix.empty() && !t.local_prefix.empty() && mqtt::topic_matches(t.pattern, t.local_prefix))
            warnings.push_back(where + "rule '" + t.pattern + "': a message on '" + t.local_prefix +
                               "' maps to an empty upstream topic and is dropped (give it a remote_prefix)");
        if (in && t.qos > local.maximum_qos)
            warnings.push_back(where + "rule '" + t.pattern + "' asks for QoS " + std::to_string(t.qos) +
                               ", more than [mqtt] maximum_qos = " + std::to_string(local.maximum_qos) +
                               ": its messages cross at QoS " + std::to_string(local.maximum_qos) +
                               (local.maximum_qos == 0 ? " (acknowledged upstream before they are durable here)" : ""));
        // One pattern is the local filter out and the upstream filter in:
        // with two prefixes it names only one side (a warning, not an error:
        // configurations that loaded before still load).
        if (in && out && t.local_prefix != t.remote_prefix && !t.local_prefix.empty() && !t.remote_prefix.empty())
            warnings.push_back(where + "rule '" + t.pattern + "' is \"both\" with two different prefixes: its in "
                               "direction subscribes upstream to '" + t.pattern + "' (not under '" + t.remote_prefix +
                               "'); use an \"out\" rule and an \"in\" rule, each with the pattern of its own side");
        // Without No Local (v5) or the bridge bit the upstream sends each
        // message this rule publishes there back, and it is published here again.
        if (in && out && b.protocol != "mqttv5" && !b.try_private)
            warnings.push_back(where + "rule '" + t.pattern + "' is \"both\" over v3.1.1 with try_private = false: "
                               "the upstream echoes every message it sends, and each arrives here twice (use "
                               "separate in and out rules with different topics or prefixes, or protocol = \"mqttv5\")");
    }
    // The same echo through an out rule and a separate in rule that
    // subscribes upstream to what the out rule sends.
    if (b.protocol != "mqttv5" && !b.try_private) {
        for (const config::BridgeTopic& o : b.topics) {
            if (direction_of(o.direction) != bridge::Direction::Out) continue;
            const std::string sent =
                bridge::remote_filter({o.pattern, bridge::Direction::Out, 0, o.local_prefix, o.remote_prefix});
            for (const config::BridgeTopic& i : b.topics)
                if (direction_of(i.direction) == bridge::Direction::In && mqtt::filters_overlap(sent, i.pattern))
                    warnings.push_back(where + "out rule '" + o.pattern + "' sends upstream to '" + sent +
                                       "', which in rule '" + i.pattern + "' subscribes to: over v3.1.1 with "
                                       "try_private = false the upstream echoes those messages, and each arrives "
                                       "here again (use topics or prefixes that do not meet, or protocol = \"mqttv5\")");
        }
    }
    if (!local.retain_available)
        warnings.push_back(where + "[mqtt] retain_available = false: upstream retained messages arrive here without "
                           "the retain flag, and $SYS/broker/connection/" + b.name + "/state is not retained");
}

}  // namespace

bool check_bridge_files(const config::AppConfig& cfg, std::vector<std::string>& errors,
                        std::vector<std::string>& warnings) {
    bool ok = true;
    uint64_t budgets = 0;
    for (const config::Bridge& b : cfg.bridges) {
        budgets += b.max_queued_bytes;
        // The same loaders the running bridges use, so the check says what a start would.
        std::shared_ptr<net::TlsContext> ctx;
        std::string why;
        if (!client_context(b, ctx, why)) {
            errors.push_back(why);
            ok = false;
        }
        warn_about_rules(b, cfg.broker, warnings);
        if (b.password_file.empty()) continue;
        std::string password;
        why.clear();
        if (!BridgeRunner::read_password(b, password, why)) {
            errors.push_back(why);
            ok = false;
        }
    }
    if (cfg.storage_enabled && cfg.storage.max_bytes != 0 && budgets > cfg.storage.max_bytes)
        warnings.push_back("the bridges' max_queued_bytes add up to " + std::to_string(budgets) +
                           " bytes, more than [storage] max_bytes (" + std::to_string(cfg.storage.max_bytes) +
                           "): the store fills before the bridge budgets do");
    // A backlog is held in memory as well as in the store (each message
    // with its bookkeeping: about twice its bytes at 1 KiB, more for small
    // ones): budgets that need more than the machine has end a long outage
    // with the broker out of memory, not at its budget.
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const uint64_t ram = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
    // (The store's own bound stops them first when it is lower.)
    const bool store_bound = cfg.storage_enabled && cfg.storage.max_bytes != 0;
    const uint64_t held = store_bound ? std::min<uint64_t>(budgets, cfg.storage.max_bytes) : budgets;
    if (ram != 0 && held / 2 > ram / 4)
        warnings.push_back("the bridges' max_queued_bytes add up to " + std::to_string(budgets) +
                           " bytes; a backlog is held in memory too, at about twice its bytes, and this machine "
                           "has " + std::to_string(ram) + " bytes of RAM: a long outage could run it out of memory "
                           "before the budgets fill (lower max_queued_bytes)");
    return ok;
}

std::optional<broker::AuthVerdict> BridgeAuthenticator::start(const broker::AuthRequest& req) {
    const bool claims = req.client_id.starts_with(broker::Config::kBridgeClientIdPrefix);
    if (BridgeRunner::is_local_id(req.conn))
        return broker::AuthVerdict{claims ? mqtt::rc::Success : mqtt::rc::NotAuthorized, claims};
    if (claims) return broker::AuthVerdict{mqtt::rc::NotAuthorized, false};
    return inner_.start(req);
}

namespace {
bool internal(const broker::ClientInfo& c) { return c.client_id.starts_with(broker::Config::kBridgeClientIdPrefix); }
}  // namespace

// "$bridge/..." topics (the bridges' own state) are kept to the bridges by the
// broker itself (Broker::Impl::may_publish_reserved), ACL or not.
bool BridgeAuthorizer::can_publish(const broker::ClientInfo& c, std::string_view topic) {
    return internal(c) || inner_.can_publish(c, topic);
}
bool BridgeAuthorizer::can_subscribe(const broker::ClientInfo& c, std::string_view filter) {
    return internal(c) || inner_.can_subscribe(c, filter);
}
bool BridgeAuthorizer::can_receive(const broker::ClientInfo& c, std::string_view topic) {
    return internal(c) || inner_.can_receive(c, topic);
}

}  // namespace hato::app
