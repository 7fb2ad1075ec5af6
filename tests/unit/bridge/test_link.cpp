// The bridge link state machine, driven with bytes: connection order,
// pass-through of messages and acknowledgements with their packet ids,
// no loops (No Local), keep alive.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bridge/link.hpp"
#include "mqtt/codec.hpp"

using namespace hato;
using namespace hato::bridge;
using mqtt::Packet;
using mqtt::Version;

namespace {

struct Fake final : LinkOutput {
    std::vector<uint8_t> up, local;
    int up_closes = 0, local_opens = 0, local_closes = 0;
    void upstream_send(std::span<const uint8_t> b) override { up.insert(up.end(), b.begin(), b.end()); }
    void upstream_close() override { ++up_closes; }
    void local_open() override { ++local_opens; }
    void local_send(std::span<const uint8_t> b) override { local.insert(local.end(), b.begin(), b.end()); }
    void local_close() override { ++local_closes; }
    std::vector<std::string> logs;
    void log(int, const std::string& line) override { logs.push_back(line); }
    std::vector<std::string> subscribed;   // what local_filters() reports
    std::vector<std::string> local_filters() override { return subscribed; }
    std::vector<std::string> remembered;   // the durable memory of upstream filters
    int remember_calls = 0;
    std::vector<std::string> upstream_filters() override { return remembered; }
    void remember_upstream_filters(const std::vector<std::string>& filters) override {
        remembered = filters;
        ++remember_calls;
    }
};

// Decodes every packet in `buf` (copies kept alive in `store`) and clears it.
std::vector<Packet> take(std::vector<uint8_t>& buf, Version v, std::vector<std::vector<uint8_t>>& store) {
    std::vector<Packet> out;
    store.push_back(buf);
    buf.clear();
    std::span<const uint8_t> rest = store.back();
    while (!rest.empty()) {
        Packet p;
        mqtt::DecodeResult r = mqtt::decode(rest, v, 0, p);
        REQUIRE(r.status == mqtt::DecodeStatus::Ok);
        out.push_back(p);
        rest = rest.subspan(r.consumed);
    }
    return out;
}

std::vector<uint8_t> enc(const Packet& p, Version v) {
    std::vector<uint8_t> b;
    mqtt::encode(p, v, b);
    return b;
}

LinkConfig config(Version v) {
    LinkConfig c;
    c.name = "site";
    c.version = v;
    c.client_id = "gw-17";
    c.keep_alive = 10;
    c.try_private = true;
    c.topics = {{"plant/#", Direction::Out, 1, "", "site/"}, {"cmd/#", Direction::In, 2, "remote/", ""}};
    return c;
}

// Brings a link to Ready, checking the order of the handshake.
void connect(Link& link, Fake& f, Version v, std::vector<std::vector<uint8_t>>& store,
             const mqtt::Connack& up_ack = {}, const mqtt::Connack& local_ack = {}) {
    link.on_upstream_open(0);
    auto ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    const auto& c = std::get<mqtt::Connect>(ps[0]);
    CHECK(c.client_id == "gw-17");
    CHECK_FALSE(c.clean_start);
    // The upstream's copy of the state: "0" by the will when we are lost.
    CHECK(c.will_flag);
    CHECK(c.will_retain);
    CHECK(c.will_qos == 1);
    CHECK(c.will_topic == "$SYS/broker/connection/gw-17/state");
    CHECK(std::string(c.will_payload.begin(), c.will_payload.end()) == "0");
    CHECK(link.on_upstream_data(enc(Packet{up_ack}, v), 1));
    ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    const auto& sub = std::get<mqtt::Subscribe>(ps[0]);
    REQUIRE(sub.topics.size() == 1);
    CHECK(sub.topics[0].filter == "cmd/#");
    CHECK(sub.topics[0].qos == 2);
    CHECK(f.local_opens == 0);   // local session waits for the upstream SUBACK
    mqtt::Suback sa;
    sa.packet_id = sub.packet_id;
    sa.reasons = {2};
    CHECK(link.on_upstream_data(enc(Packet{sa}, v), 2));
    CHECK(f.local_opens == 1);
    ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    const auto& lc = std::get<mqtt::Connect>(ps[0]);
    CHECK(lc.client_id == "$bridge/site");
    CHECK_FALSE(lc.clean_start);
    CHECK(lc.props.session_expiry == 0xFFFFFFFFu);
    link.on_local_data(enc(Packet{local_ack}, Version::V5));
    ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    const auto& ls = std::get<mqtt::Subscribe>(ps[0]);
    REQUIRE(ls.topics.size() == 1);
    CHECK(ls.topics[0].filter == "plant/#");
    CHECK(ls.topics[0].no_local);
    mqtt::Suback lsa;
    lsa.packet_id = ls.packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    CHECK(link.ready());
    ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    const auto& state = std::get<mqtt::Publish>(ps[0]);
    CHECK(state.topic == "$SYS/broker/connection/site/state");
    CHECK(state.retain == (local_ack.props.retain_available.value_or(1) != 0));
    CHECK(std::string(state.payload.begin(), state.payload.end()) == "1");
    // ... and "1" on the upstream once ready.
    ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    const auto& up_state = std::get<mqtt::Publish>(ps[0]);
    CHECK(up_state.topic == "$SYS/broker/connection/gw-17/state");
    CHECK(up_state.retain == (up_ack.props.retain_available.value_or(1) != 0));
    CHECK(up_state.qos == 0);
    CHECK(std::string(up_state.payload.begin(), up_state.payload.end()) == "1");
}

}  // namespace

TEST_CASE("notifications = false: no will and no state topic upstream") {
    Fake f;
    LinkConfig cfg = config(Version::V5);
    cfg.notifications = false;
    cfg.topics = {{"plant/#", Direction::Out, 1, "", "site/"}};
    Link link(cfg, f);
    std::vector<std::vector<uint8_t>> store;
    link.on_upstream_open(0);
    auto ps = take(f.up, Version::V5, store);
    REQUIRE(ps.size() == 1);
    CHECK_FALSE(std::get<mqtt::Connect>(ps[0]).will_flag);
    CHECK(link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 1));
    ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ps[0]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    CHECK(link.ready());
    CHECK(f.up.empty());
}

TEST_CASE("try_private sets the bridge bit on the v3.1.1 protocol level") {
    Fake f;
    Link link(config(Version::V311), f);
    link.on_upstream_open(0);
    REQUIRE(f.up.size() > 9);
    CHECK(f.up[8] == 0x84);   // 2 bytes fixed header, "\0\4MQTT", level
}

TEST_CASE("outbound messages pass through and complete only on the upstream acknowledgement") {
    for (Version v : {Version::V311, Version::V5}) {
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        LinkConfig cfg = config(v);
        cfg.try_private = false;
        Link link(cfg, f);
        connect(link, f, v, store);

        mqtt::Publish p;
        p.qos = 1;
        p.topic = "plant/line1";
        p.packet_id = 7;
        std::vector<uint8_t> payload = {'4', '2'};
        p.payload = payload;
        link.on_local_data(enc(Packet{p}, Version::V5));
        auto ups = take(f.up, v, store);
        REQUIRE(ups.size() == 1);
        const auto& fwd = std::get<mqtt::Publish>(ups[0]);
        CHECK(fwd.topic == "site/plant/line1");
        CHECK(fwd.packet_id == 7);
        CHECK(fwd.qos == 1);
        CHECK(f.local.empty());   // nothing acknowledged locally yet

        CHECK(link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 7, 0, {}}}, v), 3));
        auto ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(std::get<mqtt::Ack>(ls[0]).type == mqtt::PacketType::Puback);
        CHECK(std::get<mqtt::Ack>(ls[0]).packet_id == 7);
    }
}

