// The bridge's Link wired to a real Broker (FakeTransport / FakePersistence):
// its local connection is a broker connection, so what one side does with
// the other's answers is tested together (the QoS 2 flows a bridge opens and
// closes in its local session while the store refuses records).
#include <doctest/doctest.h>

#include "bridge/link.hpp"
#include "broker/message.hpp"
#include "test_broker_harness.hpp"

using namespace hato;
using namespace hato::broker;
using namespace hato::broker::test;
using mqtt::Packet;
using mqtt::PacketType;
using mqtt::Version;

namespace {

struct Wire final : bridge::LinkOutput {
    Harness& h;
    bridge::Link* link = nullptr;
    ConnId local = 0;
    ConnId next = 1000;
    std::vector<uint8_t> up;
    int up_closes = 0;
    explicit Wire(Harness& hh) : h(hh) {}
    void upstream_send(std::span<const uint8_t> b) override { up.insert(up.end(), b.begin(), b.end()); }
    void upstream_close() override { ++up_closes; }
    void local_open() override {
        local = next++;
        h.broker->on_open(local, 0, "bridge:site");
    }
    void local_send(std::span<const uint8_t> b) override {
        if (local) h.broker->on_data(local, b);
    }
    void local_close() override {
        if (!local) return;
        ConnId id = local;
        local = 0;
        h.transport.sent.erase(id);   // as BridgeRunner: buffered local output is discarded
        h.broker->on_close(id);
    }
    void log(int, const std::string&) override {}
    void upstream_session_new(std::span<const uint16_t> answered_here) override {
        h.broker->resend_released_qos2(bridge::Link::local_client_id("site"), answered_here);
    }
    // Broker output -> link, until quiet.
    void pump() {
        h.broker->on_durable();   // releases what waited for its records (QoS 2 PUBLISH, PUBREL)
        for (int i = 0; i < 20 && local; ++i) {
            auto it = h.transport.sent.find(local);
            if (it == h.transport.sent.end() || it->second.empty()) return;
            std::vector<uint8_t> b = std::move(it->second);
            it->second.clear();
            link->on_local_data(b);
        }
    }
    std::vector<std::vector<uint8_t>> store;   // decoded packets point into it
    std::vector<Packet> take_up() {
        store.push_back(std::move(up));
        up.clear();
        return decode_all(store.back(), Version::V5);
    }
};

std::vector<uint8_t> enc(const Packet& p) {
    std::vector<uint8_t> b;
    mqtt::encode(p, Version::V5, b);
    return b;
}

mqtt::Publish msg(uint16_t id, const std::vector<uint8_t>& body, bool dup = false) {
    mqtt::Publish p;
    p.qos = 2;
    p.topic = "cmd/a";
    p.packet_id = id;
    p.payload = body;
    p.dup = dup;
    return p;
}

// Upstream CONNECT .. ready; the SUBSCRIBE's SUBACK granted. Returns what
// went upstream once ready (the local session's resends).
std::vector<Packet> up_connect(bridge::Link& link, Wire& w, bool session_present, uint64_t now) {
    link.on_upstream_open(now);
    w.take_up();
    mqtt::Connack ca;
    ca.session_present = session_present;
    link.on_upstream_data(enc(Packet{ca}), now);
    auto ps = w.take_up();
    REQUIRE(ps.size() == 1);
    mqtt::Suback sa;
    sa.packet_id = std::get<mqtt::Subscribe>(ps[0]).packet_id;
    sa.reasons = {2};
    link.on_upstream_data(enc(Packet{sa}), now);
    w.pump();
    REQUIRE(link.ready());
    return w.take_up();
}

// Bridge "site": cmd/# in at QoS 2 over v5, no keep-alive or notifications.
bridge::LinkConfig site_config() {
    bridge::LinkConfig cfg;
    cfg.name = "site";
    cfg.version = Version::V5;
    cfg.client_id = "gw";
    cfg.keep_alive = 0;
    cfg.notifications = false;
    cfg.topics = {{"cmd/#", bridge::Direction::In, 2, "", ""}};
    return cfg;
}

// A local subscriber on cmd/# at QoS 2, and the bridge "site" on the same broker.
struct SiteRig {
    TestClient sub;
    Wire w;
    bridge::Link link;
    explicit SiteRig(Harness& h) : sub(h, Version::V5), w(h), link(site_config(), w) {
        sub.connect("s");
        sub.subscribe("cmd/#", 2);
        w.link = &link;
    }
};

// A publisher "p", and the bridge "site" with plant/# out at QoS 2 too.
struct OutRig {
    TestClient pub;
    Wire w;
    bridge::Link link;
    static bridge::LinkConfig config() {
        bridge::LinkConfig cfg = site_config();
        cfg.topics.push_back({"plant/#", bridge::Direction::Out, 2, "", ""});
        return cfg;
    }
    explicit OutRig(Harness& h) : pub(h, Version::V5), w(h), link(config(), w) {
        pub.connect("p");
        w.link = &link;
    }
};

std::vector<std::pair<PacketType, uint16_t>> acks_of(const std::vector<Packet>& ps) {
    std::vector<std::pair<PacketType, uint16_t>> out;
    for (const Packet& p : ps)
        if (auto* a = std::get_if<mqtt::Ack>(&p)) out.emplace_back(a->type, a->packet_id);
    return out;
}

}  // namespace

