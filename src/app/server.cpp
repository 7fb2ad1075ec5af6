#include "app/server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <sys/signalfd.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

#include "app/bridge_runner.hpp"
#include "app/group_commit.hpp"
#include "app/modbus_runner.hpp"
#include "app/listener_limits.hpp"
#include "app/log.hpp"
#include "app/metrics.hpp"
#include "app/notify.hpp"
#include "app/reload_plan.hpp"
#include "app/security.hpp"
#include "app/sys_publisher.hpp"
#include "app/tls_layer.hpp"
#include "app/ws_layer.hpp"
#include "auth/acl_authorizer.hpp"
#include "auth/authenticator.hpp"
#include "auth/hash_pool.hpp"
#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/log_persistence.hpp"
#include "broker/log_sink.hpp"
#include "broker/persistence.hpp"
#include "net/reactor.hpp"
#include "store/log.hpp"
#include "hato_build.h"

namespace hato::app {

namespace {

// Compaction work per tick, so an idle log shrinks back after a burst: at
// least this many records or bytes (dead records cost a header read, live
// ones a copy; a few MiB is about a millisecond). Under load each loop pass
// also compacts in proportion to what it appended (LogPersistence::maintenance).
constexpr size_t kCompactionBudget = 256;
constexpr uint64_t kIdleCompactionBytes = 4ull << 20;
// How long a graceful shutdown waits for clients to receive their DISCONNECT.
constexpr uint64_t kShutdownGraceMs = 2000;
constexpr uint32_t kDefaultTickMs = 100;

using unsigned_ll = unsigned long long;

// The broker's view of the network: the reactor, minus everything else.
// Connections of TLS listeners go through the TLS layer, which encrypts and
// hands the ciphertext to the reactor at once (so queued_bytes counts it).
// WebSocket connections go through the WebSocket layer first, which frames
// the bytes and hands them on to TLS or the reactor likewise.
class ReactorTransport final : public broker::Transport {
public:
    ReactorTransport(net::Reactor& reactor, TlsLayer& tls, WsLayer& ws) : reactor_(reactor), tls_(tls), ws_(ws) {}
    void send(broker::ConnId id, std::span<const uint8_t> bytes) override {
        if (BridgeRunner::is_local_id(id)) return bridges->local_send(id, bytes);
        if (ws_.owns(id)) ws_.send(id, bytes, false);
        else send_below_ws(id, bytes, false);
    }
    void send_low_priority(broker::ConnId id, std::span<const uint8_t> bytes) override {
        if (BridgeRunner::is_local_id(id)) return bridges->local_send(id, bytes);
        if (ws_.owns(id)) ws_.send(id, bytes, true);
        else send_below_ws(id, bytes, true);
    }
    // What the WebSocket layer sends and closes goes here.
    void send_below_ws(broker::ConnId id, std::span<const uint8_t> bytes, bool low_priority) {
        if (tls_.owns(id)) tls_.send(id, bytes);
        else if (low_priority) reactor_.send_low_priority(id, bytes);
        else reactor_.send(id, bytes);
    }
    void close_below_ws(broker::ConnId id) {
        if (tls_.owns(id)) tls_.close(id);
        else reactor_.close(id, true);
    }
    size_t queued_bytes(broker::ConnId id) const override {
        return BridgeRunner::is_local_id(id) ? 0 : reactor_.queued_bytes(id);
    }
    // A TLS connection pauses with its socket: no ciphertext, no plaintext.
    void set_reading(broker::ConnId id, bool on) override {
        if (!BridgeRunner::is_local_id(id)) reactor_.set_reading(id, on);
    }
    void set_intake(bool on) override { reactor_.set_intake(on); }
    void slow_consumer(broker::ConnId, std::string_view client_id, bool started, uint64_t dropped) override {
        const int n = int(std::min<size_t>(client_id.size(), 128));
        if (started)
            log_warn("client '%.*s' is a slow consumer: its QoS 0 messages are dropped until it catches up", n,
                     client_id.data());
        else
            log_info("client '%.*s' caught up or left: %llu QoS 0 messages dropped for it", n, client_id.data(),
                     unsigned_ll(dropped));
    }
    void close(broker::ConnId id) override {
        if (BridgeRunner::is_local_id(id)) return bridges->local_close(id);
        if (ws_.owns(id)) ws_.close(id);
        else close_below_ws(id);
    }

    // The bridges' virtual local connections (ids with BridgeRunner::kLocalBit).
    BridgeRunner* bridges = nullptr;

private:
    net::Reactor& reactor_;
    TlsLayer& tls_;
    WsLayer& ws_;
};

net::Backend backend_from_name(const std::string& name) {
    if (name == "io_uring") return net::Backend::IoUring;
    if (name == "epoll") return net::Backend::Epoll;
    return net::Backend::Auto;
}

class Server final : public net::Handler {
public:
    Server(const config::AppConfig& cfg, ConfigLoader loader) : cfg_(cfg), loader_(std::move(loader)) {}
    ~Server() override {
        if (signal_fd_ >= 0) ::close(signal_fd_);
    }

    // Everything before the loop; false (already logged) if start-up failed.
    bool start() {
        return open_reactor() && open_signals() && open_security() && open_store() && open_broker() &&
               open_listeners() && open_metrics();
    }

    void run() {
        // Readiness: listeners are open and the store is recovered.
        notifier_.send("READY=1");
        log_info("ready");
        reactor_->run(*this);
        const broker::Stats& s = broker_->stats();
        log_info("stopped: %llu messages in, %llu out, %llu QoS 0 dropped, %llu queued dropped, "
                 "%llu store refusals",
                 unsigned_ll(s.messages_in), unsigned_ll(s.messages_out),
                 unsigned_ll(s.qos0_dropped), unsigned_ll(s.queued_dropped), unsigned_ll(s.store_refusals));
    }