TEST_CASE("inbound messages are remapped and acknowledged upstream only after the local acknowledgement") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    mqtt::Publish p;
    p.qos = 2;
    p.topic = "cmd/valve";
    p.packet_id = 3;
    link.on_upstream_data(enc(Packet{p}, Version::V5), 4);
    CHECK(f.up.empty());
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);
    // The first use of an id: a PUBREL closes what the local session might
    // hold open under it from an upstream session gone since; its PUBCOMP
    // ends here.
    CHECK(std::get<mqtt::Ack>(ls[0]).type == mqtt::PacketType::Pubrel);
    CHECK(std::get<mqtt::Ack>(ls[0]).packet_id == 3);
    CHECK(std::get<mqtt::Publish>(ls[1]).topic == "remote/cmd/valve");
    CHECK(std::get<mqtt::Publish>(ls[1]).packet_id == 3);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, 3, 0x92, {}}}, Version::V5));
    CHECK(f.up.empty());
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrec, 3, 0, {}}}, Version::V5));
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(std::get<mqtt::Ack>(ups[0]).type == mqtt::PacketType::Pubrec);
}

namespace {

mqtt::Publish message(std::string_view topic, uint8_t qos, uint16_t id, const std::vector<uint8_t>& payload) {
    mqtt::Publish p;
    p.qos = qos;
    p.topic = topic;
    p.packet_id = id;
    p.payload = payload;
    return p;
}

mqtt::Ack ack_of(const Packet& p) {
    REQUIRE(std::holds_alternative<mqtt::Ack>(p));
    return std::get<mqtt::Ack>(p);
}

}  // namespace

TEST_CASE("a message larger than the upstream takes is dropped, completed locally and counted; the next one flows") {
    const std::vector<uint8_t> big(3000, 'x'), small = {'o', 'k'};
    for (Version v : {Version::V311, Version::V5}) {
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        LinkConfig cfg = config(v);
        mqtt::Connack up_ack;
        // v3.1.1: the limit is configured; v5: the upstream announces a
        // smaller one than the configuration's, and the smaller applies.
        cfg.max_packet_size = v == Version::V5 ? 100000 : 2048;
        if (v == Version::V5) up_ack.props.maximum_packet_size = 2048;
        Link link(cfg, f);
        connect(link, f, v, store, up_ack);

        link.on_local_data(enc(Packet{message("plant/cam", 1, 7, big)}, Version::V5));
        CHECK(f.up.empty());
        auto ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(ack_of(ls[0]).type == mqtt::PacketType::Puback);
        CHECK(ack_of(ls[0]).packet_id == 7);
        CHECK(ack_of(ls[0]).reason == 0);

        // QoS 2: PUBREC now, and the PUBCOMP for its PUBREL, also when the
        // PUBREL comes again (resent after a reconnect): never upstream.
        link.on_local_data(enc(Packet{message("plant/cam", 2, 8, big)}, Version::V5));
        ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubrec);
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 8, 0, {}}}, Version::V5));
        ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubcomp);
        CHECK(ack_of(ls[0]).packet_id == 8);
        CHECK(f.up.empty());

        // A message that fits (the remapped topic counts) goes upstream as before.
        link.on_local_data(enc(Packet{message("plant/t", 1, 9, small)}, Version::V5));
        auto ups = take(f.up, v, store);
        REQUIRE(ups.size() == 1);
        CHECK(std::get<mqtt::Publish>(ups[0]).topic == "site/plant/t");
        CHECK(f.local.empty());
        // A PUBREL of a message that went upstream still goes there.
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 8, 0, {}}}, Version::V5));
        ups = take(f.up, v, store);
        REQUIRE(ups.size() == 1);
        CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrel);

        CHECK(link.too_large_out() == 2);
        CHECK(link.forwarded_out() == 1);
        CHECK(link.ready());
        CHECK(f.up_closes == 0);
        const auto logged = std::count_if(f.logs.begin(), f.logs.end(),
                                          [](const std::string& l) { return l.find("dropped") != std::string::npos; });
        CHECK(logged == 1);   // once per connection
    }
}

TEST_CASE("an upstream message larger than the local broker takes is dropped and acknowledged upstream") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_packet_size = 1024;
    connect(link, f, Version::V5, store, {}, local_ack);
    const std::vector<uint8_t> big(2000, 'x'), small = {'o', 'k'};

    link.on_upstream_data(enc(Packet{message("cmd/fw", 2, 5, big)}, Version::V5), 4);
    CHECK(f.local.empty());
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrec);
    CHECK(ack_of(ups[0]).packet_id == 5);
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 5, 0, {}}}, Version::V5), 5);
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);
    CHECK(f.local.empty());

    link.on_upstream_data(enc(Packet{message("cmd/valve", 1, 6, small)}, Version::V5), 6);
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).topic == "remote/cmd/valve");
    CHECK(link.too_large_in() == 1);
    CHECK(link.forwarded_in() == 1);

    // A dropped QoS 2 message whose PUBREL never came (the upstream lost its
    // session): a new flow under its id is the local broker's to finish.
    // (Its PUBREC follows the answer to the one before it.)
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 6, 0, {}}}, Version::V5));
    take(f.up, Version::V5, store);   // PUBACK 6
    link.on_upstream_data(enc(Packet{message("cmd/fw", 2, 21, big)}, Version::V5), 7);
    take(f.up, Version::V5, store);   // PUBREC
    link.on_upstream_data(enc(Packet{message("cmd/valve", 2, 21, small)}, Version::V5), 8);
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // PUBREL 21 first (the id's first use here)
    CHECK(std::get<mqtt::Publish>(ls[1]).packet_id == 21);
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 21, 0, {}}}, Version::V5), 9);
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubrel);
    CHECK(f.up.empty());
}

TEST_CASE("an upstream refusal completes the local flow, is counted and logged once per connection") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> payload = {'1'};
    for (uint16_t id : {11, 12}) {
        link.on_local_data(enc(Packet{message("plant/x", 1, id, payload)}, Version::V5));
        take(f.up, Version::V5, store);
        CHECK(link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, id, 0x87, {}}}, Version::V5), 5));
        auto ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(ack_of(ls[0]).packet_id == id);
        CHECK(ack_of(ls[0]).reason == 0x87);   // the local session ends the flow
    }
    CHECK(link.refused_out() == 2);
    CHECK(link.ready());
    const auto logged = std::count_if(f.logs.begin(), f.logs.end(),
                                      [](const std::string& l) { return l.find("refused a message (reason 0x87, not authorized)") != std::string::npos; });
    CHECK(logged == 1);
}

TEST_CASE("an upstream's quota exceeded (0x97) keeps the message: no local ack, the link reconnects") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> payload = {'1'};
    link.on_local_data(enc(Packet{message("plant/x", 1, 21, payload)}, Version::V5));
    take(f.up, Version::V5, store);
    CHECK_FALSE(link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 21, 0x97, {}}}, Version::V5), 5));
    // No PUBACK reaches the local session: its message stays in flight there
    // and is resent on the next connection.
    for (const Packet& p : take(f.local, Version::V5, store)) CHECK_FALSE(std::holds_alternative<mqtt::Ack>(p));
    CHECK(f.up_closes == 1);
    CHECK(f.local_closes == 1);
    CHECK_FALSE(link.ready());
    CHECK(link.refused_out() == 0);
    // Refused again at every try: the fifth ends its flow, as MQTT has it,
    // so it does not hold up the messages behind it for ever.
    for (int attempt = 2; attempt <= 5; ++attempt) {
        f.up.clear();
        f.local.clear();
        f.local_opens = 0;
        connect(link, f, Version::V5, store);
        link.on_local_data(enc(Packet{message("plant/x", 1, 21, payload)}, Version::V5));   // the resend
        take(f.up, Version::V5, store);
        const bool kept = !link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 21, 0x97, {}}}, Version::V5), 5);
        CHECK(kept == (attempt < 5));
    }
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).reason == 0x97);
    CHECK(link.refused_out() == 1);
}

