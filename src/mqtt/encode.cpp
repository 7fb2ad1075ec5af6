// Packet encoding. Each body is described once as a template over the writer
// and run twice: SizeWriter learns the remaining length, VecWriter writes into
// memory reserved to the exact size.
#include "mqtt/properties.hpp"

namespace hato::mqtt {
namespace {

using wire::put_bytes;
using wire::put_string;

template <class... F>
struct Overloaded : F... { using F::operator()...; };
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// PUBREL carries the fixed flags 0b0010; the other acks none.
uint8_t ack_first_byte(PacketType type) {
    return uint8_t(uint8_t(type) << 4 | (type == PacketType::Pubrel ? 0x02 : 0));
}

uint8_t first_byte(const Packet& p) {
    return std::visit(Overloaded{
        [](const Connect&) -> uint8_t { return 0x10; },
        [](const Connack&) -> uint8_t { return 0x20; },
        [](const Publish& x) -> uint8_t {
            return uint8_t(0x30 | (x.dup ? 0x08 : 0) | (x.qos & 0x03) << 1 | (x.retain ? 1 : 0));
        },
        [](const Ack& x) -> uint8_t { return ack_first_byte(x.type); },
        [](const Subscribe&) -> uint8_t { return 0x82; },
        [](const Suback&) -> uint8_t { return 0x90; },
        [](const Unsubscribe&) -> uint8_t { return 0xA2; },
        [](const Unsuback&) -> uint8_t { return 0xB0; },
        [](const Pingreq&) -> uint8_t { return 0xC0; },
        [](const Pingresp&) -> uint8_t { return 0xD0; },
        [](const Disconnect&) -> uint8_t { return 0xE0; },
        [](const Auth&) -> uint8_t { return 0xF0; },
    }, p);
}

template <class W>
void connect_body(W& w, const Connect& c, Version version) {
    const bool v5 = version == Version::V5;
    put_string(w, version == Version::V31 ? std::string_view("MQIsdp") : std::string_view("MQTT"));
    // Mosquitto's bridge bit: the level's top bit, on v3.1 and v3.1.1 only.
    w.u8(uint8_t(version) | (c.bridge && !v5 ? 0x80 : 0));
    uint8_t flags = 0;
    if (c.clean_start) flags |= 0x02;
    if (c.will_flag) flags |= uint8_t(0x04 | (c.will_qos & 0x03) << 3 | (c.will_retain ? 0x20 : 0));
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    w.u8(flags);
    w.u16(c.keep_alive);
    if (v5) props::write(w, c.props);
    put_string(w, c.client_id);
    if (c.will_flag) {
        if (v5) props::write(w, c.will_props);
        put_string(w, c.will_topic);
        put_bytes(w, c.will_payload);
    }
    if (c.username) put_string(w, *c.username);
    if (c.password) put_bytes(w, *c.password);
}

// v5 packets whose tail (reason code, property length) may be dropped when
// it carries nothing: acks after the packet id, DISCONNECT and AUTH entirely.
template <class W>
void reason_tail(W& w, uint8_t reason, const Properties& p) {
    const bool no_props = props::empty(p);
    if (reason == rc::Success && no_props) return;
    w.u8(reason);
    if (!no_props) props::write(w, p);
}

template <class W>
void body(W& w, const Packet& packet, Version version) {
    const bool v5 = version == Version::V5;
    std::visit(Overloaded{
        [&](const Connect& c) { connect_body(w, c, version); },
        [&](const Connack& c) {
            // v3.1 has no session present flag.
            w.u8(c.session_present && version != Version::V31 ? 1 : 0);
            w.u8(v5 ? c.reason : v3_connack_code(c.reason));
            if (v5) props::write(w, c.props);
        },
        [&](const Publish& p) {
            put_string(w, p.topic);
            if (p.qos > 0) w.u16(p.packet_id);
            if (v5) props::write(w, p.props);
            w.raw(p.payload.data(), p.payload.size());
        },
        [&](const Ack& a) {
            w.u16(a.packet_id);
            if (v5) reason_tail(w, a.reason, a.props);
        },
        [&](const Subscribe& s) {
            w.u16(s.packet_id);
            if (v5) props::write(w, s.props);
            for (const auto& t : s.topics) {
                put_string(w, t.filter);
                uint8_t opts = t.qos & 0x03;
                if (v5)
                    opts |= uint8_t((t.no_local ? 0x04 : 0) | (t.retain_as_published ? 0x08 : 0) |
                                    (t.retain_handling & 0x03) << 4);
                w.u8(opts);
            }
        },
        [&](const Suback& s) {
            w.u16(s.packet_id);
            if (v5) props::write(w, s.props);
            for (uint8_t r : s.reasons) w.u8(v5 || r < 0x80 ? r : 0x80);
        },
        [&](const Unsubscribe& u) {
            w.u16(u.packet_id);
            if (v5) props::write(w, u.props);
            for (auto f : u.filters) put_string(w, f);
        },
        [&](const Unsuback& u) {
            w.u16(u.packet_id);
            if (!v5) return;
            props::write(w, u.props);
            for (uint8_t r : u.reasons) w.u8(r);
        },
        [&](const Pingreq&) {},
        [&](const Pingresp&) {},
        [&](const Disconnect& d) {
            if (v5) reason_tail(w, d.reason, d.props);
        },
        [&](const Auth& a) { reason_tail(w, a.reason, a.props); },
    }, packet);
}

size_t body_size(const Packet& p, Version version) {
    wire::SizeWriter s;
    body(s, p, version);
    return s.n;
}

// Exact byte count of the per-delivery and forwarded PUBLISH properties.
size_t publish_props_len(const PublishParts& p) {
    size_t n = p.forwarded.size();
    if (p.message_expiry) n += 5;
    if (p.topic_alias) n += 3;
    for (uint32_t id : p.sub_ids) n += 1 + wire::varint_len(id);
    return n;
}

size_t publish_body_size(const PublishParts& p, bool v5, size_t props_len) {
    size_t n = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
    if (v5) n += wire::varint_len(uint32_t(props_len)) + props_len;
    return n;
}

// Raw big-endian / varint stores for the PUBLISH hot path.
inline uint8_t* put16(uint8_t* d, uint16_t v) {
    d[0] = uint8_t(v >> 8);
    d[1] = uint8_t(v);
    return d + 2;
}
inline uint8_t* put32(uint8_t* d, uint32_t v) {
    d[0] = uint8_t(v >> 24);
    d[1] = uint8_t(v >> 16);
    d[2] = uint8_t(v >> 8);
    d[3] = uint8_t(v);
    return d + 4;
}
inline uint8_t* putvar(uint8_t* d, uint32_t v) {
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        *d++ = v ? uint8_t(b | 0x80) : b;
    } while (v);
    return d;
}
inline uint8_t* putraw(uint8_t* d, const void* src, size_t n) {
    if (n) std::memcpy(d, src, n);
    return d + n;
}

}  // namespace

