#include "app/server.hpp"

#include <malloc.h>

#include <csignal>
#include <cstring>
#include <optional>
#include <string>

#include "app/admission.hpp"
#include "app/components.hpp"
#include "app/log.hpp"
#include "app/metrics_endpoint.hpp"
#include "app/reload.hpp"
#include "app/report_throttle.hpp"
#include "app/shutdown.hpp"
#include "app/signals.hpp"
#include "app/store_refusal_report.hpp"

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

using unsigned_ll = unsigned long long;

class Server final : public net::Handler, private ShutdownSteps, private ReloadSteps {
public:
    Server(const config::AppConfig& cfg, ConfigLoader loader) : cfg_(cfg), loader_(std::move(loader)) {}

    // Everything before the loop; false (already logged) if start-up failed.
    bool start() {
        return open_reactor(cfg_, c_) && open_signals() && open_security(cfg_, c_) && open_store(cfg_, c_) &&
               open_broker(cfg_, c_, [this] { shutdown_.poll(c_.reactor->now_ms()); }) && open_listeners() &&
               metrics_.open();
    }

    int run() {
        // Readiness: listeners are open and the store is recovered.
        c_.notifier.send("READY=1");
        log_info("ready");
        c_.reactor->run(*this);
        const broker::Stats& s = c_.broker->stats();
        log_info("stopped: %llu messages in, %llu out, %llu QoS 0 dropped, %llu queued dropped, "
                 "%llu store refusals, %llu bytes received in place",
                 unsigned_ll(s.messages_in), unsigned_ll(s.messages_out),
                 unsigned_ll(s.qos0_dropped), unsigned_ll(s.queued_dropped), unsigned_ll(s.store_refusals),
                 unsigned_ll(s.partial_bytes_in_place));
        return exit_code_;
    }

    // net::Handler
    void on_open(net::ConnId id, int reactor_listener, const std::string& peer) override {
        if (metrics_.is_listener(reactor_listener)) {
            if (!metrics_.accept(id)) refuse(id);
            return;
        }
        metrics_.pass_activity();
        // From here on a listener is its slot in cfg_.listeners.
        const int listener_index = c_.listeners->slot_of(reactor_listener);
        // A metrics listener a reload closed: its accept raced the close.
        if (listener_index < 0) return refuse(id);
        const Admission::Verdict verdict =
            admission_.decide(listener_index, shutdown_.stopping(), cfg_.broker.max_connections);
        if (verdict != Admission::Verdict::Admit) {
            if (std::optional<uint64_t> n = admission_.note_refusal(c_.reactor->now_ms()))
                log_warn("refusing connection from %s: %s (%llu refused since the last report)", peer.c_str(),
                         Admission::reason(verdict), unsigned_ll(*n));
            return refuse(id);
        }
        admission_.admitted(id, listener_index);
        log_debug("connection %llu from %s on listener %d", unsigned_ll(id), peer.c_str(), listener_index);
        metrics_.opened(id, listener_index);
        c_.transports->on_open(id, listener_index, peer);
        c_.access->note_peer(id, peer);
        c_.broker->on_open(id, listener_index, peer);
    }

    void on_data(net::ConnId id, std::span<const uint8_t> data) override {
        if (admission_.is_refused(id)) return;
        metrics_.pass_activity();
        if (metrics_.owns(id)) return metrics_.on_data(id, data);
        if (c_.bridges && c_.bridges->owns_upstream(id)) return c_.bridges->on_upstream_data(id, data);
        std::optional<std::string> identity;   // the TLS client's, with its first MQTT bytes
        const bool deliver = c_.transports->unwrap(id, data, identity);
        if (identity) c_.broker->set_identity(id, *identity);
        if (!deliver) return;
        c_.broker->on_data(id, data);
    }

