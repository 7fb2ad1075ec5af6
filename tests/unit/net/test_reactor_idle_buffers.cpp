// Quiet ticks discard the io_uring receive buffers' pages
// (UringReactor::discard_idle_buffers): input that arrives afterwards is
// received intact, on every backend.
#include "net_test_util.hpp"

using namespace nettest;

TEST_CASE("input after quiet ticks arrives intact") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        hs.reactor->set_tick_interval(5);
        hs.start();
        constexpr int kConns = 16;
        std::vector<int> fds;
        for (int i = 0; i < kConns; ++i) fds.push_back(connect_to(hs.port));
        for (int round = 0; round < 3; ++round) {
            for (int i = 0; i < kConns; ++i) {
                // Several buffers' worth per connection, a pattern per round and connection.
                std::string msg(3 * 4096 + 17, char('a' + (round * kConns + i) % 26));
                REQUIRE(send_all(fds[i], msg));
                auto got = recv_exact(fds[i], msg.size());
                CHECK(std::string(got.begin(), got.end()) == msg);
            }
            // Quiet ticks: nothing is received for several tick intervals.
            const int ticks = hs.handler.ticks.load();
            CHECK(wait_until([&] { return hs.handler.ticks.load() >= ticks + 4; }));
        }
        for (int fd : fds) ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == kConns; }));
    }
}
