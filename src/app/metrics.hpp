// The metrics and status endpoint: connections of the [metrics] listener are
// read with the HTTP codec (net/http.hpp) and answered from a snapshot of the
// broker's counters, on the reactor thread like everything else:
//   GET /metrics      Prometheus text format 0.0.4
//   GET /healthz      200 "ok", or 503 with a one-line reason
//   GET /             a self-contained HTML status page
//   GET /status.json  the data of that page
// One request per connection, answered with Connection: close.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker.hpp"
#include "net/reactor.hpp"

namespace hato::app {

// A Prometheus histogram over durations, observed in microseconds. Besides
// the totals /metrics shows, quantiles over any period come from the
// difference of two snapshots of counts() (the $SYS interval figures).
class Histogram {
public:
    using Counts = std::vector<uint64_t>;

    explicit Histogram(std::vector<double> upper_bounds_s);
    void observe_us(uint64_t us);
    const std::vector<double>& bounds() const { return bounds_; }
    const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, not cumulative; last = +Inf
    uint64_t count() const { return count_; }
    uint64_t sum_us() const { return sum_us_; }
    // Estimate of quantile q (0..1) in seconds: the upper bound of the bucket
    // it falls in (the largest finite bound for the +Inf bucket); 0 if empty.
    double quantile_s(double q) const;
    // The q-quantile (0..1) of what was observed between the snapshots
    // `before` (empty: nothing) and `now`, in milliseconds, interpolated
    // inside its bucket (the +Inf bucket answers its lower bound); none if
    // nothing was observed in between.
    std::optional<double> quantile_ms(const Counts& now, const Counts& before, double q) const;

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t sum_us_ = 0;
};

// The store-sync histogram's bounds: 1-2.5-5 steps from 50 us to 10 s, fine
// enough both for /metrics and for the interpolated $SYS p50/p99.
inline const std::vector<double> kSyncLatencyBoundsS = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct ListenerStatus {
    std::string name;           // "address:port" (the bound port)
    uint64_t connected = 0;     // open connections now
    uint64_t accepted = 0;      // connections accepted since start
};

// A [[modbus]] device's counters and state.
struct ModbusStatus {
    std::string device;
    bool online = false;
    uint64_t polls = 0, skipped = 0, requests = 0, errors = 0;
    uint64_t writes_refused = 0;   // the device's write queue was full
    double latency_sum_s = 0, latency_max_s = 0;
};

// One bridge (docs/bridge.md): its state and store-and-forward backlog.
struct BridgeStatus {
    std::string name;
    bool connected = false;         // upstream connected and ready
    uint64_t backlog_messages = 0;  // queued + in flight upstream
    uint64_t backlog_bytes = 0;
    double oldest_age_s = 0;        // age of the oldest backlog message; 0 when empty
    uint64_t backlog_dropped = 0;   // dropped from the backlog: max_queued_bytes (when_full) or a full store (this run)
    uint64_t forwarded_out = 0;     // messages sent upstream (this run)
    uint64_t forwarded_in = 0;      // messages received from upstream (this run)
    uint64_t too_large_out = 0;     // dropped: larger than the upstream takes (this run)
    uint64_t too_large_in = 0;      // dropped: larger than the local broker takes (this run)
    uint64_t unmappable_out = 0;    // dropped: a rule maps the topic to an invalid one (this run)
    uint64_t unmappable_in = 0;
    uint64_t refused_out = 0;       // refused by the upstream (v5 reason code >= 0x80, this run)
    uint64_t refused_in = 0;        // refused for good by the local broker, dropped (this run)
    uint64_t closes_on_same = 0;    // bridge::Link::closes_on_same_message
};

// Everything the endpoint reports, gathered by the wiring per request.
struct StatusData {
    std::string version;
    std::string backend;
    double uptime_s = 0;
    broker::Stats stats;
    uint64_t route_cache_topics = 0;    // Broker::Counts
    uint64_t route_cache_matches = 0;
    std::vector<ListenerStatus> listeners;
    bool listeners_open = true;
    bool storage_enabled = false;
    uint64_t store_bytes = 0;
    uint64_t store_max_bytes = 0;   // 0: no limit
    uint64_t store_segments = 0;
    uint64_t store_records = 0;
    uint64_t store_dead_bytes = 0;
    bool store_refusing = false;
    bool store_sync_failing = false;
    // Why the store last refused a durable write, when that was less than
    // MetricsServer::kRefusalMemoryMs ago (a write larger than the free space
    // is refused before the log is full); null otherwise.
    const char* recent_refusal = nullptr;
    double messages_in_per_s = 0;   // over the last sampling second
    double messages_out_per_s = 0;
    const Histogram* sync_latency = nullptr;  // null without storage
    const Histogram* loop_pass = nullptr;
    std::vector<ModbusStatus> modbus;
    std::vector<BridgeStatus> bridges;
};

// Renderers, pure (unit-testable).
std::string render_prometheus(const StatusData& d);
std::string render_status_json(const StatusData& d);
std::string render_status_html(const StatusData& d);
// True when healthy; otherwise `reason` says why, in one line.
bool healthy(const StatusData& d, std::string& reason);

// Connections per listener, counted by the wiring on open and close.
class ListenerCounts {
public:
    explicit ListenerCounts(size_t listeners) : connected_(listeners, 0), accepted_(listeners, 0) {}
    // A reload added listeners.
    void grow(size_t listeners) {
        if (listeners > connected_.size()) {
            connected_.resize(listeners, 0);
            accepted_.resize(listeners, 0);
        }
    }
    void opened(net::ConnId id, int listener);
    void closed(net::ConnId id);
    uint64_t connected(size_t listener) const { return connected_[listener]; }
    uint64_t accepted(size_t listener) const { return accepted_[listener]; }

private:
    std::unordered_map<net::ConnId, int> listener_of_;
    std::vector<uint64_t> connected_;
    std::vector<uint64_t> accepted_;
};

class MetricsServer {
public:
    // Requests open at once; beyond it a new connection replaces the oldest
    // unanswered one (408), or is closed on accept if all are answered.
    static constexpr size_t kMaxConnections = 64;

