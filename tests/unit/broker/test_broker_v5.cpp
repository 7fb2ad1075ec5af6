// MQTT 5 features: flow control, topic aliases, shared subscriptions,
// message expiry, property forwarding, feature limits.
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

TEST_CASE("receive maximum exceeded: DISCONNECT 0x93") {
    Config cfg;
    cfg.receive_maximum = 2;
    Harness h(cfg);
    h.persist.auto_durable = false;   // acks stay held, so the window fills up
    TestClient a(h, Version::V5);
    CHECK(a.connect("a").props.receive_maximum == 2);
    // Retained: the store write gives each ack a ticket to wait for.
    a.publish("t", "1", 1, true);
    a.publish("t", "2", 2, true);
    CHECK_FALSE(a.closed());
    a.publish("t", "3", 1, true);
    CHECK(a.take().empty());   // the DISCONNECT goes after the acks it owes, and the close after it
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    CHECK(a.closed());
    auto packets = a.take();
    REQUIRE(packets.size() == 3);
    CHECK(std::get<Ack>(packets[0]).type == PacketType::Puback);
    CHECK(std::get<Ack>(packets[1]).type == PacketType::Pubrec);
    CHECK(std::get<Disconnect>(packets.back()).reason == rc::ReceiveMaximumExceeded);
}

TEST_CASE("inbound topic alias") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("long/topic", 0);
    p.connect("p");
    Properties set;
    set.topic_alias = 3;
    p.publish("long/topic", "a", 0, false, 0, set);
    Publish by_alias;
    by_alias.props.topic_alias = 3;
    by_alias.payload = bytes_of("b");
    p.send(by_alias);
    auto got = s.publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[1].topic == "long/topic");
    CHECK(text(got[1].payload) == "b");

    Properties bad;
    bad.topic_alias = static_cast<uint16_t>(h.cfg.topic_alias_maximum + 1);
    p.publish("x", "c", 0, false, 0, bad);
    CHECK(p.take_one<Disconnect>().reason == rc::TopicAliasInvalid);
    CHECK(p.closed());
}

TEST_CASE("a client PUBLISH carrying a Subscription Identifier is a protocol error") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("t", 1);
    p.connect("p");
    Properties with_id;
    with_id.subscription_ids.push_back(7);
    p.publish("t", "x", 1, false, 1, with_id);
    CHECK(p.take_one<Disconnect>().reason == rc::ProtocolError);
    CHECK(p.closed());
    CHECK(s.publishes().empty());
}

TEST_CASE("outbound topic aliases up to the client's maximum") {
    Config cfg;
    cfg.max_outbound_topic_aliases = 1;
    Harness h(cfg);
    TestClient s(h, Version::V5), p(h, Version::V5);
    Properties want;
    want.topic_alias_maximum = 5;
    s.connect("s", true, 0, want);
    s.subscribe("#", 0);
    p.connect("p");
    p.publish("a", "1");
    p.publish("a", "2");
    p.publish("b", "3");
    auto got = s.publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].topic == "a");
    CHECK(got[0].props.topic_alias == 1);
    CHECK(got[1].topic.empty());
    CHECK(got[1].props.topic_alias == 1);
    CHECK(got[2].topic == "b");                   // limit reached: full topic, no alias
    CHECK_FALSE(got[2].props.topic_alias.has_value());
}

TEST_CASE("a reload that lowers receive_maximum and topic_alias_maximum keeps what a CONNACK granted") {
    Config cfg;
    cfg.receive_maximum = 8;
    cfg.topic_alias_maximum = 8;
    Harness h(cfg);
    TestClient p(h, Version::V5);
    const Connack ack = p.connect("p");
    CHECK(ack.props.receive_maximum == 8);
    Config lower = cfg;
    lower.receive_maximum = 2;
    lower.topic_alias_maximum = 2;
    h.broker->reconfigure(lower);
    for (uint16_t id = 1; id <= 8; ++id) p.publish("t", "x", 2, false, id);   // 8 unreleased QoS 2 flows
    Properties alias;
    alias.topic_alias = 8;
    p.publish("t", "x", 0, false, 0, alias);
    for (auto& pk : p.take()) CHECK_FALSE(std::holds_alternative<Disconnect>(pk));
    CHECK_FALSE(p.closed());
    // A client that connects now is told the new limits.
    TestClient q(h, Version::V5);
    CHECK(q.connect("q").props.receive_maximum == 2);
}

