// Reactor behaviour at its limits: receive buffers exhausted, out of file
// descriptors, a peer that never reads a flushed close.
#include <sys/resource.h>
#include <unistd.h>

#include "net_test_util.hpp"

using namespace nettest;

TEST_CASE("many connections pushing large payloads at once") {
    // Enough parallel data to drain io_uring's provided buffer ring (ENOBUFS
    // path) and to exercise epoll's per-pass read cap.
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        // A slow handler: while it sleeps the kernel keeps filling receive
        // buffers, so io_uring runs out of provided buffers.
        std::atomic<int> calls{0};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t> data) {
            hs.reactor->send(id, data);
            if (++calls % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        };
        hs.start();
        constexpr int kConns = 16;
        constexpr size_t kBytes = 2 * 1024 * 1024;
        std::vector<int> fds;
        std::vector<std::vector<uint8_t>> payloads;
        for (int i = 0; i < kConns; ++i) {
            fds.push_back(connect_to(hs.port));
            payloads.push_back(pattern(kBytes, uint32_t(100 + i)));
        }
        std::vector<std::thread> writers;
        for (int i = 0; i < kConns; ++i)
            writers.emplace_back([&, i] { CHECK(send_all(fds[i], payloads[i].data(), kBytes)); });
        std::vector<std::vector<uint8_t>> echoes(kConns);
        std::vector<std::thread> readers;
        for (int i = 0; i < kConns; ++i) readers.emplace_back([&, i] { echoes[i] = recv_exact(fds[i], kBytes); });
        for (auto& t : writers) t.join();
        for (auto& t : readers) t.join();
        for (int i = 0; i < kConns; ++i) CHECK(echoes[i] == payloads[i]);
        for (int fd : fds) ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == kConns; }));
    }
}

TEST_CASE("flushing close gives up after the timeout when the peer never reads") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        const auto blob = pattern(64 * 1024 * 1024, 5);
        std::atomic<uint64_t> closed_at{0};
        uint64_t start = hs.reactor->now_ms();
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) {
            hs.reactor->send(id, blob);
            hs.reactor->close(id, true);
        };
        hs.handler.close_hook = [&](ConnId) { closed_at = hs.reactor->now_ms(); };
        hs.start();
        int fd = connect_to(hs.port);
        REQUIRE(send_all(fd, "x"));
        REQUIRE(wait_until([&] { return closed_at.load() != 0; }, 6000));
        uint64_t took = closed_at - start;
        CHECK(took >= 1500);
        CHECK(took <= 4000);
        ::close(fd);
    }
}

namespace {
int lowest_free_fd() {
    int fd = dup(0);
    ::close(fd);
    return fd;
}
}  // namespace

// The descriptor table really full: io_uring's accept takes the limit when
// the request is prepared (a multishot accept armed before a lower limit
// keeps the old one), so the limit is set before the reactor starts and the
// descriptors under it are then taken.
TEST_CASE("EMFILE on accept backs off instead of spinning") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        // Client sockets exist before the table fills; connect() needs no new fd.
        std::vector<int> fds;
        for (int i = 0; i < 3; ++i) {
            fds.push_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            REQUIRE(fds.back() >= 0);
        }
        rlimit saved{};
        REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
        rlimit tight = saved;
        tight.rlim_cur = rlim_t(lowest_free_fd() + 64);   // room for the reactor's own
        REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
        {
            Harness hs(b);
            hs.start();
            std::vector<int> filler;
            for (int fd; (fd = dup(0)) >= 0;) filler.push_back(fd);
            REQUIRE(errno == EMFILE);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(hs.port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            for (int fd : fds) CHECK(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
            int passes_before = hs.handler.passes;
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
            int passes = hs.handler.passes - passes_before;
            CHECK(hs.handler.open_count() == 0);
            CHECK(passes < 100);  // a spinning loop makes thousands
            // The handler hears of it (the broker logs why clients wait),
            // once per pause rather than once per failed accept.
            CHECK(hs.handler.accept_pause_error == EMFILE);
            CHECK(hs.handler.accept_pauses >= 1);
            CHECK(hs.handler.accept_pauses <= 5);   // one per tick at most (100 ms)
            // With descriptors free again, the next tick resumes accepting.
            for (int fd : filler) ::close(fd);
            CHECK(wait_until([&] { return hs.handler.open_count() == 3; }));
            for (int fd : fds) {
                timeval tv{10, 0};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                REQUIRE(send_all(fd, "ok"));
                CHECK(recv_exact(fd, 2).size() == 2);
                ::close(fd);
            }
            CHECK(wait_until([&] { return hs.handler.closed_count() == 3; }));
        }
        REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    }
}
