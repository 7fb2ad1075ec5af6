// String-keyed maps whose lookups by string_view allocate nothing, and the
// one find-or-emplace the durable state's indexes share.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hato::broker {

struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, StrHash, std::equal_to<>>;

// m[key], without building a std::string when the key is already there.
template <class Map, class K>
typename Map::mapped_type& find_or_emplace(Map& m, const K& key) {
    auto it = m.find(key);
    if (it == m.end()) it = m.emplace(typename Map::key_type(key), typename Map::mapped_type{}).first;
    return it->second;
}

}  // namespace hato::broker