TEST_CASE("a reload that lowers maximum_qos or turns retain off refuses nothing a CONNACK allowed") {
    Harness h;
    TestClient s(h, Version::V5), early(h, Version::V5);
    s.connect("s");
    s.subscribe("t", 2);
    early.connect("early");
    early.publish("t", "kept", 0, true);   // retained while retain is on
    s.take();
    Config lower;
    lower.maximum_qos = 1;
    lower.retain_available = false;
    h.broker->reconfigure(lower);
    // Connected before: QoS 2 goes on; a retained message goes on, not retained.
    early.publish("t", "q2", 2, false, 7);
    CHECK(early.take_one<Ack>().type == PacketType::Pubrec);
    early.publish("t", "r", 1, true, 8);
    CHECK(early.take_one<Ack>().reason == rc::Success);
    CHECK_FALSE(early.closed());
    auto got = s.publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[0].qos == 2);   // its subscription was granted QoS 2 before the reload
    CHECK_FALSE(got[1].retain);
    CHECK(h.broker->retained_payload("t") == "kept");   // kept, not replaced
    // Connected after: told the new limits, and held to them.
    TestClient late(h, Version::V5);
    const Connack ack = late.connect("late");
    CHECK(ack.props.maximum_qos == 1);
    CHECK(ack.props.retain_available == 0);
    CHECK(late.subscribe("t", 1).reasons[0] == 1);
    late.extra();   // what was retained before is still served
    late.publish("t", "x", 2, false, 9);
    CHECK(late.take_one<Disconnect>().reason == rc::QoSNotSupported);
}

TEST_CASE("a reload that raises maximum_qos or turns retain on applies to v3.1.1 connections made before it") {
    Config low;
    low.maximum_qos = 1;
    low.retain_available = false;
    Harness h(low);
    TestClient v3(h, Version::V311), v5(h, Version::V5);
    v3.connect("v3");
    v5.connect("v5");
    h.broker->reconfigure(Config{});
    // v3.1.1 was told no limits: it may use what the broker now allows.
    v3.publish("t", "q2", 2, true, 3);
    CHECK(v3.take_one<Ack>().type == PacketType::Pubrec);
    CHECK_FALSE(v3.closed());
    CHECK(h.broker->retained_payload("t") == "q2");
    // v5 was told maximum QoS 1 in its CONNACK and is held to it.
    v5.publish("t", "q2", 2, false, 4);
    CHECK(v5.take_one<Disconnect>().reason == rc::QoSNotSupported);
    // What a raise gave a v3.1.1 connection stays through a later lowering.
    h.broker->reconfigure(low);
    v3.publish("t", "again", 2, false, 5);
    CHECK(v3.take_one<Ack>().type == PacketType::Pubrec);
    CHECK_FALSE(v3.closed());
}

TEST_CASE("a QoS 2 resend after a reload turned retain off is the same message, not a new one") {
    Harness h;
    TestClient s(h, Version::V311), p(h, Version::V311);
    s.connect("s");
    s.subscribe("t", 0);
    p.connect("p");
    p.publish("t", "once", 2, true, 5);
    CHECK(p.take_one<Ack>().type == PacketType::Pubrec);
    CHECK(s.publishes().size() == 1);
    Config off;
    off.retain_available = false;
    h.broker->reconfigure(off);
    Publish again;   // its PUBREC was lost: the same PUBLISH, DUP
    again.topic = "t";
    again.payload = Bytes(reinterpret_cast<const uint8_t*>("once"), 4);
    again.qos = 2;
    again.retain = true;
    again.dup = true;
    again.packet_id = 5;
    p.send(again);
    CHECK(p.take_one<Ack>().type == PacketType::Pubrec);
    CHECK(s.publishes().empty());   // not routed a second time
}

