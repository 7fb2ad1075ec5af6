// Shared subscription groups ("$share/group/filter"), each under its share
// key (SubIndex's share_key): the member sessions, the filter as they
// subscribed it, and whose turn is next. A group exists while it has members.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "broker/client_state.hpp"

namespace hato::broker {

class SharedGroups {
public:
    void join(uint64_t key, Slot member, std::string_view filter);
    void leave(uint64_t key, Slot member);   // the last member leaving ends the group

    // The members in slot order; nullptr if there is no such group.
    const std::set<Slot>* members(uint64_t key) const;
    // "$share/group/filter" of the group; empty if none (key 0: not shared).
    std::string_view filter_of(uint64_t key) const;
    // The round-robin position the group's next pick starts from.
    uint32_t& turn(uint64_t key) { return groups_[key].turn; }
    size_t member_count() const;   // over all groups

private:
    struct Group {
        std::set<Slot> members;
        std::string filter;
        uint32_t turn = 0;
    };
    std::unordered_map<uint64_t, Group> groups_;
};

}  // namespace hato::broker
