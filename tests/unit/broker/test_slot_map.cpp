// SlotMap: the broker's connection map, indexed by the reactor slot in an id.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "broker/slot_map.hpp"

using hato::broker::SlotMap;

namespace {
uint64_t rid(uint32_t slot, uint32_t gen) { return (uint64_t(gen) << 32) | slot; }
}  // namespace

TEST_CASE("slot_map: insert, find, erase by reactor ids") {
    SlotMap<uint64_t, std::string> m;
    m[rid(0, 1)] = "a";
    m[rid(5, 2)] = "b";
    CHECK(m.size() == 2);
    REQUIRE(m.find(rid(5, 2)) != m.end());
    CHECK(m.find(rid(5, 2))->second == "b");
    CHECK(m.find(rid(5, 3)) == m.end());   // same slot, other generation
    CHECK(m.find(rid(7, 2)) == m.end());
    CHECK(m.erase(rid(5, 3)) == 0);
    CHECK(m.erase(rid(5, 2)) == 1);
    CHECK(m.find(rid(5, 2)) == m.end());
    CHECK(m.size() == 1);
    CHECK(m.find(rid(0, 1)) != m.end());
}

TEST_CASE("slot_map: two live ids on one slot, and ids too large to index") {
    SlotMap<uint64_t, int> m;
    m[rid(3, 1)] = 1;
    m[rid(3, 2)] = 2;   // its slot is taken: kept aside
    m[0xfffffff0ull] = 3;
    CHECK(m.size() == 3);
    CHECK(m[rid(3, 1)] == 1);
    CHECK(m[rid(3, 2)] == 2);
    CHECK(m.erase(rid(3, 1)) == 1);
    CHECK(m.find(rid(3, 2))->second == 2);   // still found once the slot's owner left
    m[rid(3, 3)] = 4;
    CHECK(m.find(rid(3, 3))->second == 4);
    CHECK(m.find(0xfffffff0ull)->second == 3);
    CHECK(m.erase(rid(3, 2)) == 1);
    CHECK(m.erase(0xfffffff0ull) == 1);
    CHECK(m.size() == 1);
}

TEST_CASE("slot_map: entries stay put and every one is iterated once") {
    SlotMap<uint64_t, std::unique_ptr<int>> m;
    int* first = (m[rid(0, 1)] = std::make_unique<int>(7)).get();
    uint64_t* key_addr = const_cast<uint64_t*>(&m.find(rid(0, 1))->first);
    for (uint32_t i = 1; i < 3000; ++i) m.try_emplace(rid(i, 1), std::make_unique<int>(int(i)));
    CHECK(&m.find(rid(0, 1))->first == key_addr);   // not moved by the growth
    CHECK(m.find(rid(0, 1))->second.get() == first);
    for (uint32_t i = 0; i < 3000; i += 2) CHECK(m.erase(rid(i, 1)) == 1);
    std::set<uint64_t> seen;
    for (auto& [id, v] : m) {
        CHECK(seen.insert(id).second);
        CHECK(uint64_t(*v) == (id & 0xffffffffu));
    }
    CHECK(seen.size() == 1500);
    CHECK(m.size() == 1500);
    auto [it, added] = m.try_emplace(rid(1, 1));
    CHECK_FALSE(added);
    CHECK(*it->second == 1);
    m.clear();
    CHECK(m.empty());
    CHECK(m.begin() == m.end());
}

TEST_CASE("slot_map: entries start on a cache line, and cells are reused") {
    SlotMap<uint64_t, std::string> m;
    for (uint32_t i = 0; i < 200; ++i) m[rid(i, 1)] = std::to_string(i);
    for (uint32_t i = 0; i < 200; ++i) CHECK(reinterpret_cast<uintptr_t>(&m.find(rid(i, 1))->first) % 64 == 0);
    const auto freed = reinterpret_cast<uintptr_t>(m.get(rid(7, 1)));
    CHECK(m.erase(rid(7, 1)) == 1);
    CHECK(m.get(rid(7, 1)) == nullptr);
    m[rid(7, 2)] = "again";
    CHECK(reinterpret_cast<uintptr_t>(m.get(rid(7, 2))) == freed);   // the cell just freed is the next one taken
    CHECK(*m.get(rid(7, 2)) == "again");
    CHECK(m.size() == 200);
}