TEST_CASE("subscription identifiers count in max_queued_bytes: overlapping subscriptions cannot multiply a queue") {
    Config cfg;
    cfg.max_queued_bytes = 4000;
    cfg.max_queued_messages = 0;
    Harness h(cfg);
    TestClient s(h, Version::V5), p(h, Version::V5);
    Properties keep;
    keep.session_expiry = 300;
    s.connect("s", false, 0, keep);
    // 16 filters match "a/b/c/d" (each level itself or +), each with its own identifier.
    for (uint32_t i = 0; i < 16; ++i) {
        std::string f;
        for (int level = 0; level < 4; ++level)
            f += std::string(level ? "/" : "") + ((i >> level) & 1 ? "+" : std::string(1, char('a' + level)));
        s.subscribe(f, 1, uint16_t(i + 1), i + 1);
    }
    s.disconnect();
    p.connect("p");
    for (int i = 0; i < 200; ++i) p.publish("a/b/c/d", "v", 1);
    const Broker::QueueInfo q = h.broker->session_queue("s");
    CHECK(q.bytes <= cfg.max_queued_bytes);
    // Each queued delivery carries its 16 identifiers (64 bytes) besides the message.
    CHECK(q.messages * 64 < q.bytes);
    CHECK(q.messages <= cfg.max_queued_bytes / 64);
}

// A message larger than max_queued_bytes reached no subscriber, online or
// not, with the publisher acknowledged: an empty queue takes one.
TEST_CASE("a message larger than max_queued_bytes still reaches a subscriber with an empty queue") {
    Config cfg;
    cfg.max_queued_bytes = 1000;
    Harness h(cfg);
    TestClient online(h, Version::V5), offline(h, Version::V5), p(h, Version::V5);
    online.connect("online");
    online.subscribe("big/#", 1, 1);
    Properties keep;
    keep.session_expiry = 300;
    offline.connect("offline", false, 0, keep);
    offline.subscribe("big/#", 1, 1);
    offline.disconnect();
    p.connect("p");
    const std::string big(5000, 'x');
    p.publish("big/1", big, 1);
    const auto got = online.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload.size() == big.size());
    CHECK(h.broker->session_queue("offline").messages == 1);
    p.publish("big/2", big, 1);   // the queue holds one already: over the limit
    CHECK(h.broker->session_queue("offline").messages == 1);
}

TEST_CASE("an outbound alias is used only where the packet still fits the client's Maximum Packet Size") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    Properties want;
    want.topic_alias_maximum = 10;
    want.maximum_packet_size = 40;
    s.connect("s", true, 0, want);
    s.subscribe("#", 0);
    p.connect("p");
    // 1 + 1 + (2 + 5) + 1 + 30 = 40 bytes without an alias; 43 with one.
    p.publish("t/abc", std::string(30, 'x'));
    p.publish("t/abc", std::string(30, 'x'));
    p.publish("t/abc", "short");   // fits with the alias: assigned now
    p.publish("t/abc", "short");
    auto got = s.publishes();
    REQUIRE(got.size() == 4);
    for (int i = 0; i < 2; ++i) {
        CHECK(got[i].topic == "t/abc");
        CHECK_FALSE(got[i].props.topic_alias.has_value());
    }
    CHECK(got[2].topic == "t/abc");
    CHECK(got[2].props.topic_alias == 1);
    CHECK(got[3].topic.empty());
    CHECK(got[3].props.topic_alias == 1);
}

TEST_CASE("a QoS 2 PUBLISH held for its record sets no alias that a PUBLISH sent before it would use") {
    Harness h;
    h.persist.auto_durable = false;
    TestClient s(h, Version::V5), p(h, Version::V5);
    Properties want;
    want.topic_alias_maximum = 5;
    want.session_expiry = 300;   // persistent: its QoS 2 deliveries wait for their records
    s.connect("s", false, 0, want);
    s.subscribe("a", 2);
    p.connect("p");
    h.persist.durable = h.persist.last_ticket;
    p.publish("a", "held", 2, false, 1);
    p.publish("a", "now", 0);
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    auto got = s.publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[0].qos == 0);   // not held: it overtook the QoS 2 one
    CHECK(got[0].topic == "a");
    CHECK(got[0].props.topic_alias == 1);   // and set the alias itself
    CHECK(got[1].qos == 2);
    CHECK(got[1].topic == "a");
    CHECK_FALSE(got[1].props.topic_alias.has_value());
}

