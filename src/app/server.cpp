#include "app/server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "app/bridge_runner.hpp"
#include "app/durable_acks.hpp"
#include "app/modbus_runner.hpp"
#include "app/access_control.hpp"
#include "app/admission.hpp"
#include "app/listener_table.hpp"
#include "app/log.hpp"
#include "app/metrics.hpp"
#include "app/notify.hpp"
#include "app/reload.hpp"
#include "app/shutdown.hpp"
#include "app/signals.hpp"
#include "app/store_refusal_report.hpp"
#include "app/sys_publisher.hpp"
#include "app/transport_stack.hpp"
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

net::Backend backend_from_name(const std::string& name) {
    if (name == "io_uring") return net::Backend::IoUring;
    if (name == "epoll") return net::Backend::Epoll;
    return net::Backend::Auto;
}

class Server final : public net::Handler, private ShutdownSteps, private ReloadSteps {
public:
    Server(const config::AppConfig& cfg, ConfigLoader loader) : cfg_(cfg), loader_(std::move(loader)) {}

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
        const int listener_index = listeners_->slot_of(reactor_listener);
        if (listener_index < 0) {   // a metrics listener a reload closed: its accept raced the close
            admission_.refused(id);
            reactor_->close(id, false);
            return;
        }
        const Admission::Verdict verdict = admission_.decide(listener_index, shutdown_.stopping(), cfg_.broker.max_connections);
        if (verdict != Admission::Verdict::Admit) {
            // Closed at once, the broker never hears of it.
            if (std::optional<uint64_t> n = admission_.note_refusal(reactor_->now_ms()))
                log_warn("refusing connection from %s: %s (%llu refused since the last report)", peer.c_str(),
                         Admission::reason(verdict), unsigned_ll(*n));
            admission_.refused(id);
            reactor_->close(id, false);
            return;
        }
        admission_.admitted(id, listener_index);
        log_debug("connection %llu from %s on listener %d", unsigned_ll(id), peer.c_str(), listener_index);
        if (listener_counts_) listener_counts_->opened(id, listener_index);
        transports_->on_open(id, listener_index, peer);
        access_->note_peer(id, peer);
        broker_->on_open(id, listener_index, peer);
    }

    void on_data(net::ConnId id, std::span<const uint8_t> data) override {
        if (admission_.is_refused(id)) return;
        note_pass_activity();
        if (metrics_ && metrics_->owns(id)) return metrics_->on_data(id, data);
        if (bridges_ && bridges_->owns_upstream(id)) return bridges_->on_upstream_data(id, data);
        std::optional<std::string> identity;   // the TLS client's, with its first MQTT bytes
        const bool deliver = transports_->unwrap(id, data, identity);
        if (identity) broker_->set_identity(id, *identity);
        if (!deliver) return;
        broker_->on_data(id, data);
    }

    void on_close(net::ConnId id, int error) override {
        if (admission_.forget_refused(id)) return;
        if (metrics_ && metrics_->on_close(id)) return shutdown_.poll(reactor_->now_ms());
        note_pass_activity();
        if (bridges_ && bridges_->owns_upstream(id)) {
            bridges_->on_upstream_close(id, error);
            return shutdown_.poll(reactor_->now_ms());
        }
        if (listener_counts_) listener_counts_->closed(id);
        transports_->on_close(id);
        access_->forget_peer(id);
        admission_.closed(id);
        if (error) log_debug("connection %llu closed: %s", unsigned_ll(id), std::strerror(error));
        else log_debug("connection %llu closed", unsigned_ll(id));
        broker_->on_close(id);
        shutdown_.poll(reactor_->now_ms());
    }

    void on_tick(uint64_t now_ms) override {
        note_pass_activity();
        broker_->on_tick(now_ms);
        if (metrics_) metrics_->on_tick(now_ms, broker_->stats());
        if (bridges_) bridges_->on_tick(now_ms);
        transports_->on_tick(now_ms);
        notifier_.watchdog_tick(now_ms);
        if (durable_) durable_->on_tick(now_ms);
        if (log_persistence_ && !shutdown_.stopping()) log_persistence_->maintenance(kCompactionBudget, kIdleCompactionBytes);
        report_store_refusals(now_ms);   // what the last second suppressed
        if (sys_ && !shutdown_.stopping()) sys_->on_tick(now_ms, *broker_);
        if (modbus_) modbus_->publish_sys(now_ms, cfg_.sys_interval_s);
        shutdown_.poll(now_ms);
    }

    void on_pass_end() override {
        if (bridges_) bridges_->flush();   // their acknowledgements join this pass's commit
        if (modbus_) modbus_->flush();
        broker_->on_pass_end();
        // Paced to this pass's appends; before the sync, so copies ride along.
        if (log_persistence_ && !shutdown_.stopping()) log_persistence_->maintenance(0);
        report_store_refusals(reactor_->now_ms());
        if (durable_) durable_->on_pass_end();
        shutdown_.poll(reactor_->now_ms());
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
        if (!shutdown_.stopping() && metrics_->on_open(id)) return;
        admission_.refused(id);   // its on_close must not reach the broker
        reactor_->close(id, false);
    }

    // The metrics listener takes the next reactor listener index; once
    // created, the MetricsServer stays (a reload that turns the endpoint
    // off closes its listener and connections only).
    bool open_metrics() {
        if (cfg_.metrics.port == 0) return true;
        std::string err;
        metrics_listener_ = listeners_->open_unslotted(cfg_.metrics.address, cfg_.metrics.port, err);
        if (metrics_listener_ < 0) {
            log_error("metrics: listen on %s:%u: %s", cfg_.metrics.address.c_str(), unsigned(cfg_.metrics.port),
                      err.c_str());
            return false;
        }
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
            if (!listeners_->is_open(i)) continue;
            d.listeners.push_back({l.address + ":" + std::to_string(listeners_->bound_port(i)),
                                   listener_counts_->connected(i), listener_counts_->accepted(i)});
        }
        d.listeners_open = !shutdown_.stopping();
        d.storage_enabled = log_ != nullptr;
        if (log_) {
            d.store_bytes = log_->bytes_used();
            d.store_max_bytes = log_->max_bytes();
            d.store_segments = log_->segment_count();
            d.store_records = log_->record_count();
            d.store_dead_bytes = log_->dead_bytes();
            d.store_refusing = log_->refusing();
            d.store_sync_failing = durable_->failing();
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

    void report_store_refusals(uint64_t now_ms) {
        if (std::optional<std::string> line = store_refusals_.due(broker_->stats(), now_ms))
            log_error("%s", line->c_str());
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
        transports_ = std::make_unique<TransportStack>(*reactor_);
        listeners_ = std::make_unique<ListenerTable>(*reactor_);
        transports_->configure_ws(cfg_);
        return true;
    }

    bool open_signals() {
        std::string err;
        if (!signals_.open(err)) {
            log_error("%s", err.c_str());
            return false;
        }
        reactor_->watch_readable(signals_.fd(), [this] { on_signals(); });
        return true;
    }

    // Password files, ACL files and TLS contexts: any error stops the start.
    bool open_security() {
        access_ = std::make_unique<AccessControl>(
            *reactor_, transports_->tls(),
            [this](broker::ConnId id, uint64_t request, const broker::AuthVerdict& verdict) {
                broker_->on_auth_result(id, request, verdict);
            });
        return access_->open(cfg_);
    }

    // SIGHUP: the security files and certificates at the paths of cfg_ (a
    // reload may have changed them), the WebSocket rules likewise.
    void reload_security() override {
        if (bridges_) bridges_->reload_passwords();
        access_->reload(cfg_);
        transports_->configure_ws(cfg_);
        access_->install(cfg_, *broker_, bridges_ != nullptr);
    }

    // SIGHUP: the configuration file again. One with errors changes nothing.
    // Otherwise listeners, security files, limits, log level, [sys],
    // [metrics], [sparkplug] and bridges follow it; the restart-only keys
    // keep their running values. Connections on unchanged listeners stay.
    void reload() {
        log_info("reload requested (SIGHUP)");
        if (shutdown_.stopping()) return;
        if (!loader_) return reload_security();
        config::AppConfig next;
        std::vector<std::string> errors;
        if (!loader_(next, errors)) {
            for (const std::string& e : errors) log_error("reload: %s", e.c_str());
            log_error("reload refused: the configuration has errors; keeping the previous one in force");
            return;
        }
        apply_reload(cfg_, listeners_->open_slots(), std::move(next), *this);
        log_info("reload done: %zu listener(s), %zu bridge(s)", listeners_->open_count(), cfg_.bridges.size());
    }

    // ReloadSteps: what a reload does, in the order apply_reload asks.
    void adopt(config::AppConfig next) override {
        cfg_ = std::move(next);
        listeners_->resize(cfg_.listeners.size());
        std::vector<uint32_t> limits;
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) limits.push_back(cfg_.listeners[i].max_connections);
        admission_.limits().reconfigure(std::move(limits));
        if (listener_counts_) listener_counts_->grow(cfg_.listeners.size());
        set_log_level(cfg_.log_level);
        broker_->reconfigure(cfg_.broker);
        reactor_->set_max_lingering(cfg_.broker.max_connections);
    }

    void open_added_listener(size_t i) override {
        if (!open_listener(i)) return;   // logged; the slot stays closed
        const config::Listener& l = cfg_.listeners[i];
        if (config::anonymous_allowed(cfg_, i) && !config::is_loopback_address(l.address))
            log_warn("anonymous access is open on %s:%u, which is not a loopback address "
                     "(set [auth] allow_anonymous = false and a password_file)",
                     l.address.c_str(), unsigned(l.port));
    }

    void restart_sys() override {
        sys_.reset();
        open_sys();
        log_info("[sys] interval now %u s%s", unsigned(cfg_.sys_interval_s), cfg_.sys_interval_s == 0 ? " ($SYS off)" : "");
    }

    void reopen_metrics(const config::MetricsConfig& old) override {
        if (metrics_listener_ >= 0) {
            reactor_->close_listener(metrics_listener_);
            metrics_listener_ = -1;
            if (metrics_) metrics_->close_all();
            log_info("metrics endpoint on %s:%u closed", old.address.c_str(), unsigned(old.port));
        }
        open_metrics();   // logs where it listens, or why it cannot
    }

    // A listener the reload removed: no more accepts; its connections get
    // DISCONNECT "server shutting down" (v5) and are closed.
    void close_listener(size_t i) override {
        const config::Listener& l = cfg_.listeners[i];
        listeners_->close(i);
        const std::vector<net::ConnId> ids = admission_.connections_on(int(i));
        log_info("listener %s:%u removed by the reload: closing its %zu connection(s)", l.address.c_str(),
                 unsigned(listeners_->bound_port(i)), ids.size());
        for (net::ConnId id : ids) broker_->shut_down_connection(id);
    }

    void reload_bridges() override {
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
        broker_ = std::make_unique<broker::Broker>(cfg_.broker, transports_->transport(), *persistence_);
        broker::set_log_sink([](const char* line) { log_info("%s", line); });
        access_->install(cfg_, *broker_, false);
        broker_->recover();
        open_durable_acks();
        sys_started_ms_ = reactor_->now_ms();
        open_sys();
        return open_bridges() && open_modbus();
    }

    void open_durable_acks() {
        if (!log_) return;
        sync_io_ = make_sync_io(*log_, *persistence_, *reactor_);
        durable_ = std::make_unique<DurableAcks>(
            *sync_io_, cfg_.storage.sync, cfg_.sync_interval_ms,
            GroupCommitPolicy{cfg_.sync_window_us, cfg_.sync_batch_bytes}, sync_latency_,
            DurableAcks::Hooks{[this] { broker_->on_durable(); }, [this] { shutdown_.poll(reactor_->now_ms()); }});
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
        transports_->transport().bridges = {
            [this](net::ConnId id, std::span<const uint8_t> bytes) { bridges_->local_send(id, bytes); },
            [this](net::ConnId id) { bridges_->local_close(id); }};
        access_->install(cfg_, *broker_, true);
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
        admission_.limits().configure(std::move(limits));
        for (size_t i = 0; i < cfg_.listeners.size(); ++i)
            if (!open_listener(i)) return false;
        return true;
    }

    // Listens for slot `i` of cfg_.listeners (at start or added by a reload).
    bool open_listener(size_t i) {
        const config::Listener& l = cfg_.listeners[i];
        listeners_->resize(cfg_.listeners.size());
        std::string err;
        if (!listeners_->open(i, l.address, l.port, err)) {
            log_error("listen on %s:%u: %s", l.address.c_str(), unsigned(l.port), err.c_str());
            return false;
        }
        // With port 0 this is the port the kernel chose (tests parse it).
        bool ws = l.protocol == config::ListenerProtocol::WebSockets;
        log_info("listening on %s:%u%s%s", l.address.c_str(), unsigned(listeners_->bound_port(i)),
                 l.tls.enabled ? " (TLS)" : "", ws ? " (WebSockets)" : "");
        return true;
    }

    void on_signals() {
        signals_.drain([this](int signo) {
            switch (action_for(signo)) {
                case SignalAction::Shutdown:
                    shutdown_.request(signo == SIGINT ? "SIGINT" : "SIGTERM", reactor_->now_ms());
                    break;
                case SignalAction::Reload: reload(); break;
                case SignalAction::None: break;
            }
        });
    }

    // ShutdownSteps: what a graceful shutdown does, in the order shutdown_ asks.
    void announce() override { notifier_.send("STOPPING=1"); }
    void stop_accepting() override {
        reactor_->close_listeners();
        if (metrics_) metrics_->close_all();
    }
    void stop_clients_of_ours() override {
        if (bridges_) bridges_->stop();
        if (modbus_) modbus_->stop();
    }
    void disconnect_clients() override { broker_->shutdown(); }
    bool drained() const override {
        return reactor_->connection_count() == 0 && !(durable_ && durable_->in_flight());
    }
    void finish() override {
        if (log_) {
            if (log_->sync_now())
                log_info("store synced up to lsn %llu", unsigned_ll(log_->durable_lsn()));
            else
                log_error("final store sync failed");
        }
        reactor_->stop();
    }

    // The running configuration. Its listeners are a table: a reload appends
    // new ones and leaves a removed one's slot closed (listeners_), so
    // the per-listener state of every layer keeps its indices.
    config::AppConfig cfg_;
    ConfigLoader loader_;
    uint64_t sys_started_ms_ = 0;
    Notifier notifier_;
    // Declaration order is destruction order reversed: the broker goes first,
    // then what it refers to (persistence, log, transport, reactor).
    std::unique_ptr<net::Reactor> reactor_;
    std::unique_ptr<TransportStack> transports_;
    std::unique_ptr<ListenerTable> listeners_;   // the slots of cfg_.listeners
    std::unique_ptr<store::Log> log_;
    std::unique_ptr<broker::Persistence> persistence_;
    broker::LogPersistence* log_persistence_ = nullptr;  // == persistence_ when durable
    std::unique_ptr<AccessControl> access_;   // used by broker_: declared before it
    std::unique_ptr<broker::Broker> broker_;
    // Store syncs and the acknowledgements they release (null without a store).
    std::unique_ptr<SyncIo> sync_io_;
    std::unique_ptr<DurableAcks> durable_;
    std::unique_ptr<BridgeRunner> bridges_;   // refers to broker_: goes first
    std::unique_ptr<ModbusRunner> modbus_;    // likewise
    SignalFd signals_;

    Admission admission_;   // limits, open and refused connections
    StoreRefusalReport store_refusals_;


    Shutdown shutdown_{*this, kShutdownGraceMs};

    // [metrics]: null when off. Histogram bounds in seconds.
    std::unique_ptr<MetricsServer> metrics_;
    std::unique_ptr<ListenerCounts> listener_counts_;
    int metrics_listener_ = -1;
    uint64_t started_ms_ = 0;
    uint64_t pass_started_us_ = 0;
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
