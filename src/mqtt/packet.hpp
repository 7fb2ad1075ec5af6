// MQTT control packets as plain structs. Decoded packets hold *views* into the
// input buffer (string_view / span): they are valid only until that buffer is
// consumed. Whoever keeps something (the broker) copies it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace hato::mqtt {

using Bytes = std::span<const uint8_t>;

enum class PacketType : uint8_t {
    Connect = 1, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp,
    Subscribe, Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth
};

// Protocol level byte of CONNECT.
enum class Version : uint8_t { V31 = 3, V311 = 4, V5 = 5 };

// MQTT 5.0 reason codes (2.4). v3 CONNACK return codes are mapped by the encoder.
namespace rc {
constexpr uint8_t Success = 0x00, NormalDisconnection = 0x00, GrantedQoS0 = 0x00,
    GrantedQoS1 = 0x01, GrantedQoS2 = 0x02, DisconnectWithWill = 0x04,
    NoMatchingSubscribers = 0x10, NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18, ReAuthenticate = 0x19,
    UnspecifiedError = 0x80, MalformedPacket = 0x81, ProtocolError = 0x82,
    ImplementationSpecificError = 0x83, UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85, BadUserNameOrPassword = 0x86, NotAuthorized = 0x87,
    ServerUnavailable = 0x88, ServerBusy = 0x89, Banned = 0x8A, ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C, KeepAliveTimeout = 0x8D, SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F, TopicNameInvalid = 0x90, PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92, ReceiveMaximumExceeded = 0x93, TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95, MessageRateTooHigh = 0x96, QuotaExceeded = 0x97,
    AdministrativeAction = 0x98, PayloadFormatInvalid = 0x99, RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B, UseAnotherServer = 0x9C, ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E, ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0, SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2;
}  // namespace rc

struct UserProperty {
    std::string_view key;
    std::string_view value;
};

// Every MQTT 5.0 property (3.x.2.3). Absent = std::nullopt / empty vector.
// The codec rejects a property that is not allowed on the packet it appears in,
// and any duplicate of a property that may appear only once.
struct Properties {
    std::optional<uint8_t> payload_format;            // 0x01
    std::optional<uint32_t> message_expiry;           // 0x02
    std::optional<std::string_view> content_type;     // 0x03
    std::optional<std::string_view> response_topic;   // 0x08
    std::optional<Bytes> correlation_data;            // 0x09
    std::vector<uint32_t> subscription_ids;           // 0x0B (varint; several only in server PUBLISH)
    std::optional<uint32_t> session_expiry;           // 0x11
    std::optional<std::string_view> assigned_client_id;  // 0x12
    std::optional<uint16_t> server_keep_alive;        // 0x13
    std::optional<std::string_view> auth_method;      // 0x15
    std::optional<Bytes> auth_data;                   // 0x16
    std::optional<uint8_t> request_problem_info;      // 0x17
    std::optional<uint32_t> will_delay;               // 0x18
    std::optional<uint8_t> request_response_info;     // 0x19
    std::optional<std::string_view> response_info;    // 0x1A
    std::optional<std::string_view> server_reference; // 0x1C
    std::optional<std::string_view> reason_string;    // 0x1F
    std::optional<uint16_t> receive_maximum;          // 0x21
    std::optional<uint16_t> topic_alias_maximum;      // 0x22
    std::optional<uint16_t> topic_alias;              // 0x23
    std::optional<uint8_t> maximum_qos;               // 0x24
    std::optional<uint8_t> retain_available;          // 0x25
    std::vector<UserProperty> user;                   // 0x26, order preserved
    std::optional<uint32_t> maximum_packet_size;      // 0x27
    std::optional<uint8_t> wildcard_sub_available;    // 0x28
    std::optional<uint8_t> sub_id_available;          // 0x29
    std::optional<uint8_t> shared_sub_available;      // 0x2A
};

struct Connect {
    Version version = Version::V311;
    bool clean_start = true;          // "clean session" in v3
    uint16_t keep_alive = 0;
    Properties props;                 // v5 only
    std::string_view client_id;
    bool will_flag = false;
    uint8_t will_qos = 0;
    bool will_retain = false;
    Properties will_props;            // v5 only
    std::string_view will_topic;
    Bytes will_payload;
    std::optional<std::string_view> username;
    std::optional<Bytes> password;
    // v3.1/v3.1.1 with Mosquitto's bridge bit (protocol level 0x83/0x84):
    // the peer is a broker's bridge (no local echo, retain as published).
    // Decoded only; the encoder writes the plain level.
    bool bridge = false;
};

struct Connack {
    bool session_present = false;
    uint8_t reason = rc::Success;     // v5 reason code; encoder maps to v3 return code
    Properties props;
};

struct Publish {
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::string_view topic;           // may be empty in v5 when a topic alias is used
    uint16_t packet_id = 0;           // 0 for QoS 0
    Properties props;
    Bytes payload;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP share one shape.
struct Ack {
    PacketType type = PacketType::Puback;
    uint16_t packet_id = 0;
    uint8_t reason = rc::Success;
    Properties props;
};

struct SubscribeTopic {
    std::string_view filter;
    uint8_t qos = 0;
    bool no_local = false;            // v5
    bool retain_as_published = false; // v5
    uint8_t retain_handling = 0;      // v5: 0, 1 or 2
};

struct Subscribe {
    uint16_t packet_id = 0;
    Properties props;
    std::vector<SubscribeTopic> topics;
};

struct Suback {
    uint16_t packet_id = 0;
    Properties props;
    std::vector<uint8_t> reasons;     // granted QoS or v5 reason; v3.1.1 failure is 0x80
};

struct Unsubscribe {
    uint16_t packet_id = 0;
    Properties props;
    std::vector<std::string_view> filters;
};

struct Unsuback {
    uint16_t packet_id = 0;
    Properties props;
    std::vector<uint8_t> reasons;     // v5 only; v3 UNSUBACK has no payload
};

struct Pingreq {};
struct Pingresp {};

struct Disconnect {
    uint8_t reason = rc::NormalDisconnection;
    Properties props;
};

struct Auth {
    uint8_t reason = rc::Success;
    Properties props;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

}  // namespace hato::mqtt
