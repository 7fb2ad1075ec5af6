#include "broker/topic_tree.hpp"

#include "broker/open_table.hpp"

namespace hato::broker::detail {

TopicTree::TopicTree(bool link_children) : link_children_(link_children) { reset_storage(); }

void TopicTree::reset_storage() {
    // A fresh level table drops the id records and arena of the old one.
    // The wildcards are interned first (ids 0 and 1) and never released.
    levels_ = LevelTable();
    levels_.acquire("+", plus_hash_);
    levels_.acquire("#", hash_hash_);
    nodes_.assign(1, Node{});
    nodes_.shrink_to_fit();
    if (link_children_) {
        links_.assign(1, Links{});
        links_.shrink_to_fit();
    }
    std::vector<uint32_t>().swap(free_nodes_);
    slots_.assign(kMinTableSlots, Slot{});
    slots_.shrink_to_fit();
}

size_t TopicTree::probe_child(uint32_t parent, uint32_t level, uint32_t hash) const {
    return probe_slot(slots_, hash, [&](const Slot& slot) { return slot.parent == parent && slot.level == level; });
}

uint32_t TopicTree::find_path(std::string_view name) const {
    uint32_t node = kRoot;
    uint32_t hash = kRootHash;
    for_each_level(name, [&](std::string_view lvl) {
        if (node == kNoId) return;
        const uint32_t level_hash = hash_level(lvl);
        const uint32_t id = levels_.find(lvl, level_hash);
        hash = path_hash(hash, level_hash);
        node = id == kNoId ? kNoId : slots_[probe_child(node, id, hash)].node;
    });
    return node;
}

uint32_t TopicTree::insert_path(std::string_view name) {
    uint32_t node = kRoot;
    uint32_t hash = kRootHash;
    for_each_level(name, [&](std::string_view lvl) {
        const uint32_t level_hash = hash_level(lvl);   // once per level, for the lookup and the insert
        const uint32_t id = levels_.find(lvl, level_hash);
        hash = path_hash(hash, level_hash);
        const uint32_t next = id == kNoId ? kNoId : slots_[probe_child(node, id, hash)].node;
        node = next != kNoId ? next : add_child(node, lvl, level_hash, id, hash);
    });
    return node;
}

void TopicTree::prefetch_path(std::string_view name) const {
    const ProbeRange r(slots_.size());
    uint32_t hash = kRootHash;
    for_each_level(name, [&](std::string_view lvl) {
        const uint32_t level_hash = hash_level(lvl);
        levels_.prefetch(level_hash);
        hash = path_hash(hash, level_hash);
        __builtin_prefetch(&slots_[r.home(hash)]);
    });
}

void TopicTree::reserve(size_t nodes, size_t levels, size_t level_bytes) {
    const size_t total = live_nodes_ + nodes;
    nodes_.reserve(total + 1);   // + the root
    if (link_children_) links_.reserve(total + 1);
    const size_t capacity = table_capacity_for(total);
    if (capacity > slots_.size()) rehash_slots(slots_, capacity);
    levels_.reserve(levels, level_bytes);
}

uint32_t TopicTree::add_child(uint32_t parent, std::string_view name, uint32_t level_hash, uint32_t known,
                             uint32_t hash) {
    const uint32_t level = known != kNoId ? levels_.add_ref(known) : levels_.acquire(name, level_hash);
    uint32_t node;
    if (!free_nodes_.empty()) {
        node = free_nodes_.back();
        free_nodes_.pop_back();
    } else {
        node = uint32_t(nodes_.size());
        nodes_.emplace_back();
        if (link_children_) links_.emplace_back();
    }
    nodes_[node] = Node{};
    nodes_[node].parent = parent;
    nodes_[node].level = level;
    nodes_[node].hash = hash;
    Node& p = nodes_[parent];
    ++p.child_count;
    if (level == kPlusLevel) p.has_plus = 1;
    if (level == kHashLevel) p.has_hash = 1;
    ++live_nodes_;
    if (link_children_) {
        Links& l = links_[node];
        l = Links{};
        l.next = links_[parent].first_child;
        if (l.next != kNoId) links_[l.next].prev = node;
        links_[parent].first_child = node;
    }
    // Load factor at most 3/4: slots hold the whole key, so walking a probe
    // run is cheap, and a higher load keeps the table small.
    if (live_nodes_ * 4 > slots_.size() * 3) rehash_slots(slots_, slots_.size() * 2);
    place_slot(slots_, Slot{node, parent, level, hash});
    return node;
}

void TopicTree::prune(uint32_t node) {
    while (node != kRoot && nodes_[node].child_count == 0 && nodes_[node].payload == kNoId) {
        uint32_t parent = nodes_[node].parent;
        remove_node(node);
        node = parent;
    }
}

void TopicTree::remove_node(uint32_t node) {
    Node& n = nodes_[node];
    erase_slot(slots_, probe_child(n.parent, n.level, n.hash));
    if (link_children_) {
        Links& l = links_[node];
        if (l.prev != kNoId) links_[l.prev].next = l.next;
        else links_[n.parent].first_child = l.next;
        if (l.next != kNoId) links_[l.next].prev = l.prev;
        l = Links{};
    }
    Node& p = nodes_[n.parent];
    --p.child_count;
    if (n.level == kPlusLevel) p.has_plus = 0;
    if (n.level == kHashLevel) p.has_hash = 0;
    levels_.release(n.level);
    n = Node{};
    --live_nodes_;
    if (live_nodes_ == 0) {
        reset_storage();  // the tree is empty again: return all memory
        return;
    }
    free_nodes_.push_back(node);
    if (slots_.size() >= 2 * kMinTableSlots && live_nodes_ * 8 < slots_.size()) rehash_slots(slots_, slots_.size() / 2);
}

void TopicTree::build_name(uint32_t node, std::string& out) const {
    out.clear();
    // Length first, then fill from the back: one pass up the parent chain each.
    size_t len = 0;
    for (uint32_t n = node; n != kRoot; n = nodes_[n].parent)
        len += levels_.view(nodes_[n].level).size() + (nodes_[n].parent != kRoot ? 1 : 0);
    out.resize(len);
    size_t end = len;
    for (uint32_t n = node; n != kRoot; n = nodes_[n].parent) {
        std::string_view lvl = levels_.view(nodes_[n].level);
        end -= lvl.size();
        lvl.copy(out.data() + end, lvl.size());
        if (nodes_[n].parent != kRoot) out[--end] = '/';
    }
}

}  // namespace hato::broker::detail