TEST_CASE("shared subscription: round robin, no retained, redistribution on leave") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5), p(h, Version::V5);
    a.connect("a");
    b.connect("b");
    p.connect("p");
    p.publish("job/x", "retained", 0, true);
    a.subscribe("$share/g/job/#", 1);
    CHECK(a.extra().empty());   // no retained for shared subscriptions
    b.subscribe("$share/g/job/#", 1);
    for (int i = 0; i < 4; ++i) p.publish("job/x", std::to_string(i), 0);
    CHECK(a.publishes().size() == 2);
    CHECK(b.publishes().size() == 2);

    // a holds an unacked QoS 1 message and leaves: b gets it.
    p.publish("job/x", "q1", 1);
    p.take();
    auto ga = a.publishes(), gb = b.publishes();
    REQUIRE(ga.size() + gb.size() == 1);
    TestClient& holder = ga.empty() ? b : a;
    TestClient& other = ga.empty() ? a : b;
    holder.transport_gone();
    auto moved = other.publishes();
    REQUIRE(moved.size() == 1);
    CHECK(text(moved[0].payload) == "q1");
}

TEST_CASE("shared subscription: a member that stopped acknowledging does not make the group drop messages") {
    Config cfg;
    cfg.max_inflight = 2;
    cfg.max_queued_messages = 3;
    Harness h(cfg);
    TestClient stuck(h, Version::V5), worker(h, Version::V5), p(h, Version::V5);
    stuck.connect("stuck");
    worker.connect("worker");
    p.connect("p");
    stuck.subscribe("$share/g/job", 1);
    worker.subscribe("$share/g/job", 1);
    size_t done = 0;
    for (int i = 0; i < 40; ++i) {
        p.publish("job", std::to_string(i), 1, false, uint16_t(i + 1));
        for (const Publish& m : worker.publishes()) {   // the worker acknowledges all it gets
            worker.ack(PacketType::Puback, m.packet_id);
            ++done;
        }
    }
    stuck.take();   // it holds its window and queue, and acknowledges nothing
    CHECK(h.broker->stats().queued_dropped == 0);
    CHECK(done == 40 - 2 - 3);   // the rest went to the worker
}

// A member's Maximum Packet Size is its own (MQTT-3.1.2-25): a message too
// large for it goes to a member that can take it. Picked in turn, the small
// member skipped its share, acknowledged to the publisher and lost.
TEST_CASE("shared subscription: a message too large for one member goes to another") {
    Harness h;
    TestClient small(h, Version::V5), big(h, Version::V5), p(h, Version::V5);
    Properties tiny;
    tiny.maximum_packet_size = 64;
    small.connect("small", true, 0, tiny);
    big.connect("big");
    p.connect("p");
    small.subscribe("$share/g/job", 1);
    big.subscribe("$share/g/job", 1);
    for (int i = 0; i < 10; ++i) {
        p.publish("job", std::string(500, char('a' + i)), 1, false, uint16_t(i + 1));
        CHECK(p.take_one<Ack>().reason == rc::Success);
    }
    CHECK(small.publishes().empty());
    auto got = big.publishes();
    CHECK(got.size() == 10);
    for (const Publish& m : got) big.ack(PacketType::Puback, m.packet_id);
    for (int i = 0; i < 4; ++i) p.publish("job", "fits", 0);   // small ones still take turns
    CHECK(small.publishes().size() == 2);
    CHECK(big.publishes().size() == 2);

    // One leaving with a message unacknowledged hands it on only to a member that can take it.
    p.publish("job", std::string(500, 'z'), 1, false, 20);
    p.take();
    REQUIRE(big.publishes().size() == 1);
    TestClient other(h, Version::V5);
    other.connect("other");
    other.subscribe("$share/g/job", 1);
    big.transport_gone();
    CHECK(small.publishes().empty());
    CHECK(other.publishes().size() == 1);
}

