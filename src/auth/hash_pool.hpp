// Worker threads for password checks. PBKDF2 costs ~90 ms per attempt: on
// the reactor thread that would stall every client, so the reactor submits
// the check here and goes on. Finished checks are announced on an eventfd
// the reactor watches; drain() then hands the results over on the reactor
// thread, like an fsync completion.
//
// Two lanes, each bounded. A worker takes from the first lane whenever it
// holds a job, so what waits in the second (the caller puts suspect checks
// there) never delays the first. The bound keeps a flood from queueing more
// work than the workers could finish before the CONNECT deadline.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace hato::auth {

class HashPool {
public:
    using Job = std::function<bool()>;   // runs on a worker; must not touch reactor state
    enum class Lane { First, Second };
    // Jobs that may wait in one lane, per worker: at ~90 ms a check, 64 are
    // ~6 s of work, inside the 10 s CONNECT deadline, so a restart storm of
    // devices is admitted at hashing speed and only the rest retry.
    static constexpr size_t kQueuedPerWorker = 64;

    // max_queued: jobs waiting (not running) per lane; 0 = kQueuedPerWorker per worker.
    explicit HashPool(unsigned workers, size_t max_queued = 0);
    ~HashPool();   // jobs not started are dropped; running ones finish first
    HashPool(const HashPool&) = delete;
    HashPool& operator=(const HashPool&) = delete;

    bool ok() const { return event_fd_ >= 0; }   // false: eventfd failed (errno logged by the caller)
    int event_fd() const { return event_fd_; }

    // Queues `job`; returns its ticket (never 0), or 0 when `lane` is full
    // (nothing queued).
    uint64_t submit(Job job, Lane lane = Lane::First);
    // Removes a job that has not started. A running one still finishes; its
    // result is delivered and the caller ignores it.
    bool cancel(uint64_t ticket);
    // Calls fn(ticket, result) for every job finished since the last call.
    void drain(const std::function<void(uint64_t, bool)>& fn);

    size_t queued() const;   // both lanes
    size_t queued(Lane lane) const;
    size_t max_queued() const { return max_queued_; }

private:
    using Queue = std::deque<std::pair<uint64_t, Job>>;
    void work();
    Queue& lane(Lane l) { return l == Lane::First ? first_ : second_; }

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    Queue first_;
    Queue second_;
    std::vector<std::pair<uint64_t, bool>> done_;
    std::vector<std::thread> threads_;
    size_t max_queued_;
    uint64_t next_ticket_ = 1;
    bool stopping_ = false;
    int event_fd_ = -1;
};

}  // namespace hato::auth
