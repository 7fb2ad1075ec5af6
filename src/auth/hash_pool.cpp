#include "auth/hash_pool.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace hato::auth {

HashPool::HashPool(unsigned workers, size_t max_queued)
    : max_queued_(max_queued ? max_queued : kQueuedPerWorker * std::max(workers, 1u)) {
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) return;
    for (unsigned i = 0; i < std::max(workers, 1u); ++i) threads_.emplace_back([this] { work(); });
}

HashPool::~HashPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        first_.clear();
        second_.clear();
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
    if (event_fd_ >= 0) ::close(event_fd_);
}

uint64_t HashPool::submit(Job job, Lane l) {
    uint64_t ticket;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        Queue& q = lane(l);
        if (q.size() >= max_queued_) return 0;
        ticket = next_ticket_++;
        q.emplace_back(ticket, std::move(job));
    }
    wake_.notify_one();
    return ticket;
}

bool HashPool::cancel(uint64_t ticket) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Queue* q : {&first_, &second_}) {
        auto it = std::find_if(q->begin(), q->end(), [&](const auto& j) { return j.first == ticket; });
        if (it == q->end()) continue;
        q->erase(it);
        return true;
    }
    return false;
}

void HashPool::drain(const std::function<void(uint64_t, bool)>& fn) {
    uint64_t count;
    while (::read(event_fd_, &count, sizeof count) == ssize_t(sizeof count)) {}
    std::vector<std::pair<uint64_t, bool>> done;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        done.swap(done_);
    }
    for (auto& [ticket, result] : done) fn(ticket, result);
}

size_t HashPool::queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return first_.size() + second_.size();
}

size_t HashPool::queued(Lane l) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return l == Lane::First ? first_.size() : second_.size();
}

void HashPool::work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !first_.empty() || !second_.empty(); });
        if (stopping_) return;
        Queue& q = !first_.empty() ? first_ : second_;
        auto [ticket, job] = std::move(q.front());
        q.pop_front();
        lock.unlock();
        bool result = job();
        lock.lock();
        done_.emplace_back(ticket, result);
        uint64_t one = 1;
        // Fails only if the counter would overflow, which 2^64 results cannot.
        [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
    }
}

}  // namespace hato::auth
