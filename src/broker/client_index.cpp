#include "broker/client_index.hpp"

namespace hato::broker {

uint32_t ClientIndex::hash_of(std::string_view id) {
    uint64_t h = std::hash<std::string_view>{}(id);
    return uint32_t(h ^ (h >> 32));
}

size_t ClientIndex::position(std::string_view id, uint32_t hash) const {
    const size_t mask = table_.size() - 1;
    size_t i = hash & mask;
    while (table_[i].slot != kNone && (table_[i].hash != hash || id_of_(table_[i].slot) != id)) i = (i + 1) & mask;
    return i;
}

ClientIndex::Slot ClientIndex::find(std::string_view id) const {
    if (size_ == 0) return kNone;
    return table_[position(id, hash_of(id))].slot;
}

void ClientIndex::put(std::string_view id, Slot slot) {
    if ((size_ + 1) * 4 > table_.size() * 3) grow();
    uint32_t hash = hash_of(id);
    Entry& e = table_[position(id, hash)];
    if (e.slot == kNone) ++size_;
    e = {hash, slot};
}

void ClientIndex::erase(std::string_view id) {
    if (size_ == 0) return;
    const size_t mask = table_.size() - 1;
    size_t hole = position(id, hash_of(id));
    if (table_[hole].slot == kNone) return;
    --size_;
    // Backward shift: move later entries of the run into the hole when the
    // hole lies between their home position and where they sit now.
    for (size_t i = (hole + 1) & mask; table_[i].slot != kNone; i = (i + 1) & mask) {
        size_t home = table_[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            table_[hole] = table_[i];
            hole = i;
        }
    }
    table_[hole] = Entry{};
}

void ClientIndex::grow() {
    std::vector<Entry> old;
    old.swap(table_);
    table_.assign(old.empty() ? 16 : old.size() * 2, Entry{});
    const size_t mask = table_.size() - 1;
    for (const Entry& e : old) {
        if (e.slot == kNone) continue;
        size_t i = e.hash & mask;
        while (table_[i].slot != kNone) i = (i + 1) & mask;
        table_[i] = e;
    }
}

}  // namespace hato::broker
