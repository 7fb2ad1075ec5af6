#include "app/metrics_endpoint.hpp"

#include <string>

#include "app/log.hpp"
#include "hato_build.h"

namespace hato::app {

bool MetricsEndpoint::open() {
    if (cfg_.metrics.port == 0) return true;
    std::string err;
    listener_ = c_.listeners->open_unslotted(cfg_.metrics.address, cfg_.metrics.port, err);
    if (listener_ < 0) {
        log_error("metrics: listen on %s:%u: %s", cfg_.metrics.address.c_str(), unsigned(cfg_.metrics.port),
                  err.c_str());
        return false;
    }
    if (!server_)
        server_ = std::make_unique<MetricsServer>(*c_.reactor, cfg_.broker.connect_timeout_ms,
                                                   [this] { return status(); });
    log_info("metrics on http://%s:%u/metrics", cfg_.metrics.address.c_str(),
             unsigned(c_.reactor->bound_port(listener_)));
    return true;
}


void MetricsEndpoint::reopen(const config::MetricsConfig& old) {
    if (listener_ >= 0) {
        c_.reactor->close_listener(listener_);
        listener_ = -1;
        if (server_) server_->close_all();
        log_info("metrics endpoint on %s:%u closed", old.address.c_str(), unsigned(old.port));
    }
    open();   // logs where it listens, or why it cannot
}

void MetricsEndpoint::close_all() {
    if (server_) server_->close_all();
}

void MetricsEndpoint::on_tick(uint64_t now_ms) {
    if (server_) server_->on_tick(now_ms, c_.broker->stats());
}

void MetricsEndpoint::pass_end() {
    if (!pass_started_us_) return;
    loop_pass_.observe_us(monotonic_us() - pass_started_us_);
    pass_started_us_ = 0;
}

StatusData MetricsEndpoint::status() {
    StatusData d;
    d.version = HATO_VERSION;
    d.backend = c_.reactor->name();
    // From the broker's start, also when a reload turned [metrics] on later.
    d.uptime_s = double(c_.reactor->now_ms() - c_.sys_started_ms) / 1000.0;
    d.stats = c_.broker->stats();
    const broker::Broker::Counts counts = c_.broker->counts();
    d.route_cache_topics = counts.route_cache_topics;
    d.route_cache_matches = counts.route_cache_matches;
    for (size_t i = 0; i < cfg_.listeners.size(); ++i) {
        const config::Listener& l = cfg_.listeners[i];
        if (!c_.listeners->is_open(i)) continue;
        d.listeners.push_back({l.address + ":" + std::to_string(c_.listeners->bound_port(i)),
                               counts_.connected(i), counts_.accepted(i)});
    }
    d.listeners_open = !shutdown_.stopping();
    d.storage_enabled = c_.log != nullptr;
    if (c_.log) {
        d.store_bytes = c_.log->bytes_used();
        d.store_max_bytes = c_.log->max_bytes();
        d.store_segments = c_.log->segment_count();
        d.store_records = c_.log->record_count();
        d.store_dead_bytes = c_.log->dead_bytes();
        d.store_refusing = c_.log->refusing();
        d.store_sync_failing = c_.durable->failing();
        d.recent_refusal = server_->recent_refusal(c_.reactor->now_ms(), d.stats);
        d.sync_latency = &c_.sync_latency;
    }
    d.messages_in_per_s = server_->messages_in_per_s();
    if (c_.modbus) d.modbus = c_.modbus->status();
    d.messages_out_per_s = server_->messages_out_per_s();
    d.loop_pass = &loop_pass_;
    if (c_.bridges) d.bridges = c_.bridges->status();
    return d;
}

}  // namespace hato::app
