// MQTT 5.0 property decoding (2.2.2, 3.x.2.3).
#include "mqtt/properties.hpp"

namespace hato::mqtt::props {
namespace {

using wire::Fail;
using wire::Reader;

constexpr uint64_t bit(uint8_t id) { return uint64_t(1) << id; }

// Identifiers allowed at each place (MQTT 5.0 table 2-4). User property (0x26)
// is allowed everywhere.
constexpr uint64_t kUser = bit(0x26);
constexpr uint64_t kMessage = bit(0x01) | bit(0x02) | bit(0x03) | bit(0x08) | bit(0x09);
constexpr uint64_t kReason = bit(0x1F);

uint64_t allowed(Where where) {
    switch (where) {
    case Where::Connect:
        return kUser | bit(0x11) | bit(0x15) | bit(0x16) | bit(0x17) | bit(0x19) | bit(0x21) |
               bit(0x22) | bit(0x27);
    case Where::Will: return kUser | kMessage | bit(0x18);
    case Where::Connack:
        return kUser | kReason | bit(0x11) | bit(0x12) | bit(0x13) | bit(0x15) | bit(0x16) |
               bit(0x1A) | bit(0x1C) | bit(0x21) | bit(0x22) | bit(0x24) | bit(0x25) |
               bit(0x27) | bit(0x28) | bit(0x29) | bit(0x2A);
    case Where::Publish: return kUser | kMessage | bit(0x0B) | bit(0x23);
    case Where::Ack: return kUser | kReason;
    case Where::Subscribe: return kUser | bit(0x0B);
    case Where::Suback: return kUser | kReason;
    case Where::Unsubscribe: return kUser;
    case Where::Unsuback: return kUser | kReason;
    case Where::Disconnect: return kUser | kReason | bit(0x11) | bit(0x1C);
    case Where::Auth: return kUser | kReason | bit(0x15) | bit(0x16);
    }
    return 0;
}

Fail read_one(Reader& r, uint8_t id, Properties& p) {
    const Fail bad = wire::malformed("property value truncated or invalid");
    auto str = [&](std::optional<std::string_view>& v) -> Fail {
        std::string_view s;
        if (!r.raw_string(s)) return bad;
        if (!valid_utf8(s)) return wire::malformed("property string is not valid UTF-8");
        v = s;
        return {};
    };
    auto bin = [&](std::optional<Bytes>& v) -> Fail {
        Bytes b;
        if (!r.binary(b)) return bad;
        v = b;
        return {};
    };
    auto two = [&](std::optional<uint16_t>& v) -> Fail {
        uint16_t x;
        if (!r.u16(x)) return bad;
        v = x;
        return {};
    };
    auto four = [&](std::optional<uint32_t>& v) -> Fail {
        uint32_t x;
        if (!r.u32(x)) return bad;
        v = x;
        return {};
    };
    // Byte properties whose only legal values are 0 and 1.
    auto flag = [&](std::optional<uint8_t>& v) -> Fail {
        uint8_t b;
        if (!r.u8(b)) return bad;
        if (b > 1) return wire::protocol("property flag is not 0 or 1");
        v = b;
        return {};
    };
    switch (id) {
    case 0x01: return flag(p.payload_format);
    case 0x02: return four(p.message_expiry);
    case 0x03: return str(p.content_type);
    case 0x08: {
        if (Fail f = str(p.response_topic)) return f;
        // 3.3.2.3.5: the response topic is a topic name, wildcards forbidden.
        if (!valid_topic_name(*p.response_topic)) return wire::protocol("invalid response topic");
        return {};
    }
    case 0x09: return bin(p.correlation_data);
    case 0x0B: {
        uint32_t v;
        if (!r.varint(v)) return bad;
        if (v == 0) return wire::protocol("subscription identifier 0");
        p.subscription_ids.push_back(v);
        return {};
    }
    case 0x11: return four(p.session_expiry);
    case 0x12: return str(p.assigned_client_id);
    case 0x13: return two(p.server_keep_alive);
    case 0x15: return str(p.auth_method);
    case 0x16: return bin(p.auth_data);
    case 0x17: return flag(p.request_problem_info);
    case 0x18: return four(p.will_delay);
    case 0x19: return flag(p.request_response_info);
    case 0x1A: return str(p.response_info);
    case 0x1C: return str(p.server_reference);
    case 0x1F: return str(p.reason_string);
    case 0x21: {
        if (Fail f = two(p.receive_maximum)) return f;
        if (*p.receive_maximum == 0) return wire::protocol("receive maximum 0");
        return {};
    }
    case 0x22: return two(p.topic_alias_maximum);
    case 0x23: {
        if (Fail f = two(p.topic_alias)) return f;
        if (*p.topic_alias == 0) return {rc::TopicAliasInvalid, "topic alias 0"};
        return {};
    }
    case 0x24: return flag(p.maximum_qos);
    case 0x25: return flag(p.retain_available);
    case 0x26: {
        std::string_view k, v;
        if (!r.raw_string(k) || !r.raw_string(v)) return bad;
        if (!valid_utf8(k) || !valid_utf8(v))
            return wire::malformed("user property is not valid UTF-8");
        p.user.push_back({k, v});
        return {};
    }
    case 0x27: {
        if (Fail f = four(p.maximum_packet_size)) return f;
        if (*p.maximum_packet_size == 0) return wire::protocol("maximum packet size 0");
        return {};
    }
    case 0x28: return flag(p.wildcard_sub_available);
    case 0x29: return flag(p.sub_id_available);
    case 0x2A: return flag(p.shared_sub_available);
    }
    return wire::malformed("unknown property identifier");
}

}  // namespace

Fail read(Reader& r, Where where, Properties& out) {
    uint32_t len;
    if (!r.varint(len)) return wire::malformed("bad property length");
    Reader block(nullptr, nullptr);
    if (!r.sub(len, block)) return wire::malformed("property length past end of packet");
    const uint64_t ok = allowed(where);
    uint64_t seen = 0;
    while (!block.empty()) {
        // The identifier is a variable byte integer; every defined one fits in a byte.
        uint32_t id;
        if (!block.varint(id)) return wire::malformed("bad property identifier");
        if (id > 0x3F || !(ok & bit(uint8_t(id))))
            return wire::malformed("property not allowed on this packet");
        const bool repeatable =
            id == 0x26 || (id == 0x0B && where == Where::Publish);
        if (!repeatable && (seen & bit(uint8_t(id))))
            return wire::protocol("duplicate property");
        seen |= bit(uint8_t(id));
        if (Fail f = read_one(block, uint8_t(id), out)) return f;
    }
    return {};
}

bool empty(const Properties& p) {
    return !p.payload_format && !p.message_expiry && !p.content_type && !p.response_topic &&
           !p.correlation_data && p.subscription_ids.empty() && !p.session_expiry &&
           !p.assigned_client_id && !p.server_keep_alive && !p.auth_method && !p.auth_data &&
           !p.request_problem_info && !p.will_delay && !p.request_response_info &&
           !p.response_info && !p.server_reference && !p.reason_string &&
           !p.receive_maximum && !p.topic_alias_maximum && !p.topic_alias &&
           !p.maximum_qos && !p.retain_available && p.user.empty() &&
           !p.maximum_packet_size && !p.wildcard_sub_available && !p.sub_id_available &&
           !p.shared_sub_available;
}

}  // namespace hato::mqtt::props
