// Connection admission (app/admission.hpp): which accepted connections reach
// the broker, what a refusal says, and how often it is reported.
#include <doctest/doctest.h>

#include <algorithm>

#include "app/admission.hpp"

using hato::app::Admission;
using V = Admission::Verdict;

TEST_CASE("the total bound, a listener's own bound and shutdown refuse, each named") {
    Admission a;
    a.set_listener_limits({0, 1});   // slot 0 unlimited, slot 1 at most one
    CHECK(a.decide(0, false, 2) == V::Admit);
    a.admitted(1, 0);
    CHECK(a.decide(1, false, 2) == V::Admit);
    a.admitted(2, 1);
    CHECK(a.open() == 2);
    CHECK(a.decide(1, false, 10) == V::ListenerFull);
    CHECK(a.decide(0, false, 2) == V::TotalFull);
    CHECK(a.decide(1, false, 2) == V::ListenerFull);   // both reached: the listener's names itself
    CHECK(a.decide(0, true, 10) == V::ShuttingDown);
    CHECK(std::string(Admission::reason(V::ListenerFull)) == "the listener's max_connections reached");
    CHECK(std::string(Admission::reason(V::TotalFull)) == "max_connections reached");
    CHECK(std::string(Admission::reason(V::ShuttingDown)) == "shutting down");
    a.closed(2);
    CHECK(a.decide(1, false, 10) == V::Admit);
    CHECK(a.open() == 1);
}

TEST_CASE("refused connections are remembered until their close, and hidden from the counts") {
    Admission a;
    a.refused(7);
    CHECK(a.is_refused(7));
    CHECK(a.open() == 0);
    CHECK(a.forget_refused(7));
    CHECK_FALSE(a.is_refused(7));
    CHECK_FALSE(a.forget_refused(7));
}

TEST_CASE("connections_on lists a slot's admitted connections (a removed listener closes them)") {
    Admission a;
    a.admitted(1, 0);
    a.admitted(2, 1);
    a.admitted(3, 1);
    std::vector<hato::net::ConnId> on1 = a.connections_on(1);
    std::sort(on1.begin(), on1.end());
    CHECK(on1 == std::vector<hato::net::ConnId>{2, 3});
    a.closed(2);
    CHECK(a.connections_on(1) == std::vector<hato::net::ConnId>{3});
}

TEST_CASE("refusals are reported at most once a second, with the count since the last line") {
    Admission a;
    CHECK(a.note_refusal(5000) == 1u);
    CHECK_FALSE(a.note_refusal(5100).has_value());
    CHECK_FALSE(a.note_refusal(5999).has_value());
    CHECK(a.note_refusal(6000) == 3u);
    CHECK(a.note_refusal(9000) == 1u);
}

// A reload's limits count the connections each listener has now: also one
// that had no limit before (it counted nothing, and let as many more in as
// its new limit).
TEST_CASE("a reload's listener limits count the connections already open") {
    Admission a;
    a.set_listener_limits({2, 0});
    a.admitted(1, 0);
    a.admitted(2, 0);
    for (hato::net::ConnId id : {3, 4, 5}) a.admitted(id, 1);
    CHECK(a.decide(0, false, 100) == V::ListenerFull);
    a.set_listener_limits({3, 3, 1});   // a third listener added
    CHECK(a.limits().open(0) == 2);
    CHECK(a.decide(0, false, 100) == V::Admit);
    CHECK(a.limits().open(1) == 3);   // limited now: its three count
    CHECK(a.decide(1, false, 100) == V::ListenerFull);
    a.admitted(6, 2);
    CHECK(a.decide(2, false, 100) == V::ListenerFull);
    // Off and on again: still the connections it has.
    a.set_listener_limits({0, 3, 1});
    a.set_listener_limits({5, 3, 1});
    CHECK(a.limits().open(0) == 2);
    a.closed(1);
    a.closed(2);
    CHECK(a.limits().open(0) == 0);
    a.closed(3);
    CHECK(a.decide(1, false, 100) == V::Admit);
}
