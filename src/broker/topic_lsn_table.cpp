#include "broker/topic_lsn_table.hpp"

#include <cstring>

#include "broker/open_table.hpp"
#include "broker/topic_tree_levels.hpp"   // hash_level: a fast hash of any short string

namespace hato::broker {

using detail::ProbeRange;

size_t TopicLsnTable::probe(std::string_view topic, uint32_t hash) const {
    const ProbeRange r(slots_.size());
    for (size_t pos = r.home(hash);; pos = r.next(pos)) {
        const Slot& s = slots_[pos];
        if (s.key == kEmpty) return pos;
        if (s.entry.hash_ == hash && key_length(s.key) == topic.size() &&
            std::memcmp(arena_.data() + key_offset(s.key), topic.data(), topic.size()) == 0)
            return pos;
    }
}

void TopicLsnTable::prefetch(std::string_view topic) const {
    if (slots_.empty()) return;
    __builtin_prefetch(&slots_[ProbeRange(slots_.size()).home(detail::hash_level(topic))]);
}

TopicLsnTable::Entry* TopicLsnTable::find(std::string_view topic) {
    if (slots_.empty()) return nullptr;
    Slot& s = slots_[probe(topic, detail::hash_level(topic))];
    return s.key == kEmpty ? nullptr : &s.entry;
}

TopicLsnTable::Entry& TopicLsnTable::get(std::string_view topic, bool& created) {
    // Load factor at most 3/4 after this insert.
    if ((live_ + 1) * 4 > slots_.size() * 3)
        detail::rehash_slots(slots_, slots_.empty() ? detail::kMinTableSlots : slots_.size() * 2);
    const uint32_t hash = detail::hash_level(topic);
    Slot& s = slots_[probe(topic, hash)];
    created = s.key == kEmpty;
    if (created) {
        s.entry = Entry{};
        s.entry.hash_ = hash;
        s.key = (uint64_t(arena_.size()) << 16) | topic.size();
        arena_.insert(arena_.end(), topic.begin(), topic.end());
        ++live_;
    }
    return s.entry;
}

bool TopicLsnTable::take(std::string_view topic, Entry& out) {
    if (slots_.empty()) return false;
    const size_t pos = probe(topic, detail::hash_level(topic));
    if (slots_[pos].key == kEmpty) return false;
    out = slots_[pos].entry;
    dead_bytes_ += key_length(slots_[pos].key);
    detail::erase_slot(slots_, pos);
    if (--live_ == 0) {
        std::vector<Slot>().swap(slots_);
        std::vector<char>().swap(arena_);
        dead_bytes_ = 0;
        return true;
    }
    if (slots_.size() >= 2 * detail::kMinTableSlots && live_ * 8 < slots_.size())
        detail::rehash_slots(slots_, slots_.size() / 2);
    if (dead_bytes_ > 4096 && dead_bytes_ > arena_.size() / 2) compact_arena();
    return true;
}

void TopicLsnTable::reserve(size_t n, size_t key_bytes) {
    const size_t want = detail::table_capacity_for(live_ + n);
    if (want > slots_.size()) detail::rehash_slots(slots_, want);
    arena_.reserve(arena_.size() + key_bytes);
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
