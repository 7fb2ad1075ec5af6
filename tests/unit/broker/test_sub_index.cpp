// SubIndex: MQTT 4.7 matching semantics, add/replace/remove, shared groups,
// pruning, and a 1,000,000-subscription index checked against a brute-force
// matcher.
#include "broker/sub_index.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using hato::broker::SubIndex;

namespace {

// Reference matcher, straight from the spec text: level by level.
bool ref_matches(std::string_view filter, std::string_view topic) {
    if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t f = 0, t = 0;
    for (;;) {
        size_t f_end = filter.find('/', f);
        if (f_end == std::string_view::npos) f_end = filter.size();
        std::string_view flvl = filter.substr(f, f_end - f);
        if (flvl == "#") return true;  // the rest, including nothing ("a/#" matches "a")
        if (t > topic.size()) return false;  // topic has fewer levels
        size_t t_end = topic.find('/', t);
        if (t_end == std::string_view::npos) t_end = topic.size();
        std::string_view tlvl = topic.substr(t, t_end - t);
        if (flvl != "+" && flvl != tlvl) return false;
        bool f_last = f_end == filter.size();
        bool t_last = t_end == topic.size();
        if (f_last) {
            return t_last;
        }
        f = f_end + 1;
        t = t_end + 1;  // past the end if topic is done: caught above
    }
}

struct Hit {
    std::string filter;
    uint32_t who;
    uint32_t group;
    uint8_t options;
    uint32_t sub_id;
    bool operator<(const Hit& o) const {
        return std::tie(filter, who, group) < std::tie(o.filter, o.who, o.group);
    }
    bool operator==(const Hit& o) const {
        return filter == o.filter && who == o.who && group == o.group && options == o.options &&
               sub_id == o.sub_id;
    }
};

struct Collect : SubIndex::Visitor {
    std::vector<Hit> hits;
    void visit(const SubIndex::Entry& e, std::string_view filter) override {
        hits.push_back({std::string(filter), e.who, e.group, e.options, e.sub_id});
    }
};

std::vector<Hit> match_all(const SubIndex& idx, std::string_view topic) {
    Collect c;
    idx.match(topic, c);
    std::sort(c.hits.begin(), c.hits.end());
    return c.hits;
}

std::vector<std::string> matched_filters(const SubIndex& idx, std::string_view topic) {
    std::vector<std::string> out;
    for (const Hit& h : match_all(idx, topic)) out.push_back(h.filter);
    return out;
}

SubIndex::Entry entry(uint32_t who, uint8_t options = 0, uint32_t sub_id = 0, uint32_t group = 0) {
    SubIndex::Entry e;
    e.who = who;
    e.options = options;
    e.sub_id = sub_id;
    e.group = group;
    return e;
}

struct Case {
    const char* filter;
    const char* topic;
    bool matches;
};

// MQTT 3.1.1 / 5.0 section 4.7 examples and edge cases.
const Case kCases[] = {
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/#", "sport", true},
    {"sport/#", "sports", false},
    {"sport/#", "sport/", true},
    {"#", "sport", true},
    {"#", "/", true},
    {"#", "a/b/c/d", true},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+", "", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/golf", false},
    {"#", "$SYS/x", false},
    {"#", "$SYS", false},
    {"+/x", "$SYS/x", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/+", "$SYS/x", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"x/+", "x/$y", true},
    {"x/#", "x/$y/z", true},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/#", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+", "a//b", false},
    {"+/+/+", "//", true},
    {"/", "/", true},
    {"/", "", false},
    {"", "", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"A/b", "a/b", false},
    {"caf\xc3\xa9/+", "caf\xc3\xa9/x", true},
};

}  // namespace

TEST_CASE("SubIndex: reference matcher agrees with the MQTT 4.7 table") {
    for (const Case& c : kCases) {
        CAPTURE(c.filter);
        CAPTURE(c.topic);
        CHECK(ref_matches(c.filter, c.topic) == c.matches);
    }
}

TEST_CASE("SubIndex: MQTT 4.7 matching table, one filter at a time") {
    for (const Case& c : kCases) {
        CAPTURE(c.filter);
        CAPTURE(c.topic);
        SubIndex idx;
        CHECK(idx.add(c.filter, entry(7)));
        auto hits = match_all(idx, c.topic);
        if (c.matches) {
            REQUIRE(hits.size() == 1);
            CHECK(hits[0].filter == c.filter);
            CHECK(hits[0].who == 7);
        } else {
            CHECK(hits.empty());
        }
    }
}

