// The matches of the topics routed since the subscriptions last changed, so
// that a PUBLISH on a known topic is not matched against the index again.
//
// Why: a gateway's publishers repeat a stable set of topics (one per sensor
// or tag) to a stable set of subscribers. Matching walks the topic tree one
// level at a time, a cold cache line or more per level once there are many
// sessions; one hash lookup here replaces it (about 700 instructions of the
// 4 300 the broker spends on a QoS 1 message across 1000 topics).
//
// Bounded: up to kMaxTopics topics are kept. Beyond that, a new topic is
// not added (no eviction churn when the working set is larger); only the
// last one is kept, in a collector of its own, which still serves a burst
// on one topic. Any change to the subscriptions empties the cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/match_collector.hpp"
#include "broker/str_map.hpp"

namespace hato::broker {

class RouteCache {
public:
    static constexpr size_t kMaxTopics = 1024;

    // The collector holding the matches of `topic` published by `publisher`
    // at subscription `generation`. `fill` is set when the caller must match
    // into it (it is then empty, with its publisher set). The reference stays
    // valid until the next call.
    // `memo`, the publisher's own note of the entry its last PUBLISH used,
    // is tried before the table: a hit costs no hashing and no probe.
    MatchCollector& lookup(std::string_view topic, Slot publisher, uint64_t generation, bool& fill,
                           RouteMemo* memo = nullptr) {
        if (generation != generation_) {
            topics_.clear();
            last_topic_.clear();
            current_ = nullptr;
            generation_ = generation;
        }
        if (topic == last_topic_ && current_ && reusable(*current_, publisher)) {
            fill = false;
            return *current_;
        }
        last_topic_.assign(topic);
        if (memo && memo->generation == generation_) {
            // Taken at this generation, so the entry has not been freed since.
            auto* kept = static_cast<Entry*>(const_cast<void*>(memo->entry));
            if (kept->first == topic) {
                current_ = &kept->second;
                fill = !reusable(*current_, publisher);
                if (fill) reset(*current_, publisher);
                return *current_;
            }
        }
        auto it = topics_.find(topic);
        if (it != topics_.end()) {
            current_ = &it->second;
            fill = !reusable(*current_, publisher);
            remember(memo, *it);
        } else if (topics_.size() < kMaxTopics) {
            it = topics_.try_emplace(std::string(topic)).first;
            current_ = &it->second;
            fill = true;
            remember(memo, *it);
        } else {
            current_ = &overflow_;
            fill = true;
        }
        if (fill) reset(*current_, publisher);
        return *current_;
    }

    // The last topic routed: it passed the decoder's checks (or the broker
    // made it), so the decoder need not check it again.
    const std::string& last_topic() const { return last_topic_; }

    size_t size() const { return topics_.size(); }

private:
    using Entry = StrMap<MatchCollector>::value_type;
    void remember(RouteMemo* memo, Entry& e) const {
        if (!memo) return;
        memo->generation = generation_;
        memo->entry = &e;
    }
    // No Local makes the matches depend on who publishes: only then is the
    // publisher part of the key.
    static bool reusable(const MatchCollector& m, Slot publisher) {
        return !m.saw_no_local || m.publisher == publisher;
    }
    static void reset(MatchCollector& m, Slot publisher) {
        m.direct.clear();
        if (!m.shared.empty()) m.shared.clear();
        m.saw_no_local = false;
        m.publisher = publisher;
    }

    uint64_t generation_ = ~uint64_t(0);
    StrMap<MatchCollector> topics_;    // nodes: a collector does not move when others are added
    MatchCollector overflow_;          // a topic beyond kMaxTopics
    MatchCollector* current_ = nullptr;
    std::string last_topic_;
};

}  // namespace hato::broker
