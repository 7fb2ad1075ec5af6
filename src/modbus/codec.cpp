#include "modbus/codec.hpp"

#include <algorithm>
#include <cstdio>

namespace hato::modbus {

namespace {

void put16(std::vector<uint8_t>& out, uint16_t v) {
    out.push_back(uint8_t(v >> 8));
    out.push_back(uint8_t(v));
}

uint16_t get16(std::span<const uint8_t> b, size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }

size_t bit_bytes(uint16_t bits) { return (size_t(bits) + 7) / 8; }

// Decodes one PDU (function code first) answering `req`.
Decoded decode_pdu(std::span<const uint8_t> pdu, const Request& req, Response& out) {
    Decoded d;
    d.status = Status::Error;
    if (pdu.empty()) {
        d.error = "empty response";
        return d;
    }
    const uint8_t f = pdu[0];
    out.registers.clear();
    out.bits.clear();
    out.exception = 0;
    out.function = f & 0x7F;
    if ((f & 0x7F) != req.function) {
        d.error = "response function " + std::to_string(f & 0x7F) + " to a request " + std::to_string(req.function);
        return d;
    }
    if (f & 0x80) {
        if (pdu.size() != 2) {
            d.error = "malformed exception response";
            return d;
        }
        out.exception = pdu[1] ? pdu[1] : 0xFF;
        d.status = Status::Consumed;
        return d;
    }
    switch (req.function) {
    case fn::ReadCoils:
    case fn::ReadDiscreteInputs: {
        const size_t n = bit_bytes(req.count);
        if (pdu.size() != 2 + n || pdu[1] != n) {
            d.error = "read response of the wrong length";
            return d;
        }
        out.bits.resize(req.count);
        for (size_t i = 0; i < req.count; ++i) out.bits[i] = (pdu[2 + i / 8] >> (i % 8)) & 1;
        break;
    }
    case fn::ReadHoldingRegisters:
    case fn::ReadInputRegisters: {
        const size_t n = size_t(req.count) * 2;
        if (pdu.size() != 2 + n || pdu[1] != n) {
            d.error = "read response of the wrong length";
            return d;
        }
        out.registers.resize(req.count);
        for (size_t i = 0; i < req.count; ++i) out.registers[i] = get16(pdu, 2 + 2 * i);
        break;
    }
    case fn::WriteSingleCoil:
    case fn::WriteSingleRegister:
    case fn::WriteMultipleCoils:
    case fn::WriteMultipleRegisters: {
        // The device echoes the address and the value or count.
        std::vector<uint8_t> expect;
        encode_pdu(req, expect);
        if (pdu.size() != 5 || !std::equal(pdu.begin(), pdu.end(), expect.begin())) {
            d.error = "write response does not echo the request";
            return d;
        }
        break;
    }
    default:
        d.error = "unsupported function";
        return d;
    }
    d.status = Status::Consumed;
    return d;
}

// Length of an RTU frame answering `req` that starts `in`, 0 if not known yet.
size_t rtu_frame_length(std::span<const uint8_t> in, const Request& req) {
    if (in.size() < 2) return 0;
    if (in[1] & 0x80) return 5;   // unit, function, code, crc
    if (is_read(req.function)) {
        if (in.size() < 3) return 0;
        return 5 + size_t(in[2]);
    }
    return 8;   // unit, function, address, value/count, crc
}

}  // namespace

bool is_read(uint8_t f) { return f >= fn::ReadCoils && f <= fn::ReadInputRegisters; }

bool valid(const Request& r) {
    auto fits = [&](uint32_t n) { return n > 0 && uint32_t(r.address) + n <= 65536; };
    switch (r.function) {
    case fn::ReadCoils:
    case fn::ReadDiscreteInputs:
        return r.count <= kMaxReadBits && fits(r.count);
    case fn::ReadHoldingRegisters:
    case fn::ReadInputRegisters:
        return r.count <= kMaxReadRegisters && fits(r.count);
    case fn::WriteSingleCoil:
        return r.bits.size() == 1;
    case fn::WriteSingleRegister:
        return r.registers.size() == 1;
    case fn::WriteMultipleCoils:
        return r.bits.size() <= kMaxWriteBits && fits(uint32_t(r.bits.size()));
    case fn::WriteMultipleRegisters:
        return r.registers.size() <= kMaxWriteRegisters && fits(uint32_t(r.registers.size()));
    default:
        return false;
    }
}

void encode_pdu(const Request& r, std::vector<uint8_t>& out) {
    out.push_back(r.function);
    put16(out, r.address);
    switch (r.function) {
    case fn::WriteSingleCoil:
        put16(out, r.bits[0] ? 0xFF00 : 0x0000);
        break;
    case fn::WriteSingleRegister:
        put16(out, r.registers[0]);
        break;
    case fn::WriteMultipleCoils: {
        put16(out, uint16_t(r.bits.size()));
        const size_t n = bit_bytes(uint16_t(r.bits.size()));
        out.push_back(uint8_t(n));
        const size_t at = out.size();
        out.resize(at + n, 0);
        for (size_t i = 0; i < r.bits.size(); ++i)
            if (r.bits[i]) out[at + i / 8] |= uint8_t(1u << (i % 8));
        break;
    }
    case fn::WriteMultipleRegisters:
        put16(out, uint16_t(r.registers.size()));
        out.push_back(uint8_t(r.registers.size() * 2));
        for (uint16_t v : r.registers) put16(out, v);
        break;
    default:
        put16(out, r.count);
    }
}

void encode_tcp(const Request& r, uint16_t transaction, uint8_t unit, std::vector<uint8_t>& out) {
    const size_t at = out.size();
    put16(out, transaction);
    put16(out, 0);
    put16(out, 0);   // length, below
    out.push_back(unit);
    encode_pdu(r, out);
    const size_t len = out.size() - at - 6;
    out[at + 4] = uint8_t(len >> 8);
    out[at + 5] = uint8_t(len);
}

void encode_rtu(const Request& r, uint8_t unit, std::vector<uint8_t>& out) {
    const size_t at = out.size();
    out.push_back(unit);
    encode_pdu(r, out);
    const uint16_t crc = crc16(std::span<const uint8_t>(out).subspan(at));
    out.push_back(uint8_t(crc));
    out.push_back(uint8_t(crc >> 8));
}

uint16_t crc16(std::span<const uint8_t> bytes) {
    uint16_t crc = 0xFFFF;
    for (uint8_t b : bytes) {
        crc ^= b;
        for (int i = 0; i < 8; ++i) crc = (crc & 1) ? uint16_t((crc >> 1) ^ 0xA001) : uint16_t(crc >> 1);
    }
    return crc;
}

Decoded decode_tcp(std::span<const uint8_t> in, const Request& req, uint16_t transaction, uint8_t unit,
                   Response& out) {
    Decoded d;
    if (in.size() < 7) return d;
    const uint16_t protocol = get16(in, 2);
    const uint16_t len = get16(in, 4);
    if (protocol != 0 || len < 2 || len > 254) {
        d.status = Status::Error;
        d.error = "malformed MBAP header";
        return d;
    }
    if (in.size() < 6 + size_t(len)) return d;
    out.transaction = get16(in, 0);
    out.unit = in[6];
    const size_t used = 6 + size_t(len);
    if (out.transaction != transaction || out.unit != unit) {
        d.status = Status::Skipped;
        d.used = used;
        d.error = out.transaction != transaction
                      ? "an answer to transaction " + std::to_string(out.transaction) + ", not " +
                            std::to_string(transaction)
                      : "an answer from unit " + std::to_string(out.unit) + ", not " + std::to_string(unit);
        return d;
    }
    Decoded p = decode_pdu(in.subspan(7, len - 1), req, out);
    p.used = used;
    return p;
}

Decoded decode_rtu(std::span<const uint8_t> in, const Request& req, uint8_t unit, Response& out) {
    Decoded d;
    const size_t n = rtu_frame_length(in, req);
    if (n == 0 || in.size() < n) return d;
    d.used = n;
    const uint16_t crc = uint16_t(in[n - 2] | in[n - 1] << 8);
    if (crc16(in.first(n - 2)) != crc) {
        d.status = Status::Error;
        d.error = "CRC mismatch";
        return d;
    }
    if (in[0] != unit) {
        d.status = Status::Error;
        d.error = "answer from unit " + std::to_string(in[0]);
        return d;
    }
    out.unit = in[0];
    Decoded p = decode_pdu(in.subspan(1, n - 3), req, out);
    p.used = n;
    return p;
}

std::string exception_text(uint8_t code) {
    const char* name = "exception";
    switch (code) {
    case 1: name = "illegal function"; break;
    case 2: name = "illegal data address"; break;
    case 3: name = "illegal data value"; break;
    case 4: name = "server device failure"; break;
    case 5: name = "acknowledge"; break;
    case 6: name = "server device busy"; break;
    case 8: name = "memory parity error"; break;
    case 10: name = "gateway path unavailable"; break;
    case 11: name = "gateway target device failed to respond"; break;
    default: break;
    }
    char buf[8];
    snprintf(buf, sizeof buf, "%02X", code);
    return std::string("Modbus exception ") + buf + " (" + name + ")";
}

}  // namespace hato::modbus
