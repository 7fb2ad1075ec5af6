// Modbus requests encoded and responses decoded, TCP and RTU framing:
// consumed / incomplete / error, exceptions as values.
#include <doctest/doctest.h>

#include "modbus/codec.hpp"

using namespace hato::modbus;
using Bytes = std::vector<uint8_t>;

namespace {
Request read(uint8_t f, uint16_t a, uint16_t n) {
    Request r;
    r.function = f;
    r.address = a;
    r.count = n;
    return r;
}
}  // namespace

TEST_CASE("CRC16 of the specification's example") {
    // Read holding registers, unit 1, address 0, 10 registers: CRC C5 CD.
    Bytes b{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
    CHECK(crc16(b) == 0xCDC5);
}

TEST_CASE("read requests, TCP and RTU") {
    Bytes out;
    encode_tcp(read(fn::ReadHoldingRegisters, 0x006B, 3), 0x1234, 17, out);
    CHECK(out == Bytes{0x12, 0x34, 0, 0, 0, 6, 17, 0x03, 0x00, 0x6B, 0x00, 0x03});
    out.clear();
    encode_rtu(read(fn::ReadHoldingRegisters, 0, 10), 1, out);
    CHECK(out == Bytes{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD});
    out.clear();
    encode_pdu(read(fn::ReadCoils, 19, 19), out);
    CHECK(out == Bytes{0x01, 0x00, 0x13, 0x00, 0x13});
}

TEST_CASE("write requests: 05, 06, 15, 16") {
    Request r;
    Bytes out;
    r.function = fn::WriteSingleCoil;
    r.address = 172;
    r.bits = {1};
    encode_pdu(r, out);
    CHECK(out == Bytes{0x05, 0x00, 0xAC, 0xFF, 0x00});
    out.clear();
    r = {};
    r.function = fn::WriteSingleRegister;
    r.address = 1;
    r.registers = {3};
    encode_pdu(r, out);
    CHECK(out == Bytes{0x06, 0x00, 0x01, 0x00, 0x03});
    out.clear();
    r = {};
    r.function = fn::WriteMultipleCoils;
    r.address = 19;
    r.bits = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    encode_pdu(r, out);
    CHECK(out == Bytes{0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01});
    out.clear();
    r = {};
    r.function = fn::WriteMultipleRegisters;
    r.address = 1;
    r.registers = {0x000A, 0x0102};
    encode_pdu(r, out);
    CHECK(out == Bytes{0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02});
}

TEST_CASE("request limits") {
    CHECK(valid(read(fn::ReadHoldingRegisters, 0, 125)));
    CHECK_FALSE(valid(read(fn::ReadHoldingRegisters, 0, 126)));
    CHECK_FALSE(valid(read(fn::ReadHoldingRegisters, 0, 0)));
    CHECK_FALSE(valid(read(fn::ReadHoldingRegisters, 65530, 10)));
    CHECK(valid(read(fn::ReadCoils, 0, 2000)));
    CHECK_FALSE(valid(read(fn::ReadCoils, 0, 2001)));
    Request w;
    w.function = fn::WriteMultipleRegisters;
    CHECK_FALSE(valid(w));
    w.registers.assign(124, 0);
    CHECK_FALSE(valid(w));
    w.registers.assign(123, 0);
    CHECK(valid(w));
}

TEST_CASE("TCP response: incomplete, consumed, stale transaction, exception") {
    const Request req = read(fn::ReadHoldingRegisters, 0x6B, 3);
    Bytes in{0x12, 0x34, 0, 0, 0, 9, 17, 0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64, 0xEE};
    Response r;
    for (size_t n = 0; n < 15; ++n)
        CHECK(decode_tcp({in.data(), n}, req, 0x1234, 17, r).status == Status::Incomplete);
    Decoded d = decode_tcp(in, req, 0x1234, 17, r);
    CHECK(d.status == Status::Consumed);
    CHECK(d.used == 15);
    CHECK(r.transaction == 0x1234);
    CHECK(r.unit == 17);
    CHECK(r.registers == std::vector<uint16_t>{0x022B, 0, 0x64});

    Bytes ex{0, 1, 0, 0, 0, 3, 1, 0x83, 0x02};
    d = decode_tcp(ex, req, 1, 1, r);
    CHECK(d.status == Status::Consumed);
    CHECK(r.exception == 2);
    CHECK(exception_text(2) == "Modbus exception 02 (illegal data address)");

    Bytes bad{0, 1, 0, 7, 0, 3, 1, 0x83, 0x02};
    CHECK(decode_tcp(bad, req, 1, 1, r).status == Status::Error);
    Bytes short_read{0, 1, 0, 0, 0, 5, 1, 0x03, 0x02, 0, 1};   // one register for three
    CHECK(decode_tcp(short_read, req, 1, 1, r).status == Status::Error);
    Bytes other_fn{0, 1, 0, 0, 0, 5, 1, 0x04, 0x02, 0, 1};
    CHECK(decode_tcp(other_fn, req, 1, 1, r).status == Status::Error);
}

// A device answering with another transaction or unit was taken for a
// silent one (the timeout's report said "no answer"); a late answer to an
// earlier request of another function broke the connection as malformed.
TEST_CASE("TCP response of another transaction or unit: skipped whole, and said which") {
    const Request req = read(fn::ReadHoldingRegisters, 0x6B, 3);
    Response r;
    Bytes late_other_fn{0, 6, 0, 0, 0, 5, 1, 0x04, 0x02, 0, 1};   // transaction 6, a read of one input register
    Decoded d = decode_tcp(late_other_fn, req, 7, 1, r);
    CHECK(d.status == Status::Skipped);
    CHECK(d.used == late_other_fn.size());
    CHECK(d.error == "an answer to transaction 6, not 7");
    Bytes other_unit{0, 7, 0, 0, 0, 3, 9, 0x83, 0x02};
    d = decode_tcp(other_unit, req, 7, 1, r);
    CHECK(d.status == Status::Skipped);
    CHECK(d.error == "an answer from unit 9, not 1");
    CHECK(decode_tcp({other_unit.data(), 8}, req, 7, 1, r).status == Status::Incomplete);
}

TEST_CASE("RTU response: bits, CRC, unit, exception, write echo") {
    const Request req = read(fn::ReadCoils, 19, 19);
    Bytes in{0x01, 0x01, 0x03, 0xCD, 0x6B, 0x05};
    const uint16_t crc = crc16(in);
    in.push_back(uint8_t(crc));
    in.push_back(uint8_t(crc >> 8));
    Response r;
    for (size_t n = 0; n < in.size(); ++n) CHECK(decode_rtu({in.data(), n}, req, 1, r).status == Status::Incomplete);
    Decoded d = decode_rtu(in, req, 1, r);
    REQUIRE(d.status == Status::Consumed);
    CHECK(d.used == in.size());
    REQUIRE(r.bits.size() == 19);
    CHECK(r.bits[0] == 1);
    CHECK(r.bits[1] == 0);
    CHECK(r.bits[2] == 1);
    CHECK(r.bits[18] == 1);
    CHECK(decode_rtu(in, req, 2, r).status == Status::Error);   // another unit
    in[3] ^= 1;
    d = decode_rtu(in, req, 1, r);
    CHECK(d.status == Status::Error);
    CHECK(d.error == "CRC mismatch");

    Bytes ex{0x01, 0x81, 0x04};
    uint16_t c = crc16(ex);
    ex.push_back(uint8_t(c));
    ex.push_back(uint8_t(c >> 8));
    d = decode_rtu(ex, req, 1, r);
    CHECK(d.status == Status::Consumed);
    CHECK(r.exception == 4);

    Request w;
    w.function = fn::WriteSingleRegister;
    w.address = 1;
    w.registers = {3};
    Bytes echo;
    encode_rtu(w, 1, echo);
    d = decode_rtu(echo, w, 1, r);
    CHECK(d.status == Status::Consumed);
    CHECK(d.used == 8);
    w.registers = {4};
    CHECK(decode_rtu(echo, w, 1, r).status == Status::Error);
}

TEST_CASE("arbitrary bytes: never more consumed than given, errors say why") {
    // What a broken device or a noisy line may send.
    uint64_t x = 0x9E3779B97F4A7C15ull;
    auto next = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    const Request reqs[] = {read(fn::ReadCoils, 0, 13), read(fn::ReadHoldingRegisters, 0, 125),
                            read(fn::ReadInputRegisters, 7, 2)};
    Response r;
    for (int i = 0; i < 20000; ++i) {
        Bytes in(next() % 300);
        for (auto& b : in) b = uint8_t(next());
        if (!in.empty() && (i & 1)) in[0] = 1;   // RTU: the right unit now and then
        for (const Request& req : reqs) {
            Decoded t = decode_tcp(in, req, 1, 1, r);
            if (t.status == Status::Consumed || t.status == Status::Skipped) CHECK(t.used <= in.size());
            if (t.status == Status::Error) CHECK(!t.error.empty());
            Decoded u = decode_rtu(in, req, 1, r);
            if (u.status == Status::Consumed) {
                CHECK(u.used <= in.size());
                CHECK((r.exception != 0 || r.registers.size() == req.count || r.bits.size() == req.count));
            }
            if (u.status == Status::Error) CHECK(!u.error.empty());
        }
    }
}
