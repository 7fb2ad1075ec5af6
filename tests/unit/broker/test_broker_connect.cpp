// CONNECT/CONNACK rules, keep alive, takeover, wills, bad input.
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

TEST_CASE("connack per version") {
    Harness h;
    TestClient a(h, Version::V31), b(h, Version::V311), c(h, Version::V5);
    CHECK(a.connect("a").reason == rc::Success);
    CHECK(b.connect("b").reason == rc::Success);
    Connack ack = c.connect("c");
    CHECK(ack.reason == rc::Success);
    CHECK(ack.props.receive_maximum == h.cfg.receive_maximum);
    CHECK(ack.props.topic_alias_maximum == h.cfg.topic_alias_maximum);
    CHECK_FALSE(ack.props.assigned_client_id.has_value());
    CHECK(h.broker->stats().connections == 3);
}

TEST_CASE("client identifier rules") {
    Harness h;
    SUBCASE("v3.1 needs 1..23 characters") {
        TestClient a(h, Version::V31);
        CHECK(a.connect("").reason != rc::Success);
        CHECK(a.closed());
        TestClient b(h, Version::V31);
        CHECK(b.connect("abcdefghijklmnopqrstuvwxyz").reason != rc::Success);
        CHECK(b.closed());
    }
    SUBCASE("v3.1.1 empty id only with clean session") {
        TestClient a(h, Version::V311);
        CHECK(a.connect("", true).reason == rc::Success);
        TestClient b(h, Version::V311);
        Connack nak = b.connect("", false);
        CHECK(nak.reason == rc::ClientIdentifierNotValid);   // decoded back from v3 code 2
        CHECK(b.closed());
    }
    SUBCASE("v5 empty id gets an assigned identifier") {
        TestClient a(h, Version::V5);
        Connack ack = a.connect("");
        CHECK(ack.reason == rc::Success);
        REQUIRE(ack.props.assigned_client_id.has_value());
        CHECK(ack.props.assigned_client_id->rfind("hato-", 0) == 0);
    }
}

TEST_CASE("first packet must be CONNECT; a second CONNECT is a protocol error") {
    Harness h;
    TestClient a(h, Version::V311);
    a.send(Pingreq{});
    CHECK(a.closed());

    TestClient b(h, Version::V5);
    b.connect("b");
    Connect again;
    again.version = Version::V5;
    again.client_id = "b";
    b.send(again);
    auto d = b.take_one<Disconnect>();
    CHECK(d.reason == rc::ProtocolError);
    CHECK(b.closed());

    // Found by the fuzzer: a second CONNECT with an unknown protocol level
    // was answered with DISCONNECT 0x84, a code only CONNACK may carry.
    TestClient c(h, Version::V5);
    c.connect("c");
    c.send_raw({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0xFF, 0x02, 0x00, 0x3C, 0x00, 0x01, 'x'});
    auto d2 = c.take_one<Disconnect>();   // take() REQUIREs that it decodes
    CHECK(d2.reason == rc::ProtocolError);
    CHECK(c.closed());
}

TEST_CASE("unsupported protocol version gets CONNACK 0x84") {
    Harness h;
    TestClient a(h, Version::V311);
    // CONNECT, protocol name MQTT, level 6.
    a.send_raw({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, 'x'});
    auto ack = a.take_one<Connack>();
    CHECK(ack.reason != rc::Success);
    CHECK(a.closed());
}

