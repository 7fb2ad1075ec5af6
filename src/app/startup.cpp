#include "app/components.hpp"

#include <algorithm>
#include <string>

#include "app/log.hpp"
#include "broker/log_sink.hpp"

namespace hato::app {

namespace {

constexpr uint32_t kDefaultTickMs = 100;

net::Backend backend_from_name(const std::string& name) {
    if (name == "io_uring") return net::Backend::IoUring;
    if (name == "epoll") return net::Backend::Epoll;
    return net::Backend::Auto;
}

void open_durable_acks(const config::AppConfig& cfg, Components& c, std::function<void()> settled);
bool open_modbus(const config::AppConfig& cfg, Components& c);

}  // namespace

uint32_t tick_interval_ms(const config::AppConfig& cfg, uint64_t watchdog_ms) {
    uint32_t tick_ms = kDefaultTickMs;
    if (cfg.storage_enabled && cfg.storage.sync == store::SyncMode::Interval)
        tick_ms = std::min(tick_ms, cfg.sync_interval_ms);
    if (watchdog_ms > 0) tick_ms = uint32_t(std::min<uint64_t>(tick_ms, watchdog_ms));
    return std::max<uint32_t>(tick_ms, 1);
}

bool open_reactor(const config::AppConfig& cfg, Components& c) {
    std::string note;
    c.reactor = net::Reactor::create(backend_from_name(cfg.event_backend), note);
    if (!c.reactor) {
        log_error("event backend %s: %s", cfg.event_backend.c_str(), note.c_str());
        return false;
    }
    if (std::string(c.reactor->name()) == "epoll" && !note.empty())
        log_info("event backend: epoll (io_uring unavailable: %s)", note.c_str());
    else
        log_info("event backend: %s", c.reactor->name());

    c.reactor->set_tick_interval(tick_interval_ms(cfg, c.notifier.watchdog_interval_ms()));
    // Closed connections waiting for their peer's EOF: never more than live ones.
    c.reactor->set_max_lingering(cfg.broker.max_connections);
    c.transports = std::make_unique<TransportStack>(*c.reactor);
    c.listeners = std::make_unique<ListenerTable>(*c.reactor);
    c.transports->configure_ws(cfg);
    return true;
}

bool open_store(const config::AppConfig& cfg, Components& c) {
    if (!cfg.storage_enabled) {
        log_info("storage disabled: sessions and retained messages live in memory only");
        c.persistence = std::make_unique<broker::MemoryPersistence>();
        return true;
    }
    std::string err;
    c.log = store::Log::open(cfg.storage, err);
    if (!c.log) {
        log_error("store %s: %s", cfg.storage.dir.c_str(), err.c_str());
        return false;
    }
    log_info("recovered %s", c.log->recovery_summary().c_str());
    for (const std::string& e : c.log->recovery_errors()) log_error("store: %s", e.c_str());
    auto durable = std::make_unique<broker::LogPersistence>(*c.log, cfg.storage.sync);
    c.log_persistence = durable.get();
    c.persistence = std::move(durable);
    return true;
}

namespace {

void open_durable_acks(const config::AppConfig& cfg, Components& c, std::function<void()> settled) {
    if (!c.log) return;
    c.sync_io = make_sync_io(*c.log, *c.persistence, *c.reactor);
    c.durable = std::make_unique<DurableAcks>(
        *c.sync_io, cfg.storage.sync, cfg.sync_interval_ms,
        GroupCommitPolicy{cfg.sync_window_us, cfg.sync_batch_bytes}, c.sync_latency,
        DurableAcks::Hooks{[&c] { c.broker->on_durable(); }, std::move(settled)});
}

bool open_modbus(const config::AppConfig& cfg, Components& c) {
    if (cfg.modbus.empty()) return true;
    c.modbus = std::make_unique<ModbusRunner>(cfg.modbus, *c.reactor);
    std::string err;
    if (!c.modbus->start(*c.broker, err)) {
        log_error("%s", err.c_str());
        return false;
    }
    return true;
}

}  // namespace

bool open_broker(const config::AppConfig& cfg, Components& c, std::function<void()> settled) {
    c.broker = std::make_unique<broker::Broker>(cfg.broker, c.transports->transport(), *c.persistence);
    broker::set_log_sink([](const char* line) { log_info("%s", line); });
    c.access->install(cfg, *c.broker);
    c.broker->recover();
    if (const size_t unread = c.log_persistence ? c.log_persistence->unread_records() : 0) {
        log_error("store: %zu record(s) this version cannot read (a type it does not know, or a body that does "
                  "not decode: written by a newer hato?) are kept as they are; what they hold is not served "
                  "until a version that reads them runs ('hato store dump' shows them)", unread);
    }
    open_durable_acks(cfg, c, std::move(settled));
    c.sys_started_ms = c.reactor->now_ms();
    open_sys(cfg, c);
    return open_bridges(cfg, c) && open_modbus(cfg, c);
}

// The bridges' local sessions are internal: no credentials, no ACL.
bool open_bridges(const config::AppConfig& cfg, Components& c) {
    BridgeRunner::settle_unconfigured(*c.broker, cfg.bridges);
    if (cfg.bridges.empty()) return true;
    c.bridges = std::make_unique<BridgeRunner>(cfg.bridges, *c.reactor);
    c.transports->transport().bridges = {
        [&c](net::ConnId id, std::span<const uint8_t> bytes) { c.bridges->local_send(id, bytes); },
        [&c](net::ConnId id) { c.bridges->local_close(id); },
        [&c](net::ConnId id) { return c.bridges->local_queued(id); }};
    std::string err;
    if (!c.bridges->start(*c.broker, err)) {
        log_error("%s", err.c_str());
        // Not kept half-started (a reload that adds the first bridges): it
        // failed before touching the broker, and the next reload starts
        // the bridges afresh.
        c.transports->transport().bridges = {};
        c.bridges.reset();
        return false;
    }
    return true;
}

// Also what a reload that changes [sys] calls: the bridges' topics are
// asked for at each publication, whenever the bridges were opened.
void open_sys(const config::AppConfig& cfg, Components& c) {
    if (cfg.sys_interval_s == 0) return;
    c.sys = std::make_unique<SysPublisher>(cfg.sys_interval_s, c.sys_started_ms, c.log.get(), cfg.storage.dir,
                                          c.sync_latency);
    c.sys->set_extra([&c](uint64_t, std::vector<broker::SysMessage>& out) {
        if (c.bridges) c.bridges->sys_topics(out);
    });
}

bool open_listener(const config::AppConfig& cfg, Components& c, size_t i) {
    const config::Listener& l = cfg.listeners[i];
    c.listeners->resize(cfg.listeners.size());
    std::string err;
    if (!c.listeners->open(i, l.address, l.port, err)) {
        log_error("listen on %s:%u: %s", l.address.c_str(), unsigned(l.port), err.c_str());
        return false;
    }
    // With port 0 this is the port the kernel chose (tests parse it).
    bool ws = l.protocol == config::ListenerProtocol::WebSockets;
    log_info("listening on %s:%u%s%s", l.address.c_str(), unsigned(c.listeners->bound_port(i)),
             l.tls.enabled ? " (TLS)" : "", ws ? " (WebSockets)" : "");
    return true;
}

// Password files, ACL files and TLS contexts: any error stops the start.
bool open_security(const config::AppConfig& cfg, Components& c) {
    c.access = std::make_unique<AccessControl>(
        *c.reactor, c.transports->tls(),
        [&c](broker::ConnId id, uint64_t request, const broker::AuthVerdict& verdict) {
            c.broker->on_auth_result(id, request, verdict);
        });
    return c.access->open(cfg);
}

}  // namespace hato::app
