// AclAuthorizer: the broker hook over acl_file rules, with its per-session memo.
#include <doctest/doctest.h>

#include "auth/acl_authorizer.hpp"

using namespace hato;
using auth::AclAuthorizer;

namespace {

std::shared_ptr<const auth::Acl> acl_of(const char* text) {
    auto acl = std::make_shared<auth::Acl>();
    std::vector<std::string> errors;
    REQUIRE(acl->parse(text, "acl", errors));
    return acl;
}

}  // namespace

TEST_CASE("without an acl everything is allowed") {
    AclAuthorizer a;
    broker::ClientInfo who{std::nullopt, "c", nullptr};
    CHECK(a.can_publish(who, "any/topic"));
    CHECK(a.can_subscribe(who, "#"));
    CHECK(a.can_receive(who, "any/topic"));
}

TEST_CASE("rules by user, anonymous and pattern, with and without a memo") {
    AclAuthorizer a;
    a.set_acl(acl_of("topic read public/#\n"
                     "user alice\ntopic readwrite plant/#\ntopic deny plant/secret/#\n"
                     "pattern write devices/%c/status\npattern read users/%u/inbox/#\n"));
    for (bool memo : {false, true}) {
        broker::AclCache cache;
        broker::ClientInfo alice{"alice", "dev1", memo ? &cache : nullptr};
        broker::ClientInfo anon{std::nullopt, "dev2", nullptr};
        // Asked twice: the second answer comes from the memo when there is one.
        for (int round = 0; round < 2; ++round) {
            CHECK(a.can_publish(alice, "plant/line1"));
            CHECK(a.can_receive(alice, "plant/line1"));
            CHECK_FALSE(a.can_publish(alice, "plant/secret/key"));
            CHECK_FALSE(a.can_receive(alice, "plant/secret/key"));
            CHECK(a.can_publish(alice, "devices/dev1/status"));
            CHECK_FALSE(a.can_receive(alice, "devices/dev1/status"));  // write only
            CHECK_FALSE(a.can_publish(alice, "devices/dev2/status"));
            CHECK(a.can_receive(alice, "users/alice/inbox/1"));
            CHECK_FALSE(a.can_receive(alice, "users/bob/inbox/1"));
        }
        CHECK(a.can_receive(anon, "public/news"));
        CHECK_FALSE(a.can_publish(anon, "public/news"));
        CHECK(a.can_subscribe(alice, "plant/#"));
        CHECK_FALSE(a.can_subscribe(alice, "plant/secret/#"));
        CHECK(cache.topics.size() == (memo ? 6u : 0u));  // one entry per topic, both kinds
    }
}

TEST_CASE("a new acl empties the memo") {
    AclAuthorizer a;
    a.set_acl(acl_of("user alice\ntopic readwrite a/#\n"));
    broker::AclCache cache;
    broker::ClientInfo alice{"alice", "c", &cache};
    CHECK(a.can_publish(alice, "a/1"));
    a.set_acl(acl_of("user alice\ntopic readwrite b/#\n"));
    CHECK_FALSE(a.can_publish(alice, "a/1"));
    CHECK(a.can_publish(alice, "b/1"));
    a.set_acl(nullptr);
    CHECK(a.can_publish(alice, "a/1"));
}

TEST_CASE("the memo stays bounded") {
    AclAuthorizer a;
    a.set_acl(acl_of("user u\ntopic readwrite t/#\n"));
    broker::AclCache cache;
    broker::ClientInfo u{"u", "c", &cache};
    for (size_t i = 0; i < AclAuthorizer::kMaxCachedTopics + 10; ++i)
        CHECK(a.can_publish(u, "t/" + std::to_string(i)));
    CHECK(cache.topics.size() <= AclAuthorizer::kMaxCachedTopics);
}
