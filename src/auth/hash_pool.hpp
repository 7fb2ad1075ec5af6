// Worker threads for password checks. PBKDF2 costs ~90 ms per attempt: on
// the reactor thread that would stall every client, so the reactor submits
// the check here and goes on. Finished checks are announced on an eventfd
// the reactor watches; drain() then hands the results over on the reactor
// thread, like an fsync completion.
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

    explicit HashPool(unsigned workers);
    ~HashPool();   // jobs not started are dropped; running ones finish first
    HashPool(const HashPool&) = delete;
    HashPool& operator=(const HashPool&) = delete;

    bool ok() const { return event_fd_ >= 0; }   // false: eventfd failed (errno logged by the caller)
    int event_fd() const { return event_fd_; }

    // Queues `job`; returns its ticket (never 0).
    uint64_t submit(Job job);
    // Removes a job that has not started. A running one still finishes; its
    // result is delivered and the caller ignores it.
    bool cancel(uint64_t ticket);
    // Calls fn(ticket, result) for every job finished since the last call.
    void drain(const std::function<void(uint64_t, bool)>& fn);

    size_t queued() const;

private:
    void work();

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::pair<uint64_t, Job>> jobs_;
    std::vector<std::pair<uint64_t, bool>> done_;
    std::vector<std::thread> threads_;
    uint64_t next_ticket_ = 1;
    bool stopping_ = false;
    int event_fd_ = -1;
};

}  // namespace hato::auth
