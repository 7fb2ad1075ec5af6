// Packet decoding for MQTT 3.1, 3.1.1 and 5.0. Each packet body is parsed from
// a Reader bounded to exactly its remaining length, so a declared length that
// runs past the packet is Malformed, and leftover bytes are Malformed too.
#include "mqtt/properties.hpp"
#include "mqtt/reason_codes.hpp"

namespace hato::mqtt {
namespace {

using wire::Fail;
using wire::malformed;
using wire::protocol;
using wire::Reader;

Fail finish(const Reader& r) {
    return r.empty() ? Fail{} : malformed("trailing bytes after packet");
}

Fail read_packet_id(Reader& r, uint16_t& id) {
    if (!r.u16(id)) return malformed("missing packet identifier");
    if (id == 0) return malformed("packet identifier 0");
    return {};
}

Fail read_utf8(Reader& r, std::string_view& s, const char* what) {
    if (!r.raw_string(s)) return malformed(what);
    if (!valid_utf8(s)) return malformed("string is not valid UTF-8");
    return {};
}

// Reads the protocol name and level; Error(UnsupportedProtocolVersion) for
// anything that is not one of the three supported pairs. Mosquitto's bridges
// set the level's top bit on v3.1 / v3.1.1 (0x83 / 0x84): `bridge`.
Fail read_protocol(Reader& r, Version& version, bool& bridge) {
    std::string_view name;
    uint8_t level;
    if (!r.raw_string(name) || !r.u8(level)) return malformed("CONNECT header truncated");
    bridge = level == 0x83 || level == 0x84;
    if (bridge) level &= 0x7F;
    version = level == 5 ? Version::V5 : Version::V311;  // what to answer in, if unsupported
    if ((name == "MQTT" && (level == 4 || level == 5)) || (name == "MQIsdp" && level == 3)) {
        version = Version(level);
        return {};
    }
    return {rc::UnsupportedProtocolVersion, "unsupported protocol name or level"};
}

Fail decode_connect(Reader& r, Connect& c) {
    if (Fail f = read_protocol(r, c.version, c.bridge)) return f;
    const bool v5 = c.version == Version::V5;
    uint8_t flags;
    if (!r.u8(flags) || !r.u16(c.keep_alive)) return malformed("CONNECT header truncated");
    if (flags & 0x01) return malformed("CONNECT reserved flag set");
    c.clean_start = flags & 0x02;
    c.will_flag = flags & 0x04;
    c.will_qos = (flags >> 3) & 0x03;
    c.will_retain = flags & 0x20;
    const bool has_password = flags & 0x40, has_username = flags & 0x80;
    if (c.will_qos == 3) return malformed("will QoS 3");
    if (!c.will_flag && (c.will_qos != 0 || c.will_retain))
        return malformed("will QoS/retain without will flag");
    if (!v5 && has_password && !has_username) return malformed("password without user name");
    if (v5)
        if (Fail f = props::read(r, props::Where::Connect, c.props)) return f;
    if (Fail f = read_utf8(r, c.client_id, "client identifier truncated")) return f;
    if (c.will_flag) {
        if (v5)
            if (Fail f = props::read(r, props::Where::Will, c.will_props)) return f;
        if (Fail f = read_utf8(r, c.will_topic, "will topic truncated")) return f;
        if (!valid_topic_name(c.will_topic)) return malformed("invalid will topic");
        if (!r.binary(c.will_payload)) return malformed("will payload truncated");
    }
    if (has_username) {
        std::string_view user;
        if (Fail f = read_utf8(r, user, "user name truncated")) return f;
        c.username = user;
    }
    if (has_password) {
        Bytes pw;
        if (!r.binary(pw)) return malformed("password truncated");
        c.password = pw;
    }
    return finish(r);
}

// v3 CONNACK return code -> the v5 reason code that encode() maps back to it.
uint8_t v3_return_to_reason(uint8_t code) {
    static constexpr uint8_t map[6] = {rc::Success, rc::UnsupportedProtocolVersion,
                                       rc::ClientIdentifierNotValid, rc::ServerUnavailable,
                                       rc::BadUserNameOrPassword, rc::NotAuthorized};
    return map[code];
}

Fail decode_connack(Reader& r, bool v5, Connack& c) {
    uint8_t flags, code;
    if (!r.u8(flags) || !r.u8(code)) return malformed("CONNACK truncated");
    if (flags & 0xFE) return malformed("CONNACK reserved flag set");
    c.session_present = flags & 0x01;
    if (v5) {
        if (!reasons::connack(code)) return malformed("invalid CONNACK reason code");
        c.reason = code;
        if (Fail f = props::read(r, props::Where::Connack, c.props)) return f;
    } else {
        if (code > 5) return malformed("invalid CONNACK return code");
        c.reason = v3_return_to_reason(code);
    }
    return finish(r);
}

Fail decode_publish(Reader& r, uint8_t flags, bool v5, Publish& p, std::string_view checked_topic = {}) {
    p.retain = flags & 0x01;
    p.qos = (flags >> 1) & 0x03;
    p.dup = flags & 0x08;
    if (p.qos == 3) return malformed("PUBLISH QoS 3");
    if (p.qos == 0 && p.dup) return malformed("QoS 0 PUBLISH with DUP set");
    if (!r.raw_string(p.topic)) return malformed("topic truncated");
    // The caller's topic passed the checks below before.
    const bool checked = !p.topic.empty() && p.topic == checked_topic;
    if (!checked && !valid_utf8(p.topic)) return malformed("string is not valid UTF-8");
    if (p.qos > 0)
        if (Fail f = read_packet_id(r, p.packet_id)) return f;
    if (v5)
        if (Fail f = props::read(r, props::Where::Publish, p.props)) return f;
    if (p.topic.empty()) {
        // v5 3.3.2.1: an empty topic is how a sender uses an established alias.
        if (!v5) return malformed("empty PUBLISH topic");
        if (!p.props.topic_alias) return protocol("empty topic without topic alias");
    } else if (!checked && wire::has_wildcard(p.topic)) {
        return malformed("wildcard in PUBLISH topic");
    }
    p.payload = r.rest();
    return {};
}

Fail decode_ack(Reader& r, PacketType type, bool v5, Ack& a) {
    a.type = type;
    if (Fail f = read_packet_id(r, a.packet_id)) return f;
    if (!v5 || r.empty()) return finish(r);  // v5 short form: Success, no properties
    if (!r.u8(a.reason)) return malformed("ack truncated");
    const bool release = type == PacketType::Pubrel || type == PacketType::Pubcomp;
    if (!(release ? reasons::pubrel(a.reason) : reasons::puback(a.reason)))
        return malformed("invalid ack reason code");
    if (r.empty()) return {};  // reason code without property length (3.4.2.2.1)
    if (Fail f = props::read(r, props::Where::Ack, a.props)) return f;
    return finish(r);
}

Fail decode_subscribe(Reader& r, bool v5, Subscribe& s) {
    if (Fail f = read_packet_id(r, s.packet_id)) return f;
    if (v5)
        if (Fail f = props::read(r, props::Where::Subscribe, s.props)) return f;
    if (r.empty()) return protocol("SUBSCRIBE without topic filters");
    while (!r.empty()) {
        SubscribeTopic t;
        uint8_t opts;
        if (Fail f = read_utf8(r, t.filter, "topic filter truncated")) return f;
        if (!r.u8(opts)) return malformed("subscription options missing");
        t.qos = opts & 0x03;
        if (v5) {
            if (opts & 0xC0) return malformed("subscription options reserved bits set");
            t.no_local = opts & 0x04;
            t.retain_as_published = opts & 0x08;
            t.retain_handling = (opts >> 4) & 0x03;
            if (t.qos == 3) return protocol("subscription QoS 3");
            if (t.retain_handling == 3) return protocol("retain handling 3");
        } else {
            if (opts & 0xFC) return malformed("requested QoS reserved bits set");
            if (t.qos == 3) return malformed("subscription QoS 3");
        }
        s.topics.push_back(t);
    }
    return {};
}

Fail decode_suback(Reader& r, bool v5, Suback& s) {
    if (Fail f = read_packet_id(r, s.packet_id)) return f;
    if (v5)
        if (Fail f = props::read(r, props::Where::Suback, s.props)) return f;
    if (r.empty()) return protocol("SUBACK without return codes");
    while (!r.empty()) {
        uint8_t code;
        r.u8(code);
        if (!(v5 ? reasons::suback(code) : (code <= 2 || code == 0x80)))
            return malformed("invalid SUBACK return code");
        s.reasons.push_back(code);
    }
    return {};
}

Fail decode_unsubscribe(Reader& r, bool v5, Unsubscribe& u) {
    if (Fail f = read_packet_id(r, u.packet_id)) return f;
    if (v5)
        if (Fail f = props::read(r, props::Where::Unsubscribe, u.props)) return f;
    if (r.empty()) return protocol("UNSUBSCRIBE without topic filters");
    while (!r.empty()) {
        std::string_view filter;
        if (Fail f = read_utf8(r, filter, "topic filter truncated")) return f;
        u.filters.push_back(filter);
    }
    return {};
}

Fail decode_unsuback(Reader& r, bool v5, Unsuback& u) {
    if (Fail f = read_packet_id(r, u.packet_id)) return f;
    if (!v5) return finish(r);
    if (Fail f = props::read(r, props::Where::Unsuback, u.props)) return f;
    if (r.empty()) return protocol("UNSUBACK without reason codes");
    while (!r.empty()) {
        uint8_t code;
        r.u8(code);
        if (!reasons::unsuback(code)) return malformed("invalid UNSUBACK reason code");
        u.reasons.push_back(code);
    }
    return {};
}

// DISCONNECT and AUTH: v5 may omit everything (Success) or just the properties.
template <class T>
Fail decode_reason_only(Reader& r, props::Where where, bool (*valid)(uint8_t), T& out) {
    if (r.empty()) return {};
    if (!r.u8(out.reason)) return malformed("reason code missing");
    if (!valid(out.reason)) return malformed("invalid reason code");
    if (r.empty()) return {};
    if (Fail f = props::read(r, where, out.props)) return f;
    return finish(r);
}

// Required fixed-header flag bits per packet type (2.1.3); PUBLISH is free.
// MQTT 3.1 gave PUBREL, SUBSCRIBE and UNSUBSCRIBE a DUP flag, set when one
// is re-sent after a reconnect.
bool flags_ok(PacketType type, uint8_t flags, Version version) {
    switch (type) {
    case PacketType::Publish: return true;
    case PacketType::Pubrel:
    case PacketType::Subscribe:
    case PacketType::Unsubscribe: return flags == 0x02 || (version == Version::V31 && flags == 0x0A);
    default: return flags == 0;
    }
}

Fail decode_body(PacketType type, uint8_t flags, Reader& r, Version version, Packet& out) {
    const bool v5 = version == Version::V5;
    if (!flags_ok(type, flags, version)) return malformed("invalid fixed header flags");
    switch (type) {
    case PacketType::Connect: return decode_connect(r, out.emplace<Connect>());
    case PacketType::Connack: return decode_connack(r, v5, out.emplace<Connack>());
    case PacketType::Publish: return decode_publish(r, flags, v5, out.emplace<Publish>());
    case PacketType::Puback:
    case PacketType::Pubrec:
    case PacketType::Pubrel:
    case PacketType::Pubcomp: return decode_ack(r, type, v5, out.emplace<Ack>());
    case PacketType::Subscribe: return decode_subscribe(r, v5, out.emplace<Subscribe>());
    case PacketType::Suback: return decode_suback(r, v5, out.emplace<Suback>());
    case PacketType::Unsubscribe: return decode_unsubscribe(r, v5, out.emplace<Unsubscribe>());
    case PacketType::Unsuback: return decode_unsuback(r, v5, out.emplace<Unsuback>());
    case PacketType::Pingreq: out.emplace<Pingreq>(); return finish(r);
    case PacketType::Pingresp: out.emplace<Pingresp>(); return finish(r);
    case PacketType::Disconnect: {
        auto& d = out.emplace<Disconnect>();
        if (!v5) return finish(r);
        return decode_reason_only(r, props::Where::Disconnect, reasons::disconnect, d);
    }
    case PacketType::Auth: {
        if (!v5) return malformed("AUTH before MQTT 5.0");
        return decode_reason_only(r, props::Where::Auth, reasons::auth, out.emplace<Auth>());
    }
    }
    return malformed("invalid packet type");
}

}  // namespace

DecodeResult peek_header(Bytes in, uint32_t max_packet_size, FixedHeader& hdr) {
    DecodeResult res;
    if (in.empty()) return res;
    uint32_t remaining;
    const int n = wire::read_varint(in.data() + 1, in.size() - 1, remaining);
    if (n == 0) return res;  // Incomplete
    if (n < 0 || (in[0] >> 4) == 0) {
        res.status = DecodeStatus::Error;
        res.reason = rc::MalformedPacket;
        res.what = n < 0 ? "invalid remaining length" : "packet type 0";
        return res;
    }
    hdr.first_byte = in[0];
    hdr.remaining = remaining;
    hdr.header_len = uint8_t(1 + n);
    if (max_packet_size != 0 && hdr.total() > max_packet_size) {
        res.status = DecodeStatus::Error;
        res.reason = rc::PacketTooLarge;
        res.what = "packet exceeds maximum packet size";
        return res;
    }
    res.status = DecodeStatus::Ok;
    res.consumed = hdr.header_len;
    return res;
}

DecodeResult decode(Bytes in, Version version, uint32_t max_packet_size, Packet& out) {
    FixedHeader hdr;
    DecodeResult res = peek_header(in, max_packet_size, hdr);
    if (res.status != DecodeStatus::Ok) return res;
    res.consumed = 0;
    if (in.size() < hdr.total()) {
        res.status = DecodeStatus::Incomplete;
        return res;
    }
    Reader body(in.data() + hdr.header_len, in.data() + hdr.total());
    const Fail f = decode_body(hdr.type(), hdr.first_byte & 0x0F, body, version, out);
    if (f) {
        res.status = DecodeStatus::Error;
        res.reason = f.reason;
        res.what = f.what;
        // The broker answers an unsupported protocol with a CONNACK; say how
        // long the packet was so it can be skipped.
        if (f.reason == rc::UnsupportedProtocolVersion) res.consumed = hdr.total();
        return res;
    }
    res.consumed = hdr.total();
    return res;
}

namespace {

// decode_publish / decode_ack: the body of a packet whose header was peeked,
// decoded by `body_fn(reader)` once `packet` is known to hold all of it.
template <class BodyFn>
DecodeResult decode_peeked(Bytes packet, const FixedHeader& hdr, bool type_ok, BodyFn&& body_fn) {
    DecodeResult res;
    Fail f;
    if (!type_ok || packet.size() < hdr.total()) {
        f = malformed("not a whole packet of the expected type");
    } else {
        Reader body(packet.data() + hdr.header_len, packet.data() + hdr.total());
        f = body_fn(body);
    }
    if (f) {
        res.status = DecodeStatus::Error;
        res.reason = f.reason;
        res.what = f.what;
        return res;
    }
    res.status = DecodeStatus::Ok;
    res.consumed = hdr.total();
    return res;
}

}  // namespace

DecodeResult decode_publish(Bytes packet, const FixedHeader& hdr, Version version, Publish& out,
                            std::string_view checked_topic) {
    return decode_peeked(packet, hdr, hdr.type() == PacketType::Publish, [&](Reader& body) {
        return decode_publish(body, hdr.first_byte & 0x0F, version == Version::V5, out, checked_topic);
    });
}

DecodeResult decode_ack(Bytes packet, const FixedHeader& hdr, Version version, Ack& out) {
    return decode_peeked(packet, hdr, is_ack(hdr.type()), [&](Reader& body) {
        if (!flags_ok(hdr.type(), hdr.first_byte & 0x0F, version)) return malformed("invalid fixed header flags");
        return decode_ack(body, hdr.type(), version == Version::V5, out);
    });
}

}  // namespace hato::mqtt
