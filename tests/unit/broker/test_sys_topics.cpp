// $SYS: the topics made from the gauges, the load averages, the latency
// quantiles, and the broker's internal retained publishes (memory only,
// ACL-checked, never matched by a leading wildcard).
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "broker/sys_topics.hpp"
#include "test_broker_harness.hpp"

using namespace hato;
using namespace hato::broker;
using namespace hato::broker::test;
using namespace hato::mqtt;

namespace {

std::map<std::string, std::string> as_map(const std::vector<SysMessage>& list) {
    std::map<std::string, std::string> m;
    for (const SysMessage& s : list) {
        CHECK(m.count(s.topic) == 0);   // every topic once
        m[s.topic] = s.payload;
    }
    return m;
}

void publish_sys(Broker& b, std::string_view topic, std::string_view value) {
    b.publish_internal(topic, {reinterpret_cast<const uint8_t*>(value.data()), value.size()}, true);
}

// May read everything, except $SYS topics unless the user is "admin".
struct SysAcl final : Authorizer {
    bool can_publish(const ClientInfo&, std::string_view) override { return true; }
    bool can_subscribe(const ClientInfo&, std::string_view) override { return true; }
    bool can_receive(const ClientInfo& c, std::string_view topic) override {
        return topic.rfind("$SYS", 0) != 0 || c.username.value_or("") == "admin";
    }
};

}  // namespace

TEST_CASE("sys_topics: Mosquitto's names with the gauges' values") {
    SysGauges g;
    g.version = "1.2.3";
    g.uptime_s = 42;
    g.stats.connections = 3;
    g.stats.connections_max = 7;
    g.stats.sessions_expired = 2;
    g.sessions = 5;
    g.stats.packets_in = 100;
    g.stats.packets_out = 90;
    g.stats.messages_in = 40;
    g.stats.messages_out = 30;
    g.stats.qos0_dropped = 4;
    g.stats.queued_dropped = 1;
    g.stats.publish_bytes_in = 400;
    g.stats.publish_bytes_out = 300;
    g.stats.bytes_in = 1000;
    g.stats.bytes_out = 900;
    g.retained = 6;
    g.subscriptions = 8;
    g.shared_subscriptions = 2;
    g.held_messages = 9;
    g.held_bytes = 99;
    g.heap_bytes = 123456;
    g.stats.store_refusals = 5;
    g.stats.store_refused_quota = 3;
    g.stats.store_refused_full = 2;
    g.stats.unreadable_dropped = 11;
    g.stats.slow_clients_closed = 12;
    g.stats.subscriptions_refused_limit = 15;
    g.route_cache_topics = 13;
    g.route_cache_matches = 14;
    LoadAverages load;
    auto m = as_map(sys_topics(g, load));

    CHECK(m["$SYS/broker/version"] == "hato version 1.2.3");
    CHECK(m["$SYS/broker/uptime"] == "42 seconds");
    CHECK(m["$SYS/broker/clients/connected"] == "3");
    CHECK(m["$SYS/broker/clients/disconnected"] == "2");
    CHECK(m["$SYS/broker/clients/total"] == "5");
    CHECK(m["$SYS/broker/clients/maximum"] == "7");
    CHECK(m["$SYS/broker/clients/expired"] == "2");
    CHECK(m["$SYS/broker/messages/received"] == "100");
    CHECK(m["$SYS/broker/messages/sent"] == "90");
    CHECK(m["$SYS/broker/publish/messages/received"] == "40");
    CHECK(m["$SYS/broker/publish/messages/sent"] == "30");
    CHECK(m["$SYS/broker/publish/messages/dropped"] == "5");
    CHECK(m["$SYS/broker/publish/bytes/received"] == "400");
    CHECK(m["$SYS/broker/publish/bytes/sent"] == "300");
    CHECK(m["$SYS/broker/bytes/received"] == "1000");
    CHECK(m["$SYS/broker/bytes/sent"] == "900");
    CHECK(m["$SYS/broker/retained messages/count"] == "6");
    CHECK(m["$SYS/broker/subscriptions/count"] == "8");
    CHECK(m["$SYS/broker/shared_subscriptions/count"] == "2");
    CHECK(m["$SYS/broker/store/messages/count"] == "9");
    CHECK(m["$SYS/broker/store/messages/bytes"] == "99");
    CHECK(m["$SYS/broker/heap/current"] == "123456");
    for (const char* series : {"messages/received", "messages/sent", "bytes/received", "bytes/sent",
                               "publish/received", "publish/sent", "publish/dropped", "connections"})
        for (const char* w : {"1min", "5min", "15min"})
            CHECK(m[std::string("$SYS/broker/load/") + series + "/" + w] == "0.00");
    CHECK(m["$SYS/broker/hato/store/refused/total"] == "5");
    CHECK(m["$SYS/broker/hato/store/refused/quota"] == "3");
    CHECK(m["$SYS/broker/hato/store/refused/while_full"] == "2");
    CHECK(m["$SYS/broker/hato/store/refused/disk_full"] == "0");
    CHECK(m["$SYS/broker/hato/publish/dropped/qos0_slow_consumer"] == "4");
    CHECK(m["$SYS/broker/hato/publish/dropped/queue_full"] == "1");
    CHECK(m["$SYS/broker/hato/publish/dropped/unreadable"] == "11");
    CHECK(m["$SYS/broker/hato/clients/slow_closed"] == "12");
    CHECK(m["$SYS/broker/hato/subscriptions/refused_limit"] == "15");
    CHECK(m["$SYS/broker/hato/route_cache/topics"] == "13");
    CHECK(m["$SYS/broker/hato/route_cache/matches"] == "14");
    // Without the durable store (memory only) there is nothing to say about it.
    CHECK(m.count("$SYS/broker/hato/store/bytes") == 0);
    CHECK(m.count("$SYS/broker/hato/store/sync/p99_ms") == 0);
    for (const auto& [topic, value] : m) {
        CHECK(topic.rfind("$SYS/broker/", 0) == 0);
        CHECK(valid_topic_name(topic));
        CHECK_FALSE(value.empty());
    }
}

