// The broker's connections by id, with the part of std::unordered_map's
// interface the broker uses. A reactor's id carries its connection-table slot
// in the low 32 bits, so an entry is found by indexing an array with them
// (and checking the whole id) instead of hashing: the broker looks a
// connection up several times per message, and with thousands of connections
// a hash table's bucket, the chain node before the entry and the division
// were cache misses on every one. An id whose slot is already held by another
// id (ids not made by a reactor, e.g. in tests), or whose slot is too large
// to index, goes to an ordinary hash map. Entries never move: a reference
// stays valid until its entry is erased. Iteration order is unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <tuple>
#include <utility>
#include <vector>

namespace hato::broker {

template <typename Key, typename T>
class SlotMap {
public:
    using key_type = Key;
    using mapped_type = T;
    using value_type = std::pair<const Key, T>;

private:
    struct Node {
        value_type kv;
        size_t pos;   // index in all_
    };

public:
    class iterator {
    public:
        iterator() = default;
        value_type& operator*() const { return node_->kv; }
        value_type* operator->() const { return &node_->kv; }
        iterator& operator++() {
            ++pos_;
            node_ = pos_ == end_ ? nullptr : *pos_;
            return *this;
        }
        bool operator==(const iterator& o) const { return pos_ == o.pos_; }

    private:
        friend class SlotMap;
        // The node is carried along so that a found entry is reached without
        // loading its place in all_ (a line of its own at many entries).
        iterator(Node* const* pos, Node* const* end, Node* node) : pos_(pos), end_(end), node_(node) {}
        Node* const* pos_ = nullptr;
        Node* const* end_ = nullptr;
        Node* node_ = nullptr;
    };

    SlotMap() = default;
    SlotMap(const SlotMap&) = delete;
    SlotMap& operator=(const SlotMap&) = delete;
    ~SlotMap() { clear(); }

    size_t size() const { return all_.size(); }
    bool empty() const { return all_.empty(); }
    iterator begin() { return at_pos(0); }
    iterator end() { return {all_.data() + all_.size(), all_.data() + all_.size(), nullptr}; }

    iterator find(Key id) {
        Node* n = lookup(id);
        return n ? at_node(n) : end();
    }

    T& operator[](Key id) { return try_emplace(id).first->second; }

    template <typename... Args>
    std::pair<iterator, bool> try_emplace(Key id, Args&&... args) {
        if (Node* n = lookup(id)) return {at_node(n), false};
        Node* n = new Node{value_type(std::piecewise_construct, std::forward_as_tuple(id),
                                      std::forward_as_tuple(std::forward<Args>(args)...)),
                           all_.size()};
        all_.push_back(n);
        const uint64_t slot = slot_of(id);
        if (slot < kMaxSlots) {
            if (slot >= by_slot_.size()) by_slot_.resize(size_t(slot) + 1, nullptr);
            if (!by_slot_[slot]) {
                by_slot_[slot] = n;
                return {at_node(n), true};
            }
        }
        others_.emplace(id, n);
        return {at_node(n), true};
    }

    size_t erase(Key id) {
        Node* n = nullptr;
        const uint64_t slot = slot_of(id);
        if (slot < by_slot_.size() && by_slot_[slot] && by_slot_[slot]->kv.first == id) {
            n = by_slot_[slot];
            by_slot_[slot] = nullptr;
        } else if (!others_.empty()) {
            auto it = others_.find(id);
            if (it == others_.end()) return 0;
            n = it->second;
            others_.erase(it);
        } else {
            return 0;
        }
        Node* last = all_.back();   // takes the erased entry's place in all_
        last->pos = n->pos;
        all_[n->pos] = last;
        all_.pop_back();
        delete n;
        return 1;
    }

    void clear() {
        for (Node* n : all_) delete n;
        all_.clear();
        by_slot_.clear();
        others_.clear();
    }

private:
    // Reactor slots are dense from 0; past this an id is not a slot.
    static constexpr uint64_t kMaxSlots = uint64_t(1) << 20;
    static uint64_t slot_of(Key id) { return uint64_t(id) & 0xffffffffu; }

    Node* lookup(Key id) const {
        const uint64_t slot = slot_of(id);
        if (slot < by_slot_.size()) {
            Node* n = by_slot_[slot];
            if (n && n->kv.first == id) return n;
        }
        if (others_.empty()) return nullptr;
        auto it = others_.find(id);
        return it == others_.end() ? nullptr : it->second;
    }
    iterator at_node(Node* n) { return {all_.data() + n->pos, all_.data() + all_.size(), n}; }
    iterator at_pos(size_t pos) {
        Node* const* p = all_.data() + pos;
        Node* const* e = all_.data() + all_.size();
        return {p, e, p == e ? nullptr : *p};
    }

    std::vector<Node*> by_slot_;                 // by the id's low 32 bits
    std::unordered_map<Key, Node*> others_;      // ids whose slot another id holds, or too large
    std::vector<Node*> all_;                     // every entry once: size and iteration
};

}  // namespace hato::broker