    // net::Handler
    void on_open(net::ConnId id, int reactor_listener, const std::string& peer) override {
        if (metrics_ && reactor_listener == metrics_listener_) return open_metrics_connection(id);
        note_pass_activity();
        // From here on a listener is its slot in cfg_.listeners.
        const int listener_index = slot_of_reactor_listener(reactor_listener);
        if (listener_index < 0) {   // a metrics listener a reload closed: its accept raced the close
            rejected_.insert(id);
            reactor_->close(id, false);
            return;
        }
        const bool listener_full = listener_limits_.full(listener_index);
        if (stopping_ || open_connections_ >= cfg_.broker.max_connections || listener_full) {
            // Over the limit: closed at once, the broker never hears of it.
            // At most one line per second: a connection flood must not flood the log.
            uint64_t now = reactor_->now_ms();
            ++refused_since_log_;
            if (!refusal_logged_ || now - last_refusal_log_ms_ >= 1000) {
                log_warn("refusing connection from %s: %s (%llu refused since the last report)", peer.c_str(),
                         stopping_ ? "shutting down"
                         : listener_full ? "the listener's max_connections reached"
                                         : "max_connections reached",
                         unsigned_ll(refused_since_log_));
                refusal_logged_ = true;
                last_refusal_log_ms_ = now;
                refused_since_log_ = 0;
            }
            rejected_.insert(id);
            reactor_->close(id, false);
            return;
        }
        ++open_connections_;
        listener_limits_.opened(id, listener_index);
        listener_of_conn_[id] = listener_index;
        log_debug("connection %llu from %s on listener %d", unsigned_ll(id), peer.c_str(), listener_index);
        if (listener_counts_) listener_counts_->opened(id, listener_index);
        tls_->on_open(id, listener_index, peer);
        ws_->on_open(id, listener_index, peer);
        if (hash_pool_) authenticator_.note_peer(id, peer);
        broker_->on_open(id, listener_index, peer);
    }

    void on_data(net::ConnId id, std::span<const uint8_t> data) override {
        if (rejected_.count(id)) return;
        note_pass_activity();
        if (metrics_ && metrics_->owns(id)) return metrics_->on_data(id, data);
        if (bridges_ && bridges_->owns_upstream(id)) return bridges_->on_upstream_data(id, data);
        if (tls_->owns(id)) {
            plaintext_.clear();
            if (!tls_->on_ciphertext(id, data, plaintext_) || plaintext_.empty()) return;
            // The broker hands the identity to the authenticator with the CONNECT.
            std::optional<std::string> identity = tls_->identity(id);
            if (identity && tls_->first_identity_use(id)) broker_->set_identity(id, *identity);
            data = plaintext_;
        }
        if (ws_->owns(id)) {
            // WebSocket frames (over TLS for wss) in, the MQTT stream out.
            ws_payload_.clear();
            if (!ws_->on_bytes(id, data, ws_payload_) || ws_payload_.empty()) return;
            data = ws_payload_;
        }
        broker_->on_data(id, data);
    }

    void on_close(net::ConnId id, int error) override {
        if (rejected_.erase(id)) return;
        if (metrics_ && metrics_->on_close(id)) return maybe_finish_shutdown(reactor_->now_ms());
        note_pass_activity();
        if (bridges_ && bridges_->owns_upstream(id)) {
            bridges_->on_upstream_close(id, error);
            return maybe_finish_shutdown(reactor_->now_ms());
        }
        if (listener_counts_) listener_counts_->closed(id);
        tls_->on_close(id);
        ws_->on_close(id);
        authenticator_.forget_peer(id);
        --open_connections_;
        listener_limits_.closed(id);
        listener_of_conn_.erase(id);
        if (error) log_debug("connection %llu closed: %s", unsigned_ll(id), std::strerror(error));
        else log_debug("connection %llu closed", unsigned_ll(id));
        broker_->on_close(id);
        maybe_finish_shutdown(reactor_->now_ms());
    }

    void on_tick(uint64_t now_ms) override {
        note_pass_activity();
        broker_->on_tick(now_ms);
        if (metrics_) metrics_->on_tick(now_ms, broker_->stats());
        if (bridges_) bridges_->on_tick(now_ms);
        tls_->on_tick(now_ms);
        ws_->on_tick(now_ms);
        notifier_.watchdog_tick(now_ms);
        if (log_ && cfg_.storage.sync == store::SyncMode::Interval &&
            now_ms - last_interval_sync_ms_ >= cfg_.sync_interval_ms) {
            last_interval_sync_ms_ = now_ms;
            start_sync();
        }
        if (log_persistence_ && !stopping_) log_persistence_->maintenance(kCompactionBudget, kIdleCompactionBytes);
        report_store_refusals(now_ms);   // what the last second suppressed
        if (sys_ && !stopping_) sys_->on_tick(now_ms, *broker_);
        if (modbus_) modbus_->publish_sys(now_ms, cfg_.sys_interval_s);
        maybe_finish_shutdown(now_ms);
    }

    void on_pass_end() override {
        if (bridges_) bridges_->flush();   // their acknowledgements join this pass's commit
        if (modbus_) modbus_->flush();
        broker_->on_pass_end();
        // Paced to this pass's appends; before the sync, so copies ride along.
        if (log_persistence_ && !stopping_) log_persistence_->maintenance(0);
        report_store_refusals(reactor_->now_ms());
        if (log_) {
            if (cfg_.storage.sync == store::SyncMode::Always) commit_pass_end();
            else publish_durable();
        }
        maybe_finish_shutdown(reactor_->now_ms());
        if (pass_started_us_) {
            loop_pass_.observe_us(monotonic_us() - pass_started_us_);
            pass_started_us_ = 0;
        }
    }

private:
    // --- Metrics endpoint ([metrics]) ----------------------------------------
    // Loop-pass time: from the first event a pass hands over to its end
    // (the wait for events is not part of it). Only timed with [metrics] on.
    void note_pass_activity() {
        if (metrics_ && !pass_started_us_) pass_started_us_ = monotonic_us();
    }

