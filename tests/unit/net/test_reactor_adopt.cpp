// Reactor::adopt: a socket connected elsewhere (the bridge's outbound
// connections) becomes an ordinary connection of either backend.
#include <doctest/doctest.h>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "net_test_util.hpp"

using namespace nettest;

TEST_CASE("an adopted socket echoes and reports its close") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        REQUIRE(efd >= 0);
        std::atomic<ConnId> adopted{0};
        // adopt() runs on the reactor thread, like the bridge's does.
        hs.reactor->watch_readable(efd, [&] {
            uint64_t v;
            if (read(efd, &v, sizeof v) == sizeof v && adopted == 0) adopted = hs.reactor->adopt(sv[0]);
        });
        hs.start();
        uint64_t one = 1;
        REQUIRE(write(efd, &one, sizeof one) == sizeof one);
        REQUIRE(wait_until([&] { return adopted.load() != 0; }));
        CHECK(hs.handler.open_count() == 0);   // no on_open for an adopted socket

        timeval tv{5, 0};
        setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        REQUIRE(send(sv[1], "ping", 4, 0) == 4);
        char buf[8] = {};
        size_t got = 0;
        while (got < 4) {
            ssize_t n = recv(sv[1], buf + got, sizeof buf - got, 0);
            REQUIRE(n > 0);
            got += size_t(n);
        }
        CHECK(std::memcmp(buf, "ping", 4) == 0);

        ::close(sv[1]);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
        hs.stop();
        {
            std::lock_guard lock(hs.handler.mu);
            CHECK(hs.handler.close_calls.count(adopted.load()) == 1);
        }
        ::close(efd);
    }
}
