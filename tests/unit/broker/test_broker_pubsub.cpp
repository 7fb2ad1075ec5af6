// Publish/subscribe: QoS flows both ways, matching, retained, held acks,
// back-pressure.
#include <algorithm>

#include "broker/message.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// A v3.1.1 CONNECT resuming `id`'s persistent session, for a test that reads
// what follows it (the CONNACK may be held).
Connect resume(std::string_view id) {
    Connect c;
    c.version = Version::V311;
    c.client_id = id;
    c.clean_start = false;
    c.keep_alive = 0;
    return c;
}

}  // namespace

TEST_CASE("QoS 0 publish reaches a subscriber, v3 and v5") {
    Harness h;
    TestClient s3(h, Version::V311), s5(h, Version::V5), p(h, Version::V31);
    s3.connect("s3");
    s5.connect("s5");
    p.connect("p");
    CHECK(s3.subscribe("a/b", 0).reasons == std::vector<uint8_t>{0});
    CHECK(s5.subscribe("a/+", 2).reasons == std::vector<uint8_t>{2});
    p.publish("a/b", "hi");
    auto g3 = s3.publishes(), g5 = s5.publishes();
    REQUIRE(g3.size() == 1);
    REQUIRE(g5.size() == 1);
    CHECK(g3[0].topic == "a/b");
    CHECK(text(g5[0].payload) == "hi");
    CHECK(g5[0].qos == 0);
    CHECK(h.broker->stats().messages_in == 1);
    CHECK(h.broker->stats().messages_out == 2);
}

TEST_CASE("QoS 1 both directions") {
    Harness h;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    s.subscribe("q/1", 1);
    p.connect("p");
    p.publish("q/1", "m", 1, false, 7);
    auto ack = p.take_one<Ack>();
    CHECK(ack.type == PacketType::Puback);
    CHECK(ack.packet_id == 7);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].qos == 1);
    CHECK(got[0].packet_id != 0);
    s.ack(PacketType::Puback, got[0].packet_id);
    // Delivered QoS is the minimum of published and granted.
    p.publish("q/1", "m0", 0);
    CHECK(s.publishes()[0].qos == 0);
}

TEST_CASE("QoS 2 exactly once inbound, full flow outbound") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("q/2", 2);
    p.connect("p");
    p.publish("q/2", "once", 2, false, 9);
    CHECK(p.take_one<Ack>().type == PacketType::Pubrec);
    // Duplicate before PUBREL: PUBREC again, not routed again.
    Publish dup;
    dup.topic = "q/2";
    dup.payload = bytes_of("once");
    dup.qos = 2;
    dup.dup = true;
    dup.packet_id = 9;
    p.send(dup);
    CHECK(p.take_one<Ack>().type == PacketType::Pubrec);
    p.ack(PacketType::Pubrel, 9);
    auto comp = p.take_one<Ack>();
    CHECK(comp.type == PacketType::Pubcomp);
    CHECK(comp.reason == rc::Success);
    p.ack(PacketType::Pubrel, 9);
    CHECK(p.take_one<Ack>().reason == rc::PacketIdentifierNotFound);

    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].qos == 2);
    uint16_t id = got[0].packet_id;
    s.ack(PacketType::Pubrec, id);
    auto rel = s.take_one<Ack>();
    CHECK(rel.type == PacketType::Pubrel);
    CHECK(rel.packet_id == id);
    s.ack(PacketType::Pubcomp, id);
    CHECK(s.take().empty());
}

TEST_CASE("wildcards and $-topics") {
    Harness h;
    TestClient hash(h, Version::V311), plus(h, Version::V311), sys(h, Version::V311), p(h, Version::V311);
    hash.connect("h");
    plus.connect("pl");
    sys.connect("sy");
    p.connect("p");
    hash.subscribe("#", 0);
    plus.subscribe("+/x", 0);
    sys.subscribe("$data/#", 0);
    p.publish("$data/x", "1");
    p.publish("a/x", "2");
    CHECK(hash.publishes().size() == 1);   // only a/x
    CHECK(plus.publishes().size() == 1);   // only a/x
    auto s = sys.publishes();
    REQUIRE(s.size() == 1);
    CHECK(s[0].topic == "$data/x");
}

TEST_CASE("overlapping subscriptions: one copy at the highest QoS with all ids") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("a/#", 0, 1, 11);
    s.subscribe("a/b", 1, 2, 22);
    p.connect("p");
    p.publish("a/b", "x", 2, false, 1);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].qos == 1);
    auto ids = got[0].props.subscription_ids;
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<uint32_t>{11, 22});
}

TEST_CASE("invalid filters and unsubscribe") {
    Harness h;
    TestClient s5(h, Version::V5), s3(h, Version::V311), p(h, Version::V311);
    s5.connect("s5");
    s3.connect("s3");
    p.connect("p");
    CHECK(s5.subscribe("a/#/b", 0).reasons == std::vector<uint8_t>{rc::TopicFilterInvalid});
    CHECK(s3.subscribe("a+", 0).reasons == std::vector<uint8_t>{0x80});
    s5.subscribe("u/v", 0);
    Unsubscribe u;
    u.packet_id = 3;
    u.filters = {"u/v", "never"};
    s5.send(u);
    auto ua = s5.take_one<Unsuback>();
    CHECK(ua.reasons == std::vector<uint8_t>{rc::Success, rc::NoSubscriptionExisted});
    p.publish("u/v", "x");
    CHECK(s5.publishes().empty());
}