TEST_CASE("authentication method is refused, authenticator is consulted") {
    Harness h;
    TestClient a(h, Version::V5);
    Properties p;
    p.auth_method = "SCRAM-SHA-1";
    CHECK(a.connect("a", true, 0, p).reason == rc::BadAuthenticationMethod);
    CHECK(a.closed());
    TestClient d(h, Version::V5);
    Properties data_only;   // Authentication Data without a method: 3.1.2.11.10
    static const uint8_t blob[] = {1, 2};
    data_only.auth_data = Bytes(blob, 2);
    CHECK(d.connect("d", true, 0, data_only).reason == rc::ProtocolError);
    CHECK(d.closed());

    struct DenyBob final : Authenticator {
        std::optional<AuthVerdict> start(const AuthRequest& req) override {
            return AuthVerdict{req.client_id == "bob" ? rc::NotAuthorized : rc::Success, true};
        }
    } deny;
    h.broker->set_authenticator(&deny);
    TestClient bob(h, Version::V5), eve(h, Version::V5);
    CHECK(bob.connect("bob").reason == rc::NotAuthorized);
    CHECK(bob.closed());
    CHECK(eve.connect("eve").reason == rc::Success);
}

TEST_CASE("pingreq gets pingresp") {
    Harness h;
    TestClient a(h, Version::V311);
    a.connect("a");
    a.send(Pingreq{});
    a.take_one<Pingresp>();
}

TEST_CASE("keep alive timeout closes after 1.5x and publishes the will") {
    Harness h;
    TestClient watcher(h, Version::V311);
    watcher.connect("w");
    watcher.subscribe("will/#", 0);

    TestClient a(h, Version::V5);
    Connect c;
    c.client_id = "a";
    c.keep_alive = 10;
    c.will_flag = true;
    c.will_topic = "will/a";
    c.will_payload = Bytes(reinterpret_cast<const uint8_t*>("gone"), 4);
    a.connect_with(c);

    h.broker->on_tick(9000);
    a.send(Pingreq{});   // activity at t=9s pushes the deadline to 24s
    a.take_one<Pingresp>();
    h.broker->on_tick(15000);
    CHECK_FALSE(a.closed());
    h.broker->on_tick(23900);
    CHECK_FALSE(a.closed());
    h.broker->on_tick(24000);
    CHECK(a.closed());
    CHECK(a.take_one<Disconnect>().reason == rc::KeepAliveTimeout);
    auto wills = watcher.publishes();
    REQUIRE(wills.size() == 1);
    CHECK(wills[0].topic == "will/a");
    CHECK(text(wills[0].payload) == "gone");
}

TEST_CASE("keep alive counts whole packets: one trickled in pieces does not keep the connection") {
    Harness h;
    TestClient a(h, Version::V5);
    Connect c;
    c.client_id = "a";
    c.keep_alive = 10;
    a.connect_with(c);
    // A PUBLISH announcing 1000 bytes, sent a few bytes at a time: its
    // buffer would otherwise be held for as long as the client likes.
    a.send_raw({0x30, 0xE8, 0x07, 0x00, 0x01, 'x'});
    for (uint64_t t = 1000; t < 15000; t += 1000) {
        h.broker->on_tick(t);
        a.send_raw({'y', 'y'});
    }
    h.broker->on_tick(15000);
    CHECK(a.closed());
    CHECK(a.take_one<Disconnect>().reason == rc::KeepAliveTimeout);

    TestClient b(h, Version::V5);   // a whole packet within the period keeps it open
    c.client_id = "b";
    b.connect_with(c);
    h.broker->on_tick(24000);
    b.send(Pingreq{});
    b.take_one<Pingresp>();
    h.broker->on_tick(30000);
    CHECK_FALSE(b.closed());
}

TEST_CASE("server keep alive overrides the client's") {
    Config cfg;
    cfg.server_keep_alive = 5;
    Harness h(cfg);
    TestClient a(h, Version::V5);
    Connack ack = a.connect("a", true, 100);
    CHECK(ack.props.server_keep_alive == 5);
    h.broker->on_tick(7600);
    CHECK(a.closed());
}


TEST_CASE("will: abnormal close publishes, clean disconnect does not, 0x04 does") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);

    TestClient a(h, Version::V5);
    a.connect_with(with_will("a", "will/a"));
    a.transport_gone();
    auto got = w.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "will/a");
    CHECK(got[0].qos == 1);
    w.ack(PacketType::Puback, got[0].packet_id);

    TestClient b(h, Version::V5);
    b.connect_with(with_will("b", "will/b"));
    b.disconnect();
    CHECK(b.closed());
    CHECK(w.publishes().empty());

    TestClient c(h, Version::V5);
    c.connect_with(with_will("c", "will/c"));
    c.disconnect(rc::DisconnectWithWill);
    got = w.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "will/c");
}