    void open_metrics_connection(net::ConnId id) {
        if (!stopping_ && metrics_->on_open(id)) return;
        rejected_.insert(id);   // its on_close must not reach the broker
        reactor_->close(id, false);
    }

    // The metrics listener takes the next reactor listener index; once
    // created, the MetricsServer stays (a reload that turns the endpoint
    // off closes its listener and connections only).
    bool open_metrics() {
        if (cfg_.metrics.port == 0) return true;
        std::string err;
        if (!reactor_->listen(cfg_.metrics.address, cfg_.metrics.port, err)) {
            log_error("metrics: listen on %s:%u: %s", cfg_.metrics.address.c_str(), unsigned(cfg_.metrics.port),
                      err.c_str());
            return false;
        }
        metrics_listener_ = static_cast<int>(slot_of_reactor_.size());
        slot_of_reactor_.push_back(-1);
        if (!listener_counts_) listener_counts_ = std::make_unique<ListenerCounts>(cfg_.listeners.size());
        if (!metrics_)
            metrics_ = std::make_unique<MetricsServer>(*reactor_, cfg_.broker.connect_timeout_ms,
                                                       [this] { return metrics_status(); });
        if (started_ms_ == 0) started_ms_ = reactor_->now_ms();
        log_info("metrics on http://%s:%u/metrics", cfg_.metrics.address.c_str(),
                 unsigned(reactor_->bound_port(metrics_listener_)));
        return true;
    }

    StatusData metrics_status() {
        StatusData d;
        d.version = HATO_VERSION;
        d.backend = reactor_->name();
        d.uptime_s = double(reactor_->now_ms() - started_ms_) / 1000.0;
        d.stats = broker_->stats();
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) {
            const config::Listener& l = cfg_.listeners[i];
            if (!listener_open_[i]) continue;
            d.listeners.push_back({l.address + ":" + std::to_string(reactor_->bound_port(reactor_listener_[i])),
                                   listener_counts_->connected(i), listener_counts_->accepted(i)});
        }
        d.listeners_open = !stopping_;
        d.storage_enabled = log_ != nullptr;
        if (log_) {
            d.store_bytes = log_->bytes_used();
            d.store_max_bytes = log_->max_bytes();
            d.store_segments = log_->segment_count();
            d.store_records = log_->record_count();
            d.store_dead_bytes = log_->dead_bytes();
            d.store_refusing = log_->refusing();
            d.store_sync_failing = commit_.failing();
            d.recent_refusal = metrics_->recent_refusal(reactor_->now_ms(), d.stats);
            d.sync_latency = &sync_latency_;
        }
        d.messages_in_per_s = metrics_->messages_in_per_s();
        if (modbus_) d.modbus = modbus_->status();
        d.messages_out_per_s = metrics_->messages_out_per_s();
        d.loop_pass = &loop_pass_;
        if (bridges_) d.bridges = bridges_->status(reactor_->now_ms());
        return d;
    }

    // One error line per second at most while the store refuses durable
    // work, with what was refused since the last line, by reason.
    void report_store_refusals(uint64_t now) {
        const broker::Stats& s = broker_->stats();
        broker::Stats& last = store_refusals_reported_;
        if (s.store_refusals == last.store_refusals) return;
        if (last.store_refusals != 0 && now - store_refusal_log_ms_ < 1000) return;
        log_error("store refused %llu durable write(s) since the last report: %llu max_bytes reached, "
                  "%llu disk full, %llu larger than a segment, %llu I/O error, %llu QoS 1/2 PUBLISH "
                  "refused while full (refusal codes sent; nothing acknowledged was lost)",
                  unsigned_ll(s.store_refusals - last.store_refusals),
                  unsigned_ll(s.store_refused_quota - last.store_refused_quota),
                  unsigned_ll(s.store_refused_disk_full - last.store_refused_disk_full),
                  unsigned_ll(s.store_refused_too_large - last.store_refused_too_large),
                  unsigned_ll(s.store_refused_io - last.store_refused_io),
                  unsigned_ll(s.store_refused_full - last.store_refused_full));
        last = s;
        store_refusal_log_ms_ = now;
    }

    bool open_reactor() {
        std::string note;
        reactor_ = net::Reactor::create(backend_from_name(cfg_.event_backend), note);
        if (!reactor_) {
            log_error("event backend %s: %s", cfg_.event_backend.c_str(), note.c_str());
            return false;
        }
        if (std::string(reactor_->name()) == "epoll" && !note.empty())
            log_info("event backend: epoll (io_uring unavailable: %s)", note.c_str());
        else
            log_info("event backend: %s", reactor_->name());

        uint32_t tick_ms = kDefaultTickMs;
        if (cfg_.storage_enabled && cfg_.storage.sync == store::SyncMode::Interval)
            tick_ms = std::min(tick_ms, cfg_.sync_interval_ms);
        if (notifier_.watchdog_interval_ms() > 0)
            tick_ms = std::min<uint64_t>(tick_ms, notifier_.watchdog_interval_ms());
        reactor_->set_tick_interval(std::max<uint32_t>(tick_ms, 1));
        // Closed connections waiting for their peer's EOF: never more than live ones.
        reactor_->set_max_lingering(cfg_.broker.max_connections);
        tls_ = std::make_unique<TlsLayer>(*reactor_);
        open_ws_layer();
        transport_ = std::make_unique<ReactorTransport>(*reactor_, *tls_, *ws_);
        return true;
    }

