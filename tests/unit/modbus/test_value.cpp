// Points as values: every type, word and byte order, scale and offset,
// deadband, and values written from MQTT converted back.
#include <doctest/doctest.h>

#include <bit>

#include "modbus/value.hpp"

using namespace hato::modbus;
using Regs = std::vector<uint16_t>;

namespace {
Format fmt(Type t, bool word_big = true, bool byte_big = true) {
    Format f;
    f.type = t;
    f.word_big = word_big;
    f.byte_big = byte_big;
    return f;
}
std::string text(const Regs& r, const Format& f) { return to_text(decode_registers(r, f)); }
Regs write(std::string_view payload, const Format& f) {
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    REQUIRE(encode_write(payload, Kind::Holding, f, regs, bit, err));
    return regs;
}
}  // namespace

TEST_CASE("16-bit types") {
    CHECK(text({0xFFFF}, fmt(Type::U16)) == "65535");
    CHECK(text({0xFFFF}, fmt(Type::I16)) == "-1");
    CHECK(text({0x0102}, fmt(Type::U16, true, false)) == "513");
    CHECK(text({0}, fmt(Type::Bool)) == "false");
    CHECK(text({7}, fmt(Type::Bool)) == "true");
}

TEST_CASE("32 and 64-bit types in every order") {
    // 0x12345678 = 305419896
    CHECK(text({0x1234, 0x5678}, fmt(Type::U32)) == "305419896");
    CHECK(text({0x5678, 0x1234}, fmt(Type::U32, false)) == "305419896");
    CHECK(text({0x3412, 0x7856}, fmt(Type::U32, true, false)) == "305419896");
    CHECK(text({0x7856, 0x3412}, fmt(Type::U32, false, false)) == "305419896");
    CHECK(text({0xFFFF, 0xFFFE}, fmt(Type::I32)) == "-2");
    CHECK(text({0x0001, 0x0002, 0x0003, 0x0004}, fmt(Type::U64)) == std::to_string(0x0001000200030004ull));
    CHECK(text({0x0004, 0x0003, 0x0002, 0x0001}, fmt(Type::U64, false)) == std::to_string(0x0001000200030004ull));
    CHECK(text({0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD}, fmt(Type::I64)) == "-3");
    CHECK(text({0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, fmt(Type::U64)) == "18446744073709551615");
    const uint32_t f = std::bit_cast<uint32_t>(21.5f);
    CHECK(text({uint16_t(f >> 16), uint16_t(f)}, fmt(Type::F32)) == "21.5");
    CHECK(text({uint16_t(f), uint16_t(f >> 16)}, fmt(Type::F32, false)) == "21.5");
    const uint32_t g = std::bit_cast<uint32_t>(0.1f);
    CHECK(text({uint16_t(g >> 16), uint16_t(g)}, fmt(Type::F32)) == "0.1");
    const uint64_t d = std::bit_cast<uint64_t>(-1234.5678);
    CHECK(text({uint16_t(d >> 48), uint16_t(d >> 32), uint16_t(d >> 16), uint16_t(d)}, fmt(Type::F64)) ==
          "-1234.5678");
}

TEST_CASE("scale and offset") {
    Format f = fmt(Type::I16);
    f.scale = 0.1;
    f.offset = -40;
    CHECK(text({625}, f) == "22.5");
    CHECK(write("22.5", f) == Regs{625});
    CHECK(write("{\"value\": -40}", f) == Regs{0});
    // Halves go away from zero, also where the division leaves binary
    // noise below the half (0.35 / 0.1 is 3.4999999999999996).
    Format tenth = fmt(Type::I16);
    tenth.scale = 0.1;
    CHECK(write("0.35", tenth) == Regs{4});
    CHECK(write("0.25", tenth) == Regs{3});
    CHECK(write("-0.25", tenth) == Regs{uint16_t(-3)});
    CHECK(write("2.5", fmt(Type::I16)) == Regs{3});
}

// 0.1 has no exact binary value: 3 × 0.1 is 0.30000000000000004 as a
// double. A scaled value is cut to the 15 digits a double always holds.
TEST_CASE("scaled values carry no binary-float noise") {
    Format f = fmt(Type::U16);
    f.scale = 0.1;
    CHECK(text({3}, f) == "0.3");
    CHECK(to_json(decode_registers(Regs{1234}, f)) == "123.4");
    CHECK(text(write("0.3", f), f) == "0.3");
    CHECK(decode_registers(Regs{3}, f) == decode_registers(Regs{3}, f));
    CHECK(decode_registers(Regs{3}, f).f == 0.3);   // what change detection compares
    CHECK_FALSE(changed(decode_registers(Regs{3}, f), decode_registers(Regs{3}, f), 0));
    Format i32 = fmt(Type::I32);
    i32.scale = 0.01;
    i32.offset = -40;
    CHECK(text({0x0000, 0x3039}, i32) == "83.45");   // 12345 × 0.01 - 40
    // A 16th digit that is the value's own stays: 1234567890123456 × 0.001.
    Format u64 = fmt(Type::U64);
    u64.scale = 0.001;
    CHECK(text({0x0004, 0x62D5, 0x3C8A, 0xBAC0}, u64) == "1234567890123.456");
    Format f64 = fmt(Type::F64);
    f64.scale = 0.1;
    const uint64_t d = std::bit_cast<uint64_t>(7.0);
    CHECK(text({uint16_t(d >> 48), uint16_t(d >> 32), uint16_t(d >> 16), uint16_t(d)}, f64) == "0.7");
    // Unscaled values keep every digit: 64-bit integers past 2^53, doubles.
    CHECK(text({0x0020, 0x0000, 0x0000, 0x0001}, fmt(Type::U64)) == "9007199254740993");
    CHECK(text({0xFFDF, 0xFFFF, 0xFFFF, 0xFFFF}, fmt(Type::I64)) == "-9007199254740993");
    const uint64_t third = std::bit_cast<uint64_t>(0.1 + 0.2);
    CHECK(text({uint16_t(third >> 48), uint16_t(third >> 32), uint16_t(third >> 16), uint16_t(third)},
               fmt(Type::F64)) == "0.30000000000000004");
}

TEST_CASE("strings") {
    Format f = fmt(Type::String);
    f.count = 4;
    CHECK(width(Kind::Holding, f) == 4);
    CHECK(text({0x4142, 0x4300, 0x4444, 0}, f) == "ABC");
    Format le = f;
    le.byte_big = false;
    CHECK(text({0x4241, 0x0043, 0, 0}, le) == "ABC");
    CHECK(write("\"AB\\\"C\"", f) == Regs{0x4142, 0x2243, 0, 0});
    CHECK(write("plain", f) == Regs{0x706C, 0x6169, 0x6E00, 0});
    CHECK(to_json(decode_registers(Regs{0x4122, 0}, f)) == "\"A\\\"\"");
    Regs regs;
    uint8_t bit;
    std::string err;
    CHECK_FALSE(encode_write("\"123456789\"", Kind::Holding, f, regs, bit, err));
    CHECK(err == "string longer than 8 bytes");
    // A bare number or boolean is the text it spells; an explicit "" blanks
    // the string, an empty payload (clearing a retained /set) writes nothing.
    CHECK(write("1234", f) == Regs{0x3132, 0x3334, 0, 0});
    CHECK(write("true", f) == Regs{0x7472, 0x7565, 0, 0});
    CHECK(write("\"\"", f) == Regs{0, 0, 0, 0});
    for (std::string_view empty : {"", "  \n"}) {
        CHECK_FALSE(encode_write(empty, Kind::Holding, f, regs, bit, err));
        CHECK(err == "empty payload");
    }
}

// JSON is UTF-8; a device's string need not be (Latin-1 is common).
TEST_CASE("string JSON is valid UTF-8: invalid bytes escaped as their code point") {
    Format f = fmt(Type::String);
    f.count = 4;
    auto json = [&](const Regs& r) { return to_json(decode_registers(r, f)); };
    CHECK(json({0x4142, 0xFF00}) == "\"AB\\u00ff\"");
    CHECK(json({0xC3A9, 0x4300}) == "\"\xC3\xA9" "C\"");   // é passes
    CHECK(json({0xE282, 0xAC00}) == "\"\xE2\x82\xAC\"");   // €
    CHECK(json({0xF09F, 0x9880, 0}) == "\"\xF0\x9F\x98\x80\"");   // U+1F600
    CHECK(json({0xE9C3, 0}) == "\"\\u00e9\\u00c3\"");   // Latin-1 "éÃ"
    CHECK(json({0xC0AF, 0}) == "\"\\u00c0\\u00af\"");   // overlong '/'
    CHECK(json({0xEDA0, 0x8041}) == "\"\\u00ed\\u00a0\\u0080A\"");   // a surrogate
    CHECK(json({0xF490, 0x8080, 0}) == "\"\\u00f4\\u0090\\u0080\\u0080\"");   // past U+10FFFF
    CHECK(json({0xE282, 0x4100}) == "\"\\u00e2\\u0082A\"");   // cut short
    // The raw payload is the device's bytes as they are.
    CHECK(text({0x4142, 0xFF00}, f) == "AB\xFF");
}

TEST_CASE("written strings: \\u escapes, surrogate pairs as one character") {
    Format f = fmt(Type::String);
    f.count = 4;
    CHECK(write("\"\\u00e9\"", f) == Regs{0xC3A9, 0, 0, 0});
    CHECK(write("\"\\u20AC\"", f) == Regs{0xE282, 0xAC00, 0, 0});
    CHECK(write("{\"value\": \"\\ud83d\\ude00\"}", f) == Regs{0xF09F, 0x9880, 0, 0});
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    for (const char* p : {"\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"",
                          "\"\\ud83d\\ud83d\"", "\"\\ud83d\\ude0\"", "\"\\u12\""}) {
        CAPTURE(p);
        err.clear();
        CHECK_FALSE(encode_write(p, Kind::Holding, f, regs, bit, err));
        CHECK(err == "malformed JSON string");
    }
}

TEST_CASE("writes round-trip through every type and order") {
    for (Type t : {Type::U16, Type::I16, Type::U32, Type::I32, Type::U64, Type::I64, Type::F32, Type::F64})
        for (bool wb : {true, false})
            for (bool bb : {true, false}) {
                Format f = fmt(t, wb, bb);
                const bool is_signed = t == Type::I16 || t == Type::I32 || t == Type::I64 || t == Type::F32 ||
                                       t == Type::F64;
                const std::string v = is_signed ? "-123" : "123";
                CHECK(text(write(v, f), f) == v);
            }
    CHECK(text(write("18446744073709551615", fmt(Type::U64)), fmt(Type::U64)) == "18446744073709551615");
    CHECK(text(write("-9223372036854775808", fmt(Type::I64)), fmt(Type::I64)) == "-9223372036854775808");
}

TEST_CASE("writes that do not fit are refused with a reason") {
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    CHECK_FALSE(encode_write("65536", Kind::Holding, fmt(Type::U16), regs, bit, err));
    CHECK(err == "value out of range for u16");
    CHECK_FALSE(encode_write("-1", Kind::Holding, fmt(Type::U32), regs, bit, err));
    CHECK_FALSE(encode_write("40000", Kind::Holding, fmt(Type::I16), regs, bit, err));
    CHECK_FALSE(encode_write("abc", Kind::Holding, fmt(Type::U16), regs, bit, err));
    CHECK(err == "expected a number");
    CHECK_FALSE(encode_write("{\"other\": 1}", Kind::Holding, fmt(Type::U16), regs, bit, err));
    CHECK_FALSE(encode_write("{\"value\": abc}", Kind::Holding, fmt(Type::U16), regs, bit, err));
    CHECK_FALSE(encode_write("2", Kind::Coil, fmt(Type::Bool), regs, bit, err));
    // More digits than 64 bits hold: refused, not written as 0.
    for (Type t : {Type::U16, Type::I16, Type::U64, Type::I64}) {
        CAPTURE(int(t));
        err.clear();
        CHECK_FALSE(encode_write("99999999999999999999", Kind::Holding, fmt(t), regs, bit, err));
        CHECK(err.starts_with("value out of range for "));
    }
    CHECK_FALSE(encode_write("-9223372036854775809", Kind::Holding, fmt(Type::I64), regs, bit, err));
    CHECK(err == "value out of range for i64");
    CHECK_FALSE(encode_write("{\"value\": 18446744073709551616}", Kind::Holding, fmt(Type::U64), regs, bit, err));
    CHECK(err == "value out of range for u64");
}

TEST_CASE("writes must be finite and fit the register type") {
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    for (Type t : {Type::F32, Type::F64, Type::I16, Type::U32, Type::I64})
        for (const char* p : {"inf", "-inf", "nan", "{\"value\": NaN}", "{\"value\": -Infinity}"}) {
            CAPTURE(p);
            err.clear();
            CHECK_FALSE(encode_write(p, Kind::Holding, fmt(t), regs, bit, err));
            CHECK(err == "value is not a finite number");
        }
    for (const char* p : {"1e39", "{\"value\": 3.5e38}", "-3.5e38"}) {
        CAPTURE(p);
        err.clear();
        CHECK_FALSE(encode_write(p, Kind::Holding, fmt(Type::F32), regs, bit, err));
        CHECK(err == "value out of range for f32");
    }
    // Out of range only once scaled to the register.
    Format scaled = fmt(Type::F32);
    scaled.scale = 1e-30;
    CHECK_FALSE(encode_write("1e10", Kind::Holding, scaled, regs, bit, err));
    CHECK(err == "value out of range for f32");
    // A value that rounds to FLT_MAX fits; f64 keeps its whole range.
    CHECK(write("3.4028235e38", fmt(Type::F32)) == Regs{0x7F7F, 0xFFFF});
    CHECK(write("-3.4028235e38", fmt(Type::F32)) == Regs{0xFF7F, 0xFFFF});
    CHECK(text(write("1e39", fmt(Type::F64)), fmt(Type::F64)) == "1e+39");
    // Integer types keep refusing them.
    for (const char* p : {"inf", "nan", "1e39"}) {
        CAPTURE(p);
        CHECK_FALSE(encode_write(p, Kind::Holding, fmt(Type::I32), regs, bit, err));
    }
}

TEST_CASE("only a top-level \"value\" member is written") {
    const Format f = fmt(Type::U16);
    CHECK(text(write("{\"a\": {\"b\": 1, \"value\": 9}, \"value\": 7}", f), f) == "7");
    CHECK(text(write("{\"a\": [1, {\"value\": 9}, [2]], \"value\": 7}", f), f) == "7");
    CHECK(text(write("{\"a\": \"x,\\\"value\\\": 9}\", \"value\": 7}", f), f) == "7");
    CHECK(text(write("{\"a\": true, \"b\": null, \"c\": -1.5e3, \"value\": 7, \"d\": {}}", f), f) == "7");
    CHECK(text(write(" {\n\"value\"\t:\r 7 } ", f), f) == "7");
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    CHECK_FALSE(encode_write("{\"a\": {\"value\": 9}}", Kind::Holding, f, regs, bit, err));
    CHECK(err == "JSON object without a \"value\"");
    for (const char* p : {"{\"a\": {\"b\": 1, \"value\": 7}", "{\"a\": [1}, \"value\": 7}", "{\"value\": 7,}",
                          "{\"value\": 7} x", "{\"value\" 7}", "{\"value\": 7 \"b\": 1}", "{value: 7}",
                          "{\"a\": \"unterminated, \"value\": 7}"}) {
        CAPTURE(p);
        err.clear();
        CHECK_FALSE(encode_write(p, Kind::Holding, f, regs, bit, err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("bits") {
    Regs regs;
    uint8_t bit = 0;
    std::string err;
    CHECK(encode_write("true", Kind::Coil, fmt(Type::Bool), regs, bit, err));
    CHECK(bit == 1);
    CHECK(regs.empty());
    CHECK(encode_write("{\"value\": false}", Kind::Coil, fmt(Type::Bool), regs, bit, err));
    CHECK(bit == 0);
    CHECK(encode_write("1", Kind::Holding, fmt(Type::Bool), regs, bit, err));
    CHECK(regs == Regs{1});
    CHECK(to_text(decode_bit(1, fmt(Type::Bool))) == "true");
}

TEST_CASE("payloads and deadband") {
    Value v = decode_registers(Regs{5}, fmt(Type::U16));
    CHECK(json_payload(v, 1700000000000, true) == "{\"value\": 5, \"ts\": 1700000000000, \"quality\": \"good\"}");
    CHECK(json_payload(Value{}, 1, false) == "{\"value\": null, \"ts\": 1, \"quality\": \"bad\"}");
    Format f = fmt(Type::U16);
    f.scale = 0.1;
    Value a = decode_registers(Regs{100}, f), b = decode_registers(Regs{104}, f),
          c = decode_registers(Regs{106}, f);
    CHECK_FALSE(changed(a, b, 0.5));
    CHECK(changed(a, c, 0.5));
    CHECK(changed(a, b, 0));
    CHECK_FALSE(changed(a, a, 0));
    CHECK(changed(Value{}, a, 0.5));
    // With a deadband, NaN to a number and back is a change; NaN to NaN not.
    Format f32 = fmt(Type::F32);
    const uint32_t nan_bits = 0x7FC00000u, one = std::bit_cast<uint32_t>(1.0f);
    Value nan = decode_registers(Regs{uint16_t(nan_bits >> 16), uint16_t(nan_bits)}, f32),
          num = decode_registers(Regs{uint16_t(one >> 16), uint16_t(one)}, f32);
    CHECK(changed(nan, num, 0.5));
    CHECK(changed(num, nan, 0.5));
    CHECK_FALSE(changed(nan, nan, 0.5));
}

TEST_CASE("names") {
    CHECK(kind_from("holding") == Kind::Holding);
    CHECK(!kind_from("register"));
    CHECK(type_from("f64") == Type::F64);
    CHECK(!type_from("float"));
}