TEST_CASE("0x97: refusals count in a row; a message taken at last starts the count again") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    const std::vector<uint8_t> payload = {'1'};
    auto attempt = [&](uint8_t reason) {
        f.up.clear();
        f.local.clear();
        f.local_opens = 0;
        connect(link, f, Version::V5, store);
        link.on_local_data(enc(Packet{message("plant/x", 1, 31, payload)}, Version::V5));
        take(f.up, Version::V5, store);
        return link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 31, reason, {}}}, Version::V5), 5);
    };
    for (int i = 0; i < 4; ++i) CHECK_FALSE(attempt(0x97));   // kept
    CHECK(attempt(0x00));                                      // taken
    // Id 31 again, for a later message: its first refusal keeps it too.
    CHECK_FALSE(attempt(0x97));
    CHECK(link.refused_out() == 0);
}

TEST_CASE("a local refusal closes the upstream instead of acknowledging") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    mqtt::Publish p;
    p.qos = 1;
    p.topic = "cmd/x";
    p.packet_id = 9;
    link.on_upstream_data(enc(Packet{p}, Version::V5), 4);
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 9, 0x97, {}}}, Version::V5));
    CHECK(f.up.empty());
    CHECK(f.up_closes == 1);
    CHECK(f.local_closes == 1);
    CHECK_FALSE(link.ready());
}

TEST_CASE("a local refusal for good is answered upstream with its reason, counted, logged once; the next message flows") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> payload = {0xFF};
    for (uint16_t id : {9, 10}) {
        link.on_upstream_data(enc(Packet{message("cmd/x", 1, id, payload)}, Version::V5), 4);
        take(f.local, Version::V5, store);
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, id, 0x99, {}}}, Version::V5));
        auto ups = take(f.up, Version::V5, store);
        REQUIRE(ups.size() == 1);
        CHECK(ack_of(ups[0]).type == mqtt::PacketType::Puback);
        CHECK(ack_of(ups[0]).packet_id == id);
        CHECK(ack_of(ups[0]).reason == 0x99);   // the upstream does not resend it
    }
    CHECK(f.up_closes == 0);
    CHECK(link.ready());
    CHECK(link.refused_in() == 2);
    const auto logged = std::count_if(f.logs.begin(), f.logs.end(), [](const std::string& l) {
        return l.find("local broker refused an upstream message (reason 0x99, payload format invalid)") != std::string::npos;
    });
    CHECK(logged == 1);
    link.on_upstream_data(enc(Packet{message("cmd/y", 1, 11, {'1'})}, Version::V5), 5);
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 11, 0, {}}}, Version::V5));
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).reason == 0);
}

TEST_CASE("a local QoS 2 refusal for good: v5 passes the PUBREC reason on; v3.1.1 gets a PUBREC and its PUBREL is answered here") {
    for (Version v : {Version::V5, Version::V311}) {
        CAPTURE(int(v));
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        Link link(config(v), f);
        connect(link, f, v, store);
        link.on_upstream_data(enc(Packet{message("cmd/x", 2, 4, {0xFF})}, v), 4);
        take(f.local, Version::V5, store);
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrec, 4, 0x87, {}}}, Version::V5));
        auto ups = take(f.up, v, store);
        REQUIRE(ups.size() == 1);
        CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrec);
        CHECK(ack_of(ups[0]).reason == (v == Version::V5 ? 0x87 : 0));
        CHECK(f.up_closes == 0);
        CHECK(link.refused_in() == 1);
        if (v == Version::V311) {
            link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 4, 0, {}}}, v), 5);
            ups = take(f.up, v, store);
            REQUIRE(ups.size() == 1);
            CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);
            CHECK(f.local.empty());   // the local broker holds no flow under that id
        }
    }
}

TEST_CASE("an upstream's refusal is logged in its protocol's words: v5 reason, v3.1.1 return code") {
    const std::pair<Version, std::string> cases[] = {
        {Version::V5, "upstream refused the connection: reason 0x86, bad user name or password"},
        {Version::V311, "upstream refused the connection: return code 4, bad user name or password"}};
    for (const auto& [v, line] : cases) {
        CAPTURE(line);
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        Link link(config(v), f);
        link.on_upstream_open(0);
        take(f.up, v, store);
        mqtt::Connack refused;
        refused.reason = mqtt::rc::BadUserNameOrPassword;
        CHECK_FALSE(link.on_upstream_data(enc(Packet{refused}, v), 1));
        CHECK(std::any_of(f.logs.begin(), f.logs.end(),
                          [&](const std::string& l) { return l.find(line) != std::string::npos; }));
    }
}

TEST_CASE("in rules: Retain Handling 1 with a persistent v5 upstream session, 0 with a clean start") {
    for (bool clean : {false, true}) {
        CAPTURE(clean);
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        LinkConfig c = config(Version::V5);
        c.clean_start = clean;
        Link link(c, f);
        link.on_upstream_open(0);
        take(f.up, Version::V5, store);
        link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 1);
        auto ps = take(f.up, Version::V5, store);
        REQUIRE(ps.size() == 1);
        const auto& sub = std::get<mqtt::Subscribe>(ps[0]);
        REQUIRE(sub.topics.size() == 1);
        CHECK(sub.topics[0].retain_handling == (clean ? 0 : 1));
        // An in-only rule too: the upstream keeps the retain flag of a live
        // update (the local retained copy follows it) and never sends back
        // what the bridge published.
        CHECK(sub.topics[0].retain_as_published);
        CHECK(sub.topics[0].no_local);
    }
}

TEST_CASE("upstream messages before ready wait for the local session") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V5);
    cfg.topics = {{"plant/#", Direction::Both, 1, "", ""}};
    Link link(cfg, f);
    link.on_upstream_open(0);
    take(f.up, Version::V5, store);
    mqtt::Publish p;
    p.qos = 1;
    p.topic = "plant/held";
    p.packet_id = 5;
    std::vector<uint8_t> bytes = enc(Packet{mqtt::Connack{}}, Version::V5);
    std::vector<uint8_t> pub = enc(Packet{p}, Version::V5);
    bytes.insert(bytes.end(), pub.begin(), pub.end());
    link.on_upstream_data(bytes, 1);
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    auto sub = std::get<mqtt::Subscribe>(ups[0]);
    CHECK(sub.topics[0].no_local);            // "both": not our own messages back
    CHECK(sub.topics[0].retain_as_published);
    mqtt::Suback sa;
    sa.packet_id = sub.packet_id;
    sa.reasons = {1};
    link.on_upstream_data(enc(Packet{sa}, Version::V5), 2);
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // CONNECT, SUBSCRIBE: the held PUBLISH not yet
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls[1]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // the connection state, then what was held
    CHECK(std::get<mqtt::Publish>(ls[1]).topic == "plant/held");
}

TEST_CASE("keep alive: PINGREQ when idle, closed when the upstream is silent") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V311);
    cfg.try_private = false;
    Link link(cfg, f);
    connect(link, f, Version::V311, store);
    link.on_tick(10500);
    auto ups = take(f.up, Version::V311, store);
    REQUIRE(ups.size() == 1);
    CHECK(std::holds_alternative<mqtt::Pingreq>(ups[0]));
    link.on_tick(16000);
    CHECK(f.up_closes == 1);
    CHECK(link.state() == Link::State::Down);
}

