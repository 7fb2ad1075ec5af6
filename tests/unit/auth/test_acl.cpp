#include <doctest/doctest.h>

#include "auth/acl.hpp"

using namespace hato::auth;

namespace {
const char* kAcl =
    "# anonymous clients\n"
    "topic read public/#\n"
    "\n"
    "user alice\n"
    "topic readwrite plant/#\n"
    "topic deny plant/secret/#\n"
    "topic write cmd/+/set\n"
    "\n"
    "user bob\n"
    "topic sensors/#\n"
    "\n"
    "pattern write devices/%c/status\n"
    "pattern read users/%u/inbox/#\n";

Acl load() {
    Acl acl;
    std::vector<std::string> errors;
    REQUIRE(acl.parse(kAcl, "acl", errors));
    return acl;
}
// With `rules` as the anonymous clients' ACL: may they subscribe to `filter`?
bool subscribe_allowed_by(const char* rules, std::string_view filter) {
    Acl acl;
    std::vector<std::string> errors;
    REQUIRE(acl.parse(rules, "acl", errors));
    return acl.subscribe_allowed(std::nullopt, "c", filter);
}
}  // namespace

TEST_CASE("acl: anonymous rules come before any user line") {
    Acl acl = load();
    CHECK(acl.allowed(std::nullopt, "c1", "public/x", kRead));
    CHECK_FALSE(acl.allowed(std::nullopt, "c1", "public/x", kWrite));
    CHECK_FALSE(acl.allowed(std::nullopt, "c1", "plant/a", kRead));
    CHECK_FALSE(acl.allowed("alice", "c1", "public/x", kRead));  // user rules replace anonymous ones
}

TEST_CASE("acl: user rules, deny wins, readwrite default") {
    Acl acl = load();
    CHECK(acl.allowed("alice", "c", "plant/line1/temp", kRead));
    CHECK(acl.allowed("alice", "c", "plant/line1/temp", kWrite));
    CHECK_FALSE(acl.allowed("alice", "c", "plant/secret/key", kRead));
    CHECK_FALSE(acl.allowed("alice", "c", "plant/secret", kWrite));  // # matches the parent level
    CHECK(acl.allowed("alice", "c", "cmd/valve/set", kWrite));
    CHECK_FALSE(acl.allowed("alice", "c", "cmd/valve/set", kRead));
    CHECK(acl.allowed("bob", "c", "sensors/a/b", kRead));
    CHECK(acl.allowed("bob", "c", "sensors/a/b", kWrite));
    CHECK_FALSE(acl.allowed("carol", "c", "sensors/a", kRead));
}

TEST_CASE("acl: patterns substitute %c and %u for every client") {
    Acl acl = load();
    CHECK(acl.allowed("bob", "dev7", "devices/dev7/status", kWrite));
    CHECK_FALSE(acl.allowed("bob", "dev7", "devices/dev8/status", kWrite));
    CHECK(acl.allowed(std::nullopt, "dev7", "devices/dev7/status", kWrite));
    CHECK(acl.allowed("alice", "x", "users/alice/inbox/1", kRead));
    CHECK_FALSE(acl.allowed("alice", "x", "users/bob/inbox/1", kRead));
    CHECK_FALSE(acl.allowed(std::nullopt, "x", "users//inbox/1", kRead));  // %u needs a username
    CHECK_FALSE(acl.allowed("bob", "+", "devices/+/status", kWrite));     // wildcard ids never widen a rule
}

TEST_CASE("acl: subscribe checks overlap; deny covering the filter refuses it") {
    Acl acl = load();
    CHECK(acl.subscribe_allowed("alice", "c", "#"));            // receives only what it may read
    CHECK(acl.subscribe_allowed("alice", "c", "plant/+/temp"));
    CHECK_FALSE(acl.subscribe_allowed("alice", "c", "plant/secret/#"));
    CHECK_FALSE(acl.subscribe_allowed("alice", "c", "cmd/+/set"));  // write only
    CHECK_FALSE(acl.subscribe_allowed(std::nullopt, "c", "plant/#"));
    CHECK(acl.subscribe_allowed(std::nullopt, "c", "public/+"));
    // A wildcard first level grants no '$' topic (4.7.2), so nothing it
    // could deliver: refused, as Mosquitto does.
    CHECK_FALSE(subscribe_allowed_by("topic read #\n", "$SYS/#"));
    CHECK(subscribe_allowed_by("topic read #\ntopic read $SYS/#\n", "$SYS/broker/+"));
}

TEST_CASE("filter relations") {
    CHECK(filter_covers("a/#", "a/b/+"));
    CHECK(filter_covers("+/+", "a/b"));
    CHECK_FALSE(filter_covers("a/+", "a/#"));
    CHECK_FALSE(filter_covers("a/b", "a/+"));
}

TEST_CASE("acl: syntax errors name file and line, old rules kept") {
    Acl acl = load();
    std::vector<std::string> errors;
    CHECK_FALSE(acl.parse("topic read a\nbogus line\nuser\n", "acl2", errors));
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].rfind("acl2:2: ", 0) == 0);
    CHECK(errors[1].rfind("acl2:3: ", 0) == 0);
    CHECK(acl.allowed("alice", "c", "plant/x", kRead));
    // A malformed filter is refused, not read as a wider grant.
    errors.clear();
    CHECK_FALSE(acl.parse("topic read plant/#/status\nuser bob\ntopic readwrite #/x\npattern write a/b+/%c\n"
                          "pattern read sensors/%u/#\n",
                          "acl3", errors));
    REQUIRE(errors.size() == 3);
    CHECK(errors[0] == "acl3:1: 'plant/#/status' is not a valid topic filter (+ and # stand alone in a level, # only last)");
    CHECK(errors[1].rfind("acl3:3: ", 0) == 0);
    CHECK(errors[2].rfind("acl3:4: ", 0) == 0);
    // A mistyped access word is an error (as in Mosquitto), not part of a
    // topic granted readwrite: the deny it was meant to be would be lost.
    errors.clear();
    CHECK_FALSE(acl.parse("topic readwrite #\ntopic denny secret/#\npattern rad a/%c\ntopic plant/#\n", "acl4", errors));
    REQUIRE(errors.size() == 2);
    CHECK(errors[0] == "acl4:2: unknown access 'denny' (expected read, write, readwrite or deny before the topic)");
    CHECK(errors[1].rfind("acl4:3: unknown access 'rad'", 0) == 0);
}
