#include "broker/session_table.hpp"

namespace hato::broker {

Session& SessionTable::create(const std::string& client_id) {
    Slot slot;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
    } else {
        slot = static_cast<Slot>(slots_.size());
        slots_.emplace_back();
    }
    auto s = std::make_unique<Session>();
    s->slot = slot;
    s->client_id = client_id;
    s->generation = new_generation();
    slots_[slot] = std::move(s);
    by_client_.put(client_id, slot);   // after: the index reads the id from the session
    return *slots_[slot];
}

void SessionTable::erase(Session& s) {
    const Slot slot = s.slot;
    by_client_.erase(s.client_id);
    slots_[slot].reset();
    free_slots_.push_back(slot);
}

}  // namespace hato::broker