TEST_CASE("keep alive: a link that only sends out asks for a PINGRESP, and stays up while it comes") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V311);
    cfg.try_private = false;
    cfg.topics = {{"plant/#", Direction::Out, 0, "", ""}};
    Link link(cfg, f);
    link.on_upstream_open(0);
    link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V311), 0);
    auto ls = take(f.local, Version::V5, store);   // CONNECT
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    ls = take(f.local, Version::V5, store);
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls.back()).packet_id;
    lsa.reasons = {0};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.ready());
    take(f.up, Version::V311, store);
    mqtt::Publish telemetry;
    telemetry.topic = "plant/t";
    telemetry.payload = mqtt::Bytes(reinterpret_cast<const uint8_t*>("21"), 2);
    int pings = 0;
    // QoS 0 out every 500 ms: the upstream never has anything to answer but
    // the PINGREQs; keep_alive is 10 s.
    for (uint64_t t = 500; t <= 40000; t += 500) {
        link.on_tick(t);
        link.on_local_data(enc(Packet{telemetry}, Version::V5));
        for (const Packet& p : take(f.up, Version::V311, store)) {
            if (!std::holds_alternative<mqtt::Pingreq>(p)) continue;
            ++pings;
            link.on_upstream_data(enc(Packet{mqtt::Pingresp{}}, Version::V311), t);
        }
    }
    CHECK(link.ready());
    CHECK(f.up_closes == 0);
    CHECK(pings >= 3);
    CHECK(pings <= 5);
    // The upstream stops answering: closed 1.5 keep_alive after it last spoke.
    for (uint64_t t = 40500; t <= 60000 && link.ready(); t += 500) {
        link.on_tick(t);
        link.on_local_data(enc(Packet{telemetry}, Version::V5));
    }
    CHECK(f.up_closes == 1);
}

// Ours is 10 s: a shorter Server Keep Alive replaces it (MQTT-3.2.2-21); a
// longer one or 0 leaves ours watching the link (a PINGREQ is allowed any time).
TEST_CASE("keep alive: the upstream's Server Keep Alive when shorter than ours") {
    struct Case {
        uint16_t ska;
        uint64_t quiet_ms, ping_ms, closed_ms;
    };
    for (const Case k : {Case{2, 1500, 2100, 3500}, Case{0, 9500, 10500, 16000}, Case{1200, 9500, 10500, 16000}}) {
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        Link link(config(Version::V5), f);
        mqtt::Connack up_ack;
        up_ack.props.server_keep_alive = k.ska;
        connect(link, f, Version::V5, store, up_ack);
        take(f.up, Version::V5, store);
        link.on_tick(k.quiet_ms);
        CHECK(f.up.empty());
        link.on_tick(k.ping_ms);
        auto ups = take(f.up, Version::V5, store);
        REQUIRE(ups.size() == 1);
        CHECK(std::holds_alternative<mqtt::Pingreq>(ups[0]));
        link.on_tick(k.closed_ms);
        CHECK(f.up_closes == 1);
    }
}

TEST_CASE("priming creates the local session and closes it") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    link.prime();
    CHECK(f.local_opens == 1);
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // state "0", SUBSCRIBE
    CHECK(std::get<mqtt::Publish>(ls[0]).payload[0] == '0');
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls[1]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    CHECK(link.primed());
    CHECK(f.local_closes == 1);
    CHECK(f.up.empty());
}

TEST_CASE("a local server_keep_alive is honoured with local PINGREQs") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V5);
    cfg.topics = {{"plant/#", Direction::Out, 1, "", ""}};
    cfg.keep_alive = 0;
    Link link(cfg, f);
    link.on_upstream_open(0);
    link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 0);
    mqtt::Connack lack;
    lack.props.server_keep_alive = 4;
    link.on_local_data(enc(Packet{lack}, Version::V5));
    auto ls = take(f.local, Version::V5, store);   // CONNECT, SUBSCRIBE
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls.back()).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.ready());
    take(f.local, Version::V5, store);
    link.on_tick(1000);
    CHECK(f.local.empty());
    link.on_tick(2500);
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::holds_alternative<mqtt::Pingreq>(ls[0]));
}

TEST_CASE("local subscriptions that no out rule wants any more are unsubscribed before the SUBSCRIBE") {
    Fake f;
    f.subscribed = {"plant/#", "old/#", "cmd/#"};   // cmd/# is an in rule: not a local subscription
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V5);
    cfg.topics = {{"plant/#", Direction::Out, 1, "", ""}};
    Link link(cfg, f);
    link.on_upstream_open(0);
    link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 0);
    take(f.local, Version::V5, store);   // local CONNECT
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);
    const auto& u = std::get<mqtt::Unsubscribe>(ls[0]);
    REQUIRE(u.filters.size() == 2);
    CHECK(u.filters[0] == "old/#");
    CHECK(u.filters[1] == "cmd/#");
    const auto& s = std::get<mqtt::Subscribe>(ls[1]);
    CHECK(s.packet_id != u.packet_id);
    REQUIRE(s.topics.size() == 1);
    CHECK(s.topics[0].filter == "plant/#");
    // The UNSUBACK changes nothing; the SUBACK makes the link ready.
    mqtt::Unsuback ua;
    ua.packet_id = u.packet_id;
    ua.reasons = {0, 0};
    link.on_local_data(enc(Packet{ua}, Version::V5));
    CHECK_FALSE(link.ready());
    mqtt::Suback lsa;
    lsa.packet_id = s.packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    CHECK(link.ready());
}

namespace {

// Upstream CONNECT/CONNACK, then the in rules' SUBSCRIBE answered with `reasons`.
void subscribe_upstream(Link& link, Fake& f, Version v, std::vector<std::vector<uint8_t>>& store,
                        std::vector<uint8_t> reasons) {
    link.on_upstream_open(0);
    take(f.up, v, store);
    REQUIRE(link.on_upstream_data(enc(Packet{mqtt::Connack{}}, v), 1));
    auto ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    mqtt::Suback sa;
    sa.packet_id = std::get<mqtt::Subscribe>(ps[0]).packet_id;
    sa.reasons = std::move(reasons);
    REQUIRE(link.on_upstream_data(enc(Packet{sa}, v), 2));
}

void local_ready(Link& link, Fake& f, std::vector<std::vector<uint8_t>>& store) {
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    auto ps = take(f.local, Version::V5, store);
    REQUIRE(ps.size() == 1);
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ps[0]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.ready());
}

// Connects `link`, whose Fake remembers "cmd/#", "old/#" and "gone/+/x"
// while only cmd/# has a rule: returns the UNSUBSCRIBE of the other two.
mqtt::Unsubscribe stale_unsubscribe(Link& link, Fake& f, Version v, std::vector<std::vector<uint8_t>>& store) {
    subscribe_upstream(link, f, v, store, {1});
    auto ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    mqtt::Unsubscribe u = std::get<mqtt::Unsubscribe>(ps[0]);
    REQUIRE(u.filters.size() == 2);
    CHECK(u.filters[0] == "old/#");
    CHECK(u.filters[1] == "gone/+/x");
    return u;
}

}  // namespace

TEST_CASE("in rules no longer configured are unsubscribed upstream, and forgotten once the upstream answers") {
    const Version v = Version::V311;
    Fake f;
    f.remembered = {"cmd/#", "old/#", "gone/+/x"};
    Link link(config(v), f);
    std::vector<std::vector<uint8_t>> store;
    const mqtt::Unsubscribe u = stale_unsubscribe(link, f, v, store);
    CHECK(f.local_opens == 1);   // the local side does not wait for the UNSUBACK
    // Still remembered until the upstream confirms: a reconnect now retries.
    CHECK(f.remember_calls == 0);
    // The UNSUBACK arrives before the local session is ready: it waits too.
    mqtt::Unsuback ua;
    ua.packet_id = u.packet_id;
    REQUIRE(link.on_upstream_data(enc(Packet{ua}, v), 3));
    CHECK(f.remember_calls == 0);
    local_ready(link, f, store);
    CHECK(f.remember_calls == 1);
    CHECK(f.remembered == std::vector<std::string>{"cmd/#"});

    // The next connection has nothing stale: no UNSUBSCRIBE, nothing rewritten.
    link.on_upstream_closed();
    take(f.up, v, store);
    take(f.local, Version::V5, store);
    subscribe_upstream(link, f, v, store, {1});
    auto ps = take(f.up, v, store);
    CHECK(ps.empty());
    CHECK(f.remember_calls == 1);
}

