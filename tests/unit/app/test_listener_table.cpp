// The listener table (app/listener_table.hpp): stable slots over the
// reactor's listener numbering, on a fake reactor.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "app/listener_table.hpp"

using namespace hato;
using hato::app::ListenerTable;

namespace {

class ListeningReactor final : public net::Reactor {
public:
    const char* name() const override { return "fake"; }
    bool listen(const std::string&, uint16_t port, std::string& err) override {
        if (port == 1) {
            err = "in use";
            return false;
        }
        ports.push_back(port);
        return true;
    }
    uint16_t bound_port(int i) const override { return ports[size_t(i)]; }
    void send(net::ConnId, std::span<const uint8_t>) override {}
    void send_low_priority(net::ConnId, std::span<const uint8_t>) override {}
    size_t queued_bytes(net::ConnId) const override { return 0; }
    void close(net::ConnId, bool) override {}
    void set_max_lingering(size_t) override {}
    void set_reading(net::ConnId, bool) override {}
    void watch_readable(int, std::function<void()>) override {}
    void fsync_async(int, std::function<void(int)> done) override { done(0); }
    void set_tick_interval(uint32_t) override {}
    uint64_t now_ms() const override { return 0; }
    void close_listeners() override {}
    void close_listener(int i) override { closed.insert(i); }
    void run(net::Handler&) override {}
    void stop() override {}
    uint64_t connection_count() const override { return 0; }

    std::vector<uint16_t> ports;
    std::set<int> closed;
};

}  // namespace

TEST_CASE("slots keep their index; the reactor's numbering follows opening order") {
    ListeningReactor r;
    ListenerTable t(r);
    t.resize(2);
    std::string err;
    REQUIRE(t.open(1, "127.0.0.1", 1884, err));
    REQUIRE(t.open(0, "127.0.0.1", 1883, err));
    CHECK(t.slot_of(0) == 1);
    CHECK(t.slot_of(1) == 0);
    CHECK(t.bound_port(0) == 1883);
    CHECK(t.bound_port(1) == 1884);
    const int metrics = t.open_unslotted("127.0.0.1", 9100, err);
    CHECK(metrics == 2);
    CHECK(t.slot_of(metrics) == -1);
    CHECK(t.slot_of(7) == -1);
    CHECK(t.slot_of(-1) == -1);
    CHECK(t.open_count() == 2);
}

TEST_CASE("a closed slot stays in the table; a failed listen leaves its slot closed") {
    ListeningReactor r;
    ListenerTable t(r);
    t.resize(2);
    std::string err;
    REQUIRE(t.open(0, "127.0.0.1", 1883, err));
    CHECK_FALSE(t.open(1, "127.0.0.1", 1, err));
    CHECK(err == "in use");
    CHECK_FALSE(t.is_open(1));
    t.close(0);
    CHECK(r.closed == std::set<int>{0});
    CHECK(t.size() == 2);
    CHECK(t.open_slots() == std::vector<bool>{false, false});
    t.resize(3);   // a reload appends
    REQUIRE(t.open(2, "127.0.0.1", 1885, err));
    CHECK(t.slot_of(1) == 2);
    CHECK(t.open_count() == 1);
}
