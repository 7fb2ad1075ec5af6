// Retained messages by topic, arranged as a topic tree so that a new
// subscription's filter walks only the matching branches instead of scanning
// every retained topic. Holds a broker-chosen handle per topic; the broker
// keeps the messages themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace hato::broker {

class RetainedIndex {
public:
    using Handle = uint64_t;

    RetainedIndex();
    ~RetainedIndex();
    RetainedIndex(const RetainedIndex&) = delete;
    RetainedIndex& operator=(const RetainedIndex&) = delete;

    // Sets the handle for `topic` (a valid topic name); returns the previous
    // handle through `old` and true if there was one.
    bool set(std::string_view topic, Handle h, Handle& old);
    // Removes `topic`; returns its handle through `old` and true if it existed.
    bool clear(std::string_view topic, Handle& old);
    // Handle for an exact topic.
    bool find(std::string_view topic, Handle& out) const;
    // The handle stored for an exact topic, to change in place; null if
    // absent. Valid until the next set() or clear().
    Handle* handle(std::string_view topic);

    // Calls fn(topic, handle) for every retained topic matched by `filter` (a
    // valid filter; leading wildcards do not match $-topics), until fn
    // returns false.
    void match(std::string_view filter,
               const std::function<bool(std::string_view topic, Handle h)>& fn) const;

    // Room for about `topics` more topics (recovery of a large retained set).
    void reserve(size_t topics);
    // A hint that set(topic, ...) follows soon: starts loading the index
    // memory it will probe (recovery overlaps the misses of many topics).
    void prefetch(std::string_view topic) const;

    size_t size() const;
    size_t node_count() const;  // topic tree nodes in use (tests check pruning)
    // Tree nodes match() has stepped through so far (see SubIndex::nodes_visited).
    uint64_t nodes_visited() const { return nodes_visited_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    mutable uint64_t nodes_visited_ = 0;
};

}  // namespace hato::broker
