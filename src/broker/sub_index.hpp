// The subscription index: a topic tree stored flat in open-addressing hash
// tables. Topic levels are interned once; a node's children are found by
// hashing (parent node, level id), so matching a PUBLISH walks its topic
// levels (plus the + and # branches that exist) and never scans the list of
// subscriptions. Cost grows with topic depth, not with subscription count.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace hato::broker {

class SubIndex {
public:
    using SubscriberId = uint32_t;  // the broker's session slot

    struct Entry {
        SubscriberId who = 0;
        uint8_t options = 0;   // SUBSCRIBE options byte: qos | no_local<<2 | rap<<3 | rh<<4
        uint32_t sub_id = 0;   // v5 subscription identifier, 0 = none
        uint32_t group = 0;    // shared subscription group id (interned), 0 = not shared
    };

    // Callback for match(): one call per matching entry. An entry is reported
    // once per (filter, who, group); the broker merges overlaps per subscriber.
    class Visitor {
    public:
        virtual ~Visitor() = default;
        virtual void visit(const Entry& e, std::string_view filter) = 0;
        // False: `filter` is only needed for shared entries (group != 0) and
        // may be empty for the others, which saves rebuilding its text.
        virtual bool needs_filter() const { return true; }
    };

    SubIndex();
    ~SubIndex();
    SubIndex(const SubIndex&) = delete;
    SubIndex& operator=(const SubIndex&) = delete;

    // Adds or replaces the subscription of `who` to `filter` in `group`
    // (filter is the inner filter for shared subscriptions). Returns true if
    // it was new, false if it replaced an existing one.
    bool add(std::string_view filter, const Entry& e);
    // Removes it; returns true if it existed.
    bool remove(std::string_view filter, SubscriberId who, uint32_t group);

    // Visits every entry whose filter matches `topic` (a valid topic name).
    // Leading + or # never match a topic starting with '$'.
    void match(std::string_view topic, Visitor& v) const;

    // Interns a shared-subscription group name (never returns 0) and takes
    // one reference to it: each subscription in the group holds one, and
    // release_group() frees the name with the last of them, so group names
    // cost memory only while some subscription uses them.
    uint32_t group_id(std::string_view name);
    void release_group(uint32_t group);
    size_t group_count() const;   // group names held (tests check they are freed)

    size_t size() const;  // number of subscriptions held
    // Changes with every add and remove: a match result kept with the
    // generation it was taken at is still the answer while it is unchanged.
    uint64_t generation() const { return generation_; }
    size_t node_count() const;  // topic tree nodes in use (tests check pruning)
    // Tree nodes match() has stepped through so far: the work of matching,
    // which the broker budgets per connection and loop pass.
    uint64_t nodes_visited() const { return nodes_visited_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    uint64_t generation_ = 0;
    mutable uint64_t nodes_visited_ = 0;
};

}  // namespace hato::broker
