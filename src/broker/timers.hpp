// The broker's timers: one min-heap of connection checks (CONNECT timeout,
// keep alive), session expiries and delayed wills. Entries are not removed
// when they go stale; a stale one is recognised when it fires (connection
// gone, session generation changed, activity since) and ignored or re-armed.
// Ticks cost O(fired * log n), not a scan of every connection.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "broker/client_state.hpp"

namespace hato::broker {

// ConnCheck: a connection's CONNECT timeout or keep alive (Connection::timer_due_ms).
enum class TimerKind : uint8_t { ConnCheck, SessionExpiry, WillDelay };

struct Timer {
    uint64_t due_ms = 0;
    uint64_t key = 0;                // ConnId (ConnCheck), else the session generation
    Slot slot = kNoSlot;             // session timers
    TimerKind kind = TimerKind::ConnCheck;
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
};

// The timer min-heap. Entries are never removed when they go stale (a
// session reconnected, a keep-alive deadline moved); compact() sweeps them
// out when they outnumber the live ones, so a connect/disconnect storm with
// a long session expiry cannot pile up entries that would fire in years.
class TimerHeap {
public:
    bool empty() const { return heap_.empty(); }
    size_t size() const { return heap_.size(); }
    const Timer& top() const { return heap_.front(); }
    void push(const Timer& t) {
        heap_.push_back(t);
        std::push_heap(heap_.begin(), heap_.end(), std::greater<Timer>());
    }
    void pop() {
        std::pop_heap(heap_.begin(), heap_.end(), std::greater<Timer>());
        heap_.pop_back();
    }
    // Pops and fires every entry due by `now_ms`, in due order; then, if
    // stale entries may outnumber live ones (the heap doubled since its last
    // sweep), sweeps out those `live` rejects.
    template <class Fire, class Live>
    void run_due(uint64_t now_ms, Fire&& fire, Live&& live) {
        while (!heap_.empty() && top().due_ms <= now_ms) {
            Timer t = top();
            pop();
            fire(t);
        }
        if (wants_compaction()) compact(live);
    }
    bool wants_compaction() const { return heap_.size() > compact_at_; }
    template <class Live>
    void compact(Live&& live) {
        heap_.erase(std::remove_if(heap_.begin(), heap_.end(), [&](const Timer& t) { return !live(t); }),
                    heap_.end());
        std::make_heap(heap_.begin(), heap_.end(), std::greater<Timer>());
        if (heap_.capacity() > 2 * heap_.size() + kMinCompactAt) heap_.shrink_to_fit();
        compact_at_ = std::max(kMinCompactAt, 2 * heap_.size());
    }

private:
    static constexpr size_t kMinCompactAt = 1024;
    std::vector<Timer> heap_;
    size_t compact_at_ = kMinCompactAt;
};

}  // namespace hato::broker