TEST_CASE("SubIndex: MQTT 4.7 matching table, all filters in one index") {
    SubIndex idx;
    std::vector<std::string> filters;
    for (const Case& c : kCases) {
        if (std::find(filters.begin(), filters.end(), c.filter) != filters.end()) continue;
        filters.push_back(c.filter);
        CHECK(idx.add(c.filter, entry(1)));
    }
    CHECK(idx.size() == filters.size());
    for (const Case& c : kCases) {
        CAPTURE(c.topic);
        std::vector<std::string> expected;
        for (const auto& f : filters)
            if (ref_matches(f, c.topic)) expected.push_back(f);
        std::sort(expected.begin(), expected.end());
        CHECK(matched_filters(idx, c.topic) == expected);
    }
}

TEST_CASE("SubIndex: add, replace and remove") {
    SubIndex idx;
    CHECK(idx.size() == 0);
    CHECK(idx.add("a/b", entry(1, 1, 10)));
    CHECK(idx.add("a/b", entry(2, 0, 0)));
    CHECK(idx.size() == 2);

    // Same (who, group): replaced, options and identifier updated.
    CHECK_FALSE(idx.add("a/b", entry(1, 2, 11)));
    CHECK(idx.size() == 2);
    auto hits = match_all(idx, "a/b");
    REQUIRE(hits.size() == 2);
    CHECK(hits[0] == Hit{"a/b", 1, 0, 2, 11});
    CHECK(hits[1] == Hit{"a/b", 2, 0, 0, 0});

    CHECK_FALSE(idx.remove("a/b", 3, 0));  // unknown subscriber
    CHECK_FALSE(idx.remove("a/c", 1, 0));  // unknown filter
    CHECK_FALSE(idx.remove("a", 1, 0));    // interior node, no entries
    CHECK_FALSE(idx.remove("a/b/c", 1, 0));
    CHECK(idx.remove("a/b", 1, 0));
    CHECK_FALSE(idx.remove("a/b", 1, 0));  // already gone
    CHECK(idx.size() == 1);
    hits = match_all(idx, "a/b");
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].who == 2);

    CHECK(idx.remove("a/b", 2, 0));
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
    CHECK(match_all(idx, "a/b").empty());
}

TEST_CASE("SubIndex: overlapping filters report once per filter") {
    SubIndex idx;
    idx.add("a/b/c", entry(1));
    idx.add("a/+/c", entry(1));
    idx.add("a/#", entry(1));
    idx.add("#", entry(1));
    idx.add("+/+/+", entry(2));
    idx.add("a/b/c/#", entry(3));  // matches the parent level a/b/c
    idx.add("a/b", entry(4));      // does not match a/b/c
    auto got = matched_filters(idx, "a/b/c");
    std::vector<std::string> want = {"#", "+/+/+", "a/#", "a/+/c", "a/b/c", "a/b/c/#"};
    CHECK(got == want);
}

TEST_CASE("SubIndex: shared subscription groups") {
    SubIndex idx;
    uint32_t g1 = idx.group_id("workers");
    uint32_t g2 = idx.group_id("others");
    CHECK(g1 != 0);
    CHECK(g2 != 0);
    CHECK(g1 != g2);
    CHECK(idx.group_id("workers") == g1);  // stable
    CHECK(idx.group_id("") != 0);

    // One subscriber may hold the same filter plain and in two groups.
    CHECK(idx.add("jobs/+", entry(1, 0, 0, 0)));
    CHECK(idx.add("jobs/+", entry(1, 1, 0, g1)));
    CHECK(idx.add("jobs/+", entry(1, 2, 0, g2)));
    CHECK(idx.add("jobs/+", entry(2, 1, 0, g1)));
    CHECK_FALSE(idx.add("jobs/+", entry(2, 0, 5, g1)));
    CHECK(idx.size() == 4);

    auto hits = match_all(idx, "jobs/x");
    REQUIRE(hits.size() == 4);
    size_t in_g1 = std::count_if(hits.begin(), hits.end(), [&](const Hit& h) { return h.group == g1; });
    CHECK(in_g1 == 2);

    CHECK_FALSE(idx.remove("jobs/+", 1, 12345));
    CHECK(idx.remove("jobs/+", 1, g1));
    hits = match_all(idx, "jobs/x");
    REQUIRE(hits.size() == 3);
    for (const Hit& h : hits) CHECK_FALSE((h.who == 1 && h.group == g1));
    CHECK(idx.remove("jobs/+", 1, 0));
    CHECK(idx.remove("jobs/+", 1, g2));
    CHECK(idx.remove("jobs/+", 2, g1));
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
}

