// MQTT over WebSockets (RFC 6455, MQTT 5.0 section 6) as a pure codec in
// the style of src/mqtt: bytes in; consumed, incomplete or an error out; no
// I/O. Two parts: the HTTP/1.1 upgrade request (parse_upgrade, whose request
// line and headers are read by net/http's parser) and the frame stream after
// it (FrameReader in, encode_frame out).
//
// Why our own codec and not a library: wslay (libwslay-dev) is in Debian but
// meta-openembedded has no recipe for it, so it would mean a new recipe in
// packaging/yocto and a new cross dependency for the arm64 build; libwebsockets
// brings its own event loop and TLS. The part MQTT needs (binary messages,
// ping/pong, close) is a few hundred lines, and payload bytes are unmasked
// straight into the MQTT stream without buffering whole frames.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hato::net::ws {

// ---- the upgrade request -------------------------------------------------

// The handshake must fit in this many bytes (request line and headers).
constexpr size_t kMaxHandshakeBytes = 8192;

struct UpgradeRules {
    std::string path = "/mqtt";                // "" accepts any path
    std::vector<std::string> allowed_origins;  // empty: any (or none)
};

struct Upgrade {
    enum class Status : uint8_t { Incomplete, Accepted, Rejected };
    Status status = Status::Incomplete;
    size_t consumed = 0;        // bytes of the request (Accepted)
    int http_status = 0;        // 101, or the error status (Rejected)
    std::string response;       // the HTTP response to send (Accepted or Rejected)
    std::string error;          // why it was rejected, for the log
    std::string subprotocol;    // "mqtt" or "mqttv3.1"
    std::string forwarded_for;  // X-Forwarded-For as sent (the caller decides whether to trust it)
};

// Parses the start of `input`. Incomplete while no blank line ends the
// headers (Rejected with 431 beyond kMaxHandshakeBytes). Bytes after the
// request (frames sent without waiting for the 101) are not consumed.
Upgrade parse_upgrade(std::string_view input, const UpgradeRules& rules);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string accept_key(std::string_view key);

// A complete HTTP error response that closes the connection.
std::string http_error(int status, std::string_view detail);

// ---- frames ----------------------------------------------------------------

enum class Opcode : uint8_t { Continuation = 0, Text = 1, Binary = 2, Close = 8, Ping = 9, Pong = 10 };

// Close status codes (RFC 6455 section 7.4.1).
namespace close_code {
constexpr uint16_t kNormal = 1000;
constexpr uint16_t kGoingAway = 1001;
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kUnsupportedData = 1003;
constexpr uint16_t kNoStatus = 1005;   // never sent: "the close frame had no code"
constexpr uint16_t kInvalidPayload = 1007;
}  // namespace close_code

// A server frame (never masked), FIN set, appended to `out`.
void encode_frame(Opcode op, std::span<const uint8_t> payload, std::vector<uint8_t>& out);
void encode_close(uint16_t code, std::string_view reason, std::vector<uint8_t>& out);

// Client frames in, the binary messages' payload bytes out as one stream
// (MQTT packets may span frames and messages, and one frame may carry several
// packets: the MQTT codec above sees only the byte stream). Control frames
// are answered here: the replies (pong, close) go to `reply`.
class FrameReader {
public:
    enum class Status : uint8_t {
        Open,        // everything consumed; more may follow
        PeerClosed,  // the client's close frame arrived; the echo is in `reply`
        Failed,      // a protocol error; the close frame with its code is in `reply`
    };

    // No bound on a frame's or message's size: payload is unmasked straight
    // into the MQTT stream, never held, and a frame may carry several MQTT
    // packets or part of one (MQTT-6.0.0-2); the MQTT decoder bounds each
    // packet by max_packet_size.
    FrameReader() = default;

    // Consumes all of `in` while Open. Once not Open, later calls do nothing
    // and return the same status.
    Status feed(std::span<const uint8_t> in, std::vector<uint8_t>& payload, std::vector<uint8_t>& reply);

    // Off: pings get no pong (RFC 6455 5.5.3 lets a pong answer only the
    // latest ping). The caller turns it off while the client's output is
    // backed up, so a client that sends pings and never reads cannot make
    // the pongs pile up without bound.
    void answer_pings(bool on) { answer_pings_ = on; }

    uint16_t close_code() const { return close_code_; }  // the code sent or received
    const std::string& error() const { return error_; }  // Failed: why

private:
    Status fail(uint16_t code, std::string why, std::vector<uint8_t>& reply);
    Status start_frame(std::vector<uint8_t>& reply);
    Status end_control(std::vector<uint8_t>& reply);

    bool answer_pings_ = true;
    Status status_ = Status::Open;
    uint16_t close_code_ = 0;
    std::string error_;

    // The frame being read: its header, then its payload.
    uint8_t header_[14] = {};
    size_t header_have_ = 0;
    bool in_payload_ = false;
    Opcode op_ = Opcode::Binary;
    bool fin_ = false;
    uint8_t mask_[4] = {};
    uint64_t remaining_ = 0;   // payload bytes still to come
    uint64_t mask_pos_ = 0;    // payload bytes read so far (mask index)
    std::vector<uint8_t> control_;  // a control frame's payload (<= 125 bytes)

    bool in_message_ = false;  // a fragmented binary message is open
};

}  // namespace hato::net::ws