TEST_CASE("shared subscription: a leaving member keeps what no other member has room for") {
    Config cfg;
    cfg.max_inflight = 2;
    cfg.max_queued_messages = 3;
    Harness h(cfg);
    TestClient a(h, Version::V311), b(h, Version::V311), p(h, Version::V311);
    a.connect("a", false);   // persistent: what it keeps waits for its return
    b.connect("b");
    p.connect("p");
    a.subscribe("$share/g/job", 1);
    b.subscribe("$share/g/job", 1);
    for (int i = 0; i < 10; ++i) p.publish("job", std::to_string(i), 1, false, uint16_t(i + 1));
    CHECK(a.publishes().size() == 2);   // each: 2 in flight, 3 queued, nothing acknowledged
    CHECK(b.publishes().size() == 2);
    a.transport_gone();   // b's queue is full: moving them there would drop them
    CHECK(h.broker->stats().queued_dropped == 0);
    CHECK(h.broker->session_queue("a").messages == 5);
    CHECK(b.publishes().empty());
}

TEST_CASE("message expiry: forwarded remaining, never delivered once expired") {
    Harness h;
    TestClient live(h, Version::V5), p(h, Version::V5);
    live.connect("live");
    live.subscribe("e", 1);
    p.connect("p");
    Properties exp;
    exp.message_expiry = 10;
    p.publish("e", "x", 1, true, 0, exp);
    auto got = live.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].props.message_expiry == 10);
    live.ack(PacketType::Puback, got[0].packet_id);

    Properties persistent;
    persistent.session_expiry = 1000;
    TestClient off(h, Version::V5);
    off.connect("off", true, 0, persistent);
    off.subscribe("e", 1);
    auto first = off.extra();
    REQUIRE(first.size() == 1);
    off.ack(PacketType::Puback, std::get<Publish>(first[0]).packet_id);
    off.transport_gone();
    p.publish("e", "y", 1, false, 0, exp);
    h.broker->on_tick(4000);
    TestClient late(h, Version::V5);
    late.connect("late");
    late.subscribe("e", 1);
    auto ret = late.extra();
    REQUIRE(ret.size() == 1);
    CHECK(std::get<Publish>(ret[0]).props.message_expiry == 6);   // retained, 4 s later

    h.broker->on_tick(11000);
    TestClient off2(h, Version::V5);
    CHECK(off2.connect("off", false, 0, persistent).session_present);
    CHECK(off2.extra().empty());   // queued message expired
    TestClient later(h, Version::V5);
    later.connect("later");
    later.subscribe("e", 1);
    CHECK(later.extra().empty());  // retained message expired
}

// conf/hato.toml: "messages asking for more, or for none, expire after
// this". Those asking for none (v3.x, or v5 without the property) had no
// bound at all.
TEST_CASE("max_message_expiry bounds messages that ask for more, or for none, v3.x and wills too") {
    Config cfg;
    cfg.max_message_expiry = 5;
    Harness h(cfg);
    TestClient v3(h, Version::V311), v5(h, Version::V5), live(h, Version::V5);
    live.connect("live");
    live.subscribe("e/#", 1);
    v3.connect("v3");
    v5.connect("v5");
    v3.publish("e/v3", "a", 1, true);
    Properties more;
    more.message_expiry = 60;
    v5.publish("e/more", "b", 1, true, 0, more);
    v5.publish("e/none", "c", 1, true);
    Properties less;
    less.message_expiry = 3;
    v5.publish("e/less", "d", 1, true, 0, less);
    auto got = live.publishes();
    REQUIRE(got.size() == 4);
    // Told to a v5 receiver as the bound the broker imposes.
    CHECK(got[0].props.message_expiry == 5);
    CHECK(got[1].props.message_expiry == 5);
    CHECK(got[2].props.message_expiry == 5);
    CHECK(got[3].props.message_expiry == 3);
    // A will without an expiry is bounded from its publication.
    Connect wc;
    wc.client_id = "w";
    wc.will_flag = true;
    wc.will_topic = "e/will";
    wc.will_payload = Bytes(reinterpret_cast<const uint8_t*>("gone"), 4);
    wc.will_qos = 1;
    wc.will_retain = true;
    TestClient w(h, Version::V5);
    w.connect_with(wc);
    h.broker->on_tick(2000);
    w.transport_gone();
    TestClient seen(h, Version::V5);
    seen.connect("seen");
    seen.subscribe("e/#", 1);
    CHECK(seen.extra().size() == 5);   // 3 s left, e/less 1 s, the will 5 s
    h.broker->on_tick(6500);
    TestClient late(h, Version::V5);
    late.connect("late");
    late.subscribe("e/#", 1);
    auto left = late.extra();
    REQUIRE(left.size() == 1);
    CHECK(std::get<Publish>(left[0]).topic == "e/will");
    h.broker->on_tick(7500);
    TestClient later(h, Version::V5);
    later.connect("later");
    later.subscribe("e/#", 1);
    CHECK(later.extra().empty());
}

