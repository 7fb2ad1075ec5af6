#include <doctest/doctest.h>

#include "auth/password_file.hpp"

using namespace hato::auth;

namespace {
// Written by mosquitto_passwd 2.0.11 (-b pw alice secret / bob "p w").
constexpr const char* kMosquittoFile =
    "alice:$7$101$R7VXCmDKOCc2pC7n$zPppsIt9F9c/fwnsdi7F3MUX7V67SBwMDUDjHisgTK2CwhVri6mAw6v+jso8mc5POboFRC7Da0TfZzE6YMXTCw==\n"
    "bob:$7$101$1N2v+CKt15q7QOYf$thmNMEzTdqro5LCyFLCHQHE+auYUrbIPFHE8cGTqn7PbFt8cC/fIzAEcGjpJVXz8ndxet3FQgB/fcugCzs9ILw==\n";
}  // namespace

TEST_CASE("password file written by mosquitto_passwd is accepted") {
    PasswordFile pf;
    std::vector<std::string> errors;
    REQUIRE(pf.parse(kMosquittoFile, "pw", errors));
    CHECK(pf.size() == 2);
    CHECK(pf.verify("alice", "secret"));
    CHECK(pf.verify("bob", "p w"));
    CHECK_FALSE(pf.verify("alice", "Secret"));
    CHECK_FALSE(pf.verify("alice", ""));
    CHECK_FALSE(pf.verify("carol", "secret"));
}

// A wrong password for a real user must take as long as any password for a
// name that does not exist: the dummy an unknown name is checked against
// costs what most of the file's entries cost (a mosquitto_passwd file's 101
// rounds were 1 000 times cheaper than the fixed 101 000 of the dummy).
TEST_CASE("an unknown user is checked at the cost most of the file's users have") {
    PasswordFile pf;
    std::vector<std::string> errors;
    REQUIRE(pf.parse(kMosquittoFile, "pw", errors));
    CHECK(pf.unknown_user_entry().kind == PasswordEntry::Kind::Pbkdf2Sha512);
    CHECK(pf.unknown_user_entry().iterations == 101);
    REQUIRE(pf.parse("a:" + hash_password("x", 2000) + "\nb:" + hash_password("y", 2000) + "\nc:" +
                         hash_password("z", 3000) + "\n",
                     "mem", errors));
    CHECK(pf.unknown_user_entry().iterations == 2000);
    REQUIRE(pf.parse("old:$6$c2FsdHNhbHQ=$mAmPaElro8MJT/+2ohnmww5w7khtVXJFkXDAy8XDcxOPwcPLePW0CbNMVMRYxOE881ntDBHHfBHceDyzpq562g==\n",
                     "pw", errors));
    CHECK(pf.unknown_user_entry().kind == PasswordEntry::Kind::Sha512);
    CHECK_FALSE(pf.verify("nobody", "pw"));
}

TEST_CASE("our hashes are $7$ and verify") {
    std::string h = hash_password("hunter2", 1000);
    CHECK(h.rfind("$7$1000$", 0) == 0);
    PasswordFile pf;
    std::vector<std::string> errors;
    REQUIRE(pf.parse("u:" + h + "\n# comment\n\n", "mem", errors));
    CHECK(pf.verify("u", "hunter2"));
    CHECK_FALSE(pf.verify("u", "hunter3"));
    // Two hashes of one password differ (fresh salt).
    CHECK(hash_password("x", 10) != hash_password("x", 10));
}

TEST_CASE("$6$ SHA512 entries are read") {
    // sha512("pw" + "saltsalt"), computed with Python's hashlib.
    PasswordFile pf;
    std::vector<std::string> errors;
    REQUIRE(pf.parse("old:$6$c2FsdHNhbHQ=$mAmPaElro8MJT/+2ohnmww5w7khtVXJFkXDAy8XDcxOPwcPLePW0CbNMVMRYxOE881ntDBHHfBHceDyzpq562g==\n", "pw", errors));
    CHECK(pf.verify("old", "pw"));
    CHECK_FALSE(pf.verify("old", "pW"));
}

TEST_CASE("bad password files report file:line and load nothing") {
    PasswordFile pf;
    std::vector<std::string> errors;
    CHECK_FALSE(pf.parse("good:$7$10$AAAA$AAAA\nplain:password\nnocolon\n", "pw", errors));
    REQUIRE(errors.size() == 3);
    CHECK(errors[0].rfind("pw:1: ", 0) == 0);  // hash too short: not 64 bytes
    CHECK(errors[1].rfind("pw:2: ", 0) == 0);
    CHECK(errors[2].rfind("pw:3: ", 0) == 0);
    CHECK(pf.size() == 0);
}

TEST_CASE("base64 round trip") {
    for (size_t n = 1; n < 20; ++n) {
        std::vector<uint8_t> in(n);
        for (size_t i = 0; i < n; ++i) in[i] = uint8_t(i * 37 + n);
        std::vector<uint8_t> out;
        REQUIRE(base64_decode(base64_encode(in.data(), n), out));
        CHECK(out == in);
    }
    std::vector<uint8_t> out;
    CHECK_FALSE(base64_decode("ab!d", out));
}
