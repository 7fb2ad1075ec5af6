#include <doctest/doctest.h>

#include "app/reload_plan.hpp"

using namespace hato;

namespace {
config::Listener at(const char* address, uint16_t port) {
    config::Listener l;
    l.address = address;
    l.port = port;
    return l;
}
}  // namespace

TEST_CASE("listeners are matched by address and port; the rest is removed or added") {
    std::vector<config::Listener> running = {at("127.0.0.1", 1883), at("0.0.0.0", 8883), at("10.0.0.1", 1883)};
    std::vector<bool> open = {true, true, false};   // slot 2 was removed earlier
    config::Listener tls = at("0.0.0.0", 8883);
    tls.allow_anonymous = false;
    std::vector<config::Listener> next = {tls, at("10.0.0.1", 1883), at("127.0.0.1", 1884)};
    app::ListenerPlan p = app::plan_listeners(running, open, next);
    CHECK(p.slot_of_new == std::vector<int>{1, -1, -1});   // a closed slot is never reused
    CHECK(p.removed == std::vector<size_t>{0});
}

TEST_CASE("restart-only keys keep their running value and are named") {
    config::AppConfig running = config::defaults();
    config::AppConfig next = running;
    next.storage.dir = "/elsewhere";
    next.event_backend = "epoll";
    next.sys_interval_s = 3;
    std::vector<std::string> names = app::keep_restart_only(running, next);
    CHECK(names == std::vector<std::string>{"[broker] event_backend", "[storage] dir"});
    CHECK(next.storage.dir == running.storage.dir);
    CHECK(next.event_backend == running.event_backend);
    CHECK(next.sys_interval_s == 3);
}

// The file is checked against its own segment_size_mb; the running one
// stays until a restart, and a max_packet_size only the new one holds would
// let a message in that the store refuses.
TEST_CASE("a max_packet_size larger than the running segments hold is kept too") {
    config::AppConfig running = config::defaults();
    running.broker.max_packet_size = 1 << 20;
    config::AppConfig next = running;
    next.storage.segment_bytes = running.storage.segment_bytes * 2;
    next.broker.max_packet_size = uint32_t(running.storage.segment_bytes + (1 << 20));
    std::vector<std::string> names = app::keep_restart_only(running, next);
    CHECK(names == std::vector<std::string>{
                       "[storage] segment_size_mb",
                       "[limits] max_packet_size (larger than the running segment_size_mb holds)"});
    CHECK(next.broker.max_packet_size == 1u << 20);
    next = running;   // one that fits is taken
    next.broker.max_packet_size = 2 << 20;
    CHECK(app::keep_restart_only(running, next).empty());
    CHECK(next.broker.max_packet_size == 2u << 20);
}