// MQTT-3.8.3-3: a will is its client's message; its own No Local
// subscription (kept in its session) does not get it back.
TEST_CASE("will: not delivered to its own client's No Local subscription") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);
    TestClient a(h, Version::V5);
    a.connect_with(with_will("a", "will/a", 0, false, 300));
    a.subscribe("will/#", 1, 1, 0, 0, /*no_local=*/true);
    a.transport_gone();
    REQUIRE(w.publishes().size() == 1);
    TestClient back(h, Version::V5);
    Properties keep;
    keep.session_expiry = 300;
    CHECK(back.connect("a", false, 0, keep).session_present);
    CHECK(back.extra().empty());
}

// MQTT-3.1.2-10, MQTT-3.14.4-3: only DISCONNECT 0x00 discards the will; one
// with any other reason is not a normal disconnection (3.1.2.5), so the will
// goes, under its Will Delay Interval, as with 0x04.
TEST_CASE("will: a v5 DISCONNECT with an error reason publishes it; only 0x00 discards it") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 0);

    for (uint8_t reason : {rc::NormalDisconnection, rc::DisconnectWithWill, rc::UnspecifiedError,
                           rc::ImplementationSpecificError, rc::ProtocolError}) {
        CAPTURE(int(reason));
        TestClient a(h, Version::V5);
        a.connect_with(with_will("a", "will/a"));
        a.disconnect(reason);
        CHECK(a.closed());
        CHECK(w.publishes().size() == (reason == rc::NormalDisconnection ? 0 : 1));
    }

    // A v3.1.1 DISCONNECT carries no reason: a normal disconnection.
    TestClient v3(h, Version::V311);
    Connect c = with_will("v3", "will/v3");
    c.will_qos = 0;
    v3.connect_with(c);
    v3.disconnect();
    CHECK(w.publishes().empty());

    // The Will Delay Interval applies: published once it elapses, or never
    // if the session is resumed first.
    TestClient d(h, Version::V5);
    d.connect_with(with_will("d", "will/d", 10, true, 100));
    d.disconnect(rc::UnspecifiedError);
    h.broker->on_tick(5000);
    CHECK(w.publishes().empty());
    h.broker->on_tick(10000);
    CHECK(w.publishes().size() == 1);

    TestClient e(h, Version::V5);
    e.connect_with(with_will("e", "will/e", 10, true, 100));
    e.disconnect(rc::ImplementationSpecificError);
    TestClient e2(h, Version::V5);
    CHECK(e2.connect("e", false).session_present);
    h.broker->on_tick(30000);
    CHECK(w.publishes().empty());
}

TEST_CASE("will delay: cancelled by reconnect, else published when it elapses") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 0);

    TestClient a(h, Version::V5);
    a.connect_with(with_will("a", "will/a", 10, true, 100));
    a.transport_gone();
    h.broker->on_tick(5000);
    CHECK(w.publishes().empty());
    TestClient a2(h, Version::V5);
    CHECK(a2.connect("a", false, 0).session_present);
    h.broker->on_tick(20000);
    CHECK(w.publishes().empty());

    TestClient b(h, Version::V5);
    b.connect_with(with_will("b", "will/b", 10, true, 100));
    b.transport_gone();
    h.broker->on_tick(29000);
    CHECK(w.publishes().empty());
    h.broker->on_tick(30000);
    CHECK(w.publishes().size() == 1);

    // Session expiry shorter than the will delay: published at session end.
    TestClient c(h, Version::V5);
    c.connect_with(with_will("c", "will/c", 100, true, 2));
    c.transport_gone();
    h.broker->on_tick(32000);
    CHECK(w.publishes().size() == 1);
}

