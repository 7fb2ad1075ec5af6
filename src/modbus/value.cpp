#include "modbus/value.hpp"

#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

#include "modbus/codec.hpp"

namespace hato::modbus {

namespace {

uint16_t swap16(uint16_t v) { return uint16_t(v << 8 | v >> 8); }

bool scaled(const Format& f) { return f.scale != 1.0 || f.offset != 0.0; }

uint16_t words_of(Type t) {
    switch (t) {
    case Type::U32:
    case Type::I32:
    case Type::F32: return 2;
    case Type::U64:
    case Type::I64:
    case Type::F64: return 4;
    default: return 1;
    }
}

// The registers of a 16/32/64-bit value as one unsigned number.
uint64_t combine(std::span<const uint16_t> regs, const Format& f) {
    const size_t n = words_of(f.type);
    uint64_t raw = 0;
    for (size_t i = 0; i < n; ++i) {
        uint16_t w = regs[f.word_big ? i : n - 1 - i];
        if (!f.byte_big) w = swap16(w);
        raw = raw << 16 | w;
    }
    return raw;
}

void split(uint64_t raw, const Format& f, std::vector<uint16_t>& regs) {
    const size_t n = words_of(f.type);
    regs.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
        uint16_t w = uint16_t(raw >> (16 * (n - 1 - i)));
        if (!f.byte_big) w = swap16(w);
        regs[f.word_big ? i : n - 1 - i] = w;
    }
}

int64_t sign_extend(uint64_t raw, unsigned bits) {
    if (bits == 64) return int64_t(raw);
    const uint64_t m = uint64_t(1) << (bits - 1);
    raw &= (uint64_t(1) << bits) - 1;
    return int64_t((raw ^ m) - m);
}

Value number(double x, bool single = false) {
    Value v;
    v.tag = Value::Tag::Float;
    v.f = single ? double(float(x)) : x;
    return v;
}

// A scale such as 0.1 has no exact binary value, and 3 × 0.1 is
// 0.30000000000000004. 15 significant digits are what a double always
// holds: cut to them, the noise goes and the value stays. Only noise: a
// value that needs a 16th digit (a scaled 64-bit counter past 10^15) is
// further from its 15-digit form than one multiply and add can stray.
double to_15_digits(double x) {
    if (!std::isfinite(x)) return x;
    char buf[64];
    const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::general, 15);
    double rounded = x;
    std::from_chars(buf, r.ptr, rounded);
    const double ulp = std::nextafter(std::fabs(x), INFINITY) - std::fabs(x);
    return std::fabs(rounded - x) <= 4 * ulp ? rounded : x;
}

// raw × scale + offset, as published.
Value scaled_number(double raw, const Format& f) { return number(to_15_digits(raw * f.scale + f.offset)); }

std::string format_double(double x, bool as_float) {
    char buf[64];
    std::to_chars_result r = as_float ? std::to_chars(buf, buf + sizeof buf, float(x))
                                      : std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// One written value, as the payload gave it.
struct Input {
    enum class Tag { Bool, Number, Text } tag = Tag::Text;
    bool b = false;
    std::string token;   // the number's text, or the text
};

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | cp >> 6));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | cp >> 12));
        out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(char(0xF0 | cp >> 18));
        out.push_back(char(0x80 | (cp >> 12 & 0x3F)));
        out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    }
}

// The 4 hex digits of a \u escape at s[i] (just past the 'u'); `i` set to
// its last digit.
bool read_hex4(std::string_view s, size_t& i, uint32_t& cp) {
    if (i + 4 > s.size()) return false;
    auto r = std::from_chars(s.data() + i, s.data() + i + 4, cp, 16);
    if (r.ptr != s.data() + i + 4) return false;
    i += 3;
    return true;
}

