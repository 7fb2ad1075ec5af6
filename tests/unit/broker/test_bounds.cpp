// Per-client costs stay bounded: input reassembly is linear, shared-group
// names and timers are freed with what owns them, a client that does not
// read is paused and then dropped, and a connection that has not completed
// CONNECT may buffer only max_connect_packet_size.
#include <cstring>

#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

Config large_packets() {
    Config cfg;
    cfg.max_packet_size = 4 * 1024 * 1024;
    return cfg;
}

// Hands `wire` to the broker as a socket would: in receives of 4 KiB.
void send_in_receives(TestClient& c, std::span<const uint8_t> wire) {
    for (size_t off = 0; off < wire.size(); off += 4096) {
        const auto piece = wire.subspan(off, std::min<size_t>(4096, wire.size() - off));
        c.send_raw(std::vector<uint8_t>(piece.begin(), piece.end()));
    }
}

}  // namespace

TEST_CASE("a 2 MB PUBLISH fed in 4 KiB pieces costs linear copying, not a copy per receive") {
    Harness h(large_packets());
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("big", 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");

    const std::string payload(2 * 1024 * 1024, 'x');
    Publish p;
    p.topic = "big";
    p.payload = Bytes(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    std::vector<uint8_t> wire;
    encode(p, Version::V311, wire);
    const Stats before = h.broker->stats();
    send_in_receives(pub, wire);
    const Stats& after = h.broker->stats();
    // Linear: each byte appended once and moved about once more on average
    // by the geometric growth (a copy per receive would be ~512 MB), in a
    // logarithmic number of allocations.
    CHECK(after.partial_bytes_copied - before.partial_bytes_copied <= 3 * wire.size());
    CHECK(after.partial_buffers - before.partial_buffers <= 12);
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload.size() == payload.size());
    CHECK(text(got[0].payload) == payload);
}

TEST_CASE("a stream of large PUBLISHes reuses one reassembly buffer, a small packet after them does not") {
    Harness h(large_packets());
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("big", 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");

    std::vector<uint8_t> wire;
    for (int i = 0; i < 4; ++i) {
        const std::string body(1024 * 1024 + size_t(i) * 1000, char('a' + i));
        Publish p;
        p.topic = "big";
        p.payload = Bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size());
        encode(p, Version::V311, wire);
    }
    Publish small;
    small.topic = "big";
    const std::string small_body(100, 's');
    small.payload = Bytes(reinterpret_cast<const uint8_t*>(small_body.data()), small_body.size());
    encode(small, Version::V311, wire);
    const size_t small_size = 2 + 2 + 3 + small_body.size();

    const Stats before = h.broker->stats();
    // Every large packet ends inside a receive, with the next one's start;
    // the small one arrives in two pieces, its first 10 bytes with the end
    // of the last large one.
    const size_t large_end = wire.size() - small_size;
    send_in_receives(pub, std::span(wire).first(large_end + 10));
    pub.send_raw(std::vector<uint8_t>(wire.begin() + std::ptrdiff_t(large_end + 10), wire.end()));
    const Stats& after = h.broker->stats();
    // The first large packet grows its buffer (about a dozen steps), the
    // three after it take none and are copied once, the small one gets its own.
    const size_t large_bytes = large_end;
    CHECK(after.partial_buffers - before.partial_buffers <= 12 + 1);
    CHECK(after.partial_bytes_copied - before.partial_bytes_copied <= large_bytes + 1024 * 1024 + 4096);
    auto got = sub.publishes();
    REQUIRE(got.size() == 5);
    for (int i = 0; i < 4; ++i) {
        CHECK(got[size_t(i)].payload.size() == 1024 * 1024 + size_t(i) * 1000);
        CHECK(text(got[size_t(i)].payload) == std::string(1024 * 1024 + size_t(i) * 1000, char('a' + i)));
    }
    CHECK(text(got[4].payload) == small_body);
}

// What a reactor does with Broker::receive_target: once the broker hinted
// (expect_in_place), the rest of a large packet is received straight into
// its buffer, `waiting` bytes at a time (what the socket holds), and the
// rest of the stream as usual.
TEST_CASE("the rest of a large PUBLISH is received in place, with memory that follows the bytes") {
    Harness h(large_packets());
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    sub.subscribe("big", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");

    std::vector<uint8_t> wire;
    std::vector<std::string> bodies;
    for (int i = 0; i < 3; ++i) {
        bodies.emplace_back(1024 * 1024 + size_t(i) * 777, char('a' + i));
        Publish p;
        p.topic = "big";
        p.qos = 1;
        p.packet_id = uint16_t(i + 1);
        p.payload = Bytes(reinterpret_cast<const uint8_t*>(bodies.back().data()), bodies.back().size());
        encode(p, Version::V5, wire);
    }
    const Stats before = h.broker->stats();
    // Not while nothing of a packet has come, nor for a client not connected.
    CHECK(!h.broker->wants_in_place(pub.id));
    CHECK(h.broker->receive_target(pub.id, 1 << 20).empty());
    h.broker->on_received_in_place(pub.id, 0);   // no target given: ignored

    size_t off = 0, in_place = 0, largest_capacity_step = 0;
    const size_t waiting = 100 * 1000;   // what the socket holds at each receive
    int hints_seen = 0;
    bool hinted = false;   // the reactor's Conn::in_place_hint
    while (off < wire.size()) {
        if (h.transport.in_place_hints[pub.id] != hints_seen) {
            hints_seen = h.transport.in_place_hints[pub.id];
            hinted = true;
        }
        if (hinted && !h.broker->wants_in_place(pub.id)) hinted = false;
        std::span<uint8_t> target = hinted ? h.broker->receive_target(pub.id, waiting) : std::span<uint8_t>{};
        if (target.empty()) {   // between packets: a small receive starts the next one
            const size_t n = std::min<size_t>(4096, wire.size() - off);
            pub.send_raw(std::vector<uint8_t>(wire.begin() + std::ptrdiff_t(off), wire.begin() + std::ptrdiff_t(off + n)));
            off += n;
            continue;
        }
        CHECK(target.size() <= waiting);
        largest_capacity_step = std::max(largest_capacity_step, target.size());
        const size_t n = std::min(target.size(), wire.size() - off);
        std::memcpy(target.data(), wire.data() + off, n);
        h.broker->on_received_in_place(pub.id, n);
        off += n;
        in_place += n;
    }
    const Stats& after = h.broker->stats();
    CHECK(in_place > 3 * 1000 * 1000);
    CHECK(hints_seen == 3);   // once a packet: small traffic makes the reactor ask nothing
    CHECK(h.transport.in_place_hints.count(sub.id) == 0);
    CHECK(after.partial_bytes_in_place - before.partial_bytes_in_place == in_place);
    // Only the 4 KiB receives that start each packet went through a copy
    // (and the buffer's early growth moved little).
    CHECK(after.partial_bytes_copied - before.partial_bytes_copied <= 3 * (4096 + 100 * 1000 * 4));
    const auto acks = pub.take_all<Ack>();
    REQUIRE(acks.size() == 3);
    auto got = sub.publishes();
    REQUIRE(got.size() == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(text(got[i].payload) == bodies[i]);

    // A target given out and then filled only in part (the socket had less
    // than it said, or EOF): the buffer keeps what came, nothing more.
    Publish p;
    p.topic = "big";
    p.payload = Bytes(reinterpret_cast<const uint8_t*>(bodies[0].data()), bodies[0].size());
    std::vector<uint8_t> one;
    encode(p, Version::V5, one);
    pub.send_raw(std::vector<uint8_t>(one.begin(), one.begin() + 4096));
    std::span<uint8_t> target = h.broker->receive_target(pub.id, 64 * 1024);
    REQUIRE(target.size() == 64 * 1024);
    std::memcpy(target.data(), one.data() + 4096, 10);
    h.broker->on_received_in_place(pub.id, 10);
    pub.send_raw(std::vector<uint8_t>(one.begin() + 4106, one.end()));
    got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == bodies[0]);
}

// Large payloads stay in the buffer they were reassembled in, shared by the
// message: a retained one and one queued for an offline session must come
// out intact after their buffers were let go and later packets arrived.
TEST_CASE("large payloads kept in their receive buffer outlive it, intact") {
    Harness h(large_packets());
    {
        TestClient sub(h, Version::V5);
        sub.connect("offline-sub", /*clean=*/false, 0, [] {
            Properties p;
            p.session_expiry = 600;
            return p;
        }());
        sub.subscribe("big/q", 1);
        sub.disconnect();
    }
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    auto body = [](size_t n, char c) {
        std::string b(n, c);
        for (size_t i = 0; i < n; i += 997) b[i] = char('0' + i % 10);   // not one repeated byte
        return b;
    };
    const std::string retained = body(200 * 1024, 'r'), queued = body(300 * 1024, 'q'), later = body(1024 * 1024, 'l');
    std::vector<uint8_t> wire;
    auto add = [&wire](std::string_view topic, const std::string& payload, bool retain, uint16_t pid) {
        Publish p;
        p.topic = topic;
        p.payload = Bytes(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
        p.qos = 1;
        p.packet_id = pid;
        p.retain = retain;
        p.props.content_type = "application/octet-stream";
        encode(p, Version::V5, wire);
    };
    add("big/r", retained, true, 1);
    add("big/q", queued, false, 2);
    add("big/other", later, false, 3);   // reuses or replaces the buffers before it
    add("big/other", later, false, 4);
    send_in_receives(pub, wire);
    CHECK_FALSE(pub.closed());
    CHECK(h.broker->stats().payloads_shared == 4);

    TestClient back(h, Version::V5);
    back.connect("offline-sub", /*clean=*/false);
    std::vector<Publish> got;
    for (const Packet& p : back.extra())
        if (std::holds_alternative<Publish>(p)) got.push_back(std::get<Publish>(p));
    for (const Publish& p : back.publishes()) got.push_back(p);
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "big/q");
    CHECK(text(got[0].payload) == queued);
    REQUIRE(got[0].props.content_type);
    CHECK(*got[0].props.content_type == "application/octet-stream");

    TestClient fresh(h, Version::V5);
    fresh.connect("fresh");
    fresh.subscribe("big/r", 0);
    std::vector<Publish> kept;
    for (const Packet& p : fresh.extra())
        if (std::holds_alternative<Publish>(p)) kept.push_back(std::get<Publish>(p));
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].retain);
    CHECK(text(kept[0].payload) == retained);
    REQUIRE(kept[0].props.content_type);
    CHECK(*kept[0].props.content_type == "application/octet-stream");
}

