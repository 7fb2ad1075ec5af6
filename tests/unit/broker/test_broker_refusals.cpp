// What the broker answers when the store refuses a write: never a success.
// QoS 1/2 PUBLISH gets 0x97 (v5) or a disconnect (v3), SUBSCRIBE 0x97 /
// 0x80 for that filter, a new session CONNACK 0x97 / 0x03; each refusal
// counts in Stats.
#include "broker/message.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// An offline persistent subscriber "s" on `filter` at QoS 2.
void offline_subscriber(Harness& h, std::string_view filter) {
    TestClient s(h, Version::V311);
    s.connect("s", false);
    s.subscribe(filter, 2);
    s.transport_gone();
}

Properties persistent() {
    Properties p;
    p.session_expiry = 1000;
    return p;
}

}  // namespace

TEST_CASE("refused enqueue: v5 PUBACK and PUBREC 0x97, nothing queued, counted") {
    Harness h;
    offline_subscriber(h, "t/#");
    TestClient p(h, Version::V5);
    p.connect("p", true, 0, persistent());
    h.persist.refuse = {"out_enqueue"};
    p.publish("t/1", "one", 1);
    Ack a = p.take_one<Ack>();
    CHECK(a.type == PacketType::Puback);
    CHECK(a.reason == rc::QuotaExceeded);
    p.publish("t/2", "two", 2);
    a = p.take_one<Ack>();
    CHECK(a.type == PacketType::Pubrec);
    CHECK(a.reason == rc::QuotaExceeded);
    CHECK(h.persist.count("qos2_in_put") == 0);   // the flow ended with the refusal
    CHECK(h.broker->stats().store_refusals == 2);
    CHECK(h.broker->stats().store_refused_quota == 2);

    // Space is back: accepted again, and only what was accepted is delivered.
    h.persist.refuse.clear();
    p.publish("t/3", "three", 1);
    CHECK(p.take_one<Ack>().reason == rc::Success);
    TestClient s(h, Version::V311);
    CHECK(s.connect("s", false).session_present);
    std::vector<std::string> got;
    for (auto& pk : s.extra()) got.push_back(text(std::get<Publish>(pk).payload));
    CHECK(got == std::vector<std::string>{"three"});
}

TEST_CASE("a QoS 1/2 message the store admits is written whole: every queue and its QoS 2 state") {
    Harness h;
    offline_subscriber(h, "t/#");
    TestClient s2(h, Version::V311);
    s2.connect("s2", false);
    s2.subscribe("t/#", 2);
    s2.transport_gone();
    TestClient p(h, Version::V5);
    p.connect("p", true, 0, persistent());
    p.publish("t/0", "zero", 0);
    CHECK(h.persist.admitted_calls.empty());   // QoS 0: nothing admitted, metered as ever
    p.publish("t/2", "two", 2, true);
    CHECK(p.take_one<Ack>().reason == rc::Success);
    CHECK_FALSE(h.persist.admitted);
    std::vector<std::string> want{"retained_set t/2", "out_enqueue s 1 t/2 ids= share=",
                                  "out_enqueue s2 1 t/2 ids= share=",
                                  "qos2_in_put p 1 digest=" + std::to_string(message_digest("t/2", bytes_of("two"), true))};
    CHECK(h.persist.admitted_calls == want);
    // Refused up front: nothing is admitted, nothing written.
    h.persist.admitted_calls.clear();
    h.persist.is_full = true;
    p.publish("t/1", "one", 1);
    CHECK(p.take_one<Ack>().reason == rc::QuotaExceeded);
    CHECK(h.persist.admitted_calls.empty());
}

TEST_CASE("refused enqueue: a v3 publisher is disconnected without an ack") {
    Harness h;
    offline_subscriber(h, "t");
    TestClient p(h, Version::V311);
    p.connect("p");
    h.persist.refuse = {"out_enqueue"};
    p.publish("t", "x", 1);
    CHECK(p.take().empty());
    CHECK(p.closed());
    TestClient p2(h, Version::V311);
    p2.connect("p2");
    p2.publish("t", "y", 2);
    CHECK(p2.take().empty());
    CHECK(p2.closed());
    CHECK(h.broker->stats().store_refusals == 2);
}

TEST_CASE("the store full up front: v5 0x97, v3 disconnect, QoS 0 still flows") {
    Harness h;
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    sub.subscribe("t", 0);
    h.persist.is_full = true;
    TestClient p(h, Version::V5);
    p.connect("p");
    p.publish("t", "q1", 1);
    CHECK(p.take_one<Ack>().reason == rc::QuotaExceeded);
    p.publish("t", "q0", 0);
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "q0");
    CHECK(h.broker->stats().store_refused_full == 1);
}

