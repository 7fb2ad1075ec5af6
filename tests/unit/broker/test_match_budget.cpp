// A connection's matching work is budgeted per loop pass (match_budget.hpp):
// past it the rest of its input waits, unread and in order, for later
// passes, while everyone else is served; nothing it sent is lost.
#include <string>

#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// Each PUBLISH to a new ten-level topic steps through eleven nodes of the
// subscriber's "+/+/.../+" chain: twenty budgets' worth in 200 messages.
Config small_budget() {
    Config cfg;
    cfg.match_work_per_pass = 100;
    return cfg;
}
constexpr const char* kChain = "+/+/+/+/+/+/+/+/+/+";

// `count` QoS 0 PUBLISHes to topics no one published to before, in one buffer.
std::vector<uint8_t> new_topics(int first, int count) {
    std::vector<uint8_t> wire;
    for (int i = first; i < first + count; ++i) {
        const std::string topic = "p/1/2/3/4/5/6/7/8/" + std::to_string(i);
        const std::string payload = std::to_string(i);
        Publish p;
        p.topic = topic;
        p.payload = bytes_of(payload);
        encode(p, Version::V311, wire);
    }
    return wire;
}

// A CONNECT for "pub" with a will to "will/pub".
Connect pub_with_will(bool clean) {
    Connect c;
    c.client_id = "pub";
    c.clean_start = clean;
    c.will_flag = true;
    c.will_topic = "will/pub";
    c.will_payload = bytes_of("gone");
    return c;
}

// The subscriber of these tests: every new-topic message and every will.
void subscribe_chain_and_wills(TestClient& sub) {
    sub.connect("sub");
    sub.subscribe(kChain, 0);
    sub.subscribe("will/#", 0, 2);
}

// Runs loop passes until `pub` is read from again; returns how many it took.
int passes_until_reading(Harness& h, ConnId pub) {
    int passes = 0;
    while (!h.transport.reading[pub] && passes < 1000) {
        h.broker->on_pass_end();
        ++passes;
    }
    return passes;
}

}  // namespace

