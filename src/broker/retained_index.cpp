// Retained-topic index: the shared topic tree with children linked, so that a
// filter's "+" visits every child of a node and "#" a whole subtree, while
// literal levels are single child-table probes. match() is iterative (an
// explicit stack) so very deep topics cannot overflow the call stack, and
// rebuilds each reported topic in one reusable buffer: siblings share their
// parent's prefix, which stays intact while a depth-first walk is below it.
//
// Not re-entrant: match() reuses scratch buffers, so `fn` must not call back
// into the same index.
#include "broker/retained_index.hpp"

#include "broker/topic_tree.hpp"

#include <string>
#include <vector>

namespace hato::broker {

using detail::kNoId;
using detail::TopicTree;

namespace {

// What a stack frame still has to match below its node.
constexpr uint32_t kWholeSubtree = UINT32_MAX;

struct Frame {
    uint32_t node;
    uint32_t filter_level;  // index of the filter level for its children, or kWholeSubtree
    uint32_t prefix_len;    // length of the parent's topic in the path buffer
};

}  // namespace

struct RetainedIndex::Impl {
    TopicTree tree{true};
    detail::SlotPool<Handle> handles;
    size_t size = 0;

    mutable std::vector<std::string_view> filter_levels;
    mutable std::vector<Frame> stack;
    mutable std::string path;

    // Pushes every child of `node`; below the root a wildcard does not reach
    // topics starting with '$' (MQTT 4.7.2).
    void push_children(uint32_t node, uint32_t filter_level, uint32_t prefix_len) const {
        for (uint32_t c = tree.first_child(node); c != kNoId; c = tree.next_sibling(c)) {
            if (node == TopicTree::kRoot) {
                std::string_view name = tree.level_name(c);
                if (!name.empty() && name[0] == '$') continue;
            }
            stack.push_back({c, filter_level, prefix_len});
        }
    }
};

RetainedIndex::RetainedIndex() : impl_(std::make_unique<Impl>()) {}
RetainedIndex::~RetainedIndex() = default;

bool RetainedIndex::set(std::string_view topic, Handle h, Handle& old) {
    TopicTree& tree = impl_->tree;
    uint32_t node = tree.insert_path(topic);
    uint32_t p = tree.payload(node);
    if (p != kNoId) {
        old = impl_->handles[p];
        impl_->handles[p] = h;
        return true;
    }
    p = impl_->handles.alloc();
    impl_->handles[p] = h;
    tree.set_payload(node, p);
    ++impl_->size;
    return false;
}

bool RetainedIndex::clear(std::string_view topic, Handle& old) {
    TopicTree& tree = impl_->tree;
    uint32_t node = tree.find_path(topic);
    if (node == kNoId || tree.payload(node) == kNoId) return false;
    uint32_t p = tree.payload(node);
    old = impl_->handles[p];
    impl_->handles.release(p);
    tree.set_payload(node, kNoId);
    tree.prune(node);
    --impl_->size;
    return true;
}

bool RetainedIndex::find(std::string_view topic, Handle& out) const {
    const TopicTree& tree = impl_->tree;
    uint32_t node = tree.find_path(topic);
    if (node == kNoId || tree.payload(node) == kNoId) return false;
    out = impl_->handles[tree.payload(node)];
    return true;
}

RetainedIndex::Handle* RetainedIndex::handle(std::string_view topic) {
    const TopicTree& tree = impl_->tree;
    uint32_t node = tree.find_path(topic);
    if (node == kNoId || tree.payload(node) == kNoId) return nullptr;
    return &impl_->handles[tree.payload(node)];
}

void RetainedIndex::match(std::string_view filter,
                          const std::function<bool(std::string_view topic, Handle h)>& fn) const {
    const Impl& im = *impl_;
    const TopicTree& tree = im.tree;
    im.filter_levels.clear();
    detail::for_each_level(filter, [&](std::string_view lvl) { im.filter_levels.push_back(lvl); });
    const uint32_t level_count = uint32_t(im.filter_levels.size());

    im.stack.assign(1, Frame{TopicTree::kRoot, 0, 0});
    while (!im.stack.empty()) {
        const Frame f = im.stack.back();
        im.stack.pop_back();
        ++nodes_visited_;
        // Rebuild this node's topic on top of its parent's prefix.
        im.path.resize(f.prefix_len);
        if (f.node != TopicTree::kRoot) {
            if (tree.parent(f.node) != TopicTree::kRoot) im.path += '/';
            im.path += tree.level_name(f.node);
        }
        const uint32_t len = uint32_t(im.path.size());
        const uint32_t p = tree.payload(f.node);

        if (f.filter_level == kWholeSubtree) {
            if (p != kNoId && !fn(im.path, im.handles[p])) return;
            im.push_children(f.node, kWholeSubtree, len);
            continue;
        }
        if (f.filter_level == level_count) {
            if (p != kNoId && !fn(im.path, im.handles[p])) return;
            continue;
        }
        std::string_view lvl = im.filter_levels[f.filter_level];
        if (lvl == "#") {
            // "x/#" matches x itself and everything below it.
            if (p != kNoId && !fn(im.path, im.handles[p])) return;
            im.push_children(f.node, kWholeSubtree, len);
        } else if (lvl == "+") {
            im.push_children(f.node, f.filter_level + 1, len);
        } else {
            const uint32_t level_hash = detail::hash_level(lvl);
            const uint32_t id = tree.levels().find(lvl, level_hash);
            const uint32_t c = id == kNoId ? kNoId : tree.child(f.node, id, level_hash);
            if (c != kNoId) im.stack.push_back({c, f.filter_level + 1, len});
        }
    }
}

void RetainedIndex::reserve(size_t topics) {
    // Every topic has its own leaf node, and typically the level above the
    // leaf is not shared much either (".../sensor17/value"): two nodes and
    // one new level name per topic, plus a margin for the shared upper
    // levels. Falling just short would double the node arrays (copying
    // them); too much costs untouched address space for the node arrays and
    // a child table larger than needed.
    const size_t margin = topics / 16 + 64;
    impl_->tree.reserve(2 * topics + margin, topics + margin, 16 * topics);
    impl_->handles.reserve(topics);
}

void RetainedIndex::prefetch(std::string_view topic) const { impl_->tree.prefetch_path(topic); }

size_t RetainedIndex::size() const { return impl_->size; }
size_t RetainedIndex::node_count() const { return impl_->tree.node_count(); }

}  // namespace hato::broker
