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

namespace {

Properties resume_props(uint16_t receive_maximum) {
    Properties pr;
    pr.session_expiry = 300;
    pr.receive_maximum = receive_maximum;
    return pr;
}

// The one packet `c` was sent since the last look: a PUBLISH.
Publish only_publish(TestClient& c) {
    auto got = c.publishes();
    REQUIRE(got.size() == 1);
    return got[0];
}

}  // namespace

// MQTT-3.3.4-9 and 4.9: the send quota starts again at the Receive Maximum
// of each new connection; a QoS 2 flow past PUBREC holds its slot until
// PUBCOMP. What does not fit waits, with its packet id, ahead of the queue.
TEST_CASE("v5 resume: in-flight messages are resent within the new connection's Receive Maximum") {
    Harness h;
    TestClient p(h, Version::V311);
    p.connect("p");
    std::map<std::string, uint16_t> first_ids;   // payload -> packet id it was first sent under
    {
        TestClient s(h, Version::V5);
        s.connect("s", false, 0, resume_props(10));
        s.subscribe("t", 2);
        const std::pair<const char*, uint8_t> sent[] = {{"m0", 1}, {"m1", 2}, {"m2", 1},
                                                        {"m3", 2}, {"m4", 2}, {"m5", 1}};
        for (auto [payload, qos] : sent) p.publish("t", payload, qos);
        p.take();
        auto got = s.publishes();
        REQUIRE(got.size() == 6);
        for (const Publish& m : got) first_ids[text(m.payload)] = m.packet_id;
        s.ack(PacketType::Pubrec, first_ids["m1"]);   // m1 and m3 go on to PUBREL
        s.ack(PacketType::Pubrec, first_ids["m3"]);
        CHECK(s.take_all<Ack>().size() == 2);
        s.transport_gone();
    }
    p.publish("t", "q0", 1);   // queued while offline
    p.publish("t", "q1", 2);
    p.take();

    TestClient s(h, Version::V5);
    CHECK(s.connect("s", false, 0, resume_props(4)).session_present);
    // In the order first sent: two PUBLISHes and the two PUBRELs fill the 4 slots.
    auto resumed = s.extra();
    REQUIRE(resumed.size() == 4);
    CHECK(text(std::get<Publish>(resumed[0]).payload) == "m0");
    CHECK(std::get<Publish>(resumed[0]).dup);
    CHECK(std::get<Ack>(resumed[1]).type == PacketType::Pubrel);
    CHECK(std::get<Ack>(resumed[1]).packet_id == first_ids["m1"]);
    CHECK(text(std::get<Publish>(resumed[2]).payload) == "m2");
    CHECK(std::get<Publish>(resumed[2]).dup);
    CHECK(std::get<Ack>(resumed[3]).packet_id == first_ids["m3"]);

    // Each acknowledgement lets exactly the next one go: the rest of the
    // resends under their own ids, then the queue.
    s.ack(PacketType::Puback, first_ids["m0"]);
    Publish m4 = only_publish(s);
    CHECK(text(m4.payload) == "m4");
    CHECK(m4.dup);
    CHECK(m4.packet_id == first_ids["m4"]);
    s.ack(PacketType::Pubcomp, first_ids["m1"]);
    Publish m5 = only_publish(s);
    CHECK(text(m5.payload) == "m5");
    CHECK(m5.dup);
    CHECK(m5.packet_id == first_ids["m5"]);
    s.ack(PacketType::Puback, first_ids["m2"]);
    Publish q0 = only_publish(s);
    CHECK(text(q0.payload) == "q0");
    CHECK_FALSE(q0.dup);
    s.ack(PacketType::Pubcomp, first_ids["m3"]);
    Publish q1 = only_publish(s);
    CHECK(text(q1.payload) == "q1");
    CHECK_FALSE(q1.dup);
    for (const auto& [payload, id] : first_ids) {   // ids still held are not handed out again
        CHECK(q0.packet_id != id);
        CHECK(q1.packet_id != id);
    }

    // m4 completes once (QoS 2); nothing else is left to send.
    s.ack(PacketType::Pubrec, m4.packet_id);
    CHECK(s.take_one<Ack>().type == PacketType::Pubrel);
    s.ack(PacketType::Pubcomp, m4.packet_id);
    s.ack(PacketType::Puback, m5.packet_id);
    s.ack(PacketType::Puback, q0.packet_id);
    s.ack(PacketType::Pubrec, q1.packet_id);
    CHECK(s.take_one<Ack>().type == PacketType::Pubrel);
    s.ack(PacketType::Pubcomp, q1.packet_id);
    CHECK(s.take().empty());
    CHECK(h.broker->session_queue("s").messages == 0);
    // The store saw each message go in flight once, under its first id.
    CHECK(h.persist.count("out_state s 5 1 " + std::to_string(first_ids["m4"])) == 1);
    CHECK(h.persist.count("out_state s 5 1") == 1);
    CHECK(h.persist.count("out_state s 6 1") == 1);
}

