#include "app/durable_acks.hpp"

#include <cstring>

#include "app/log.hpp"
#include "broker/persistence.hpp"
#include "net/reactor.hpp"

namespace hato::app {

namespace {

class StoreSyncIo final : public SyncIo {
public:
    StoreSyncIo(store::Log& log, broker::Persistence& persistence, net::Reactor& reactor)
        : log_(log), persistence_(persistence), reactor_(reactor) {}
    uint64_t last_lsn() const override { return log_.last_lsn(); }
    uint64_t durable_lsn() const override { return log_.durable_lsn(); }
    uint64_t appended_bytes() const override { return log_.appended_bytes(); }
    store::Log::SyncBatch begin_sync() override { return log_.begin_sync(); }
    void end_sync(uint64_t lsn, bool ok) override { log_.end_sync(lsn, ok); }
    uint64_t durable_ticket() const override { return persistence_.durable_ticket(); }
    void fsync_async(int fd, std::function<void(int)> done) override { reactor_.fsync_async(fd, std::move(done)); }
    void wake_at_us(uint64_t deadline_us) override { reactor_.wake_at_us(deadline_us); }
    uint64_t now_us() const override { return monotonic_us(); }

private:
    store::Log& log_;
    broker::Persistence& persistence_;
    net::Reactor& reactor_;
};

}  // namespace

std::unique_ptr<SyncIo> make_sync_io(store::Log& log, broker::Persistence& persistence, net::Reactor& reactor) {
    return std::make_unique<StoreSyncIo>(log, persistence, reactor);
}

void DurableAcks::on_pass_end() {
    if (mode_ != store::SyncMode::Always) {
        // Acknowledgements do not wait for a sync: whatever persistence
        // reports as durable by now is announced at once.
        const uint64_t ticket = io_.durable_ticket();
        if (ticket == last_released_) return;
        last_released_ = ticket;
        hooks_.release();
        return;
    }
    const uint64_t now = io_.now_us();
    commit_.note_appended(now, io_.last_lsn(), io_.appended_bytes());
    if (commit_.due(now)) start_sync();
    io_.wake_at_us(commit_.wake_at_us());
}

void DurableAcks::on_tick(uint64_t now_ms) {
    if (mode_ != store::SyncMode::Interval || now_ms - last_interval_sync_ms_ < interval_ms_) return;
    last_interval_sync_ms_ = now_ms;
    start_sync();
}

void DurableAcks::start_sync() {
    if (lost_ || commit_.in_flight()) return;
    // Records the log already holds durable but the commit counts as pending
    // (those recovered at start, or made durable by a sync of the log's own)
    // are settled by an empty batch: left pending, their window would expire
    // at every pass, and the loop spin without ever sleeping.
    if (io_.last_lsn() <= io_.durable_lsn() && !commit_.pending()) return;
    store::Log::SyncBatch batch = io_.begin_sync();
    commit_.started(batch.lsn, io_.appended_bytes());
    started_us_ = io_.now_us();
    timed_ = !batch.fds.empty();   // an empty batch is no sync to time
    sync_ok_ = true;
    pending_fds_ = batch.fds.size();
    if (batch.fds.empty()) return finish_sync();
    // epoll completes inline, inside this loop: the counter is set first.
    for (int fd : batch.fds) io_.fsync_async(fd, [this](int result) { fd_synced(result); });
}

void DurableAcks::fd_synced(int result) {
    if (result < 0) {
        sync_ok_ = false;
        if (!commit_.failing()) log_error("store sync: %s", std::strerror(-result));
    }
    if (--pending_fds_ == 0) finish_sync();
}

void DurableAcks::finish_sync() {
    const uint64_t lsn = commit_.syncing_lsn();
    if (timed_) latency_.observe_us(io_.now_us() - started_us_);
    io_.end_sync(lsn, sync_ok_);
    const GroupCommit::Outcome done = commit_.finished(sync_ok_);
    // Not tried again: no later sync could prove this one's records durable
    // (store::Log::end_sync). The wiring stops the broker (Log::io_failed).
    if (!sync_ok_) {
        lost_ = true;
        return;
    }
    // Held PUBACK/PUBREC waiting for this batch (sync = always; with
    // interval, whatever persistence still reports as pending) go out.
    if (done.durable_lsn) {
        hooks_.release();
        last_released_ = done.durable_lsn;
    }
    hooks_.settled();
}

}  // namespace hato::app