TEST_CASE("a message that can never be stored: v5 DISCONNECT 0x95, no ack") {
    Harness h;
    offline_subscriber(h, "t");
    TestClient p(h, Version::V5);
    p.connect("p");
    h.persist.refuse = {"out_enqueue"};
    h.persist.refuse_with = AppendStatus::TooLarge;
    p.publish("t", "huge", 1);
    auto d = p.take_one<Disconnect>();
    CHECK(d.reason == rc::PacketTooLarge);
    CHECK(p.closed());
    CHECK(h.broker->stats().store_refused_too_large == 1);
    // Nothing is poisoned: the next message is stored and acknowledged.
    h.persist.refuse.clear();
    TestClient p2(h, Version::V5);
    p2.connect("p2");
    p2.publish("t", "small", 1);
    CHECK(p2.take_one<Ack>().reason == rc::Success);
}

TEST_CASE("refused SUBSCRIBE: 0x97 (v5) / 0x80 (v3) for that filter, and not kept") {
    for (Version v : {Version::V5, Version::V311}) {
        CAPTURE(int(v));
        Harness h;
        TestClient s(h, v);
        s.connect("s", false, 0, v == Version::V5 ? persistent() : Properties{});
        h.persist.refuse = {"sub_put s b"};
        Subscribe sub;
        sub.packet_id = 7;
        sub.topics.push_back({"a", 1, false, false, 0});
        sub.topics.push_back({"b", 1, false, false, 0});
        s.send(sub);
        auto ack = s.take_one<Suback>();
        REQUIRE(ack.reasons.size() == 2);
        CHECK(ack.reasons[0] == 1);
        CHECK(ack.reasons[1] == (v == Version::V5 ? rc::QuotaExceeded : 0x80));
        CHECK(h.broker->stats().store_refusals == 1);
        TestClient p(h, Version::V311);
        p.connect("p");
        p.publish("b", "not subscribed", 0);
        p.publish("a", "subscribed", 0);
        auto got = s.publishes();
        REQUIRE(got.size() == 1);
        CHECK(text(got[0].payload) == "subscribed");
    }
}

TEST_CASE("refused new session: CONNACK 0x97 (v5) / 0x03 (v3); an existing one still gets in") {
    Harness h;
    TestClient old(h, Version::V311);
    old.connect("old", false);
    old.subscribe("t", 1);
    old.transport_gone();

    h.persist.refuse = {"session_put"};
    TestClient n5(h, Version::V5);
    Connack c = n5.connect("new5", false, 0, persistent());
    CHECK(c.reason == rc::QuotaExceeded);
    CHECK(n5.closed());
    TestClient n3(h, Version::V311);
    // The v3 return code on the wire is 0x03; the decoder maps it back.
    c = n3.connect("new3", false);
    CHECK(c.reason == rc::ServerUnavailable);
    CHECK(n3.closed());
    CHECK(h.broker->stats().store_refusals == 2);

    // A refused update of a session the store already holds does not keep
    // its client out (LogPersistence lets such updates use its reserve).
    TestClient back(h, Version::V311);
    c = back.connect("old", false);
    CHECK(c.reason == rc::Success);
    CHECK(c.session_present);
    CHECK_FALSE(back.closed());
}

TEST_CASE("a shared-group message handed to another member stays stored where the store refuses the copy") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5), p(h, Version::V5);
    a.connect("a", false, 0, persistent());
    b.connect("b", false, 0, persistent());
    p.connect("p");
    a.subscribe("$share/g/job", 1);
    b.subscribe("$share/g/job", 1);
    p.publish("job", "q1", 1);
    CHECK(p.take_one<Ack>().reason == rc::Success);
    auto ga = a.publishes(), gb = b.publishes();
    REQUIRE(ga.size() + gb.size() == 1);
    TestClient& holder = ga.empty() ? b : a;
    TestClient& other = ga.empty() ? a : b;
    const std::string holder_id = ga.empty() ? "b" : "a";
    const std::string other_id = ga.empty() ? "a" : "b";
    h.persist.refuse = {"out_enqueue " + other_id};
    holder.transport_gone();
    auto moved = other.publishes();   // still delivered, from memory
    REQUIRE(moved.size() == 1);
    CHECK(text(moved[0].payload) == "q1");
    CHECK(h.persist.count("refused out_enqueue " + other_id) == 1);
    CHECK(h.persist.count("out_done " + holder_id) == 0);   // its record is kept
}

