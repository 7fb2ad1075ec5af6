// Modbus application protocol: requests encoded, responses decoded, for
// Modbus TCP (MBAP header) and RTU (unit, PDU, CRC16) framing. A pure codec
// in the style of src/mqtt: bytes in, consumed / incomplete / error out;
// a Modbus exception is a decoded value, not an error.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hato::modbus {

namespace fn {
inline constexpr uint8_t ReadCoils = 0x01;
inline constexpr uint8_t ReadDiscreteInputs = 0x02;
inline constexpr uint8_t ReadHoldingRegisters = 0x03;
inline constexpr uint8_t ReadInputRegisters = 0x04;
inline constexpr uint8_t WriteSingleCoil = 0x05;
inline constexpr uint8_t WriteSingleRegister = 0x06;
inline constexpr uint8_t WriteMultipleCoils = 0x0F;
inline constexpr uint8_t WriteMultipleRegisters = 0x10;
}  // namespace fn

// The protocol's limits per request (Modbus application protocol 1.1b3).
inline constexpr uint16_t kMaxReadRegisters = 125;
inline constexpr uint16_t kMaxReadBits = 2000;
inline constexpr uint16_t kMaxWriteRegisters = 123;
inline constexpr uint16_t kMaxWriteBits = 1968;

struct Request {
    uint8_t function = 0;
    uint16_t address = 0;
    uint16_t count = 0;               // reads: registers or bits
    std::vector<uint16_t> registers;  // 06 (one), 16
    std::vector<uint8_t> bits;        // 05 (one), 15: 0 or 1 each
};

bool is_read(uint8_t function);
// A request that breaks the protocol's limits (count 0 or too large, an
// address range past 65535, write data missing) has no encoding.
bool valid(const Request& r);

// Appends the PDU (function code and data). `r` must be valid().
void encode_pdu(const Request& r, std::vector<uint8_t>& out);
// MBAP header (transaction, protocol 0, length, unit) + PDU.
void encode_tcp(const Request& r, uint16_t transaction, uint8_t unit, std::vector<uint8_t>& out);
// Unit + PDU + CRC16 (low byte first).
void encode_rtu(const Request& r, uint8_t unit, std::vector<uint8_t>& out);

uint16_t crc16(std::span<const uint8_t> bytes);

struct Response {
    uint8_t function = 0;             // without the exception bit
    uint8_t exception = 0;            // nonzero: the device answered with this exception code
    uint16_t transaction = 0;         // TCP only
    uint8_t unit = 0;
    std::vector<uint16_t> registers;  // 03, 04
    std::vector<uint8_t> bits;        // 01, 02: `count` of them, 0 or 1
};

// Skipped: a whole frame that is not the answer awaited (TCP: another
// transaction's, a late answer after a timeout, or another unit's).
enum class Status : uint8_t { Consumed, Incomplete, Error, Skipped };

struct Decoded {
    Status status = Status::Incomplete;
    size_t used = 0;                  // Consumed, Skipped: bytes of the frame
    std::string error;                // Error: why; Skipped: what the frame was
};

// Decodes the answer to `req` from the front of `in`. TCP: an answer must
// carry the request's transaction and unit (the server echoes both); one
// that does not is Skipped, its PDU not read.
Decoded decode_tcp(std::span<const uint8_t> in, const Request& req, uint16_t transaction, uint8_t unit,
                   Response& out);
Decoded decode_rtu(std::span<const uint8_t> in, const Request& req, uint8_t unit, Response& out);

// "illegal data address (02)" and the like.
std::string exception_text(uint8_t code);

}  // namespace hato::modbus