    // Only a plain MQTT client's own stream goes in place (receive_target);
    // the broker's check comes first, as it is false for almost every call.
    bool wants_in_place(net::ConnId id) override {
        return c_.broker->wants_in_place(id) && in_place_allowed(id);
    }
    // (The broker's receive_target checks what its wants_in_place does.)
    std::span<uint8_t> receive_target(net::ConnId id, size_t limit) override {
        return in_place_allowed(id) ? c_.broker->receive_target(id, limit) : std::span<uint8_t>{};
    }
    void on_received_in_place(net::ConnId id, size_t n) override {
        metrics_.pass_activity();
        c_.broker->on_received_in_place(id, n);
    }
    bool in_place_allowed(net::ConnId id) const {
        return !admission_.is_refused(id) && !metrics_.owns(id) && !(c_.bridges && c_.bridges->owns_upstream(id)) &&
               c_.transports->plain(id);
    }

    // An MQTT client that half-closes after its last packets is sent the
    // answers to them (the broker closes once they are out); the metrics
    // endpoint's and the bridges' own connections close at once.
    bool on_peer_eof(net::ConnId id) override {
        if (admission_.is_refused(id) || metrics_.owns(id) || (c_.bridges && c_.bridges->owns_upstream(id)))
            return false;
        c_.broker->on_peer_eof(id);
        return true;
    }

    // Out of descriptors: connections wait in the backlog, unanswered, which
    // looks like a hung broker from the client's side; say why, once a minute.
    void on_accept_paused(int reactor_listener, int error) override {
        const std::optional<uint64_t> pauses = accept_pauses_.note(c_.reactor->now_ms());
        if (!pauses) return;
        const int slot = c_.listeners->slot_of(reactor_listener);
        const std::string where = slot >= 0 ? cfg_.listeners[size_t(slot)].address + ":" +
                                                   std::to_string(c_.listeners->bound_port(size_t(slot)))
                                            : "the metrics listener";
        log_warn("cannot accept on %s: %s; new connections wait until descriptors free up "
                 "(raise LimitNOFILE/ulimit -n or lower [limits] max_connections; %llu pauses since the last report)",
                 where.c_str(), std::strerror(error), unsigned_ll(*pauses));
    }

    void on_close(net::ConnId id, int error) override {
        if (admission_.forget_refused(id)) return;
        if (metrics_.on_close(id)) return shutdown_.poll(c_.reactor->now_ms());
        metrics_.pass_activity();
        if (c_.bridges && c_.bridges->owns_upstream(id)) {
            c_.bridges->on_upstream_close(id, error);
            return shutdown_.poll(c_.reactor->now_ms());
        }
        metrics_.closed(id);
        c_.transports->on_close(id);
        c_.access->forget_peer(id);
        admission_.closed(id);
        if (error) log_debug("connection %llu closed: %s", unsigned_ll(id), std::strerror(error));
        else log_debug("connection %llu closed", unsigned_ll(id));
        c_.broker->on_close(id);
        shutdown_.poll(c_.reactor->now_ms());
    }

    void on_tick(uint64_t now_ms) override {
        metrics_.pass_activity();
        c_.broker->on_tick(now_ms);
        metrics_.on_tick(now_ms);
        if (c_.bridges) c_.bridges->on_tick(now_ms);
        c_.transports->on_tick(now_ms);
        c_.notifier.watchdog_tick(now_ms);
        c_.access->on_tick();
        if (c_.durable) c_.durable->on_tick(now_ms);
        // Any sync mode: the data's sync (durable_acks), or one compaction
        // runs itself (the directory's; with sync = off, the copies').
        if (c_.log && c_.log->io_failed() && exit_code_ == 0) {
            log_error("store: a sync failed; no later sync can prove that what it covered reached the disk, so "
                      "nothing written since is acknowledged. Stopping, so that a restart recovers from what the "
                      "disk holds (the packaged service restarts on failure); clients resend what was not "
                      "acknowledged");
            exit_code_ = 1;
            if (!shutdown_.stopping()) shutdown_.request("store sync failed", now_ms);
        }
        if (c_.log_persistence && !shutdown_.stopping())
            c_.log_persistence->maintenance(kCompactionBudget, kIdleCompactionBytes);
        report_store_refusals(now_ms);   // what the last second suppressed
        if (c_.sys && !shutdown_.stopping()) c_.sys->on_tick(now_ms, *c_.broker);
        if (c_.modbus) c_.modbus->publish_sys(now_ms, cfg_.sys_interval_s);
        give_back_heap(now_ms);
        shutdown_.poll(now_ms);
    }

