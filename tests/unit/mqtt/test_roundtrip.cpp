// encode -> decode -> encode for every packet type in every version it exists in.
#include <algorithm>
#include <deque>

#include "helpers.hpp"

namespace hato::mqtt::test {
namespace {

const Version kAllVersions[] = {Version::V31, Version::V311, Version::V5};

// The decoded packet must re-encode to the very same bytes: since encode
// writes every field that exists in `v`, any field decode lost shows up here.
// Decoded packets view their input, so the encoded buffers are kept for the
// whole run (a deque never moves its elements).
std::deque<Buf> kept_wire;

Packet round_trip(const Packet& p, Version v) {
    INFO("version " << int(v) << " packet index " << p.index());
    const Buf& wire = kept_wire.emplace_back(encode_one(p, v));
    CHECK(encoded_size(p, v) == wire.size());
    Packet back = decode_ok(wire, v);
    CHECK(back.index() == p.index());
    CHECK(hex(encode_one(back, v)) == hex(wire));
    return back;
}

bool same_bytes(Bytes a, Bytes b) { return std::ranges::equal(a, b); }

void check_message_props(const Properties& got, const Properties& want) {
    CHECK(got.payload_format == want.payload_format);
    CHECK(got.message_expiry == want.message_expiry);
    CHECK(got.content_type == want.content_type);
    CHECK(got.response_topic == want.response_topic);
    REQUIRE(got.correlation_data.has_value());
    CHECK(same_bytes(*got.correlation_data, *want.correlation_data));
    REQUIRE(got.user.size() == want.user.size());
    for (size_t i = 0; i < got.user.size(); ++i) {
        CHECK(got.user[i].key == want.user[i].key);
        CHECK(got.user[i].value == want.user[i].value);
    }
}

Connect full_connect(Version v) {
    Connect c;
    c.version = v;
    c.clean_start = false;
    c.keep_alive = 0xBEEF;
    c.client_id = "client-\xc3\xa9";  // "é" in UTF-8
    c.will_flag = true;
    c.will_qos = 2;
    c.will_retain = true;
    c.will_topic = "last/will";
    c.will_payload = span_of("gone");
    c.username = "user";
    c.password = span_of(std::string_view("p\0ss", 4));
    if (v == Version::V5) {
        c.props = connect_props();
        c.will_props = will_props();
    }
    return c;
}

TEST_CASE("round trip: CONNECT in every version") {
    for (Version v : kAllVersions) {
        Packet back = round_trip(full_connect(v), v);
        const auto& c = std::get<Connect>(back);
        CHECK(c.version == v);
        CHECK_FALSE(c.clean_start);
        CHECK(c.keep_alive == 0xBEEF);
        CHECK(c.client_id == "client-\xc3\xa9");
        CHECK(c.will_flag);
        CHECK(c.will_qos == 2);
        CHECK(c.will_retain);
        CHECK(c.will_topic == "last/will");
        CHECK(same_bytes(c.will_payload, span_of("gone")));
        CHECK(c.username == std::optional<std::string_view>("user"));
        REQUIRE(c.password.has_value());
        CHECK(c.password->size() == 4);
        if (v == Version::V5) {
            CHECK(c.props.session_expiry == 0xFFFFFFFFu);
            CHECK(c.props.auth_method == "SCRAM-SHA-1");
            CHECK(c.props.receive_maximum == 20);
            CHECK(c.props.maximum_packet_size == (1u << 20));
            CHECK(c.props.request_problem_info == 0);
            CHECK(c.props.request_response_info == 1);
            CHECK(c.props.topic_alias_maximum == 10);
            CHECK(c.props.user.size() == 3);
            CHECK(c.will_props.will_delay == 60u);
            check_message_props(c.will_props, will_props());
        }
    }
}

TEST_CASE("round trip: minimal CONNECT, no will, no credentials, empty client id") {
    for (Version v : kAllVersions) {
        Connect c;
        c.version = v;
        Packet back = round_trip(c, v);
        const auto d = std::get<Connect>(back);
        CHECK(d.clean_start);
        CHECK(d.client_id.empty());
        CHECK_FALSE(d.will_flag);
        CHECK_FALSE(d.username);
        CHECK_FALSE(d.password);
    }
}

TEST_CASE("round trip: v5 CONNECT with password but no user name") {
    Connect c;
    c.version = Version::V5;
    c.password = span_of("token");
    Packet back = round_trip(c, Version::V5);
    CHECK_FALSE(std::get<Connect>(back).username);
    CHECK(std::get<Connect>(back).password->size() == 5);
}

TEST_CASE("round trip: CONNACK") {
    for (Version v : {Version::V311, Version::V5}) {
        Connack c;
        c.session_present = true;
        if (v == Version::V5) c.props = connack_props();
        Packet back = round_trip(c, v);
        const auto d = std::get<Connack>(back);
        CHECK(d.session_present);
        CHECK(d.reason == rc::Success);
        if (v == Version::V5) {
            CHECK(d.props.assigned_client_id == "auto-1234");
            CHECK(d.props.server_keep_alive == 30);
            CHECK(d.props.maximum_qos == 1);
            CHECK(d.props.shared_sub_available == 1);
            CHECK(d.props.sub_id_available == 0);
            CHECK(d.props.response_info == "resp/");
        }
    }
    // v3.1 has no session present flag: it is never written.
    Connack c;
    c.session_present = true;
    CHECK(hex(encode_one(c, Version::V31)) == hex(bytes({0x20, 0x02, 0x00, 0x00})));
    c.session_present = false;
    c.reason = rc::BadUserNameOrPassword;
    CHECK(std::get<Connack>(round_trip(c, Version::V31)).reason == rc::BadUserNameOrPassword);
}

TEST_CASE("round trip: v3 CONNACK return codes map to v5 reasons and back") {
    const uint8_t reasons[] = {rc::Success, rc::UnsupportedProtocolVersion,
                               rc::ClientIdentifierNotValid, rc::ServerUnavailable,
                               rc::BadUserNameOrPassword, rc::NotAuthorized};
    for (uint8_t code = 0; code < 6; ++code) {
        Connack c;
        c.reason = reasons[code];
        Buf wire = encode_one(c, Version::V311);
        CHECK(wire[3] == code);
        CHECK(std::get<Connack>(decode_ok(wire, Version::V311)).reason == reasons[code]);
    }
    // Server busy and anything unknown become "server unavailable" (3).
    for (uint8_t reason : {rc::ServerBusy, rc::Banned, rc::UnspecifiedError}) {
        Connack c;
        c.reason = reason;
        CHECK(encode_one(c, Version::V311)[3] == 3);
    }
    Connack c;
    c.reason = rc::NotAuthorized;
    round_trip(c, Version::V5);
}

TEST_CASE("round trip: PUBLISH at each QoS") {
    for (Version v : kAllVersions) {
        for (uint8_t qos = 0; qos < 3; ++qos) {
            Publish p;
            p.qos = qos;
            p.retain = qos == 1;
            p.dup = qos == 2;
            p.topic = "a/b/c";
            p.packet_id = qos ? 0xABCD : 0;
            p.payload = span_of(std::string_view("pay\0load", 8));
            if (v == Version::V5) p.props = publish_props();
            Packet back = round_trip(p, v);
            const auto d = std::get<Publish>(back);
            CHECK(d.qos == qos);
            CHECK(d.retain == p.retain);
            CHECK(d.dup == p.dup);
            CHECK(d.topic == "a/b/c");
            CHECK(d.packet_id == p.packet_id);
            CHECK(same_bytes(d.payload, p.payload));
            if (v == Version::V5) {
                check_message_props(d.props, publish_props());
                CHECK(d.props.subscription_ids == std::vector<uint32_t>{1, 127, 128, 268'435'455});
                CHECK(d.props.topic_alias == 7);
            }
        }
    }
}

TEST_CASE("round trip: PUBLISH with empty payload, and v5 empty topic with alias") {
    Publish p;
    p.topic = "t";
    for (Version v : kAllVersions) CHECK(std::get<Publish>(round_trip(p, v)).payload.empty());
    Publish aliased;
    aliased.topic = "";
    aliased.props.topic_alias = 3;
    const auto d = std::get<Publish>(round_trip(aliased, Version::V5));
    CHECK(d.topic.empty());
    CHECK(d.props.topic_alias == 3);
}

TEST_CASE("round trip: PUBACK PUBREC PUBREL PUBCOMP") {
    const PacketType types[] = {PacketType::Puback, PacketType::Pubrec, PacketType::Pubrel,
                                PacketType::Pubcomp};
    for (PacketType t : types) {
        for (Version v : kAllVersions) {
            Ack a;
            a.type = t;
            a.packet_id = 513;
            Packet back = round_trip(a, v);
            CHECK(std::get<Ack>(back).type == t);
            CHECK(std::get<Ack>(back).packet_id == 513);
            CHECK(encoded_size(a, v) == 4);  // short form in every version
        }
        const bool release = t == PacketType::Pubrel || t == PacketType::Pubcomp;
        Ack a;
        a.type = t;
        a.packet_id = 1;
        a.reason = release ? rc::PacketIdentifierNotFound : rc::NoMatchingSubscribers;
        CHECK(encoded_size(a, Version::V5) == 5);  // reason, no property length
        CHECK(std::get<Ack>(round_trip(a, Version::V5)).reason == a.reason);
        a.props = reason_props();
        const auto d = std::get<Ack>(round_trip(a, Version::V5));
        CHECK(d.reason == a.reason);
        CHECK(d.props.reason_string == "a reason");
        CHECK(d.props.user.size() == 3);
        // Success with properties still needs the reason code byte.
        a.reason = rc::Success;
        CHECK(std::get<Ack>(round_trip(a, Version::V5)).props.reason_string == "a reason");
    }
}

TEST_CASE("round trip: SUBSCRIBE") {
    for (Version v : kAllVersions) {
        Subscribe s;
        s.packet_id = 10;
        s.topics.push_back({"a/+/c", 0});
        s.topics.push_back({"#", 1});
        SubscribeTopic t{"$share/g/x/#", 2};
        if (v == Version::V5) {
            t.no_local = false;
            t.retain_as_published = true;
            t.retain_handling = 2;
            s.topics.push_back({"nl", 1, true, false, 1});
            s.props.subscription_ids = {268'435'455};
            add_user(s.props);
        }
        s.topics.push_back(t);
        const auto d = std::get<Subscribe>(round_trip(s, v));
        CHECK(d.packet_id == 10);
        REQUIRE(d.topics.size() == s.topics.size());
        for (size_t i = 0; i < d.topics.size(); ++i) {
            CHECK(d.topics[i].filter == s.topics[i].filter);
            CHECK(d.topics[i].qos == s.topics[i].qos);
            CHECK(d.topics[i].no_local == s.topics[i].no_local);
            CHECK(d.topics[i].retain_as_published == s.topics[i].retain_as_published);
            CHECK(d.topics[i].retain_handling == s.topics[i].retain_handling);
        }
        if (v == Version::V5) CHECK(d.props.subscription_ids == std::vector<uint32_t>{268'435'455});
    }
}

TEST_CASE("round trip: SUBACK") {
    for (Version v : kAllVersions) {
        Suback s;
        s.packet_id = 11;
        s.reasons = {0, 1, 2, 0x80};
        if (v == Version::V5) {
            s.reasons.push_back(rc::TopicFilterInvalid);
            s.props = reason_props();
        }
        CHECK(std::get<Suback>(round_trip(s, v)).reasons == s.reasons);
    }
    // v3 has one failure code.
    Suback s;
    s.packet_id = 1;
    s.reasons = {rc::NotAuthorized};
    CHECK(encode_one(s, Version::V311).back() == 0x80);
}

TEST_CASE("round trip: UNSUBSCRIBE and UNSUBACK") {
    for (Version v : kAllVersions) {
        Unsubscribe u;
        u.packet_id = 12;
        u.filters = {"a/b", "$share/g/#", "+"};
        if (v == Version::V5) add_user(u.props);
        const auto d = std::get<Unsubscribe>(round_trip(u, v));
        CHECK(d.filters == u.filters);
        CHECK(d.packet_id == 12);

        Unsuback a;
        a.packet_id = 12;
        if (v == Version::V5) {
            a.reasons = {rc::Success, rc::NoSubscriptionExisted, rc::NotAuthorized};
            a.props = reason_props();
        }
        const auto e = std::get<Unsuback>(round_trip(a, v));
        CHECK(e.packet_id == 12);
        CHECK(e.reasons == a.reasons);
    }
}

TEST_CASE("round trip: PINGREQ PINGRESP DISCONNECT") {
    for (Version v : kAllVersions) {
        round_trip(Pingreq{}, v);
        round_trip(Pingresp{}, v);
        round_trip(Disconnect{}, v);
        CHECK(encoded_size(Pingreq{}, v) == 2);
        CHECK(encoded_size(Disconnect{}, v) == 2);
    }
    Disconnect d;
    d.reason = rc::DisconnectWithWill;
    CHECK(encoded_size(d, Version::V5) == 3);
    CHECK(std::get<Disconnect>(round_trip(d, Version::V5)).reason == rc::DisconnectWithWill);
    d.props = disconnect_props();
    const auto e = std::get<Disconnect>(round_trip(d, Version::V5));
    CHECK(e.props.session_expiry == 0u);
    CHECK(e.props.server_reference == "elsewhere");
    // v3 DISCONNECT carries nothing, whatever the struct holds.
    CHECK(encoded_size(d, Version::V311) == 2);
}

TEST_CASE("round trip: AUTH (v5 only)") {
    Auth a;
    CHECK(encoded_size(a, Version::V5) == 2);
    round_trip(a, Version::V5);
    a.reason = rc::ContinueAuthentication;
    a.props = auth_props();
    const auto d = std::get<Auth>(round_trip(a, Version::V5));
    CHECK(d.reason == rc::ContinueAuthentication);
    CHECK(d.props.auth_method == "SCRAM-SHA-1");
    REQUIRE(d.props.auth_data.has_value());
    CHECK(d.props.auth_data->empty());
    // Not part of v3: nothing is written.
    CHECK(encode_one(a, Version::V311).empty());
    CHECK(encoded_size(a, Version::V311) == 0);
}

TEST_CASE("encode appends to existing output") {
    Buf out = {0xAA};
    encode(Pingreq{}, Version::V311, out);
    encode(Pingresp{}, Version::V5, out);
    CHECK(hex(out) == hex(bytes({0xAA, 0xC0, 0x00, 0xD0, 0x00})));
}

TEST_CASE("large remaining lengths use multi-byte varints") {
    for (size_t payload_len : {size_t(120), size_t(200), size_t(16'400), size_t(2'100'000)}) {
        std::vector<uint8_t> payload(payload_len, 'x');
        Publish p;
        p.topic = "big";
        p.payload = Bytes(payload);
        for (Version v : {Version::V311, Version::V5}) {
            Buf wire = encode_one(p, v);
            CHECK(encoded_size(p, v) == wire.size());
            CHECK(std::get<Publish>(decode_ok(wire, v)).payload.size() == payload_len);
        }
    }
}

}  // namespace
}  // namespace hato::mqtt::test
