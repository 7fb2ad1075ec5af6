// Partial input at every split point, and a bounded fuzz loop.
#include <random>

#include "helpers.hpp"

namespace hato::mqtt::test {
namespace {

// A valid packet of every type, in the given version, with properties in v5.
std::vector<Packet> sample_packets(Version v) {
    const bool v5 = v == Version::V5;
    std::vector<Packet> out;
    Connect c;
    c.version = v;
    c.client_id = "cid";
    c.will_flag = true;
    c.will_qos = 1;
    c.will_topic = "w/t";
    c.will_payload = span_of("bye");
    c.username = "u";
    c.password = span_of("pw");
    if (v5) {
        c.props = connect_props();
        c.will_props = will_props();
    }
    out.push_back(c);
    Connack ca;
    ca.session_present = true;
    if (v5) ca.props = connack_props();
    out.push_back(ca);
    Publish p;
    p.qos = 2;
    p.topic = "a/b";
    p.packet_id = 300;
    p.payload = span_of("payload bytes");
    if (v5) p.props = publish_props();
    out.push_back(p);
    for (PacketType t : {PacketType::Puback, PacketType::Pubrec, PacketType::Pubrel,
                         PacketType::Pubcomp}) {
        Ack a;
        a.type = t;
        a.packet_id = 9;
        if (v5) {
            a.reason = t == PacketType::Pubrel || t == PacketType::Pubcomp
                           ? rc::PacketIdentifierNotFound : rc::QuotaExceeded;
            a.props = reason_props();
        }
        out.push_back(a);
    }
    Subscribe s;
    s.packet_id = 4;
    s.topics = {{"x/#", 1}, {"+/y", 2}};
    if (v5) s.props.subscription_ids = {42};
    out.push_back(s);
    Suback sa;
    sa.packet_id = 4;
    sa.reasons = {1, 2, 0x80};
    if (v5) sa.props = reason_props();
    out.push_back(sa);
    Unsubscribe u;
    u.packet_id = 5;
    u.filters = {"x/#", "+/y"};
    out.push_back(u);
    Unsuback ua;
    ua.packet_id = 5;
    if (v5) ua.reasons = {0, 0x11};
    out.push_back(ua);
    out.push_back(Pingreq{});
    out.push_back(Pingresp{});
    Disconnect d;
    if (v5) {
        d.reason = rc::ServerShuttingDown;
        d.props = disconnect_props();
    }
    out.push_back(d);
    if (v5) {
        Auth a;
        a.reason = rc::ReAuthenticate;
        a.props = auth_props();
        out.push_back(a);
    }
    return out;
}

const Version kVersions[] = {Version::V31, Version::V311, Version::V5};

TEST_CASE("every strict prefix of a valid packet is Incomplete") {
    for (Version v : kVersions) {
        for (const Packet& p : sample_packets(v)) {
            const Buf wire = encode_one(p, v);
            for (size_t cut = 0; cut < wire.size(); ++cut) {
                INFO("version " << int(v) << " cut " << cut << " of " << hex(wire));
                Packet out;
                DecodeResult r = decode(Bytes(wire.data(), cut), v, 0, out);
                CHECK(r.status == DecodeStatus::Incomplete);
                CHECK(r.consumed == 0);
            }
            Packet out;
            CHECK(decode(Bytes(wire), v, 0, out).status == DecodeStatus::Ok);
        }
    }
}

TEST_CASE("peek_header on partial headers") {
    FixedHeader hdr;
    const Buf empty;
    CHECK(peek_header(Bytes(empty), 0, hdr).status == DecodeStatus::Incomplete);
    const Buf partial = {0x30, 0x80, 0x80};
    for (size_t cut = 0; cut <= partial.size(); ++cut)
        CHECK(peek_header(Bytes(partial.data(), cut), 0, hdr).status == DecodeStatus::Incomplete);
}

// Checks the decode contract on arbitrary bytes; when decoding succeeds, the
// packet must re-encode into something that decodes again.
void check_contract(const Buf& input, Version v) {
    Packet out;
    DecodeResult r = decode(Bytes(input), v, 0, out);
    REQUIRE(r.consumed <= input.size());
    switch (r.status) {
    case DecodeStatus::Incomplete: REQUIRE(r.consumed == 0); break;
    case DecodeStatus::Error: REQUIRE(r.reason >= 0x80); break;
    case DecodeStatus::Ok: {
        REQUIRE(r.consumed >= 2);
        // CONNECT carries its own version; everything else uses the connection's.
        const Version enc_v =
            std::holds_alternative<Connect>(out) ? std::get<Connect>(out).version : v;
        const Buf again = encode_one(out, enc_v);
        REQUIRE(again.size() == encoded_size(out, enc_v));
        Packet back;
        DecodeResult r2 = decode(Bytes(again), enc_v, 0, back);
        INFO("input " << hex(input) << " re-encoded " << hex(again) << " " << r2.what);
        REQUIRE(r2.status == DecodeStatus::Ok);
        REQUIRE(back.index() == out.index());
        break;
    }
    }
}

TEST_CASE("fuzz: random bytes never crash or over-consume") {
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> len(0, 48);
    for (int i = 0; i < 60'000; ++i) {
        Buf input(size_t(len(rng)));
        for (auto& b : input) b = uint8_t(byte(rng));
        // Make a plausible fixed header half of the time so bodies get parsed.
        if (input.size() >= 2 && (i & 1)) input[1] = uint8_t(input.size() - 2);
        check_contract(input, kVersions[i % 3]);
    }
}

TEST_CASE("fuzz: mutated valid packets never crash or over-consume") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    for (Version v : kVersions) {
        for (const Packet& p : sample_packets(v)) {
            const Buf wire = encode_one(p, v);
            std::uniform_int_distribution<size_t> pos(0, wire.size() - 1);
            for (int i = 0; i < 3'000; ++i) {
                Buf input = wire;
                const int flips = 1 + i % 3;
                for (int f = 0; f < flips; ++f) input[pos(rng)] = uint8_t(byte(rng));
                if (i % 5 == 0) input.resize(pos(rng));  // and truncation
                check_contract(input, v);
            }
        }
    }
}

}  // namespace
}  // namespace hato::mqtt::test
