// The [metrics] endpoint as the server runs it: its listener (which takes
// the next reactor listener index and has no slot), the HTTP connections,
// the per-listener connection counts, the loop-pass timing, and the status
// /metrics and /status show, gathered from the running parts. Once created,
// the MetricsServer stays: a reload that turns the endpoint off closes its
// listener and connections only.
#pragma once

#include <cstdint>
#include <memory>

#include "app/components.hpp"
#include "app/metrics.hpp"
#include "app/shutdown.hpp"
#include "config/config.hpp"

namespace hato::app {

class MetricsEndpoint {
public:
    // `cfg` is the running configuration (a reload replaces it in place).
    // Connections are counted per listener from the start, with [metrics]
    // off too: a reload that turns it on shows the ones already there.
    MetricsEndpoint(const config::AppConfig& cfg, Components& c, const Shutdown& shutdown)
        : cfg_(cfg), c_(c), shutdown_(shutdown), counts_(cfg.listeners.size()) {}

    // Listens where cfg says (port 0: off); false (logged) when it cannot.
    bool open();
    // A reload moved it: the old listener and its connections close first.
    void reopen(const config::MetricsConfig& old);
    // Shutdown: its connections close with the clients'.
    void close_all();

    bool is_listener(int reactor_listener) const { return server_ && reactor_listener == listener_; }
    // A connection on its listener: false when refused (shutting down, full).
    bool accept(net::ConnId id) { return !shutdown_.stopping() && server_->on_open(id); }
    bool owns(net::ConnId id) const { return server_ && server_->owns(id); }
    void on_data(net::ConnId id, std::span<const uint8_t> data) { server_->on_data(id, data); }
    // True if `id` was one of its connections.
    bool on_close(net::ConnId id) { return server_ && server_->on_close(id); }
    void on_tick(uint64_t now_ms);

    // Client connections per listener slot.
    void opened(net::ConnId id, int slot) { counts_.opened(id, slot); }
    void closed(net::ConnId id) { counts_.closed(id); }
    // After a reload: counts for listeners it added, its request timeout.
    void adopt_config() {
        counts_.grow(cfg_.listeners.size());
        if (server_) server_->set_request_timeout(cfg_.broker.connect_timeout_ms);
    }

    // Loop-pass time: from the first event a pass hands over to its end
    // (the wait for events is not part of it). Only timed with [metrics] on.
    void pass_activity() {
        if (server_ && !pass_started_us_) pass_started_us_ = monotonic_us();
    }
    void pass_end();

private:
    StatusData status();

    const config::AppConfig& cfg_;
    Components& c_;
    const Shutdown& shutdown_;
    std::unique_ptr<MetricsServer> server_;   // null until first on
    ListenerCounts counts_;
    int listener_ = -1;
    uint64_t pass_started_us_ = 0;
    Histogram loop_pass_{{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                          0.05, 0.1, 0.25}};
};

}  // namespace hato::app