    // Large blocks come from the heap and are kept for reuse under load
    // (keep_large_blocks, main.cpp); what a burst or a departed client freed
    // is given back to the kernel once a second, so RSS follows what is in use.
    void give_back_heap(uint64_t now_ms) {
        if (now_ms < next_heap_trim_ms_) return;
        next_heap_trim_ms_ = now_ms + kHeapTrimIntervalMs;
        malloc_trim(0);
    }

    void on_pass_end() override {
        if (c_.bridges) c_.bridges->flush();   // their acknowledgements join this pass's commit
        if (c_.modbus) c_.modbus->flush();
        c_.broker->on_pass_end();
        // Paced to this pass's appends; before the sync, so copies ride along.
        if (c_.log_persistence && !shutdown_.stopping()) c_.log_persistence->maintenance(0);
        report_store_refusals(c_.reactor->now_ms());
        if (c_.durable) c_.durable->on_pass_end();
        shutdown_.poll(c_.reactor->now_ms());
        metrics_.pass_end();
    }

private:
    // Closed at once: the broker never hears of it, nor of its close.
    void refuse(net::ConnId id) {
        admission_.refused(id);
        c_.reactor->close(id, false);
    }

    void report_store_refusals(uint64_t now_ms) {
        if (std::optional<std::string> line = store_refusals_.due(c_.broker->stats(), now_ms))
            log_error("%s", line->c_str());
    }

    bool open_signals() {
        std::string err;
        if (!signals_.open(err)) {
            log_error("%s", err.c_str());
            return false;
        }
        c_.reactor->watch_readable(signals_.fd(), [this] { on_signals(); });
        return true;
    }

    // SIGHUP: the security files and certificates at the paths of cfg_ (a
    // reload may have changed them), the WebSocket rules likewise.
    void reload_security() override {
        if (c_.bridges) c_.bridges->reload_passwords();
        c_.access->reload(cfg_);
        c_.transports->configure_ws(cfg_);
        c_.access->install(cfg_, *c_.broker);
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
        if (!apply_reload(cfg_, c_.listeners->open_slots(), std::move(next), *this)) {
            log_error("reload refused: a new listener cannot open; keeping the previous configuration in force");
            return;
        }
        log_info("reload done: %zu listener(s), %zu bridge(s)", c_.listeners->open_count(), cfg_.bridges.size());
    }

    // ReloadSteps: what a reload does, in the order apply_reload asks.
    void adopt(config::AppConfig next) override {
        cfg_ = std::move(next);
        c_.listeners->resize(cfg_.listeners.size());
        std::vector<uint32_t> limits;
        for (size_t i = 0; i < cfg_.listeners.size(); ++i) limits.push_back(cfg_.listeners[i].max_connections);
        admission_.set_listener_limits(std::move(limits));
        metrics_.adopt_config();
        set_log_level(cfg_.log_level);
        c_.broker->reconfigure(cfg_.broker);
        c_.reactor->set_max_lingering(cfg_.broker.max_connections);
    }

    bool can_listen(const std::string& address, uint16_t port, std::string& err) override {
        return net::can_listen(address, port, err);
    }

    void open_added_listener(size_t i) override {
        const config::Listener& l = cfg_.listeners[i];
        if (!c_.access->ready_to_open(l)) {
            log_error("listener %s:%u not opened: its certificate, password file or ACL file did not load "
                      "(see above); fix it and reload",
                      l.address.c_str(), unsigned(l.port));
            return;
        }
        if (!open_listener(cfg_, c_, i)) return;   // logged; the slot stays closed
        if (config::anonymous_allowed(cfg_, i) && !config::is_loopback_address(l.address))
            log_warn("anonymous access is open on %s:%u, which is not a loopback address "
                     "(set [auth] allow_anonymous = false and a password_file)",
                     l.address.c_str(), unsigned(l.port));
    }

    void restart_sys() override {
        if (c_.sys && cfg_.sys_interval_s != 0) {
            c_.sys->set_interval(cfg_.sys_interval_s);
        } else {
            c_.sys.reset();
            open_sys(cfg_, c_);
            // Off: its last figures must not stay retained, as if current.
            if (!c_.sys) c_.broker->forget_internal_retained("$SYS/");
        }
        log_info("[sys] interval now %u s%s", unsigned(cfg_.sys_interval_s),
                 cfg_.sys_interval_s == 0 ? " ($SYS off)" : "");
    }

