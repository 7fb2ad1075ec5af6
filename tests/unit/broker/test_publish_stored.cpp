// Messages a device adapter publishes (publish_stored: stored like a
// client's, at its QoS) and the PUBLISHes it observes (PublishObserver:
// only those the ACL let through).
#include <doctest/doctest.h>

#include "test_broker_harness.hpp"

using namespace hato;
using namespace hato::broker;
using namespace hato::broker::test;
using namespace hato::mqtt;

namespace {

void publish_stored(Broker& b, std::string_view topic, std::string_view value, uint8_t qos, bool retain) {
    b.publish_stored(topic, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}, qos, retain);
}

struct Seen final : PublishObserver {
    std::vector<std::pair<std::string, std::string>> got;
    std::vector<bool> bridged_retained;
    void on_client_publish(std::string_view topic, std::span<const uint8_t> payload, bool bridged_ret) override {
        bridged_retained.push_back(bridged_ret);
        got.emplace_back(std::string(topic), std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
    }
};

// "viewer" may not publish anything; everyone may read.
struct WriteAcl final : Authorizer {
    bool can_publish(const ClientInfo& c, std::string_view) override { return c.client_id != "viewer"; }
    bool can_subscribe(const ClientInfo&, std::string_view) override { return true; }
    bool can_receive(const ClientInfo&, std::string_view) override { return true; }
};

}  // namespace

TEST_CASE("publish_stored: retained value and queued QoS 1 copies are written to the store") {
    Harness h;
    TestClient sub(h, Version::V311);
    sub.connect("keeper", /*clean=*/false);
    sub.subscribe("plant/#", 1);
    sub.transport_gone();   // offline: the copy is queued for it
    h.persist.calls.clear();

    publish_stored(*h.broker, "plant/press1/temp", "{\"value\": 1}", 1, true);
    CHECK(h.persist.count("retained_set plant/press1/temp") == 1);
    CHECK(h.persist.count("out_enqueue keeper") == 1);

    TestClient late(h, Version::V311);
    late.connect("late");
    late.subscribe("plant/press1/temp", 1);
    auto extra = late.extra();
    REQUIRE(extra.size() == 1);
    const auto& p = std::get<Publish>(extra[0]);
    CHECK(p.retain);
    CHECK(p.qos == 1);
    CHECK(h.broker->stats().messages_in == 0);   // no client's message
}

TEST_CASE("PublishObserver sees what clients publish, after the ACL") {
    Harness h;
    WriteAcl acl;
    Seen seen;
    h.broker->set_authorizer(&acl);
    h.broker->set_publish_observer(&seen);
    TestClient op(h, Version::V311), viewer(h, Version::V5);
    op.connect("op");
    viewer.connect("viewer");
    op.publish("plant/a/set", "5", 1);
    viewer.publish("plant/a/set", "6", 1);
    REQUIRE(seen.got.size() == 1);
    CHECK(seen.got[0].first == "plant/a/set");
    CHECK(seen.got[0].second == "5");
    h.broker->set_publish_observer(nullptr);
    op.publish("plant/a/set", "7", 0);
    CHECK(seen.got.size() == 1);
}

// A QoS 1/2 PUBLISH the store refused is sent again by its client: an
// observer told of both would write a Modbus register twice.
TEST_CASE("PublishObserver is told of a QoS 1/2 PUBLISH only once the store took it") {
    Harness h;
    Seen seen;
    h.broker->set_publish_observer(&seen);
    TestClient keeper(h, Version::V311);
    keeper.connect("keeper", /*clean=*/false);
    keeper.subscribe("plant/#", 1);
    keeper.transport_gone();   // its copy is an out_enqueue the store may refuse
    TestClient op(h, Version::V5);
    op.connect("op");

    h.persist.refuse = {"out_enqueue"};
    op.publish("plant/a/set", "5", 1);
    CHECK(op.take_one<Ack>().reason == rc::QuotaExceeded);
    CHECK(seen.got.empty());
    h.persist.refuse.clear();
    op.publish("plant/a/set", "5", 1);   // the client's resend
    CHECK(op.take_one<Ack>().reason == rc::Success);
    REQUIRE(seen.got.size() == 1);
    CHECK(seen.got[0].second == "5");
    op.publish("plant/a/set", "6", 0);   // QoS 0: nothing to refuse
    CHECK(seen.got.size() == 2);
    h.broker->set_publish_observer(nullptr);
}

// An upstream replays its retained /set at every (re)subscription of a
// bridge: the observer (the Modbus runner) must be able to tell.
TEST_CASE("PublishObserver is told when a retained message came over a bridge") {
    Harness h;
    Seen seen;
    h.broker->set_publish_observer(&seen);
    TestClient op(h, Version::V311), bridge(h, Version::V311);
    op.connect("op");
    Connect c;
    c.client_id = "site-bridge";
    c.bridge = true;   // Mosquitto's bridge bit
    bridge.connect_with(c);
    op.publish("plant/a/set", "1", 0, /*retain=*/true);
    bridge.publish("plant/a/set", "2", 0, /*retain=*/false);
    bridge.publish("plant/a/set", "3", 0, /*retain=*/true);
    bridge.publish("plant/a/set", "4", 1, /*retain=*/true);
    CHECK(seen.got.size() == 4);
    CHECK(seen.bridged_retained == std::vector<bool>{false, false, true, true});
    h.broker->set_publish_observer(nullptr);
}

// A Modbus point with retain = true under [mqtt] retain_available = false:
// its value goes on like a client's, not retained. The bridge's own state
// (keep_retained) is no publication and is kept.
TEST_CASE("publish_stored heeds retain_available = false; keep_retained does not") {
    Config cfg;
    cfg.retain_available = false;
    Harness h(cfg);
    TestClient live(h, Version::V5);
    live.connect("live");
    live.subscribe("plant/#", 1, 1, 0, 0, false, /*rap=*/true);   // would show a retain flag

    publish_stored(*h.broker, "plant/press1/temp", "{\"value\": 1}", 1, true);
    auto got = live.publishes();
    REQUIRE(got.size() == 1);
    CHECK_FALSE(got[0].retain);
    CHECK(h.persist.count("retained_set plant/press1/temp") == 0);
    CHECK(h.broker->retained_payload("plant/press1/temp").empty());
    TestClient late(h, Version::V311);
    late.connect("late");
    late.subscribe("plant/#", 1);
    CHECK(late.extra().empty());

    const std::string state = "up/#\n";
    h.broker->keep_retained("$bridge/site/upstream_filters",
                            {reinterpret_cast<const uint8_t*>(state.data()), state.size()});
    CHECK(h.persist.count("retained_set $bridge/site/upstream_filters") == 1);
    CHECK(h.broker->retained_payload("$bridge/site/upstream_filters") == state);
}
