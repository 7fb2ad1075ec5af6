// Shared helpers for the codec tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/codec.hpp"

namespace hato::mqtt::test {

using Buf = std::vector<uint8_t>;

inline Buf bytes(std::initializer_list<int> v) {
    Buf b;
    for (int x : v) b.push_back(uint8_t(x));
    return b;
}

inline Bytes span_of(std::string_view s) {
    return Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline std::string hex(const Buf& b) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (uint8_t x : b) {
        s += digits[x >> 4];
        s += digits[x & 15];
        s += ' ';
    }
    return s;
}

inline Buf encode_one(const Packet& p, Version v) {
    Buf out;
    encode(p, v, out);
    return out;
}

// Decodes a buffer that must hold exactly one valid packet.
inline Packet decode_ok(const Buf& wire, Version v) {
    Packet p;
    DecodeResult r = decode(Bytes(wire), v, 0, p);
    INFO("bytes: " << hex(wire) << " what: " << r.what);
    REQUIRE(r.status == DecodeStatus::Ok);
    REQUIRE(r.consumed == wire.size());
    return p;
}

// Every property that may appear at each place, with distinctive values.
// Strings are static so views stay valid.
inline void add_user(Properties& p) {
    p.user.push_back({"k1", "v1"});
    p.user.push_back({"k1", "second value for same key"});
    p.user.push_back({"", ""});
}

inline Properties message_props() {  // the PUBLISH / will message set
    Properties p;
    p.payload_format = 1;
    p.message_expiry = 0x01020304;
    p.content_type = "text/plain";
    p.response_topic = "reply/here";
    p.correlation_data = span_of(std::string_view("corr\0\xff", 6));
    add_user(p);
    return p;
}

inline Properties publish_props() {
    Properties p = message_props();
    p.subscription_ids = {1, 127, 128, 268'435'455};
    p.topic_alias = 7;
    return p;
}

inline Properties will_props() {
    Properties p = message_props();
    p.will_delay = 60;
    return p;
}

inline Properties connect_props() {
    Properties p;
    p.session_expiry = 0xFFFFFFFF;
    p.auth_method = "SCRAM-SHA-1";
    p.auth_data = span_of("client-first");
    p.request_problem_info = 0;
    p.request_response_info = 1;
    p.receive_maximum = 20;
    p.topic_alias_maximum = 10;
    p.maximum_packet_size = 1 << 20;
    add_user(p);
    return p;
}

inline Properties connack_props() {
    Properties p;
    p.session_expiry = 3600;
    p.assigned_client_id = "auto-1234";
    p.server_keep_alive = 30;
    p.auth_method = "SCRAM-SHA-1";
    p.auth_data = span_of("server-final");
    p.response_info = "resp/";
    p.server_reference = "other.example:1883";
    p.reason_string = "because";
    p.receive_maximum = 100;
    p.topic_alias_maximum = 5;
    p.maximum_qos = 1;
    p.retain_available = 1;
    p.maximum_packet_size = 65536;
    p.wildcard_sub_available = 1;
    p.sub_id_available = 0;
    p.shared_sub_available = 1;
    add_user(p);
    return p;
}

inline Properties reason_props() {  // acks, SUBACK, UNSUBACK
    Properties p;
    p.reason_string = "a reason";
    add_user(p);
    return p;
}

inline Properties disconnect_props() {
    Properties p = reason_props();
    p.session_expiry = 0;
    p.server_reference = "elsewhere";
    return p;
}

inline Properties auth_props() {
    Properties p = reason_props();
    p.auth_method = "SCRAM-SHA-1";
    p.auth_data = Bytes();  // present but empty
    return p;
}

}  // namespace hato::mqtt::test