TEST_CASE("a filter a v5 upstream refuses to unsubscribe stays remembered; an accepted one is forgotten") {
    const Version v = Version::V5;
    Fake f;
    f.remembered = {"cmd/#", "old/#", "gone/+/x"};
    Link link(config(v), f);
    std::vector<std::vector<uint8_t>> store;
    const mqtt::Unsubscribe u = stale_unsubscribe(link, f, v, store);
    local_ready(link, f, store);
    mqtt::Unsuback ua;
    ua.packet_id = u.packet_id;
    ua.reasons = {0x00, 0x87};   // old/# gone; gone/+/x refused (not authorized)
    REQUIRE(link.on_upstream_data(enc(Packet{ua}, v), 3));
    CHECK(f.remembered == std::vector<std::string>{"cmd/#", "gone/+/x"});
    const auto refusals = std::count_if(f.logs.begin(), f.logs.end(), [](const std::string& l) {
        return l.find("refused to unsubscribe 'gone/+/x'") != std::string::npos && l.find("0x87") != std::string::npos;
    });
    CHECK(refusals == 1);

    // The next connection retries the refused one.
    link.on_upstream_closed();
    take(f.up, v, store);
    take(f.local, Version::V5, store);
    subscribe_upstream(link, f, v, store, {1});
    auto ps = take(f.up, v, store);
    REQUIRE(ps.size() == 1);
    const auto& retry = std::get<mqtt::Unsubscribe>(ps[0]);
    REQUIRE(retry.filters.size() == 1);
    CHECK(retry.filters[0] == "gone/+/x");
}

TEST_CASE("upstream filters: a refused in rule is not remembered; a clean start unsubscribes nothing") {
    const Version v = Version::V311;
    {
        Fake f;
        Link link(config(v), f);
        std::vector<std::vector<uint8_t>> store;
        subscribe_upstream(link, f, v, store, {0x80});
        CHECK(take(f.up, v, store).empty());
        CHECK(f.remembered.empty());
        CHECK(f.remember_calls == 0);   // nothing then, nothing now
    }
    {
        Fake f;   // accepted before, refused now: the old subscription may remain upstream
        f.remembered = {"cmd/#"};
        Link link(config(v), f);
        std::vector<std::vector<uint8_t>> store;
        subscribe_upstream(link, f, v, store, {0x87});
        CHECK(take(f.up, v, store).empty());
        CHECK(f.remembered == std::vector<std::string>{"cmd/#"});
        CHECK(f.remember_calls == 0);
    }
    {
        Fake f;
        f.remembered = {"old/#"};
        LinkConfig c = config(v);
        c.clean_start = true;   // the upstream starts a new session: nothing of old/# is left
        Link link(c, f);
        std::vector<std::vector<uint8_t>> store;
        subscribe_upstream(link, f, v, store, {1});
        CHECK(take(f.up, v, store).empty());
        CHECK(f.remembered == std::vector<std::string>{"cmd/#"});
    }
    {
        Fake f;   // no in rule left at all: unsubscribed at the CONNACK
        f.remembered = {"cmd/#"};
        LinkConfig c = config(v);
        c.topics.pop_back();
        Link link(c, f);
        std::vector<std::vector<uint8_t>> store;
        link.on_upstream_open(0);
        take(f.up, v, store);
        REQUIRE(link.on_upstream_data(enc(Packet{mqtt::Connack{}}, v), 1));
        auto ps = take(f.up, v, store);
        REQUIRE(ps.size() == 1);
        const auto& u = std::get<mqtt::Unsubscribe>(ps[0]);
        REQUIRE(u.filters.size() == 1);
        CHECK(u.filters[0] == "cmd/#");
        CHECK(f.local_opens == 1);
        local_ready(link, f, store);
        mqtt::Unsuback ua;
        ua.packet_id = u.packet_id;
        REQUIRE(link.on_upstream_data(enc(Packet{ua}, v), 3));
        CHECK(f.remembered.empty());
    }
}

TEST_CASE("QoS 2 on a leftover upstream subscription is completed by the bridge; a PUBCOMP 0x92 from the local broker passes") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> small = {'o', 'k'};
    link.on_upstream_data(enc(Packet{message("old/x", 2, 9, small)}, Version::V5), 4);   // no rule matches
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrec);
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 9, 0, {}}}, Version::V5), 5);
    CHECK(take(f.local, Version::V5, store).empty());   // the local session never saw id 9
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);

    // A PUBREL the bridge no longer knows about (its drop list went with a
    // restart or a reload): the local broker answers 0x92, which completes
    // the flow upstream and does not fail the link.
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 11, 0, {}}}, Version::V5), 6);
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubrel);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, 11, 0x92, {}}}, Version::V5));
    CHECK(link.ready());
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);
    CHECK(ack_of(ups[0]).reason == 0x92);
}

TEST_CASE("an upstream that closes right after the same message, again and again, is reported; an answer or a failing network is not") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    const std::vector<uint8_t> big(1000, 'x');
    auto stuck_logs = [&] {
        return std::count_if(f.logs.begin(), f.logs.end(), [](const std::string& l) {
            return l.find("closed the connection 3 times in a row right after the message on 'site/plant/big' (") !=
                   std::string::npos;
        });
    };
    // One connection: the local session (re)sends the message, the upstream
    // answers it or not, then the connection ends.
    auto round = [&](bool answered, uint64_t close_after_ms) {
        f.local_opens = 0;
        connect(link, f, Version::V311, store);
        link.on_local_data(enc(Packet{message("plant/big", 1, 21, big)}, Version::V5));
        take(f.up, Version::V311, store);
        if (answered)
            CHECK(link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 21, 0, {}}}, Version::V311), 3));
        if (close_after_ms) link.on_tick(2 + close_after_ms);
        link.on_upstream_closed();
        take(f.local, Version::V5, store);
        take(f.up, Version::V311, store);
    };
    round(false, 0);
    CHECK(link.closes_on_same_message() == 1);
    round(false, 0);
    CHECK(link.closes_on_same_message() == 2);
    CHECK(stuck_logs() == 0);
    round(false, 0);
    CHECK(link.closes_on_same_message() == 3);
    CHECK(stuck_logs() == 1);
    round(false, 0);
    CHECK(link.closes_on_same_message() == 4);
    CHECK(stuck_logs() == 1);   // once per message
    round(true, 0);   // taken after all
    CHECK(link.closes_on_same_message() == 0);
    round(false, 0);
    CHECK(link.closes_on_same_message() == 1);
    // A connection a failing network drops, long after the message went out.
    round(false, Link::kStuckWindowMs + 1000);
    CHECK(link.closes_on_same_message() == 0);
}

TEST_CASE("an upstream that never answers CONNECT or SUBSCRIBE is dropped, also with keep_alive = 0") {
    for (const bool answers_connect : {false, true}) {
        CAPTURE(answers_connect);
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        LinkConfig cfg = config(Version::V311);   // with an in rule: a SUBSCRIBE follows the CONNACK
        cfg.try_private = false;
        cfg.keep_alive = 0;
        Link link(cfg, f);
        link.on_upstream_open(1000);
        if (answers_connect) {
            link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V311), 1000);
            REQUIRE(link.state() == Link::State::UpSubscribing);
        }
        link.on_tick(1000 + Link::kSetupTimeoutMs);
        CHECK(f.up_closes == 0);
        link.on_tick(1001 + Link::kSetupTimeoutMs);
        CHECK(f.up_closes == 1);
        CHECK(link.state() == Link::State::Down);
        CHECK(link.last_error().find(answers_connect ? "SUBACK" : "CONNACK") != std::string::npos);
    }
}

