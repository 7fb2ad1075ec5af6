// The sessions, each in a slot: the subscription index refers to a session
// by its slot, so a session never moves and a freed slot is reused. Found
// by client id through ClientIndex. Every attach and removal takes a new
// generation, which the timers of a session compare to tell a stale entry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "broker/client_index.hpp"
#include "broker/client_state.hpp"

namespace hato::broker {

class SessionTable {
public:
    SessionTable() = default;
    SessionTable(const SessionTable&) = delete;   // the index reads ids through `this`
    SessionTable& operator=(const SessionTable&) = delete;

    Session* get(Slot s) const { return s < slots_.size() ? slots_[s].get() : nullptr; }
    Session* find(std::string_view client_id) const { return get(by_client_.find(client_id)); }
    bool contains(std::string_view client_id) const { return by_client_.contains(client_id); }
    // A new session for `client_id` (which has none) in a free slot.
    Session& create(const std::string& client_id);
    void erase(Session& s);   // frees its slot: `s` is gone afterwards
    uint64_t new_generation() { return next_generation_++; }
    size_t size() const { return slots_.size() - free_slots_.size(); }   // live sessions

    // Every slot in slot order; a free one holds nullptr.
    auto begin() const { return slots_.begin(); }
    auto end() const { return slots_.end(); }

private:
    std::vector<std::unique_ptr<Session>> slots_;   // by slot; nullptr = free
    std::vector<Slot> free_slots_;
    ClientIndex by_client_{[this](Slot s) { return std::string_view(slots_[s]->client_id); }};
    uint64_t next_generation_ = 1;
};

}  // namespace hato::broker
