// Sparkplug Aware: the topic of a birth's certificate, and the broker keeping
// NBIRTH/DBIRTH retained on $sparkplug/certificates/... when configured.
#include <algorithm>

#include "broker/sparkplug.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;
using hato::broker::sparkplug::certificate_topic;

namespace {

Config aware() {
    Config c;
    c.sparkplug_aware = true;
    return c;
}

// Retained messages a new subscriber to `filter` receives, as topic=payload.
std::vector<std::string> retained_on(Harness& h, std::string_view filter) {
    TestClient s(h, Version::V5);
    s.connect("reader-" + std::to_string(s.id));
    s.subscribe(filter, 1);
    std::vector<std::string> out;
    for (auto& pk : s.extra()) {
        auto& p = std::get<Publish>(pk);
        CHECK(p.retain);
        out.push_back(std::string(p.topic) + "=" + text(p.payload));
    }
    s.disconnect();
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("certificate topic of node and device births") {
    CHECK(certificate_topic("spBv1.0/G1/NBIRTH/E1") == "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1");
    CHECK(certificate_topic("spBv1.0/G1/DBIRTH/E1/D1") == "$sparkplug/certificates/spBv1.0/G1/DBIRTH/E1/D1");
}

TEST_CASE("no certificate topic for other Sparkplug messages or other topics") {
    for (const char* t : {"spBv1.0/G1/NDATA/E1", "spBv1.0/G1/NDEATH/E1", "spBv1.0/G1/DDATA/E1/D1",
                          "spBv1.0/G1/DDEATH/E1/D1", "spBv1.0/G1/NCMD/E1", "spBv1.0/G1/DCMD/E1/D1",
                          "spBv1.0/STATE/host1", "spAv1.0/G1/NBIRTH/E1", "spBv1.0", "spBv1.0/",
                          "a/b", "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1"})
        CHECK_MESSAGE(certificate_topic(t).empty(), t);
}

TEST_CASE("no certificate topic for a birth of the wrong shape") {
    for (const char* t : {"spBv1.0/G1/NBIRTH", "spBv1.0/G1/NBIRTH/", "spBv1.0/G1/NBIRTH/E1/D1",
                          "spBv1.0//NBIRTH/E1", "spBv1.0/G1/DBIRTH/E1", "spBv1.0/G1/DBIRTH/E1/",
                          "spBv1.0/G1/DBIRTH//D1", "spBv1.0/G1/DBIRTH/E1/D1/x", "spBv1.0/G1/nbirth/E1",
                          "spBv1.0/G1/NBIRTHX/E1", "/spBv1.0/G1/NBIRTH/E1"})
        CHECK_MESSAGE(certificate_topic(t).empty(), t);
}

TEST_CASE("aware: a birth is delivered as published and kept retained as its certificate") {
    Harness h(aware());
    TestClient host(h, Version::V5);
    host.connect("host");
    host.subscribe("spBv1.0/#", 1, 1);
    host.subscribe("$sparkplug/certificates/#", 1, 2);
    TestClient edge(h, Version::V311);
    edge.connect("edge");
    edge.publish("spBv1.0/G1/NBIRTH/E1", "nb1", 0);
    edge.publish("spBv1.0/G1/DBIRTH/E1/D1", "db1", 1);
    CHECK(edge.take_one<Ack>().reason == rc::Success);
    edge.publish("spBv1.0/G1/NDATA/E1", "nd1", 0);

    std::vector<std::string> got;
    for (auto& p : host.publishes()) {
        got.push_back(std::string(p.topic) + "=" + text(p.payload) + (p.retain ? " r" : ""));
        if (p.qos) host.ack(PacketType::Puback, p.packet_id);
    }
    // The originals as published (not retained); the certificates live.
    CHECK(got == std::vector<std::string>{
                     "spBv1.0/G1/NBIRTH/E1=nb1",
                     "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=nb1",
                     "spBv1.0/G1/DBIRTH/E1/D1=db1",
                     "$sparkplug/certificates/spBv1.0/G1/DBIRTH/E1/D1=db1",
                     "spBv1.0/G1/NDATA/E1=nd1",
                 });
    CHECK(h.persist.count("retained_set $sparkplug/certificates/spBv1.0/G1/NBIRTH/E1") == 1);
    CHECK(h.persist.count("retained_set $sparkplug/certificates/spBv1.0/G1/DBIRTH/E1/D1") == 1);
    CHECK(h.persist.count("retained_set spBv1.0") == 0);   // the births themselves were not retained
    // Three PUBLISHes received: a certificate is the broker's, not counted
    // (publish/messages/received had said 5, its bytes 9).
    CHECK(h.broker->stats().messages_in == 3);

    // A host that connects late reads both; nothing else is retained.
    CHECK(retained_on(h, "$sparkplug/certificates/#") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/DBIRTH/E1/D1=db1",
                                   "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=nb1"});
    CHECK(retained_on(h, "spBv1.0/#").empty());
}

TEST_CASE("aware: a rebirth replaces the certificate; deaths and empty births leave it") {
    Harness h(aware());
    TestClient edge(h, Version::V5);
    edge.connect("edge");
    edge.publish("spBv1.0/G1/NBIRTH/E1", "bdSeq=0", 0);
    edge.publish("spBv1.0/G1/NBIRTH/E1", "bdSeq=1", 0);
    edge.publish("spBv1.0/G1/NDEATH/E1", "death", 0);
    edge.publish("spBv1.0/G1/NBIRTH/E1", "", 0);
    CHECK(retained_on(h, "$sparkplug/certificates/spBv1.0/G1/NBIRTH/+") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=bdSeq=1"});
    CHECK(h.persist.count("retained_clear") == 0);
}

TEST_CASE("aware: No Local does not hide the certificate from the edge node") {
    Harness h(aware());
    TestClient edge(h, Version::V5);
    edge.connect("edge");
    edge.subscribe("$sparkplug/certificates/spBv1.0/G1/#", 0, 1, 0, 0, /*no_local=*/true);
    edge.publish("spBv1.0/G1/NBIRTH/E1", "nb", 0);
    auto got = edge.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1");
}

TEST_CASE("aware: a birth that is also retained keeps both retained messages") {
    Harness h(aware());
    TestClient edge(h, Version::V311);
    edge.connect("edge");
    edge.publish("spBv1.0/G1/NBIRTH/E1", "nb", 0, true);
    CHECK(retained_on(h, "spBv1.0/G1/NBIRTH/E1") == std::vector<std::string>{"spBv1.0/G1/NBIRTH/E1=nb"});
    CHECK(retained_on(h, "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=nb"});
}

TEST_CASE("not aware (the default): births are only delivered") {
    Harness h;
    TestClient edge(h, Version::V311);
    edge.connect("edge");
    edge.publish("spBv1.0/G1/NBIRTH/E1", "nb", 0);
    edge.publish("spBv1.0/G1/DBIRTH/E1/D1", "db", 0);
    CHECK(h.persist.count("retained_set") == 0);
    CHECK(retained_on(h, "$sparkplug/certificates/#").empty());
}

TEST_CASE("aware: a refused certificate write is handled like any retained write") {
    Harness h(aware());
    TestClient edge(h, Version::V5);
    edge.connect("edge");
    edge.publish("spBv1.0/G1/NBIRTH/E1", "old", 1);
    CHECK(edge.take_one<Ack>().reason == rc::NoMatchingSubscribers);
    TestClient host(h, Version::V5);
    host.connect("host");
    host.subscribe("spBv1.0/#", 0);
    h.persist.refuse = {"retained_set"};
    // v5 QoS 1: refused with 0x97 (the birth itself still went out, as a
    // refused retained PUBLISH does); the stored certificate is kept.
    edge.publish("spBv1.0/G1/NBIRTH/E1", "new", 1);
    CHECK(edge.take_one<Ack>().reason == rc::QuotaExceeded);
    CHECK(h.broker->stats().store_refusals == 1);
    // QoS 0 (what Sparkplug uses for births): counted, nothing else.
    edge.publish("spBv1.0/G1/NBIRTH/E1", "newer", 0);
    CHECK(edge.take().empty());
    CHECK(h.broker->stats().store_refusals == 2);
    CHECK(host.publishes().size() == 2);
    h.persist.refuse.clear();
    CHECK(retained_on(h, "$sparkplug/certificates/#") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=old"});
    // A v3 publisher has no refusal ack: disconnected, as for any refused retained write.
    TestClient v3(h, Version::V311);
    v3.connect("v3");
    h.persist.refuse = {"retained_set"};
    v3.publish("spBv1.0/G1/DBIRTH/E1/D1", "db", 1);
    CHECK(v3.take().empty());
    CHECK(v3.closed());
}

TEST_CASE("aware: a v5 birth sent by topic alias gets its certificate too") {
    Harness h(aware());
    TestClient edge(h, Version::V5);
    edge.connect("edge");
    Properties first;
    first.topic_alias = 1;
    edge.publish("spBv1.0/G1/NBIRTH/E1", "one", 0, false, 0, first);
    Properties again;
    again.topic_alias = 1;
    edge.publish("", "two", 0, false, 0, again);
    CHECK_FALSE(edge.closed());
    CHECK(retained_on(h, "$sparkplug/certificates/#") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/NBIRTH/E1=two"});
}

// Certificates are retained topics the clients choose (one per node or
// device): counted by max_retained_messages, and past it a new node's
// certificate is not kept, or births would grow it without bound.
TEST_CASE("aware: a new node's certificate past max_retained_messages is not kept; its birth is delivered") {
    Config cfg = aware();
    cfg.max_retained_messages = 2;
    Harness h(cfg);
    TestClient watcher(h, Version::V5);
    watcher.connect("watcher");
    watcher.subscribe("spBv1.0/#", 0);
    TestClient edge(h, Version::V5);
    edge.connect("edge");
    for (int i = 0; i < 4; ++i) edge.publish("spBv1.0/G1/NBIRTH/E" + std::to_string(i), "b", 1, false, uint16_t(i + 1));
    for (const Ack& a : edge.take_all<Ack>()) CHECK(a.reason == rc::Success);
    CHECK(watcher.publishes().size() == 4);
    CHECK(retained_on(h, "$sparkplug/certificates/#").size() == 2);
    CHECK(h.broker->stats().retained_refused_limit == 2);
    // A rebirth of a node whose certificate is kept replaces it.
    edge.publish("spBv1.0/G1/NBIRTH/E0", "again", 0);
    CHECK(retained_on(h, "$sparkplug/certificates/spBv1.0/G1/NBIRTH/E0") ==
          std::vector<std::string>{"$sparkplug/certificates/spBv1.0/G1/NBIRTH/E0=again"});
}