void encode(const Packet& p, Version version, std::vector<uint8_t>& out) {
    // AUTH does not exist before MQTT 5.0: nothing to write.
    if (std::holds_alternative<Auth>(p) && version != Version::V5) return;
    const size_t len = body_size(p, version);
    out.reserve(out.size() + 1 + wire::varint_len(uint32_t(len)) + len);
    wire::VecWriter w{out};
    w.u8(first_byte(p));
    w.varint(uint32_t(len));
    body(w, p, version);
}

void encode_ack(PacketType type, uint16_t packet_id, uint8_t reason, Version version,
                std::vector<uint8_t>& out) {
    // The bytes encode(Ack{type, packet_id, reason, {}}) writes, without
    // building a Packet: v5 omits a Success reason, and no properties follow.
    const bool with_reason = version == Version::V5 && reason != rc::Success;
    out.push_back(ack_first_byte(type));
    out.push_back(with_reason ? 3 : 2);
    out.push_back(uint8_t(packet_id >> 8));
    out.push_back(uint8_t(packet_id));
    if (with_reason) out.push_back(reason);
}

size_t encoded_size(const Packet& p, Version version) {
    if (std::holds_alternative<Auth>(p) && version != Version::V5) return 0;
    const size_t len = body_size(p, version);
    return 1 + wire::varint_len(uint32_t(len)) + len;
}