// The code point of a \u escape at s[i] (just past the 'u'), `i` set to
// its last character. Characters past U+FFFF are a surrogate pair of two
// escapes; one without its other half is no character and is refused.
bool read_unicode_escape(std::string_view s, size_t& i, uint32_t& cp) {
    if (!read_hex4(s, i, cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
    if (cp < 0xD800 || cp > 0xDBFF) return true;
    uint32_t low = 0;
    size_t j = i + 3;
    if (!(i + 2 < s.size() && s[i + 1] == '\\' && s[i + 2] == 'u') || !read_hex4(s, j, low)) return false;
    if (low < 0xDC00 || low > 0xDFFF) return false;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    i = j;
    return true;
}

// A JSON string starting at s[0] == '"'; `end` set past it.
bool parse_json_string(std::string_view s, size_t& end, std::string& out) {
    out.clear();
    for (size_t i = 1; i < s.size(); ++i) {
        char c = s[i];
        if (c == '"') {
            end = i + 1;
            return true;
        }
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (++i >= s.size()) return false;
        switch (s[i]) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u': {
            uint32_t cp = 0;
            ++i;
            if (!read_unicode_escape(s, i, cp)) return false;
            append_utf8(out, cp);
            break;
        }
        default: out.push_back(s[i]);
        }
    }
    return false;
}

bool parse_scalar(std::string_view s, bool json, Input& in, std::string& err) {
    s = trim(s);
    if (s == "true" || s == "false") {
        in.tag = Input::Tag::Bool;
        in.b = s == "true";
        return true;
    }
    if (!s.empty() && s.front() == '"') {
        size_t end = 0;
        if (!parse_json_string(s, end, in.token) || trim(s.substr(end)).size() != 0) {
            err = "malformed JSON string";
            return false;
        }
        in.tag = Input::Tag::Text;
        return true;
    }
    double x = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), x);
    if (!s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size()) {
        in.tag = Input::Tag::Number;
        in.token = std::string(s);
        return true;
    }
    if (json) {
        err = "not a JSON value";
        return false;
    }
    in.tag = Input::Tag::Text;
    in.token = std::string(s);
    return true;
}

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void skip_space(std::string_view s, size_t& i) {
    while (i < s.size() && is_json_space(s[i])) ++i;
}

// Moves `i` past the JSON value at s[i]: a string, an object or array (with
// all they nest), or a number/true/false/null token. Only the shape is
// checked, enough to find where the value ends.
bool skip_json_value(std::string_view s, size_t& i) {
    std::string ignored;
    size_t end = 0;
    if (i >= s.size()) return false;
    if (s[i] == '"') {
        if (!parse_json_string(s.substr(i), end, ignored)) return false;
        i += end;
        return true;
    }
    if (s[i] != '{' && s[i] != '[') {
        const size_t start = i;
        while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '+' || s[i] == '-' ||
                                s[i] == '.'))
            ++i;
        return i > start;
    }
    std::string open;   // the brackets not yet closed, innermost last
    while (i < s.size()) {
        const char c = s[i];
        if (c == '"') {
            if (!parse_json_string(s.substr(i), end, ignored)) return false;
            i += end;
            continue;
        }
        ++i;
        if (c == '{' || c == '[') open.push_back(c == '{' ? '}' : ']');
        else if (c == '}' || c == ']') {
            if (open.empty() || open.back() != c) return false;
            open.pop_back();
            if (open.empty()) return true;
        }
    }
    return false;
}

// {"value": x} (other members ignored) or a bare value. Only a member of
// the outer object counts: a "value" nested inside another member does not.
bool parse_input(std::string_view payload, Input& in, std::string& err) {
    std::string_view s = trim(payload);
    if (s.empty() || s.front() != '{') return parse_scalar(s, false, in, err);
    std::optional<std::string_view> value;
    size_t i = 1;
    bool closed = false;
    skip_space(s, i);
    if (i < s.size() && s[i] == '}') {
        closed = true;
        ++i;
    }
    while (!closed) {
        skip_space(s, i);
        std::string key;
        size_t end = 0;
        if (i >= s.size() || s[i] != '"' || !parse_json_string(s.substr(i), end, key)) break;
        i += end;
        skip_space(s, i);
        if (i >= s.size() || s[i] != ':') break;
        ++i;
        skip_space(s, i);
        const size_t start = i;
        if (!skip_json_value(s, i)) break;
        if (key == "value" && !value) value = s.substr(start, i - start);
        skip_space(s, i);
        if (i < s.size() && s[i] == ',') {
            ++i;
            continue;
        }
        if (i < s.size() && s[i] == '}') {
            closed = true;
            ++i;
        }
        break;
    }
    if (!closed || i != s.size()) {
        err = "malformed JSON object";
        return false;
    }
    if (!value) {
        err = "JSON object without a \"value\"";
        return false;
    }
    return parse_scalar(*value, true, in, err);
}