// The bridge closes a stale local flow with a PUBREL and sends the new
// message under that id at once. With the removal refused, the message is
// refused (the link fails, the upstream resends after the reconnect); the
// local PUBREL's answer must not then reach the upstream, which never sent
// a PUBREL (hato and Mosquitto close the connection on it).
TEST_CASE("bridge, full store: a message refused behind the bridge's own local PUBREL is routed once after the reconnect") {
    Harness h;
    SiteRig rig(h);
    auto& [sub, w, link] = rig;
    const std::vector<uint8_t> body{'x'};

    // A flow on id 7 the upstream never finishes (its session is lost): the
    // local session keeps id 7.
    up_connect(link, w, false, 1);
    link.on_upstream_data(enc(Packet{msg(7, body)}), 2);
    w.pump();
    CHECK(acks_of(w.take_up()) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrec, 7}});
    CHECK(sub.publishes().size() == 1);
    link.on_upstream_closed();

    // A fresh upstream session: its first message on 7 gets a local PUBREL
    // first, whose removal the full store refuses.
    up_connect(link, w, false, 3);
    h.persist.refuse = {"qos2_in_remove"};
    h.persist.refuse_with = AppendStatus::DiskFull;
    link.on_upstream_data(enc(Packet{msg(7, body)}), 4);
    w.pump();   // PUBREC 0x97: the link fails, both connections close
    CHECK(link.state() == bridge::Link::State::Down);
    CHECK(w.take_up().empty());
    CHECK(sub.take().empty());

    // The store takes the removal again; the upstream comes back with the
    // session, and resends its PUBLISH (DUP).
    h.persist.refuse.clear();
    up_connect(link, w, true, 5);
    h.broker->on_tick(1000);
    w.pump();
    link.on_upstream_data(enc(Packet{msg(7, body, true)}), 6);
    w.pump();
    // PUBREC 7 only: its PUBLISH is what is unanswered.
    CHECK(acks_of(w.take_up()) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrec, 7}});
    auto got = sub.publishes();
    CHECK(got.size() == 1);
    CHECK(h.persist.count("qos2_in_remove $bridge/site 7") == 1);
}

// A restart (or a power cut) lost the removal the bridge's local PUBREL
// wrote for a stale flow, and the new message with it: the local session
// holds id 7 for the old message again, and the upstream resends the new
// one (DUP) with no local PUBREL before it. It carries another message than
// the one id 7 holds, so it is routed; the old message's own resend is not.
TEST_CASE("bridge, after a restart: the upstream's resend under an id the local session holds for another message is routed") {
    const std::vector<uint8_t> old_body{'o', 'l', 'd'}, new_body{'n', 'e', 'w'};
    Harness h;
    RecoveredSession rs;
    rs.client_id = "$bridge/site";
    rs.expiry_s = 0xFFFFFFFFu;
    rs.qos2_in = {{7, message_digest("cmd/a", old_body, false)}, {8, message_digest("cmd/a", old_body, false)}};
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    SiteRig rig(h);
    auto& [sub, w, link] = rig;

    up_connect(link, w, true, 1);
    link.on_upstream_data(enc(Packet{msg(7, new_body, true)}), 2);
    link.on_upstream_data(enc(Packet{msg(8, old_body, true)}), 2);   // the old flow's PUBREC was lost
    w.pump();
    CHECK(acks_of(w.take_up()) ==
          std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrec, 7}, {PacketType::Pubrec, 8}});
    auto got = sub.publishes();
    REQUIRE(got.size() == 1);
    CHECK(text(got[0].payload) == "new");

    mqtt::Ack rel;
    rel.type = PacketType::Pubrel;
    rel.packet_id = 7;
    link.on_upstream_data(enc(Packet{rel}), 3);
    w.pump();
    CHECK(acks_of(w.take_up()) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubcomp, 7}});
    CHECK(h.persist.count("qos2_in_remove $bridge/site 7") == 2);   // the stale flow's, the new one's
    CHECK(sub.publishes().empty());
}

