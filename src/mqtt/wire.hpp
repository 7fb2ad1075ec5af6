// Private to the codec: bounds-checked reader, size-counting / appending
// writers, and the variable byte integer. Not part of the public API.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "mqtt/codec.hpp"

namespace hato::mqtt::wire {

// A decode failure: reason 0 means "no error".
struct Fail {
    uint8_t reason = 0;
    const char* what = "";
    explicit operator bool() const { return reason != 0; }
};
inline Fail malformed(const char* what) { return {rc::MalformedPacket, what}; }
inline Fail protocol(const char* what) { return {rc::ProtocolError, what}; }

constexpr uint32_t kMaxVarint = 268'435'455;  // 4 bytes of 7 bits

inline size_t varint_len(uint32_t v) {
    return v < 128 ? 1 : v < 16'384 ? 2 : v < 2'097'152 ? 3 : 4;
}

// Reads a variable byte integer. Returns bytes used, 0 if more input is needed,
// or -1 if malformed (5th byte, or a non-minimal encoding, which 1.5.5 forbids).
inline int read_varint(const uint8_t* p, size_t avail, uint32_t& value) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
        if (size_t(i) >= avail) return 0;
        uint8_t b = p[i];
        v |= uint32_t(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            if (i > 0 && b == 0) return -1;  // trailing zero group: not minimal
            value = v;
            return i + 1;
        }
    }
    return -1;
}

// True if s holds '+' or '#'. A plain loop: string_view::find_first_of with
// a two-character set costs one memchr call per character of s.
inline bool has_wildcard(std::string_view s) {
    for (char c : s)
        if (c == '+' || c == '#') return true;
    return false;
}

// Cursor over one packet body. Every read checks the bounds; a failed read
// leaves the reader unusable (callers stop at the first false).
class Reader {
public:
    Reader(const uint8_t* begin, const uint8_t* end) : p_(begin), end_(end) {}
    size_t left() const { return size_t(end_ - p_); }
    bool empty() const { return p_ == end_; }
    const uint8_t* pos() const { return p_; }

    bool u8(uint8_t& v) {
        if (left() < 1) return false;
        v = *p_++;
        return true;
    }
    bool u16(uint16_t& v) {
        if (left() < 2) return false;
        v = uint16_t(p_[0] << 8 | p_[1]);
        p_ += 2;
        return true;
    }
    bool u32(uint32_t& v) {
        if (left() < 4) return false;
        v = uint32_t(p_[0]) << 24 | uint32_t(p_[1]) << 16 | uint32_t(p_[2]) << 8 | p_[3];
        p_ += 4;
        return true;
    }
    // Within a complete packet a truncated varint is malformed, not incomplete.
    bool varint(uint32_t& v) {
        int n = read_varint(p_, left(), v);
        if (n <= 0) return false;
        p_ += n;
        return true;
    }
    bool binary(Bytes& v) {
        uint16_t len;
        if (!u16(len) || left() < len) return false;
        v = Bytes(p_, len);
        p_ += len;
        return true;
    }
    // Length-prefixed string. UTF-8 validity is left to the caller, so that
    // "truncated" and "invalid UTF-8" can be reported apart.
    bool raw_string(std::string_view& v) {
        Bytes b;
        if (!binary(b)) return false;
        v = std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
        return true;
    }
    Bytes rest() {
        Bytes b(p_, left());
        p_ = end_;
        return b;
    }
    // Splits off the next n bytes as a sub-reader.
    bool sub(size_t n, Reader& out) {
        if (left() < n) return false;
        out = Reader(p_, p_ + n);
        p_ += n;
        return true;
    }

private:
    const uint8_t* p_;
    const uint8_t* end_;
};

// Writers share one interface so that each packet body is described once and
// run twice: first through SizeWriter (to learn the remaining length), then
// through VecWriter into memory already reserved.
struct SizeWriter {
    size_t n = 0;
    void u8(uint8_t) { n += 1; }
    void u16(uint16_t) { n += 2; }
    void u32(uint32_t) { n += 4; }
    void varint(uint32_t v) { n += varint_len(v); }
    void raw(const void*, size_t len) { n += len; }
};

struct VecWriter {
    std::vector<uint8_t>& out;
    void u8(uint8_t v) { out.push_back(v); }
    void u16(uint16_t v) {
        uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
        out.insert(out.end(), b, b + 2);
    }
    void u32(uint32_t v) {
        uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
        out.insert(out.end(), b, b + 4);
    }
    void varint(uint32_t v) {
        do {
            uint8_t b = v & 0x7F;
            v >>= 7;
            out.push_back(v ? uint8_t(b | 0x80) : b);
        } while (v);
    }
    void raw(const void* data, size_t len) {
        auto* p = static_cast<const uint8_t*>(data);
        out.insert(out.end(), p, p + len);
    }
};

// Strings and binaries on the wire carry a 16-bit length; longer input is a
// caller bug and is truncated rather than producing a corrupt frame.
template <class W>
void put_binary(W& w, const void* data, size_t len) {
    if (len > 0xFFFF) len = 0xFFFF;
    w.u16(uint16_t(len));
    w.raw(data, len);
}
template <class W>
void put_string(W& w, std::string_view s) { put_binary(w, s.data(), s.size()); }
template <class W>
void put_bytes(W& w, Bytes b) { put_binary(w, b.data(), b.size()); }

}  // namespace hato::mqtt::wire
