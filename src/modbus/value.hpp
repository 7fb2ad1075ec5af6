// Modbus points as values: registers or bits decoded with a point's type,
// word and byte order, scale and offset into a value, formatted as text or
// JSON; and back (a value written from MQTT) into registers or bits.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hato::modbus {

enum class Kind : uint8_t { Holding, Input, Coil, Discrete };
enum class Type : uint8_t { Bool, U16, I16, U32, I32, U64, I64, F32, F64, String };

std::optional<Kind> kind_from(std::string_view s);
std::optional<Type> type_from(std::string_view s);
bool is_bit_kind(Kind k);   // coil, discrete
uint8_t read_function(Kind k);

struct Format {
    Type type = Type::U16;
    bool word_big = true;     // the most significant register first
    bool byte_big = true;     // the high byte of each register first
    double scale = 1.0;
    double offset = 0.0;
    uint16_t count = 0;       // string: registers
    bool operator==(const Format&) const = default;
};

// Registers (or bits) one point covers: 1 for bits.
uint16_t width(Kind k, const Format& f);

struct Value {
    enum class Tag : uint8_t { None, Bool, Int, UInt, Float, Text } tag = Tag::None;
    bool b = false;
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string text;

    bool operator==(const Value& o) const;
    std::optional<double> number() const;   // bools and strings: none
};

// A point's value from its registers (`regs`, width() of them) or its bit.
Value decode_registers(std::span<const uint16_t> regs, const Format& f);
Value decode_bit(uint8_t bit, const Format& f);

// "12.5", "true", "-3", the string itself (raw payloads).
std::string to_text(const Value& v);
// The same as a JSON value ("null" for None, strings quoted and escaped).
std::string to_json(const Value& v);
// {"value": ..., "ts": <ms>, "quality": "good"|"bad"}
std::string json_payload(const Value& v, uint64_t ts_ms, bool good);

// Whether an on_change point publishes `next` after `last`: any change for
// non-numbers; a change of more than `deadband` for numbers.
bool changed(const Value& last, const Value& next, double deadband);

// A value written from MQTT: JSON {"value": x} or a bare value (number,
// true/false, or text for strings). Converted with the point's type, scale
// and order into registers or one bit. False with `err` when it does not fit.
bool encode_write(std::string_view payload, Kind k, const Format& f, std::vector<uint16_t>& regs, uint8_t& bit,
                  std::string& err);

}  // namespace hato::modbus
