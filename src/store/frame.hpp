// On-disk framing of one log record, shared by the log and `hato store`.
//
//   off  size  field
//   0    4     magic 'HATO' (0x4F544148 little-endian)
//   4    4     body length
//   8    8     LSN
//   16   1     type
//   17   1     1 while the record's group is open (Log::begin_group), else 0
//   18   2     zero
//   20   4     CRC32C over bytes 0..20 (byte 17 taken as 0) and the body
//   24   n     body, then zero padding to a multiple of 8
//
// A header of 24 zero bytes marks the end of a segment (preallocated space
// reads as zeros), unless a valid record follows further on (see
// scan_segment). Everything is little-endian.
//
// Byte 17 is outside the checksum so that closing a group is one byte
// written per record; once closed a record reads as it always did (a
// binary from before groups reads it too). A group still open when the
// process died is dropped by recovery whole.
//
// A filler frame (LSN 0, type 0, zero body) covers a damaged range that an
// earlier recovery skipped, once the damaged bytes were copied to
// quarantine: it makes the segment walkable record by record again, and
// tells the scan that the LSNs after it may jump over the records lost.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

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
void write_record(uint8_t* dst, uint64_t lsn, uint8_t type, std::span<const uint8_t> body,
                  bool group_open = false);
constexpr size_t kGroupByte = 17;
inline bool group_open(const uint8_t* record) { return record[kGroupByte] != 0; }
inline void close_group(uint8_t* record) { record[kGroupByte] = 0; }

constexpr uint8_t kFillerType = 0;
// Overwrites [dst, dst + span) (span a multiple of 8, at least a header)
// with one filler frame.
void write_filler(uint8_t* dst, uint64_t span);
inline bool is_filler(const RecordView& rec) { return rec.lsn == 0 && rec.type == kFillerType; }

// The record at `p` (already validated by scan_segment).
RecordView read_record(const uint8_t* p);

// A byte range of a segment: [offset, offset + length).
struct ByteRange {
    uint64_t offset = 0;
    uint64_t length = 0;
};

// What a scan of one segment found.
struct SegmentScan {
    uint64_t end = 0;        // offset just past the last valid record
    uint64_t records = 0;    // valid records (fillers not counted)
    uint64_t first_lsn = 0;  // 0 when the segment holds no record
    uint64_t last_lsn = 0;
    bool corrupt = false;    // a bad frame after the last valid record (a torn
                             // tail: nothing valid follows it)
    std::string reason;      // why, when corrupt
    // Damage in the middle: bad bytes with a valid record after them, skipped.
    std::vector<ByteRange> skipped;
    std::string skip_reason;     // what the first skipped range started with
    uint64_t kept_after_skip = 0;  // valid records after the first skipped range
    std::vector<ByteRange> fillers;  // ranges an earlier recovery skipped
    // The valid records at the end of the segment whose group is still open
    // (a process stopped while writing them): from `open_group_at`, a count
    // of them (0: none), and whether a closed record comes before them here.
    uint64_t open_group_at = 0;
    uint64_t open_group_records = 0;
    bool closed_before_open_group = false;
};

// Walks the records of a segment whose first record must carry `base_lsn`
// (LSNs are consecutive inside a segment, except across a skipped range or a
// filler), verifying every checksum. At a bad frame or a zero header it
// looks further on for a valid record (resynchronises) and goes on from
// there; it stops only when nothing valid follows. Calls `fn` for each valid
// record (never for fillers) when given.
SegmentScan scan_segment(const uint8_t* data, uint64_t size, uint64_t base_lsn,
                         const std::function<void(const RecordView&, uint64_t offset)>& fn = {});

// A file named like a segment that holds no hato record: no valid frame, not
// all zeros, and not starting with a record magic (which would be a torn
// first record). Recovery moves such a file to quarantine untouched.
bool is_foreign_segment(const uint8_t* data, uint64_t size, const SegmentScan& scan);

// Segment file names: the base LSN as 16 hex digits, ".seg".
std::string segment_file_name(uint64_t base_lsn);
// Parses a name made by segment_file_name; false for anything else.
bool parse_segment_file_name(const std::string& name, uint64_t& base_lsn);

}  // namespace hato::store
