// Record bodies of the broker's durable state: their types, layouts and the
// plain encoding they use (little-endian integers, strings and byte strings
// prefixed by a u32 length). The log stores them as opaque (type, body)
// records; this schema is the broker's. Each type's fields, encoding and
// effect are written once, in its descriptor (record_schema.hpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hato::broker {

enum class StateRecord : uint8_t {
    RetainedSet = 1,   // message
    RetainedClear = 2, // topic
    SessionPut = 3,    // client, expiry_s u32, offline_since_wall_ms u64 [, owner extension]
    SessionRemove = 4, // client
    SubPut = 5,        // client, filter, options u8, sub_id u32
    SubRemove = 6,     // client, filter
    OutEnqueue = 7,    // client, seq u64, message [, delivery extension]
    OutState = 8,      // client, seq u64, state u8, packet_id u16
    OutDone = 9,       // client, seq u64
    Qos2InPut = 10,    // client, packet_id u16 [, digest extension]
    Qos2InRemove = 11, // client, packet_id u16
    WillPut = 12,      // client, delay_s u32, has_expiry u8, expiry_s u32, owner_source u8, username, listener i32, message
    WillRemove = 13,   // client
};
// A message: topic, payload (bytes), forwarded_props (bytes), qos u8,
// retain u8, expiry_wall_ms u64.
//
// Extensions: fields a record type gained later are appended after its
// original fields, behind one version byte. A body that ends before it is
// the old format (the fields take their defaults); version N holds the
// fields of every version up to N, so a reader takes what it knows and
// ignores what follows.
//   session_put  v1: owner_source u8 (broker::OwnerSource), username
//   out_enqueue  v1: sub_id count u32, sub_id u32 each, share_filter
//                v2: queued_wall_ms u64 (written for the sessions whose
//                backlog age is reported: the bridges' queues)
//                (left out when none of them is set)
//   qos2_in_put  v1: digest u64 of the message (left out when 0)
constexpr uint8_t kExtensionV1 = 1;
constexpr uint8_t kExtensionV2 = 2;

const char* state_record_name(uint8_t type);  // "?" for unknown types

class BodyWriter {
public:
    explicit BodyWriter(std::vector<uint8_t>& out) : out_(out) { out_.clear(); }
    void u8(uint8_t v) { out_.push_back(v); }
    void u16(uint16_t v) { raw(&v, 2); }
    void u32(uint32_t v) { raw(&v, 4); }
    void u64(uint64_t v) { raw(&v, 8); }
    void str(std::string_view s) {
        u32(static_cast<uint32_t>(s.size()));
        raw(s.data(), s.size());
    }
    void bytes(std::span<const uint8_t> b) {
        u32(static_cast<uint32_t>(b.size()));
        raw(b.data(), b.size());
    }

private:
    void raw(const void* p, size_t n) {
        const size_t at = out_.size();
        out_.resize(at + n);
        if (n) std::memcpy(out_.data() + at, p, n);
    }
    std::vector<uint8_t>& out_;
};

// Reads fields in order; any read past the end clears ok() and yields zeros.
class BodyReader {
public:
    explicit BodyReader(std::span<const uint8_t> in) : in_(in) {}
    bool ok() const { return ok_; }
    bool at_end() const { return pos_ == in_.size(); }
    uint8_t u8() { uint8_t v = 0; raw(&v, 1); return v; }
    uint16_t u16() { uint16_t v = 0; raw(&v, 2); return v; }
    uint32_t u32() { uint32_t v = 0; raw(&v, 4); return v; }
    uint64_t u64() { uint64_t v = 0; raw(&v, 8); return v; }
    std::string_view str() {
        const auto b = bytes();
        return {reinterpret_cast<const char*>(b.data()), b.size()};
    }
    std::span<const uint8_t> bytes() {
        const uint32_t n = u32();
        if (!ok_ || n > in_.size() - pos_) {
            ok_ = false;
            return {};
        }
        const auto b = in_.subspan(pos_, n);
        pos_ += n;
        return b;
    }

private:
    void raw(void* p, size_t n) {
        if (!ok_ || n > in_.size() - pos_) {
            ok_ = false;
            return;
        }
        std::memcpy(p, in_.data() + pos_, n);
        pos_ += n;
    }
    std::span<const uint8_t> in_;
    size_t pos_ = 0;
    bool ok_ = true;
};

// Whether this version can read the record: its type is known and its body decodes.
bool readable_state_record(uint8_t type, std::span<const uint8_t> body);

// One line of text for `hato store dump`: the decoded fields, payloads by length.
std::string describe_state_record(uint8_t type, std::span<const uint8_t> body);

}  // namespace hato::broker
