#include "broker/shared_groups.hpp"

namespace hato::broker {

void SharedGroups::join(uint64_t key, Slot member, std::string_view filter) {
    Group& g = groups_[key];
    if (g.filter.empty()) g.filter = filter;
    g.members.insert(member);
}

void SharedGroups::leave(uint64_t key, Slot member) {
    auto it = groups_.find(key);
    if (it == groups_.end()) return;
    it->second.members.erase(member);
    if (it->second.members.empty()) groups_.erase(it);
}

const std::set<Slot>* SharedGroups::members(uint64_t key) const {
    auto it = groups_.find(key);
    return it == groups_.end() ? nullptr : &it->second.members;
}

std::string_view SharedGroups::filter_of(uint64_t key) const {
    if (key == 0) return {};
    auto it = groups_.find(key);
    return it == groups_.end() ? std::string_view() : std::string_view(it->second.filter);
}

size_t SharedGroups::member_count() const {
    size_t n = 0;
    for (const auto& [key, g] : groups_) n += g.members.size();
    return n;
}

}  // namespace hato::broker