TEST_CASE("packets split inside their fixed header and back-to-back after a partial one") {
    Harness h;
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("t", 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    std::vector<uint8_t> wire;
    for (int i = 0; i < 3; ++i) {
        Publish p;
        p.topic = "t";
        const std::string body(200 + size_t(i), char('a' + i));   // remaining length needs 2 bytes
        p.payload = Bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size());
        encode(p, Version::V311, wire);
    }
    // One byte, then the rest of the header and part of the body, then the remainder.
    pub.send_raw({wire.begin(), wire.begin() + 1});
    pub.send_raw({wire.begin() + 1, wire.begin() + 50});
    pub.send_raw({wire.begin() + 50, wire.end()});
    auto got = sub.publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].payload.size() == 200);
    CHECK(got[2].payload.size() == 202);
    CHECK(text(got[2].payload) == std::string(202, 'c'));
}

TEST_CASE("before CONNECT a packet over max_connect_packet_size closes the connection") {
    Config cfg;
    cfg.max_connect_packet_size = 1024;
    Harness h(cfg);
    SUBCASE("announced by the fixed header alone") {
        TestClient c(h, Version::V311);
        c.send_raw({0x10, 0xD0, 0x0F});   // CONNECT, remaining length 2000
        CHECK(c.closed());
        CHECK(h.transport.sent[c.id].empty());
    }
    SUBCASE("a CONNECT with a large will") {
        TestClient c(h, Version::V311);
        Connect conn;
        conn.version = Version::V311;
        conn.client_id = "big";
        conn.will_flag = true;
        conn.will_topic = "w";
        const std::string will(2000, 'w');
        conn.will_payload = Bytes(reinterpret_cast<const uint8_t*>(will.data()), will.size());
        c.send(conn);
        CHECK(c.closed());
    }
    SUBCASE("after CONNECT max_packet_size applies") {
        TestClient sub(h, Version::V311);
        sub.connect("sub");
        sub.subscribe("t", 0);
        TestClient c(h, Version::V311);
        c.connect("ok");
        c.publish("t", std::string(4000, 'p'));
        CHECK_FALSE(c.closed());
        auto got = sub.publishes();
        REQUIRE(got.size() == 1);
        CHECK(got[0].payload.size() == 4000);
    }
}

