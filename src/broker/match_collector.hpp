// The matches of one PUBLISH, collected from the subscription index by
// Broker::Impl::route (publish.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/client_state.hpp"
#include "broker/sub_index.hpp"

namespace hato::broker {

// Identifies one shared group's filter ($share/group/inner) for round robin.
inline uint64_t share_key(uint32_t group, std::string_view inner) {
    return (uint64_t(group) << 40) ^ std::hash<std::string_view>{}(inner) ^ 0x9E3779B97F4A7C15ull;
}

// Collects the matches of one PUBLISH. Overlapping subscriptions of one
// client are merged into ONE delivery at the highest granted QoS carrying
// every matching subscription identifier (MQTT 5 allows either one copy or
// one per subscription; one copy is what most clients expect and is cheaper).
// Retain-as-published is honoured if any of the overlapping subscriptions asks.
struct MatchCollector final : SubIndex::Visitor {
    struct Merged {
        Slot who = kNoSlot;
        uint8_t qos = 0;
        bool retain_as_published = false;
        std::vector<uint32_t> sub_ids;
    };
    struct SharedMember {
        Slot who;
        uint8_t options;
        uint32_t sub_id;
    };
    Slot publisher = kNoSlot;
    bool saw_no_local = false;   // a No Local subscription matched: the result depends on the publisher
    // One entry per matching subscription, merged per session by merge_direct():
    // a flat vector costs no node allocation per receiver, unlike a hash map.
    std::vector<Merged> direct;
    std::unordered_map<uint64_t, std::vector<SharedMember>> shared;   // by share key

    bool needs_filter() const override { return false; }   // only shared entries use it
    void visit(const SubIndex::Entry& e, std::string_view filter) override {
        if (e.group != 0) {
            shared[share_key(e.group, filter)].push_back({e.who, e.options, e.sub_id});
            return;
        }
        if (e.options & 0x04) {
            saw_no_local = true;
            if (e.who == publisher) return;   // No Local
        }
        Merged& m = direct.emplace_back();
        m.who = e.who;
        m.qos = e.options & 0x03;
        m.retain_as_published = (e.options & 0x08) != 0;
        if (e.sub_id) m.sub_ids.push_back(e.sub_id);
    }

    // Folds the entries of one session into its first entry (stable order, so
    // subscription ids keep the order they matched in) and drops the rest.
    void merge_direct() {
        if (direct.size() < 2) return;
        std::stable_sort(direct.begin(), direct.end(),
                         [](const Merged& a, const Merged& b) { return a.who < b.who; });
        size_t out = 0;
        for (size_t i = 1; i < direct.size(); ++i) {
            Merged& keep = direct[out];
            Merged& next = direct[i];
            if (next.who != keep.who) {
                if (++out != i) direct[out] = std::move(next);
                continue;
            }
            keep.qos = std::max(keep.qos, next.qos);
            keep.retain_as_published |= next.retain_as_published;
            keep.sub_ids.insert(keep.sub_ids.end(), next.sub_ids.begin(), next.sub_ids.end());
        }
        direct.resize(out + 1);
    }
};


}  // namespace hato::broker
