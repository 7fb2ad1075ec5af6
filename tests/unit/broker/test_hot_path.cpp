// The PUBLISH hot path keeps state from one message to the next (the
// decoded PUBLISH is reused, a topic's matches are kept while the
// subscriptions do not change): none of it may leak into the next message.
#include "broker/route_cache.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

TEST_CASE("kept matches follow subscribe and unsubscribe on the same topic") {
    Harness h;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    p.connect("p");
    p.publish("t/1", "before");   // nobody subscribed: matched to nobody
    CHECK(s.publishes().empty());
    s.subscribe("t/1", 0);
    p.publish("t/1", "after");
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "after");
    Unsubscribe u;
    u.packet_id = 2;
    u.filters.push_back("t/1");
    s.send(u);
    s.take();
    p.publish("t/1", "gone");
    CHECK(s.publishes().empty());
}

TEST_CASE("kept matches are per publisher: No Local") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5);
    a.connect("a");
    b.connect("b");
    a.subscribe("n", 0, 1, 0, 0, /*no_local=*/true);
    b.subscribe("n", 0);
    a.publish("n", "from a");
    a.publish("n", "from a again");
    CHECK(a.publishes().empty());
    CHECK(b.publishes().size() == 2);
    b.publish("n", "from b");
    auto got = a.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "from b");
}

TEST_CASE("kept matches do not outlive a session") {
    Harness h;
    TestClient p(h, Version::V311);
    p.connect("p");
    {
        TestClient s(h, Version::V311);
        s.connect("s");
        s.subscribe("k", 0);
        p.publish("k", "1");
        CHECK(s.publishes().size() == 1);
        s.disconnect();
    }
    p.publish("k", "2");   // the clean session is gone: its slot is no receiver
    TestClient s2(h, Version::V311);
    s2.connect("s2");
    p.publish("k", "3");
    CHECK(s2.publishes().empty());
    CHECK(h.broker->stats().messages_out == 1);
}

TEST_CASE("shared group round robin with kept matches") {
    Harness h;
    TestClient m1(h, Version::V5), m2(h, Version::V5), p(h, Version::V5);
    m1.connect("m1");
    m2.connect("m2");
    p.connect("p");
    m1.subscribe("$share/g/w", 0);
    m2.subscribe("$share/g/w", 0);
    for (int i = 0; i < 6; ++i) p.publish("w", "x");
    CHECK(m1.publishes().size() == 3);
    CHECK(m2.publishes().size() == 3);
}

TEST_CASE("kept matches of many topics: interleaved, past the cache's bound, after a change") {
    Harness h;
    TestClient s(h, Version::V311), w(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    w.connect("w");
    p.connect("p");
    s.subscribe("m/+", 1);
    // Interleaved topics, more of them than the cache keeps: every one
    // reaches the subscriber, in order, twice over.
    const int topics = int(RouteCache::kMaxTopics) + 50;
    for (int round = 0; round < 2; ++round)
        for (int i = 0; i < topics; ++i) p.publish("m/" + std::to_string(i), std::to_string(i));
    auto got = s.publishes();
    REQUIRE(got.size() == size_t(2 * topics));
    for (int i = 0; i < 2 * topics; ++i) {
        CHECK(got[size_t(i)].topic == "m/" + std::to_string(i % topics));
        CHECK(text(got[size_t(i)].payload) == std::to_string(i % topics));
    }
    // A new subscription changes what a kept topic (and one past the bound) matches.
    w.subscribe("m/1", 0);
    w.subscribe("m/" + std::to_string(topics - 1), 0);
    p.publish("m/1", "a");
    p.publish("m/" + std::to_string(topics - 1), "b");
    CHECK(s.publishes().size() == 2);
    auto extra = w.publishes();
    REQUIRE(extra.size() == 2);
    CHECK(text(extra[0].payload) == "a");
    CHECK(text(extra[1].payload) == "b");
}

TEST_CASE("kept matches per topic with No Local from two publishers in turn") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5);
    a.connect("a");
    b.connect("b");
    a.subscribe("x/+", 0, 1, 0, 0, /*no_local=*/true);
    for (int i = 0; i < 3; ++i) {
        a.publish("x/1", "a1");
        b.publish("x/2", "b2");
        b.publish("x/1", "b1");
        a.publish("x/2", "a2");
    }
    auto got = a.publishes();
    REQUIRE(got.size() == 6);
    for (auto& g : got) CHECK(text(g.payload)[0] == 'b');
}

