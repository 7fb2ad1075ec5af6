// Bytes <-> packets. Pure functions, no I/O, no state beyond the arguments.
// In the style of picohttpparser: every decode answers "need more bytes",
// "one packet, N bytes consumed", or "error, with the v5 reason code".
#pragma once

#include <string>
#include <vector>

#include "mqtt/packet.hpp"

namespace hato::mqtt {

enum class DecodeStatus : uint8_t { Ok, Incomplete, Error };

struct DecodeResult {
    DecodeStatus status = DecodeStatus::Incomplete;
    size_t consumed = 0;           // Ok: bytes of the whole packet (fixed header included)
    uint8_t reason = 0;            // Error: rc::MalformedPacket, rc::ProtocolError, rc::PacketTooLarge, ...
    const char* what = "";         // Error: short human text for the log
};

struct FixedHeader {
    uint8_t first_byte = 0;        // type << 4 | flags
    uint32_t remaining = 0;        // remaining length
    uint8_t header_len = 0;        // 2..5
    PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
    size_t total() const { return size_t(header_len) + remaining; }
};

// Reads only the fixed header, so that an oversized packet is refused before
// its body is buffered: Error(PacketTooLarge) when total() > max_packet_size
// (0 = no limit), Error(Malformed) for a remaining length over 4 bytes or
// packet type 0. Ok means `hdr` is filled (consumed = header_len).
DecodeResult peek_header(Bytes in, uint32_t max_packet_size, FixedHeader& hdr);

// Decodes one whole packet from the front of `in`. `version` is the
// connection's negotiated version (ignored for CONNECT, which carries its own).
// Views in `out` point into `in`.
//
// Unsupported protocol: a CONNECT whose protocol name/level is not
// ("MQIsdp",3), ("MQTT",4) or ("MQTT",5) gives Error(UnsupportedProtocolVersion)
// with consumed = the packet's length and `out` holding a Connect whose
// `version` is V5 if the level byte was 5, else V311, so the broker can answer
// with a CONNACK (0x84 / v3 return code 1) in a form the client understands.
//
// Left to the caller (the codec cannot know direction or broker policy):
// client id rules; a Subscription Identifier in a client's PUBLISH (several
// are accepted in any PUBLISH); topic filter syntax in SUBSCRIBE/UNSUBSCRIBE
// (v5 answers it per filter with 0x8F; use valid_topic_filter / parse_shared);
// No Local on a shared subscription; topic alias range; payload format checks.
DecodeResult decode(Bytes in, Version version, uint32_t max_packet_size, Packet& out);
// The same for a PUBLISH whose fixed header `hdr` was read by peek_header
// (Error if it is no PUBLISH or `packet` holds less than all of it): the
// broker's hot path, without the Packet variant. A topic equal to
// `checked_topic` (one the caller saw pass these checks before) is not
// checked again for valid UTF-8 and wildcards.
DecodeResult decode_publish(Bytes packet, const FixedHeader& hdr, Version version, Publish& out,
                            std::string_view checked_topic = {});
// The same for PUBACK, PUBREC, PUBREL and PUBCOMP (is_ack).
DecodeResult decode_ack(Bytes packet, const FixedHeader& hdr, Version version, Ack& out);
inline bool is_ack(PacketType t) {
    return t == PacketType::Puback || t == PacketType::Pubrec || t == PacketType::Pubrel || t == PacketType::Pubcomp;
}

// Appends the encoding of `p` for a connection of `version` to `out`.
// Properties are written only for V5. v3 CONNACK maps v5 reason codes to
// v3 return codes (0x84->1, 0x85->2, 0x88/0x89->3, 0x86->4, 0x87->5, others->3);
// decode maps them back (3 -> 0x88).
// v3 SUBACK maps any reason >= 0x80 to 0x80. v5 acks, DISCONNECT and AUTH
// use the short form when reason is Success and there are no properties.
// AUTH exists only in v5: for v3 nothing is written (encoded_size 0).
void encode(const Packet& p, Version version, std::vector<uint8_t>& out);
// The v3 CONNACK return code `encode` writes for a v5 reason.
uint8_t v3_connack_code(uint8_t reason);
// A reason code's name in MQTT 5.0 (2.4), lower case, for log lines.
const char* reason_name(uint8_t reason);

// The hot-path form of encode(Ack{type, packet_id, reason, {}}, version, out)
// (PUBACK / PUBREC / PUBREL / PUBCOMP without properties): the same bytes.
void encode_ack(PacketType type, uint16_t packet_id, uint8_t reason, Version version,
                std::vector<uint8_t>& out);

// Size of encode(p, version) without writing it (for Maximum Packet Size checks).
size_t encoded_size(const Packet& p, Version version);

// Hot path for the broker: the v5 properties a PUBLISH forwards unchanged
// (payload format, content type, response topic, correlation data, user
// properties in order), encoded once as property bytes without the length
// prefix. Message expiry, topic alias and subscription ids are per-delivery.
void encode_forwarded_properties(const Properties& props, std::vector<uint8_t>& out);

// Encodes a PUBLISH from its parts. `forwarded` is the output of
// encode_forwarded_properties (ignored for v3). topic may be empty when
// topic_alias is set (v5). sub_ids may be empty.
struct PublishParts {
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::string_view topic;
    uint16_t packet_id = 0;
    std::optional<uint16_t> topic_alias;
    std::optional<uint32_t> message_expiry;
    std::span<const uint32_t> sub_ids;
    Bytes forwarded;
    Bytes payload;
};
void encode_publish(const PublishParts& p, Version version, std::vector<uint8_t>& out);
// The same PUBLISH without its payload: what precedes p.payload on the wire,
// so that a large payload can be sent from where it is instead of copied.
void encode_publish_head(const PublishParts& p, Version version, std::vector<uint8_t>& out);
size_t publish_size(const PublishParts& p, Version version);

// Strings (2.1 / 1.5.4): valid UTF-8, no U+0000, no surrogates.
bool valid_utf8(std::string_view s);

// Topic names and filters (4.7).
bool valid_topic_name(std::string_view topic);    // non-empty, no + or #, valid utf8, <= 65535
bool valid_topic_filter(std::string_view filter); // + whole level, # last level only
// At most `max_levels` '/'-separated levels ("a//b" has 3).
bool within_levels(std::string_view name, uint32_t max_levels);
// Does `topic` match `filter`? Leading wildcards do not match `$`-topics.
bool topic_matches(std::string_view filter, std::string_view topic);
// Could one topic match both filters? ("a/#" and "a", "+/b" and "a/+"; not
// "#" and "$SYS/x": a wildcard first level never matches a '$' topic.)
bool filters_overlap(std::string_view a, std::string_view b);

// `$share/{group}/{filter}`: splits a shared subscription. Returns false if
// `filter` is not shared; sets ok=false if it is shared but malformed.
bool parse_shared(std::string_view filter, std::string_view& group, std::string_view& inner, bool& ok);

}  // namespace hato::mqtt