TEST_CASE("inbound messages wait while the local broker's Receive Maximum is reached, in order") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V5);
    cfg.inflight = 7;
    Link link(cfg, f);
    mqtt::Connack local_ack;
    local_ack.props.receive_maximum = 2;
    link.on_upstream_open(0);
    auto cs = take(f.up, Version::V5, store);
    REQUIRE(cs.size() == 1);
    // What a v5 upstream may send before the first answer.
    CHECK(std::get<mqtt::Connect>(cs[0]).props.receive_maximum == 7);
    link.on_upstream_closed();
    f = Fake{};
    connect(link, f, Version::V5, store, {}, local_ack);
    std::vector<uint8_t> burst;
    for (uint16_t id = 1; id <= 4; ++id) {
        auto b = enc(Packet{message("cmd/x", 1, id, {uint8_t('0' + id)})}, Version::V5);
        burst.insert(burst.end(), b.begin(), b.end());
    }
    auto b0 = enc(Packet{message("cmd/x", 0, 0, {'q'})}, Version::V5);   // QoS 0 keeps its place too
    burst.insert(burst.end(), b0.begin(), b0.end());
    CHECK(link.on_upstream_data(burst, 5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);
    CHECK(std::get<mqtt::Publish>(ls[0]).packet_id == 1);
    CHECK(std::get<mqtt::Publish>(ls[1]).packet_id == 2);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 1, 0, {}}}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).packet_id == 3);
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).packet_id == 1);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 2, 0, {}}}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // 4, then the QoS 0 one behind it
    CHECK(std::get<mqtt::Publish>(ls[0]).packet_id == 4);
    CHECK(std::get<mqtt::Publish>(ls[1]).qos == 0);
    CHECK(f.up_closes == 0);
}

TEST_CASE("a rule that maps a topic to an empty one drops that message, completes it and goes on") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V311);
    cfg.topics = {{"plant/#", Direction::Out, 1, "plant/", "site/"}, {"cmd/#", Direction::In, 2, "", "cmd/"}};
    cfg.topics[0].remote_prefix = "";
    Link link(cfg, f);
    connect(link, f, Version::V311, store);
    // in: "cmd/" without its prefix is "".
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/", 2, 5, {'x'})}, Version::V311), 5));
    CHECK(f.local.empty());
    auto ups = take(f.up, Version::V311, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrec);
    CHECK(link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 5, 0, {}}}, Version::V311), 6));
    ups = take(f.up, Version::V311, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);
    CHECK(link.unmappable_in() == 1);
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/a", 1, 6, {'y'})}, Version::V311), 7));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).topic == "a");
    // out: "plant/" without its prefix is "".
    link.on_local_data(enc(Packet{message("plant/", 1, 9, {'z'})}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).type == mqtt::PacketType::Puback);
    CHECK(ack_of(ls[0]).packet_id == 9);
    CHECK(f.up.empty());
    CHECK(link.unmappable_out() == 1);
    CHECK(f.up_closes == 0);
    CHECK(std::count_if(f.logs.begin(), f.logs.end(), [](const std::string& l) {
              return l.find("not a valid topic") != std::string::npos;
          }) == 1);
}

TEST_CASE("a resend (DUP) taken down to QoS 0 crosses without DUP, which QoS 0 may not carry") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_qos = 0;
    connect(link, f, Version::V5, store, {}, local_ack);
    const std::vector<uint8_t> on = {'o', 'n'};   // the message's payload is a view of it
    mqtt::Publish resend = message("cmd/valve", 1, 6, on);
    resend.dup = true;
    link.on_upstream_data(enc(Packet{resend}, Version::V5), 6);
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    const auto& local = std::get<mqtt::Publish>(ls[0]);
    CHECK(local.qos == 0);
    CHECK_FALSE(local.dup);
}

TEST_CASE("inbound messages cross within the local broker's Maximum QoS and Retain Available") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_qos = 1;
    local_ack.props.retain_available = 0;
    link.prime();
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{local_ack}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);
    CHECK_FALSE(std::get<mqtt::Publish>(ls[0]).retain);   // the state, where retain is not available
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls[1]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.primed());
    // The in rule asks for QoS 2; the upstream is asked for what the local broker takes.
    link.on_upstream_open(10);
    take(f.up, Version::V5, store);
    link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 11);
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    const auto& sub = std::get<mqtt::Subscribe>(ups[0]);
    CHECK(sub.topics[0].qos == 1);
    mqtt::Suback sa;
    sa.packet_id = sub.packet_id;
    sa.reasons = {1};
    link.on_upstream_data(enc(Packet{sa}, Version::V5), 12);
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{local_ack}, Version::V5));
    ls = take(f.local, Version::V5, store);
    lsa.packet_id = std::get<mqtt::Subscribe>(ls[0]).packet_id;
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.ready());
    take(f.local, Version::V5, store);
    take(f.up, Version::V5, store);
    // An upstream that sends QoS 2 retained anyway: QoS 1, not retained, here;
    // the upstream's flow is completed by the bridge.
    const std::vector<uint8_t> body{'o'};
    mqtt::Publish p = message("cmd/v", 2, 8, body);
    p.retain = true;
    CHECK(link.on_upstream_data(enc(Packet{p}, Version::V5), 13));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).qos == 1);
    CHECK_FALSE(std::get<mqtt::Publish>(ls[0]).retain);
    CHECK(f.up.empty());   // answered only once the local broker has it
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 8, 0, {}}}, Version::V5));
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubrec);
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 8, 0, {}}}, Version::V5), 14);
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(ack_of(ups[0]).type == mqtt::PacketType::Pubcomp);
    CHECK(f.local.empty());
    CHECK(f.up_closes == 0);
}

TEST_CASE("outbound messages cross within a v5 upstream's Maximum QoS and Retain Available") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V5);
    cfg.notifications = false;
    Link link(cfg, f);
    mqtt::Connack up_ack;
    up_ack.props.maximum_qos = 1;
    up_ack.props.retain_available = 0;
    link.on_upstream_open(0);
    take(f.up, Version::V5, store);
    link.on_upstream_data(enc(Packet{up_ack}, Version::V5), 1);
    auto ups = take(f.up, Version::V5, store);
    mqtt::Suback sa;
    sa.packet_id = std::get<mqtt::Subscribe>(ups[0]).packet_id;
    sa.reasons = {1};
    link.on_upstream_data(enc(Packet{sa}, Version::V5), 2);
    take(f.local, Version::V5, store);
    link.on_local_data(enc(Packet{mqtt::Connack{}}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    mqtt::Suback lsa;
    lsa.packet_id = std::get<mqtt::Subscribe>(ls[0]).packet_id;
    lsa.reasons = {1};
    link.on_local_data(enc(Packet{lsa}, Version::V5));
    REQUIRE(link.ready());
    take(f.local, Version::V5, store);
    const std::vector<uint8_t> body{'1'};
    mqtt::Publish p = message("plant/t", 2, 4, body);
    p.retain = true;
    link.on_local_data(enc(Packet{p}, Version::V5));
    ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(std::get<mqtt::Publish>(ups[0]).qos == 1);
    CHECK_FALSE(std::get<mqtt::Publish>(ups[0]).retain);
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 4, 0, {}}}, Version::V5), 3);
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubrec);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 4, 0, {}}}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(ack_of(ls[0]).type == mqtt::PacketType::Pubcomp);
    CHECK(f.up.empty());
}

TEST_CASE("an upstream resend under an id whose flow is open here is not published again nor counted twice") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    mqtt::Connack local_ack;
    local_ack.props.receive_maximum = 2;
    connect(link, f, Version::V311, store, {}, local_ack);
    const std::vector<uint8_t> body{'x'};
    auto send = [&](uint8_t qos, uint16_t id, bool dup) {
        mqtt::Publish p = message("cmd/x", qos, id, body);
        p.dup = dup;
        CHECK(link.on_upstream_data(enc(Packet{p}, Version::V311), 5));
    };
    send(2, 1, false);
    send(2, 1, true);    // in flight locally
    send(2, 2, false);
    send(2, 3, false);   // waits: two in flight
    send(2, 3, true);    // waiting already
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 4);   // PUBREL and PUBLISH for 1 and 2 (first uses of the ids)
    for (uint16_t id : {1, 2})   // the local broker answers those PUBRELs
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, id, 0x92, {}}}, Version::V5));
    for (uint16_t id : {1, 2}) {
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrec, id, 0, {}}}, Version::V5));
        link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, id, 0, {}}}, Version::V311), 6);
        link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, id, 0, {}}}, Version::V5));
    }
    ls = take(f.local, Version::V5, store);
    // PUBREL 1, then 3 once (after its own first-use PUBREL), PUBREL 2.
    REQUIRE(ls.size() == 4);
    CHECK(std::get<mqtt::Publish>(ls[2]).packet_id == 3);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, 3, 0x92, {}}}, Version::V5));
    // 3 holds one slot, 4 takes the other, 5 waits for 3 to complete.
    send(1, 4, false);
    send(1, 5, false);
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).packet_id == 4);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrec, 3, 0, {}}}, Version::V5));
    link.on_upstream_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubrel, 3, 0, {}}}, Version::V311), 7);
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Pubcomp, 3, 0, {}}}, Version::V5));
    ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // PUBREL 3, then 5
    CHECK(std::get<mqtt::Publish>(ls[1]).packet_id == 5);
    CHECK(f.up_closes == 0);
}