// A device asked for a number is never sent inf or NaN; for f32 the value
// must also round to a finite float (converting one that does not is
// undefined behaviour in C++).
bool fits_float_type(double x, Type t, std::string& err) {
    if (!std::isfinite(x)) {
        err = "value is not a finite number";
        return false;
    }
    // Past FLT_MAX plus half its ulp (2^104) round-to-nearest gives inf.
    const double f32_limit = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
    if (t == Type::F32 && !(std::fabs(x) < f32_limit)) {
        err = "value out of range for f32";
        return false;
    }
    return true;
}

// Length of the valid UTF-8 sequence starting at s[i], 0 if none: no
// overlong form, no surrogate, nothing past U+10FFFF (RFC 3629).
size_t utf8_sequence(std::string_view s, size_t i) {
    const unsigned char c = s[i];
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;   // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;        // overlong
        else if (c == 0xED) hi = 0x9F;   // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;        // overlong
        else if (c == 0xF4) hi = 0x8F;   // past U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        const unsigned char b = s[i + k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    }
    return n;
}

void append_escape(std::string& out, unsigned char c) {
    char buf[8];
    snprintf(buf, sizeof buf, "\\u%04x", c);
    out += buf;
}

}  // namespace

std::optional<Kind> kind_from(std::string_view s) {
    if (s == "holding") return Kind::Holding;
    if (s == "input") return Kind::Input;
    if (s == "coil") return Kind::Coil;
    if (s == "discrete") return Kind::Discrete;
    return std::nullopt;
}

std::optional<Type> type_from(std::string_view s) {
    static constexpr std::pair<std::string_view, Type> names[] = {
        {"bool", Type::Bool}, {"u16", Type::U16}, {"i16", Type::I16}, {"u32", Type::U32}, {"i32", Type::I32},
        {"u64", Type::U64},   {"i64", Type::I64}, {"f32", Type::F32}, {"f64", Type::F64}, {"string", Type::String}};
    for (const auto& [n, t] : names)
        if (n == s) return t;
    return std::nullopt;
}

bool is_bit_kind(Kind k) { return k == Kind::Coil || k == Kind::Discrete; }

uint8_t read_function(Kind k) {
    switch (k) {
    case Kind::Coil: return fn::ReadCoils;
    case Kind::Discrete: return fn::ReadDiscreteInputs;
    case Kind::Holding: return fn::ReadHoldingRegisters;
    default: return fn::ReadInputRegisters;
    }
}

uint16_t width(Kind k, const Format& f) {
    if (is_bit_kind(k)) return 1;
    if (f.type == Type::String) return f.count;
    return words_of(f.type);
}

bool Value::operator==(const Value& o) const {
    if (tag != o.tag) return false;
    switch (tag) {
    case Tag::None: return true;
    case Tag::Bool: return b == o.b;
    case Tag::Int: return i == o.i;
    case Tag::UInt: return u == o.u;
    case Tag::Float: return f == o.f || (std::isnan(f) && std::isnan(o.f));
    case Tag::Text: return text == o.text;
    }
    return false;
}

std::optional<double> Value::number() const {
    switch (tag) {
    case Tag::Int: return double(i);
    case Tag::UInt: return double(u);
    case Tag::Float: return f;
    default: return std::nullopt;
    }
}

Value decode_bit(uint8_t bit, const Format& /*f*/) {
    Value v;
    v.tag = Value::Tag::Bool;
    v.b = bit != 0;
    return v;
}

