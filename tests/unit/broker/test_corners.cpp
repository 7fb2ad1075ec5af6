// Keep alive bounds (max_keep_alive, server_keep_alive for v5 only) and
// protocol corners: MQTT 3.1 PUBREL with DUP, the client's Maximum Packet
// Size on non-PUBLISH packets, acknowledgements of the wrong type.
#include "broker/log_sink.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

std::vector<std::string> logged;
void capture(const char* line) { logged.emplace_back(line); }

// One QoS 1 or 2 message from `pub` to `sub` (subscribed to "t").
Publish deliver_one(TestClient& pub, TestClient& sub, uint8_t qos) {
    pub.publish("t", "m", qos);
    pub.take();
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    return got[0];
}

}  // namespace

TEST_CASE("max_keep_alive: a v5 client asking for more or for none is told the maximum") {
    Config cfg;
    cfg.max_keep_alive = 30;
    Harness h(cfg);
    TestClient more(h, Version::V5), none(h, Version::V5), less(h, Version::V5);
    CHECK(more.connect("more", true, 100).props.server_keep_alive == 30);
    CHECK(none.connect("none", true, 0).props.server_keep_alive == 30);
    Connack ack = less.connect("less", true, 10);
    CHECK_FALSE(ack.props.server_keep_alive.has_value());   // keeps its own 10 s
    h.broker->on_tick(15000);   // 1.5 x 10 s
    CHECK(less.closed());
    CHECK_FALSE(more.closed());
    h.broker->on_tick(45000);   // 1.5 x 30 s
    CHECK(more.closed());
    CHECK(none.closed());
}

TEST_CASE("max_keep_alive: a v3.1.1 client outside it is refused with return code 2 and a log line") {
    Config cfg;
    cfg.max_keep_alive = 30;
    Harness h(cfg);
    logged.clear();
    set_log_sink(capture);
    TestClient more(h, Version::V311), none(h, Version::V311), ok(h, Version::V311);
    CHECK(more.connect("more", true, 31).reason == rc::ClientIdentifierNotValid);
    CHECK(more.closed());
    CHECK(none.connect("none", true, 0).reason == rc::ClientIdentifierNotValid);
    CHECK(none.closed());
    CHECK(ok.connect("ok", true, 30).reason == rc::Success);
    // One line a minute: a device reconnecting in a loop would fill the log.
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("more") != std::string::npos);
    CHECK(logged[0].find("max_keep_alive") != std::string::npos);
    h.broker->on_tick(61000);
    TestClient later(h, Version::V311);
    CHECK(later.connect("later", true, 0).reason == rc::ClientIdentifierNotValid);
    set_log_sink(nullptr);
    REQUIRE(logged.size() == 2);
    CHECK(logged[1].find("later") != std::string::npos);
}

TEST_CASE("server_keep_alive is not imposed on a v3.1.1 client") {
    Config cfg;
    cfg.server_keep_alive = 90;
    Harness h(cfg);
    TestClient watcher(h, Version::V311);
    watcher.connect("w");
    watcher.subscribe("will/#", 0);
    TestClient a(h, Version::V311);
    Connect c;
    c.client_id = "a";
    c.keep_alive = 2;
    c.will_flag = true;
    c.will_topic = "will/a";
    a.connect_with(c);
    h.broker->on_tick(2900);
    CHECK_FALSE(a.closed());
    h.broker->on_tick(3000);   // 1.5 x its own 2 s, not 90 s
    CHECK(a.closed());
    CHECK(watcher.publishes().size() == 1);
}

TEST_CASE("server_keep_alive applies to a v5 client asking for less, within max_keep_alive") {
    Config cfg;
    cfg.server_keep_alive = 20;
    cfg.max_keep_alive = 60;
    Harness h(cfg);
    TestClient a(h, Version::V5);
    CHECK(a.connect("a", true, 5).props.server_keep_alive == 20);
    h.broker->on_tick(29900);
    CHECK_FALSE(a.closed());
    h.broker->on_tick(30000);
    CHECK(a.closed());
}

TEST_CASE("MQTT 3.1: a PUBREL re-sent with DUP after a reconnect gets its PUBCOMP") {
    Harness h;
    TestClient a(h, Version::V31);
    a.connect("pub31", false);
    a.publish("t", "x", 2, false, 7);
    CHECK(a.take_one<Ack>().type == PacketType::Pubrec);
    a.transport_gone();
    TestClient again(h, Version::V31);
    again.connect("pub31", false);
    again.send_raw({0x6A, 0x02, 0x00, 0x07});   // PUBREL, DUP set, QoS 1, id 7
    CHECK_FALSE(again.closed());
    Ack comp = again.take_one<Ack>();
    CHECK(comp.type == PacketType::Pubcomp);
    CHECK(comp.packet_id == 7);
}

