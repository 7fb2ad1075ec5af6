// Byte-exact checks against hand-written wire examples, and the PUBLISH hot path.
#include <deque>

#include "helpers.hpp"

namespace hato::mqtt::test {
namespace {

// Encoding `p` gives exactly `wire`, and decoding `wire` gives it back.
void check_wire(const Packet& p, Version v, const Buf& wire) {
    CHECK(hex(encode_one(p, v)) == hex(wire));
    CHECK(encoded_size(p, v) == wire.size());
    Packet back = decode_ok(wire, v);
    CHECK(back.index() == p.index());
}

TEST_CASE("wire: CONNECT in 3.1, 3.1.1 and 5.0") {
    Connect c;
    c.keep_alive = 60;
    c.client_id = "DIGI";
    c.version = Version::V311;
    check_wire(c, Version::V311,
               bytes({0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
                      0x00, 0x04, 'D', 'I', 'G', 'I'}));
    c.version = Version::V31;
    check_wire(c, Version::V31,
               bytes({0x10, 0x12, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00,
                      0x3c, 0x00, 0x04, 'D', 'I', 'G', 'I'}));
    c.version = Version::V5;
    c.client_id = "";
    c.props.session_expiry = 60;
    check_wire(c, Version::V5,
               bytes({0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c,
                      0x05, 0x11, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00}));
}

TEST_CASE("wire: CONNECT with will, user name and password (3.1.1)") {
    Connect c;
    c.clean_start = false;
    c.client_id = "c";
    c.will_flag = true;
    c.will_qos = 1;
    c.will_retain = true;
    c.will_topic = "w";
    c.will_payload = span_of("x");
    c.username = "u";
    c.password = span_of("p");
    // flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04
    check_wire(c, Version::V311,
               bytes({0x10, 0x19, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEC, 0x00, 0x00,
                      0x00, 0x01, 'c', 0x00, 0x01, 'w', 0x00, 0x01, 'x', 0x00, 0x01, 'u',
                      0x00, 0x01, 'p'}));
}

TEST_CASE("wire: CONNACK") {
    Connack c;
    c.session_present = true;
    check_wire(c, Version::V311, bytes({0x20, 0x02, 0x01, 0x00}));
    c.session_present = false;
    c.reason = rc::NotAuthorized;
    check_wire(c, Version::V5, bytes({0x20, 0x03, 0x00, 0x87, 0x00}));
    check_wire(c, Version::V311, bytes({0x20, 0x02, 0x00, 0x05}));
}

TEST_CASE("wire: PUBLISH") {
    Publish p;
    p.qos = 1;
    p.topic = "a/b";
    p.packet_id = 10;
    p.payload = span_of("hi");
    check_wire(p, Version::V311,
               bytes({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0a, 'h', 'i'}));
    check_wire(p, Version::V5,
               bytes({0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0a, 0x00, 'h', 'i'}));
    Publish aliased;
    aliased.retain = true;
    aliased.props.topic_alias = 1;
    aliased.payload = span_of("hi");
    check_wire(aliased, Version::V5,
               bytes({0x31, 0x08, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 'h', 'i'}));
    Publish dup2;
    dup2.qos = 2;
    dup2.dup = true;
    dup2.topic = "t";
    dup2.packet_id = 0x0102;
    check_wire(dup2, Version::V311, bytes({0x3C, 0x05, 0x00, 0x01, 't', 0x01, 0x02}));
}

TEST_CASE("wire: acks, short and long forms") {
    Ack a;
    a.packet_id = 1;
    check_wire(a, Version::V5, bytes({0x40, 0x02, 0x00, 0x01}));
    a.reason = rc::NoMatchingSubscribers;
    check_wire(a, Version::V5, bytes({0x40, 0x03, 0x00, 0x01, 0x10}));
    a.props.reason_string = "r";
    check_wire(a, Version::V5,
               bytes({0x40, 0x08, 0x00, 0x01, 0x10, 0x04, 0x1F, 0x00, 0x01, 'r'}));
    Ack rel;
    rel.type = PacketType::Pubrel;
    rel.packet_id = 5;
    check_wire(rel, Version::V311, bytes({0x62, 0x02, 0x00, 0x05}));
    rel.type = PacketType::Pubrec;
    check_wire(rel, Version::V311, bytes({0x50, 0x02, 0x00, 0x05}));
    rel.type = PacketType::Pubcomp;
    check_wire(rel, Version::V311, bytes({0x70, 0x02, 0x00, 0x05}));
    // A v5 ack with reason code and property length 0 is also accepted.
    Packet p = decode_ok(bytes({0x40, 0x04, 0x00, 0x01, 0x10, 0x00}), Version::V5);
    CHECK(std::get<Ack>(p).reason == rc::NoMatchingSubscribers);
}

TEST_CASE("wire: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK") {
    Subscribe s;
    s.packet_id = 1;
    s.topics.push_back({"a/b", 1});
    check_wire(s, Version::V311, bytes({0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x01}));
    s.topics[0].no_local = true;
    s.topics[0].retain_as_published = true;
    s.topics[0].retain_handling = 1;
    check_wire(s, Version::V5,
               bytes({0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x1D}));
    Suback sa;
    sa.packet_id = 1;
    sa.reasons = {1, 0x80};
    check_wire(sa, Version::V311, bytes({0x90, 0x04, 0x00, 0x01, 0x01, 0x80}));
    check_wire(sa, Version::V5, bytes({0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80}));
    Unsubscribe u;
    u.packet_id = 2;
    u.filters = {"x"};
    check_wire(u, Version::V311, bytes({0xA2, 0x05, 0x00, 0x02, 0x00, 0x01, 'x'}));
    Unsuback ua;
    ua.packet_id = 2;
    check_wire(ua, Version::V311, bytes({0xB0, 0x02, 0x00, 0x02}));
    ua.reasons = {rc::Success};
    check_wire(ua, Version::V5, bytes({0xB0, 0x04, 0x00, 0x02, 0x00, 0x00}));
}

TEST_CASE("wire: PINGREQ, PINGRESP, DISCONNECT, AUTH") {
    check_wire(Pingreq{}, Version::V311, bytes({0xC0, 0x00}));
    check_wire(Pingresp{}, Version::V5, bytes({0xD0, 0x00}));
    check_wire(Disconnect{}, Version::V311, bytes({0xE0, 0x00}));
    check_wire(Disconnect{}, Version::V5, bytes({0xE0, 0x00}));
    Disconnect d;
    d.reason = rc::DisconnectWithWill;
    check_wire(d, Version::V5, bytes({0xE0, 0x01, 0x04}));
    check_wire(Auth{}, Version::V5, bytes({0xF0, 0x00}));
    Auth a;
    a.reason = rc::ContinueAuthentication;
    a.props.auth_method = "SCRM";
    check_wire(a, Version::V5,
               bytes({0xF0, 0x09, 0x18, 0x07, 0x15, 0x00, 0x04, 'S', 'C', 'R', 'M'}));
}

TEST_CASE("unsupported protocol: Error 0x84 with a Connect telling which version to answer in") {
    struct Row { Buf wire; Version answer_in; };
    const Row rows[] = {
        {bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00}),
         Version::V311},
        {bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00}),
         Version::V311},
        {bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00}),
         Version::V5},
        {bytes({0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02, 0x00, 0x3c,
                0x00, 0x00}),
         Version::V311},
        {bytes({0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x05, 0x02, 0x00, 0x3c,
                0x00, 0x00}),
         Version::V5},
    };
    for (const Row& row : rows) {
        INFO(hex(row.wire));
        Packet p;
        DecodeResult r = decode(Bytes(row.wire), Version::V311, 0, p);
        CHECK(r.status == DecodeStatus::Error);
        CHECK(r.reason == rc::UnsupportedProtocolVersion);
        CHECK(r.consumed == row.wire.size());
        REQUIRE(std::holds_alternative<Connect>(p));
        CHECK(std::get<Connect>(p).version == row.answer_in);
    }
}

