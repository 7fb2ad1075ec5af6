// PasswordAuthenticator: the CONNECT verdicts the broker turns into CONNACKs.
#include <doctest/doctest.h>

#include <cstring>

#include "auth/authenticator.hpp"
#include "auth_test_util.hpp"
#include "mqtt/packet.hpp"

using namespace hato;
using auth::PasswordAuthenticator;
using namespace hato::auth::test;

TEST_CASE("anonymous clients: allowed or refused per listener") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({true, false});
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0) == mqtt::rc::Success);
    CHECK(a.check(std::nullopt, std::nullopt, "c", 1) == mqtt::rc::NotAuthorized);
    CHECK(a.check(std::nullopt, std::nullopt, "c", 7) == mqtt::rc::NotAuthorized);  // unknown listener
}

TEST_CASE("password file: right password accepted, anything else is the same refusal") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    CHECK(a.check("alice", bytes("secret"), "c", 0) == mqtt::rc::Success);
    // Wrong password and unknown user give the same code: no hint which part was wrong.
    CHECK(a.check("alice", bytes("Secret"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("mallory", bytes("secret"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("alice", std::nullopt, "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0) == mqtt::rc::NotAuthorized);
}

TEST_CASE("a reloaded password file replaces the old one") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "old"));
    CHECK(a.check("alice", bytes("old"), "c", 0) == mqtt::rc::Success);
    a.set_password_file(file_with("alice", "new"));
    CHECK(a.check("alice", bytes("old"), "c", 0) == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.check("alice", bytes("new"), "c", 0) == mqtt::rc::Success);
}

TEST_CASE("without a password file a user name alone is no credential") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({true, false});
    CHECK(a.check("anyone", bytes("x"), "c", 0) == mqtt::rc::Success);
    CHECK(a.check("anyone", bytes("x"), "c", 1) == mqtt::rc::NotAuthorized);
}

TEST_CASE("a verified certificate identity needs no password") {
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0, "sensor-1") == mqtt::rc::Success);
    CHECK(a.check("whatever", bytes("wrong"), "c", 0, "sensor-1") == mqtt::rc::Success);
    // a certificate without a CN
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0, "") == mqtt::rc::NotAuthorized);
    CHECK(a.check(std::nullopt, std::nullopt, "c", 0) == mqtt::rc::NotAuthorized);
}