TEST_CASE("a header announcing a large packet costs memory only for the bytes that arrived") {
    Harness h(large_packets());
    TestClient c(h, Version::V311);
    c.connect("slow");
    // PUBLISH announcing 3 MB, then only 10 bytes of it.
    c.send_raw({0x30, 0x80, 0x80, 0xC0, 0x01, 0x00, 0x01, 't', 'x', 'x', 'x', 'x', 'x', 'x', 'x'});
    CHECK(h.broker->stats().partial_buffers == 1);
    CHECK(h.broker->stats().partial_bytes_copied == 15);
    CHECK_FALSE(c.closed());
}

TEST_CASE("a connection that does not complete CONNECT within connect_timeout_ms is closed") {
    Config cfg;
    cfg.connect_timeout_ms = 500;
    Harness h(cfg);
    TestClient c(h, Version::V311);
    c.send_raw({0x10, 0x20, 0x00});   // the start of a CONNECT, never finished
    h.broker->on_tick(400);
    CHECK_FALSE(c.closed());
    h.broker->on_tick(600);
    CHECK(c.closed());
}

TEST_CASE("max_subscriptions_per_client refuses new filters past it, never a replacement") {
    Config cfg;
    cfg.max_subscriptions_per_client = 2;
    Harness h(cfg);
    TestClient c5(h, Version::V5), c3(h, Version::V311), p(h, Version::V311);
    c5.connect("c5");
    c3.connect("c3");
    p.connect("p");
    CHECK(c5.subscribe("a", 1, 1).reasons == std::vector<uint8_t>{1});
    CHECK(c5.subscribe("b", 1, 2).reasons == std::vector<uint8_t>{1});
    CHECK(c5.subscribe("c", 1, 3).reasons == std::vector<uint8_t>{rc::QuotaExceeded});
    CHECK(c5.subscribe("a", 0, 4).reasons == std::vector<uint8_t>{0});   // a replacement
    CHECK(c3.subscribe("x", 0, 1).reasons == std::vector<uint8_t>{0});   // the cap is per client
    CHECK(c3.subscribe("y", 0, 2).reasons == std::vector<uint8_t>{0});
    CHECK(c3.subscribe("z", 0, 3).reasons == std::vector<uint8_t>{0x80});
    CHECK(h.broker->stats().subscriptions_refused_limit == 2);
    p.publish("c", "not for c5");
    p.publish("a", "for c5");
    auto got = c5.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "a");
    CHECK_FALSE(c5.closed());   // a refusal is an answer, not a disconnect
    // An unsubscribe makes room.
    Unsubscribe u;
    u.packet_id = 5;
    u.filters.push_back("b");
    c5.send(u);
    c5.take_one<Unsuback>();
    CHECK(c5.subscribe("c", 1, 6).reasons == std::vector<uint8_t>{1});
    // A lower limit by a reload keeps what a session holds.
    Config lower = cfg;
    lower.max_subscriptions_per_client = 1;
    h.broker->reconfigure(lower);
    p.publish("c", "still for c5");
    CHECK(c5.publishes().size() == 1);
    CHECK(c5.subscribe("d", 1, 7).reasons == std::vector<uint8_t>{rc::QuotaExceeded});
}

