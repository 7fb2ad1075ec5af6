// decode_publish and decode_ack: the broker's hot path decode of a packet
// whose fixed header was already read (and, for PUBLISH, a topic the caller
// has seen pass).
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "mqtt/codec.hpp"

using namespace hato::mqtt;

namespace {
std::vector<uint8_t> publish_bytes(std::string_view topic, Version v, uint8_t qos = 0) {
    PublishParts pp;
    pp.topic = topic;
    pp.qos = qos;
    pp.packet_id = qos ? 5 : 0;
    static const uint8_t payload[] = {'h', 'i'};
    pp.payload = Bytes(payload, 2);
    std::vector<uint8_t> out;
    encode_publish(pp, v, out);
    return out;
}

DecodeResult run(const std::vector<uint8_t>& bytes, Version v, Publish& out, std::string_view checked = {}) {
    FixedHeader hdr;
    REQUIRE(peek_header(bytes, 0, hdr).status == DecodeStatus::Ok);
    return decode_publish(bytes, hdr, v, out, checked);
}
}  // namespace

TEST_CASE("decode_publish agrees with decode") {
    for (Version v : {Version::V311, Version::V5}) {
        const auto bytes = publish_bytes("a/b", v, 1);
        Publish p;
        DecodeResult r = run(bytes, v, p);
        REQUIRE(r.status == DecodeStatus::Ok);
        CHECK(r.consumed == bytes.size());
        CHECK(p.topic == "a/b");
        CHECK(p.qos == 1);
        CHECK(p.packet_id == 5);
        CHECK(p.payload.size() == 2);
        Packet whole;
        REQUIRE(decode(bytes, v, 0, whole).status == DecodeStatus::Ok);
        CHECK(std::get<Publish>(whole).topic == p.topic);
    }
}

TEST_CASE("decode_publish still refuses what decode refuses") {
    Publish p;
    // Invalid UTF-8 (a lone continuation byte) and a wildcard.
    CHECK(run(publish_bytes("a/\x80", Version::V311), Version::V311, p).status == DecodeStatus::Error);
    CHECK(run(publish_bytes("a/+", Version::V311), Version::V311, p).status == DecodeStatus::Error);
    // A topic checked before does not vouch for another one of its length.
    CHECK(run(publish_bytes("a/#", Version::V311), Version::V311, p, "a/b").status == DecodeStatus::Error);
    CHECK(run(publish_bytes("a/\x80", Version::V311), Version::V311, p, "a/b").status == DecodeStatus::Error);
    CHECK(run(publish_bytes("a/b", Version::V311), Version::V311, p, "a/b").status == DecodeStatus::Ok);
    // Not a PUBLISH, and a PUBLISH cut short.
    const std::vector<uint8_t> ping{0xC0, 0x00};
    CHECK(run(ping, Version::V311, p).status == DecodeStatus::Error);
    auto bytes = publish_bytes("a/b", Version::V311);
    FixedHeader hdr;
    REQUIRE(peek_header(bytes, 0, hdr).status == DecodeStatus::Ok);
    bytes.pop_back();
    CHECK(decode_publish(bytes, hdr, Version::V311, p).status == DecodeStatus::Error);
}

TEST_CASE("decode_ack: the four acks, their flags and reasons") {
    auto run_ack = [](std::vector<uint8_t> bytes, Version v, Ack& a) {
        FixedHeader hdr;
        REQUIRE(peek_header(bytes, 0, hdr).status == DecodeStatus::Ok);
        return decode_ack(bytes, hdr, v, a);
    };
    Ack a;
    REQUIRE(run_ack({0x40, 0x02, 0x00, 0x07}, Version::V311, a).status == DecodeStatus::Ok);
    CHECK(a.type == PacketType::Puback);
    CHECK(a.packet_id == 7);
    a = Ack{};
    REQUIRE(run_ack({0x50, 0x03, 0x00, 0x08, 0x10}, Version::V5, a).status == DecodeStatus::Ok);
    CHECK(a.type == PacketType::Pubrec);
    CHECK(a.reason == 0x10);
    CHECK(run_ack({0x62, 0x02, 0x00, 0x09}, Version::V311, a).status == DecodeStatus::Ok);
    CHECK(a.type == PacketType::Pubrel);
    // PUBREL's flags must be 0010; PUBACK's 0000; packet id 0 is malformed.
    CHECK(run_ack({0x60, 0x02, 0x00, 0x09}, Version::V311, a).status == DecodeStatus::Error);
    CHECK(run_ack({0x41, 0x02, 0x00, 0x07}, Version::V311, a).status == DecodeStatus::Error);
    CHECK(run_ack({0x70, 0x02, 0x00, 0x00}, Version::V311, a).status == DecodeStatus::Error);
    // An invalid v5 reason, trailing bytes in v3, and a packet that is no ack.
    CHECK(run_ack({0x40, 0x03, 0x00, 0x07, 0x05}, Version::V5, a).status == DecodeStatus::Error);
    CHECK(run_ack({0x40, 0x03, 0x00, 0x07, 0x00}, Version::V311, a).status == DecodeStatus::Error);
    CHECK(run_ack({0xC0, 0x00}, Version::V311, a).status == DecodeStatus::Error);
}