TEST_CASE("a filter repeated in one SUBSCRIBE is sent its retained messages once, at the last one's QoS") {
    Harness h;
    TestClient p(h, Version::V5), s(h, Version::V5);
    p.connect("p");
    for (int i = 0; i < 20; ++i) p.publish("r/" + std::to_string(i), "x", 1, true);
    s.connect("s");
    Subscribe sub;
    sub.packet_id = 3;
    for (int i = 0; i < 500; ++i) sub.topics.push_back({"r/#", uint8_t(i == 499 ? 0 : 1), false, false, 0});
    s.send(sub);
    auto got = s.take();
    REQUIRE(got.size() == 1 + 20);   // the SUBACK, then each retained message once
    CHECK(std::get<Suback>(got[0]).reasons.size() == 500);
    for (size_t i = 1; i < got.size(); ++i) CHECK(std::get<Publish>(got[i]).qos == 0);
}

TEST_CASE("retained: set, replace, delete, deliver per retain handling") {
    Harness h;
    TestClient p(h, Version::V5);
    p.connect("p");
    p.publish("r/a", "one", 1, true);
    p.publish("r/a", "two", 1, true);   // replaces
    p.publish("r/b", "bee", 0, true);
    p.publish("r/b", "", 0, true);      // deletes
    CHECK(h.persist.count("retained_set r/a") == 2);
    CHECK(h.persist.count("retained_clear r/b") == 1);

    TestClient s(h, Version::V5);
    s.connect("s");
    s.subscribe("r/#", 1);
    auto after = s.extra();
    REQUIRE(after.size() == 1);
    auto& m = std::get<Publish>(after[0]);
    CHECK(m.topic == "r/a");
    CHECK(text(m.payload) == "two");
    CHECK(m.retain);
    CHECK(m.qos == 1);
    s.ack(PacketType::Puback, m.packet_id);

    s.subscribe("r/#", 1, 2, 0, 1);   // rh=1, not new: nothing
    CHECK(s.extra().empty());
    s.subscribe("r/a", 1, 3, 0, 2);   // rh=2: never
    CHECK(s.extra().empty());
    s.subscribe("r/+", 0, 4, 0, 1);   // rh=1 and new
    CHECK(s.extra().size() == 1);

    // A live retained publish goes out with retain cleared unless retain-as-published.
    TestClient rap(h, Version::V5);
    rap.connect("rap");
    rap.subscribe("r/c", 0, 1, 0, 0, false, true);
    p.publish("r/c", "live", 0, true);
    auto plain = s.publishes();
    REQUIRE(plain.size() == 1);
    CHECK_FALSE(plain[0].retain);
    auto kept = rap.publishes();
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].retain);
}

TEST_CASE("no local") {
    Harness h;
    TestClient a(h, Version::V5);
    a.connect("a");
    a.subscribe("t", 0, 1, 0, 0, /*no_local=*/true);
    a.publish("t", "mine");
    CHECK(a.publishes().empty());
}

TEST_CASE("PUBACK is held until the durable ticket covers the message") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s", false);   // persistent: its queue writes out_enqueue
    s.subscribe("d", 1);
    p.connect("p");
    h.persist.durable = h.persist.last_ticket;
    p.publish("d", "x", 1, false, 5);
    uint64_t needed = h.persist.last_ticket;
    CHECK(needed > h.persist.durable);
    CHECK(p.take().empty());
    h.broker->on_pass_end();
    CHECK(p.take().empty());   // not yet durable
    h.persist.durable = needed - 1;
    h.broker->on_durable();
    CHECK(p.take().empty());
    h.persist.durable = needed;
    h.broker->on_durable();
    auto ack = p.take_one<Ack>();
    CHECK(ack.packet_id == 5);
    // The subscriber got the message immediately; only the publisher's ack waits.
    CHECK(s.publishes().size() == 1);
}

// A power cut loses what is not durable. Each QoS 2 packet that lets the
// other side hold or free a packet id therefore waits for the record that
// says so: the PUBLISH to a persistent subscriber for its in-flight state
// (else it would come back queued and go out under another id), PUBREL for
// the Pubrel state (else the PUBLISH would be resent after the receiver
// freed the id), PUBCOMP for the removal of the inbound id (else a new
// message under that id would be taken for a retransmission and dropped).
TEST_CASE("QoS 2: PUBLISH, PUBREL and PUBCOMP wait for the records that make their packet ids safe") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s", false);
    s.subscribe("q2", 2);
    p.connect("p", false);
    h.persist.durable = h.persist.last_ticket;

    p.publish("q2", "m", 2, false, 4);
    CHECK(s.take().empty());   // its out_state(Inflight) is not durable yet
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(p.take_one<Ack>().type == PacketType::Pubrec);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    const uint16_t id = got[0].packet_id;
    CHECK(h.persist.count("out_state s") == 1);

    s.ack(PacketType::Pubrec, id);
    CHECK(s.take().empty());   // PUBREL waits for out_state(Pubrel)
    s.ack(PacketType::Pubrec, id);   // a repeated PUBREC waits for the same record
    CHECK(s.take().empty());
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto rels = s.take_all<Ack>();
    REQUIRE(rels.size() == 2);
    CHECK(rels[0].type == PacketType::Pubrel);
    CHECK(rels[0].packet_id == id);

    p.ack(PacketType::Pubrel, 4);
    CHECK(p.take().empty());   // PUBCOMP waits for qos2_in_remove
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(p.take_one<Ack>().type == PacketType::Pubcomp);

    // A reconnect before the Pubrel state is durable: the resent PUBREL waits too.
    s.ack(PacketType::Pubcomp, id);
    p.publish("q2", "n", 2, false, 5);
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    p.take();
    got = s.publishes();
    REQUIRE(got.size() == 1);
    s.ack(PacketType::Pubrec, got[0].packet_id);
    CHECK(s.take().empty());
    s.transport_gone();
    TestClient s2(h, Version::V311);
    s2.send(resume("s"));
    CHECK(s2.take().empty());   // the CONNACK waits for the session's record, the PUBREL behind it
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto back = s2.take();
    REQUIRE(back.size() == 2);
    CHECK(std::holds_alternative<Connack>(back[0]));
    CHECK(std::get<Ack>(back[1]).type == PacketType::Pubrel);
    CHECK(std::get<Ack>(back[1]).packet_id == got[0].packet_id);
}

