// On-disk framing of one log record, shared by the log and `hato store`.
//
//   off  size  field
//   0    4     magic 'HATO' (0x4F544148 little-endian)
//   4    4     body length
//   8    8     LSN
//   16   1     type
//   17   3     zero
//   20   4     CRC32C over bytes 0..20 and the body
//   24   n     body, then zero padding to a multiple of 8
//
// A header of 24 zero bytes marks the end of a segment (preallocated space
// reads as zeros). Everything is little-endian.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "store/log.hpp"

namespace hato::store {

static_assert(std::endian::native == std::endian::little, "the log format is little-endian");

constexpr uint32_t kRecordMagic = 0x4F544148u;
constexpr size_t kHeaderBytes = 24;
constexpr size_t kRecordAlign = 8;

// Bytes a record with `body_len` bytes of body occupies in a segment.
constexpr uint64_t record_span(uint64_t body_len) {
    return (kHeaderBytes + body_len + kRecordAlign - 1) & ~uint64_t(kRecordAlign - 1);
}

// Writes header, body and padding at `dst` (record_span(body.size()) bytes).
void write_record(uint8_t* dst, uint64_t lsn, uint8_t type, std::span<const uint8_t> body);

// The record at `p` (already validated by scan_segment).
RecordView read_record(const uint8_t* p);

// What a scan of one segment found.
struct SegmentScan {
    uint64_t end = 0;        // offset just past the last valid record
    uint64_t records = 0;
    uint64_t first_lsn = 0;  // 0 when the segment holds no record
    uint64_t last_lsn = 0;
    bool corrupt = false;    // stopped at a bad record (else: zero header or end of file)
    std::string reason;      // why, when corrupt
};

// Walks the records of a segment whose first record must carry `base_lsn`
// (LSNs are consecutive inside a segment), verifying every checksum, and
// stops at the first zero header or bad record. Calls `fn` for each valid one
// when given.
SegmentScan scan_segment(const uint8_t* data, uint64_t size, uint64_t base_lsn,
                         const std::function<void(const RecordView&, uint64_t offset)>& fn = {});

// Segment file names: the base LSN as 16 hex digits, ".seg".
std::string segment_file_name(uint64_t base_lsn);
// Parses a name made by segment_file_name; false for anything else.
bool parse_segment_file_name(const std::string& name, uint64_t& base_lsn);

}  // namespace hato::store
