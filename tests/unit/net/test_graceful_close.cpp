// Graceful close (the last reply survives unread input: write side shut
// down, input discarded until the peer's EOF, bounded in time and count)
// and paused reading (set_reading), on each backend.
#include <fcntl.h>
#include <poll.h>

#include "net_test_util.hpp"

using namespace nettest;

namespace {

// Sends `n` bytes in the background (the reactor discards them).
std::thread flood(int fd, size_t n) {
    return std::thread([fd, n] {
        const auto blob = pattern(n, 9);
        send_all(fd, blob.data(), blob.size());
    });
}

}  // namespace

TEST_CASE("a flushed close delivers the last reply although the peer's data was unread") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        std::atomic<bool> replied{false};
        std::atomic<uint64_t> live_after_close{99};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) {
            if (replied.exchange(true)) return;
            const std::string bye = "BYE";
            hs.reactor->send(id, {reinterpret_cast<const uint8_t*>(bye.data()), bye.size()});
            hs.reactor->close(id, true);
        };
        hs.handler.close_hook = [&](ConnId) { live_after_close = hs.reactor->connection_count(); };
        hs.start();
        int fd = connect_to(hs.port);
        // The peer keeps sending while the server closes: without lingering the
        // unread bytes would turn the close into an RST that can destroy "BYE".
        std::thread writer = flood(fd, 8 * 1024 * 1024);
        bool clean = false;
        auto got = recv_until_eof(fd, clean);
        CHECK(std::string(got.begin(), got.end()) == "BYE");
        CHECK(clean);   // our FIN (shutdown of the write side), not a reset
        writer.join();  // all of it was read and discarded
        REQUIRE(wait_until([&] { return hs.handler.closed_count() == 1; }));
        CHECK(hs.handler.close_error.begin()->second == 0);
        CHECK(live_after_close.load() == 1);   // on_close came while the socket lingered
        ::close(fd);
        CHECK(wait_until([&] { return hs.reactor->connection_count() == 0; }, 3000));
        CHECK(hs.handler.close_calls.begin()->second == 1);
    }
}

TEST_CASE("a lingering connection is closed after the linger time when the peer never closes") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        std::atomic<uint64_t> count{99};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) { hs.reactor->close(id, true); };
        hs.handler.tick_hook = [&] { count = hs.reactor->connection_count(); };
        hs.start();
        int fd = connect_to(hs.port);
        REQUIRE(send_all(fd, "x"));
        REQUIRE(wait_until([&] { return hs.handler.closed_count() == 1; }));
        const auto start = std::chrono::steady_clock::now();
        CHECK(wait_until([&] { return count.load() == 0; }, 5000));
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start).count();
        CHECK(took >= 1000);
        CHECK(took <= 4000);
        ::close(fd);
    }
}

TEST_CASE("lingering connections are bounded by set_max_lingering") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        hs.reactor->set_max_lingering(2);
        std::atomic<uint64_t> count{99};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) { hs.reactor->close(id, true); };
        hs.handler.tick_hook = [&] { count = hs.reactor->connection_count(); };
        hs.start();
        std::vector<int> fds;
        for (int i = 0; i < 5; ++i) {
            fds.push_back(connect_to(hs.port));
            REQUIRE(send_all(fds.back(), "x"));
            REQUIRE(wait_until([&] { return hs.handler.closed_count() == size_t(i + 1); }));
        }
        // None of the peers closed: at most the two newest still linger.
        count = 99;
        CHECK(wait_until([&] { return count.load() <= 2; }, 1000));
        for (int fd : fds) ::close(fd);
    }
}

TEST_CASE("set_reading(false) stops delivering input until set_reading(true)") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        std::atomic<size_t> received{0};
        std::atomic<bool> paused{false};
        std::atomic<bool> resume{false};
        std::atomic<ConnId> conn{0};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t> data) {
            received += data.size();
            if (!paused.exchange(true)) {
                conn = id;
                hs.reactor->set_reading(id, false);
            }
        };
        hs.handler.tick_hook = [&] {
            if (resume.exchange(false)) hs.reactor->set_reading(conn, true);
        };
        hs.start();
        int fd = connect_to(hs.port);
        REQUIRE(send_all(fd, "a"));
        REQUIRE(wait_until([&] { return paused.load(); }));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        REQUIRE(send_all(fd, "bcd"));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        CHECK(received.load() == 1);
        resume = true;
        CHECK(wait_until([&] { return received.load() == 4; }));
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
    }
}