    void reopen_metrics(const config::MetricsConfig& old) override { metrics_.reopen(old); }

    // A listener the reload removed: no more accepts; its connections get
    // DISCONNECT "server shutting down" (v5) and are closed.
    void close_listener(size_t i) override {
        const config::Listener& l = cfg_.listeners[i];
        c_.listeners->close(i);
        const std::vector<net::ConnId> ids = admission_.connections_on(int(i));
        log_info("listener %s:%u removed by the reload: closing its %zu connection(s)", l.address.c_str(),
                 unsigned(c_.listeners->bound_port(i)), ids.size());
        for (net::ConnId id : ids) c_.broker->shut_down_connection(id);
    }

    void reload_bridges() override {
        if (!c_.bridges) {
            if (!open_bridges(cfg_, c_)) log_error("reload: the bridges could not start");
            return;
        }
        std::string err;
        if (!c_.bridges->reconfigure(cfg_.bridges, err)) {
            log_error("reload of the bridges failed: %s (the running bridges stay)", err.c_str());
            return;
        }
        BridgeRunner::settle_unconfigured(*c_.broker, cfg_.bridges);
    }

    bool open_listeners() {
        std::vector<uint32_t> limits;
        for (const config::Listener& l : cfg_.listeners) limits.push_back(l.max_connections);
        admission_.set_listener_limits(std::move(limits));
        for (size_t i = 0; i < cfg_.listeners.size(); ++i)
            if (!open_listener(cfg_, c_, i)) return false;
        return true;
    }

    void on_signals() {
        signals_.drain([this](int signo) {
            switch (action_for(signo)) {
                case SignalAction::Shutdown:
                    shutdown_.request(signo == SIGINT ? "SIGINT" : "SIGTERM", c_.reactor->now_ms());
                    break;
                case SignalAction::Reload: reload(); break;
                case SignalAction::None: break;
            }
        });
    }

    // ShutdownSteps: what a graceful shutdown does, in the order shutdown_ asks.
    void announce() override { c_.notifier.send("STOPPING=1"); }
    void stop_accepting() override {
        c_.reactor->close_listeners();
        metrics_.close_all();
    }
    void stop_clients_of_ours() override {
        if (c_.bridges) c_.bridges->stop();
        if (c_.modbus) c_.modbus->stop();
    }
    void disconnect_clients() override { c_.broker->shutdown(); }
    bool drained() const override {
        return c_.reactor->connection_count() == 0 && !(c_.durable && c_.durable->in_flight());
    }
    void finish() override {
        if (c_.log) {
            if (c_.log->sync_now()) {
                log_info("store synced up to lsn %llu", unsigned_ll(c_.log->durable_lsn()));
            } else {
                log_error("final store sync failed");
                exit_code_ = 1;
            }
        }
        c_.reactor->stop();
    }

    // The running configuration. Its listeners are a table: a reload appends
    // new ones and leaves a removed one's slot closed (c_.listeners), so
    // the per-listener state of every layer keeps its indices.
    config::AppConfig cfg_;
    ConfigLoader loader_;
    Components c_;   // the parts, built by startup.cpp
    SignalFd signals_;
    int exit_code_ = 0;   // run_server's: 1 after a store sync failed

    Admission admission_;   // limits, open and refused connections
    ReportThrottle accept_pauses_{60000};   // on_accept_paused: a line a minute
    StoreRefusalReport store_refusals_;
    Shutdown shutdown_{*this, kShutdownGraceMs};

    MetricsEndpoint metrics_{cfg_, c_, shutdown_};   // [metrics]

    static constexpr uint64_t kHeapTrimIntervalMs = 1000;
    uint64_t next_heap_trim_ms_ = 0;
};

}  // namespace

int run_server(const config::AppConfig& cfg, ConfigLoader loader) {
    Server server(cfg, std::move(loader));
    if (!server.start()) return 1;
    return server.run();
}

}  // namespace hato::app