TEST_CASE("shared-group names are freed with their last subscription") {
    Config cfg;
    cfg.max_topic_length = 65535;   // MQTT's own bound: the names are large on purpose
    Harness h(cfg);
    TestClient c(h, Version::V5);
    c.connect("c");
    const std::string big(60 * 1024, 'g');
    for (int i = 0; i < 20; ++i) {
        const std::string filter = "$share/" + big + std::to_string(i) + "/t";
        c.subscribe(filter, 1, uint16_t(i + 1));
        CHECK(h.broker->counts().shared_group_names == 1);
        Unsubscribe u;
        u.packet_id = uint16_t(i + 1);
        u.filters.push_back(filter);
        c.send(u);
        c.take_one<Unsuback>();
        CHECK(h.broker->counts().shared_group_names == 0);
    }
    // The same subscription twice (a replacement) still holds one reference.
    c.subscribe("$share/g/t", 1, 1);
    c.subscribe("$share/g/t", 1, 2);
    c.subscribe("$share/g/u", 1, 3);
    TestClient d(h, Version::V5);
    d.connect("d");
    d.subscribe("$share/g/t", 1, 1);
    CHECK(h.broker->counts().shared_group_names == 1);
    c.disconnect();   // session expiry 0: its subscriptions go
    CHECK(h.broker->counts().shared_group_names == 1);
    d.transport_gone();
    CHECK(h.broker->counts().shared_group_names == 0);
}

TEST_CASE("the route cache's counts follow the topics routed and empty on a subscription change") {
    Harness h;
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    sub.subscribe("t/#", 0);
    sub.subscribe("t/1", 0, 2);   // overlapping: merged into one match
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    CHECK(h.broker->counts().route_cache_topics == 0);
    pub.publish("t/1", "a");
    pub.publish("t/2", "b");
    pub.publish("t/1", "c");
    pub.publish("u/1", "d");   // no subscriber: kept, with no match
    CHECK(h.broker->counts().route_cache_topics == 3);
    CHECK(h.broker->counts().route_cache_matches == 2);
    TestClient other(h, Version::V5);
    other.connect("other");
    other.subscribe("t/1", 0);
    CHECK(h.broker->counts().route_cache_topics == 0);
    CHECK(h.broker->counts().route_cache_matches == 0);
    pub.publish("t/1", "e");
    CHECK(h.broker->counts().route_cache_topics == 1);
    CHECK(h.broker->counts().route_cache_matches == 2);
}

TEST_CASE("session-expiry timers do not pile up over connect/disconnect cycles") {
    Harness h;
    Properties props;
    props.session_expiry = 0xFFFFFFFEu;
    uint64_t now = 0;
    size_t most = 0;
    for (int i = 0; i < 5000; ++i) {
        TestClient c(h, Version::V5);
        c.connect("cycler", false, 0, props);
        c.disconnect();
        if (i % 50 == 0) h.broker->on_tick(now += 100);
        most = std::max(most, h.broker->counts().timers);
    }
    h.broker->on_tick(now += 100);
    // One live expiry timer, plus stale ones never more than the sweep threshold.
    CHECK(most <= 2100);
    CHECK(h.broker->counts().sessions == 1);
}

TEST_CASE("replies to a client that does not read stop its input, and it is dropped after slow_client_timeout_ms") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_client_timeout_ms = 1000;
    Harness h(cfg);
    TestClient c(h, Version::V5);
    c.connect("slow");
    c.ack(PacketType::Pubrec, 7);   // unknown id: answered with PUBREL 0x92
    auto rel = c.take_one<Ack>();
    CHECK(rel.type == PacketType::Pubrel);
    CHECK(h.transport.reading.count(c.id) == 0);

    // The client never reads: its output is over the limit.
    h.transport.queued[c.id] = 1001;
    c.ack(PacketType::Pubrec, 8);
    REQUIRE(h.transport.reading.count(c.id) == 1);
    CHECK(h.transport.reading[c.id] == false);

    SUBCASE("it drains: reading resumes") {
        h.transport.queued[c.id] = 400;
        h.broker->on_pass_end();
        CHECK(h.transport.reading[c.id] == true);
        h.broker->on_tick(2000);
        CHECK_FALSE(c.closed());
    }
    SUBCASE("it stays over the limit: disconnected") {
        h.broker->on_tick(600);
        CHECK_FALSE(c.closed());
        h.transport.queued[c.id] = 700;   // under the limit but not drained below half
        h.broker->on_tick(1100);
        CHECK(c.closed());
        CHECK(h.broker->stats().slow_clients_closed == 1);
    }
}