TEST_CASE("sys_topics: store and sync latency when the gauges have them; no heap when unknown") {
    SysGauges g;
    g.store = true;
    g.store_bytes = 1000;
    g.store_live_bytes = 600;
    g.store_max_bytes = 4000;
    g.store_free_bytes = 3000;
    g.store_fill_percent = 25.0;
    g.sync_p50_ms = 1.25;
    g.sync_p99_ms = 7.5;
    auto m = as_map(sys_topics(g, LoadAverages{}));
    CHECK(m["$SYS/broker/hato/store/bytes"] == "1000");
    CHECK(m["$SYS/broker/hato/store/live_bytes"] == "600");
    CHECK(m["$SYS/broker/hato/store/max_bytes"] == "4000");
    CHECK(m["$SYS/broker/hato/store/free_bytes"] == "3000");
    CHECK(m["$SYS/broker/hato/store/fill_percent"] == "25.0");
    CHECK(m["$SYS/broker/hato/store/sync/p50_ms"] == "1.250");
    CHECK(m["$SYS/broker/hato/store/sync/p99_ms"] == "7.500");
    CHECK(m.count("$SYS/broker/heap/current") == 0);
    g.sync_p99_ms.reset();   // no sync in the interval: the last value stays retained
    CHECK(as_map(sys_topics(g, LoadAverages{})).count("$SYS/broker/hato/store/sync/p99_ms") == 0);
}