Value decode_registers(std::span<const uint16_t> regs, const Format& f) {
    Value v;
    if (f.type == Type::String) {
        v.tag = Value::Tag::Text;
        for (uint16_t r : regs) {
            const char hi = char(r >> 8), lo = char(r & 0xFF);
            const char a = f.byte_big ? hi : lo, b = f.byte_big ? lo : hi;
            if (a == 0) break;
            v.text.push_back(a);
            if (b == 0) break;
            v.text.push_back(b);
        }
        return v;
    }
    if (f.type == Type::Bool) {
        v.tag = Value::Tag::Bool;
        v.b = regs[0] != 0;
        return v;
    }
    const uint64_t raw = combine(regs, f);
    const bool single = f.type == Type::F32;
    switch (f.type) {
    case Type::U16:
    case Type::U32:
    case Type::U64:
        if (scaled(f)) return scaled_number(double(raw), f);
        v.tag = Value::Tag::UInt;
        v.u = raw;
        return v;
    case Type::I16:
    case Type::I32:
    case Type::I64: {
        const int64_t x = sign_extend(raw, 16u * words_of(f.type));
        if (scaled(f)) return scaled_number(double(x), f);
        v.tag = Value::Tag::Int;
        v.i = x;
        return v;
    }
    case Type::F32: {
        const float x = std::bit_cast<float>(uint32_t(raw));
        if (scaled(f)) return scaled_number(double(x), f);
        return number(double(x), single);
    }
    case Type::F64: {
        const double x = std::bit_cast<double>(raw);
        return scaled(f) ? scaled_number(x, f) : number(x);
    }
    default: return v;
    }
}

std::string to_text(const Value& v) {
    switch (v.tag) {
    case Value::Tag::None: return "";
    case Value::Tag::Bool: return v.b ? "true" : "false";
    case Value::Tag::Int: return std::to_string(v.i);
    case Value::Tag::UInt: return std::to_string(v.u);
    case Value::Tag::Float:
        // The shortest text that reads back as the same number; a value
        // that came from a float is printed as a float ("21.5", not 21.5000000001).
        return format_double(v.f, double(float(v.f)) == v.f && std::isfinite(v.f) && std::fabs(v.f) < 1e30);
    case Value::Tag::Text: return v.text;
    }
    return "";
}

std::string to_json(const Value& v) {
    if (v.tag == Value::Tag::None) return "null";
    if (v.tag == Value::Tag::Float && !std::isfinite(v.f)) return "null";
    if (v.tag != Value::Tag::Text) return to_text(v);
    std::string out = "\"";
    const std::string_view s = v.text;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = s[i];
        if (c >= 0x80) {
            // A device's bytes need not be UTF-8 (Latin-1 is common), and
            // JSON must be: a byte that starts no valid sequence is escaped
            // as the code point of its value, which is its Latin-1 letter.
            const size_t n = utf8_sequence(s, i);
            if (n == 0) {
                append_escape(out, c);
                ++i;
            } else {
                out += s.substr(i, n);
                i += n;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(char(c));
        } else if (c < 0x20) {
            append_escape(out, c);
        } else {
            out.push_back(char(c));
        }
        ++i;
    }
    out.push_back('"');
    return out;
}

std::string json_payload(const Value& v, uint64_t ts_ms, bool good) {
    return "{\"value\": " + to_json(v) + ", \"ts\": " + std::to_string(ts_ms) + ", \"quality\": \"" +
           (good ? "good" : "bad") + "\"}";
}

bool changed(const Value& last, const Value& next, double deadband) {
    if (last.tag != next.tag) return true;
    const auto a = last.number(), b = next.number();
    // NaN is no distance from anything: to or from a number it is a change
    // (a wire break often reads as NaN), NaN to NaN is not.
    if (a && b && deadband > 0) {
        if (std::isnan(*a) || std::isnan(*b)) return std::isnan(*a) != std::isnan(*b);
        return std::fabs(*a - *b) > deadband;
    }
    return !(last == next);
}

