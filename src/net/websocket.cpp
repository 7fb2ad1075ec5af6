#include "net/websocket.hpp"

#include "net/http.hpp"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <algorithm>
#include <cstring>

namespace hato::net::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// RFC 6455 4.1: the opening handshake is a GET of HTTP/1.1, origin-form.
constexpr http::RequestRules kUpgradeRequest{.head = false, .http11_only = true, .origin_form_only = true};

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Calls fn(token) for each element of a comma-separated header value.
template <typename Fn>
void for_each_token(std::string_view value, Fn fn) {
    while (true) {
        size_t comma = value.find(',');
        std::string_view t = trim(value.substr(0, comma));
        if (!t.empty()) fn(t);
        if (comma == std::string_view::npos) return;
        value.remove_prefix(comma + 1);
    }
}

// Every value of the header `name` (a header may come on several lines).
std::vector<std::string_view> values_of(const http::Request& req, std::string_view name) {
    std::vector<std::string_view> out;
    for (const auto& [n, v] : req.headers)
        if (iequals(n, name)) out.push_back(v);
    return out;
}

bool has_token(const http::Request& req, std::string_view name, std::string_view token) {
    bool found = false;
    for (std::string_view v : values_of(req, name))
        for_each_token(v, [&](std::string_view t) { found |= iequals(t, token); });
    return found;
}

// A Sec-WebSocket-Key is the base64 of 16 bytes: 22 characters and "==".
bool valid_key(std::string_view k) {
    if (k.size() != 24 || k.substr(22) != "==") return false;
    for (size_t i = 0; i < 22; ++i) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return false;
    }
    return true;
}

const char* reason_phrase(int status) {
    const char* phrase = http::reason_phrase(status);
    return *phrase ? phrase : "Error";
}

Upgrade reject(int status, std::string why) {
    Upgrade u;
    u.status = Upgrade::Status::Rejected;
    u.http_status = status;
    u.response = http_error(status, why);
    u.error = std::to_string(status) + " " + reason_phrase(status) + ": " + why;
    return u;
}

std::string base64(const uint8_t* data, size_t n) {
#ifdef WOLFSSL_BASE64_ENCODE
    std::string out(((n + 2) / 3) * 4 + 1, '\0');
    word32 len = static_cast<word32>(out.size());
    if (Base64_Encode_NoNl(data, static_cast<word32>(n), reinterpret_cast<byte*>(out.data()), &len) != 0) return {};
    out.resize(len);
    return out;
#else
    // wolfSSL built without its base64 encoder (a minimal embedded build).
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = uint32_t(data[i]) << 16;
        if (i + 1 < n) v |= uint32_t(data[i + 1]) << 8;
        if (i + 2 < n) v |= data[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
        out += i + 2 < n ? kAlphabet[v & 63] : '=';
    }
    return out;
#endif
}

// RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::span<const uint8_t> s) {
    size_t i = 0;
    while (i < s.size()) {
        uint8_t c = s[i];
        size_t n = 0;
        uint32_t cp = 0, min = 0;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        for (size_t k = 1; k <= n; ++k) {
            if (i + k >= s.size() || (s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

// Codes a peer may send in a close frame (RFC 6455 7.4, IANA registry).
bool valid_close_code(uint16_t code) {
    if (code >= 3000 && code <= 4999) return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

}  // namespace

std::string http_error(int status, std::string_view detail) {
    std::string body = std::string(detail) + "\n";
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
    if (status == 426) r += "Sec-WebSocket-Version: 13\r\n";
    if (status == 405) r += "Allow: GET\r\n";
    r += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
    return r;
}

std::string accept_key(std::string_view key) {
    std::string in = std::string(key) + std::string(kGuid);
    uint8_t digest[20];
    if (wc_ShaHash(reinterpret_cast<const byte*>(in.data()), static_cast<word32>(in.size()), digest) != 0) return {};
    return base64(digest, sizeof digest);
}

Upgrade parse_upgrade(std::string_view input, const UpgradeRules& rules) {
    // Not even the start of an HTTP method (an MQTT CONNECT on the wrong port,
    // a TLS hello): refused at once rather than after the timeout.
    if (!input.empty() && !(input[0] >= 'A' && input[0] <= 'Z')) return reject(400, "not an HTTP request");
    http::Request req;
    http::ParseResult head = http::parse_request(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(input.data()), input.size()), req,
        kMaxHandshakeBytes, kUpgradeRequest);
    if (head.status == http::ParseStatus::Incomplete) return {};
    if (head.status == http::ParseStatus::Error) return reject(head.error_code, head.error);

    if (!rules.path.empty() && req.path() != rules.path) return reject(404, "no WebSocket endpoint at this path");
    if (!has_token(req, "Upgrade", "websocket")) return reject(400, "Upgrade: websocket required");
    if (!has_token(req, "Connection", "upgrade")) return reject(400, "Connection: Upgrade required");
    std::vector<std::string_view> versions = values_of(req, "Sec-WebSocket-Version");
    if (versions.size() != 1 || versions[0] != "13") return reject(426, "Sec-WebSocket-Version 13 required");
    std::vector<std::string_view> keys = values_of(req, "Sec-WebSocket-Key");
    if (keys.size() != 1 || !valid_key(keys[0])) return reject(400, "invalid Sec-WebSocket-Key");

    if (!rules.allowed_origins.empty()) {
        std::vector<std::string_view> origins = values_of(req, "Origin");
        bool allowed = origins.size() == 1 &&
                       std::any_of(rules.allowed_origins.begin(), rules.allowed_origins.end(),
                                   [&](const std::string& o) { return iequals(o, origins[0]); });
        if (!allowed) return reject(403, "origin not allowed");
    }

    bool mqtt = false, mqtt31 = false;
    for (std::string_view v : values_of(req, "Sec-WebSocket-Protocol"))
        for_each_token(v, [&](std::string_view t) {
            mqtt |= t == "mqtt";
            mqtt31 |= t == "mqttv3.1";
        });
    if (!mqtt && !mqtt31) return reject(400, "the subprotocol list must offer mqtt");

    Upgrade u;
    u.status = Upgrade::Status::Accepted;
    u.consumed = head.consumed;
    u.http_status = 101;
    u.subprotocol = mqtt ? "mqtt" : "mqttv3.1";
    std::vector<std::string_view> fwd = values_of(req, "X-Forwarded-For");
    for (std::string_view f : fwd) u.forwarded_for += (u.forwarded_for.empty() ? "" : ", ") + std::string(f);
    u.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: " + accept_key(keys[0]) +
                 "\r\nSec-WebSocket-Protocol: " + u.subprotocol + "\r\n\r\n";
    return u;
}

void encode_frame(Opcode op, std::span<const uint8_t> payload, std::vector<uint8_t>& out) {
    out.push_back(uint8_t(0x80 | uint8_t(op)));
    uint64_t n = payload.size();
    if (n < 126) {
        out.push_back(uint8_t(n));
    } else if (n <= 0xFFFF) {
        out.push_back(126);
        out.push_back(uint8_t(n >> 8));
        out.push_back(uint8_t(n));
    } else {
        out.push_back(127);
        for (int shift = 56; shift >= 0; shift -= 8) out.push_back(uint8_t(n >> shift));
    }
    out.insert(out.end(), payload.begin(), payload.end());
}

void encode_close(uint16_t code, std::string_view reason, std::vector<uint8_t>& out) {
    uint8_t body[125];
    body[0] = uint8_t(code >> 8);
    body[1] = uint8_t(code);
    size_t n = std::min<size_t>(reason.size(), sizeof body - 2);
    if (n) std::memcpy(body + 2, reason.data(), n);
    encode_frame(Opcode::Close, std::span<const uint8_t>(body, n + 2), out);
}

FrameReader::Status FrameReader::fail(uint16_t code, std::string why, std::vector<uint8_t>& reply) {
    encode_close(code, why, reply);
    close_code_ = code;
    error_ = std::move(why);
    status_ = Status::Failed;
    return status_;
}

// Called once the header is complete: checks it and sets up the payload.
FrameReader::Status FrameReader::start_frame(std::vector<uint8_t>& reply) {
    uint8_t len7 = header_[1] & 0x7F;
    uint64_t len = len7;
    size_t pos = 2;
    if (len7 == 126) {
        len = (uint64_t(header_[2]) << 8) | header_[3];
        pos = 4;
    } else if (len7 == 127) {
        len = 0;
        for (size_t i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
        if (len >> 63) return fail(close_code::kProtocolError, "invalid payload length", reply);
        pos = 10;
    }
    std::memcpy(mask_, header_ + pos, 4);
    remaining_ = len;
    mask_pos_ = 0;
    in_payload_ = true;
    control_.clear();
    if (op_ == Opcode::Binary || op_ == Opcode::Continuation) in_message_ = !fin_;
    return Status::Open;
}

FrameReader::Status FrameReader::end_control(std::vector<uint8_t>& reply) {
    if (op_ == Opcode::Ping) {
        if (answer_pings_) encode_frame(Opcode::Pong, control_, reply);
        return Status::Open;
    }
    if (op_ != Opcode::Close) return Status::Open;  // a pong: nothing to do
    if (control_.empty()) {
        close_code_ = close_code::kNoStatus;
        encode_frame(Opcode::Close, {}, reply);
    } else {
        if (control_.size() < 2) return fail(close_code::kProtocolError, "close frame of 1 byte", reply);
        uint16_t code = uint16_t((control_[0] << 8) | control_[1]);
        if (!valid_close_code(code)) return fail(close_code::kProtocolError, "invalid close code", reply);
        if (!valid_utf8(std::span<const uint8_t>(control_).subspan(2)))
            return fail(close_code::kInvalidPayload, "close reason is not UTF-8", reply);
        close_code_ = code;
        encode_close(code, {}, reply);
    }
    status_ = Status::PeerClosed;
    return status_;
}

FrameReader::Status FrameReader::feed(std::span<const uint8_t> in, std::vector<uint8_t>& payload,
                                      std::vector<uint8_t>& reply) {
    size_t i = 0;
    while (status_ == Status::Open && i < in.size()) {
        if (!in_payload_) {
            header_[header_have_++] = in[i++];
            if (header_have_ == 2) {
                // Everything but the length is known: fail fast.
                fin_ = (header_[0] & 0x80) != 0;
                uint8_t op = header_[0] & 0x0F;
                op_ = static_cast<Opcode>(op);
                bool control = (op & 0x08) != 0;
                if (header_[0] & 0x70) return fail(close_code::kProtocolError, "reserved bits set", reply);
                if (op == 1) return fail(close_code::kUnsupportedData, "text frames are not MQTT", reply);
                if (op != 0 && op != 2 && op != 8 && op != 9 && op != 10)
                    return fail(close_code::kProtocolError, "unknown opcode", reply);
                if (!(header_[1] & 0x80)) return fail(close_code::kProtocolError, "client frame not masked", reply);
                if (control && (!fin_ || (header_[1] & 0x7F) > 125))
                    return fail(close_code::kProtocolError, "fragmented or oversized control frame", reply);
                if (op == 0 && !in_message_) return fail(close_code::kProtocolError, "continuation without a message", reply);
                if (op == 2 && in_message_) return fail(close_code::kProtocolError, "new message inside a fragmented one", reply);
            }
            if (header_have_ < 2) continue;
            uint8_t len7 = header_[1] & 0x7F;
            size_t need = 2 + 4 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            if (header_have_ < need) continue;
            if (start_frame(reply) != Status::Open) return status_;
        } else {
            size_t n = size_t(std::min<uint64_t>(remaining_, in.size() - i));
            std::vector<uint8_t>& dst = (uint8_t(op_) & 0x08) ? control_ : payload;
            size_t base = dst.size();
            dst.resize(base + n);
            for (size_t k = 0; k < n; ++k) dst[base + k] = in[i + k] ^ mask_[(mask_pos_ + k) & 3];
            mask_pos_ += n;
            remaining_ -= n;
            i += n;
        }
        if (in_payload_ && remaining_ == 0) {
            in_payload_ = false;
            header_have_ = 0;
            if ((uint8_t(op_) & 0x08) && end_control(reply) != Status::Open) return status_;
        }
    }
    return status_;
}

}  // namespace hato::net::ws