TEST_CASE("load averages: per-minute rates decaying like Mosquitto's") {
    SysGauges g;
    LoadAverages load;
    g.stats.messages_in = 1000;   // before the first update: the starting point, not a rate
    load.update(g, 0);
    CHECK(load.value(LoadAverages::PublishReceived, 0) == 0.0);

    // 60 messages in 60 s: 60 per minute.
    g.stats.messages_in += 60;
    load.update(g, 60);
    CHECK(load.value(LoadAverages::PublishReceived, 0) == doctest::Approx(60 * (1 - std::exp(-1.0))));
    CHECK(load.value(LoadAverages::PublishReceived, 1) == doctest::Approx(60 * (1 - std::exp(-0.2))));
    CHECK(load.value(LoadAverages::PublishReceived, 2) == doctest::Approx(60 * (1 - std::exp(-60.0 / 900))));
    CHECK(load.value(LoadAverages::MessagesReceived, 0) == 0.0);

    // The same rate in 10 s steps for an hour converges on it; the 1 minute
    // average faster than the 15 minute one.
    for (int i = 0; i < 360; ++i) {
        g.stats.messages_in += 10;
        load.update(g, 10);
    }
    CHECK(load.value(LoadAverages::PublishReceived, 0) == doctest::Approx(60).epsilon(0.001));
    CHECK(load.value(LoadAverages::PublishReceived, 2) == doctest::Approx(60).epsilon(0.02));

    // Silence: the averages decay, the shortest first.
    for (int i = 0; i < 6; ++i) load.update(g, 10);
    CHECK(load.value(LoadAverages::PublishReceived, 0) == doctest::Approx(60 * std::exp(-1.0)).epsilon(0.01));
    CHECK(load.value(LoadAverages::PublishReceived, 0) < load.value(LoadAverages::PublishReceived, 2));

    // Each series follows its counter.
    g.stats.connects = 6;
    g.stats.qos0_dropped = 3;
    g.stats.queued_dropped = 3;
    load.update(g, 60);
    CHECK(load.value(LoadAverages::Connections, 0) == doctest::Approx(6 * (1 - std::exp(-1.0))));
    CHECK(load.value(LoadAverages::PublishDropped, 0) == doctest::Approx(6 * (1 - std::exp(-1.0))));
    auto m = as_map(sys_topics(g, load));
    CHECK(m["$SYS/broker/load/connections/1min"] == "3.79");
}

TEST_CASE("publish_internal: retained in memory, never written to the store") {
    Harness h;
    TestClient early(h, Version::V5);
    early.connect("early");
    early.subscribe("$SYS/#", 1);
    h.persist.calls.clear();

    publish_sys(*h.broker, "$SYS/broker/uptime", "5 seconds");
    publish_sys(*h.broker, "$SYS/broker/uptime", "6 seconds");
    CHECK(h.persist.calls.empty());
    auto got = early.publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[1].topic == "$SYS/broker/uptime");
    CHECK(text(got[1].payload) == "6 seconds");
    CHECK(got[1].qos == 0);
    CHECK_FALSE(got[1].retain);   // live, not from the retained store

    // A later subscriber gets the latest value, retained.
    TestClient late(h, Version::V311);
    late.connect("late");
    late.subscribe("$SYS/broker/+", 1);
    auto extra = late.extra();
    REQUIRE(extra.size() == 1);
    const auto& p = std::get<Publish>(extra[0]);
    CHECK(text(p.payload) == "6 seconds");
    CHECK(p.retain);
    CHECK(p.qos == 0);
    CHECK(h.persist.calls.empty());   // clean sessions: nothing stored for them either
}

// A reload that turned $SYS off left the last figures retained: a new
// dashboard read "3 clients connected" for ever.
TEST_CASE("forget_internal_retained: the broker's own retained topics under a prefix go, others stay") {
    Harness h;
    publish_sys(*h.broker, "$SYS/broker/clients/connected", "3");
    publish_sys(*h.broker, "plc/line1/status", "online");   // as the Modbus runner publishes
    TestClient c(h, Version::V311);
    c.connect("c");
    h.broker->forget_internal_retained("$SYS/");
    c.subscribe("$SYS/#", 0);
    CHECK(c.extra().empty());
    c.subscribe("plc/#", 0);
    auto extra = c.extra();
    REQUIRE(extra.size() == 1);
    CHECK(text(std::get<Publish>(extra[0]).payload) == "online");
    publish_sys(*h.broker, "$SYS/broker/clients/connected", "4");   // on again
    TestClient late(h, Version::V311);
    late.connect("late");
    late.subscribe("$SYS/#", 0);
    REQUIRE(late.extra().size() == 1);
}

TEST_CASE("publish_internal: not matched by # or +, not counted as received, not a client's retained") {
    Harness h;
    TestClient all(h, Version::V311);
    all.connect("all");
    all.subscribe("#", 0);
    all.subscribe("+/broker/uptime", 0, 2);
    TestClient pub(h, Version::V311);
    pub.connect("pub");
    pub.publish("a/b", "x", 0, true);
    CHECK(all.publishes().size() == 1);

    publish_sys(*h.broker, "$SYS/broker/uptime", "1 seconds");
    CHECK(all.publishes().empty());

    SysGauges g;
    h.broker->fill_gauges(g);
    CHECK(g.stats.messages_in == 1);   // the client's PUBLISH only
    CHECK(g.retained == 1);            // a/b; the $SYS topic is the broker's
    CHECK(g.held_messages == 2);       // both are held in memory
    CHECK(g.subscriptions == 2);
    CHECK(g.stats.connections == 2);

    // A new subscriber to # still gets only the client's retained message.
    TestClient late(h, Version::V311);
    late.connect("late");
    late.subscribe("#", 0);
    auto extra = late.extra();
    REQUIRE(extra.size() == 1);
    CHECK(std::get<Publish>(extra[0]).topic == "a/b");
}