TEST_CASE("a reused PUBLISH carries nothing of the one before") {
    Harness h;
    TestClient s(h, Version::V5), p5(h, Version::V5), p3(h, Version::V311);
    s.connect("s");
    s.subscribe("r", 1);
    p5.connect("p5");
    p3.connect("p3");
    Properties props;
    props.message_expiry = 30;
    props.user.push_back({"k", "v"});
    p5.publish("r", "v5", 1, false, 0, props);
    p5.take();
    p3.publish("r", "v3", 0);   // QoS 0: no packet id of its own
    p5.publish("r", "v5 plain", 0);
    auto got = s.publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].props.message_expiry == 30);
    CHECK(got[0].props.user.size() == 1);
    CHECK(text(got[1].payload) == "v3");
    CHECK(!got[1].props.message_expiry);
    CHECK(got[1].props.user.empty());
    CHECK(got[1].qos == 0);
    CHECK(!got[2].props.message_expiry);
    CHECK(got[2].props.user.empty());
}

TEST_CASE("a repeated topic is still checked when it differs by a byte") {
    Harness h;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    s.subscribe("#", 0);
    p.connect("p");
    p.publish("a/b", "ok");
    CHECK(s.publishes().size() == 1);
    // The same length as the topic just routed, but a wildcard: malformed.
    p.publish("a/+", "bad");
    CHECK(p.closed());
    CHECK(s.publishes().empty());
}

TEST_CASE("a reused ack carries nothing of the one before") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("q", 2);
    p.connect("p");
    p.publish("q", "one", 2, false, 1);
    p.take();
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    // The receiver refuses it (PUBREC with 0x80 ends the flow) ...
    s.ack(PacketType::Pubrec, got[0].packet_id, 0x80);
    CHECK(s.take().empty());
    p.publish("q", "two", 2, false, 2);
    p.take();
    got = s.publishes();
    REQUIRE(got.size() == 1);
    // ... and a short PUBREC after it is a success: the flow goes on to PUBREL.
    s.send_raw({0x50, 0x02, uint8_t(got[0].packet_id >> 8), uint8_t(got[0].packet_id)});
    auto rel = s.take_one<Ack>();
    CHECK(rel.type == PacketType::Pubrel);
    CHECK(rel.reason == 0);
}

TEST_CASE("a v3 QoS 0 PUBLISH forwarded as it arrived reads the same in every version") {
    Harness h;
    TestClient s31(h, Version::V31), s311(h, Version::V311), s5(h, Version::V5), p(h, Version::V311);
    s31.connect("s31");
    s311.connect("s311");
    s5.connect("s5");
    p.connect("p");
    for (TestClient* s : {&s31, &s311, &s5}) s->subscribe("f/#", 0);
    const std::string big(5000, 'x');   // sent as head + payload: not from the arrived bytes
    p.publish("f/1", "small");
    p.publish("f/2", big);
    p.publish("f/3", "kept", 0, /*retain=*/true);   // live: retain 0 on the way out
    for (TestClient* s : {&s31, &s311, &s5}) {
        auto got = s->publishes();
        REQUIRE(got.size() == 3);
        CHECK(got[0].topic == "f/1");
        CHECK(text(got[0].payload) == "small");
        CHECK(got[1].payload.size() == big.size());
        CHECK(got[2].topic == "f/3");
        CHECK(!got[2].retain);
        CHECK(s->take().empty());
    }
}
