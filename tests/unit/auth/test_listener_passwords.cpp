// PasswordAuthenticator with [[listener]] password_file: a listener's own
// file replaces [auth]'s there, and a verified pair is not carried over
// from one file to another by the cache.
#include <doctest/doctest.h>

#include <cstring>

#include "auth/authenticator.hpp"
#include "auth_test_util.hpp"
#include "mqtt/packet.hpp"

using namespace hato;
using auth::PasswordAuthenticator;
using namespace hato::auth::test;

TEST_CASE("a listener's own password file is used there, [auth]'s elsewhere") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false, false, false});
    a.set_password_file(file_with("alice", "global"));
    a.set_listener_password_files({nullptr, file_with("alice", "lan")});
    CHECK(a.check("alice", bytes("global"), "c", 0) == mqtt::rc::Success);
    CHECK(a.check("alice", bytes("global"), "c", 1) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("alice", bytes("lan"), "c", 1) == mqtt::rc::Success);
    CHECK(a.check("alice", bytes("lan"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("alice", bytes("global"), "c", 2) == mqtt::rc::Success);   // beyond the list: [auth]
}

TEST_CASE("a pair cached on one file is not accepted by another") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false, false, false});
    a.set_listener_password_files({file_with("bob", "pw"), file_with("bob", "other"), file_with("bob", "pw")});
    CHECK(a.check("bob", bytes("pw"), "c", 0) == mqtt::rc::Success);
    CHECK(a.cached() == 1);
    CHECK(a.check("bob", bytes("pw"), "c", 1) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("bob", bytes("pw"), "c", 2) == mqtt::rc::Success);   // checked again, its own file
    CHECK(a.cached() == 2);
    a.set_listener_password_files({file_with("bob", "changed")});   // a reload empties the cache
    CHECK(a.cached() == 0);
    CHECK(a.check("bob", bytes("pw"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
}

TEST_CASE("a listener with its own file checks user names even without [auth] password_file") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({true, true});
    a.set_listener_password_files({file_with("carol", "pw")});
    CHECK(a.check("carol", bytes("bad"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("carol", bytes("pw"), "c", 0) == mqtt::rc::Success);
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0) == mqtt::rc::Success);   // anonymous allowed there
    CHECK(a.check("carol", bytes("bad"), "c", 1) == mqtt::rc::Success);        // no file: a name is no credential
}