TEST_CASE("a held QoS 2 PUBLISH counts as sent when it goes out, not if its connection goes first") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s", false);
    s.subscribe("q2", 2);
    p.connect("p");
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    s.take();
    const uint64_t before = h.broker->stats().messages_out, bytes_before = h.broker->stats().publish_bytes_out;
    p.publish("q2", "held", 2, false, 4);
    CHECK(s.take().empty());   // held for its out_state(Inflight)
    CHECK(h.broker->stats().messages_out == before);
    s.transport_gone();        // gone before it went out: never sent on that connection
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(h.broker->stats().messages_out == before);
    CHECK(h.broker->stats().publish_bytes_out == bytes_before);

    TestClient s2(h, Version::V311);
    s2.send(resume("s"));
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto back = s2.take();   // CONNACK, then the PUBLISH: sent now, once
    REQUIRE(back.size() == 2);
    CHECK(std::holds_alternative<Publish>(back[1]));
    CHECK(h.broker->stats().messages_out == before + 1);
    CHECK(h.broker->stats().publish_bytes_out == bytes_before + 4);
}

// The same answers on a connection that replaced the one the records were
// written for: nothing is held for the new connection, yet its PUBREC or
// PUBCOMP still depends on those records (and the CONNACK, on its session's).
TEST_CASE("QoS 2: a PUBREC or PUBCOMP repeated on a new connection waits for the records of the first") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient p(h, Version::V311);
    p.connect("p", false);
    h.persist.durable = h.persist.last_ticket;
    p.publish("q", "m", 2, false, 4);
    CHECK(p.take().empty());   // the PUBREC waits for qos2_in_put
    p.transport_gone();
    TestClient p2(h, Version::V311);
    p2.send(resume("p"));
    p2.publish("q", "m", 2, false, 4);   // the client's resend, before its CONNACK came
    CHECK(p2.take().empty());
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto back = p2.take();
    REQUIRE(back.size() == 2);
    CHECK(std::holds_alternative<Connack>(back[0]));
    CHECK(std::get<Ack>(back[1]).type == PacketType::Pubrec);

    p2.ack(PacketType::Pubrel, 4);
    CHECK(p2.take().empty());   // the PUBCOMP waits for qos2_in_remove
    p2.transport_gone();
    TestClient p3(h, Version::V311);
    p3.send(resume("p"));
    p3.ack(PacketType::Pubrel, 4);   // resent: the id is gone from memory already
    CHECK(p3.take().empty());
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    back = p3.take();
    REQUIRE(back.size() == 2);
    CHECK(std::holds_alternative<Connack>(back[0]));
    CHECK(std::get<Ack>(back[1]).type == PacketType::Pubcomp);
}

// A refused removal must not free the id (see release_inbound), and closing
// the client would have one that reconnects at once resend in a loop for as
// long as the store refuses: the PUBCOMP waits, and goes once the removal is
// stored, on a tick, even while the store refuses new work.
TEST_CASE("QoS 2: a removal of the inbound id the store refuses holds the PUBCOMP until it is stored") {
    for (const AppendStatus why : {AppendStatus::IoError, AppendStatus::DiskFull}) {
        CAPTURE(int(why));
        Harness h;
        TestClient p(h, Version::V5);
        Properties keep;
        keep.session_expiry = 300;
        p.connect("p", false, 0, keep);
        p.publish("q2", "m", 2, false, 4);
        p.publish("q2", "n", 2, false, 5);
        p.publish("q2", "o", 2, false, 6);
        for (auto& pk : p.take()) CHECK(std::get<Ack>(pk).type == PacketType::Pubrec);
        h.persist.refuse = {"qos2_in_remove"};
        h.persist.refuse_with = why;
        h.persist.is_full = true;
        p.ack(PacketType::Pubrel, 4);
        p.ack(PacketType::Pubrel, 4);   // sent twice: still one PUBCOMP
        h.persist.refuse = {"qos2_in_remove p 4"};
        p.ack(PacketType::Pubrel, 5);   // its removal would go in, but it waits behind 4
        h.broker->on_tick(100);
        h.broker->on_tick(200);
        CHECK(p.take().empty());
        CHECK(!p.closed());
        CHECK(h.persist.count("qos2_in_remove p 5") == 0);
        h.persist.refuse.clear();   // the reserve has room again, the store still refuses new work
        h.broker->on_tick(300);
        auto back = p.take();
        REQUIRE(back.size() == 2);
        CHECK(std::get<Ack>(back[0]).packet_id == 4);
        CHECK(std::get<Ack>(back[1]).packet_id == 5);
        for (auto& pk : back) {
            CHECK(std::get<Ack>(pk).type == PacketType::Pubcomp);
            CHECK(std::get<Ack>(pk).reason == rc::Success);
        }
        CHECK(h.persist.count("qos2_in_remove p 4") == 1);
        h.broker->on_tick(400);
        CHECK(p.take().empty());

        // Waiting when the connection goes: the PUBREL stays received, the
        // PUBCOMP goes on the next connection (the client's PUBREL sent
        // again is the same one).
        h.persist.refuse = {"qos2_in_remove"};
        p.ack(PacketType::Pubrel, 6);
        CHECK(p.take().empty());
        p.transport_gone();
        h.broker->on_tick(500);
        TestClient again(h, Version::V5);
        again.connect("p", false, 0, keep);
        again.ack(PacketType::Pubrel, 6);
        h.broker->on_tick(600);
        CHECK(again.take().empty());
        h.persist.refuse.clear();
        h.broker->on_tick(700);
        auto comp = again.take_one<Ack>();
        CHECK(comp.type == PacketType::Pubcomp);
        CHECK(comp.packet_id == 6);
        CHECK(comp.reason == rc::Success);
        h.broker->on_tick(800);
        CHECK(again.take().empty());

        // Room back before the client sends its PUBREL again: still one
        // PUBCOMP, the answer to that PUBREL (one sent before it would free
        // the id, and the second, 0x92, could land on a new flow under it).
        h.persist.is_full = false;
        again.publish("q2", "r", 2, false, 9);
        CHECK(again.take_one<Ack>().reason < 0x80);   // held: 0x10, nobody subscribes
        h.persist.refuse = {"qos2_in_remove"};
        again.ack(PacketType::Pubrel, 9);
        again.transport_gone();
        h.persist.refuse.clear();
        TestClient third(h, Version::V5);
        third.connect("p", false, 0, keep);
        h.broker->on_tick(900);
        CHECK(third.take().empty());
        third.ack(PacketType::Pubrel, 9);
        comp = third.take_one<Ack>();
        CHECK(comp.type == PacketType::Pubcomp);
        CHECK(comp.packet_id == 9);
        CHECK(comp.reason == rc::Success);
        h.broker->on_tick(1000);
        CHECK(third.take().empty());
    }
}

