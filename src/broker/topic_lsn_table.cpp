#include "broker/topic_lsn_table.hpp"

#include "broker/open_table.hpp"
#include "broker/topic_tree_levels.hpp"   // hash_level: a fast hash of any short string

namespace hato::broker {

using detail::ProbeRange;

size_t TopicLsnTable::probe(std::string_view topic, uint32_t hash) const {
    return detail::probe_slot(slots_, hash,
                              [&](const Slot& s) { return s.hash_ == hash && stored_view(s.key_) == topic; });
}

void TopicLsnTable::prefetch(std::string_view topic) const {
    if (slots_.empty()) return;
    __builtin_prefetch(&slots_[ProbeRange(slots_.size()).home(detail::hash_level(topic))]);
}

TopicLsnTable::Entry* TopicLsnTable::find(std::string_view topic) {
    if (slots_.empty()) return nullptr;
    Slot& s = slots_[probe(topic, detail::hash_level(topic))];
    return s.key_ == nullptr ? nullptr : &s;
}

TopicLsnTable::Entry& TopicLsnTable::get(std::string_view topic, const uint8_t* stored, bool& created) {
    // Load factor at most 3/4 after this insert.
    if ((live_ + 1) * 4 > slots_.size() * 3)
        detail::rehash_slots(slots_, slots_.empty() ? detail::kMinTableSlots : slots_.size() * 2);
    const uint32_t hash = detail::hash_level(topic);
    Slot& s = slots_[probe(topic, hash)];
    created = s.key_ == nullptr;
    if (created) {
        static_cast<Entry&>(s) = Entry{};
        s.hash_ = hash;
        ++live_;
    }
    s.key_ = stored;
    return s;
}

bool TopicLsnTable::take(std::string_view topic, Entry& out) {
    if (slots_.empty()) return false;
    const size_t pos = probe(topic, detail::hash_level(topic));
    if (slots_[pos].key_ == nullptr) return false;
    out = slots_[pos];
    detail::erase_slot(slots_, pos);
    if (--live_ == 0) {
        std::vector<Slot>().swap(slots_);
        return true;
    }
    if (slots_.size() >= 2 * detail::kMinTableSlots && live_ * 8 < slots_.size())
        detail::rehash_slots(slots_, slots_.size() / 2);
    return true;
}

void TopicLsnTable::reserve(size_t n) {
    const size_t want = detail::table_capacity_for(live_ + n);
    if (want > slots_.size()) detail::rehash_slots(slots_, want);
}

}  // namespace hato::broker
