// Hostile input: one table row per rule, for every packet type.
#include "helpers.hpp"

namespace hato::mqtt::test {
namespace {

constexpr uint8_t M = rc::MalformedPacket;
constexpr uint8_t P = rc::ProtocolError;
constexpr Version V3 = Version::V311;
constexpr Version V31 = Version::V31;
constexpr Version V5 = Version::V5;

// Builds a packet from its first byte and body, computing the remaining length.
Buf pkt(uint8_t first, std::initializer_list<int> body) {
    Buf b = bytes(body);
    Buf out = {first};
    size_t n = b.size();
    do {
        uint8_t digit = n & 0x7F;
        n >>= 7;
        out.push_back(n ? uint8_t(digit | 0x80) : digit);
    } while (n);
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

// Body of a CONNECT up to and including keep alive, for a given flags byte.
#define MQTT4(flags) 0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 60
#define MQTT5(flags) 0, 4, 'M', 'Q', 'T', 'T', 5, flags, 0, 60

struct Row {
    const char* name;
    Buf wire;
    Version version;
    uint8_t reason;
};

const Row kRows[] = {
    // --- fixed header ---
    {"packet type 0", {0x00, 0x00}, V3, M},
    {"remaining length with 5 bytes", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, V3, M},
    {"non-minimal remaining length", {0xC0, 0x80, 0x00}, V3, M},
    {"AUTH in 3.1.1", {0xF0, 0x00}, V3, M},
    {"AUTH in 3.1", {0xF0, 0x00}, V31, M},
    {"CONNECT flags 0001", pkt(0x11, {MQTT4(2), 0, 0}), V3, M},
    {"CONNACK flags 1000", {0x28, 0x02, 0x00, 0x00}, V3, M},
    {"PUBACK flags 0010", {0x42, 0x02, 0x00, 0x01}, V3, M},
    {"PUBREC flags 0001", {0x51, 0x02, 0x00, 0x01}, V3, M},
    {"PUBREL flags 0000", {0x60, 0x02, 0x00, 0x01}, V3, M},
    {"PUBREL flags 0011", {0x63, 0x02, 0x00, 0x01}, V5, M},
    {"PUBCOMP flags 0100", {0x74, 0x02, 0x00, 0x01}, V3, M},
    {"SUBSCRIBE flags 0000", pkt(0x80, {0, 1, 0, 1, 'a', 0}), V3, M},
    {"SUBSCRIBE flags 0011", pkt(0x83, {0, 1, 0, 1, 'a', 0}), V3, M},
    {"SUBACK flags 0010", {0x92, 0x03, 0x00, 0x01, 0x00}, V3, M},
    {"UNSUBSCRIBE flags 0000", pkt(0xA0, {0, 1, 0, 1, 'a'}), V3, M},
    {"UNSUBACK flags 0001", {0xB1, 0x02, 0x00, 0x01}, V3, M},
    {"PINGREQ flags 0001", {0xC1, 0x00}, V3, M},
    {"PINGRESP flags 1000", {0xD8, 0x00}, V3, M},
    {"DISCONNECT flags 0010", {0xE2, 0x00}, V3, M},
    {"AUTH flags 0001", {0xF1, 0x00}, V5, M},

    // --- CONNECT ---
    {"CONNECT reserved flag", pkt(0x10, {MQTT4(0x03), 0, 0}), V3, M},
    {"CONNECT will QoS without will flag", pkt(0x10, {MQTT4(0x0A), 0, 0}), V3, M},
    {"CONNECT will retain without will flag", pkt(0x10, {MQTT4(0x22), 0, 0}), V3, M},
    {"CONNECT will QoS 3", pkt(0x10, {MQTT4(0x1E), 0, 0, 0, 1, 't', 0, 0}), V3, M},
    {"CONNECT password without user name (3.1.1)", pkt(0x10, {MQTT4(0x42), 0, 0, 0, 1, 'p'}), V3, M},
    {"CONNECT password without user name (3.1)",
     pkt(0x10, {0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x42, 0, 60, 0, 1, 'c', 0, 1, 'p'}), V31, M},
    {"CONNECT header truncated", pkt(0x10, {0, 4, 'M', 'Q'}), V3, M},
    {"CONNECT missing keep alive", pkt(0x10, {0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0}), V3, M},
    {"CONNECT client id past end", pkt(0x10, {MQTT4(2), 0, 5, 'a'}), V3, M},
    {"CONNECT client id missing", pkt(0x10, {MQTT4(2)}), V3, M},
    {"CONNECT client id overlong UTF-8", pkt(0x10, {MQTT4(2), 0, 2, 0xC0, 0x80}), V3, M},
    {"CONNECT client id U+0000", pkt(0x10, {MQTT4(2), 0, 1, 0}), V3, M},
    {"CONNECT trailing byte", pkt(0x10, {MQTT4(2), 0, 0, 0x55}), V3, M},
    {"CONNECT will topic with wildcard", pkt(0x10, {MQTT4(0x06), 0, 0, 0, 1, '#', 0, 0}), V3, M},
    {"CONNECT will topic empty", pkt(0x10, {MQTT4(0x06), 0, 0, 0, 0, 0, 0}), V3, M},
    {"CONNECT will payload missing", pkt(0x10, {MQTT4(0x06), 0, 0, 0, 1, 't'}), V3, M},
    {"CONNECT user name invalid UTF-8", pkt(0x10, {MQTT4(0x82), 0, 0, 0, 1, 0xFF}), V3, M},
    {"CONNECT password missing", pkt(0x10, {MQTT4(0xC2), 0, 0, 0, 1, 'u'}), V3, M},
    {"CONNECT user name missing", pkt(0x10, {MQTT4(0x82), 0, 0}), V3, M},
    {"v5 CONNECT property length missing", pkt(0x10, {MQTT5(2)}), V5, M},
    {"v5 CONNECT property not allowed (topic alias)", pkt(0x10, {MQTT5(2), 3, 0x23, 0, 1, 0, 0}), V5, M},
    {"v5 CONNECT unknown property 0x04", pkt(0x10, {MQTT5(2), 2, 0x04, 0, 0, 0}), V5, M},
    {"v5 CONNECT property id beyond 0x3F", pkt(0x10, {MQTT5(2), 2, 0x7F, 0, 0, 0}), V5, M},
    {"v5 CONNECT duplicate session expiry",
     pkt(0x10, {MQTT5(2), 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 0}), V5, P},
    {"v5 CONNECT receive maximum 0", pkt(0x10, {MQTT5(2), 3, 0x21, 0, 0, 0, 0}), V5, P},
    {"v5 CONNECT maximum packet size 0", pkt(0x10, {MQTT5(2), 5, 0x27, 0, 0, 0, 0, 0, 0}), V5, P},
    {"v5 CONNECT request problem info 2", pkt(0x10, {MQTT5(2), 2, 0x17, 2, 0, 0}), V5, P},
    {"v5 CONNECT request response info 2", pkt(0x10, {MQTT5(2), 2, 0x19, 2, 0, 0}), V5, P},
    {"v5 CONNECT property length past end", pkt(0x10, {MQTT5(2), 9, 0x11, 0, 0}), V5, M},
    {"v5 CONNECT property value truncated", pkt(0x10, {MQTT5(2), 3, 0x11, 0, 0}), V5, M},
    {"v5 CONNECT auth method invalid UTF-8", pkt(0x10, {MQTT5(2), 4, 0x15, 0, 1, 0x80, 0, 0}), V5, M},
    {"v5 CONNECT will props with session expiry",
     pkt(0x10, {MQTT5(0x06), 0, 0, 0, 5, 0x11, 0, 0, 0, 1, 0, 1, 't', 0, 0}), V5, M},
    {"v5 CONNECT will props duplicate will delay",
     pkt(0x10, {MQTT5(0x06), 0, 0, 0, 10, 0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1, 0, 1, 't', 0, 0}), V5, P},
    {"v5 CONNECT will payload format 2",
     pkt(0x10, {MQTT5(0x06), 0, 0, 0, 2, 0x01, 2, 0, 1, 't', 0, 0}), V5, P},

    // --- CONNACK ---
    {"CONNACK reserved ack flags", {0x20, 0x02, 0x02, 0x00}, V3, M},
    {"CONNACK return code 6", {0x20, 0x02, 0x00, 0x06}, V3, M},
    {"CONNACK trailing byte", {0x20, 0x03, 0x00, 0x00, 0x00}, V3, M},
    {"CONNACK truncated", {0x20, 0x01, 0x00}, V3, M},
    {"v5 CONNACK reason 0x10", {0x20, 0x03, 0x00, 0x10, 0x00}, V5, M},
    {"v5 CONNACK without property length", {0x20, 0x02, 0x00, 0x00}, V5, M},
    {"v5 CONNACK property not allowed (topic alias)", pkt(0x20, {0, 0, 3, 0x23, 0, 1}), V5, M},
    {"v5 CONNACK maximum QoS 2", pkt(0x20, {0, 0, 2, 0x24, 2}), V5, P},
    {"v5 CONNACK duplicate retain available", pkt(0x20, {0, 0, 4, 0x25, 1, 0x25, 1}), V5, P},

    // --- PUBLISH ---
    {"PUBLISH QoS 3", pkt(0x36, {0, 1, 't', 0, 1}), V3, M},
    {"PUBLISH QoS 0 with DUP", pkt(0x38, {0, 1, 't'}), V3, M},
    {"v5 PUBLISH QoS 0 with DUP", pkt(0x38, {0, 1, 't', 0}), V5, M},
    {"PUBLISH topic with +", pkt(0x30, {0, 3, 'a', '/', '+'}), V3, M},
    {"PUBLISH topic with #", pkt(0x30, {0, 1, '#'}), V3, M},
    {"v5 PUBLISH topic with #", pkt(0x30, {0, 3, 'a', '/', '#', 0}), V5, M},
    {"PUBLISH empty topic (3.1.1)", pkt(0x30, {0, 0, 'x'}), V3, M},
    {"v5 PUBLISH empty topic without alias", pkt(0x30, {0, 0, 0, 'x'}), V5, P},
    {"PUBLISH packet id 0", pkt(0x32, {0, 1, 't', 0, 0}), V3, M},
    {"PUBLISH QoS 2 packet id 0", pkt(0x34, {0, 1, 't', 0, 0}), V5, M},
    {"PUBLISH packet id missing", pkt(0x32, {0, 1, 't', 0}), V3, M},
    {"PUBLISH topic invalid UTF-8", pkt(0x30, {0, 2, 0xE2, 0x82}), V3, M},
    {"PUBLISH topic surrogate", pkt(0x30, {0, 3, 0xED, 0xA0, 0x80}), V3, M},
    {"PUBLISH topic U+0000", pkt(0x30, {0, 3, 'a', 0, 'b'}), V3, M},
    {"PUBLISH topic past end", pkt(0x30, {0, 9, 'a'}), V3, M},
    {"PUBLISH topic length truncated", pkt(0x30, {0}), V3, M},
    {"PUBLISH empty body", {0x30, 0x00}, V3, M},
    {"v5 PUBLISH topic alias 0", pkt(0x30, {0, 1, 't', 3, 0x23, 0, 0}), V5, rc::TopicAliasInvalid},
    {"v5 PUBLISH duplicate topic alias", pkt(0x30, {0, 1, 't', 6, 0x23, 0, 1, 0x23, 0, 2}), V5, P},
    {"v5 PUBLISH subscription id 0", pkt(0x30, {0, 1, 't', 2, 0x0B, 0}), V5, P},
    {"v5 PUBLISH subscription id 5-byte varint",
     pkt(0x30, {0, 1, 't', 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), V5, M},
    {"v5 PUBLISH session expiry not allowed", pkt(0x30, {0, 1, 't', 5, 0x11, 0, 0, 0, 1}), V5, M},
    {"v5 PUBLISH payload format 2", pkt(0x30, {0, 1, 't', 2, 0x01, 2}), V5, P},
    {"v5 PUBLISH duplicate content type", pkt(0x30, {0, 1, 't', 8, 0x03, 0, 1, 'a', 0x03, 0, 1, 'b'}), V5, P},
    {"v5 PUBLISH duplicate message expiry",
     pkt(0x30, {0, 1, 't', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1}), V5, P},
    {"v5 PUBLISH response topic with wildcard", pkt(0x30, {0, 1, 't', 4, 0x08, 0, 1, '+'}), V5, P},
    {"v5 PUBLISH property length past end", pkt(0x30, {0, 1, 't', 5, 0x01, 1}), V5, M},
    {"v5 PUBLISH property length missing", pkt(0x30, {0, 1, 't'}), V5, M},
    {"v5 PUBLISH message expiry truncated", pkt(0x30, {0, 1, 't', 3, 0x02, 0, 0}), V5, M},
    {"v5 PUBLISH user property value invalid UTF-8",
     pkt(0x30, {0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 1, 0xC3}), V5, M},
    {"v5 PUBLISH user property value missing", pkt(0x30, {0, 1, 't', 4, 0x26, 0, 1, 'k'}), V5, M},
    {"v5 PUBLISH correlation data past end", pkt(0x30, {0, 1, 't', 3, 0x09, 0, 5}), V5, M},

    // --- PUBACK / PUBREC / PUBREL / PUBCOMP ---
    {"PUBACK packet id 0", {0x40, 0x02, 0x00, 0x00}, V3, M},
    {"PUBREC packet id 0", {0x50, 0x02, 0x00, 0x00}, V5, M},
    {"PUBREL packet id 0", {0x62, 0x02, 0x00, 0x00}, V3, M},
    {"PUBCOMP packet id 0", {0x70, 0x02, 0x00, 0x00}, V5, M},
    {"PUBACK too short", {0x40, 0x01, 0x00}, V3, M},
    {"PUBACK empty", {0x40, 0x00}, V5, M},
    {"PUBACK trailing byte (3.1.1)", {0x40, 0x03, 0x00, 0x01, 0x00}, V3, M},
    {"PUBREL trailing byte (3.1)", {0x62, 0x03, 0x00, 0x01, 0x00}, V31, M},
    {"v5 PUBACK reason 0x92", {0x40, 0x03, 0x00, 0x01, 0x92}, V5, M},
    {"v5 PUBREC reason 0x01", {0x50, 0x03, 0x00, 0x01, 0x01}, V5, M},
    {"v5 PUBREL reason 0x10", {0x62, 0x03, 0x00, 0x01, 0x10}, V5, M},
    {"v5 PUBCOMP reason 0x80", {0x70, 0x03, 0x00, 0x01, 0x80}, V5, M},
    {"v5 PUBACK content type not allowed", pkt(0x40, {0, 1, 0, 4, 0x03, 0, 1, 'a'}), V5, M},
    {"v5 PUBACK duplicate reason string",
     pkt(0x40, {0, 1, 0, 8, 0x1F, 0, 1, 'a', 0x1F, 0, 1, 'b'}), V5, P},
    {"v5 PUBACK byte after properties", pkt(0x40, {0, 1, 0, 0, 0x55}), V5, M},
    {"v5 PUBREC property length past end", pkt(0x50, {0, 1, 0, 7, 0x1F}), V5, M},
    {"v5 PUBREL subscription id not allowed", pkt(0x62, {0, 1, 0, 2, 0x0B, 1}), V5, M},

    // --- SUBSCRIBE ---
    {"SUBSCRIBE without topics", pkt(0x82, {0, 1}), V3, P},
    {"v5 SUBSCRIBE without topics", pkt(0x82, {0, 1, 0}), V5, P},
    {"SUBSCRIBE packet id 0", pkt(0x82, {0, 0, 0, 1, 'a', 0}), V3, M},
    {"SUBSCRIBE empty body", {0x82, 0x00}, V3, M},
    {"SUBSCRIBE options reserved bits (3.1.1)", pkt(0x82, {0, 1, 0, 1, 'a', 0x04}), V3, M},
    {"SUBSCRIBE QoS 3 (3.1.1)", pkt(0x82, {0, 1, 0, 1, 'a', 0x03}), V3, M},
    {"SUBSCRIBE second topic bad options", pkt(0x82, {0, 1, 0, 1, 'a', 0, 0, 1, 'b', 0x80}), V3, M},
    {"SUBSCRIBE options missing", pkt(0x82, {0, 1, 0, 1, 'a'}), V3, M},
    {"SUBSCRIBE filter past end", pkt(0x82, {0, 1, 0, 4, 'a', 0}), V3, M},
    {"SUBSCRIBE filter invalid UTF-8", pkt(0x82, {0, 1, 0, 1, 0xFE, 0}), V3, M},
    {"SUBSCRIBE filter U+0000", pkt(0x82, {0, 1, 0, 1, 0, 0}), V3, M},
    {"v5 SUBSCRIBE options reserved bit 6", pkt(0x82, {0, 1, 0, 0, 1, 'a', 0x40}), V5, M},
    {"v5 SUBSCRIBE options reserved bit 7", pkt(0x82, {0, 1, 0, 0, 1, 'a', 0x81}), V5, M},
    {"v5 SUBSCRIBE QoS 3", pkt(0x82, {0, 1, 0, 0, 1, 'a', 0x03}), V5, P},
    {"v5 SUBSCRIBE retain handling 3", pkt(0x82, {0, 1, 0, 0, 1, 'a', 0x30}), V5, P},
    {"v5 SUBSCRIBE subscription id 0", pkt(0x82, {0, 1, 2, 0x0B, 0, 0, 1, 'a', 0}), V5, P},
    {"v5 SUBSCRIBE two subscription ids", pkt(0x82, {0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0}), V5, P},
    {"v5 SUBSCRIBE topic alias not allowed", pkt(0x82, {0, 1, 3, 0x23, 0, 1, 0, 1, 'a', 0}), V5, M},
    {"v5 SUBSCRIBE property length missing", pkt(0x82, {0, 1}), V5, M},

    // --- SUBACK ---
    {"SUBACK without return codes", pkt(0x90, {0, 1}), V3, P},
    {"SUBACK return code 3 (3.1.1)", pkt(0x90, {0, 1, 3}), V3, M},
    {"SUBACK return code 0x87 (3.1.1)", pkt(0x90, {0, 1, 0x87}), V3, M},
    {"SUBACK packet id 0", pkt(0x90, {0, 0, 1}), V3, M},
    {"v5 SUBACK reason 0x10", pkt(0x90, {0, 1, 0, 0x10}), V5, M},
    {"v5 SUBACK without reasons", pkt(0x90, {0, 1, 0}), V5, P},
    {"v5 SUBACK session expiry not allowed", pkt(0x90, {0, 1, 5, 0x11, 0, 0, 0, 0, 0}), V5, M},

    // --- UNSUBSCRIBE ---
    {"UNSUBSCRIBE without filters", pkt(0xA2, {0, 1}), V3, P},
    {"v5 UNSUBSCRIBE without filters", pkt(0xA2, {0, 1, 0}), V5, P},
    {"UNSUBSCRIBE packet id 0", pkt(0xA2, {0, 0, 0, 1, 'a'}), V3, M},
    {"UNSUBSCRIBE filter past end", pkt(0xA2, {0, 1, 0, 3, 'a'}), V3, M},
    {"UNSUBSCRIBE filter invalid UTF-8", pkt(0xA2, {0, 1, 0, 2, 0xC2, 'a'}), V3, M},
    {"UNSUBSCRIBE dangling length byte", pkt(0xA2, {0, 1, 0, 1, 'a', 0}), V3, M},
    {"v5 UNSUBSCRIBE subscription id not allowed", pkt(0xA2, {0, 1, 2, 0x0B, 1, 0, 1, 'a'}), V5, M},

    // --- UNSUBACK ---
    {"UNSUBACK trailing byte (3.1.1)", pkt(0xB0, {0, 1, 0}), V3, M},
    {"UNSUBACK packet id 0", pkt(0xB0, {0, 0}), V3, M},
    {"v5 UNSUBACK reason 0x10", pkt(0xB0, {0, 1, 0, 0x10}), V5, M},
    {"v5 UNSUBACK without reasons", pkt(0xB0, {0, 1, 0}), V5, P},
    {"v5 UNSUBACK without property length", pkt(0xB0, {0, 1}), V5, M},

    // --- PINGREQ / PINGRESP ---
    {"PINGREQ with a body", {0xC0, 0x01, 0x00}, V3, M},
    {"PINGRESP with a body", {0xD0, 0x01, 0x00}, V5, M},

    // --- DISCONNECT ---
    {"DISCONNECT with a body (3.1.1)", {0xE0, 0x01, 0x00}, V3, M},
    {"v5 DISCONNECT reason 0x01", {0xE0, 0x01, 0x01}, V5, M},
    {"v5 DISCONNECT reason 0x84", {0xE0, 0x01, 0x84}, V5, M},
    {"v5 DISCONNECT auth method not allowed", pkt(0xE0, {0, 4, 0x15, 0, 1, 'a'}), V5, M},
    {"v5 DISCONNECT duplicate session expiry",
     pkt(0xE0, {0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1}), V5, P},
    {"v5 DISCONNECT byte after properties", pkt(0xE0, {0, 0, 0}), V5, M},

    // --- AUTH ---
    {"v5 AUTH reason 0x87", {0xF0, 0x01, 0x87}, V5, M},
    {"v5 AUTH session expiry not allowed", pkt(0xF0, {0x18, 5, 0x11, 0, 0, 0, 1}), V5, M},
    {"v5 AUTH duplicate auth data", pkt(0xF0, {0x18, 6, 0x16, 0, 0, 0x16, 0, 0}), V5, P},
    {"v5 AUTH property length past end", pkt(0xF0, {0x18, 3}), V5, M},
};

TEST_CASE("malformed input table") {
    for (const Row& row : kRows) {
        INFO(row.name << " | " << hex(row.wire));
        Packet out;
        DecodeResult r = decode(Bytes(row.wire), row.version, 0, out);
        CHECK(r.status == DecodeStatus::Error);
        CHECK(int(r.reason) == int(row.reason));
        CHECK(r.what[0] != '\0');
    }
}

// The table rows are only worth anything if the same packets with the one
// fault removed decode fine; spot-check a few against their valid twins.
TEST_CASE("valid twins of table rows decode") {
    const std::pair<Buf, Version> ok[] = {
        {pkt(0x10, {MQTT4(0x02), 0, 0}), V3},
        {pkt(0x10, {MQTT4(0x2E), 0, 0, 0, 1, 't', 0, 0}), V3},  // will QoS 1 retained
        {pkt(0x10, {MQTT5(0x42), 0, 0, 0, 0, 1, 'p'}), V5},    // password alone is fine in v5
        {pkt(0x30, {0, 3, 'a', '/', 'b'}), V3},
        {pkt(0x30, {0, 0, 3, 0x23, 0, 1}), V5},
        {pkt(0x30, {0, 1, 't', 4, 0x0B, 1, 0x0B, 2}), V5},  // several ids in a PUBLISH
        {pkt(0x82, {0, 1, 0, 0, 1, 'a', 0x2E}), V5},        // RH 2, RAP, NL, QoS 2
        {pkt(0x82, {0, 1, 0, 1, 'a', 0x02}), V3},
        {pkt(0xA2, {0, 1, 0, 1, 'a'}), V3},
        {pkt(0xE0, {0x8E, 0}), V5},
        {pkt(0xF0, {0x19}), V5},  // AUTH with reason only
        {pkt(0x30, {0, 5, 't', 0xF0, 0x9F, 0x98, 0x80}), V3},  // 4-byte UTF-8 in topic
        {pkt(0x30, {0, 1, 't', 12, 0x26, 0, 1, 'k', 0, 0, 0x26, 0, 1, 'k', 0, 0}), V5},  // repeated user key
    };
    for (const auto& [wire, version] : ok) {
        INFO(hex(wire));
        Packet out;
        DecodeResult r = decode(Bytes(wire), version, 0, out);
        CHECK(r.status == DecodeStatus::Ok);
        CHECK(r.consumed == wire.size());
    }
}

TEST_CASE("oversize is refused from the fixed header alone") {
    // Only the fixed header of a ~2 MB PUBLISH is present.
    const Buf head = {0x30, 0x80, 0x80, 0x80, 0x01};
    FixedHeader hdr;
    DecodeResult r = peek_header(Bytes(head), 1024, hdr);
    CHECK(r.status == DecodeStatus::Error);
    CHECK(r.reason == rc::PacketTooLarge);
    Packet out;
    r = decode(Bytes(head), Version::V5, 1024, out);
    CHECK(r.status == DecodeStatus::Error);
    CHECK(r.reason == rc::PacketTooLarge);
    // Without a limit the same bytes are simply incomplete.
    r = decode(Bytes(head), Version::V5, 0, out);
    CHECK(r.status == DecodeStatus::Incomplete);
    // The limit counts the whole packet, fixed header included.
    const Buf ping = {0xC0, 0x00};
    CHECK(peek_header(Bytes(ping), 2, hdr).status == DecodeStatus::Ok);
    CHECK(peek_header(Bytes(ping), 1, hdr).reason == rc::PacketTooLarge);
    Buf publish = pkt(0x30, {0, 1, 't', 'x', 'y'});  // 7 bytes in all
    CHECK(decode(Bytes(publish), Version::V311, 7, out).status == DecodeStatus::Ok);
    CHECK(decode(Bytes(publish), Version::V311, 6, out).reason == rc::PacketTooLarge);
}

TEST_CASE("peek_header fills the header") {
    const Buf head = {0x82, 0xC1, 0x02, 0xAA};
    FixedHeader hdr;
    DecodeResult r = peek_header(Bytes(head), 0, hdr);
    REQUIRE(r.status == DecodeStatus::Ok);
    CHECK(r.consumed == 3);
    CHECK(hdr.type() == PacketType::Subscribe);
    CHECK(hdr.first_byte == 0x82);
    CHECK(hdr.remaining == 321);
    CHECK(hdr.header_len == 3);
    CHECK(hdr.total() == 324);
    // Largest legal remaining length.
    const Buf max = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
    REQUIRE(peek_header(Bytes(max), 0, hdr).status == DecodeStatus::Ok);
    CHECK(hdr.remaining == 268'435'455u);
    CHECK(hdr.header_len == 5);
    const Buf type0 = {0x00, 0x00};
    CHECK(peek_header(Bytes(type0), 0, hdr).reason == rc::MalformedPacket);
    const Buf five = {0x30, 0x80, 0x80, 0x80, 0x80};
    CHECK(peek_header(Bytes(five), 0, hdr).reason == rc::MalformedPacket);
}

}  // namespace
}  // namespace hato::mqtt::test