// A client may not reuse an id before its PUBCOMP, but a bridge does (its
// PUBREL closes a flow the local session may hold open, and the new message
// follows at once): a PUBLISH under an id whose PUBCOMP waits is a new
// message, never taken for a retransmission (acknowledged and dropped).
TEST_CASE("QoS 2: a PUBLISH under an id whose PUBCOMP waits is a new message, refused while the removal is") {
    for (const AppendStatus why : {AppendStatus::IoError, AppendStatus::DiskFull}) {
        CAPTURE(int(why));
        Harness h;
        TestClient s(h, Version::V5), b(h, Version::V5);
        s.connect("s");
        s.subscribe("t", 2);
        Properties keep;
        keep.session_expiry = 300;
        b.connect("$bridge-x", false, 0, keep);
        b.publish("t", "old", 2, false, 7);
        CHECK(b.take_one<Ack>().type == PacketType::Pubrec);
        CHECK(s.publishes().size() == 1);

        h.persist.refuse = {"qos2_in_remove"};
        h.persist.refuse_with = why;
        b.ack(PacketType::Pubrel, 7);
        b.publish("t", "new", 2, false, 7);
        Ack a = b.take_one<Ack>();
        CHECK(a.type == PacketType::Pubrec);
        CHECK(a.packet_id == 7);
        CHECK(a.reason == rc::QuotaExceeded);   // refused, not taken for a resend
        CHECK(s.take().empty());

        // After a reconnect too, and as a DUP with no PUBREL before it: once
        // the removal goes in, the message is routed.
        b.transport_gone();
        TestClient b2(h, Version::V5);
        b2.connect("$bridge-x", false, 0, keep);
        h.persist.refuse.clear();
        Publish dup;
        dup.topic = "t";
        const std::string_view body = "new";
        dup.payload = bytes_of(body);
        dup.qos = 2;
        dup.dup = true;
        dup.packet_id = 7;
        b2.send(dup);
        // No PUBCOMP for the PUBREL of the earlier connection: nobody waits
        // for it on this one (a bridge would pass it on upstream).
        a = b2.take_one<Ack>();
        CHECK(a.type == PacketType::Pubrec);
        CHECK(a.reason == rc::Success);
        auto got = s.publishes();
        REQUIRE(got.size() == 1);
        CHECK(text(got[0].payload) == "new");
        CHECK(h.persist.count("qos2_in_put $bridge-x 7") == 2);
    }
}

// After a restart or a power cut lost the removal behind a bridge's own
// local PUBREL, the upstream's resend of the new message comes with no
// PUBREL before it, under an id the session still holds for the old one.
// The id keeps a digest of its message: a PUBLISH that carries another is a
// new message (routed), one that carries the same is a resend (not routed
// again), and an id recovered without a digest (an older hato's) keeps the
// old rule, a resend.
namespace {
void send_qos2(TestClient& c, std::string_view body, uint16_t id, bool dup) {
    Publish p;
    p.topic = "t";
    p.payload = bytes_of(body);
    p.qos = 2;
    p.dup = dup;
    p.packet_id = id;
    c.send(p);
}
}  // namespace

