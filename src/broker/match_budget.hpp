// The matching work one connection's input may cost per loop pass
// (Config::match_work_per_pass), and the connections whose input waits for
// a later pass because theirs ran out. The input budget the reactor keeps
// counts bytes, and one PUBLISH to a new topic past a thousand branching
// filters costs milliseconds of matching: bytes alone would let a client
// that pipelines such packets hold the loop for a second. Work is counted
// in topic tree nodes stepped through (SubIndex, RetainedIndex), which a
// PUBLISH served from the route cache does not touch: ordinary traffic
// never comes near the budget.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/broker.hpp"

namespace hato::broker {

class MatchBudget {
public:
    // Work `id` may still do in this pass, of `per_pass`.
    uint64_t left(ConnId id, uint64_t per_pass) const {
        auto it = charged_.find(id);
        return it == charged_.end() ? per_pass : per_pass - std::min(per_pass, it->second);
    }
    void charge(ConnId id, uint64_t work) {
        if (work != 0) charged_[id] += work;
    }

    // `id`'s input waits (ConnectionExtras::input_deferred) for a later pass.
    void defer(ConnId id) { deferred_.emplace_back(id, pass_); }
    // The connections deferred before this pass, taken off the list in the
    // order they were deferred; those deferred in it stay for the next.
    std::vector<ConnId> take_due() {
        std::vector<ConnId> due;
        std::erase_if(deferred_, [&](const std::pair<ConnId, uint64_t>& d) {
            if (d.second == pass_) return false;
            due.push_back(d.first);
            return true;
        });
        return due;
    }
    bool any_deferred() const { return !deferred_.empty(); }
    void pass_ended() {
        charged_.clear();
        ++pass_;
    }

private:
    std::unordered_map<ConnId, uint64_t> charged_;       // this pass's work, by connection (only those with some)
    std::vector<std::pair<ConnId, uint64_t>> deferred_;   // (connection, pass it was deferred in)
    uint64_t pass_ = 0;
};

}  // namespace hato::broker
