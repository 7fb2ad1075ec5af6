// What the auth tests share: password files made in memory, CONNECT
// requests, and waiting on the hash pool's eventfd.
#pragma once

#include <doctest/doctest.h>

#include <poll.h>

#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "auth/authenticator.hpp"
#include "mqtt/packet.hpp"

namespace hato::auth::test {

inline bool wait_readable(int fd, int timeout_ms = 5000) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

inline std::span<const uint8_t> bytes(const char* s) { return {reinterpret_cast<const uint8_t*>(s), std::strlen(s)}; }

// A password file with one user (a cheap hash: 100 iterations).
inline std::shared_ptr<const PasswordFile> file_with(const char* user, const char* password) {
    auto pf = std::make_shared<PasswordFile>();
    std::vector<std::string> errors;
    std::string line = std::string(user) + ":" + hash_password(password, 100) + "\n";
    REQUIRE(pf->parse(line, "mem", errors));
    return pf;
}

inline broker::AuthRequest request(broker::ConnId conn, uint64_t id, const char* user, const char* password) {
    broker::AuthRequest r;
    r.conn = conn;
    r.id = id;
    r.username = user;
    r.password = bytes(password);
    r.client_id = "c";
    return r;
}

}  // namespace hato::auth::test
