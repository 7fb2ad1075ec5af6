// Private to the codec: MQTT 5.0 property block (2.2.2) decode and encode.
#pragma once

#include "mqtt/wire.hpp"

namespace hato::mqtt::props {

// Where a property block sits; decides which identifiers are allowed (table 2.4).
enum class Where : uint8_t {
    Connect, Will, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe, Unsuback,
    Disconnect, Auth
};

// Reads "property length + properties" into `out`. Unknown identifiers and
// identifiers not allowed at `where` are Malformed (2.2.2.2); a repeated
// single-use property is a Protocol Error; so are out-of-range values
// (e.g. Receive Maximum 0, Subscription Identifier 0). Several subscription
// identifiers are accepted only in PUBLISH.
wire::Fail read(wire::Reader& r, Where where, Properties& out);

// Writes every present property, in identifier order, without the length prefix.
template <class W>
void write_list(W& w, const Properties& p) {
    auto byte = [&](uint8_t id, const std::optional<uint8_t>& v) {
        if (v) { w.u8(id); w.u8(*v); }
    };
    auto two = [&](uint8_t id, const std::optional<uint16_t>& v) {
        if (v) { w.u8(id); w.u16(*v); }
    };
    auto four = [&](uint8_t id, const std::optional<uint32_t>& v) {
        if (v) { w.u8(id); w.u32(*v); }
    };
    auto str = [&](uint8_t id, const std::optional<std::string_view>& v) {
        if (v) { w.u8(id); wire::put_string(w, *v); }
    };
    auto bin = [&](uint8_t id, const std::optional<Bytes>& v) {
        if (v) { w.u8(id); wire::put_bytes(w, *v); }
    };
    byte(0x01, p.payload_format);
    four(0x02, p.message_expiry);
    str(0x03, p.content_type);
    str(0x08, p.response_topic);
    bin(0x09, p.correlation_data);
    for (uint32_t id : p.subscription_ids) { w.u8(0x0B); w.varint(id); }
    four(0x11, p.session_expiry);
    str(0x12, p.assigned_client_id);
    two(0x13, p.server_keep_alive);
    str(0x15, p.auth_method);
    bin(0x16, p.auth_data);
    byte(0x17, p.request_problem_info);
    four(0x18, p.will_delay);
    byte(0x19, p.request_response_info);
    str(0x1A, p.response_info);
    str(0x1C, p.server_reference);
    str(0x1F, p.reason_string);
    two(0x21, p.receive_maximum);
    two(0x22, p.topic_alias_maximum);
    two(0x23, p.topic_alias);
    byte(0x24, p.maximum_qos);
    byte(0x25, p.retain_available);
    for (const auto& u : p.user) {
        w.u8(0x26);
        wire::put_string(w, u.key);
        wire::put_string(w, u.value);
    }
    four(0x27, p.maximum_packet_size);
    byte(0x28, p.wildcard_sub_available);
    byte(0x29, p.sub_id_available);
    byte(0x2A, p.shared_sub_available);
}

// Byte count of write_list (the value of the property length field).
inline size_t list_size(const Properties& p) {
    wire::SizeWriter s;
    write_list(s, p);
    return s.n;
}

// Writes the property length then the properties.
template <class W>
void write(W& w, const Properties& p) {
    size_t len = list_size(p);
    w.varint(uint32_t(len));
    write_list(w, p);
}

// Cheap emptiness test used to pick the short form of acks / DISCONNECT / AUTH.
bool empty(const Properties& p);

}  // namespace hato::mqtt::props