TEST_CASE("a QoS 2 id the local session still holds open from an upstream session gone since is closed before reuse") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    const std::vector<uint8_t> body{'a'};
    auto local_types = [&] {
        std::vector<mqtt::PacketType> t;
        for (const Packet& p : take(f.local, Version::V5, store))
            t.push_back(std::holds_alternative<mqtt::Publish>(p) ? mqtt::PacketType::Publish : ack_of(p).type);
        return t;
    };
    using PT = mqtt::PacketType;
    connect(link, f, Version::V5, store);
    link.on_upstream_data(enc(Packet{message("cmd/a", 2, 1, body)}, Version::V5), 5);
    CHECK(local_types() == std::vector<PT>{PT::Pubrel, PT::Publish});
    link.on_local_data(enc(Packet{mqtt::Ack{PT::Pubcomp, 1, 0x92, {}}}, Version::V5));
    link.on_local_data(enc(Packet{mqtt::Ack{PT::Pubrec, 1, 0, {}}}, Version::V5));
    take(f.up, Version::V5, store);   // PUBREC upstream; the connection is lost before its PUBREL
    link.on_upstream_closed();
    // Back with the session kept: the upstream resends the PUBREL; a new flow
    // under another id is checked once, id 1 is not touched.
    f = Fake{};
    mqtt::Connack kept;
    kept.session_present = true;
    connect(link, f, Version::V5, store, kept);
    link.on_upstream_data(enc(Packet{mqtt::Ack{PT::Pubrel, 1, 0, {}}}, Version::V5), 6);
    CHECK(local_types() == std::vector<PT>{PT::Pubrel});
    link.on_local_data(enc(Packet{mqtt::Ack{PT::Pubcomp, 1, 0, {}}}, Version::V5));
    CHECK(ack_of(take(f.up, Version::V5, store).at(0)).type == PT::Pubcomp);
    link.on_upstream_closed();
    // Back without it: id 1 may be open locally from before (here it is
    // not), so its next new flow is closed first.
    f = Fake{};
    connect(link, f, Version::V5, store);
    link.on_upstream_data(enc(Packet{message("cmd/b", 2, 1, body)}, Version::V5), 7);
    CHECK(local_types() == std::vector<PT>{PT::Pubrel, PT::Publish});
    // A resend (DUP) is never a new flow: no PUBREL before it.
    link.on_upstream_closed();
    f = Fake{};
    connect(link, f, Version::V5, store, kept);
    mqtt::Publish again = message("cmd/c", 2, 9, body);
    again.dup = true;
    link.on_upstream_data(enc(Packet{again}, Version::V5), 8);
    CHECK(local_types() == std::vector<PT>{PT::Publish});
}

TEST_CASE("a refused upstream subscription is logged with its v5 reason, or v3.1.1's failure code") {
    for (Version v : {Version::V5, Version::V311}) {
        Fake f;
        Link link(config(v), f);
        std::vector<std::vector<uint8_t>> store;
        subscribe_upstream(link, f, v, store, {v == Version::V5 ? uint8_t(0x87) : uint8_t(0x80)});
        const std::string want = v == Version::V5 ? "refused subscription 1 (reason 0x87, not authorized)"
                                                  : "refused subscription 1 (return code 0x80)";
        const auto logged = std::count_if(f.logs.begin(), f.logs.end(),
                                          [&](const std::string& l) { return l.find(want) != std::string::npos; });
        CHECK(logged == 1);
    }
}

// "cmd/#" matches "cmd/$SYS/..." ($ only reserves a first level), and with
// remote_prefix "cmd/" it would be written here as "$SYS/...", which the
// bridge's session may write: anyone upstream could fake this broker's
// figures, a bridge's state or its remembered filters.
TEST_CASE("an inbound topic that maps to this broker's $SYS or $bridge/ is dropped") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    LinkConfig cfg = config(Version::V311);
    cfg.topics[1] = {"cmd/#", Direction::In, 2, "", "cmd/"};
    Link link(cfg, f);
    connect(link, f, Version::V311, store);
    uint16_t id = 5;
    for (const char* topic : {"cmd/$SYS/broker/connection/site/state", "cmd/$SYS", "cmd/$bridge/site/upstream_filters"}) {
        CAPTURE(topic);
        CHECK(link.on_upstream_data(enc(Packet{message(topic, 1, id, {'1'})}, Version::V311), id));
        CHECK(f.local.empty());
        auto ups = take(f.up, Version::V311, store);
        REQUIRE(ups.size() == 1);   // acknowledged upstream: not resent for ever
        CHECK(ack_of(ups[0]).packet_id == id);
        ++id;
    }
    CHECK(link.unmappable_in() == 3);
    // Other $ topics (an AWS shadow, say) still cross.
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/$aws/things/x", 1, id, {'1'})}, Version::V311), id));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 1);
    CHECK(std::get<mqtt::Publish>(ls[0]).topic == "$aws/things/x");
}

// The bridge's CONNECT sets no Topic Alias Maximum: an upstream that sends
// an alias anyway breaks the protocol. Taken as a message on the empty
// topic, it was dropped (or published under the bare local prefix).
TEST_CASE("an upstream topic alias the bridge never allowed closes the connection with 0x94") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> payload{'x'};   // the Publish views it
    mqtt::Publish p = message("", 1, 7, payload);
    p.props.topic_alias = 1;
    CHECK_FALSE(link.on_upstream_data(enc(Packet{p}, Version::V5), 5));
    auto ups = take(f.up, Version::V5, store);
    REQUIRE(ups.size() == 1);
    CHECK(std::get<mqtt::Disconnect>(ups[0]).reason == mqtt::rc::TopicAliasInvalid);
    CHECK(f.up_closes == 1);
    for (const Packet& lp : take(f.local, Version::V5, store))   // only the state going to 0
        if (const auto* lpub = std::get_if<mqtt::Publish>(&lp)) CHECK(lpub->topic.starts_with("$SYS/"));
}