void encode_forwarded_properties(const Properties& p, std::vector<uint8_t>& out) {
    // Same identifiers in the same (ascending) order as props::write_list.
    Properties fwd;
    fwd.payload_format = p.payload_format;
    fwd.content_type = p.content_type;
    fwd.response_topic = p.response_topic;
    fwd.correlation_data = p.correlation_data;
    wire::SizeWriter size;
    props::write_list(size, fwd);
    size_t user_len = 0;
    for (const auto& u : p.user) user_len += 5 + u.key.size() + u.value.size();
    out.reserve(out.size() + size.n + user_len);
    wire::VecWriter w{out};
    props::write_list(w, fwd);
    for (const auto& u : p.user) {
        w.u8(0x26);
        put_string(w, u.key);
        put_string(w, u.value);
    }
}

size_t publish_size(const PublishParts& p, Version version) {
    const bool v5 = version == Version::V5;
    const size_t body = publish_body_size(p, v5, v5 ? publish_props_len(p) : 0);
    return 1 + wire::varint_len(uint32_t(body)) + body;
}

namespace {

// The whole PUBLISH, or (with_payload false) all of it but the payload,
// with the remaining length still counting the payload.
void encode_publish_to(const PublishParts& p, Version version, std::vector<uint8_t>& out, bool with_payload) {
    const bool v5 = version == Version::V5;
    const size_t props_len = v5 ? publish_props_len(p) : 0;
    const size_t body = publish_body_size(p, v5, props_len);
    const size_t total = 1 + wire::varint_len(uint32_t(body)) + body - (with_payload ? 0 : p.payload.size());
    const size_t start = out.size();
    out.resize(start + total);
    uint8_t* d = out.data() + start;
    *d++ = uint8_t(0x30 | (p.dup ? 0x08 : 0) | (p.qos & 0x03) << 1 | (p.retain ? 1 : 0));
    d = putvar(d, uint32_t(body));
    d = put16(d, uint16_t(p.topic.size()));
    d = putraw(d, p.topic.data(), p.topic.size());
    if (p.qos > 0) d = put16(d, p.packet_id);
    if (v5) {
        d = putvar(d, uint32_t(props_len));
        // Per-delivery properties first, then the forwarded block copied as
        // is (the spec fixes no property order; user properties keep theirs).
        if (p.message_expiry) {
            *d++ = 0x02;
            d = put32(d, *p.message_expiry);
        }
        for (uint32_t id : p.sub_ids) {
            *d++ = 0x0B;
            d = putvar(d, id);
        }
        if (p.topic_alias) {
            *d++ = 0x23;
            d = put16(d, *p.topic_alias);
        }
        d = putraw(d, p.forwarded.data(), p.forwarded.size());
    }
    if (with_payload) putraw(d, p.payload.data(), p.payload.size());
}

}  // namespace

void encode_publish(const PublishParts& p, Version version, std::vector<uint8_t>& out) {
    encode_publish_to(p, version, out, true);
}

void encode_publish_head(const PublishParts& p, Version version, std::vector<uint8_t>& out) {
    encode_publish_to(p, version, out, false);
}

// v5 CONNACK reason -> v3 return code (see codec.hpp).
uint8_t v3_connack_code(uint8_t reason) {
    switch (reason) {
    case rc::Success: return 0;
    case rc::UnsupportedProtocolVersion: return 1;
    case rc::ClientIdentifierNotValid: return 2;
    case rc::BadUserNameOrPassword: return 4;
    case rc::NotAuthorized: return 5;
    default: return 3;  // 0x88 / 0x89 and everything else: server unavailable
    }
}

}  // namespace hato::mqtt
