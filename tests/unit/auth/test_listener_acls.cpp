// AclAuthorizer with [[listener]] acl_file: a client is judged by the ACL of
// the listener its session connected through, else by [auth]'s.
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

TEST_CASE("a listener's own ACL judges its clients; others get [auth]'s") {
    AclAuthorizer a;
    a.set_acl(acl_of("topic readwrite lan/#\n"));
    a.set_listener_acls({nullptr, acl_of("topic readwrite plc/#\n")});
    broker::ClientInfo on0{std::nullopt, "c", nullptr, 0};
    broker::ClientInfo on1{std::nullopt, "c", nullptr, 1};
    broker::ClientInfo none{std::nullopt, "c", nullptr, -1};   // not connected since the start
    broker::ClientInfo beyond{std::nullopt, "c", nullptr, 5};
    for (const auto* who : {&on0, &none, &beyond}) {
        CHECK(a.can_publish(*who, "lan/x"));
        CHECK_FALSE(a.can_publish(*who, "plc/x"));
        CHECK(a.can_subscribe(*who, "lan/#"));
    }
    CHECK(a.can_publish(on1, "plc/x"));
    CHECK(a.can_receive(on1, "plc/x"));
    CHECK(a.can_subscribe(on1, "plc/#"));
    CHECK_FALSE(a.can_publish(on1, "lan/x"));
    CHECK_FALSE(a.can_receive(on1, "lan/x"));
    CHECK_FALSE(a.can_subscribe(on1, "lan/#"));
}

TEST_CASE("a listener's ACL applies even without [auth] acl_file, and a reload empties the memos") {
    AclAuthorizer a;
    a.set_listener_acls({acl_of("topic read a/#\n")});
    broker::AclCache cache;
    broker::ClientInfo on0{std::nullopt, "c", &cache, 0};
    broker::ClientInfo on1{std::nullopt, "c", nullptr, 1};
    CHECK(a.can_receive(on0, "a/1"));
    CHECK_FALSE(a.can_receive(on0, "b/1"));
    CHECK(a.can_receive(on1, "b/1"));   // no ACL there at all
    a.set_listener_acls({acl_of("topic read b/#\n")});
    CHECK_FALSE(a.can_receive(on0, "a/1"));
    CHECK(a.can_receive(on0, "b/1"));
}