// An upstream message over what the local broker takes was buffered whole
// before it was dropped: a 200 MB file on a command topic took 200 MB of a
// gateway's memory. A v5 upstream is now told the limit; over what it was
// told is a protocol error. A v3.1.1 one cannot be told: its PUBLISH is
// skipped as it arrives and completed as too large.
TEST_CASE("upstream packets over the local limit: a v5 upstream is told it, a v3.1.1 one's are skipped unbuffered") {
    const std::vector<uint8_t> big(5000, 'x'), small = {'o', 'k'};
    mqtt::Connack local_ack;
    local_ack.props.maximum_packet_size = 1024;
    SUBCASE("v5") {
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        Link link(config(Version::V5), f);
        connect(link, f, Version::V5, store, {}, local_ack);
        link.on_upstream_closed();
        f = Fake{};
        link.on_upstream_open(10);
        auto ps = take(f.up, Version::V5, store);
        REQUIRE(ps.size() == 1);
        CHECK(std::get<mqtt::Connect>(ps[0]).props.maximum_packet_size == 1024u);
        link.on_upstream_data(enc(Packet{mqtt::Connack{}}, Version::V5), 11);
        take(f.up, Version::V5, store);   // SUBSCRIBE
        CHECK_FALSE(link.on_upstream_data(enc(Packet{message("cmd/fw", 1, 5, big)}, Version::V5), 12));
        ps = take(f.up, Version::V5, store);
        REQUIRE(ps.size() == 1);
        CHECK(std::get<mqtt::Disconnect>(ps[0]).reason == mqtt::rc::PacketTooLarge);
        CHECK(f.up_closes == 1);
    }
    SUBCASE("v3.1.1, in pieces, with a message behind it") {
        Fake f;
        std::vector<std::vector<uint8_t>> store;
        Link link(config(Version::V311), f);
        connect(link, f, Version::V311, store, {}, local_ack);
        std::vector<uint8_t> bytes = enc(Packet{message("cmd/fw", 1, 5, big)}, Version::V311);
        const std::vector<uint8_t> next = enc(Packet{message("cmd/valve", 1, 6, small)}, Version::V311);
        bytes.insert(bytes.end(), next.begin(), next.end());
        for (size_t at = 0; at < bytes.size(); at += 700) {
            const size_t n = std::min<size_t>(700, bytes.size() - at);
            CHECK(link.on_upstream_data(std::span<const uint8_t>(bytes).subspan(at, n), 12));
            CHECK(link.upstream_buffered() < 1024);   // never held whole
        }
        auto ups = take(f.up, Version::V311, store);
        REQUIRE(ups.size() == 1);
        CHECK(ack_of(ups[0]).type == mqtt::PacketType::Puback);
        CHECK(ack_of(ups[0]).packet_id == 5);
        auto ls = take(f.local, Version::V5, store);
        REQUIRE(ls.size() == 1);
        CHECK(std::get<mqtt::Publish>(ls[0]).topic == "remote/cmd/valve");
        CHECK(link.too_large_in() == 1);
        CHECK(f.up_closes == 0);
        CHECK(std::any_of(f.logs.begin(), f.logs.end(), [](const std::string& l) {
            return l.find("'cmd/fw' is 5") != std::string::npos;
        }));
    }
}

// What waits for the local broker was bounded in packets only (100 000 of
// up to the local packet limit each): in bytes too now.
TEST_CASE("upstream messages waiting for the local broker are bounded in bytes") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    mqtt::Connack local_ack;
    local_ack.props.receive_maximum = 1;
    connect(link, f, Version::V311, store, {}, local_ack);
    const std::vector<uint8_t> mib(1 << 20, 'x');
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/x", 1, 1, mib)}, Version::V311), 5));   // in flight
    int waited = 0;
    for (uint16_t id = 2; id < 100 && link.state() != Link::State::Down; ++id, ++waited)
        link.on_upstream_data(enc(Packet{message("cmd/x", 1, id, mib)}, Version::V311), 5);
    CHECK(waited > 60);
    CHECK(waited < 70);
    CHECK(f.up_closes == 1);
}

// A skipped message is answered in its turn: behind those received before
// it that wait for the local broker's Receive Maximum (MQTT-4.6.0-2).
TEST_CASE("a skipped oversized message is acknowledged upstream in the order it came") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_packet_size = 1024;
    local_ack.props.receive_maximum = 1;
    connect(link, f, Version::V311, store, {}, local_ack);
    const std::vector<uint8_t> big(5000, 'x'), small = {'o', 'k'};
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/a", 1, 1, small)}, Version::V311), 5));
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/b", 1, 2, small)}, Version::V311), 5));   // waits
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/fw", 1, 3, big)}, Version::V311), 5));    // skipped
    CHECK(f.up.empty());   // nothing answered yet: 1 is in flight locally, 2 and 3 behind it
    auto order = [&] {
        std::vector<uint16_t> ids;
        for (const Packet& p : take(f.up, Version::V311, store)) ids.push_back(ack_of(p).packet_id);
        return ids;
    };
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 1, 0, {}}}, Version::V5));
    CHECK(order() == std::vector<uint16_t>{1});
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 2, 0, {}}}, Version::V5));
    CHECK(order() == std::vector<uint16_t>{2, 3});
    CHECK(link.too_large_in() == 1);
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);   // 1 and 2 only
    CHECK(std::get<mqtt::Publish>(ls[1]).topic == "remote/cmd/b");
}

// The same with room in the local window: the stand-in still waits for the
// answers to what came before it.
TEST_CASE("a skipped oversized message is not answered ahead of one in flight locally") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_packet_size = 1024;
    local_ack.props.receive_maximum = 10;
    connect(link, f, Version::V311, store, {}, local_ack);
    const std::vector<uint8_t> big(5000, 'x'), small = {'o', 'k'};
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/a", 1, 1, small)}, Version::V311), 5));
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/fw", 1, 2, big)}, Version::V311), 5));
    CHECK(f.up.empty());
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 1, 0, {}}}, Version::V5));
    std::vector<uint16_t> ids;
    for (const Packet& p : take(f.up, Version::V311, store)) ids.push_back(ack_of(p).packet_id);
    CHECK(ids == std::vector<uint16_t>{1, 2});
}

// Every message the link answers itself waits like a stand-in: one not
// ours (no rule maps it) and one too large once its topic is mapped were
// acknowledged upstream ahead of a message still in flight locally.
TEST_CASE("messages dropped here are not answered ahead of one in flight locally") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V311), f);
    mqtt::Connack local_ack;
    local_ack.props.maximum_packet_size = 1024;
    local_ack.props.receive_maximum = 10;
    connect(link, f, Version::V311, store, {}, local_ack);
    const std::vector<uint8_t> small = {'o', 'k'}, near(1012, 'n');
    CHECK(link.on_upstream_data(enc(Packet{message("cmd/a", 1, 1, small)}, Version::V311), 5));
    CHECK(link.on_upstream_data(enc(Packet{message("elsewhere/x", 1, 2, small)}, Version::V311), 5));   // not ours
    const std::vector<uint8_t> fits_up = enc(Packet{message("cmd/c", 1, 3, near)}, Version::V311);
    REQUIRE(fits_up.size() <= 1024);   // not skipped: too large only with the local prefix
    CHECK(link.on_upstream_data(fits_up, 5));
    CHECK(f.up.empty());
    link.on_local_data(enc(Packet{mqtt::Ack{mqtt::PacketType::Puback, 1, 0, {}}}, Version::V5));
    std::vector<uint16_t> ids;
    for (const Packet& p : take(f.up, Version::V311, store)) ids.push_back(ack_of(p).packet_id);
    CHECK(ids == std::vector<uint16_t>{1, 2, 3});
    CHECK(link.too_large_in() == 1);
    CHECK(take(f.local, Version::V5, store).size() == 1);   // cmd/a only
}

// A message queued under an out rule a reload removed reaches the link with
// a topic no rule maps: completed (its publisher was acknowledged long ago),
// but no longer silently.
TEST_CASE("a queued message no rule maps any more is dropped, counted and logged once a connection") {
    Fake f;
    std::vector<std::vector<uint8_t>> store;
    Link link(config(Version::V5), f);
    connect(link, f, Version::V5, store);
    const std::vector<uint8_t> small = {'x'};
    link.on_local_data(enc(Packet{message("old/rule/a", 1, 3, small)}, Version::V5));
    link.on_local_data(enc(Packet{message("old/rule/b", 1, 4, small)}, Version::V5));
    auto ls = take(f.local, Version::V5, store);
    REQUIRE(ls.size() == 2);
    CHECK(ack_of(ls[0]).packet_id == 3);
    CHECK(ack_of(ls[1]).packet_id == 4);
    CHECK(f.up.empty());
    CHECK(link.unmappable_out() == 2);
    const auto logged = std::count_if(f.logs.begin(), f.logs.end(),
                                      [](const std::string& l) { return l.find("matches no out rule") != std::string::npos; });
    CHECK(logged == 1);
}
