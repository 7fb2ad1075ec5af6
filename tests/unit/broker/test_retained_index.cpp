// RetainedIndex: set/replace/clear/find, filter matching against a reference
// matcher (MQTT 4.7 rules), full topic reconstruction, and pruning.
#include "broker/retained_index.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

using hato::broker::RetainedIndex;

namespace {

using Hits = std::vector<std::pair<std::string, RetainedIndex::Handle>>;

// Reference matcher, level by level (same rules as the subscription index).
bool filter_matches(std::string_view filter, std::string_view topic) {
    if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t f = 0, t = 0;
    for (;;) {
        size_t f_end = std::min(filter.find('/', f), filter.size());
        std::string_view flvl = filter.substr(f, f_end - f);
        if (flvl == "#") return true;
        if (t > topic.size()) return false;
        size_t t_end = std::min(topic.find('/', t), topic.size());
        if (flvl != "+" && flvl != topic.substr(t, t_end - t)) return false;
        if (f_end == filter.size()) return t_end == topic.size();
        f = f_end + 1;
        t = t_end + 1;
    }
}

Hits match_all(const RetainedIndex& idx, std::string_view filter) {
    Hits hits;
    idx.match(filter, [&](std::string_view topic, RetainedIndex::Handle h) {
        hits.emplace_back(std::string(topic), h);
        return true;
    });
    std::sort(hits.begin(), hits.end());
    return hits;
}

Hits brute_force(const Hits& retained, std::string_view filter) {
    Hits want;
    for (const auto& [topic, h] : retained)
        if (filter_matches(filter, topic)) want.emplace_back(topic, h);
    std::sort(want.begin(), want.end());
    return want;
}

}  // namespace

TEST_CASE("RetainedIndex: set, replace, find and clear") {
    RetainedIndex idx;
    RetainedIndex::Handle old = 0, out = 0;
    CHECK(idx.size() == 0);
    CHECK_FALSE(idx.set("a/b", 10, old));
    CHECK(idx.size() == 1);
    CHECK(idx.find("a/b", out));
    CHECK(out == 10);
    CHECK_FALSE(idx.find("a", out));  // interior node holds nothing
    CHECK_FALSE(idx.find("a/b/c", out));

    old = 0;
    CHECK(idx.set("a/b", 11, old));  // replace returns the previous handle
    CHECK(old == 10);
    CHECK(idx.size() == 1);
    CHECK(idx.find("a/b", out));
    CHECK(out == 11);

    CHECK_FALSE(idx.set("a", 5, old));  // a topic above another retained one
    CHECK(idx.size() == 2);
    CHECK(idx.find("a", out));
    CHECK(out == 5);

    CHECK_FALSE(idx.clear("a/c", old));
    CHECK_FALSE(idx.clear("a/b/c", old));
    CHECK(idx.clear("a", old));
    CHECK(old == 5);
    CHECK_FALSE(idx.clear("a", old));
    CHECK(idx.find("a/b", out));  // the child survives its parent's clear
    CHECK(idx.clear("a/b", old));
    CHECK(old == 11);
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
    CHECK(match_all(idx, "#").empty());
}

TEST_CASE("RetainedIndex: handles of any value round-trip") {
    RetainedIndex idx;
    RetainedIndex::Handle old = 0, out = 0;
    const RetainedIndex::Handle big = ~RetainedIndex::Handle(0);
    CHECK_FALSE(idx.set("x", big, old));
    CHECK_FALSE(idx.set("y", 0, old));
    CHECK(idx.find("x", out));
    CHECK(out == big);
    CHECK(idx.find("y", out));
    CHECK(out == 0);
}

TEST_CASE("RetainedIndex: MQTT 4.7 filter semantics") {
    RetainedIndex idx;
    const Hits retained = {
        {"sport", 1},
        {"sport/tennis", 2},
        {"sport/tennis/player1", 3},
        {"sport/tennis/player1/ranking", 4},
        {"sport/tennis/player1/score/wimbledon", 5},
        {"sport/tennis/player2", 6},
        {"sport/", 7},
        {"/finance", 8},
        {"$SYS/broker/clients", 9},
        {"$SYS", 10},
        {"a//b", 11},
        {"a/b", 12},
        {"x/$y", 13},
        {"/", 14},
    };
    RetainedIndex::Handle old;
    for (const auto& [topic, h] : retained) CHECK_FALSE(idx.set(topic, h, old));
    CHECK(idx.size() == retained.size());

    const char* filters[] = {
        "sport/tennis/player1/#", "sport/#", "sport/tennis/+", "sport/+", "+", "+/+", "/+",
        "#", "+/#", "$SYS/#", "$SYS/+", "$SYS", "+/broker/#", "a/+/b", "a//b", "a/#",
        "x/+", "x/#", "+/tennis/#", "nothing/#", "sport/tennis/player1", "+/+/+/+/+",
        "/", "/#", "sport/tennis/player1/+/wimbledon",
    };
    for (const char* f : filters) {
        CAPTURE(f);
        CHECK(match_all(idx, f) == brute_force(retained, f));
    }
    // A few spelled out, so the reference matcher is not the only judge.
    CHECK(match_all(idx, "sport/#") ==
          Hits{{"sport", 1}, {"sport/", 7}, {"sport/tennis", 2}, {"sport/tennis/player1", 3},
               {"sport/tennis/player1/ranking", 4}, {"sport/tennis/player1/score/wimbledon", 5},
               {"sport/tennis/player2", 6}});
    CHECK(match_all(idx, "+/+") == Hits{{"/", 14}, {"/finance", 8}, {"a/b", 12}, {"sport/", 7},
                                         {"sport/tennis", 2}, {"x/$y", 13}});
    CHECK(match_all(idx, "+") == Hits{{"sport", 1}});
    CHECK(match_all(idx, "$SYS/#") == Hits{{"$SYS", 10}, {"$SYS/broker/clients", 9}});
    Hits all = match_all(idx, "#");
    CHECK(all.size() == retained.size() - 2);  // everything but the two $SYS topics
}