TEST_CASE("QoS 2: a PUBLISH under an open id that carries another message is a new one") {
    auto publish = [](TestClient& c, std::string_view body, uint16_t id) {
        send_qos2(c, body, id, true);
        Ack a = c.take_one<Ack>();
        CHECK(a.type == PacketType::Pubrec);
        CHECK(a.packet_id == id);
        return a.reason;
    };
    auto bodies = [](TestClient& s) {
        std::vector<std::string> out;
        for (const Publish& p : s.publishes()) out.push_back(text(p.payload));
        return out;
    };
    Harness h;
    RecoveredSession rs;
    rs.client_id = "dev";
    rs.expiry_s = 300;
    rs.qos2_in = {{5, message_digest("t", bytes_of("old"), false)},
                  {6, 0}};
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    TestClient s(h, Version::V5), dev(h, Version::V5);
    s.connect("s");
    s.subscribe("t", 0);   // no flow of its own to hold deliveries back
    Properties keep;
    keep.session_expiry = 300;
    CHECK(dev.connect("dev", false, 0, keep).session_present);

    CHECK(publish(dev, "old", 5) == rc::Success);   // the resend of what id 5 holds
    CHECK(bodies(s).empty());
    CHECK(publish(dev, "new", 5) == rc::Success);
    CHECK(bodies(s) == std::vector<std::string>{"new"});
    CHECK(h.persist.count("qos2_in_remove dev 5") == 1);   // the old flow's, before the new one's put
    CHECK(h.persist.count("qos2_in_put dev 5 digest=" + std::to_string(message_digest("t", bytes_of("new"), false))) ==
          1);
    CHECK(publish(dev, "new", 5) == rc::Success);   // now the resend of "new"
    CHECK(bodies(s).empty());
    CHECK(publish(dev, "any", 6) == rc::Success);   // no digest: a resend, as before
    CHECK(bodies(s).empty());

    // Refused while the store refuses the old flow's removal; the id keeps
    // the message it holds.
    h.persist.refuse = {"qos2_in_remove"};
    CHECK(publish(dev, "newer", 5) == rc::QuotaExceeded);
    CHECK(bodies(s).empty());
    h.persist.refuse.clear();
    CHECK(publish(dev, "new", 5) == rc::Success);
    CHECK(bodies(s).empty());
    CHECK(publish(dev, "newer", 5) == rc::Success);
    CHECK(bodies(s) == std::vector<std::string>{"newer"});

    dev.ack(PacketType::Pubrel, 5);
    Ack comp = dev.take_one<Ack>();
    CHECK(comp.type == PacketType::Pubcomp);
    CHECK(comp.reason == rc::Success);

    // On one connection, as many ids reused as the receive maximum allows
    // never count twice against it.
    for (int round = 0; round < 3; ++round)
        for (uint16_t id = 100; id < 100 + 20; ++id)
            CHECK(publish(dev, "r" + std::to_string(round) + "/" + std::to_string(id), id) == rc::Success);
    CHECK(bodies(s).size() == 60);
    CHECK_FALSE(dev.closed());
}

// Receive Maximum counts the QoS 2 flows the client opened on this
// connection: an id held from an earlier one takes a slot once its PUBLISH
// is sent again here, and frees one (PUBREL, or a new message under it) only
// if it took one.
TEST_CASE("QoS 2: ids held from an earlier connection count against Receive Maximum once sent again") {
    auto publish = [](TestClient& c, std::string_view body, uint16_t id) { send_qos2(c, body, id, false); };
    Config cfg;
    cfg.receive_maximum = 2;
    Harness h(cfg);
    RecoveredSession rs;
    rs.client_id = "dev";
    rs.expiry_s = 300;
    const uint64_t old_digest = message_digest("t", bytes_of("old"), false);
    rs.qos2_in = {{5, old_digest}, {6, old_digest}, {7, old_digest}};
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    TestClient dev(h, Version::V5);
    Properties keep;
    keep.session_expiry = 300;
    CHECK(dev.connect("dev", false, 0, keep).session_present);

    dev.ack(PacketType::Pubrel, 6);   // took no slot here: frees none
    CHECK(dev.take_one<Ack>().type == PacketType::Pubcomp);
    publish(dev, "old", 7);           // sent again: one slot
    CHECK(dev.take_one<Ack>().type == PacketType::Pubrec);
    publish(dev, "new", 5);           // a new message: one slot (the old flow under 5 took none)
    CHECK(dev.take_one<Ack>().type == PacketType::Pubrec);
    CHECK_FALSE(dev.closed());
    publish(dev, "b", 2);             // a third: over the maximum of 2
    CHECK(dev.closed());
}

// Held QoS 2 ids outlive connections: without a per-session bound a v3.x
// client (no Receive Maximum) or a v5 one that reconnects could store the
// whole id space. The session's queue bound caps them; at the cap, ids an
// earlier connection left (a client that lost its state) make room.
TEST_CASE("QoS 2: ids waiting PUBREL are bounded per session; ids earlier connections left make room") {
    Config cfg;
    cfg.receive_maximum = 2;
    cfg.max_queued_messages = 3;
    Harness h(cfg);
    Properties keep;
    keep.session_expiry = 300;

    TestClient old(h, Version::V311);
    CHECK_FALSE(old.connect("v3", false).session_present);
    for (uint16_t id = 1; id <= 3; ++id) {
        send_qos2(old, "m", id, false);
        CHECK(old.take_one<Ack>().type == PacketType::Pubrec);
    }
    old.ack(PacketType::Pubrel, 1);   // a finished flow frees its place
    CHECK(old.take_one<Ack>().type == PacketType::Pubcomp);
    send_qos2(old, "m", 4, false);
    CHECK(old.take_one<Ack>().type == PacketType::Pubrec);
    CHECK_FALSE(old.closed());
    send_qos2(old, "m", 2, true);     // a resend of a held one: still fine
    CHECK(old.take_one<Ack>().type == PacketType::Pubrec);
    send_qos2(old, "m", 5, false);    // a fourth id held by this one connection
    CHECK(old.closed());

    // The client lost its state and comes back: ids 2, 3, 4 were left.
    TestClient again(h, Version::V311);
    CHECK(again.connect("v3", false).session_present);
    for (uint16_t id = 7; id <= 9; ++id) {
        send_qos2(again, "n", id, false);
        CHECK(again.take_one<Ack>().type == PacketType::Pubrec);
    }
    CHECK_FALSE(again.closed());
    send_qos2(again, "n", 10, false);   // now all three are this connection's
    CHECK(again.closed());

    // v5: Receive Maximum bounds one connection; reconnecting leaves ids behind, which make room.
    for (int round = 0; round < 2; ++round) {
        TestClient dev(h, Version::V5);
        dev.connect("dev", false, 0, keep);
        for (uint16_t id = 1; id <= 2; ++id) {
            send_qos2(dev, "m", uint16_t(id + 10 * round), false);
            CHECK(dev.take_one<Ack>().type == PacketType::Pubrec);
        }
        CHECK_FALSE(dev.closed());
        dev.transport_gone();
    }
}

