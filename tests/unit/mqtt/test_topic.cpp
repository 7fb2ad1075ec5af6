// UTF-8 validation, topic name / filter validation, matching, shared subscriptions.
#include <string>

#include "helpers.hpp"

namespace hato::mqtt::test {
namespace {

using namespace std::string_view_literals;

TEST_CASE("valid_utf8 edge cases") {
    struct Row { std::string_view s; bool ok; const char* why; };
    const Row rows[] = {
        {""sv, true, "empty"},
        {"plain ascii text, longer than eight bytes"sv, true, "ascii fast path"},
        {"\x7f"sv, true, "DEL is allowed (only SHOULD NOT)"},
        {"\x01"sv, true, "control chars are allowed (only SHOULD NOT)"},
        {"\xc2\x80"sv, true, "U+0080, smallest 2-byte"},
        {"\xdf\xbf"sv, true, "U+07FF"},
        {"\xe0\xa0\x80"sv, true, "U+0800, smallest 3-byte"},
        {"\xed\x9f\xbf"sv, true, "U+D7FF just below surrogates"},
        {"\xee\x80\x80"sv, true, "U+E000 just above surrogates"},
        {"\xef\xbf\xbf"sv, true, "U+FFFF (non-character, allowed)"},
        {"\xef\xbb\xbf"sv, true, "U+FEFF BOM is not skipped or stripped"},
        {"\xf0\x90\x80\x80"sv, true, "U+10000, smallest 4-byte"},
        {"\xf4\x8f\xbf\xbf"sv, true, "U+10FFFF, largest"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 and more ascii after"sv, true, "mixed"},
        {"\0"sv, false, "U+0000"},
        {"abcdefgh\0ijk"sv, false, "U+0000 inside the ASCII fast path"},
        {"abcdefghijklmno\0"sv, false, "U+0000 at the end"},
        {"\xc0\x80"sv, false, "overlong U+0000"},
        {"\xc1\xbf"sv, false, "overlong 2-byte"},
        {"\xe0\x9f\xbf"sv, false, "overlong 3-byte"},
        {"\xf0\x8f\xbf\xbf"sv, false, "overlong 4-byte"},
        {"\xed\xa0\x80"sv, false, "U+D800 high surrogate"},
        {"\xed\xbf\xbf"sv, false, "U+DFFF low surrogate"},
        {"\xed\xa0\xbd\xed\xb8\x80"sv, false, "CESU-8 surrogate pair"},
        {"\xf4\x90\x80\x80"sv, false, "U+110000 beyond Unicode"},
        {"\xf8\x88\x80\x80\x80"sv, false, "5-byte form"},
        {"\xff"sv, false, "0xFF"},
        {"\xfe"sv, false, "0xFE"},
        {"\x80"sv, false, "lone continuation byte"},
        {"a\xbf"sv, false, "continuation after ASCII"},
        {"\xc3"sv, false, "truncated 2-byte at end"},
        {"\xe2\x82"sv, false, "truncated 3-byte at end"},
        {"\xf0\x9f\x98"sv, false, "truncated 4-byte at end"},
        {"\xc3("sv, false, "2-byte with bad continuation"},
        {"\xe2\x28\xa1"sv, false, "3-byte with bad second byte"},
        {"\xf0\x9f\x98("sv, false, "4-byte with bad last byte"},
        {"abcdefg\xc3"sv, false, "truncated right after the fast path window"},
    };
    for (const Row& row : rows) {
        INFO(row.why);
        CHECK(valid_utf8(row.s) == row.ok);
    }
}

TEST_CASE("valid_topic_name") {
    CHECK(valid_topic_name("a"));
    CHECK(valid_topic_name("/"));
    CHECK(valid_topic_name("a//b/"));
    CHECK(valid_topic_name("$SYS/broker/uptime"));
    CHECK(valid_topic_name(" spaces are fine "));
    CHECK(valid_topic_name(std::string(65535, 'a')));
    CHECK_FALSE(valid_topic_name(""));
    CHECK_FALSE(valid_topic_name(std::string(65536, 'a')));
    CHECK_FALSE(valid_topic_name("a/+/b"));
    CHECK_FALSE(valid_topic_name("a/#"));
    CHECK_FALSE(valid_topic_name("a+"));
    CHECK_FALSE(valid_topic_name("a\0b"sv));
    CHECK_FALSE(valid_topic_name("\xed\xa0\x80"sv));
}

TEST_CASE("valid_topic_filter") {
    struct Row { std::string_view f; bool ok; };
    const Row rows[] = {
        {"#", true}, {"+", true}, {"a", true}, {"/", true}, {"a/b/c", true},
        {"a/+/c", true}, {"+/+", true}, {"a/#", true}, {"+/#", true}, {"/#", true},
        {"/+/", true}, {"$SYS/#", true}, {"$share/g/a/#", true}, {"//", true},
        {"", false}, {"a#", false}, {"#a", false}, {"a/#/b", false}, {"#/", false},
        {"a+", false}, {"+a", false}, {"a/b+/c", false}, {"a/+b", false}, {"++", false},
        {"##", false}, {"a/\xff", false}, {"a\0/b"sv, false},
    };
    for (const Row& row : rows) {
        INFO("filter '" << row.f << "'");
        CHECK(valid_topic_filter(row.f) == row.ok);
    }
    CHECK(valid_topic_filter(std::string(65535, 'a')));
    CHECK_FALSE(valid_topic_filter(std::string(65536, 'a')));
}

TEST_CASE("topic_matches") {
    struct Row { std::string_view filter, topic; bool match; };
    const Row rows[] = {
        {"a/b", "a/b", true},
        {"a/b", "a/c", false},
        {"a/b", "a/b/c", false},
        {"a/b/c", "a/b", false},
        {"a/b", "a/bc", false},
        {"a/bc", "a/b", false},
        {"#", "a", true},
        {"#", "a/b/c", true},
        {"#", "/", true},
        {"a/#", "a", true},  // '#' also matches the parent level
        {"a/#", "a/", true},
        {"a/#", "a/b/c", true},
        {"a/#", "ab", false},
        {"a/#", "b/a", false},
        {"a/b/#", "a", false},
        {"+", "a", true},
        {"+", "a/b", false},
        {"+", "/", false},
        {"+/+", "/", true},  // two empty levels
        {"/+", "/", true},
        {"+", "", true},
        {"a/+", "a/", true},  // '+' matches an empty level
        {"a/+", "a", false},
        {"a/+/c", "a/b/c", true},
        {"a/+/c", "a/b/d", false},
        {"a/+/c", "a//c", true},
        {"+/b/#", "a/b", true},
        {"+/b/#", "a/b/c/d", true},
        {"+/+/#", "a", false},
        {"a//b", "a//b", true},
        {"a//b", "a/b", false},
        {"/a", "a", false},
        {"a/", "a", false},
        {"A", "a", false},
        // The $-topic rule (4.7.2).
        {"#", "$SYS/x", false},
        {"+/x", "$SYS/x", false},
        {"+", "$SYS", false},
        {"$SYS/#", "$SYS/x", true},
        {"$SYS/#", "$SYS", true},
        {"$SYS/+", "$SYS/x", true},
        {"a/#", "a/$SYS", true},  // '$' only matters at the start of the topic
        {"a/+", "a/$x", true},
        {"$share/g/#", "x", false},  // shared filters are split first by the caller
    };
    for (const Row& row : rows) {
        INFO("filter '" << row.filter << "' topic '" << row.topic << "'");
        CHECK(topic_matches(row.filter, row.topic) == row.match);
    }
}

TEST_CASE("parse_shared") {
    std::string_view group, inner;
    bool ok = false;
    CHECK(parse_shared("$share/g1/a/b/#", group, inner, ok));
    CHECK(ok);
    CHECK(group == "g1");
    CHECK(inner == "a/b/#");
    CHECK(parse_shared("$share/g/#", group, inner, ok));
    CHECK(ok);
    CHECK(inner == "#");
    CHECK(parse_shared("$share/g//", group, inner, ok));  // inner "/" is a valid filter
    CHECK(ok);
    CHECK(inner == "/");

    // Not shared at all.
    for (std::string_view f : {"a/b"sv, "$SYS/#"sv, "$share"sv, "$sharex/g/a"sv, "share/g/a"sv,
                               "$SHARE/g/a"sv, ""sv}) {
        INFO(f);
        ok = true;
        CHECK_FALSE(parse_shared(f, group, inner, ok));
    }
    // Shared but malformed.
    for (std::string_view f : {"$share/"sv, "$share/g"sv, "$share/g/"sv, "$share//a"sv,
                               "$share/+/a"sv, "$share/g#/a"sv, "$share/#/a"sv,
                               "$share/g/a#"sv, "$share/g/a/#/b"sv, "$share/g+/a"sv,
                               "$share/\xff/a"sv}) {
        INFO(f);
        ok = true;
        CHECK(parse_shared(f, group, inner, ok));
        CHECK_FALSE(ok);
    }
}

TEST_CASE("filters overlap when some topic matches both") {
    CHECK(filters_overlap("plant/#", "plant/#"));
    CHECK(filters_overlap("site/plant/#", "site/#"));
    CHECK(filters_overlap("a/+/c", "a/b/+"));
    CHECK(filters_overlap("a/#", "a"));   // '#' matches its parent level too
    CHECK(filters_overlap("#", "x/y"));
    CHECK(filters_overlap("+/b", "a/+"));
    CHECK_FALSE(filters_overlap("plant/#", "cmd/#"));
    CHECK_FALSE(filters_overlap("a/+", "a/b/c"));
    CHECK_FALSE(filters_overlap("a/b", "a/b/c"));
    CHECK_FALSE(filters_overlap("a/+/c", "a/b/d"));
    CHECK_FALSE(filters_overlap("#", "$SYS/x"));   // no wildcard first level matches a '$' topic
    CHECK_FALSE(filters_overlap("+/x", "$SYS/x"));
    CHECK(filters_overlap("$SYS/#", "$SYS/+/x"));
}

}  // namespace
}  // namespace hato::mqtt::test
