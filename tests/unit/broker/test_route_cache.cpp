// RouteCache: which lookups reuse kept matches and which must match again.
#include <doctest/doctest.h>

#include <string>

#include "broker/route_cache.hpp"

using namespace hato::broker;

namespace {
MatchCollector& fill_with(RouteCache& c, std::string_view topic, Slot publisher, uint64_t gen, Slot who,
                          bool no_local = false) {
    bool fill = false;
    MatchCollector& m = c.lookup(topic, publisher, gen, fill);
    REQUIRE(fill);
    CHECK(m.direct.empty());
    CHECK(m.publisher == publisher);
    m.direct.push_back({who, 1, false, {}});
    m.saw_no_local = no_local;
    c.filled();
    return m;
}
}  // namespace

TEST_CASE("a kept topic is reused, by any publisher, until the generation changes") {
    RouteCache c;
    fill_with(c, "a", 1, 7, 10);
    fill_with(c, "b", 1, 7, 11);
    bool fill = true;
    MatchCollector& a = c.lookup("a", 2, 7, fill);
    CHECK_FALSE(fill);
    REQUIRE(a.direct.size() == 1);
    CHECK(a.direct[0].who == 10);
    CHECK(c.last_topic() == "a");
    CHECK(c.size() == 2);
    c.lookup("a", 1, 8, fill);   // the subscriptions changed: everything goes
    CHECK(fill);
    CHECK(c.size() == 1);
    c.lookup("b", 1, 8, fill);
    CHECK(fill);
}

TEST_CASE("matches that saw No Local are kept for their publisher only") {
    RouteCache c;
    fill_with(c, "n", 1, 1, 5, /*no_local=*/true);
    bool fill = true;
    c.lookup("n", 1, 1, fill);
    CHECK_FALSE(fill);
    MatchCollector& other = c.lookup("n", 2, 1, fill);
    CHECK(fill);   // matched again, for publisher 2
    CHECK(other.direct.empty());
    CHECK(other.publisher == 2);
}

TEST_CASE("past kMaxTopics a new topic is not kept, and the kept ones stay") {
    RouteCache c;
    for (size_t i = 0; i < RouteCache::kMaxTopics; ++i) fill_with(c, "t/" + std::to_string(i), 1, 1, Slot(i));
    CHECK(c.size() == RouteCache::kMaxTopics);
    MatchCollector& over = fill_with(c, "over", 1, 1, 99);
    bool fill = true;
    MatchCollector& again = c.lookup("over", 1, 1, fill);   // the last topic is still at hand
    CHECK_FALSE(fill);
    CHECK(&again == &over);
    c.lookup("another", 1, 1, fill);
    CHECK(fill);
    CHECK(c.size() == RouteCache::kMaxTopics);
    MatchCollector& first = c.lookup("t/0", 1, 1, fill);
    CHECK_FALSE(fill);
    CHECK(first.direct[0].who == 0);
}

TEST_CASE("a publisher's memo finds its entry, and is not trusted past a change") {
    RouteCache c;
    RouteMemo memo;
    bool fill = false;
    MatchCollector& a = c.lookup("a", 1, 3, fill, &memo);
    REQUIRE(fill);
    a.direct.push_back({7, 1, false, {}});
    c.filled();
    CHECK(memo.entry != nullptr);
    fill_with(c, "b", 2, 3, 8);   // another publisher, another topic: last_topic moves on
    MatchCollector& again = c.lookup("a", 1, 3, fill, &memo);
    CHECK_FALSE(fill);
    CHECK(&again == &a);
    MatchCollector& b = c.lookup("b", 1, 3, fill, &memo);   // the memo names "a": the table answers
    CHECK_FALSE(fill);
    REQUIRE(b.direct.size() == 1);
    CHECK(b.direct[0].who == 8);
    c.lookup("c", 2, 3, fill);
    MatchCollector& fresh = c.lookup("b", 1, 4, fill, &memo);   // a new generation: matched again
    CHECK(fill);
    CHECK(fresh.direct.empty());
    CHECK(memo.generation == 4);
}

namespace {
// Fills the collector lookup() hands out with `n` matches.
void fill_matches(RouteCache& c, std::string_view topic, size_t n) {
    bool fill = false;
    MatchCollector& m = c.lookup(topic, 1, 1, fill);
    REQUIRE(fill);
    for (size_t i = 0; i < n; ++i) m.direct.push_back({Slot(i), 0, false, {}});
    c.filled();
}
}  // namespace

TEST_CASE("a topic with more matches than kMaxMatchesPerTopic is matched every time") {
    RouteCache c;
    fill_matches(c, "wide", RouteCache::kMaxMatchesPerTopic + 1);
    CHECK(c.kept_matches() == 0);
    fill_matches(c, "narrow", 3);
    CHECK(c.kept_matches() == 3);
    fill_matches(c, "wide", RouteCache::kMaxMatchesPerTopic + 1);   // not kept: filled again
    bool fill = false;
    MatchCollector& again = c.lookup("wide", 1, 1, fill);   // the last topic, just filled: at hand
    CHECK_FALSE(fill);
    CHECK(again.direct.size() == RouteCache::kMaxMatchesPerTopic + 1);
    c.lookup("narrow", 1, 1, fill);
    CHECK_FALSE(fill);
}

TEST_CASE("kept matches stop at kMaxMatches over all topics") {
    RouteCache c;
    const size_t per = RouteCache::kMaxMatchesPerTopic;
    const size_t topics = RouteCache::kMaxMatches / per;
    for (size_t i = 0; i < topics; ++i) fill_matches(c, "t/" + std::to_string(i), per);
    CHECK(c.kept_matches() == RouteCache::kMaxMatches);
    fill_matches(c, "one more", 1);   // past the budget: not kept
    CHECK(c.kept_matches() == RouteCache::kMaxMatches);
    bool fill = false;
    c.lookup("t/0", 1, 1, fill);
    CHECK_FALSE(fill);
    c.lookup("one more", 1, 1, fill);
    CHECK(fill);
    c.lookup("x", 1, 2, fill);   // a new generation: everything goes, the budget too
    CHECK(c.kept_matches() == 0);
}