TEST_CASE("SubIndex: removing prunes only empty branches") {
    SubIndex idx;
    idx.add("a/b/c/d", entry(1));
    CHECK(idx.node_count() == 4);
    idx.add("a/b", entry(2));
    idx.add("a/x", entry(3));
    CHECK(idx.node_count() == 5);
    CHECK(idx.remove("a/b/c/d", 1, 0));
    CHECK(idx.node_count() == 3);  // a, a/b (holds 2), a/x
    CHECK(matched_filters(idx, "a/b") == std::vector<std::string>{"a/b"});
    CHECK(idx.remove("a/b", 2, 0));
    CHECK(idx.node_count() == 2);
    CHECK(idx.remove("a/x", 3, 0));
    CHECK(idx.node_count() == 0);
    // The index is fully usable after becoming empty.
    idx.add("a/+", entry(4));
    CHECK(matched_filters(idx, "a/q") == std::vector<std::string>{"a/+"});
}

TEST_CASE("SubIndex: random filters agree with the reference matcher") {
    std::mt19937 rng(42);
    const char* levels[] = {"a", "b", "", "$c", "+", "#", "long-level-name-over-eight"};
    auto random_name = [&](bool filter) {
        std::string s;
        int depth = 1 + int(rng() % 4);
        for (int i = 0; i < depth; ++i) {
            if (i) s += '/';
            std::string lvl = levels[rng() % (filter ? 7 : 4)];
            if (lvl == "$c" && i > 0) lvl = "c";
            if (lvl == "#") {
                s += lvl;
                break;
            }
            s += lvl;
        }
        if (!filter && rng() % 5 == 0) s += "/long-level-name-over-eight";
        return s;
    };
    SubIndex idx;
    std::vector<std::pair<std::string, uint32_t>> subs;
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 300; ++i) {
            std::string f = random_name(true);
            uint32_t who = uint32_t(rng() % 5);
            bool fresh = std::find(subs.begin(), subs.end(), std::make_pair(f, who)) == subs.end();
            CHECK(idx.add(f, entry(who)) == fresh);
            if (fresh) subs.emplace_back(f, who);
        }
        CHECK(idx.size() == subs.size());
        for (int i = 0; i < 300; ++i) {
            std::string t = random_name(false);
            CAPTURE(t);
            std::vector<Hit> want;
            for (const auto& [f, who] : subs)
                if (ref_matches(f, t)) want.push_back({f, who, 0, 0, 0});
            std::sort(want.begin(), want.end());
            CHECK(match_all(idx, t) == want);
        }
        // Remove a random half.
        std::shuffle(subs.begin(), subs.end(), rng);
        while (subs.size() > 100) {
            CHECK(idx.remove(subs.back().first, subs.back().second, 0));
            subs.pop_back();
        }
    }
    for (const auto& [f, who] : subs) CHECK(idx.remove(f, who, 0));
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
}

namespace {

constexpr uint32_t kExactCount = 1'000'000;
constexpr uint32_t kWildWho = 2'000'000;  // wildcard subscribers start here

// Exact filter i: sensors/<i % 1000>/<i>/value, held by subscriber i.
std::string exact_filter(uint32_t i) {
    return "sensors/" + std::to_string(i % 1000) + "/" + std::to_string(i) + "/value";
}

std::vector<std::string> wildcard_filters() {
    std::vector<std::string> w;
    for (int k = 0; k < 1000; ++k) w.push_back("sensors/" + std::to_string(k) + "/#");
    for (int k = 0; k < 100; ++k) w.push_back("sensors/+/" + std::to_string(k * 1000 + 7) + "/value");
    for (int k = 0; k < 100; ++k) w.push_back("sensors/" + std::to_string(k * 3) + "/+/value");
    for (int k = 0; k < 50; ++k) w.push_back("+/" + std::to_string(k) + "/+/+");
    for (const char* f : {"#", "+/#", "+/+/+/value", "sensors/+", "sensors/+/+", "sensors/#",
                          "$SYS/#", "sensors/+/+/value/#"})
        w.push_back(f);
    return w;
}

}  // namespace

