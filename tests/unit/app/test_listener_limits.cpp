// [[listener]] max_connections bookkeeping (app/listener_limits.hpp).
#include <doctest/doctest.h>

#include "app/listener_limits.hpp"

using hato::app::ListenerLimits;

TEST_CASE("a listener with a limit is full at its limit and frees a place on close") {
    ListenerLimits l;
    l.configure({2, 0});
    CHECK_FALSE(l.full(0));
    l.opened(1, 0);
    l.opened(2, 0);
    CHECK(l.full(0));
    CHECK(l.open(0) == 2);
    l.closed(1);
    CHECK_FALSE(l.full(0));
    l.closed(1);   // twice: no effect
    CHECK(l.open(0) == 1);
}

TEST_CASE("listeners without a limit, or unknown ones, are never full and not tracked") {
    ListenerLimits l;
    l.configure({0, 1});
    for (uint64_t id = 1; id <= 100; ++id) l.opened(id, 0);
    CHECK_FALSE(l.full(0));
    CHECK(l.open(0) == 0);
    CHECK_FALSE(l.full(7));
    CHECK_FALSE(l.full(-1));
    l.opened(200, 1);
    CHECK(l.full(1));
    for (uint64_t id = 1; id <= 100; ++id) l.closed(id);   // untracked: no effect on listener 1
    CHECK(l.full(1));
    l.closed(200);
    CHECK_FALSE(l.full(1));
}