TEST_CASE("v5 resume: a PUBREC for a message still awaiting its resend ends the resend") {
    Harness h;
    TestClient p(h, Version::V311);
    p.connect("p");
    std::vector<uint16_t> ids;
    {
        TestClient s(h, Version::V5);
        s.connect("s", false, 0, resume_props(10));
        s.subscribe("t", 2);
        p.publish("t", "a", 2);
        p.publish("t", "b", 2);
        p.take();
        for (const Publish& m : s.publishes()) ids.push_back(m.packet_id);
        REQUIRE(ids.size() == 2);
        s.transport_gone();
    }
    TestClient s(h, Version::V5);
    s.connect("s", false, 0, resume_props(1));
    auto resumed = s.extra();
    REQUIRE(resumed.size() == 1);
    CHECK(text(std::get<Publish>(resumed[0]).payload) == "a");
    // The client had b from the first connection: it gets its PUBREL, and b
    // is not sent again.
    s.ack(PacketType::Pubrec, ids[1]);
    auto rel = s.take_one<Ack>();
    CHECK(rel.type == PacketType::Pubrel);
    CHECK(rel.packet_id == ids[1]);
    s.ack(PacketType::Pubrec, ids[0]);
    CHECK(s.take_one<Ack>().packet_id == ids[0]);
    s.ack(PacketType::Pubcomp, ids[0]);
    s.ack(PacketType::Pubcomp, ids[1]);
    CHECK(s.take().empty());
    CHECK(h.broker->session_queue("s").messages == 0);
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

// The store says where the session's seqs go on (past records it dropped at
// recovery): a new message never takes a seq an old record still names.
TEST_CASE("recovery: a session's queue goes on from the store's next seq") {
    Harness h;
    RecoveredSession rs;
    rs.client_id = "dev";
    rs.expiry_s = 3600;
    rs.subs.push_back({"cmd/#", 1, 0});
    rs.next_seq = 9;
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    TestClient p(h, Version::V311);
    p.connect("p");
    p.publish("cmd/a", "1", 1);
    p.take();
    CHECK(h.persist.count("out_enqueue dev 9 cmd/a") == 1);
    CHECK(h.persist.count("out_enqueue dev 1 ") == 0);
}

// After a restart too: what the store held in flight goes out again within
// the window (a v5 client's Receive Maximum, or max_inflight for any
// client), under its stored packet ids, ahead of the queue.
TEST_CASE("recovered in-flight messages are resent within the window, ahead of the queue") {
    Config cfg;
    Version version = Version::V5;
    Properties props = resume_props(2);
    SUBCASE("v5 Receive Maximum") {}
    SUBCASE("v3.1.1, max_inflight") {
        cfg.max_inflight = 2;
        version = Version::V311;
        props = {};
    }
    Harness h(cfg);
    RecoveredSession rs;
    rs.client_id = "dev";
    rs.expiry_s = 3600;
    rs.subs.push_back({"cmd/#", 2, 0});
    auto out = [](uint64_t seq, OutState state, uint16_t pid, uint8_t qos) {
        RecoveredOut o;
        o.seq = seq;
        o.state = state;
        o.packet_id = pid;
        o.msg.topic = "cmd/" + std::to_string(seq);
        o.msg.qos = qos;
        return o;
    };
    rs.out = {out(1, OutState::Inflight, 11, 1), out(2, OutState::Pubrel, 12, 2), out(3, OutState::Inflight, 13, 2),
              out(4, OutState::Inflight, 14, 1), out(5, OutState::Queued, 0, 1)};
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();

    TestClient dev(h, version);
    CHECK(dev.connect("dev", false, 0, props).session_present);
    auto resumed = dev.extra();
    REQUIRE(resumed.size() == 2);
    CHECK(std::get<Publish>(resumed[0]).packet_id == 11);
    CHECK(std::get<Publish>(resumed[0]).dup);
    CHECK(std::get<Ack>(resumed[1]).type == PacketType::Pubrel);
    CHECK(std::get<Ack>(resumed[1]).packet_id == 12);

    dev.ack(PacketType::Puback, 11);
    Publish third = only_publish(dev);
    CHECK(third.topic == "cmd/3");
    CHECK(third.packet_id == 13);
    CHECK(third.dup);
    dev.ack(PacketType::Pubcomp, 12);
    Publish fourth = only_publish(dev);
    CHECK(fourth.topic == "cmd/4");
    CHECK(fourth.packet_id == 14);
    CHECK(fourth.dup);
    dev.ack(PacketType::Puback, 14);
    Publish queued = only_publish(dev);
    CHECK(queued.topic == "cmd/5");
    CHECK_FALSE(queued.dup);
    CHECK(queued.packet_id != 13);   // still in flight
    dev.ack(PacketType::Puback, queued.packet_id);
    CHECK(dev.take().empty());
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