TEST_CASE("a will's Message Expiry Interval runs from its publication, not from the CONNECT") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);
    h.broker->on_tick(1000);
    TestClient a(h, Version::V5);
    Connect c = with_will("a", "will/a");
    c.will_props.message_expiry = 2;
    a.connect_with(c);
    h.broker->on_tick(4000);   // connected longer than the interval
    a.transport_gone();
    auto got = w.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].props.message_expiry == 2);   // its whole lifetime still ahead
}

TEST_CASE("takeover closes the older connection and publishes its will") {
    Harness h;
    TestClient w(h, Version::V311);
    w.connect("w");
    w.subscribe("will/#", 0);

    TestClient old(h, Version::V5);
    old.connect_with(with_will("same", "will/same"));
    TestClient fresh(h, Version::V5);
    CHECK(fresh.connect("same").reason == rc::Success);
    CHECK(old.closed());
    CHECK(old.take_one<Disconnect>().reason == rc::SessionTakenOver);
    CHECK_FALSE(fresh.closed());
    CHECK(w.publishes().size() == 1);
    CHECK(h.broker->stats().connections == 2);

    // The new connection is the one that works.
    fresh.subscribe("t", 0);
    w.publish("t", "x");
    CHECK(fresh.publishes().size() == 1);
}

TEST_CASE("malformed input closes only that connection") {
    Harness h;
    TestClient bad(h, Version::V5), good(h, Version::V5);
    bad.connect("bad");
    good.connect("good");
    good.subscribe("t", 0);
    bad.send_raw({0x30, 0x02, 0x00, 0x05});   // PUBLISH whose topic length runs past the packet
    CHECK(bad.closed());
    auto d = bad.take_one<Disconnect>();
    CHECK(d.reason >= 0x80);
    good.publish("t", "still here");
    CHECK(good.publishes().size() == 1);
    CHECK_FALSE(good.closed());
}

TEST_CASE("oversized packet refused before buffering") {
    Config cfg;
    cfg.max_packet_size = 64;
    Harness h(cfg);
    TestClient v5(h, Version::V5), v3(h, Version::V311);
    v5.connect("a");
    v3.connect("b");
    v5.send_raw({0x30, 0xC8, 0x01});   // announces 200 bytes, sends 3
    CHECK(v5.take_one<Disconnect>().reason == rc::PacketTooLarge);
    CHECK(v5.closed());
    v3.send_raw({0x30, 0xC8, 0x01});
    CHECK(v3.closed());
}

TEST_CASE("input split across reads is reassembled") {
    Harness h;
    TestClient sub(h, Version::V311), pub(h, Version::V311);
    sub.connect("s");
    sub.subscribe("a/b", 0);
    pub.connect("p");
    std::vector<uint8_t> bytes;
    Publish p;
    p.topic = "a/b";
    p.payload = Bytes(reinterpret_cast<const uint8_t*>("hello"), 5);
    encode(p, Version::V311, bytes);
    encode(p, Version::V311, bytes);
    for (uint8_t b : bytes) pub.send_raw({b});
    CHECK(sub.publishes().size() == 2);
}

TEST_CASE("a connection that never sends CONNECT is closed after connect_timeout_ms") {
    Harness h;  // connect_timeout_ms defaults to 10 s
    TestClient silent(h, Version::V311);
    TestClient ok(h, Version::V311);
    ok.connect("ok");
    h.broker->on_tick(9999);
    CHECK_FALSE(silent.closed());
    h.broker->on_tick(10000);
    CHECK(silent.closed());
    CHECK_FALSE(ok.closed());   // a connected client is not affected
}

TEST_CASE("server DISCONNECTs carry a reason string (clients read the code only then)") {
    Harness h;
    TestClient a(h, Version::V5);
    a.connect("same");
    TestClient b(h, Version::V5);
    b.connect("same");
    Disconnect d = a.take_one<Disconnect>();
    CHECK(d.reason == rc::SessionTakenOver);
    REQUIRE(d.props.reason_string);
    CHECK(*d.props.reason_string == "session taken over");
}