// A power cut after a SUBACK whose record was not durable would bring the
// session back (session present) without the subscription: the client
// would not subscribe again and miss what follows. So the SUBACK waits for
// it, and so does everything behind it: the retained messages (a client may
// drop a PUBLISH for a subscription not yet acknowledged) and live ones.
// The CONNACK says whether a session exists: a power cut must not take back
// one it announced, nor bring back one it said was gone (with its queue).
TEST_CASE("CONNACK waits for the records of its CONNECT; a CONNECT that writes nothing is answered at once") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311);
    s.send(resume("s"));
    CHECK(s.take().empty());   // a new persistent session: session_put
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(std::holds_alternative<Connack>(s.take().at(0)));
    s.transport_gone();

    TestClient clean(h, Version::V311);
    Connect fresh = resume("s");
    fresh.clean_start = true;   // discards the stored session: session_remove
    clean.send(fresh);
    CHECK(clean.take().empty());
    CHECK(h.persist.count("session_remove s") == 1);
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK_FALSE(std::get<Connack>(clean.take().at(0)).session_present);
    clean.disconnect();

    TestClient other(h, Version::V311);
    Connect plain = resume("other");
    plain.clean_start = true;   // nothing stored, nothing to wait for
    other.send(plain);
    auto at_once = other.take();
    REQUIRE(at_once.size() == 1);
    CHECK(std::holds_alternative<Connack>(at_once[0]));
}

// A client may write CONNECT ... DISCONNECT in one go. Its answers were
// owed before the DISCONNECT arrived: the transport closes only after the
// held ones went out, in order, and a DISCONNECT the broker sends (v5: a
// protocol error) goes after them.
TEST_CASE("a connection closed while its answers are held is sent them first, then closed") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311);
    std::vector<uint8_t> bytes;
    encode(resume("s"), Version::V311, bytes);
    Subscribe sub;
    sub.packet_id = 1;
    sub.topics.push_back({"q", 1, false, false, 0});
    encode(sub, Version::V311, bytes);
    Publish pub;
    pub.topic = "q";
    pub.qos = 1;
    pub.packet_id = 2;
    const uint8_t x = 'x';
    pub.payload = {&x, 1};
    encode(pub, Version::V311, bytes);
    encode(Pingreq{}, Version::V311, bytes);
    encode(Disconnect{}, Version::V311, bytes);
    s.send_raw(bytes);
    CHECK(s.take().empty());
    CHECK_FALSE(h.transport.closed.contains(s.id));   // owed a CONNACK still
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto got = s.take();
    REQUIRE(got.size() == 5);
    CHECK(std::holds_alternative<Connack>(got[0]));
    CHECK(std::get<Suback>(got[1]).packet_id == 1);
    CHECK(text(std::get<Publish>(got[2]).payload) == "x");   // its own message, matched by its subscription
    CHECK(std::get<Ack>(got[3]).type == PacketType::Puback);
    CHECK(std::get<Ack>(got[3]).packet_id == 2);
    CHECK(std::holds_alternative<Pingresp>(got[4]));
    CHECK(h.transport.closed.contains(s.id));

    // v5, a protocol error behind the held CONNACK: never a DISCONNECT
    // first (MQTT-3.2.0-1), but the CONNACK, then DISCONNECT with its reason.
    TestClient e(h, Version::V5);
    Connect c5 = resume("e");
    c5.version = Version::V5;
    c5.props.session_expiry = 60;
    e.send(c5);
    Properties with_id;
    with_id.subscription_ids.push_back(3);
    e.publish("t", "x", 0, false, 0, with_id);   // a protocol error before the CONNACK went out
    CHECK(e.take().empty());
    CHECK_FALSE(h.transport.closed.contains(e.id));
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    got = e.take();
    REQUIRE(got.size() == 2);
    CHECK(std::holds_alternative<Connack>(got[0]));
    CHECK(std::get<Disconnect>(got[1]).reason == rc::ProtocolError);
    CHECK(h.transport.closed.contains(e.id));
}

// A sync that keeps failing never makes the held packets durable: the
// connection is closed all the same, and they are never sent.
TEST_CASE("a closed connection whose held answers never become durable is closed after a bound") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311);
    std::vector<uint8_t> bytes;
    encode(resume("s"), Version::V311, bytes);
    encode(Disconnect{}, Version::V311, bytes);
    s.send_raw(bytes);
    h.broker->on_tick(4000);
    CHECK_FALSE(h.transport.closed.contains(s.id));
    h.broker->on_tick(6000);
    CHECK(h.transport.closed.contains(s.id));
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(s.take().empty());   // closed: too late for the CONNACK
}

