// The durable-acknowledgement driver: runs the store syncs that let held
// PUBACK/PUBREC leave, for every [storage] sync mode.
//   always:   group commit (app/group_commit.hpp) decides at each pass end
//             whether a sync starts now or when the loop must wake for one;
//   interval: a sync every sync_interval_ms, from the ticks;
//   off:      no syncs; whatever persistence reports durable is released.
// At most one sync is in flight; records appended while it runs wait for
// the next one. The store and the loop are reached through SyncIo only, so
// the sequencing is tested on fakes (tests/unit/app/test_durable_acks.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "app/group_commit.hpp"
#include "app/metrics.hpp"
#include "store/log.hpp"

namespace hato::broker { class Persistence; }
namespace hato::net { class Reactor; }

namespace hato::app {

// What the driver needs of the store, the persistence and the loop.
class SyncIo {
public:
    virtual ~SyncIo() = default;
    virtual uint64_t last_lsn() const = 0;
    virtual uint64_t durable_lsn() const = 0;
    virtual uint64_t appended_bytes() const = 0;
    virtual store::Log::SyncBatch begin_sync() = 0;
    virtual void end_sync(uint64_t lsn, bool ok) = 0;
    // Persistence's durable ticket (sync = interval | off).
    virtual uint64_t durable_ticket() const = 0;
    // May complete inline (epoll) or on a later loop pass (io_uring).
    virtual void fsync_async(int fd, std::function<void(int)> done) = 0;
    virtual void wake_at_us(uint64_t deadline_us) = 0;
    virtual uint64_t now_us() const = 0;
};

// The real store, persistence and reactor.
std::unique_ptr<SyncIo> make_sync_io(store::Log& log, broker::Persistence& persistence, net::Reactor& reactor);

class DurableAcks {
public:
    struct Hooks {
        std::function<void()> release;   // acknowledgements waiting for durability may leave
        std::function<void()> settled;   // a sync ended well (shutdown may finish now)
    };
    DurableAcks(SyncIo& io, store::SyncMode mode, uint64_t interval_ms, GroupCommitPolicy policy, Histogram& latency,
                Hooks hooks)
        : io_(io), mode_(mode), interval_ms_(interval_ms), commit_(policy), latency_(latency),
          hooks_(std::move(hooks)) {}

    // End of a loop pass: after the broker's work, so its appends ride along.
    void on_pass_end();
    // Every tick: the interval mode's timer.
    void on_tick(uint64_t now_ms);

    bool in_flight() const { return commit_.in_flight(); }
    bool failing() const { return commit_.failing(); }
    // A sync failed: no more syncs are started (the log says the same to
    // the wiring, Log::io_failed, and only a restart goes on).
    bool lost() const { return lost_; }

private:
    void start_sync();
    void fd_synced(int result);
    void finish_sync();

    SyncIo& io_;
    store::SyncMode mode_;
    uint64_t interval_ms_;
    GroupCommit commit_;
    Histogram& latency_;   // start_sync to finish_sync, for /metrics and $SYS
    Hooks hooks_;
    bool sync_ok_ = true;
    bool lost_ = false;
    size_t pending_fds_ = 0;
    uint64_t started_us_ = 0;
    bool timed_ = false;        // the sync in flight has files to sync (is timed)
    uint64_t last_interval_sync_ms_ = 0;
    uint64_t last_released_ = 0;   // LSN or ticket last released
};

}  // namespace hato::app