TEST_CASE("a QoS 0 subscriber over max_output_bytes is paused and dropped when it stays there") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_client_timeout_ms = 1000;
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("t", 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    h.transport.queued[sub.id] = 5000;
    pub.publish("t", "dropped");
    CHECK(h.broker->stats().qos0_dropped == 1);
    CHECK(h.transport.reading[sub.id] == false);
    h.broker->on_tick(1500);
    CHECK(sub.closed());
    CHECK_FALSE(pub.closed());
}

TEST_CASE("max_topic_levels refuses deeper topics, filters and wills, by version and QoS") {
    Config cfg;
    cfg.max_topic_levels = 4;
    Harness h(cfg);
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    // "a/b/c/" has 4 levels (the last one empty), "a/b/c/d/e" 5.
    CHECK(sub.subscribe("a/b/c/", 1, 1).reasons == std::vector<uint8_t>{1});
    CHECK(sub.subscribe("a/+/c/#", 1, 2).reasons == std::vector<uint8_t>{1});
    CHECK(sub.subscribe("a/+/c/d/#", 1, 3).reasons == std::vector<uint8_t>{rc::TopicFilterInvalid});
    // A shared subscription's levels are its filter's, the $share/group prefix aside.
    CHECK(sub.subscribe("$share/g/a/b/c/d", 1, 4).reasons == std::vector<uint8_t>{1});
    CHECK(sub.subscribe("$share/g/a/b/c/d/e", 1, 5).reasons == std::vector<uint8_t>{rc::TopicFilterInvalid});
    TestClient sub3(h, Version::V311);
    sub3.connect("sub3");
    CHECK(sub3.subscribe("////", 0, 1).reasons == std::vector<uint8_t>{0x80});

    // v5 QoS 1 and 2: refused with 0x90, the connection stays.
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("a/b/c/d/e", "deep", 1, false, 7);
    Ack a = pub.take_one<Ack>();
    CHECK(a.type == PacketType::Puback);
    CHECK(a.reason == rc::TopicNameInvalid);
    pub.publish("a/b/c/d/e", "deep", 2, false, 8);
    a = pub.take_one<Ack>();
    CHECK(a.type == PacketType::Pubrec);
    CHECK(a.reason == rc::TopicNameInvalid);
    pub.publish("a/b/c/", "at the limit", 1, false, 9);
    CHECK(pub.take_one<Ack>().reason == rc::Success);
    CHECK_FALSE(pub.closed());
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "at the limit");
    // v5 QoS 0: no ack to carry the reason, so the DISCONNECT does.
    pub.publish("a/b/c/d/e", "deep", 0);
    CHECK(pub.take_one<Disconnect>().reason == rc::TopicNameInvalid);
    CHECK(pub.closed());
    // v3.1.1 has no refusal code, and disconnected it would resend for
    // ever: acknowledged and dropped, like a topic the ACL denies.
    TestClient pub3(h, Version::V311);
    pub3.connect("pub3");
    pub3.publish("a/b/c/d/e", "deep", 1);
    CHECK(pub3.take_one<Ack>().reason == 0);
    pub3.publish("a/b/c/d/e", "deep", 0);
    CHECK(pub3.take().empty());
    CHECK_FALSE(pub3.closed());
    CHECK(sub.publishes().empty());

    // A will to a deeper topic refuses the CONNECT.
    TestClient w(h, Version::V5);
    Connect c;
    c.client_id = "w";
    c.will_flag = true;
    c.will_topic = "a/b/c/d/e";
    CHECK(w.connect_with(c).reason == rc::TopicNameInvalid);
    CHECK(h.broker->stats().topics_refused_levels == 3 + 3 + 2 + 1);   // filters, v5 and v3 PUBLISHes, will
}