    // protocol = "websockets" listeners: the upgrade must complete within
    // connect_timeout_ms, frames and messages within max_packet_size.
    void open_ws_layer() {
        ws_ = std::make_unique<WsLayer>(
            *reactor_,
            [this](net::ConnId id, std::span<const uint8_t> bytes, bool low) { transport_->send_below_ws(id, bytes, low); },
            [this](net::ConnId id) { transport_->close_below_ws(id); });
        configure_ws();
    }

    void configure_ws() {
        std::vector<WsListener> ws(cfg_.listeners.size());
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) {
            const config::Listener& l = cfg_.listeners[i];
            ws[i].enabled = l.protocol == config::ListenerProtocol::WebSockets;
            ws[i].rules.path = l.path;
            ws[i].rules.allowed_origins = l.allowed_origins;
            ws[i].trusted_proxies = l.trusted_proxies;
        }
        ws_->configure(std::move(ws), cfg_.broker.connect_timeout_ms, cfg_.broker.max_packet_size);
    }

    // SIGINT/SIGTERM/SIGHUP arrive as readable events on a signalfd, so their
    // handling runs on the reactor thread like everything else.
    bool open_signals() {
        std::signal(SIGPIPE, SIG_IGN);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
            log_error("sigprocmask: %s", std::strerror(errno));
            return false;
        }
        signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (signal_fd_ < 0) {
            log_error("signalfd: %s", std::strerror(errno));
            return false;
        }
        reactor_->watch_readable(signal_fd_, [this] { on_signal(); });
        return true;
    }

    // Password file, ACL file and TLS contexts: any error stops the start.
    bool open_security() {
        std::vector<std::string> errors;
        std::vector<std::shared_ptr<net::TlsContext>> contexts;
        bool ok = load_auth_files(cfg_.auth, auth_files_, errors);
        ok &= load_tls_contexts(cfg_, contexts, errors);
        for (const std::string& e : errors) log_error("%s", e.c_str());
        if (!ok) return false;
        tls_->set_contexts(std::move(contexts));

        std::vector<bool> anonymous(cfg_.listeners.size());
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) {
            const config::Listener& l = cfg_.listeners[i];
            anonymous[i] = config::anonymous_allowed(cfg_, i);
            if (anonymous[i] && !config::is_loopback_address(l.address))
                log_warn("anonymous access is open on %s:%u, which is not a loopback address "
                         "(set [auth] allow_anonymous = false and a password_file)",
                         l.address.c_str(), unsigned(l.port));
        }
        authenticator_.set_anonymous_allowed(std::move(anonymous));
        authenticator_.set_password_file(auth_files_.passwords);
        authorizer_.set_acl(auth_files_.acl);
        if (auth_files_.passwords)
            log_info("password file %s: %zu users", cfg_.auth.password_file.c_str(), auth_files_.passwords->size());
        if (auth_files_.acl)
            log_info("acl file %s: %zu rules", cfg_.auth.acl_file.c_str(), auth_files_.acl->rule_count());
        warn_unverifiable_acl_users();
        if (!open_listener_password_files() || !open_listener_acl_files()) return false;
        return (!auth_files_.passwords && !any_listener_password_file()) || open_hash_pool();
    }

    // [[listener]] password_file: loaded at start (an error stops it) and
    // again on SIGHUP (an error keeps the previous ones).
    bool open_listener_password_files() {
        std::vector<std::string> errors;
        std::vector<std::shared_ptr<const auth::PasswordFile>> files;
        if (!load_listener_password_files(cfg_, files, errors)) {
            for (const std::string& e : errors) log_error("%s", e.c_str());
            return false;
        }
        for (size_t i = 0; i < files.size(); ++i)
            if (files[i])
                log_info("listener %s:%u password file %s: %zu users", cfg_.listeners[i].address.c_str(),
                         unsigned(cfg_.listeners[i].port), cfg_.listeners[i].password_file.c_str(), files[i]->size());
        authenticator_.set_listener_password_files(std::move(files));
        return true;
    }
    bool open_listener_acl_files() {
        std::vector<std::string> errors;
        std::vector<std::shared_ptr<const auth::Acl>> acls;
        if (!load_listener_acl_files(cfg_, acls, errors)) {
            for (const std::string& e : errors) log_error("%s", e.c_str());
            return false;
        }
        for (size_t i = 0; i < acls.size(); ++i)
            if (acls[i])
                log_info("listener %s:%u acl file %s: %zu rules", cfg_.listeners[i].address.c_str(),
                         unsigned(cfg_.listeners[i].port), cfg_.listeners[i].acl_file.c_str(), acls[i]->rule_count());
        authorizer_.set_listener_acls(std::move(acls));
        return true;
    }
    bool any_listener_acl_file() const {
        for (const config::Listener& l : cfg_.listeners)
            if (!l.acl_file.empty()) return true;
        return false;
    }
    bool any_listener_password_file() const {
        for (const config::Listener& l : cfg_.listeners)
            if (!l.password_file.empty()) return true;
        return false;
    }

    // Password checks run on worker threads; their verdicts come back through
    // an eventfd the reactor watches, and go to the broker on this thread.
    // Started after open_signals: the workers inherit the blocked signal
    // mask, so SIGINT/SIGTERM/SIGHUP still arrive only through the signalfd.
    bool open_hash_pool() {
        hash_pool_ = std::make_unique<auth::HashPool>(cfg_.auth.hash_workers);
        if (!hash_pool_->ok()) {
            log_error("password check workers: eventfd: %s", std::strerror(errno));
            return false;
        }
        reactor_->watch_readable(hash_pool_->event_fd(), [this] { authenticator_.collect(); });
        authenticator_.set_pool(hash_pool_.get(), [this](broker::ConnId id, uint64_t request,
                                                         const broker::AuthVerdict& verdict) {
            broker_->on_auth_result(id, request, verdict);
        });
        authenticator_.set_max_failed_per_minute(cfg_.auth.max_failed_per_minute);
        authenticator_.set_refusal_log([](std::string_view address, uint32_t limit) {
            log_warn("refusing logins from %.*s for the rest of the minute: %u failed in it (max_failed_per_minute)",
                     int(address.size()), address.data(), unsigned(limit));
        });
        return true;
    }

    // ACL rules for user names no client can prove are dead rules: say so once.
    void warn_unverifiable_acl_users() {
        std::vector<std::string> names = unverifiable_acl_users(cfg_, auth_files_);
        if (names.empty()) return;
        std::string list;
        for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
        log_warn("acl file %s: user blocks that never apply (%s): no %s can verify these names, "
                 "so clients giving them get the anonymous rules",
                 cfg_.auth.acl_file.c_str(), list.c_str(),
                 auth_files_.passwords ? "password file entry or identity_as_username listener"
                                       : "password file or identity_as_username listener");
    }

    // SIGHUP: password files, ACL files and certificates are read again, at
    // the paths of cfg_ (a reload may have changed them). Each one that fails
    // to load keeps its previous version (errors logged with file:line);
    // connected clients stay, TLS ones on their old context.
    void reload_security() {
        if (bridges_) bridges_->reload_passwords();
        std::vector<std::string> errors;
        if (cfg_.auth.password_file.empty()) {
            auth_files_.passwords = nullptr;
            authenticator_.set_password_file(nullptr);
        } else {
            std::shared_ptr<const auth::PasswordFile> passwords;
            if (load_password_file(cfg_.auth.password_file, passwords, errors)) {
                auth_files_.passwords = passwords;
                authenticator_.set_password_file(passwords);
                log_info("reloaded password file %s: %zu users", cfg_.auth.password_file.c_str(), passwords->size());
            } else {
                report_reload_errors(errors, "password file", cfg_.auth.password_file);
            }
        }
        if (cfg_.auth.acl_file.empty()) {
            auth_files_.acl = nullptr;
            authorizer_.set_acl(nullptr);
        } else {
            std::shared_ptr<const auth::Acl> acl;
            if (load_acl_file(cfg_.auth.acl_file, acl, errors)) {
                auth_files_.acl = acl;
                authorizer_.set_acl(acl);   // every session's ACL memo refills lazily
                log_info("reloaded acl file %s: %zu rules", cfg_.auth.acl_file.c_str(), acl->rule_count());
            } else {
                report_reload_errors(errors, "acl file", cfg_.auth.acl_file);
            }
        }
        std::vector<std::shared_ptr<const auth::PasswordFile>> files;
        if (load_listener_password_files(cfg_, files, errors)) {
            authenticator_.set_listener_password_files(std::move(files));
            if (any_listener_password_file()) log_info("reloaded the listeners' password files");
        } else {
            report_reload_errors(errors, "listener password files", "");
        }
        std::vector<std::shared_ptr<const auth::Acl>> acls;
        if (load_listener_acl_files(cfg_, acls, errors)) {
            authorizer_.set_listener_acls(std::move(acls));   // memos refill lazily
            if (any_listener_acl_file()) log_info("reloaded the listeners' acl files");
        } else {
            report_reload_errors(errors, "listener acl files", "");
        }
        std::vector<std::shared_ptr<net::TlsContext>> contexts;
        if (load_tls_contexts(cfg_, contexts, errors)) {
            const bool any = std::any_of(contexts.begin(), contexts.end(), [](const auto& c) { return c != nullptr; });
            tls_->set_contexts(std::move(contexts));
            if (any) log_info("reloaded TLS certificates (new connections use them)");
        } else {
            report_reload_errors(errors, "TLS certificates", "");
        }
        std::vector<bool> anonymous(cfg_.listeners.size());
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) anonymous[i] = config::anonymous_allowed(cfg_, i);
        authenticator_.set_anonymous_allowed(std::move(anonymous));
        configure_ws();
        if ((auth_files_.passwords || any_listener_password_file()) && !hash_pool_) open_hash_pool();
        install_auth_hooks();
    }

    // Which authenticator and authorizer the broker asks: the bridges' wrappers
    // once bridges exist; no authorizer at all without any ACL file.
    void install_auth_hooks() {
        if (bridges_ && !bridge_authn_) bridge_authn_ = std::make_unique<BridgeAuthenticator>(authenticator_);
        if (bridges_ && !bridge_authz_) bridge_authz_ = std::make_unique<BridgeAuthorizer>(authorizer_);
        broker_->set_authenticator(bridges_ ? static_cast<broker::Authenticator*>(bridge_authn_.get()) : &authenticator_);
        const bool acl = auth_files_.acl || any_listener_acl_file();
        broker::Authorizer* authz = nullptr;
        if (acl) authz = bridges_ ? static_cast<broker::Authorizer*>(bridge_authz_.get()) : &authorizer_;
        broker_->set_authorizer(authz);
    }

    // SIGHUP: the configuration file again. One with errors changes nothing.
    // Otherwise listeners, security files, limits, log level, [sys],
    // [metrics], [sparkplug] and bridges follow it; the restart-only keys
    // keep their running values. Connections on unchanged listeners stay.
    void reload() {
        log_info("reload requested (SIGHUP)");
        if (stopping_) return;
        if (!loader_) return reload_security();
        config::AppConfig next;
        std::vector<std::string> errors;
        if (!loader_(next, errors)) {
            for (const std::string& e : errors) log_error("reload: %s", e.c_str());
            log_error("reload refused: the configuration has errors; keeping the previous one in force");
            return;
        }
        std::vector<std::string> kept = keep_restart_only(cfg_, next);
        if (!kept.empty()) {
            std::string list;
            for (const std::string& k : kept) list += (list.empty() ? "" : ", ") + k;
            log_warn("reload: %s changed, which needs a restart: keeping the running value", list.c_str());
        }
        const config::MetricsConfig old_metrics = cfg_.metrics;
        const uint32_t old_sys = cfg_.sys_interval_s;

        // The listener table: kept slots take their new settings, removed
        // ones are closed, new ones appended (opened once security is set).
        ListenerPlan plan = plan_listeners(cfg_.listeners, listener_open_, next.listeners);
        std::vector<config::Listener> table = cfg_.listeners;
        std::vector<size_t> added;
        for (size_t n = 0; n < next.listeners.size(); ++n) {
            if (plan.slot_of_new[n] >= 0) {
                table[size_t(plan.slot_of_new[n])] = next.listeners[n];
            } else {
                added.push_back(table.size());
                table.push_back(next.listeners[n]);
            }
        }
        for (size_t i : plan.removed) close_listener_slot(i);
        for (size_t i : plan.removed) table[i] = config::Listener{};   // closed: no files, no TLS
        next.listeners = std::move(table);
        cfg_ = std::move(next);
        listener_open_.resize(cfg_.listeners.size(), false);
        reactor_listener_.resize(cfg_.listeners.size(), -1);
        std::vector<uint32_t> limits;
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) limits.push_back(cfg_.listeners[i].max_connections);
        listener_limits_.reconfigure(std::move(limits));
        if (listener_counts_) listener_counts_->grow(cfg_.listeners.size());

        set_log_level(cfg_.log_level);
        broker_->reconfigure(cfg_.broker);
        reactor_->set_max_lingering(cfg_.broker.max_connections);
        reload_security();
        for (size_t i : added) {
            if (!open_listener(i)) continue;   // logged; the slot stays closed
            const config::Listener& l = cfg_.listeners[i];
            if (config::anonymous_allowed(cfg_, i) && !config::is_loopback_address(l.address))
                log_warn("anonymous access is open on %s:%u, which is not a loopback address "
                         "(set [auth] allow_anonymous = false and a password_file)",
                         l.address.c_str(), unsigned(l.port));
        }

        if (cfg_.sys_interval_s != old_sys) {
            sys_.reset();
            open_sys();
            log_info("[sys] interval now %u s%s", unsigned(cfg_.sys_interval_s),
                     cfg_.sys_interval_s == 0 ? " ($SYS off)" : "");
        }
        if (cfg_.metrics.address != old_metrics.address || cfg_.metrics.port != old_metrics.port) {
            if (metrics_listener_ >= 0) {
                reactor_->close_listener(metrics_listener_);
                metrics_listener_ = -1;
                if (metrics_) metrics_->close_all();
                log_info("metrics endpoint on %s:%u closed", old_metrics.address.c_str(), unsigned(old_metrics.port));
            }
            open_metrics();   // logs where it listens, or why it cannot
        }
        reload_bridges();
        log_info("reload done: %zu listener(s), %zu bridge(s)", size_t(std::count(listener_open_.begin(),
                 listener_open_.end(), true)), cfg_.bridges.size());
    }

    // A listener the reload removed: no more accepts; its connections get
    // DISCONNECT "server shutting down" (v5) and are closed.
    void close_listener_slot(size_t i) {
        const config::Listener& l = cfg_.listeners[i];
        reactor_->close_listener(reactor_listener_[i]);
        listener_open_[i] = false;
        std::vector<net::ConnId> ids;
        for (const auto& [id, slot] : listener_of_conn_)
            if (slot == int(i)) ids.push_back(id);
        log_info("listener %s:%u removed by the reload: closing its %zu connection(s)", l.address.c_str(),
                 unsigned(reactor_->bound_port(reactor_listener_[i])), ids.size());
        for (net::ConnId id : ids) broker_->shut_down_connection(id);
    }

    void reload_bridges() {
        if (!bridges_) {
            if (!cfg_.bridges.empty() && !open_bridges()) log_error("reload: the bridges could not start");
            return;
        }
        std::string err;
        if (!bridges_->reconfigure(cfg_.bridges, err))
            log_error("reload of the bridges failed: %s (the running bridges stay)", err.c_str());
    }

    void open_sys() {
        if (cfg_.sys_interval_s > 0)
            sys_ = std::make_unique<SysPublisher>(cfg_.sys_interval_s, sys_started_ms_, log_.get(), cfg_.storage.dir,
                                                  sync_latency_);
    }

    static void report_reload_errors(std::vector<std::string>& errors, const char* what, const std::string& path) {
        for (const std::string& e : errors) log_error("reload: %s", e.c_str());
        log_error("reload of %s %s failed: keeping the previous one", what, path.c_str());
        errors.clear();
    }

    bool open_store() {
        if (!cfg_.storage_enabled) {
            log_info("storage disabled: sessions and retained messages live in memory only");
            persistence_ = std::make_unique<broker::MemoryPersistence>();
            return true;
        }
        std::string err;
        log_ = store::Log::open(cfg_.storage, err);
        if (!log_) {
            log_error("store %s: %s", cfg_.storage.dir.c_str(), err.c_str());
            return false;
        }
        log_info("recovered %s", log_->recovery_summary().c_str());
        for (const std::string& e : log_->recovery_errors()) log_error("store: %s", e.c_str());
        auto durable = std::make_unique<broker::LogPersistence>(*log_, cfg_.storage.sync);
        log_persistence_ = durable.get();
        persistence_ = std::move(durable);
        return true;
    }

    bool open_broker() {
        broker_ = std::make_unique<broker::Broker>(cfg_.broker, *transport_, *persistence_);
        broker::set_log_sink([](const char* line) { log_info("%s", line); });
        broker_->set_authenticator(&authenticator_);
        // Without an acl_file the broker skips every ACL check.
        if (auth_files_.acl || any_listener_acl_file()) broker_->set_authorizer(&authorizer_);
        broker_->recover();
        sys_started_ms_ = reactor_->now_ms();
        open_sys();
        return open_bridges() && open_modbus();
    }

    bool open_modbus() {
        if (cfg_.modbus.empty()) return true;
        modbus_ = std::make_unique<ModbusRunner>(cfg_.modbus, *reactor_);
        std::string err;
        if (!modbus_->start(*broker_, err)) {
            log_error("%s", err.c_str());
            return false;
        }
        return true;
    }

    // The bridges' local sessions are internal: no credentials, no ACL.
    bool open_bridges() {
        if (cfg_.bridges.empty()) return true;
        bridges_ = std::make_unique<BridgeRunner>(cfg_.bridges, *reactor_);
        transport_->bridges = bridges_.get();
        install_auth_hooks();
        std::string err;
        if (!bridges_->start(*broker_, err)) {
            log_error("%s", err.c_str());
            return false;
        }
        if (sys_)
            sys_->set_extra([this](uint64_t now, std::vector<broker::SysMessage>& out) {
                bridges_->sys_topics(now, out);
            });
        return true;
    }

    bool open_listeners() {
        std::vector<uint32_t> limits;
        for (const config::Listener& l : cfg_.listeners) limits.push_back(l.max_connections);
        listener_limits_.configure(std::move(limits));
        for (size_t i = 0; i < cfg_.listeners.size(); ++i)
            if (!open_listener(i)) return false;
        return true;
    }

    // Listens for slot `i` of cfg_.listeners (at start or added by a reload).
    bool open_listener(size_t i) {
        const config::Listener& l = cfg_.listeners[i];
        listener_open_.resize(cfg_.listeners.size(), false);
        reactor_listener_.resize(cfg_.listeners.size(), -1);
        std::string err;
        if (!reactor_->listen(l.address, l.port, err)) {
            log_error("listen on %s:%u: %s", l.address.c_str(), unsigned(l.port), err.c_str());
            return false;
        }
        const int r = static_cast<int>(slot_of_reactor_.size());
        slot_of_reactor_.push_back(static_cast<int>(i));
        reactor_listener_[i] = r;
        listener_open_[i] = true;
        // With port 0 this is the port the kernel chose (tests parse it).
        bool ws = l.protocol == config::ListenerProtocol::WebSockets;
        log_info("listening on %s:%u%s%s", l.address.c_str(), unsigned(reactor_->bound_port(r)),
                 l.tls.enabled ? " (TLS)" : "", ws ? " (WebSockets)" : "");
        return true;
    }

    int slot_of_reactor_listener(int r) const {
        return r >= 0 && size_t(r) < slot_of_reactor_.size() ? slot_of_reactor_[size_t(r)] : -1;
    }

    // sync = always: group commit decides (app/group_commit.hpp) whether
    // this pass end starts a sync, or when the loop must wake for the window.
    void commit_pass_end() {
        const uint64_t now = monotonic_us();
        commit_.note_appended(now, log_->last_lsn(), log_->appended_bytes());
        if (commit_.due(now)) start_sync();
        reactor_->wake_at_us(commit_.wake_at_us());
    }

    // One batch in flight at most; records appended while it runs go in the
    // next one (started from a later on_pass_end / tick).
    void start_sync() {
        if (!log_ || commit_.in_flight() || log_->last_lsn() <= log_->durable_lsn()) return;
        store::Log::SyncBatch batch = log_->begin_sync();
        commit_.started(batch.lsn, log_->appended_bytes());
        sync_started_us_ = monotonic_us();
        sync_ok_ = true;
        sync_pending_fds_ = batch.fds.size();
        if (batch.fds.empty()) return finish_sync();
        // epoll completes inline, inside this loop: the counter is set first.
        for (int fd : batch.fds) {
            reactor_->fsync_async(fd, [this](int result) {
                if (result < 0) {
                    sync_ok_ = false;
                    if (!commit_.failing()) log_error("store sync: %s", std::strerror(-result));
                }
                if (--sync_pending_fds_ == 0) finish_sync();
            });
        }
    }

    void finish_sync() {
        const uint64_t lsn = commit_.syncing_lsn();
        sync_latency_.observe_us(monotonic_us() - sync_started_us_);
        log_->end_sync(lsn, sync_ok_);
        // A failure is retried on the next pass (logged once, above).
        const GroupCommit::Outcome done = commit_.finished(sync_ok_);
        if (!sync_ok_) return;
        if (done.recovered) log_info("store sync works again");
        // Held PUBACK/PUBREC waiting for this batch (sync = always; with
        // interval, whatever persistence still reports as pending) go out.
        if (done.durable_lsn) {
            broker_->on_durable();
            last_durable_published_ = done.durable_lsn;
        }
        maybe_finish_shutdown(reactor_->now_ms());
    }

    // sync = interval | off: acknowledgements should not wait for a sync.
    // Whatever persistence reports as durable by now is announced at once.
    void publish_durable() {
        uint64_t ticket = persistence_->durable_ticket();
        if (ticket == last_durable_published_) return;
        last_durable_published_ = ticket;
        broker_->on_durable();
    }

    void on_signal() {
        signalfd_siginfo info;
        while (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            switch (info.ssi_signo) {
                case SIGINT: begin_shutdown("SIGINT"); break;
                case SIGTERM: begin_shutdown("SIGTERM"); break;
                case SIGHUP: reload(); break;
                default: break;
            }
        }
    }

    void begin_shutdown(const char* why) {
        if (stopping_) {
            // A second signal: do not wait for slow clients any longer.
            log_info("%s again: stopping now", why);
            stop_deadline_ms_ = 0;
            maybe_finish_shutdown(reactor_->now_ms());
            return;
        }
        stopping_ = true;
        log_info("shutting down (%s)", why);
        notifier_.send("STOPPING=1");
        reactor_->close_listeners();
        if (metrics_) metrics_->close_all();
        if (bridges_) bridges_->stop();
        if (modbus_) modbus_->stop();
        broker_->shutdown();
        stop_deadline_ms_ = reactor_->now_ms() + kShutdownGraceMs;
        // The loop stops once every client is gone (or the deadline passes).
    }

    void maybe_finish_shutdown(uint64_t now_ms) {
        if (!stopping_ || stopped_) return;
        bool drained = reactor_->connection_count() == 0 && !commit_.in_flight();
        if (!drained && now_ms < stop_deadline_ms_) return;
        stopped_ = true;
        if (log_) {
            if (log_->sync_now())
                log_info("store synced up to lsn %llu", unsigned_ll(log_->durable_lsn()));
            else
                log_error("final store sync failed");
        }
        reactor_->stop();
    }

    // The running configuration. Its listeners are a table: a reload appends
    // new ones and leaves a removed one's slot closed (listener_open_), so
    // the per-listener state of every layer keeps its indices.
    config::AppConfig cfg_;
    ConfigLoader loader_;
    std::vector<bool> listener_open_;
    std::vector<int> reactor_listener_;            // slot -> reactor listener index
    std::vector<int> slot_of_reactor_;             // reactor listener index -> slot (-1: metrics)
    std::unordered_map<net::ConnId, int> listener_of_conn_;   // client connections -> slot
    uint64_t sys_started_ms_ = 0;
    Notifier notifier_;
    // Declaration order is destruction order reversed: the broker goes first,
    // then what it refers to (persistence, log, transport, reactor).
    std::unique_ptr<net::Reactor> reactor_;
    std::unique_ptr<TlsLayer> tls_;
    std::unique_ptr<WsLayer> ws_;
    std::unique_ptr<ReactorTransport> transport_;
    std::unique_ptr<store::Log> log_;
    std::unique_ptr<broker::Persistence> persistence_;
    broker::LogPersistence* log_persistence_ = nullptr;  // == persistence_ when durable
    AuthFiles auth_files_;
    std::unique_ptr<auth::HashPool> hash_pool_;   // null without a password file
    auth::PasswordAuthenticator authenticator_;   // used by broker_: declared before it
    auth::AclAuthorizer authorizer_;               // likewise
    std::unique_ptr<BridgeAuthenticator> bridge_authn_;   // wrap the two above when bridges run
    std::unique_ptr<BridgeAuthorizer> bridge_authz_;
    std::unique_ptr<broker::Broker> broker_;
    std::unique_ptr<BridgeRunner> bridges_;   // refers to broker_: goes first
    std::unique_ptr<ModbusRunner> modbus_;    // likewise
    std::vector<uint8_t> plaintext_;  // decrypted input of the current on_data, reused
    std::vector<uint8_t> ws_payload_;  // MQTT bytes unwrapped from WebSocket frames, reused
    int signal_fd_ = -1;

    std::unordered_set<net::ConnId> rejected_;  // closed on accept; hidden from the broker
    uint64_t open_connections_ = 0;             // connections the broker knows of
    ListenerLimits listener_limits_;            // [[listener]] max_connections
    bool refusal_logged_ = false;
    uint64_t last_refusal_log_ms_ = 0;
    uint64_t refused_since_log_ = 0;
    broker::Stats store_refusals_reported_;   // counters as of the last store refusal line
    uint64_t store_refusal_log_ms_ = 0;

    // Group commit: its decisions, and the sync in flight.
    GroupCommit commit_{GroupCommitPolicy{cfg_.sync_window_us, cfg_.sync_batch_bytes}};
    bool sync_ok_ = true;
    size_t sync_pending_fds_ = 0;
    uint64_t last_interval_sync_ms_ = 0;
    uint64_t last_durable_published_ = 0;

    bool stopping_ = false;
    bool stopped_ = false;
    uint64_t stop_deadline_ms_ = 0;

    // [metrics]: null when off. Histogram bounds in seconds.
    std::unique_ptr<MetricsServer> metrics_;
    std::unique_ptr<ListenerCounts> listener_counts_;
    int metrics_listener_ = -1;
    uint64_t started_ms_ = 0;
    uint64_t pass_started_us_ = 0;
    uint64_t sync_started_us_ = 0;
    // Store syncs (start_sync to finish_sync), for /metrics and $SYS alike.
    Histogram sync_latency_{kSyncLatencyBoundsS};
    Histogram loop_pass_{{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                          0.05, 0.1, 0.25}};
    // $SYS publisher (null with [sys] interval = 0).
    std::unique_ptr<SysPublisher> sys_;
};

}  // namespace

int run_server(const config::AppConfig& cfg, ConfigLoader loader) {
    Server server(cfg, std::move(loader));
    if (!server.start()) return 1;
    server.run();
    return 0;
}

}  // namespace hato::app