TEST_CASE("a refused retained message does not replace the stored one") {
    Harness h;
    TestClient p(h, Version::V5);
    p.connect("p");
    p.publish("r", "old", 1, true);
    CHECK(p.take_one<Ack>().reason == rc::NoMatchingSubscribers);
    h.persist.refuse = {"retained_set"};
    p.publish("r", "new", 1, true);
    CHECK(p.take_one<Ack>().reason == rc::QuotaExceeded);
    TestClient s(h, Version::V5);
    s.connect("s");
    s.subscribe("r", 1);
    auto got = s.extra();
    REQUIRE(got.size() == 1);
    CHECK(text(std::get<Publish>(got[0]).payload) == "old");
}

TEST_CASE("a refused retained clear does not clear the stored one") {
    Harness h;
    TestClient p(h, Version::V5);
    p.connect("p");
    p.publish("r", "old", 0, true);
    h.persist.refuse = {"retained_clear"};
    p.publish("r", "", 0, true);   // QoS 0: no refusal to hear, and memory must still match the store
    h.persist.refuse.clear();
    TestClient s(h, Version::V5);
    s.connect("s");
    s.subscribe("r", 1);
    auto got = s.extra();
    REQUIRE(got.size() == 1);
    CHECK(text(std::get<Publish>(got[0]).payload) == "old");
}

// The UNSUBACK said Success with the removal refused: after a restart the
// subscription the client was told is gone came back.
TEST_CASE("refused UNSUBSCRIBE: v5 0x80 for that filter and kept; v3 disconnected, kept") {
    for (Version v : {Version::V5, Version::V311}) {
        CAPTURE(int(v));
        Harness h;
        TestClient s(h, v);
        s.connect("s", false, 0, v == Version::V5 ? persistent() : Properties{});
        s.subscribe("a", 0, 1);
        s.subscribe("b", 0, 2);
        h.persist.refuse = {"sub_remove s b"};
        Unsubscribe u;
        u.packet_id = 7;
        u.filters = {"a", "b"};
        s.send(u);
        if (v == Version::V5) {
            auto ack = s.take_one<Unsuback>();
            REQUIRE(ack.reasons.size() == 2);
            CHECK(ack.reasons[0] == rc::Success);
            CHECK(ack.reasons[1] == rc::UnspecifiedError);
        } else {
            CHECK(s.take().empty());
            CHECK(s.closed());
        }
        CHECK(h.persist.count("sub_remove s a") == 1);
        h.persist.refuse.clear();
        TestClient again(h, v);
        again.connect("s", false, 0, v == Version::V5 ? persistent() : Properties{});
        TestClient p(h, Version::V311);
        p.connect("p");
        p.publish("a", "unsubscribed", 0);
        p.publish("b", "still subscribed", 0);
        auto got = again.publishes();
        REQUIRE(got.size() == 1);
        CHECK(text(got[0].payload) == "still subscribed");
    }
}

// A clean start said session_present 0 with the old session's removal
// refused: after a restart the discarded session came back with its queue.
TEST_CASE("refused removal of a discarded or unstored session: CONNACK 0x97 (v5) / 0x03 (v3), the session stays") {
    for (Version v : {Version::V5, Version::V311}) {
        CAPTURE(int(v));
        Harness h;
        TestClient old(h, v);
        old.connect("s", false, 0, v == Version::V5 ? persistent() : Properties{});
        old.subscribe("t", 1);
        old.transport_gone();
        TestClient p(h, Version::V311);
        p.connect("p");
        p.publish("t", "queued", 1);

        h.persist.refuse = {"session_remove s"};
        TestClient fresh(h, v);
        Connack c = fresh.connect("s", true);
        CHECK(c.reason == (v == Version::V5 ? rc::QuotaExceeded : rc::ServerUnavailable));
        CHECK(fresh.closed());
        if (v == Version::V5) {   // resumed with expiry 0: the session would stop being stored
            TestClient brief(h, v);
            CHECK(brief.connect("s", false).reason == rc::QuotaExceeded);
        }

        h.persist.refuse.clear();
        TestClient back(h, v);
        c = back.connect("s", false, 0, v == Version::V5 ? persistent() : Properties{});
        CHECK(c.session_present);
        auto queued = back.extra();
        REQUIRE(queued.size() == 1);
        CHECK(text(std::get<Publish>(queued[0]).payload) == "queued");
    }
}