// Long names cost memory the way deep ones cost matching: a filter is kept
// about three times, and MQTT allows 65 535 bytes.
TEST_CASE("max_topic_length refuses longer topics, filters and wills, like max_topic_levels") {
    Config cfg;
    cfg.max_topic_length = 12;
    Harness h(cfg);
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    CHECK(sub.subscribe("long/exactly", 1, 1).reasons == std::vector<uint8_t>{1});   // 12 bytes
    CHECK(sub.subscribe("long/exactlyX", 1, 2).reasons == std::vector<uint8_t>{rc::TopicFilterInvalid});
    CHECK(sub.subscribe("$share/g/l/#", 1, 3).reasons == std::vector<uint8_t>{1});   // the prefix counts
    CHECK(sub.subscribe("$share/g/lo/#", 1, 4).reasons == std::vector<uint8_t>{rc::TopicFilterInvalid});
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("long/exactly", "ok", 1, false, 7);
    CHECK(pub.take_one<Ack>().reason == rc::Success);
    pub.publish("long/exactly/", "too long", 1, false, 8);
    CHECK(pub.take_one<Ack>().reason == rc::TopicNameInvalid);
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "ok");
    TestClient w(h, Version::V5);
    Connect c;
    c.client_id = "w";
    c.will_flag = true;
    c.will_topic = "long/will/topic";
    CHECK(w.connect_with(c).reason == rc::TopicNameInvalid);
    CHECK(h.broker->stats().topics_refused_levels == 2 + 1 + 1);   // filters, PUBLISH, will
}

TEST_CASE("a configured bridge's deep QoS 0 message is dropped, not answered with a DISCONNECT it would reconnect on") {
    Config cfg;
    cfg.max_topic_levels = 4;
    cfg.session_budgets.push_back({"$bridge/up", 0, true, false});
    Harness h(cfg);
    TestClient bridge(h, Version::V5);
    Properties keep;
    keep.session_expiry = 300;
    bridge.connect("$bridge/up", false, 0, keep);
    bridge.publish("a/b/c/d/e", "deep", 0);
    CHECK(bridge.take().empty());
    CHECK_FALSE(bridge.closed());
    bridge.publish("a/b/c/d/e", "deep", 1, false, 3);
    CHECK(bridge.take_one<Ack>().reason == rc::TopicNameInvalid);   // the link drops it as refused for good
    CHECK(h.broker->stats().topics_refused_levels == 2);
}

TEST_CASE("max_client_id_length refuses longer client ids") {
    Config cfg;
    cfg.max_client_id_length = 30;
    Harness h(cfg);
    TestClient ok(h, Version::V5), no5(h, Version::V5), no3(h, Version::V311);
    CHECK(ok.connect(std::string(30, 'a')).reason == rc::Success);
    CHECK(no5.connect(std::string(31, 'b')).reason == rc::ClientIdentifierNotValid);
    CHECK(no3.connect(std::string(31, 'c')).reason == rc::ClientIdentifierNotValid);   // return code 2
    CHECK(no5.closed());
    CHECK(no3.closed());
}

TEST_CASE("max_sessions refuses a new persistent session past it, never a resume or a clean session") {
    Config cfg;
    cfg.max_sessions = 2;
    cfg.session_budgets.push_back({"$bridge/up", 0, true, false});
    Harness h(cfg);
    Properties keep;
    keep.session_expiry = 300;
    TestClient a(h, Version::V5), b(h, Version::V311);
    CHECK(a.connect("a", true, 0, keep).reason == rc::Success);
    CHECK(b.connect("b", false).reason == 0);
    a.transport_gone();
    b.transport_gone();
    // Two sessions held, nobody connected: a third persistent one is refused
    // (v5 0x97, v3 return code 3), a clean one is not.
    TestClient c5(h, Version::V5), c3(h, Version::V311), clean(h, Version::V5);
    CHECK(c5.connect("c5", true, 0, keep).reason == rc::QuotaExceeded);
    CHECK(c3.connect("c3", false).reason == rc::ServerUnavailable);   // return code 3, as decoded
    CHECK(clean.connect("clean").reason == rc::Success);
    CHECK(h.broker->stats().sessions_refused_limit == 2);
    // Resuming a held session, or starting it afresh, adds none.
    TestClient a2(h, Version::V5), b2(h, Version::V311);
    CHECK(a2.connect("a", false, 0, keep).session_present);
    CHECK(b2.connect("b", false).reason == 0);
    // A clean session taken over by a persistent one adds a session.
    TestClient clean2(h, Version::V5);
    CHECK(clean2.connect("clean", true, 0, keep).reason == rc::QuotaExceeded);
    CHECK_FALSE(clean.closed());
    // A configured bridge's session is exempt.
    TestClient bridge(h, Version::V5);
    CHECK(bridge.connect("$bridge/up", false, 0, keep).reason == rc::Success);
    // Room again once sessions end (bridge sessions count, though exempt).
    Properties end;
    end.session_expiry = 0;
    a2.disconnect(0, end);
    bridge.disconnect(0, end);
    clean.disconnect();
    TestClient c5b(h, Version::V5);
    CHECK(c5b.connect("c5", true, 0, keep).reason == rc::Success);
}

