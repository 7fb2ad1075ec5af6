// The open-addressing tables behind the topic indexes and LogPersistence
// (TopicLsnTable, LevelTable) against a std::unordered_map model: random
// inserts and erases, growth and shrinking through many capacities (which
// are not powers of two), reserve() ahead of a bulk load, keys kept by the
// caller and re-pointed.
#include "broker/retained_index.hpp"
#include "broker/topic_lsn_table.hpp"
#include "broker/topic_tree_levels.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

using hato::broker::TopicLsnTable;
using hato::broker::detail::hash_level;
using hato::broker::detail::kNoId;
using hato::broker::detail::LevelTable;

namespace {

// Length-prefixed copies of topics kept outside the table, as the log's
// records are for LogPersistence. When an entry moves to a new copy (or is
// erased) the old copy is scribbled over, so a table still comparing
// against it would fail the lookups below.
struct KeyStore {
    std::deque<std::vector<uint8_t>> copies;
    std::unordered_map<std::string, std::vector<uint8_t>*> current;

    const uint8_t* add(const std::string& topic) {
        std::vector<uint8_t>& c = copies.emplace_back(4 + topic.size());
        const uint32_t len = uint32_t(topic.size());
        std::memcpy(c.data(), &len, 4);
        std::memcpy(c.data() + 4, topic.data(), topic.size());
        scribble_ = current[topic];
        current[topic] = &c;
        return c.data();
    }
    // Call once the table holds the copy add() returned.
    void retire_previous() {
        if (scribble_) std::fill(scribble_->begin() + 4, scribble_->end(), uint8_t('#'));
        scribble_ = nullptr;
    }
    void retire(const std::string& topic) {
        auto it = current.find(topic);
        REQUIRE(it != current.end());
        std::fill(it->second->begin() + 4, it->second->end(), uint8_t('#'));
        current.erase(it);
    }

private:
    std::vector<uint8_t>* scribble_ = nullptr;
};

// Checks every model key is found with its value, and a few absent ones are not.
void check_lsn_table(TopicLsnTable& t, const std::unordered_map<std::string, uint64_t>& model) {
    REQUIRE(t.size() == model.size());
    for (const auto& [k, v] : model) {
        TopicLsnTable::Entry* e = t.find(k);
        REQUIRE(e != nullptr);
        CHECK(e->lsn == v);
    }
    CHECK(t.find("absent/topic") == nullptr);
}

}  // namespace

TEST_CASE("TopicLsnTable: random inserts and erases agree with a model") {
    for (const size_t reserve : {size_t(0), size_t(1000), size_t(5000)}) {
        TopicLsnTable t;
        KeyStore keys_store;
        if (reserve) t.reserve(reserve);
        std::unordered_map<std::string, uint64_t> model;
        std::mt19937 rng(uint32_t(7 + reserve));
        uint64_t lsn = 0;
        for (int round = 0; round < 4; ++round) {
            // Grow: mostly new topics, some overwrites.
            for (int i = 0; i < 3000; ++i) {
                std::string topic = "a/" + std::to_string(rng() % 4000) + "/x";
                bool created = false;
                TopicLsnTable::Entry& e = t.get(topic, keys_store.add(topic), created);
                CHECK(created == !model.contains(topic));
                e.lsn = ++lsn;
                keys_store.retire_previous();
                model[topic] = lsn;
            }
            check_lsn_table(t, model);
            // Re-point some entries at other copies of their topics.
            for (const auto& kv : model) {
                if (rng() % 3) continue;
                TopicLsnTable::Entry* e = t.find(kv.first);
                REQUIRE(e != nullptr);
                t.rekey(*e, keys_store.add(kv.first));
                keys_store.retire_previous();
            }
            check_lsn_table(t, model);
            // Shrink: erase most of them (take and erase), forcing backward
            // shifts and smaller tables.
            std::vector<std::string> keys;
            for (const auto& kv : model) keys.push_back(kv.first);
            for (size_t i = 0; i < keys.size(); ++i) {
                if (i % 5 == 0) continue;
                TopicLsnTable::Entry out;
                if (i % 2) {
                    REQUIRE(t.take(keys[i], out));
                    CHECK(out.lsn == model[keys[i]]);
                } else {
                    REQUIRE(t.erase(keys[i]));
                }
                CHECK_FALSE(t.erase(keys[i]));
                keys_store.retire(keys[i]);
                model.erase(keys[i]);
            }
            check_lsn_table(t, model);
        }
        // Empty it completely, then use it again.
        for (const auto& kv : model) REQUIRE(t.erase(kv.first));
        model.clear();
        CHECK(t.size() == 0);
        bool created = false;
        t.get("again", keys_store.add("again"), created).lsn = 9;
        CHECK(created);
        CHECK(t.find("again")->lsn == 9);
    }
}

