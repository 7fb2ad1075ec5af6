// Fairness of a loop pass: one connection flooding input cannot make a pass
// handle more than kInputBudgetPerPass of it, so another connection's input
// is delivered within a pass or two of arriving, not after the whole flood.
// Counted in bytes and passes, not timed.
#include <sys/socket.h>
#include <unistd.h>

#include "net/uring_setup.hpp"
#include "net_test_util.hpp"

using namespace nettest;
using hato::net::kInputBudgetPerPass;

TEST_CASE("a flooding connection cannot starve another connection within a pass") {
    // io_uring hands over whole receive buffers: a pass may end one buffer past the budget.
    constexpr size_t kPerPass = kInputBudgetPerPass + hato::net::BufferRing::kSize;
    constexpr size_t kFlood = 8 * 1024 * 1024;
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        hs.start();
        const int flooder = connect_to(hs.port);
        REQUIRE(wait_until([&] { return hs.handler.open_count() == 1; }));
        const int other = connect_to(hs.port);
        REQUIRE(wait_until([&] { return hs.handler.open_count() == 2; }));
        ConnId flood_id;
        {
            std::lock_guard lock(hs.handler.mu);
            flood_id = hs.handler.opened[0];
        }
        // Written to by the reactor thread only, read after `done`.
        size_t flood_bytes = 0, pass_bytes = 0, max_pass_bytes = 0;
        int pass = -1;
        size_t flood_at_poke = 0, flood_at_other = 0;
        bool poked = false;
        std::atomic<bool> done{false};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t> data) {
            if (id != flood_id) {
                if (!done) flood_at_other = flood_bytes;
                done = true;
                return;
            }
            if (hs.handler.passes != pass) {
                pass = hs.handler.passes;
                pass_bytes = 0;
            }
            flood_bytes += data.size();
            pass_bytes += data.size();
            max_pass_bytes = std::max(max_pass_bytes, pass_bytes);
            // A slow handler: meanwhile the kernel fills every buffer it can
            // with the flood (io_uring: the provided buffer ring).
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            if (!poked && flood_bytes >= 4 * kInputBudgetPerPass) {
                // The other connection's input arrives while the flood is well under way.
                poked = true;
                flood_at_poke = flood_bytes;
                CHECK(send_all(other, "ping"));
            }
        };
        const auto blob = pattern(kFlood, 7);
        std::thread writer([&] { send_all(flooder, blob.data(), blob.size()); });   // ends at shutdown
        REQUIRE(wait_until([&] { return done.load(); }, 20000));
        ::shutdown(flooder, SHUT_RDWR);
        writer.join();
        hs.stop();
        MESSAGE(std::string(backend_name(b)) << ": flood bytes handled between the other's send and its delivery: "
                                << flood_at_other - flood_at_poke << ", most in one pass: " << max_pass_bytes);
        CHECK(max_pass_bytes <= kPerPass);
        // The rest of the poking pass, then at most one more pass of the flood.
        CHECK(flood_at_other - flood_at_poke <= 2 * kPerPass);
        CHECK(flood_at_other < kFlood / 2);
        ::close(flooder);
        ::close(other);
    }
}
