#include "broker/topic_lsn_table.hpp"

#include <bit>
#include <cstring>

#include "broker/topic_tree_levels.hpp"   // hash_level: a fast hash of any short string

namespace hato::broker {

namespace {
constexpr size_t kMinSlots = 16;
}  // namespace

size_t TopicLsnTable::probe(std::string_view topic, uint32_t hash) const {
    const size_t mask = slots_.size() - 1;
    for (size_t pos = hash & mask;; pos = (pos + 1) & mask) {
        const Slot& s = slots_[pos];
        if (s.key == kEmpty) return pos;
        if (s.hash == hash && key_length(s.key) == topic.size() &&
            std::memcmp(arena_.data() + key_offset(s.key), topic.data(), topic.size()) == 0)
            return pos;
    }
}

TopicLsnTable::Entry* TopicLsnTable::find(std::string_view topic) {
    if (slots_.empty()) return nullptr;
    Slot& s = slots_[probe(topic, detail::hash_level(topic))];
    return s.key == kEmpty ? nullptr : &s.entry;
}

TopicLsnTable::Entry& TopicLsnTable::get(std::string_view topic, bool& created) {
    // Load factor at most 3/4 after this insert.
    if ((live_ + 1) * 4 > slots_.size() * 3) rehash(slots_.empty() ? kMinSlots : slots_.size() * 2);
    const uint32_t hash = detail::hash_level(topic);
    Slot& s = slots_[probe(topic, hash)];
    created = s.key == kEmpty;
    if (created) {
        s.entry = Entry{};
        s.hash = hash;
        s.key = (uint64_t(arena_.size()) << 16) | topic.size();
        arena_.insert(arena_.end(), topic.begin(), topic.end());
        ++live_;
    }
    return s.entry;
}

bool TopicLsnTable::erase(std::string_view topic) {
    if (slots_.empty()) return false;
    const size_t mask = slots_.size() - 1;
    size_t hole = probe(topic, detail::hash_level(topic));
    if (slots_[hole].key == kEmpty) return false;
    dead_bytes_ += key_length(slots_[hole].key);
    // Backward shift: pull later members of the run into the hole.
    for (size_t pos = (hole + 1) & mask; slots_[pos].key != kEmpty; pos = (pos + 1) & mask) {
        const size_t home = slots_[pos].hash & mask;
        if (((pos - home) & mask) >= ((pos - hole) & mask)) {
            slots_[hole] = slots_[pos];
            hole = pos;
        }
    }
    slots_[hole] = Slot{};
    if (--live_ == 0) {
        std::vector<Slot>().swap(slots_);
        std::vector<char>().swap(arena_);
        dead_bytes_ = 0;
        return true;
    }
    if (slots_.size() > kMinSlots && live_ * 8 < slots_.size()) rehash(slots_.size() / 2);
    if (dead_bytes_ > 4096 && dead_bytes_ > arena_.size() / 2) compact_arena();
    return true;
}

void TopicLsnTable::reserve(size_t n) {
    const size_t want = std::bit_ceil((n * 4 + 2) / 3 + 1);
    if (want > slots_.size()) rehash(want < kMinSlots ? kMinSlots : want);
}

void TopicLsnTable::place(const Slot& s) {
    const size_t mask = slots_.size() - 1;
    size_t pos = s.hash & mask;
    while (slots_[pos].key != kEmpty) pos = (pos + 1) & mask;
    slots_[pos] = s;
}

void TopicLsnTable::rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    for (const Slot& s : old)
        if (s.key != kEmpty) place(s);
}

void TopicLsnTable::compact_arena() {
    std::vector<char> fresh;
    fresh.reserve(arena_.size() - dead_bytes_);
    for (Slot& s : slots_) {
        if (s.key == kEmpty) continue;
        const uint64_t offset = fresh.size();
        const std::string_view k = key_view(s.key);
        fresh.insert(fresh.end(), k.begin(), k.end());
        s.key = (offset << 16) | k.size();
    }
    arena_ = std::move(fresh);
    dead_bytes_ = 0;
}

}  // namespace hato::broker