TEST_CASE("request/response properties are forwarded unchanged") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s");
    s.subscribe("req", 0);
    p.connect("p");
    Properties pr;
    pr.response_topic = "resp/1";
    const uint8_t corr[] = {1, 2, 3};
    pr.correlation_data = Bytes(corr, 3);
    pr.user = {{"k1", "v1"}, {"k0", "v0"}};
    pr.content_type = "text/plain";
    pr.payload_format = 1;
    p.publish("req", "body", 0, false, 0, pr);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    const Properties& g = got[0].props;
    CHECK(g.response_topic == "resp/1");
    REQUIRE(g.correlation_data.has_value());
    CHECK(std::vector<uint8_t>(g.correlation_data->begin(), g.correlation_data->end()) ==
          std::vector<uint8_t>{1, 2, 3});
    REQUIRE(g.user.size() == 2);
    CHECK(g.user[0].key == "k1");
    CHECK(g.user[1].value == "v0");
    CHECK(g.content_type == "text/plain");
    CHECK(g.payload_format == 1);
}

TEST_CASE("v5 acks: no matching subscribers, invalid payload format") {
    Harness h;
    TestClient p(h, Version::V5);
    p.connect("p");
    p.publish("nobody", "x", 1);
    CHECK(p.take_one<Ack>().reason == rc::NoMatchingSubscribers);
    Properties utf;
    utf.payload_format = 1;
    p.publish("nobody", "\xff\xfe", 2, false, 0, utf);
    auto a = p.take_one<Ack>();
    CHECK(a.type == PacketType::Pubrec);
    CHECK(a.reason == rc::PayloadFormatInvalid);
}

TEST_CASE("feature limits: maximum QoS, retain, wildcards, shared, sub ids") {
    Config cfg;
    cfg.maximum_qos = 1;
    cfg.retain_available = false;
    cfg.wildcard_subscriptions = false;
    cfg.shared_subscriptions = false;
    cfg.subscription_identifiers = false;
    Harness h(cfg);
    TestClient s(h, Version::V5);
    Connack ack = s.connect("s");
    CHECK(ack.props.maximum_qos == 1);
    CHECK(ack.props.retain_available == 0);
    CHECK(s.subscribe("a/+", 0).reasons[0] == rc::WildcardSubscriptionsNotSupported);
    CHECK(s.subscribe("$share/g/a", 0).reasons[0] == rc::SharedSubscriptionsNotSupported);
    CHECK(s.subscribe("a", 0, 1, 5).reasons[0] == rc::SubscriptionIdentifiersNotSupported);
    CHECK(s.subscribe("a", 2).reasons[0] == 1);   // granted at most maximum QoS

    TestClient q(h, Version::V5), r(h, Version::V5);
    q.connect("q");
    r.connect("r");
    q.publish("a", "x", 2);
    CHECK(q.take_one<Disconnect>().reason == rc::QoSNotSupported);
    r.publish("a", "x", 0, true);
    CHECK(r.take_one<Disconnect>().reason == rc::RetainNotSupported);
}

TEST_CASE("client maximum packet size: larger messages are skipped") {
    Harness h;
    TestClient s(h, Version::V5), p(h, Version::V5);
    Properties small;
    small.maximum_packet_size = 40;
    s.connect("s", true, 0, small);
    s.subscribe("m", 1);
    p.connect("p");
    p.publish("m", std::string(100, 'x'), 1);
    p.publish("m", "fits", 1);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "fits");
}

TEST_CASE("response information on request") {
    Config cfg;
    cfg.response_information = "replies/";
    Harness h(cfg);
    TestClient a(h, Version::V5), b(h, Version::V5);
    Properties ask;
    ask.request_response_info = 1;
    CHECK(a.connect("a", true, 0, ask).props.response_info == "replies/");
    CHECK_FALSE(b.connect("b").props.response_info.has_value());
}

