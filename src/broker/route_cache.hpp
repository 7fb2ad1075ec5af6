// The matches of the topics routed since the subscriptions last changed, so
// that a PUBLISH on a known topic is not matched against the index again.
//
// Why: a gateway's publishers repeat a stable set of topics (one per sensor
// or tag) to a stable set of subscribers. Matching walks the topic tree one
// level at a time, a cold cache line or more per level once there are many
// sessions; one lookup here replaces it.
//
// Bounded in topics and in matches: up to kMaxTopics topics, up to
// kMaxMatchesPerTopic matches each and kMaxMatches in all (about 0.5 MB of
// matches at most, whatever the subscribers and publishers do). A topic
// past either bound is matched every time, into a collector of its own
// that holds only the last such topic (a burst on one topic is still
// matched once); for a wide fan-out the deliveries cost more than the
// match anyway. Nothing is evicted, so a working set larger than the cache
// causes no churn. Any change to the subscriptions empties the cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "broker/match_collector.hpp"
#include "broker/str_map.hpp"

namespace hato::broker {

// What the cache keeps for one topic.
struct RouteMatches {
    MatchCollector found;
    size_t counted = 0;       // its part of the cache's kept matches
    bool matched = false;     // `found` holds the topic's matches (filled() ran)
    bool too_large = false;   // past a bound: matched every time, into the overflow collector
};
static_assert(std::is_same_v<RouteCacheEntry, StrMap<RouteMatches>::value_type>);

class RouteCache {
public:
    static constexpr size_t kMaxTopics = 1024;
    static constexpr size_t kMaxMatchesPerTopic = 64;
    static constexpr size_t kMaxMatches = 16 * 1024;

    // The collector holding the matches of `topic` published by `publisher`
    // at subscription `generation`. `fill` is set when the caller must match
    // into it (it is then empty, with its publisher set), and then calls
    // filled(). The reference stays valid until the next lookup.
    // `memo`, the publisher's own note of the entry its last PUBLISH used,
    // is tried before the table: a hit costs no hashing and no probe.
    MatchCollector& lookup(std::string_view topic, Slot publisher, uint64_t generation, bool& fill,
                           RouteMemo* memo = nullptr) {
        if (generation != generation_) {
            topics_.clear();
            last_topic_.clear();
            current_ = nullptr;
            filling_ = nullptr;
            kept_matches_ = 0;
            generation_ = generation;
        }
        if (filling_ && filling_->too_large) release(*filling_);   // its last user is done with it
        filling_ = nullptr;
        if (topic == last_topic_ && current_ && reusable(*current_, publisher)) {
            fill = false;
            return *current_;
        }
        last_topic_.assign(topic);
        RouteCacheEntry* e = nullptr;
        if (memo && memo->generation == generation_) {
            // Taken at this generation, so the entry has not been freed since.
            if (memo->entry->first == topic) e = memo->entry;
        }
        if (!e) {
            auto it = topics_.find(topic);
            if (it != topics_.end()) e = &*it;
            else if (topics_.size() < kMaxTopics) e = &*topics_.try_emplace(std::string(topic)).first;
        }
        if (e && memo) {
            memo->generation = generation_;
            memo->entry = e;
        }
        if (!e || e->second.too_large) {
            current_ = &overflow_;
            fill = true;
            reset(overflow_, publisher);
            return overflow_;
        }
        RouteMatches& k = e->second;
        current_ = &k.found;
        fill = !k.matched || !reusable(k.found, publisher);
        if (fill) {
            kept_matches_ -= k.counted;
            k.counted = 0;
            k.matched = false;
            reset(k.found, publisher);
            filling_ = &k;
        }
        return k.found;
    }

    // After the caller matched into what lookup() returned: counts what is
    // kept, and gives up keeping a topic past the bounds (from the next
    // lookup on; the caller still reads the matches now).
    void filled() {
        if (!filling_) return;
        RouteMatches& k = *filling_;
        size_t n = k.found.direct.size();
        for (const auto& group : k.found.shared) n += group.second.size();
        if (n > kMaxMatchesPerTopic || kept_matches_ + n > kMaxMatches) {
            k.too_large = true;   // released at the next lookup
            current_ = nullptr;
            return;
        }
        k.counted = n;
        k.matched = true;
        kept_matches_ += n;
    }

    // The last topic routed: it passed the decoder's checks (or the broker
    // made it), so the decoder need not check it again.
    const std::string& last_topic() const { return last_topic_; }

    size_t size() const { return topics_.size(); }
    size_t kept_matches() const { return kept_matches_; }
    // The same for the subscriptions at `generation` (for gauges): after a
    // change the cache holds nothing usable, though it empties only at its
    // next lookup.
    size_t topics_at(uint64_t generation) const { return generation == generation_ ? size() : 0; }
    size_t matches_at(uint64_t generation) const { return generation == generation_ ? kept_matches_ : 0; }

private:
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
    static void release(RouteMatches& k) {
        std::vector<MatchCollector::Merged>().swap(k.found.direct);
        decltype(k.found.shared)().swap(k.found.shared);
    }

    uint64_t generation_ = ~uint64_t(0);
    StrMap<RouteMatches> topics_;              // nodes: an entry does not move when others are added
    MatchCollector overflow_;          // a topic past the bounds
    MatchCollector* current_ = nullptr;
    RouteMatches* filling_ = nullptr;          // the entry the caller is filling
    size_t kept_matches_ = 0;
    std::string last_topic_;
};

}  // namespace hato::broker