TEST_CASE("SubIndex: one million subscriptions match exactly and prune completely") {
    SubIndex idx;
    // Counted rather than asserted one by one: a million doctest assertions
    // would dominate the run time.
    uint32_t added = 0;
    for (uint32_t i = 0; i < kExactCount; ++i) added += idx.add(exact_filter(i), entry(i));
    REQUIRE(added == kExactCount);
    const std::vector<std::string> wild = wildcard_filters();
    for (uint32_t k = 0; k < wild.size(); ++k) REQUIRE(idx.add(wild[k], entry(kWildWho + k)));
    REQUIRE(idx.size() == kExactCount + wild.size());

    // Expected hits: the exact filter (decided arithmetically) plus every
    // wildcard filter the reference matcher accepts.
    auto check_topic = [&](const std::string& topic, long exact_who, uint32_t exact_limit) {
        CAPTURE(topic);
        std::vector<Hit> want;
        if (exact_who >= 0 && uint32_t(exact_who) < exact_limit)
            want.push_back({topic, uint32_t(exact_who), 0, 0, 0});
        for (uint32_t k = 0; k < wild.size(); ++k)
            if (ref_matches(wild[k], topic)) want.push_back({wild[k], kWildWho + k, 0, 0, 0});
        std::sort(want.begin(), want.end());
        CHECK(match_all(idx, topic) == want);
    };
    std::mt19937 rng(7);
    auto sample = [&](uint32_t exact_limit, uint32_t exact_step) {
        for (int n = 0; n < 2000; ++n) {
            uint32_t i = uint32_t(rng() % (kExactCount + kExactCount / 10));  // some beyond the set
            uint32_t a = (rng() % 4 == 0) ? uint32_t(rng() % 1001) : i % 1000;  // sometimes a wrong middle level
            std::string topic = "sensors/" + std::to_string(a) + "/" + std::to_string(i) + "/value";
            bool held = a == i % 1000 && i % exact_step == 0;
            check_topic(topic, held ? long(i) : -1, exact_limit);
        }
        for (const char* t : {"sensors", "sensors/5", "sensors/5/5", "sensors/5/5/value/x",
                              "$SYS/sensors/5/5/value", "other/1/2/value", "/", "sensors//5/value"})
            check_topic(t, -1, 0);
    };
    sample(kExactCount, 1);

    // Full brute force over every filter for a few topics.
    for (uint32_t i : {0u, 123'456u, 999'999u}) {
        std::string topic = exact_filter(i);
        std::vector<std::string> want;
        for (uint32_t j = 0; j < kExactCount; ++j) {
            // Only filter j can equal the topic's second and third level.
            if (j % 1000 == i % 1000 && ref_matches(exact_filter(j), topic)) want.push_back(exact_filter(j));
        }
        for (const auto& w : wild)
            if (ref_matches(w, topic)) want.push_back(w);
        std::sort(want.begin(), want.end());
        CHECK(matched_filters(idx, topic) == want);
    }

    // Remove the odd exact subscriptions, check again, then remove the rest.
    uint32_t removed = 0;
    for (uint32_t i = 1; i < kExactCount; i += 2) removed += idx.remove(exact_filter(i), i, 0);
    CHECK(removed == kExactCount / 2);
    CHECK(idx.size() == kExactCount / 2 + wild.size());
    sample(kExactCount, 2);
    for (uint32_t i = 0; i < kExactCount; i += 2) removed += idx.remove(exact_filter(i), i, 0);
    CHECK(removed == kExactCount);
    for (uint32_t k = 0; k < wild.size(); ++k) REQUIRE(idx.remove(wild[k], kWildWho + k, 0));
    CHECK(idx.size() == 0);
    CHECK(idx.node_count() == 0);
    CHECK(match_all(idx, "sensors/1/1/value").empty());
}
