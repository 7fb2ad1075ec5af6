// A bridge's session ("$bridge/<name>", named by Config::session_budgets):
// queue_qos0 queues QoS 0 messages as QoS 1 while it is offline, and
// session_queue() reports its backlog (count, bytes, oldest).
#include <doctest/doctest.h>

#include "test_broker_harness.hpp"

namespace hato::broker::test {

TEST_CASE("queue_qos0: QoS 0 messages wait in a bridge session's queue, as QoS 1") {
    Config cfg;
    cfg.session_budgets.push_back({"$bridge/site", 0, true, true});
    cfg.session_budgets.push_back({"$bridge/other", 0, true, false});
    Harness h(cfg);
    for (const char* id : {"$bridge/site", "$bridge/other"}) {
        TestClient b(h, Version::V311);
        b.connect(id, false);
        b.subscribe("plant/#", 1);
        b.transport_gone();
    }
    CHECK(h.broker->session_queue("$bridge/site").messages == 0);
    TestClient p(h, Version::V311);
    p.connect("p");
    h.broker->on_tick(1000);
    p.publish("plant/a", "zero", 0);
    h.broker->on_tick(3000);
    p.publish("plant/b", "one", 1);
    p.take();

    const Broker::QueueInfo q = h.broker->session_queue("$bridge/site");
    CHECK(q.messages == 2);
    CHECK(q.bytes > 0);
    CHECK(q.oldest_age_ms == 2000);   // queued at 1000, now 3000
    CHECK(h.broker->session_queue("$bridge/other").messages == 1);   // its QoS 0 one was not queued
    CHECK(h.broker->session_queue("nobody").messages == 0);

    TestClient b(h, Version::V311);
    CHECK(b.connect("$bridge/site", false).session_present);
    auto got = b.extra();   // the queue, sent after CONNACK
    REQUIRE(got.size() == 2);
    const auto& first = std::get<Publish>(got[0]);
    CHECK(first.qos == 1);
    CHECK(first.topic == "plant/a");
    b.ack(PacketType::Puback, first.packet_id);
    b.ack(PacketType::Puback, std::get<Publish>(got[1]).packet_id);
    CHECK(h.broker->session_queue("$bridge/site").messages == 0);
    CHECK(h.broker->session_queue("$bridge/site").oldest_age_ms == 0);
}

}  // namespace hato::broker::test