TEST_CASE("a SUBSCRIBE's retained messages stop once the subscriber has no room for any") {
    Config cfg;
    cfg.max_inflight = 2;
    cfg.max_queued_messages = 3;
    Harness h(cfg);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    for (int i = 0; i < 10; ++i) pub.publish("r/" + std::to_string(i), "v", 1, true);
    pub.take();
    // QoS 1 to a client whose output is past its hard bound (so a QoS 0
    // retained message would be dropped too): the first filter fills the
    // queue, and matching stops there (the other 7 are not even decoded);
    // the other two filters, matching the same 10, are not matched at all.
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    h.transport.queued[sub.id] = 3 * cfg.max_output_bytes;
    Subscribe s;
    s.packet_id = 1;
    for (const char* f : {"r/#", "r/+", "+/+"}) s.topics.push_back({f, 1, false, false, 0});
    sub.send(s);
    auto got = sub.take();
    REQUIRE(!got.empty());
    CHECK(std::get<Suback>(got[0]).reasons == std::vector<uint8_t>{1, 1, 1});
    CHECK(h.broker->stats().queued_dropped == 0);   // 3 queued: its output takes none in flight
    CHECK(h.broker->session_queue("sub").messages == 3);
    h.transport.queued[sub.id] = 0;
    // QoS 0 to a client past its output's hard bound: nothing matched, nothing sent.
    TestClient slow(h, Version::V5);
    slow.connect("slow");
    h.transport.queued[slow.id] = 3 * cfg.max_output_bytes;
    s.topics.clear();
    for (const char* f : {"r/#", "r/+", "+/+"}) s.topics.push_back({f, 0, false, false, 0});
    slow.send(s);
    got = slow.take();
    REQUIRE(got.size() == 1);
    CHECK(std::get<Suback>(got[0]).reasons == std::vector<uint8_t>{0, 0, 0});
    CHECK(h.broker->stats().qos0_dropped == 0);
    // A QoS 0 retained message goes past a full queue: a filter granted
    // QoS 1 still delivers those.
    pub.publish("q/0/s", "status", 0, true);   // matched by none of the filters above
    pub.take();
    s.packet_id = 3;
    s.topics.clear();
    s.topics.push_back({"q/+/s", 1, false, false, 0});
    sub.send(s);
    got = sub.take();
    const auto status = std::count_if(got.begin(), got.end(), [](const Packet& pk) {
        return std::holds_alternative<Publish>(pk) && text(std::get<Publish>(pk).payload) == "status";
    });
    CHECK(status == 1);
    // With room again, a new SUBSCRIBE gets them all.
    h.transport.queued[slow.id] = 0;
    s.packet_id = 2;
    s.topics.clear();
    s.topics.push_back({"r/#", 0, false, false, 0});
    slow.send(s);
    CHECK(slow.take().size() == 1 + 10);
}

TEST_CASE("retained messages a SUBSCRIBE would queue into a full queue are counted as dropped; QoS 0 ones still go") {
    Config cfg;
    cfg.max_inflight = 1;
    cfg.max_queued_messages = 2;
    Harness h(cfg);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    for (int i = 0; i < 5; ++i) pub.publish("r/" + std::to_string(i), "q1", 1, true);
    pub.publish("r/z", "q0", 0, true);
    pub.take();
    TestClient sub(h, Version::V5);
    sub.connect("sub");
    sub.subscribe("r/#", 1, 1);
    sub.extra();
    CHECK(h.broker->stats().queued_dropped == 2);   // 1 in flight, 2 queued
    // Into the full queue: all five QoS 1 counted, as deliver() would; the
    // QoS 0 one goes out at once.
    CHECK(sub.subscribe("r/+", 1, 2).reasons == std::vector<uint8_t>{1});
    auto more = sub.extra();
    REQUIRE(more.size() == 1);
    CHECK(text(std::get<Publish>(more[0]).payload) == "q0");
    CHECK(h.broker->stats().queued_dropped == 2 + 5);
}

// A device that puts a time stamp in its retained topic filled memory and
// the store with one retained message per publish, without bound.
TEST_CASE("max_retained_messages: a new retained topic past it is refused (v5 QoS 1/2) or not retained; replacing and clearing stay allowed") {
    Config cfg;
    cfg.max_retained_messages = 3;
    Harness h(cfg);
    // The broker's own do not count against clients.
    for (const char* t : {"$SYS/a", "$SYS/b", "$SYS/c", "$SYS/d"})
        h.broker->publish_internal(t, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("1"), 1), true);
    TestClient live(h, Version::V5);
    live.connect("live");
    live.subscribe("r/#", 1, 1, 0, 0, false, /*rap=*/true);
    TestClient v5(h, Version::V5), v3(h, Version::V311);
    v5.connect("v5");
    v3.connect("v3");
    for (int i = 0; i < 3; ++i) v5.publish("r/" + std::to_string(i), "v", 1, true);
    v5.take();
    CHECK(live.publishes().size() == 3);

    v5.publish("r/new5", "x", 1, true, 7);
    auto acks = v5.take_all<Ack>();
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].reason == rc::QuotaExceeded);
    CHECK(live.take().empty());   // refused: not delivered either
    v3.publish("r/new3", "y", 1, true);
    CHECK(v3.take_all<Ack>().at(0).reason == rc::Success);
    auto got = live.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "r/new3");
    CHECK_FALSE(got[0].retain);   // delivered, not retained
    v5.publish("r/new0", "z", 0, true);
    REQUIRE(live.publishes().size() == 1);
    CHECK(h.broker->stats().retained_refused_limit == 3);

    v5.publish("r/1", "replaced", 1, true);   // a replacement adds nothing
    CHECK(v5.take_all<Ack>().at(0).reason == rc::Success);
    v5.publish("r/2", "", 1, true);           // a clear makes room
    v5.publish("r/new5", "x", 1, true);
    for (const Ack& a : v5.take_all<Ack>()) CHECK(a.reason == rc::Success);
    live.take();
    TestClient late(h, Version::V5);
    late.connect("late");
    late.subscribe("r/#", 1);
    std::vector<std::string> retained;
    for (const Packet& p : late.extra()) retained.push_back(std::string(std::get<Publish>(p).topic));
    std::sort(retained.begin(), retained.end());
    CHECK(retained == std::vector<std::string>{"r/0", "r/1", "r/new5"});
}