TEST_CASE("MQTT 3.1.1 and 5: a PUBREL with DUP is still malformed") {
    for (Version v : {Version::V311, Version::V5}) {
        Harness h;
        TestClient a(h, v);
        a.connect("p");
        a.send_raw({0x6A, 0x02, 0x00, 0x07});
        CHECK(a.closed());
    }
}

TEST_CASE("Maximum Packet Size smaller than the CONNACK: closed, nothing sent, no will") {
    Harness h;
    TestClient watcher(h, Version::V311);
    watcher.connect("w");
    watcher.subscribe("will/#", 0);
    TestClient a(h, Version::V5);
    Connect c;
    c.client_id = "tiny";
    c.props.maximum_packet_size = 2;
    c.will_flag = true;
    c.will_topic = "will/tiny";
    a.send(c);
    CHECK(a.closed());
    CHECK(a.take().empty());
    CHECK(watcher.take().empty());
}

TEST_CASE("Maximum Packet Size: a SUBACK that does not fit closes; a DISCONNECT goes without its reason string") {
    Harness h;
    TestClient a(h, Version::V5);
    Properties props;
    props.maximum_packet_size = 20;
    Connack ack = a.connect("a", true, 0, props);
    CHECK(ack.reason == rc::Success);
    Subscribe s;
    s.packet_id = 1;
    for (int i = 0; i < 20; ++i) s.topics.push_back({"t", 0, false, false, 0});   // SUBACK of 20 codes + header > 20
    a.send(s);
    CHECK(a.closed());
    CHECK(a.take().empty());

    TestClient b(h, Version::V5);
    b.connect("b", true, 0, props);
    b.send(Connect{});   // a second CONNECT: DISCONNECT 0x82, its reason string would not fit
    CHECK(b.closed());
    Disconnect d = b.take_one<Disconnect>();
    CHECK(d.reason == rc::ProtocolError);
    CHECK_FALSE(d.props.reason_string.has_value());
}

TEST_CASE("wrong acknowledgement type is a protocol error") {
    for (Version v : {Version::V311, Version::V5}) {
        CAPTURE(int(v));
        SUBCASE("PUBREC for a QoS 1 message") {
            Harness h;
            TestClient pub(h, v), sub(h, v);
            pub.connect("p");
            sub.connect("s");
            sub.subscribe("t", 2);
            Publish m = deliver_one(pub, sub, 1);
            sub.ack(PacketType::Pubrec, m.packet_id);
            CHECK(sub.closed());
            if (v == Version::V5) CHECK(sub.take_one<Disconnect>().reason == rc::ProtocolError);
            else CHECK(sub.take().empty());
        }
        SUBCASE("PUBACK for a QoS 2 message") {
            Harness h;
            TestClient pub(h, v), sub(h, v);
            pub.connect("p");
            sub.connect("s");
            sub.subscribe("t", 2);
            Publish m = deliver_one(pub, sub, 2);
            sub.ack(PacketType::Puback, m.packet_id);
            CHECK(sub.closed());
            if (v == Version::V5) CHECK(sub.take_one<Disconnect>().reason == rc::ProtocolError);
        }
        SUBCASE("PUBCOMP before PUBREC for a QoS 2 message") {
            Harness h;
            TestClient pub(h, v), sub(h, v);
            pub.connect("p");
            sub.connect("s");
            sub.subscribe("t", 2);
            Publish m = deliver_one(pub, sub, 2);
            sub.ack(PacketType::Pubcomp, m.packet_id);
            CHECK(sub.closed());
            if (v == Version::V5) CHECK(sub.take_one<Disconnect>().reason == rc::ProtocolError);
        }
        SUBCASE("the right sequence still works") {
            Harness h;
            TestClient pub(h, v), sub(h, v);
            pub.connect("p");
            sub.connect("s");
            sub.subscribe("t", 2);
            Publish m1 = deliver_one(pub, sub, 1);
            sub.ack(PacketType::Puback, m1.packet_id);
            Publish m2 = deliver_one(pub, sub, 2);
            sub.ack(PacketType::Pubrec, m2.packet_id);
            CHECK(sub.take_one<Ack>().type == PacketType::Pubrel);
            sub.ack(PacketType::Pubcomp, m2.packet_id);
            CHECK_FALSE(sub.closed());
            CHECK(sub.take().empty());
        }
    }
}
