// Graceful shutdown's sequence (app/shutdown.hpp) on recorded steps.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "app/shutdown.hpp"

using hato::app::Shutdown;

namespace {

struct Recorder final : hato::app::ShutdownSteps {
    std::vector<std::string> steps;
    bool is_drained = false;
    void announce() override { steps.push_back("announce"); }
    void stop_accepting() override { steps.push_back("stop accepting"); }
    void stop_clients_of_ours() override { steps.push_back("stop bridges"); }
    void disconnect_clients() override { steps.push_back("disconnect clients"); }
    bool drained() const override { return is_drained; }
    void finish() override { steps.push_back("finish"); }
};

}  // namespace

TEST_CASE("a request runs the steps in order, then waits for the clients to drain") {
    Recorder r;
    Shutdown s(r, 2000);
    s.poll(0);   // nothing requested: nothing happens
    CHECK(r.steps.empty());
    s.request("SIGTERM", 1000);
    CHECK(s.stopping());
    CHECK(r.steps == std::vector<std::string>{"announce", "stop accepting", "stop bridges", "disconnect clients"});
    s.poll(1500);
    CHECK_FALSE(s.stopped());
    r.is_drained = true;
    s.poll(1600);
    CHECK(s.stopped());
    s.poll(1700);   // finished once only
    CHECK(r.steps.back() == "finish");
    CHECK(std::count(r.steps.begin(), r.steps.end(), "finish") == 1);
}

TEST_CASE("the grace period ends the wait for slow clients") {
    Recorder r;
    Shutdown s(r, 2000);
    s.request("SIGINT", 1000);
    s.poll(2999);
    CHECK_FALSE(s.stopped());
    s.poll(3000);
    CHECK(s.stopped());
}

TEST_CASE("a second signal stops at once, without repeating the steps") {
    Recorder r;
    Shutdown s(r, 2000);
    s.request("SIGINT", 1000);
    s.request("SIGINT", 1001);
    CHECK(s.stopped());
    CHECK(r.steps ==
          std::vector<std::string>{"announce", "stop accepting", "stop bridges", "disconnect clients", "finish"});
}