// The upstream forgot its session (restarted without persistence, or a clean
// start) while an outbound QoS 2 message was past PUBREC: an upstream that
// delivers at PUBREL (Mosquitto) never delivered it, and answers the resent
// PUBREL with PUBCOMP 0x92. The local session sends the PUBLISH again
// instead; with the upstream's session kept, the PUBREL as before.
TEST_CASE("bridge: an outbound QoS 2 message past PUBREC is published again when the upstream has no session") {
    for (const bool upstream_kept : {false, true}) {
        CAPTURE(upstream_kept);
        Harness h;
        OutRig rig(h);
        auto& [pub, w, link] = rig;
        up_connect(link, w, false, 1);

        pub.publish("plant/t", "v", 2);
        pub.take();   // PUBREC
        w.pump();
        auto ps = w.take_up();
        REQUIRE(ps.size() == 1);
        const uint16_t id = std::get<mqtt::Publish>(ps[0]).packet_id;
        link.on_upstream_data(enc(Packet{mqtt::Ack{PacketType::Pubrec, id, 0, {}}}), 2);
        w.pump();
        CHECK(acks_of(w.take_up()) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrel, id}});
        CHECK(h.persist.count("out_state $bridge/site 1 2 ") == 1);
        link.on_upstream_closed();   // before the PUBCOMP

        ps = up_connect(link, w, upstream_kept, 3);
        REQUIRE(ps.size() == 1);
        if (upstream_kept) {
            CHECK(acks_of(ps) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrel, id}});
            link.on_upstream_data(enc(Packet{mqtt::Ack{PacketType::Pubcomp, id, 0, {}}}), 4);
        } else {
            const auto& again = std::get<mqtt::Publish>(ps[0]);
            CHECK(again.packet_id == id);
            CHECK(again.qos == 2);
            CHECK(text(again.payload) == "v");
            // Durably back to awaiting PUBREC: a restart now resends the PUBLISH too.
            CHECK(h.persist.count("out_state $bridge/site 1 1 ") == 2);   // sent, then reverted
            link.on_upstream_data(enc(Packet{mqtt::Ack{PacketType::Pubrec, id, 0, {}}}), 4);
            w.pump();
            CHECK(acks_of(w.take_up()) == std::vector<std::pair<PacketType, uint16_t>>{{PacketType::Pubrel, id}});
            link.on_upstream_data(enc(Packet{mqtt::Ack{PacketType::Pubcomp, id, 0, {}}}), 5);
        }
        w.pump();
        CHECK(h.broker->session_queue("$bridge/site").messages == 0);
        CHECK(h.persist.count("out_done $bridge/site 1") == 1);
    }
}

// A QoS 2 message the upstream took at QoS 1 (its Maximum QoS) was
// acknowledged there: the link answers the local PUBREL itself, and a new
// upstream session does not send it again.
TEST_CASE("bridge: a QoS 2 message that crossed at QoS 1 is not published again when the upstream has no session") {
    Harness h;
    OutRig rig(h);
    auto& [pub, w, link] = rig;
    link.on_upstream_open(1);
    w.take_up();
    mqtt::Connack ca;
    ca.props.maximum_qos = 1;
    link.on_upstream_data(enc(Packet{ca}), 1);
    auto ps = w.take_up();
    mqtt::Suback sa;
    sa.packet_id = std::get<mqtt::Subscribe>(ps[0]).packet_id;
    sa.reasons = {1};
    link.on_upstream_data(enc(Packet{sa}), 1);
    w.pump();
    REQUIRE(link.ready());
    w.take_up();

    pub.publish("plant/t", "v", 2);
    w.pump();
    ps = w.take_up();
    REQUIRE(ps.size() == 1);
    const auto& sent = std::get<mqtt::Publish>(ps[0]);
    CHECK(sent.qos == 1);
    const uint16_t id = sent.packet_id;
    // The upstream's PUBACK, then the connection is lost before the local
    // PUBREL's answer reaches the session.
    link.on_upstream_data(enc(Packet{mqtt::Ack{PacketType::Puback, id, 0, {}}}), 2);
    w.local_close();
    link.on_upstream_closed();
    CHECK(up_connect(link, w, false, 3).empty());   // no PUBLISH again, and the PUBREL is answered here
    CHECK(h.broker->session_queue("$bridge/site").messages == 0);
}

// The bridge's own state is the broker's, not a client's message: with
// max_message_expiry it expired while the link was up.
TEST_CASE("bridge: the connection state topic outlives max_message_expiry while the link is up") {
    Config c;
    c.max_message_expiry = 5;
    Harness h(c);
    Wire w(h);
    bridge::Link link(site_config(), w);
    w.link = &link;
    up_connect(link, w, false, 1);
    CHECK(h.broker->retained_payload("$SYS/broker/connection/site/state") == "1");
    h.broker->on_tick(10000);
    CHECK(link.ready());
    CHECK(h.broker->retained_payload("$SYS/broker/connection/site/state") == "1");
}
