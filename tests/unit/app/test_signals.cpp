// Signals reach the loop through a signalfd (app/signals.hpp).
#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <vector>

#include "app/signals.hpp"

using namespace hato::app;

TEST_CASE("SIGINT and SIGTERM shut down, SIGHUP reloads, others do nothing") {
    CHECK(action_for(SIGINT) == SignalAction::Shutdown);
    CHECK(action_for(SIGTERM) == SignalAction::Shutdown);
    CHECK(action_for(SIGHUP) == SignalAction::Reload);
    CHECK(action_for(SIGUSR1) == SignalAction::None);
}

TEST_CASE("blocked signals wait on the fd until drained, in arrival order") {
    SignalFd signals;
    std::string err;
    REQUIRE(signals.open(err));
    CHECK(signals.fd() >= 0);
    std::vector<int> got;
    signals.drain([&](int s) { got.push_back(s); });
    CHECK(got.empty());   // nonblocking: nothing waiting
    // Blocked: raise() leaves it pending for the fd instead of killing the test.
    std::raise(SIGHUP);
    signals.drain([&](int s) { got.push_back(s); });
    CHECK(got == std::vector<int>{SIGHUP});
}
