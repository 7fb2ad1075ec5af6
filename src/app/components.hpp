// The running broker's parts and how each is built from the configuration
// at start (startup.cpp); server.cpp routes the loop's events to them.
// Members are declared so that destruction (reverse order) removes a part
// before what it refers to: the bridges and Modbus pollers before the
// broker, the broker before access control, persistence, the log and the
// transports, the reactor last.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "app/access_control.hpp"
#include "app/bridge_runner.hpp"
#include "app/durable_acks.hpp"
#include "app/listener_table.hpp"
#include "app/metrics.hpp"
#include "app/modbus_runner.hpp"
#include "app/notify.hpp"
#include "app/sys_publisher.hpp"
#include "app/transport_stack.hpp"
#include "broker/broker.hpp"
#include "broker/log_persistence.hpp"
#include "broker/persistence.hpp"
#include "config/config.hpp"
#include "net/reactor.hpp"
#include "store/log.hpp"

namespace hato::app {

struct Components {
    Notifier notifier;   // sd_notify
    std::unique_ptr<net::Reactor> reactor;
    std::unique_ptr<TransportStack> transports;
    std::unique_ptr<ListenerTable> listeners;   // the slots of the configuration's listeners
    std::unique_ptr<store::Log> log;             // null with storage disabled
    std::unique_ptr<broker::Persistence> persistence;
    broker::LogPersistence* log_persistence = nullptr;   // == persistence when durable
    std::unique_ptr<AccessControl> access;
    // Store syncs (start to end), for /metrics and $SYS alike.
    Histogram sync_latency{kSyncLatencyBoundsS};
    std::unique_ptr<broker::Broker> broker;
    // Store syncs and the acknowledgements they release (null without a store).
    std::unique_ptr<SyncIo> sync_io;
    std::unique_ptr<DurableAcks> durable;
    uint64_t sys_started_ms = 0;
    std::unique_ptr<SysPublisher> sys;   // null with [sys] interval = 0
    std::unique_ptr<BridgeRunner> bridges;
    std::unique_ptr<ModbusRunner> modbus;
};

// The loop's tick: 100 ms, shorter for sync = "interval" or the systemd
// watchdog (0: none) when they need it, never under 1 ms.
uint32_t tick_interval_ms(const config::AppConfig& cfg, uint64_t watchdog_ms);

// Each false (already logged) when start-up must stop.
bool open_reactor(const config::AppConfig& cfg, Components& c);
bool open_security(const config::AppConfig& cfg, Components& c);
bool open_store(const config::AppConfig& cfg, Components& c);
// The broker, recovered, and what runs on it (durable acks, $SYS, bridges,
// Modbus). `settled` runs after each store sync that ended well.
bool open_broker(const config::AppConfig& cfg, Components& c, std::function<void()> settled);
bool open_bridges(const config::AppConfig& cfg, Components& c);
void open_sys(const config::AppConfig& cfg, Components& c);
// Listens for slot `i` of cfg.listeners (at start or added by a reload).
bool open_listener(const config::AppConfig& cfg, Components& c, size_t i);

}  // namespace hato::app