// From a review of max_retained_messages: expired messages held places
// until a restart (nothing removes them while running), a retained will
// went past the limit, and a connection's own state topic ($SYS, the
// broker's) was counted and then not retained.
TEST_CASE("max_retained_messages: expired ones free their places, wills keep to it, only what the broker writes is exempt") {
    Config cfg;
    cfg.max_retained_messages = 2;
    cfg.max_message_expiry = 5;
    Harness h(cfg);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("r/0", "a", 1, true);
    pub.publish("r/1", "b", 1, true);
    pub.take();
    h.broker->on_tick(6000);   // both expired
    pub.publish("r/2", "c", 1, true);
    pub.publish("r/3", "d", 1, true);
    for (const Ack& a : pub.take_all<Ack>()) CHECK(a.reason != rc::QuotaExceeded);
    CHECK(h.broker->stats().retained_refused_limit == 0);

    Connect wc;
    wc.client_id = "w";
    wc.will_flag = true;
    wc.will_topic = "r/will";
    wc.will_payload = Bytes(reinterpret_cast<const uint8_t*>("gone"), 4);
    wc.will_retain = true;
    TestClient w(h, Version::V5);
    w.connect_with(wc);
    w.transport_gone();
    CHECK(h.broker->retained_payload("r/will").empty());
    CHECK(h.broker->stats().retained_refused_limit == 1);

    // Only what the broker writes is exempt. Any client may write its own
    // connection state (a new one for each client id it takes) and any '$'
    // root other than $SYS and $bridge: counted, and refused at the limit
    // like any topic.
    TestClient dev(h, Version::V5);
    dev.connect("dev");
    Properties two;
    two.message_expiry = 2;
    for (const char* t : {"$SYS/broker/connection/dev/state", "$x/1", "$aws/things/1"}) {
        CAPTURE(t);
        dev.publish(t, "1", 1, true, 0, two);
        CHECK(dev.take_all<Ack>().at(0).reason == rc::QuotaExceeded);
        CHECK(h.broker->retained_payload(t).empty());
    }
    // With room, the state topic is retained with the expiry it asked for
    // (not the bound, which is clients': $SYS is the broker's).
    pub.publish("r/2", "", 1, true);
    pub.take();
    dev.publish("$SYS/broker/connection/dev/state", "1", 1, true, 0, two);
    CHECK(dev.take_all<Ack>().at(0).reason == rc::NoMatchingSubscribers);   // stored, nobody subscribed
    CHECK(h.broker->retained_payload("$SYS/broker/connection/dev/state") == "1");
    h.broker->on_tick(9000);
    CHECK(h.broker->retained_payload("$SYS/broker/connection/dev/state").empty());
}

// From a review of max_topic_length: a retained topic kept from before a
// lower limit could not be cleared (the clear was refused as too long),
// and a refused topic set as a v5 alias stayed with the connection.
TEST_CASE("max_topic_length: a held retained topic can still be cleared; a refused topic is no alias") {
    Harness h;
    const std::string long_topic = "r/" + std::string(200, 'x');
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish(long_topic, "old", 1, true, 1);
    CHECK(pub.take_one<Ack>().reason == rc::NoMatchingSubscribers);
    Config lower = h.cfg;
    lower.max_topic_length = 100;
    h.broker->reconfigure(lower);
    pub.publish(long_topic, "new", 1, true, 2);
    CHECK(pub.take_one<Ack>().reason == rc::TopicNameInvalid);
    CHECK(h.broker->retained_payload(long_topic) == "old");
    pub.publish(long_topic, "", 1, true, 3);   // a clear of what is held
    CHECK(pub.take_one<Ack>().reason != rc::TopicNameInvalid);
    CHECK(h.broker->retained_payload(long_topic).empty());

    Properties alias;
    alias.topic_alias = 1;
    pub.publish(long_topic, "x", 1, false, 4, alias);
    CHECK(pub.take_one<Ack>().reason == rc::TopicNameInvalid);
    Publish by_alias;
    by_alias.props.topic_alias = 1;
    by_alias.payload = Bytes(reinterpret_cast<const uint8_t*>("y"), 1);
    pub.send(by_alias);
    CHECK(pub.take_one<Disconnect>().reason == rc::ProtocolError);   // never set
}
