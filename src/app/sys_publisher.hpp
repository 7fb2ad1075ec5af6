// Publishes the $SYS topics every [sys] interval seconds: gathers the
// gauges (the broker's, the store's, the heap, sync latency), updates the
// load averages, and hands each (topic, payload) to Broker::publish_internal
// as a retained QoS 0 message. Those stay in memory only: publishing them
// writes nothing to the store, so a short interval does not wear the disk.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "app/metrics.hpp"
#include "broker/broker.hpp"
#include "broker/sys_topics.hpp"
#include "store/log.hpp"

namespace hato::app {

class SysPublisher {
public:
    // `log` (null without storage) lives in `dir`; `sync_latency` is the
    // wiring's histogram of store syncs. Both must outlive this.
    SysPublisher(uint32_t interval_s, uint64_t start_ms, const store::Log* log, std::string dir,
                 const Histogram& sync_latency);

    // Publishes on the first call, then once `interval` passed since the last.
    void on_tick(uint64_t now_ms, broker::Broker& broker);
    // A reload's new interval (not 0); the load averages go on.
    void set_interval(uint32_t interval_s) { interval_ms_ = uint64_t(interval_s) * 1000; }
    // Topics of other parts (the bridges), added to each publication.
    void set_extra(std::function<void(uint64_t now_ms, std::vector<broker::SysMessage>&)> extra) {
        extra_ = std::move(extra);
    }

private:
    void fill_store(broker::SysGauges& g);

    uint64_t interval_ms_;
    uint64_t start_ms_;
    const store::Log* log_;
    std::string dir_;
    const Histogram& sync_latency_;
    Histogram::Counts sync_seen_;   // counts as of the last publication
    broker::LoadAverages load_;
    std::function<void(uint64_t, std::vector<broker::SysMessage>&)> extra_;
    bool published_ = false;
    uint64_t last_ms_ = 0;
};

}  // namespace hato::app
