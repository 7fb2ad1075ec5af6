// The $SYS topics: what the broker and the wiring measured (SysGauges),
// Mosquitto's moving averages of the rates (LoadAverages), and the pure
// function that turns them into (topic, payload) pairs. Names follow
// Mosquitto's so existing tools (mosquitto-exporter, dashboards) keep
// working; hato's own values are under $SYS/broker/hato/ (docs/monitoring.md).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "broker/broker.hpp"

namespace hato::broker {

struct SysGauges {
    // Filled by Broker::fill_gauges.
    Stats stats;
    uint64_t sessions = 0;               // connected or not: clients/total
    uint64_t retained = 0;               // retained messages of clients ($SYS ones not counted)
    uint64_t subscriptions = 0;          // all, shared ones included
    uint64_t shared_subscriptions = 0;
    uint64_t held_messages = 0;          // retained + queued + in flight (one per session holding it)
    uint64_t held_bytes = 0;             // their topics, payloads and properties
    uint64_t route_cache_topics = 0;     // Broker::Counts
    uint64_t route_cache_matches = 0;

    // Filled by the wiring.
    std::string version;
    uint64_t uptime_s = 0;
    std::optional<uint64_t> heap_bytes;  // allocated by malloc, when the C library says
    bool store = false;                  // the durable store is in use: the fields below are set
    uint64_t store_bytes = 0;            // segment files in use
    uint64_t store_live_bytes = 0;       // of which records still live
    uint64_t store_max_bytes = 0;        // [storage] max_bytes_mb (0 = none)
    uint64_t store_free_bytes = 0;       // room before appends are refused (quota or file system)
    double store_fill_percent = 0;       // of max_bytes, or of the file system without one
    std::optional<double> sync_p50_ms;   // over the syncs of the last interval
    std::optional<double> sync_p99_ms;
};

// Per-minute rates averaged over 1, 5 and 15 minutes, updated once per
// interval the way Mosquitto does: rate = delta * 60 / dt, then
// avg = rate + exp(-dt / window) * (avg - rate). The first update only
// takes the counters as the starting point.
class LoadAverages {
public:
    enum Series : size_t {
        MessagesReceived, MessagesSent, BytesReceived, BytesSent,
        PublishReceived, PublishSent, PublishDropped, Connections, kSeries
    };
    static constexpr std::array<double, 3> kWindowsS = {60, 300, 900};

    void update(const SysGauges& g, double dt_s);
    double value(Series s, size_t window) const { return avg_[s][window]; }
    // The counter each series follows.
    static uint64_t counter(const SysGauges& g, Series s);

private:
    bool started_ = false;
    std::array<uint64_t, kSeries> last_{};
    std::array<std::array<double, 3>, kSeries> avg_{};
};

struct SysMessage {
    std::string topic;
    std::string payload;
};

// Every $SYS topic with its current value (the store and sync ones only when
// the gauges have them).
std::vector<SysMessage> sys_topics(const SysGauges& g, const LoadAverages& load);

}  // namespace hato::broker