bool encode_write(std::string_view payload, Kind k, const Format& f, std::vector<uint16_t>& regs, uint8_t& bit,
                  std::string& err) {
    // An empty payload is how a retained message is cleared, not a value:
    // for a string it would have blanked the registers.
    if (trim(payload).empty()) {
        err = "empty payload";
        return false;
    }
    Input in;
    if (!parse_input(payload, in, err)) return false;
    regs.clear();
    if (is_bit_kind(k) || f.type == Type::Bool) {
        bool on = false;
        if (in.tag == Input::Tag::Bool) on = in.b;
        else if (in.tag == Input::Tag::Number && (in.token == "0" || in.token == "1")) on = in.token == "1";
        else {
            err = "expected true, false, 1 or 0";
            return false;
        }
        bit = on ? 1 : 0;
        if (!is_bit_kind(k)) regs.push_back(bit);
        return true;
    }
    if (f.type == Type::String) {
        // A bare 1234 or true is the text it spells (a batch number).
        if (in.tag == Input::Tag::Bool) in.token = in.b ? "true" : "false";
        else if (in.tag != Input::Tag::Text && in.tag != Input::Tag::Number) {
            err = "expected a string";
            return false;
        }
        if (in.token.size() > size_t(f.count) * 2) {
            err = "string longer than " + std::to_string(f.count * 2) + " bytes";
            return false;
        }
        regs.assign(f.count, 0);
        for (size_t i = 0; i < in.token.size(); ++i) {
            const uint16_t c = uint8_t(in.token[i]);
            const bool high = (i % 2 == 0) == f.byte_big;
            regs[i / 2] |= high ? uint16_t(c << 8) : c;
        }
        return true;
    }
    if (in.tag != Input::Tag::Number) {
        err = "expected a number";
        return false;
    }
    const char* s = in.token.data();
    const char* e = s + in.token.size();
    uint64_t raw = 0;
    if (f.type == Type::F32 || f.type == Type::F64) {
        double x = 0;
        std::from_chars(s, e, x);
        x = (x - f.offset) / f.scale;
        if (!fits_float_type(x, f.type, err)) return false;
        raw = f.type == Type::F32 ? std::bit_cast<uint32_t>(float(x)) : std::bit_cast<uint64_t>(x);
    } else {
        const bool is_signed = f.type == Type::I16 || f.type == Type::I32 || f.type == Type::I64;
        const unsigned bits = 16u * words_of(f.type);
        auto out_of_range = [&] {
            err = "value out of range for " + std::string(is_signed ? "i" : "u") + std::to_string(bits);
            return false;
        };
        // Integers keep their 64 bits when nothing scales them.
        int64_t si = 0;
        uint64_t ui = 0;
        bool exact = false;
        if (!scaled(f)) {
            const std::from_chars_result r = is_signed ? std::from_chars(s, e, si) : std::from_chars(s, e, ui);
            // All digits, but more than 64 bits hold: out of range whatever
            // the type (the value was left 0, and written as 0).
            if (r.ptr == e && r.ec == std::errc::result_out_of_range) return out_of_range();
            exact = r.ptr == e && r.ec == std::errc();
        }
        if (!exact) {
            double x = 0;
            std::from_chars(s, e, x);
            // The inverse of scaled_number, cut to 15 digits the same way
            // (0.35 / 0.1 is 3.4999999999999996), then halves away from
            // zero, as a person rounds: 0.35 at scale 0.1 writes 4.
            x = std::round(to_15_digits((x - f.offset) / f.scale));
            if (!std::isfinite(x)) {   // "nan", "inf": not a value too large
                err = "value is not a finite number";
                return false;
            }
            const double lo = is_signed ? -std::ldexp(1.0, int(bits) - 1) : 0.0;
            const double hi = is_signed ? std::ldexp(1.0, int(bits) - 1) : std::ldexp(1.0, int(bits));
            if (!(x >= lo && x < hi)) return out_of_range();
            if (is_signed) si = int64_t(x);
            else ui = bits == 64 && x >= 9.2e18 ? uint64_t(x) : uint64_t(int64_t(x));
        }
        if (is_signed) {
            if (bits < 64 && (si < -(int64_t(1) << (bits - 1)) || si >= (int64_t(1) << (bits - 1)))) return out_of_range();
            raw = uint64_t(si);
            if (bits < 64) raw &= (uint64_t(1) << bits) - 1;
        } else {
            if (bits < 64 && ui >= (uint64_t(1) << bits)) return out_of_range();
            raw = ui;
        }
    }
    split(raw, f, regs);
    return true;
}

}  // namespace hato::modbus
