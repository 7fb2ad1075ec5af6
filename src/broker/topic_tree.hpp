// Private topic tree shared by SubIndex and RetainedIndex. Nodes live in one
// vector addressed by 32-bit id; a node's children are not stored in the node
// but found in one open-addressing table keyed by (parent id, level id), so a
// node costs 20 bytes (plus its 16-byte table slot) whatever its fan-out.
// The table slots hold the whole key, so a probe never touches the node
// array.
//
// A node's slot position comes from its path hash: the hash of its name
// built level by level from the level hashes, not from node or level ids.
// So every slot a topic's insert will probe is known from the topic string
// alone, before any of its levels or nodes exist, and recovery can prefetch
// them all a few topics ahead (prefetch_path).
//
// Optionally (RetainedIndex) each node also links its children in a list so
// "+" and "#" can enumerate them.
#pragma once

#include "broker/topic_tree_levels.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace hato::broker::detail {

// Calls f(level) for every '/'-separated level of a topic or filter; "a//b"
// has the levels "a", "", "b".
template <class F>
void for_each_level(std::string_view name, F&& f) {
    size_t start = 0;
    for (;;) {
        size_t slash = name.find('/', start);
        if (slash == std::string_view::npos) {
            f(name.substr(start));
            return;
        }
        f(name.substr(start, slash - start));
        start = slash + 1;
    }
}

// Free-list pool of payloads addressed by 32-bit index; hands its memory back
// once empty.
template <class T>
class SlotPool {
public:
    uint32_t alloc() {
        ++live_;
        if (!free_.empty()) {
            uint32_t i = free_.back();
            free_.pop_back();
            return i;
        }
        items_.emplace_back();
        return uint32_t(items_.size() - 1);
    }
    void release(uint32_t i) {
        items_[i] = T{};
        if (--live_ == 0) {
            std::vector<T>().swap(items_);
            std::vector<uint32_t>().swap(free_);
        } else {
            free_.push_back(i);
        }
    }
    void reserve(size_t n) { items_.reserve(items_.size() + n); }
    T& operator[](uint32_t i) { return items_[i]; }
    const T& operator[](uint32_t i) const { return items_[i]; }

private:
    std::vector<T> items_;
    std::vector<uint32_t> free_;
    size_t live_ = 0;
};

class TopicTree {
public:
    static constexpr uint32_t kRoot = 0;
    // Level ids of the wildcards, interned first and pinned for good.
    static constexpr uint32_t kPlusLevel = 0;
    static constexpr uint32_t kHashLevel = 1;

    explicit TopicTree(bool link_children);

    const LevelTable& levels() const { return levels_; }

    // Child of `parent` at `level` (whose hash_level is `level_hash`), or kNoId.
    uint32_t child(uint32_t parent, uint32_t level, uint32_t level_hash) const {
        return slots_[probe_child(parent, level, path_hash(nodes_[parent].hash, level_hash))].node;
    }
    // Same for the + and # children, answered from the parent's flags
    // without a table probe when there is none (the common case).
    uint32_t plus_child(uint32_t parent) const {
        return nodes_[parent].has_plus ? child(parent, kPlusLevel, plus_hash_) : kNoId;
    }
    uint32_t hash_child(uint32_t parent) const {
        return nodes_[parent].has_hash ? child(parent, kHashLevel, hash_hash_) : kNoId;
    }

    // Node for a whole topic/filter: find_path returns kNoId if any level is
    // missing; insert_path creates the missing nodes.
    uint32_t find_path(std::string_view name) const;
    uint32_t insert_path(std::string_view name);
    // Starts loading the table slots a find_path/insert_path of `name` will
    // probe, without waiting for any of them.
    void prefetch_path(std::string_view name) const;

    // Room for `nodes` more nodes, `levels` more distinct level names of
    // `level_bytes` bytes in all, without regrowing the tables.
    void reserve(size_t nodes, size_t levels, size_t level_bytes);

    // Removes `node` and then each ancestor while it has neither payload nor
    // children. The root is never removed.
    void prune(uint32_t node);

    uint32_t payload(uint32_t node) const { return nodes_[node].payload; }
    void set_payload(uint32_t node, uint32_t p) { nodes_[node].payload = p; }
    uint32_t parent(uint32_t node) const { return nodes_[node].parent; }
    uint32_t level(uint32_t node) const { return nodes_[node].level; }
    std::string_view level_name(uint32_t node) const { return levels_.view(nodes_[node].level); }

    // Writes the node's full name ("a/b/c") into `out`.
    void build_name(uint32_t node, std::string& out) const;

    // Child list, only when constructed with link_children.
    uint32_t first_child(uint32_t node) const { return links_[node].first_child; }
    uint32_t next_sibling(uint32_t node) const { return links_[node].next; }

    size_t node_count() const { return live_nodes_; }  // excluding the root
    size_t level_count() const { return levels_.live_count() - 2; }  // excluding + and #

private:
    struct Node {
        uint32_t parent = kNoId;
        uint32_t level = kNoId;
        uint32_t child_count : 30 = 0;  // 2^30 children would need 16 GiB of nodes
        uint32_t has_plus : 1 = 0;      // a child at level +
        uint32_t has_hash : 1 = 0;      // a child at level #
        uint32_t payload = kNoId;
        uint32_t hash = kRootHash;      // path hash, the key of its slot
    };
    struct Links {
        uint32_t first_child = kNoId;
        uint32_t next = kNoId;
        uint32_t prev = kNoId;
    };
    static constexpr uint32_t kRootHash = 0x9e3779b9;
    // Path hash of a child: its parent's path hash combined with the hash of
    // its own level name.
    static uint32_t path_hash(uint32_t parent_hash, uint32_t level_hash) {
        return uint32_t(mix64((uint64_t(parent_hash) << 32) | level_hash));
    }
    struct Slot {
        uint32_t node = kNoId;
        uint32_t parent = 0;
        uint32_t level = 0;
        uint32_t hash = 0;   // the child's path hash
        static bool is_empty(const Slot& s) { return s.node == kNoId; }
        static uint32_t hash_of(const Slot& s) { return s.hash; }
    };

    // The slot of (parent, level), whose path hash is `hash`, or the empty
    // slot ending its probe run.
    size_t probe_child(uint32_t parent, uint32_t level, uint32_t hash) const;
    // `level` is the interned id of `name` (hash `level_hash`), or kNoId if
    // new; `hash` is the new node's path hash.
    uint32_t add_child(uint32_t parent, std::string_view name, uint32_t level_hash, uint32_t level,
                       uint32_t hash);
    void remove_node(uint32_t node);
    void reset_storage();

    const bool link_children_;
    const uint32_t plus_hash_ = hash_level("+");
    const uint32_t hash_hash_ = hash_level("#");
    LevelTable levels_;
    std::vector<Node> nodes_;    // [0] is the root
    std::vector<Links> links_;   // parallel to nodes_ when link_children_
    std::vector<uint32_t> free_nodes_;
    std::vector<Slot> slots_;    // (parent, level) -> child by path hash, at least kMinTableSlots
    size_t live_nodes_ = 0;
};

}  // namespace hato::broker::detail
