// PUBREL's fixed-header flags depend on the version: MQTT 3.1 lets a
// re-sent PUBREL carry DUP (0x0A); 3.1.1 and 5.0 require exactly 0x02.
#include <doctest/doctest.h>

#include <vector>

#include "mqtt/codec.hpp"

using namespace hato::mqtt;

TEST_CASE("PUBREL with DUP: accepted for MQTT 3.1 only") {
    const std::vector<uint8_t> dup = {0x6A, 0x02, 0x00, 0x07};
    const std::vector<uint8_t> plain = {0x62, 0x02, 0x00, 0x07};
    for (Version v : {Version::V31, Version::V311, Version::V5}) {
        CAPTURE(int(v));
        Packet p;
        CHECK(decode(plain, v, 0, p).status == DecodeStatus::Ok);
        DecodeResult r = decode(dup, v, 0, p);
        if (v == Version::V31) {
            REQUIRE(r.status == DecodeStatus::Ok);
            const Ack& a = std::get<Ack>(p);
            CHECK(a.type == PacketType::Pubrel);
            CHECK(a.packet_id == 7);
        } else {
            CHECK(r.status == DecodeStatus::Error);
            CHECK(r.reason == rc::MalformedPacket);
        }
    }
    // Other flag bits stay invalid in 3.1 too.
    Packet p;
    CHECK(decode(std::vector<uint8_t>{0x6B, 0x02, 0x00, 0x07}, Version::V31, 0, p).status == DecodeStatus::Error);
    CHECK(decode(std::vector<uint8_t>{0x60, 0x02, 0x00, 0x07}, Version::V31, 0, p).status == DecodeStatus::Error);
}

// MQTT 3.1 sent SUBSCRIBE and UNSUBSCRIBE at QoS 1 too, DUP set on a resend.
TEST_CASE("SUBSCRIBE and UNSUBSCRIBE with DUP: accepted for MQTT 3.1 only") {
    const std::vector<uint8_t> sub = {0x8A, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x01};
    const std::vector<uint8_t> unsub = {0xAA, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'};
    for (Version v : {Version::V31, Version::V311}) {
        CAPTURE(int(v));
        Packet p;
        const DecodeStatus want = v == Version::V31 ? DecodeStatus::Ok : DecodeStatus::Error;
        CHECK(decode(sub, v, 0, p).status == want);
        if (v == Version::V31) CHECK(std::get<Subscribe>(p).topics.at(0).filter == "a");
        CHECK(decode(unsub, v, 0, p).status == want);
    }
}
