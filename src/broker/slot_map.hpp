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
// Entries live in chunks of cache-line-aligned cells, not one heap block
// each: an entry whose key and value fit two lines (the broker's
// Connection does) is found and read in two lines, where a malloc'd block
// at 16-byte alignment straddled three or four; at thousands of
// connections each of those lines is a cache miss per lookup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
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
    struct alignas(64) Node {
        value_type kv;
        size_t pos;   // index in all_
    };
    // Raw storage for one Node: constructed on insert, destroyed on erase.
    union Cell {
        Cell() {}
        ~Cell() {}
        Node node;
    };
    static constexpr size_t kChunkCells = 64;

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

    // The value for `id`, or nullptr. Touches only the entry's own lines
    // (find's iterator also reads its place in the iteration order).
    T* get(Key id) {
        Node* n = lookup(id);
        return n ? &n->kv.second : nullptr;
    }

    T& operator[](Key id) { return try_emplace(id).first->second; }

    template <typename... Args>
    std::pair<iterator, bool> try_emplace(Key id, Args&&... args) {
        if (Node* n = lookup(id)) return {at_node(n), false};
        Node* n = new (take_cell()) Node{value_type(std::piecewise_construct, std::forward_as_tuple(id),
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
        give_cell(n);
        return 1;
    }

    void clear() {
        for (Node* n : all_) n->~Node();
        all_.clear();
        free_.clear();
        chunks_.clear();
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

    Node* take_cell() {
        if (free_.empty()) {
            chunks_.push_back(std::make_unique<Cell[]>(kChunkCells));
            Cell* c = chunks_.back().get();
            for (size_t i = kChunkCells; i-- > 0;) free_.push_back(&c[i]);   // lowest address first
        }
        Cell* c = free_.back();
        free_.pop_back();
        return &c->node;
    }
    void give_cell(Node* n) {
        n->~Node();
        free_.push_back(reinterpret_cast<Cell*>(n));   // the union's only member: same address
    }

    // Cell storage, kept at the peak number of entries (as the reactor keeps
    // its connection table) and freed by clear() only.
    std::vector<std::unique_ptr<Cell[]>> chunks_;
    std::vector<Cell*> free_;                      // unused cells, the last freed taken first
    std::vector<Node*> by_slot_;                 // by the id's low 32 bits
    std::unordered_map<Key, Node*> others_;      // ids whose slot another id holds, or too large
    std::vector<Node*> all_;                     // every entry once: size and iteration
};

}  // namespace hato::broker