TEST_CASE("LevelTable: acquire and release agree with a reference count model") {
    LevelTable t;
    t.reserve(700, 700 * 4);
    std::unordered_map<std::string, std::pair<uint32_t, int>> model;  // name -> id, refs
    std::mt19937 rng(11);
    for (int i = 0; i < 40000; ++i) {
        const std::string name = std::to_string(rng() % 3000);
        const uint32_t h = hash_level(name);
        auto it = model.find(name);
        if (it != model.end() && rng() % 2) {
            t.release(it->second.first);
            if (--it->second.second == 0) {
                model.erase(it);
                CHECK(t.find(name, h) == kNoId);
            }
        } else {
            const uint32_t id = t.acquire(name, h);
            if (it != model.end()) {
                CHECK(id == it->second.first);
                ++it->second.second;
            } else {
                model[name] = {id, 1};
            }
            CHECK(t.view(id) == name);
        }
        if (i % 5000 == 0) {
            REQUIRE(t.live_count() == model.size());
            for (const auto& [n, v] : model) CHECK(t.find(n, hash_level(n)) == v.first);
        }
    }
    for (auto& [n, v] : model)
        while (v.second-- > 0) t.release(v.first);
    CHECK(t.live_count() == 0);
}

namespace {

// Two different strings with the same hash_level. A 32-bit hash repeats
// after about 82,000 strings on average (birthday bound), whatever the
// process's random hash key; two million leave no realistic chance of none.
std::pair<std::string, std::string> colliding_levels() {
    std::unordered_map<uint32_t, std::string> seen;
    for (uint32_t i = 0; i < 2000000; ++i) {
        std::string s = "lvl" + std::to_string(i);
        auto [it, fresh] = seen.emplace(hash_level(s), s);
        if (!fresh) return {it->second, s};
    }
    FAIL("no hash_level collision in 2,000,000 strings");
    return {};
}

}  // namespace

TEST_CASE("tables tell apart keys whose hashes are equal") {
    // Searched once: doctest runs this body again for every subcase.
    static const std::pair<std::string, std::string> found = colliding_levels();
    const auto& [a, b] = found;
    REQUIRE(a != b);
    REQUIRE(hash_level(a) == hash_level(b));

    SUBCASE("TopicLsnTable") {
        TopicLsnTable t;
        KeyStore keys;
        bool created = false;
        t.get(a, keys.add(a), created).lsn = 1;
        CHECK(created);
        t.get(b, keys.add(b), created).lsn = 2;
        CHECK(created);   // not taken for a's entry
        REQUIRE(t.find(a));
        REQUIRE(t.find(b));
        CHECK(t.find(a)->lsn == 1);
        CHECK(t.find(b)->lsn == 2);
        CHECK(t.erase(a));
        CHECK_FALSE(t.find(a));
        REQUIRE(t.find(b));   // the backward shift kept b reachable
        CHECK(t.find(b)->lsn == 2);
    }
    SUBCASE("LevelTable") {
        LevelTable levels;
        const uint32_t ia = levels.acquire(a, hash_level(a));
        const uint32_t ib = levels.acquire(b, hash_level(b));
        CHECK(ia != ib);
        CHECK(levels.find(a, hash_level(a)) == ia);
        CHECK(levels.find(b, hash_level(b)) == ib);
        levels.release(ia);
        CHECK(levels.find(a, hash_level(a)) == kNoId);
        CHECK(levels.find(b, hash_level(b)) == ib);
    }
    SUBCASE("RetainedIndex: siblings with one path hash") {
        // Same parent and same level hash: the tree's child table sees one
        // path hash for both and must compare the levels themselves.
        hato::broker::RetainedIndex idx;
        hato::broker::RetainedIndex::Handle old = 0, out = 0;
        CHECK_FALSE(idx.set("p/" + a, 1, old));
        CHECK_FALSE(idx.set("p/" + b, 2, old));
        CHECK(idx.size() == 2);
        CHECK(idx.find("p/" + a, out));
        CHECK(out == 1);
        CHECK(idx.find("p/" + b, out));
        CHECK(out == 2);
        CHECK(idx.clear("p/" + a, old));
        CHECK_FALSE(idx.find("p/" + a, out));
        CHECK(idx.find("p/" + b, out));
        CHECK(out == 2);
    }
}

TEST_CASE("fold_mul_portable (the armhf path) spreads every input bit") {
    // Flipping any one input bit changes about half of the output bits.
    using hato::broker::detail::fold_mul_portable;
    std::mt19937_64 rng(7);
    for (int round = 0; round < 64; ++round) {
        const uint64_t a = rng(), b = rng();
        const uint64_t base = fold_mul_portable(a, b);
        for (int bit = 0; bit < 64; ++bit) {
            const int da = __builtin_popcountll(base ^ fold_mul_portable(a ^ (1ULL << bit), b));
            const int db = __builtin_popcountll(base ^ fold_mul_portable(a, b ^ (1ULL << bit)));
            CHECK(da >= 12);
            CHECK(da <= 52);
            CHECK(db >= 12);
            CHECK(db <= 52);
        }
    }
}
