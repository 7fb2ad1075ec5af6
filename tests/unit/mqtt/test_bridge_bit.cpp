// Mosquitto's bridge bit: protocol level 0x84 (v3.1.1) or 0x83 (v3.1).
#include "helpers.hpp"

namespace hato::mqtt::test {

TEST_CASE("the bridge bit on v3.1.1 and v3.1 is accepted and reported") {
    struct Row { Buf wire; Version version; bool bridge; };
    const Row rows[] = {
        {bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x84, 0x02, 0x00, 0x3c, 0x00, 0x00}), Version::V311, true},
        {bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}), Version::V311, false},
        {bytes({0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x83, 0x02, 0x00, 0x3c, 0x00, 0x00}),
         Version::V31, true},
    };
    for (const Row& row : rows) {
        INFO(hex(row.wire));
        Packet p;
        DecodeResult r = decode(Bytes(row.wire), Version::V311, 0, p);
        REQUIRE(r.status == DecodeStatus::Ok);
        REQUIRE(std::holds_alternative<Connect>(p));
        CHECK(std::get<Connect>(p).version == row.version);
        CHECK(std::get<Connect>(p).bridge == row.bridge);
    }
}

TEST_CASE("the bridge bit is refused where it does not belong") {
    const Buf rows[] = {
        bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x85, 0x02, 0x00, 0x3c, 0x00, 0x00}),   // v5
        bytes({0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x83, 0x02, 0x00, 0x3c, 0x00, 0x00}),   // v3.1 level, v3.1.1 name
        bytes({0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x84, 0x02, 0x00, 0x3c, 0x00, 0x00}),
    };
    for (const Buf& wire : rows) {
        INFO(hex(wire));
        Packet p;
        DecodeResult r = decode(Bytes(wire), Version::V311, 0, p);
        CHECK(r.status == DecodeStatus::Error);
        CHECK(r.reason == rc::UnsupportedProtocolVersion);
    }
}

}  // namespace hato::mqtt::test
