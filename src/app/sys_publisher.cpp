#include "app/sys_publisher.hpp"

#include <sys/statvfs.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "hato_build.h"

namespace hato::app {

namespace {

// Bytes malloc handed out and not freed (arenas and large mmapped blocks).
std::optional<uint64_t> heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return uint64_t(mi.uordblks) + uint64_t(mi.hblkhd);
#else
    return std::nullopt;
#endif
}

}  // namespace

SysPublisher::SysPublisher(uint32_t interval_s, uint64_t start_ms, const store::Log* log, std::string dir,
                           const Histogram& sync_latency)
    : interval_ms_(uint64_t(interval_s) * 1000), start_ms_(start_ms), log_(log), dir_(std::move(dir)),
      sync_latency_(sync_latency), sync_seen_(sync_latency.counts()) {}

void SysPublisher::on_tick(uint64_t now_ms, broker::Broker& broker) {
    if (interval_ms_ == 0) return;
    if (published_ && now_ms - last_ms_ < interval_ms_) return;
    broker::SysGauges g;
    broker.fill_gauges(g);
    g.version = HATO_VERSION;
    g.uptime_s = now_ms >= start_ms_ ? (now_ms - start_ms_) / 1000 : 0;
    g.heap_bytes = heap_in_use();
    fill_store(g);
    load_.update(g, published_ ? double(now_ms - last_ms_) / 1000.0 : 0.0);
    published_ = true;
    last_ms_ = now_ms;
    std::vector<broker::SysMessage> topics = broker::sys_topics(g, load_);
    if (extra_) extra_(now_ms, topics);
    for (const broker::SysMessage& m : topics) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(m.payload.data());
        broker.publish_internal(m.topic, {bytes, m.payload.size()}, /*retain=*/true);
    }
}

void SysPublisher::fill_store(broker::SysGauges& g) {
    if (!log_) return;
    g.store = true;
    g.store_bytes = log_->bytes_used();
    g.store_live_bytes = g.store_bytes - std::min(g.store_bytes, log_->dead_bytes());
    g.store_max_bytes = log_->max_bytes();
    // One statvfs per interval: cheap, and never blocks on a local file system.
    uint64_t fs_free = 0;
    bool fs_known = false;
    struct statvfs vfs {};
    if (::statvfs(dir_.c_str(), &vfs) == 0) {
        fs_free = uint64_t(vfs.f_bavail) * vfs.f_frsize;
        fs_known = true;
    }
    if (g.store_max_bytes != 0) {
        const uint64_t quota_free = g.store_max_bytes - std::min(g.store_max_bytes, g.store_bytes);
        g.store_free_bytes = fs_known ? std::min(quota_free, fs_free) : quota_free;
        g.store_fill_percent = 100.0 * double(g.store_bytes) / double(g.store_max_bytes);
    } else {
        g.store_free_bytes = fs_free;
        const uint64_t room = g.store_bytes + fs_free;
        g.store_fill_percent = room ? 100.0 * double(g.store_bytes) / double(room) : 0.0;
    }
    const Histogram::Counts now = sync_latency_.counts();
    g.sync_p50_ms = sync_latency_.quantile_ms(now, sync_seen_, 0.50);
    g.sync_p99_ms = sync_latency_.quantile_ms(now, sync_seen_, 0.99);
    sync_seen_ = now;
}

}  // namespace hato::app
