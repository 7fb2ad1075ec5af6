// Back-pressure instead of loss: a receiver over max_output_bytes stops the
// broker's intake (everyone's input) until it drained below half, for
// slow_consumer_ms at most; after that only its own QoS 0 is dropped.
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

TEST_CASE("a QoS 0 receiver over max_output_bytes stops intake; it resumes once the output drained") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_consumer_ms = 500;
    Harness h(cfg);
    TestClient sub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("t", 0);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    h.transport.queued[sub.id] = 1500;   // over the limit, under the hard bound (twice it)
    pub.publish("t", "kept");
    CHECK(h.broker->stats().qos0_dropped == 0);
    CHECK(sub.publishes().size() == 1);   // queued, not dropped
    CHECK(h.transport.intake == false);
    pub.publish("t", "kept too");         // what the input already taken routes to it still goes
    CHECK(sub.publishes().size() == 1);
    CHECK(h.broker->stats().qos0_dropped == 0);
    h.broker->on_tick(300);
    CHECK(h.transport.intake == false);   // not yet slow_consumer_ms
    h.transport.queued[sub.id] = 400;     // drained below half
    h.broker->on_pass_end();
    CHECK(h.transport.intake == true);
    CHECK(h.transport.slow.empty());      // never a slow consumer: nothing logged
    pub.publish("t", "after");
    CHECK(sub.publishes().size() == 1);
    CHECK(h.broker->stats().qos0_dropped == 0);
}

TEST_CASE("after slow_consumer_ms a receiver alone drops, intake resumes for everyone else") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_consumer_ms = 500;
    cfg.slow_client_timeout_ms = 10000;
    Harness h(cfg);
    TestClient slow(h, Version::V311), fast(h, Version::V311), pub(h, Version::V311);
    slow.connect("slow");
    slow.subscribe("t", 0);
    fast.connect("fast");
    fast.subscribe("t", 0);
    pub.connect("pub");
    h.transport.queued[slow.id] = 1500;
    pub.publish("t", "one");
    CHECK(h.transport.intake == false);
    h.broker->on_tick(600);               // held longer than slow_consumer_ms
    CHECK(h.transport.intake == true);
    REQUIRE(h.transport.slow.size() == 1);
    CHECK(h.transport.slow[0].first == true);
    CHECK(fast.publishes().size() == 1);
    CHECK(slow.publishes().size() == 1);
    for (int i = 0; i < 5; ++i) pub.publish("t", "more");
    CHECK(fast.publishes().size() == 5);  // the others get everything
    CHECK(slow.publishes().empty());      // the slow one's QoS 0 is dropped, counted
    CHECK(h.broker->stats().qos0_dropped == 5);
    CHECK(h.transport.intake == true);
    h.transport.queued[slow.id] = 0;      // it caught up: one line with its count
    h.broker->on_pass_end();
    REQUIRE(h.transport.slow.size() == 2);
    CHECK(h.transport.slow[1] == std::make_pair(false, uint64_t(5)));
    pub.publish("t", "again");
    CHECK(slow.publishes().size() == 1);
    CHECK(fast.publishes().size() == 1);
}

// A client falling behind over and over (stops reading 0.6 s, drains 0.1 s)
// held everyone's intake for slow_consumer_ms at each fall, and logged two
// lines each time: its cool-down makes it slow at once, quietly.
TEST_CASE("a receiver that was a slow consumer lately does not hold the intake again until its cool-down ends") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_consumer_ms = 500;
    cfg.slow_client_timeout_ms = 60000;
    Harness h(cfg);
    TestClient slow(h, Version::V311), fast(h, Version::V311), pub(h, Version::V311);
    slow.connect("slow");
    slow.subscribe("t", 0);
    fast.connect("fast");
    fast.subscribe("t", 0);
    pub.connect("pub");
    h.transport.queued[slow.id] = 1500;
    pub.publish("t", "one");
    CHECK(h.transport.intake == false);
    h.broker->on_tick(600);
    CHECK(h.transport.intake == true);
    h.transport.queued[slow.id] = 0;
    h.broker->on_pass_end();   // caught up at 600: cool-down to 600 + 10 x 500
    REQUIRE(h.transport.slow.size() == 2);
    for (uint64_t t = 1000; t < 5600; t += 700) {
        h.broker->on_tick(t);
        h.transport.queued[slow.id] = 1500;   // behind again
        pub.publish("t", "more");
        CHECK(h.transport.intake == true);    // nobody waits for it
        h.transport.queued[slow.id] = 0;
        h.broker->on_pass_end();
    }
    CHECK(h.transport.slow.size() == 2);      // nothing more logged
    CHECK(fast.publishes().size() == 8);
    // Its last fall was at 5200: free to hold the intake again after 10200.
    h.broker->on_tick(10300);
    h.transport.queued[slow.id] = 1500;
    pub.publish("t", "fresh episode");
    CHECK(h.transport.intake == false);
}

