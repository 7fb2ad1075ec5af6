// ClientIndex: client id -> slot, ids read back through the id_of callback.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "broker/client_index.hpp"

using hato::broker::ClientIndex;

namespace {

// Slots index into `ids`, the way the broker's index reads its sessions.
struct Fixture {
    std::vector<std::string> ids;
    ClientIndex index{[this](ClientIndex::Slot s) { return std::string_view(ids[s]); }};
};

}  // namespace

TEST_CASE("client index: put, find, replace, erase") {
    Fixture f;
    f.ids = {"a", "b", ""};
    CHECK(f.index.find("a") == ClientIndex::kNone);
    f.index.put("a", 0);
    f.index.put("b", 1);
    f.index.put("", 2);   // an empty id is an id like any other
    CHECK(f.index.find("a") == 0);
    CHECK(f.index.find("b") == 1);
    CHECK(f.index.find("") == 2);
    CHECK_FALSE(f.index.contains("c"));
    CHECK(f.index.size() == 3);

    f.ids.push_back("a");   // slot 3 holds "a" too: put replaces the slot of "a"
    f.index.put("a", 3);
    CHECK(f.index.find("a") == 3);
    CHECK(f.index.size() == 3);

    f.index.erase("a");
    f.index.erase("missing");
    CHECK(f.index.find("a") == ClientIndex::kNone);
    CHECK(f.index.find("b") == 1);
    CHECK(f.index.size() == 2);
}

TEST_CASE("client index: many ids, erased in random order, the rest stay findable") {
    Fixture f;
    constexpr int kIds = 5000;
    for (int i = 0; i < kIds; ++i) f.ids.push_back("client-" + std::to_string(i));
    for (int i = 0; i < kIds; ++i) f.index.put(f.ids[size_t(i)], ClientIndex::Slot(i));
    CHECK(f.index.size() == size_t(kIds));

    std::vector<int> order(kIds);
    for (int i = 0; i < kIds; ++i) order[size_t(i)] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(42));
    std::vector<bool> erased(kIds, false);
    for (int n = 0; n < kIds; ++n) {
        int victim = order[size_t(n)];
        f.index.erase(f.ids[size_t(victim)]);
        erased[size_t(victim)] = true;
        if (n % 500 != 0) continue;   // full check now and then
        for (int i = 0; i < kIds; ++i) {
            const ClientIndex::Slot want = erased[size_t(i)] ? ClientIndex::kNone : ClientIndex::Slot(i);
            REQUIRE(f.index.find(f.ids[size_t(i)]) == want);
        }
    }
    CHECK(f.index.size() == 0);
    f.index.put(f.ids[7], 7);   // reusable after emptying
    CHECK(f.index.find(f.ids[7]) == 7);
}