TEST_CASE("decode consumes one packet and leaves the next in place") {
    Buf stream = bytes({0xC0, 0x00, 0x40, 0x02, 0x00, 0x07, 0xD0});
    Packet p;
    DecodeResult r = decode(Bytes(stream), Version::V311, 0, p);
    REQUIRE(r.status == DecodeStatus::Ok);
    CHECK(r.consumed == 2);
    CHECK(std::holds_alternative<Pingreq>(p));
    r = decode(Bytes(stream).subspan(2), Version::V311, 0, p);
    REQUIRE(r.status == DecodeStatus::Ok);
    CHECK(r.consumed == 4);
    CHECK(std::get<Ack>(p).packet_id == 7);
    r = decode(Bytes(stream).subspan(6), Version::V311, 0, p);
    CHECK(r.status == DecodeStatus::Incomplete);
}

// --- the broker's PUBLISH hot path ---

TEST_CASE("encode_forwarded_properties keeps only the forwarded set, users in order") {
    Properties p = publish_props();  // also has expiry, alias, subscription ids
    p.session_expiry = 5;            // not a PUBLISH property at all: must not leak
    Buf fwd;
    encode_forwarded_properties(p, fwd);
    // Wrap it as a property block of a PUBLISH and decode it.
    Publish shell;
    shell.topic = "t";
    Buf wire = encode_one(shell, Version::V5);
    // Replace the empty property length (last byte) by the forwarded block.
    REQUIRE(wire.back() == 0x00);
    wire.pop_back();
    wire.push_back(uint8_t(fwd.size()));  // < 128 here
    wire.insert(wire.end(), fwd.begin(), fwd.end());
    wire[1] = uint8_t(wire.size() - 2);
    Packet back = decode_ok(wire, Version::V5);
    const Properties& got = std::get<Publish>(back).props;
    CHECK(got.payload_format == 1);
    CHECK(got.content_type == "text/plain");
    CHECK(got.response_topic == "reply/here");
    CHECK(got.correlation_data->size() == 6);
    REQUIRE(got.user.size() == 3);
    CHECK(got.user[1].value == "second value for same key");
    CHECK_FALSE(got.message_expiry);
    CHECK_FALSE(got.topic_alias);
    CHECK(got.subscription_ids.empty());
    CHECK_FALSE(got.session_expiry);
    // Nothing to forward: nothing written.
    Buf none;
    encode_forwarded_properties(Properties{}, none);
    CHECK(none.empty());
}