TEST_CASE("a receiver that goes away releases the intake it held") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    Harness h(cfg);
    TestClient sub(h, Version::V311), pub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("t", 0);
    pub.connect("pub");
    h.transport.queued[sub.id] = 1500;
    pub.publish("t", "x");
    CHECK(h.transport.intake == false);
    h.broker->on_close(sub.id);
    CHECK(h.transport.intake == true);
}

TEST_CASE("slow_consumer_ms 0: QoS 0 over the limit is dropped at once and intake never stops") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_consumer_ms = 0;
    Harness h(cfg);
    TestClient sub(h, Version::V311), pub(h, Version::V311);
    sub.connect("sub");
    sub.subscribe("t", 0);
    pub.connect("pub");
    h.transport.queued[sub.id] = 1500;
    pub.publish("t", "x");
    CHECK(h.broker->stats().qos0_dropped == 1);
    CHECK(h.transport.intake == true);
}

TEST_CASE("a client over the limit with its own replies is not read, and nobody else is held for it") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    Harness h(cfg);
    TestClient c(h, Version::V5);
    c.connect("replies");
    h.transport.queued[c.id] = 1001;
    c.ack(PacketType::Pubrec, 8);   // unknown id: answered with PUBREL 0x92
    CHECK(h.transport.reading[c.id] == false);
    CHECK(h.transport.intake == true);
}

TEST_CASE("answers held for a slow store stop reading a client, but neither keep alive nor the slow-client timeout drops it") {
    Config cfg;
    cfg.max_output_bytes = 100;
    cfg.slow_client_timeout_ms = 1000;
    Harness h(cfg);
    TestClient c(h, Version::V311);
    c.connect("held", /*clean=*/false, /*keep_alive=*/2);
    h.persist.auto_durable = false;   // the store stalls (a failing or slow sync)
    h.persist.durable = h.persist.last_ticket;
    Subscribe s;
    s.packet_id = 1;
    s.topics.push_back({"t", 0, false, false, 0});
    c.send(s);                        // its SUBACK waits for the subscription's record
    const uint64_t packets_before = h.broker->stats().packets_out;
    for (int i = 0; i < 100; ++i) c.send(Pingreq{});   // 200 bytes of PINGRESP behind it
    CHECK(c.take().empty());
    CHECK(h.transport.reading[c.id] == false);   // over the limit: not read further
    h.broker->on_tick(5000);          // past 1.5 x keep alive, and slow_client_timeout_ms
    h.broker->on_tick(10000);
    CHECK(h.transport.closed.count(c.id) == 0);
    CHECK(h.broker->stats().slow_clients_closed == 0);
    // The store catches up: everything goes out, in order, each packet counted.
    h.persist.durable = h.persist.last_ticket;
    h.broker->on_durable();
    h.broker->on_pass_end();
    auto out = c.take();
    REQUIRE(out.size() == 101);
    CHECK(std::holds_alternative<Suback>(out.front()));
    CHECK(std::holds_alternative<Pingresp>(out.back()));
    CHECK(h.broker->stats().packets_out - packets_before == 101);
    CHECK(h.transport.reading[c.id] == true);
}

// A bridge's output waits for its WAN link: a slow uplink must neither stop
// every publisher's input nor get the bridge's session closed as a slow
// client (its QoS 1/2 waits in the session; the link's keep-alive judges the
// link).
TEST_CASE("a bridge's session over the limit drops its QoS 0 at once, holds no one's intake, is never closed as slow") {
    Config cfg;
    cfg.max_output_bytes = 1000;
    cfg.slow_consumer_ms = 500;
    cfg.slow_client_timeout_ms = 1000;
    cfg.session_budgets.push_back({"$bridge/site", 0, true, false});
    Harness h(cfg);
    TestClient bridge(h, Version::V5), pub(h, Version::V311);
    bridge.connect("$bridge/site", /*clean=*/false);
    bridge.subscribe("t", 1);
    pub.connect("pub");
    h.transport.queued[bridge.id] = 1500;   // the upstream socket is backed up
    pub.publish("t", "one");
    CHECK(h.transport.intake == true);
    h.broker->on_pass_end();
    REQUIRE(h.transport.slow.size() == 1);   // logged once, as a slow consumer
    for (int i = 0; i < 5; ++i) pub.publish("t", "more");
    CHECK(h.broker->stats().qos0_dropped == 5);
    pub.publish("t", "kept", 1);             // QoS 1 waits in its session
    h.broker->on_tick(5000);
    h.broker->on_tick(10000);
    CHECK(h.transport.closed.count(bridge.id) == 0);
    CHECK(h.broker->stats().slow_clients_closed == 0);
    CHECK(h.transport.intake == true);
    h.transport.queued[bridge.id] = 0;       // the link caught up
    h.broker->on_pass_end();
    bool kept = false;
    for (const auto& p : bridge.take())
        if (const auto* m = std::get_if<Publish>(&p)) kept = kept || (m->topic == "t" && m->qos == 1);
    CHECK(kept);
}