TEST_CASE("publish_internal: a $SYS topic a client stored is cleared from the store once") {
    Harness h;
    TestClient pub(h, Version::V311);
    Connect c;
    c.client_id = "pub";
    c.username = "gw";   // proven: the harness's authenticator verifies every name
    c.bridge = true;     // a Mosquitto-style bridge, which older versions stored
    pub.connect_with(c);
    pub.publish("$SYS/broker/version", "fake", 0, true);
    CHECK(h.persist.count("retained_set $SYS/broker/version") == 1);
    h.persist.calls.clear();
    publish_sys(*h.broker, "$SYS/broker/version", "hato version 1");
    publish_sys(*h.broker, "$SYS/broker/version", "hato version 1");
    CHECK(h.persist.calls == std::vector<std::string>{"retained_clear $SYS/broker/version"});
}

TEST_CASE("publish_internal: only clients the ACL lets read $SYS receive it, live or retained") {
    Harness h;
    SysAcl acl;
    h.broker->set_authorizer(&acl);
    TestClient admin(h, Version::V5), user(h, Version::V5);
    Connect c;
    c.client_id = "admin";
    c.username = "admin";
    admin.connect_with(c);
    c.client_id = "user";
    c.username = "user";
    user.connect_with(c);
    admin.subscribe("$SYS/#", 0);
    user.subscribe("$SYS/#", 0);

    publish_sys(*h.broker, "$SYS/broker/uptime", "1 seconds");
    CHECK(admin.publishes().size() == 1);
    CHECK(user.publishes().empty());

    // Retained delivery on SUBSCRIBE goes through the same check.
    admin.subscribe("$SYS/broker/uptime", 0, 2);
    user.subscribe("$SYS/broker/uptime", 0, 2);
    CHECK(admin.extra().size() == 1);
    CHECK(user.extra().empty());
}

TEST_CASE("fill_gauges: traffic, clients maximum and expired sessions") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V311);
    Properties expiring;
    expiring.session_expiry = 1;
    a.connect("a", true, 0, expiring);
    b.connect("b");
    b.subscribe("t", 0);
    a.publish("t", "12345");
    CHECK(b.publishes().size() == 1);

    SysGauges g;
    h.broker->fill_gauges(g);
    CHECK(g.stats.connections == 2);
    CHECK(g.stats.connections_max == 2);
    CHECK(g.stats.connects == 2);
    CHECK(g.stats.packets_in == 4);        // 2 CONNECT, SUBSCRIBE, PUBLISH
    CHECK(g.stats.packets_out == 4);       // 2 CONNACK, SUBACK, PUBLISH
    CHECK(g.stats.publish_bytes_in == 5);
    CHECK(g.stats.publish_bytes_out == 5);
    CHECK(g.stats.bytes_in > 0);
    CHECK(g.stats.bytes_out > 0);
    CHECK(g.sessions == 2);

    a.disconnect();
    h.broker->fill_gauges(g);
    CHECK(g.stats.connections == 1);
    CHECK(g.stats.connections_max == 2);
    CHECK(g.sessions == 2);               // a's session waits for its expiry
    h.broker->on_tick(2000);
    h.broker->fill_gauges(g);
    CHECK(g.stats.sessions_expired == 1);
    CHECK(g.sessions == 1);
}

