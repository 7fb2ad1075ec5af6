#include "broker/client_index.hpp"

#include "broker/open_table.hpp"
#include "broker/topic_tree_levels.hpp"   // hash_level: keyed per process

namespace hato::broker {

// Keyed, like the topic hashes: client ids are chosen by clients, and with
// a known hash many ids could be made to share one probe run.
uint32_t ClientIndex::hash_id(std::string_view id) { return detail::hash_level(id); }

size_t ClientIndex::position(std::string_view id, uint32_t hash) const {
    return detail::probe_slot(table_, hash, [&](const Entry& e) { return e.hash == hash && id_of_(e.slot) == id; });
}

ClientIndex::Slot ClientIndex::find(std::string_view id) const {
    if (size_ == 0) return kNone;
    return table_[position(id, hash_id(id))].slot;
}

void ClientIndex::put(std::string_view id, Slot slot) {
    // Grows to a load of about 3/8, so the next growth is far off.
    if ((size_ + 1) * 4 > table_.size() * 3) detail::rehash_slots(table_, detail::table_capacity_for(2 * (size_ + 1)));
    const uint32_t hash = hash_id(id);
    Entry& e = table_[position(id, hash)];
    if (e.slot == kNone) ++size_;
    e = {hash, slot};
}

void ClientIndex::erase(std::string_view id) {
    if (size_ == 0) return;
    const size_t hole = position(id, hash_id(id));
    if (table_[hole].slot == kNone) return;
    --size_;
    detail::erase_slot(table_, hole);
}

}  // namespace hato::broker