TEST_CASE("RetainedIndex: random topics agree with the reference matcher") {
    std::mt19937 rng(1234);
    const char* levels[] = {"a", "b", "", "$s", "level-name-longer-than-eight", "+", "#"};
    auto random_name = [&](bool filter) {
        std::string s;
        int depth = 1 + int(rng() % 5);
        for (int i = 0; i < depth; ++i) {
            if (i) s += '/';
            std::string lvl = levels[rng() % (filter ? 7 : 5)];
            if (lvl == "$s" && i > 0) lvl = "s";
            s += lvl;
            if (lvl == "#") break;
        }
        return s;
    };
    RetainedIndex idx;
    Hits retained;  // the model
    RetainedIndex::Handle next_handle = 100, old = 0;
    for (int step = 0; step < 3000; ++step) {
        std::string topic = random_name(false);
        auto it = std::find_if(retained.begin(), retained.end(), [&](const auto& p) { return p.first == topic; });
        if (rng() % 3 == 0) {
            bool existed = it != retained.end();
            CHECK(idx.clear(topic, old) == existed);
            if (existed) {
                CHECK(old == it->second);
                retained.erase(it);
            }
        } else {
            bool existed = it != retained.end();
            RetainedIndex::Handle prev = existed ? it->second : 0;
            CHECK(idx.set(topic, next_handle, old) == existed);
            if (existed) {
                CHECK(old == prev);
                it->second = next_handle;
            } else {
                retained.emplace_back(topic, next_handle);
            }
            ++next_handle;
        }
        if (step % 100 == 0) {
            CHECK(idx.size() == retained.size());
            for (int q = 0; q < 20; ++q) {
                std::string f = random_name(true);
                CAPTURE(f);
                CHECK(match_all(idx, f) == brute_force(retained, f));
            }
        }
    }
    for (const auto& [topic, h] : retained) {
        CHECK(idx.clear(topic, old));
        CHECK(old == h);
    }
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
}

TEST_CASE("RetainedIndex: clearing prunes empty branches only") {
    RetainedIndex idx;
    RetainedIndex::Handle old;
    idx.set("a/b/c/d", 1, old);
    idx.set("a/b", 2, old);
    idx.set("a/x", 3, old);
    CHECK(idx.node_count() == 5);
    CHECK(idx.clear("a/b/c/d", old));
    CHECK(idx.node_count() == 3);
    CHECK(match_all(idx, "a/+") == Hits{{"a/b", 2}, {"a/x", 3}});
    CHECK(idx.clear("a/b", old));
    CHECK(idx.clear("a/x", old));
    CHECK(idx.node_count() == 0);
    idx.set("q", 4, old);
    CHECK(match_all(idx, "#") == Hits{{"q", 4}});
}

TEST_CASE("RetainedIndex: very deep topics walk without recursion") {
    RetainedIndex idx;
    std::string deep = "d";
    for (int i = 0; i < 20000; ++i) deep += "/l";
    RetainedIndex::Handle old;
    idx.set(deep, 1, old);
    idx.set("d/l", 2, old);
    Hits hits = match_all(idx, "d/#");
    REQUIRE(hits.size() == 2);
    CHECK(hits[0] == std::make_pair(std::string("d/l"), RetainedIndex::Handle(2)));
    CHECK(hits[1].first == deep);  // the full topic is rebuilt
    CHECK(match_all(idx, "#").size() == 2);
    CHECK(idx.clear(deep, old));
    CHECK(idx.node_count() == 2);
}

TEST_CASE("RetainedIndex: many topics under one level") {
    RetainedIndex idx;
    RetainedIndex::Handle old;
    for (int i = 0; i < 20000; ++i) idx.set("fan/" + std::to_string(i) + "/v", RetainedIndex::Handle(i), old);
    idx.set("other/1/v", 99999, old);
    Hits hits = match_all(idx, "fan/+/v");
    CHECK(hits.size() == 20000);
    CHECK(match_all(idx, "fan/17/v") == Hits{{"fan/17/v", 17}});
    CHECK(match_all(idx, "+/1/v") == Hits{{"fan/1/v", 1}, {"other/1/v", 99999}});
    for (int i = 0; i < 20000; i += 2) idx.clear("fan/" + std::to_string(i) + "/v", old);
    hits = match_all(idx, "fan/#");
    CHECK(hits.size() == 10000);
    for (const auto& [topic, h] : hits) CHECK(h % 2 == 1);
    CHECK(idx.size() == 10001);
}
