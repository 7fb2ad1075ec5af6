// Sessions: persistence calls, offline queueing, resend with DUP, expiry,
// clean start, recover().
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

TEST_CASE("persistent session queues QoS 1/2 offline and resends in flight with DUP") {
    Harness h;
    TestClient p(h, Version::V311);
    p.connect("p");
    {
        TestClient s(h, Version::V311);
        CHECK_FALSE(s.connect("s", false).session_present);
        s.subscribe("q", 2);
        CHECK(h.persist.count("sub_put s q 2 0") == 1);
        p.publish("q", "first", 1);
        p.publish("q", "second", 2);
        auto got = s.publishes();
        REQUIRE(got.size() == 2);
        s.ack(PacketType::Pubrec, got[1].packet_id);   // second goes to PUBREL state
        CHECK(s.take_one<Ack>().type == PacketType::Pubrel);
        s.transport_gone();
    }
    p.publish("q", "offline1", 1);
    p.publish("q", "offline0", 0);   // QoS 0 is not queued offline
    p.take();

    TestClient s(h, Version::V311);
    CHECK(s.connect("s", false).session_present);
    auto packets = s.extra();
    REQUIRE(packets.size() == 3);
    auto& resent = std::get<Publish>(packets[0]);
    CHECK(resent.dup);
    CHECK(text(resent.payload) == "first");
    CHECK(std::get<Ack>(packets[1]).type == PacketType::Pubrel);
    auto& queued = std::get<Publish>(packets[2]);
    CHECK_FALSE(queued.dup);
    CHECK(text(queued.payload) == "offline1");
    CHECK(queued.packet_id != resent.packet_id);
    CHECK(h.persist.count("out_enqueue s") == 3);
    CHECK(h.persist.count("session_put s 4294967295 offline") == 1);
}

TEST_CASE("clean session discards state; clean sessions write nothing") {
    Harness h;
    TestClient a(h, Version::V311);
    a.connect("a", false);
    a.subscribe("t", 1);
    a.transport_gone();
    TestClient a2(h, Version::V311);
    CHECK_FALSE(a2.connect("a", true).session_present);
    CHECK(h.persist.count("session_remove a") == 1);
    size_t before = h.persist.calls.size();
    a2.subscribe("t", 1);
    a2.transport_gone();
    CHECK(h.persist.calls.size() == before);
    TestClient p(h, Version::V311);
    p.connect("p");
    p.publish("t", "x");
    TestClient a3(h, Version::V311);
    CHECK_FALSE(a3.connect("a", false).session_present);
}

TEST_CASE("v5 session expiry removes the session and its queue") {
    Harness h;
    Properties e;
    e.session_expiry = 10;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s", true, 0, e);
    s.subscribe("t", 1);
    s.transport_gone();
    p.connect("p");
    p.publish("t", "queued", 1);
    h.broker->on_tick(9000);
    CHECK(h.persist.count("session_remove s") == 0);
    h.broker->on_tick(10000);
    CHECK(h.persist.count("session_remove s") == 1);
    TestClient s2(h, Version::V5);
    CHECK_FALSE(s2.connect("s", false, 0, e).session_present);
    CHECK(s2.take().empty());
}

TEST_CASE("v5 DISCONNECT may change session expiry, but not from 0") {
    Harness h;
    TestClient a(h, Version::V5);
    a.connect("a");
    Properties p;
    p.session_expiry = 60;
    a.disconnect(0, p);
    CHECK(a.take_one<Disconnect>().reason == rc::ProtocolError);

    Properties e;
    e.session_expiry = 60;
    TestClient b(h, Version::V5);
    b.connect("b", true, 0, e);
    Properties zero;
    zero.session_expiry = 0;
    b.disconnect(0, zero);
    CHECK(h.persist.count("session_remove b") == 1);
}

TEST_CASE("recover rebuilds retained, sessions, subscriptions and queues") {
    Harness h;
    StoredMessage r;
    r.topic = "ret/x";
    r.payload = {'r'};
    r.qos = 1;
    r.retain = true;
    h.persist.to_load.retained.push_back(r);

    RecoveredSession rs;
    rs.client_id = "dev";
    rs.expiry_s = 3600;
    rs.offline_since_wall_ms = 0;
    rs.subs.push_back({"cmd/#", 1, 0});
    RecoveredOut inflight;
    inflight.seq = 4;
    inflight.state = OutState::Inflight;
    inflight.packet_id = 17;
    inflight.msg.topic = "cmd/a";
    inflight.msg.payload = {'1'};
    inflight.msg.qos = 1;
    RecoveredOut queued = inflight;
    queued.seq = 5;
    queued.state = OutState::Queued;
    queued.packet_id = 0;
    queued.msg.payload = {'2'};
    rs.out = {inflight, queued};
    rs.qos2_in = {{99, 0}};
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();

    // Routing reaches the recovered subscription while it is offline (queued).
    TestClient p(h, Version::V311);
    p.connect("p");
    p.publish("cmd/b", "3", 1);
    p.take();

    TestClient dev(h, Version::V311);
    CHECK(dev.connect("dev", false).session_present);
    std::vector<Publish> got;
    for (auto& pk : dev.extra()) got.push_back(std::get<Publish>(pk));
    REQUIRE(got.size() == 3);
    CHECK(got[0].dup);
    CHECK(got[0].packet_id == 17);
    CHECK(text(got[1].payload) == "2");
    CHECK(text(got[2].payload) == "3");
    CHECK(got[2].packet_id != 17);
    // Inbound QoS 2 state survived: PUBREL for 99 completes successfully.
    dev.ack(PacketType::Pubrel, 99);
    dev.take_all<Ack>();
    CHECK(h.persist.count("qos2_in_remove dev 99") == 1);

    TestClient s(h, Version::V311);
    s.connect("s");
    s.subscribe("ret/#", 1);
    auto ret = s.extra();
    REQUIRE(ret.size() == 1);
    CHECK(std::get<Publish>(ret[0]).retain);
}

TEST_CASE("shutdown disconnects everyone, v5 with 0x8B") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V311);
    a.connect("a");
    b.connect("b", false);
    h.broker->shutdown();
    CHECK(a.take_one<Disconnect>().reason == rc::ServerShuttingDown);
    CHECK(a.closed());
    CHECK(b.closed());
    CHECK(h.persist.count("session_remove b") == 0);
}