    MetricsServer(net::Reactor& reactor, uint64_t request_timeout_ms, std::function<StatusData()> collect)
        : reactor_(reactor), timeout_ms_(request_timeout_ms), collect_(std::move(collect)) {}

    // False when kMaxConnections are open and answered: the caller closes it.
    bool on_open(net::ConnId id);
    bool owns(net::ConnId id) const { return conns_.count(id) != 0; }
    // For connections opened from now on.
    void set_request_timeout(uint64_t ms) { timeout_ms_ = ms; }
    void on_data(net::ConnId id, std::span<const uint8_t> data);
    // True when `id` was one of ours.
    bool on_close(net::ConnId id) { return conns_.erase(id) != 0; }
    // 408 for requests not complete within the timeout; rate sampling.
    void on_tick(uint64_t now_ms, const broker::Stats& stats);
    // Shutdown: every connection closed (answered ones are closing already).
    void close_all();

    // How long /healthz stays 503 after the store refused a write.
    static constexpr uint64_t kRefusalMemoryMs = 10000;
    // The reason of a refusal in the last kRefusalMemoryMs, or null.
    const char* recent_refusal(uint64_t now_ms, const broker::Stats& stats);

    double messages_in_per_s() const { return in_rate_; }
    double messages_out_per_s() const { return out_rate_; }

private:
    struct Conn {
        std::vector<uint8_t> buf;
        uint64_t deadline_ms = 0;
        bool answered = false;
        bool line_one_ended = false;   // a newline has arrived: the request line was parsed
    };
    void answer(net::ConnId id, Conn& c, const std::string& bytes);

    net::Reactor& reactor_;
    uint64_t timeout_ms_;
    std::function<StatusData()> collect_;
    std::unordered_map<net::ConnId, Conn> conns_;
    uint64_t rate_sample_ms_ = 0;
    uint64_t rate_in_ = 0, rate_out_ = 0;
    double in_rate_ = 0, out_rate_ = 0;
    broker::Stats refusals_seen_;
    uint64_t last_refusal_ms_ = 0;
    const char* last_refusal_reason_ = nullptr;
};

// Monotonic microseconds, for the histograms.
inline uint64_t monotonic_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

}  // namespace hato::app