TEST_CASE("SUBACK and UNSUBACK wait for their records, and the output behind a held SUBACK waits its turn") {
    Harness h;
    TestClient p(h, Version::V311), s(h, Version::V311), c(h, Version::V311);
    p.connect("p");
    p.publish("r", "old", 1, true, 1);   // retained
    p.take();
    s.connect("s", false);
    c.connect("c");   // clean: keeps nothing, waits for nothing
    h.persist.auto_durable = false;
    h.persist.durable = h.persist.last_ticket;

    Subscribe sub;
    sub.packet_id = 7;
    sub.topics.push_back({"r", 1, false, false, 0});
    s.send(sub);
    const uint64_t needed = h.persist.last_ticket;
    CHECK(needed > h.persist.durable);
    p.publish("r", "live");          // QoS 0, matched by the new subscription
    s.send(Pingreq{});               // a PINGRESP waits too
    CHECK(s.take().empty());
    h.broker->on_durable();   // nothing new is durable
    CHECK(s.take().empty());
    h.persist.durable = needed;
    h.broker->on_durable();
    auto got = s.take();
    REQUIRE(got.size() == 4);
    CHECK(std::get<Suback>(got[0]).packet_id == 7);
    CHECK(text(std::get<Publish>(got[1]).payload) == "old");
    CHECK(std::get<Publish>(got[1]).retain);
    CHECK(text(std::get<Publish>(got[2]).payload) == "live");
    CHECK(std::holds_alternative<Pingresp>(got[3]));
    // Once the SUBACK is out, nothing is held any more.
    p.publish("r", "after");
    CHECK(s.publishes().size() == 1);

    CHECK(c.subscribe("r", 0, 3).reasons == std::vector<uint8_t>{0});   // at once

    Unsubscribe u;
    u.packet_id = 8;
    u.filters.push_back("r");
    s.send(u);
    CHECK(s.take().empty());
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(s.take_one<Unsuback>().packet_id == 8);
}

// The hold ends with the packet that started it, whatever other clients
// (or the client itself) hold after it: under a steady QoS 1 load there is
// always a later PUBACK waiting, and output kept behind those would never
// catch up.
TEST_CASE("output held behind a CONNACK goes out with it, not after packets held later") {
    Harness h;
    TestClient b(h, Version::V311), first(h, Version::V311);
    b.connect("b", false);
    first.connect("a", false);
    first.subscribe("live", 0);
    first.transport_gone();
    h.persist.auto_durable = false;
    h.persist.durable = h.persist.last_ticket;
    TestClient a(h, Version::V311);
    a.send(resume("a"));
    const uint64_t connack = h.persist.last_ticket;
    b.publish("x", "1", 1, true, 1);   // a retained write: b's PUBACK is held after a's CONNACK
    a.publish("y", "2", 1, true, 2);   // and a's own PUBACK
    TestClient p(h, Version::V311);
    p.connect("p");
    CHECK(a.take().empty());
    h.persist.durable = connack;
    h.broker->on_durable();
    auto got = a.take();
    REQUIRE(got.size() == 1);
    CHECK(std::holds_alternative<Connack>(got[0]));
    CHECK(b.take().empty());   // still held
    p.publish("live", "now");
    CHECK(a.publishes().size() == 1);   // at once, though a's own PUBACK still waits
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(a.take_one<Ack>().packet_id == 2);
    CHECK(b.take_one<Ack>().packet_id == 1);
}

TEST_CASE("QoS 0 behind a held SUBACK is bounded like output: beyond twice max_output_bytes it is dropped") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    Harness h(cfg);
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s", false);
    s.subscribe("a", 0);
    p.connect("p");
    h.persist.auto_durable = false;
    h.persist.durable = h.persist.last_ticket;
    Subscribe sub;
    sub.packet_id = 2;
    sub.topics.push_back({"b", 0, false, false, 0});
    s.send(sub);
    const std::string payload(100, 'x');
    for (int i = 0; i < 50; ++i) p.publish("a", payload);
    CHECK(s.take().empty());
    CHECK(h.broker->stats().qos0_dropped > 0);
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto got = s.take();
    REQUIRE(!got.empty());
    CHECK(std::holds_alternative<Suback>(got[0]));
    CHECK(got.size() - 1 + h.broker->stats().qos0_dropped == 50);
    CHECK(got.size() - 1 <= 2 * 1000 / 100 + 1);
}