TEST_CASE("a full offline queue makes room by dropping expired messages first") {
    Config cfg;
    cfg.max_queued_messages = 1;
    Harness h(cfg);
    Properties persistent;
    persistent.session_expiry = 1000;
    TestClient s(h, Version::V5), p(h, Version::V5);
    s.connect("s", true, 0, persistent);
    s.subscribe("t", 1);
    s.transport_gone();
    p.connect("p");
    Properties exp;
    exp.message_expiry = 1;
    p.publish("t", "short-lived", 1, false, 0, exp);
    h.broker->on_tick(2000);
    p.publish("t", "fresh", 1);
    CHECK(h.broker->stats().queued_dropped == 0);
    TestClient s2(h, Version::V5);
    CHECK(s2.connect("s", false, 0, persistent).session_present);
    auto got = s2.extra();
    REQUIRE(got.size() == 1);
    CHECK(text(std::get<Publish>(got[0]).payload) == "fresh");
}

// 3.8.3.1: No Local on a shared subscription is a Protocol Error for the
// whole SUBSCRIBE: no filter of it is applied, not even one before it.
TEST_CASE("a SUBSCRIBE with No Local on a shared filter applies none of its filters") {
    Harness h;
    TestClient c(h, Version::V5);
    c.connect("c", false);
    h.persist.calls.clear();
    Subscribe s;
    s.packet_id = 1;
    s.topics.push_back({"x", 1, false, false, 0});
    s.topics.push_back({"$share/g/t", 1, true, false, 0});
    c.send(s);
    CHECK(c.take_one<Disconnect>().reason == rc::ProtocolError);
    CHECK(c.closed());
    CHECK(h.persist.count("sub_put") == 0);
}

TEST_CASE("UNSUBSCRIBE: an invalid filter is 0x8F, a valid one not subscribed 0x11") {
    Harness h;
    TestClient c(h, Version::V5);
    c.connect("c");
    c.subscribe("a/b", 1);
    Unsubscribe u;
    u.packet_id = 2;
    u.filters = {"a/b", "a/#/b", "", "x/+", "$share/g/a/#/b"};
    c.send(u);
    CHECK(c.take_one<Unsuback>().reasons ==
          std::vector<uint8_t>{rc::Success, rc::TopicFilterInvalid, rc::TopicFilterInvalid, rc::NoSubscriptionExisted,
                               rc::TopicFilterInvalid});
}

// A v5 CONNECT that is malformed or breaks the protocol is answered with a
// CONNACK carrying the reason before the close (MQTT 5 4.13.1 allows it), so
// the device's log says why; a v3.x one has no code for it and is closed.
TEST_CASE("a bad v5 CONNECT is answered with CONNACK 0x81 or 0x82 before the close") {
    Harness h;
    const std::vector<uint8_t> head = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C};
    auto connect_with_props = [&](std::vector<uint8_t> props) {
        std::vector<uint8_t> body = head;
        body.push_back(uint8_t(props.size()));
        body.insert(body.end(), props.begin(), props.end());
        body.insert(body.end(), {0x00, 0x01, 'a'});
        std::vector<uint8_t> packet = {0x10, uint8_t(body.size())};
        packet.insert(packet.end(), body.begin(), body.end());
        return packet;
    };
    struct Case {
        const char* what;
        std::vector<uint8_t> props;
        uint8_t reason;
    };
    const Case cases[] = {
        {"Receive Maximum 0", {0x21, 0x00, 0x00}, rc::ProtocolError},
        {"Session Expiry Interval twice", {0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2}, rc::ProtocolError},
        {"a user property that is not UTF-8", {0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0xFF}, rc::MalformedPacket},
    };
    for (const Case& k : cases) {
        CAPTURE(k.what);
        TestClient c(h, Version::V5);
        c.send_raw(connect_with_props(k.props));
        CHECK(c.take_one<Connack>().reason == k.reason);
        CHECK(h.transport.closed.contains(c.id));
    }
    TestClient old(h, Version::V311);   // reserved flag set
    old.send_raw({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x01, 'a'});
    CHECK(old.take().empty());
    CHECK(h.transport.closed.contains(old.id));
}