TEST_CASE("input past a pass's matching work waits for later passes, in order, while others are served") {
    Harness h(small_budget());
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe(kChain, 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    TestClient other(h, Version::V311);
    other.connect("other");

    pub.send_raw(new_topics(0, 200));
    std::vector<Publish> got = sub.publishes();
    CHECK(got.size() >= 5);
    CHECK(got.size() <= 12);   // about a budget's worth: 100 nodes, 11 a message
    REQUIRE(h.transport.reading.count(pub.id) == 1);
    CHECK_FALSE(h.transport.reading[pub.id]);
    CHECK(h.broker->stats().inputs_deferred == 1);

    // Another client in the same pass has a budget of its own.
    other.publish("p/1/2/3/4/5/6/7/8/other", "o");
    std::vector<Publish> others = sub.publishes();
    REQUIRE(others.size() == 1);
    CHECK(others[0].topic == "p/1/2/3/4/5/6/7/8/other");

    // What arrives before reading stopped queues behind the rest.
    pub.send_raw(new_topics(200, 20));
    CHECK(sub.publishes().empty());

    // Not in the pass it was deferred in: the next one, which must come.
    const int asked = h.transport.passes_asked;
    h.broker->on_pass_end();
    CHECK(sub.publishes().empty());
    CHECK(h.transport.passes_asked == asked + 1);

    const int passes = passes_until_reading(h, pub.id);
    CHECK(passes >= 15);
    CHECK(passes <= 40);
    for (const Publish& p : sub.publishes()) got.push_back(p);
    REQUIRE(got.size() == 220);
    for (int i = 0; i < 220; ++i) CHECK(text(got[size_t(i)].payload) == std::to_string(i));
    // Done: no more passes asked for.
    const int done = h.transport.passes_asked;
    h.broker->on_pass_end();
    CHECK(h.transport.passes_asked == done);

    // A PUBLISH served from the route cache costs no matching work.
    pub.send_raw(new_topics(0, 200));
    CHECK(sub.publishes().size() == 200);
    CHECK(h.transport.reading[pub.id]);
}

TEST_CASE("deferred input is handled after its connection closed: a DISCONNECT in it ends it without the will") {
    Harness h(small_budget());
    TestClient sub(h, Version::V311);
    subscribe_chain_and_wills(sub);
    for (const bool disconnects : {true, false}) {
        CAPTURE(disconnects);
        TestClient pub(h, Version::V311);
        pub.connect_with(pub_with_will(true));
        const uint64_t connections = h.broker->stats().connections;

        const int base = disconnects ? 0 : 1000;   // new to the route cache each time
        std::vector<uint8_t> wire = new_topics(base, 100);
        if (disconnects) encode(Disconnect{}, Version::V311, wire);
        pub.send_raw(wire);
        pub.transport_gone();   // the peer closed after sending it all
        std::vector<Publish> got = sub.publishes();
        CHECK(got.size() < 100);
        CHECK(h.broker->stats().connections == connections - 1);   // its socket is gone
        for (int i = 0; i < 40; ++i) h.broker->on_pass_end();
        CHECK(h.broker->stats().connections == connections - 1);
        for (const Publish& p : sub.publishes()) got.push_back(p);
        REQUIRE(got.size() == (disconnects ? 100u : 101u));
        for (int i = 0; i < 100; ++i) CHECK(text(got[size_t(i)].payload) == std::to_string(base + i));
        if (!disconnects) CHECK(got.back().topic == "will/pub");   // after everything it sent
        const int asked = h.transport.passes_asked;
        h.broker->on_pass_end();
        CHECK(h.transport.passes_asked == asked);
    }
}

TEST_CASE("a connection closed with input deferred no longer counts against max_connections") {
    Config cfg = small_budget();
    cfg.max_connections = 2;
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    subscribe_chain_and_wills(sub);
    TestClient pub(h, Version::V311);
    pub.connect_with(pub_with_will(true));
    pub.send_raw(new_topics(0, 100));
    pub.transport_gone();
    CHECK(h.broker->stats().connections == 1);
    TestClient other(h, Version::V311);
    CHECK(other.connect("other").reason == 0);   // not refused as busy
    CHECK(h.broker->stats().connections == 2);
    for (int i = 0; i < 40; ++i) h.broker->on_pass_end();
    CHECK(h.broker->stats().connections == 2);
    CHECK(sub.publishes().size() == 101);   // all it sent, then its will
}

TEST_CASE("a CONNECT taking over a session whose closed connection still has deferred input waits for that input") {
    Harness h(small_budget());
    TestClient sub(h, Version::V311);
    subscribe_chain_and_wills(sub);
    TestClient pub(h, Version::V311);
    pub.connect_with(pub_with_will(false));
    pub.subscribe("mine", 0);
    std::vector<uint8_t> wire = new_topics(0, 100);
    encode(Disconnect{}, Version::V311, wire);
    pub.send_raw(wire);
    pub.transport_gone();
    std::vector<Publish> got = sub.publishes();
    CHECK(got.size() < 100);

    // The device is back at once, under the same id.
    TestClient again(h, Version::V311);
    Connect back;
    back.client_id = "pub";
    back.clean_start = false;
    again.send(back);
    CHECK(again.take().empty());   // waits for what its last connection sent
    for (int i = 0; i < 40 && h.transport.sent[again.id].empty(); ++i) h.broker->on_pass_end();
    Connack ack = again.take_one<Connack>();
    CHECK(ack.reason == rc::Success);
    CHECK(ack.session_present);
    for (const Publish& p : sub.publishes()) got.push_back(p);
    REQUIRE(got.size() == 100);   // all of it, and no will: it had disconnected
    for (int i = 0; i < 100; ++i) CHECK(text(got[size_t(i)].payload) == std::to_string(i));
    CHECK(h.transport.reading[again.id]);
    // The session and its subscription carry on.
    sub.publish("mine", "still");
    CHECK(again.publishes().size() == 1);
}

TEST_CASE("deferred input waits while a receiver holds the intake") {
    Config cfg = small_budget();
    cfg.max_output_bytes = 1000;
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe(kChain, 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    pub.send_raw(new_topics(1000, 100));
    const size_t before = sub.publishes().size();
    CHECK(before < 100);
    // A receiver over max_output_bytes holds everyone's intake: deferred
    // input waits too, and no pass is asked for meanwhile.
    TestClient third(h, Version::V311);
    third.connect("third");
    h.transport.queued[sub.id] = 5000;
    third.publish("p/1/2/3/4/5/6/7/8/third", "x");   // a forward to sub, over its output limit
    REQUIRE_FALSE(h.transport.intake);
    pub.send_raw(new_topics(2000, 1));   // queues behind the deferred input
    const int asked = h.transport.passes_asked;
    h.broker->on_pass_end();
    h.broker->on_pass_end();
    CHECK(sub.publishes().empty());
    CHECK(h.transport.passes_asked == asked);
    h.transport.queued[sub.id] = 0;
    h.broker->on_tick(10);
    CHECK(h.transport.intake);
    CHECK(passes_until_reading(h, pub.id) < 40);
    // All of pub's (third's met sub over its limit: QoS 0, dropped).
    std::vector<Publish> rest = sub.publishes();
    REQUIRE(before + rest.size() == 101);
    CHECK(rest.back().topic == "p/1/2/3/4/5/6/7/8/2000");
}

TEST_CASE("a large packet received in place is charged; once the budget is used up it is deferred instead") {
    Config cfg = small_budget();
    cfg.max_packet_size = 1 << 20;
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe(kChain, 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    const std::string body(40 * 1024, 'b');
    auto large = [&](int i) {
        Publish p;
        const std::string topic = "p/1/2/3/4/5/6/7/8/large" + std::to_string(i);
        p.topic = topic;
        p.payload = bytes_of(body);
        std::vector<uint8_t> wire;
        encode(p, Version::V311, wire);
        return wire;
    };
    // Nine new topics (99 nodes), then the start of a large PUBLISH.
    std::vector<uint8_t> wire = new_topics(0, 9);
    const std::vector<uint8_t> first = large(0);
    wire.insert(wire.end(), first.begin(), first.begin() + 4096);
    pub.send_raw(wire);
    CHECK(sub.publishes().size() == 9);
    REQUIRE(h.broker->wants_in_place(pub.id));   // a node of budget left
    std::span<uint8_t> target = h.broker->receive_target(pub.id, 1 << 20);
    REQUIRE(target.size() == first.size() - 4096);
    std::copy(first.begin() + 4096, first.end(), target.begin());
    h.broker->on_received_in_place(pub.id, target.size());
    CHECK(sub.publishes().size() == 1);
    // Its match was charged: the next large PUBLISH is not received in
    // place but waits, whole or in part, for the next pass.
    const std::vector<uint8_t> second = large(1);
    pub.send_raw(std::vector<uint8_t>(second.begin(), second.begin() + 4096));
    CHECK_FALSE(h.broker->wants_in_place(pub.id));
    CHECK(h.broker->stats().inputs_deferred == 1);
    pub.send_raw(std::vector<uint8_t>(second.begin() + 4096, second.end()));   // already received
    CHECK(sub.publishes().empty());
    h.broker->on_pass_end();
    h.broker->on_pass_end();
    std::vector<Publish> got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "p/1/2/3/4/5/6/7/8/large1");
    CHECK(got[0].payload.size() == body.size());
    CHECK(h.transport.reading[pub.id]);
}

TEST_CASE("a configured bridge's input is never deferred") {
    Config cfg = small_budget();
    cfg.session_budgets.push_back({"$bridge/up", 0, true, false});
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe(kChain, 0);
    TestClient bridge(h, Version::V5);
    Properties keep;
    keep.session_expiry = 300;
    bridge.connect("$bridge/up", false, 0, keep);
    std::vector<uint8_t> wire;
    for (int i = 0; i < 100; ++i) {
        const std::string topic = "p/1/2/3/4/5/6/7/8/" + std::to_string(i);
        Publish p;
        p.topic = topic;
        p.payload = bytes_of("x");
        encode(p, Version::V5, wire);
    }
    bridge.send_raw(wire);
    CHECK(sub.publishes().size() == 100);
    CHECK(h.broker->stats().inputs_deferred == 0);
}

// One client in many shared groups on one topic turns each PUBLISH into a
// delivery per group, all from the route cache: that work is charged too,
// so the publisher's input waits for later passes instead of holding the
// loop for seconds.
TEST_CASE("deliveries through many shared groups are charged to the publisher's matching work") {
    Config cfg;
    cfg.match_work_per_pass = 20000;
    Harness h(cfg);
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    for (int g = 0; g < 500; ++g) sub.subscribe("$share/g" + std::to_string(g) + "/t", 0, uint16_t(g + 1));
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    std::vector<uint8_t> wire;
    for (int i = 0; i < 20; ++i) {
        Publish p;
        p.topic = "t";
        p.payload = bytes_of("x");
        encode(p, Version::V311, wire);
    }
    pub.send_raw(wire);
    // About 17 work a group: 20 000 takes a little over two messages.
    const size_t first = sub.publishes().size();
    CHECK(first >= 500);
    CHECK(first <= 3 * 500);
    CHECK(h.broker->stats().inputs_deferred >= 1);
    CHECK(passes_until_reading(h, pub.id) >= 5);
    CHECK(first + sub.publishes().size() == 20 * 500);   // nothing lost, only later
}