// MQTT 4.7.2: a server SHOULD keep clients from using $ topics to exchange
// messages. A client that wrote $SYS could fake the broker's figures and a
// bridge's connection state for everyone who monitors them.
TEST_CASE("$SYS and $bridge/: clients may not publish there, bridges may") {
    Harness h;
    TestClient mon(h, Version::V5), v5(h, Version::V5), v3(h, Version::V311), peer(h, Version::V311),
        anonymous_peer(h, Version::V311);
    mon.connect("mon");
    mon.subscribe("$SYS/#", 1);
    v5.connect("v5");
    v3.connect("v3");
    Connect c;
    c.client_id = "gw-site";
    c.username = "gw";   // the harness's authenticator verifies every name
    c.bridge = true;     // a Mosquitto-style bridge's notifications
    peer.connect_with(c);
    // Any client can set the bridge bit: without a proven user name it
    // counts for nothing (this one logs in with no user name).
    c.client_id = "anon-site";
    c.username.reset();
    anonymous_peer.connect_with(c);
    anonymous_peer.publish("$SYS/broker/clients/connected", "0", 1, true);
    REQUIRE(anonymous_peer.take().size() == 1);   // v3.1.1: acknowledged, dropped
    CHECK(h.persist.count("retained_set $SYS/broker/clients/connected") == 0);

    v5.publish("$SYS/broker/connection/site/state", "1", 1, true);
    auto acks = v5.take();
    REQUIRE(acks.size() == 1);
    CHECK(std::get<Ack>(acks[0]).reason == rc::NotAuthorized);
    v3.publish("$SYS/chat", "hello", 1);   // v3 has no refusal: acknowledged, dropped
    REQUIRE(v3.take().size() == 1);
    v3.publish("$SYSTEM/x", "not $SYS", 0);
    CHECK(mon.publishes().empty());
    CHECK(h.persist.count("retained_set $SYS/broker/connection/site/state") == 0);

    peer.publish("$SYS/broker/version", "1", 1, true);
    auto got = mon.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "$SYS/broker/version");

    // Its own connection state, where a v5 bridge (no bridge bit) notifies.
    v5.publish("$SYS/broker/connection/v5/state", "1", 1, true);
    CHECK(std::get<Ack>(v5.take().at(0)).reason == rc::Success);
    v5.publish("$SYS/broker/connection/v3/state", "0", 1, true);
    CHECK(std::get<Ack>(v5.take().at(0)).reason == rc::NotAuthorized);
    got = mon.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "$SYS/broker/connection/v5/state");

    // "$bridge/..." is hato's bridges' own state, with or without an ACL.
    v5.publish("$bridge/site/upstream_filters", "cmd/#\n", 1, true);
    CHECK(std::get<Ack>(v5.take().at(0)).reason == rc::NotAuthorized);
    CHECK(h.persist.count("retained_set $bridge/site/upstream_filters") == 0);
    TestClient bridge(h, Version::V5);
    bridge.connect("$bridge/site");   // the authenticator keeps such ids to the bridges
    bridge.publish("$bridge/site/upstream_filters", "cmd/#\n", 1, true);
    CHECK(std::get<Ack>(bridge.take().at(0)).reason < 0x80);   // 0x10: nobody subscribed
    CHECK(h.persist.count("retained_set $bridge/site/upstream_filters") == 1);
}

// The same rules for a will, which the broker publishes for the client; and
// the own-state exception does not reach where hato's bridge of that name
// reports its state.
TEST_CASE("$SYS and $bridge/: a will there is dropped; a bridge's name is not a client's own state") {
    Config cfg;
    cfg.session_budgets.push_back({"$bridge/site", 0, true, false});
    Harness h(cfg);
    TestClient mon(h, Version::V5);
    mon.connect("mon");
    mon.subscribe("$SYS/#", 0);
    mon.subscribe("$bridge/#", 0);
    for (const char* topic : {"$SYS/broker/version", "$bridge/site/upstream_filters", "$SYS/broker/connection/site/state"}) {
        CAPTURE(topic);
        TestClient dying(h, Version::V5);
        Connect c;
        c.client_id = "site";
        c.will_flag = true;
        c.will_topic = topic;
        c.will_retain = true;
        const uint8_t zero = '0';
        c.will_payload = std::span<const uint8_t>(&zero, 1);
        dying.connect_with(c);
        dying.transport_gone();
        CHECK(mon.publishes().empty());
    }
    TestClient own(h, Version::V5);
    own.connect("gw");
    own.publish("$SYS/broker/connection/gw/state", "1", 1, true);
    CHECK(std::get<Ack>(own.take().at(0)).reason < 0x80);
    TestClient named(h, Version::V5);
    named.connect("site");
    named.publish("$SYS/broker/connection/site/state", "1", 1, true);
    CHECK(std::get<Ack>(named.take().at(0)).reason == rc::NotAuthorized);
    auto got = mon.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "$SYS/broker/connection/gw/state");
}