// A state record the store refuses (I/O error: state records use the
// reserve) must not let its packet out: a QoS 2 PUBLISH would come back
// queued after a power cut and go out again under another id, a PUBREL's
// message would be resent after the receiver freed the id.
TEST_CASE("QoS 2: a refused in-flight or Pubrel state keeps its packet back") {
    for (const AppendStatus why : {AppendStatus::IoError, AppendStatus::DiskFull}) {
        CAPTURE(int(why));
        Harness h;
        TestClient s(h, Version::V5), p(h, Version::V5);
        Properties keep;
        keep.session_expiry = 300;
        s.connect("s", false, 0, keep);
        s.subscribe("q2", 2);
        p.connect("p");
        h.persist.refuse = {"out_state s"};
        h.persist.refuse_with = why;
        p.publish("q2", "a", 2, false, 1);
        CHECK(s.take().empty());   // stays queued
        CHECK(h.broker->session_queue("s").messages == 1);
        h.persist.refuse.clear();
        h.persist.is_full = true;   // new work refused: the state records still draw on the reserve
        h.broker->on_tick(1000);   // tried again though nothing else happens
        auto got = s.publishes();
        REQUIRE(got.size() == 1);
        CHECK(text(got[0].payload) == "a");
        h.persist.is_full = false;
        p.publish("q2", "b", 2, false, 2);
        got.push_back(s.publishes().at(0));
        CHECK(text(got[1].payload) == "b");

        // No PUBREL without its record, and none overtakes one that waits:
        // b's record would go in, but its PUBREL waits behind a's.
        h.persist.refuse = {"out_state s 1 2"};
        s.ack(PacketType::Pubrec, got[0].packet_id);
        s.ack(PacketType::Pubrec, got[1].packet_id);
        h.persist.is_full = true;
        h.broker->on_tick(1100);
        CHECK(s.take().empty());
        CHECK(!s.closed());
        CHECK(h.persist.count("out_state s 2 2") == 0);
        h.persist.refuse.clear();
        h.broker->on_tick(1200);
        auto rel = s.take();
        REQUIRE(rel.size() == 2);
        CHECK(std::get<Ack>(rel[0]).type == PacketType::Pubrel);
        CHECK(std::get<Ack>(rel[0]).packet_id == got[0].packet_id);
        CHECK(std::get<Ack>(rel[1]).packet_id == got[1].packet_id);
        s.ack(PacketType::Pubcomp, got[0].packet_id);
        s.ack(PacketType::Pubcomp, got[1].packet_id);
        CHECK(h.broker->session_queue("s").messages == 0);
        h.persist.is_full = false;

        // Waiting when the connection goes: the PUBLISH is sent again after
        // the reconnect, and its new PUBREC gets the PUBREL.
        p.publish("q2", "c", 2, false, 3);
        const Publish c = s.publishes().at(0);
        h.persist.refuse = {"out_state s"};
        s.ack(PacketType::Pubrec, c.packet_id);
        CHECK(s.take().empty());
        s.transport_gone();
        h.broker->on_tick(1300);
        h.persist.refuse.clear();
        TestClient again(h, Version::V5);
        again.connect("s", false, 0, keep);
        std::vector<Publish> resent;
        for (auto& pk : again.extra())
            if (auto* pub = std::get_if<Publish>(&pk)) resent.push_back(*pub);
        REQUIRE(resent.size() == 1);
        CHECK(resent[0].dup);
        CHECK(text(resent[0].payload) == "c");
        h.broker->on_tick(1400);
        CHECK(again.take().empty());   // nothing answered for the gone connection
        again.ack(PacketType::Pubrec, resent[0].packet_id);
        CHECK(again.take_one<Ack>().type == PacketType::Pubrel);
    }
}

TEST_CASE("QoS 2 to a session that keeps nothing, and QoS 1, go out at once") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V311), q(h, Version::V311), p(h, Version::V311);
    s.connect("s");   // clean: nothing of its flows is stored
    s.subscribe("q2", 2);
    q.connect("q", false);   // persistent: QoS 1 is not held
    q.subscribe("q1", 1);
    p.connect("p");
    p.publish("q2", "m", 2, false, 4);
    p.publish("q1", "m", 1, false, 5);
    CHECK(s.publishes().size() == 1);
    CHECK(q.publishes().size() == 1);
}

TEST_CASE("back-pressure drops QoS 0 and holds QoS 1 until output drains") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    Harness h(cfg);
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    s.subscribe("bp", 1);
    p.connect("p");
    h.transport.queued[s.id] = 5000;
    p.publish("bp", "zero", 0);
    CHECK(h.broker->stats().qos0_dropped == 1);
    p.publish("bp", "one", 1);
    p.take();
    CHECK(s.publishes().empty());
    h.transport.queued[s.id] = 600;   // below the limit but above half: still held
    h.broker->on_pass_end();
    CHECK(s.publishes().empty());
    h.transport.queued[s.id] = 400;
    h.broker->on_tick(100);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "one");
}

TEST_CASE("in-flight window and queue limit") {
    Config cfg;
    cfg.max_inflight = 2;
    cfg.max_queued_messages = 2;
    Harness h(cfg);
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    s.subscribe("w", 1);
    p.connect("p");
    for (int i = 0; i < 5; ++i) p.publish("w", std::to_string(i), 1);
    auto got = s.publishes();
    REQUIRE(got.size() == 2);   // window
    CHECK(h.broker->stats().queued_dropped == 1);   // 2 in flight + 2 queued, the 5th dropped
    CHECK(got[0].packet_id != got[1].packet_id);
    s.ack(PacketType::Puback, got[0].packet_id);
    auto next = s.publishes();
    REQUIRE(next.size() == 1);
    CHECK(text(next[0].payload) == "2");
    s.ack(PacketType::Puback, got[1].packet_id);
    s.ack(PacketType::Puback, next[0].packet_id);
    auto last = s.publishes();
    REQUIRE(last.size() == 1);
    CHECK(text(last[0].payload) == "3");
}

TEST_CASE("persistence full: v5 quota exceeded, v3 closed") {
    Harness h;
    TestClient v5(h, Version::V5), v3(h, Version::V311);
    v5.connect("a");
    v3.connect("b");
    h.persist.is_full = true;
    v5.publish("t", "x", 1);
    CHECK(v5.take_one<Ack>().reason == rc::QuotaExceeded);
    v3.publish("t", "x", 1);
    CHECK(v3.closed());
}