TEST_CASE("encode_publish matches publish_size and decodes to the same message") {
    Buf fwd;
    encode_forwarded_properties(message_props(), fwd);
    const uint32_t ids[] = {3, 300, 70000};
    const std::string big_payload(70000, 'z');  // forces a 3-byte remaining length
    for (Version v : {Version::V31, Version::V311, Version::V5}) {
        for (uint8_t qos = 0; qos < 3; ++qos) {
            for (bool with_extras : {false, true}) {
                PublishParts parts;
                parts.qos = qos;
                parts.retain = with_extras;
                parts.dup = qos > 0 && with_extras;
                parts.topic = "sensors/1/temp";
                parts.packet_id = qos ? 99 : 0;
                parts.payload = with_extras ? span_of(big_payload) : span_of("21.5");
                parts.forwarded = Bytes(fwd);
                if (with_extras) {
                    parts.topic_alias = 4;
                    parts.message_expiry = 120;
                    parts.sub_ids = ids;
                }
                Buf out = {0xEE};  // appends after what is already there
                encode_publish(parts, v, out);
                REQUIRE(out.size() == 1 + publish_size(parts, v));
                CHECK(out[0] == 0xEE);
                Buf wire(out.begin() + 1, out.end());
                Packet back = decode_ok(wire, v);
                const Publish& d = std::get<Publish>(back);
                CHECK(d.qos == qos);
                CHECK(d.retain == parts.retain);
                CHECK(d.dup == parts.dup);
                CHECK(d.topic == parts.topic);
                CHECK(d.packet_id == parts.packet_id);
                CHECK(d.payload.size() == parts.payload.size());
                if (v == Version::V5) {
                    CHECK(d.props.content_type == "text/plain");
                    CHECK(d.props.user.size() == 3);
                    CHECK(d.props.topic_alias == parts.topic_alias);
                    CHECK(d.props.message_expiry == parts.message_expiry);
                    CHECK(d.props.subscription_ids.size() == parts.sub_ids.size());
                } else {
                    CHECK_FALSE(d.props.content_type);
                }
            }
        }
    }
}

TEST_CASE("encode_publish agrees byte for byte with encode(Publish) when only forwarded props") {
    Publish p;
    p.qos = 1;
    p.topic = "x/y";
    p.packet_id = 7;
    p.payload = span_of("data");
    p.props.content_type = "c";
    p.props.user.push_back({"a", "b"});
    Buf fwd;
    encode_forwarded_properties(p.props, fwd);
    PublishParts parts;
    parts.qos = 1;
    parts.topic = p.topic;
    parts.packet_id = 7;
    parts.payload = p.payload;
    parts.forwarded = Bytes(fwd);
    for (Version v : {Version::V311, Version::V5}) {
        Buf out;
        encode_publish(parts, v, out);
        CHECK(hex(out) == hex(encode_one(p, v)));
    }
    // Empty topic with an alias (v5).
    parts.topic = "";
    parts.topic_alias = 9;
    Buf out;
    encode_publish(parts, Version::V5, out);
    CHECK(std::get<Publish>(decode_ok(out, Version::V5)).props.topic_alias == 9);
}

}  // namespace
TEST_CASE("wire: encode_ack writes what encode writes for every ack, version and reason") {
    const PacketType types[] = {PacketType::Puback, PacketType::Pubrec, PacketType::Pubrel, PacketType::Pubcomp};
    const uint8_t reasons[] = {rc::Success, 0x10, rc::PacketIdentifierNotFound, rc::UnspecifiedError, rc::QuotaExceeded};
    for (Version v : {Version::V31, Version::V311, Version::V5}) {
        for (PacketType t : types) {
            for (uint8_t r : reasons) {
                for (uint16_t id : {uint16_t(1), uint16_t(0x1234), uint16_t(0xFFFF)}) {
                    Buf fast;
                    encode_ack(t, id, r, v, fast);
                    INFO("version " << int(v) << " type " << int(t) << " reason " << int(r));
                    CHECK(hex(fast) == hex(encode_one(Ack{t, id, r, {}}, v)));
                }
            }
        }
    }
}

}  // namespace hato::mqtt::test
