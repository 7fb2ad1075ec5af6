#include "store/frame.hpp"

#include <cstdio>
#include <cstring>

#include "store/crc32c.hpp"

namespace hato::store {
namespace {

uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

bool all_zero(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != 0) return false;
    return true;
}

}  // namespace

void write_record(uint8_t* dst, uint64_t lsn, uint8_t type, std::span<const uint8_t> body, bool group_open) {
    uint8_t header[kHeaderBytes] = {};
    const uint32_t magic = kRecordMagic;
    const uint32_t len = static_cast<uint32_t>(body.size());
    std::memcpy(header, &magic, 4);
    std::memcpy(header + 4, &len, 4);
    std::memcpy(header + 8, &lsn, 8);
    header[16] = type;
    uint32_t crc = crc32c(0, header, 20);
    crc = crc32c(crc, body.data(), body.size());
    std::memcpy(header + 20, &crc, 4);
    header[kGroupByte] = group_open ? 1 : 0;
    // Body first, header last: a torn write is caught by the checksum either
    // way, but this keeps a half-written record looking like "no record" more
    // often when the header page is the one lost.
    if (!body.empty()) std::memcpy(dst + kHeaderBytes, body.data(), body.size());
    const uint64_t pad = record_span(body.size()) - kHeaderBytes - body.size();
    if (pad) std::memset(dst + kHeaderBytes + body.size(), 0, pad);
    std::memcpy(dst, header, kHeaderBytes);
}

RecordView read_record(const uint8_t* p) {
    return RecordView{load64(p + 8), p[16], std::span<const uint8_t>(p + kHeaderBytes, load32(p + 4))};
}

namespace {

// Why the frame at `p` (with `room` bytes to the end of the segment) is not a
// well-formed record, or nullptr; sets `len` to its body length when it is.
const char* check_frame(const uint8_t* p, uint64_t room, uint64_t& len) {
    if (load32(p) != kRecordMagic) return "bad magic";
    len = load32(p + 4);
    if (len > room - kHeaderBytes) return "length past end of segment";
    if (p[kGroupByte] > 1 || p[18] || p[19]) return "nonzero reserved bytes";
    uint8_t head[20];
    std::memcpy(head, p, sizeof head);
    head[kGroupByte] = 0;
    uint32_t crc = crc32c(0, head, sizeof head);
    crc = crc32c(crc, p + kHeaderBytes, len);
    if (crc != load32(p + 20)) return "checksum mismatch";
    return nullptr;
}

// Whether a well-formed frame at `off` carrying `lsn` fits the sequence: the
// last valid record ended at `gap_start` and the next LSN is `expect_lsn`.
// Records lost in [gap_start, off) each took at least a header's worth of
// bytes, so the LSN may run ahead by at most (off - gap_start) / kHeaderBytes.
// That bound is what keeps stale bytes, and a frame-shaped run inside a
// damaged record's body (a payload can hold anything), from being taken for
// a record unless it also carries an LSN right for its place.
bool lsn_fits(uint64_t lsn, uint64_t expect_lsn, uint64_t off, uint64_t gap_start) {
    return lsn >= expect_lsn && lsn - expect_lsn <= (off - gap_start) / kHeaderBytes;
}

// Resynchronisation after a bad frame or a zero header at `from`: the first
// offset after it (at the record alignment) holding a well-formed frame
// whose LSN fits and is past `expect_lsn` (that record was lost), or 0.
uint64_t find_next_frame(const uint8_t* data, uint64_t size, uint64_t from, uint64_t gap_start,
                         uint64_t expect_lsn) {
    constexpr uint8_t kMagicFirstByte = kRecordMagic & 0xFF;
    uint64_t q = from + kRecordAlign;
    while (q + kHeaderBytes <= size) {
        // memchr skips zeroed and preallocated space quickly.
        const void* hit = std::memchr(data + q, kMagicFirstByte, size - kHeaderBytes + 1 - q);
        if (!hit) return 0;
        const uint64_t h = static_cast<uint64_t>(static_cast<const uint8_t*>(hit) - data);
        if (h % kRecordAlign) {
            q = (h + kRecordAlign) & ~uint64_t(kRecordAlign - 1);
            continue;
        }
        uint64_t len = 0;
        const uint64_t lsn = load64(data + h + 8);
        if (lsn > expect_lsn && lsn_fits(lsn, expect_lsn, h, gap_start) && !check_frame(data + h, size - h, len))
            return h;
        q = h + kRecordAlign;
    }
    return 0;
}

}  // namespace

void write_filler(uint8_t* dst, uint64_t span) {
    // The body is zeroed in place (it is the damaged bytes, already copied
    // to quarantine); the checksum covers it like any other body.
    const uint64_t len = span - kHeaderBytes;
    std::memset(dst + kHeaderBytes, 0, len);
    uint8_t header[kHeaderBytes] = {};
    const uint32_t magic = kRecordMagic;
    const uint32_t len32 = static_cast<uint32_t>(len);
    std::memcpy(header, &magic, 4);
    std::memcpy(header + 4, &len32, 4);
    header[16] = kFillerType;  // LSN (8..16) stays 0
    uint32_t crc = crc32c(0, header, 20);
    crc = crc32c(crc, dst + kHeaderBytes, len);
    std::memcpy(header + 20, &crc, 4);
    std::memcpy(dst, header, kHeaderBytes);
}

SegmentScan scan_segment(const uint8_t* data, uint64_t size, uint64_t base_lsn,
                         const std::function<void(const RecordView&, uint64_t offset)>& fn) {
    SegmentScan s;
    uint64_t off = 0;
    uint64_t expect_lsn = base_lsn;
    uint64_t gap_start = 0;  // end of the last valid record
    while (size - off >= kHeaderBytes) {
        const uint8_t* p = data + off;
        const bool zero = all_zero(p, kHeaderBytes);  // preallocated zeros: the end, normally
        uint64_t len = 0;
        const char* why = zero ? nullptr : check_frame(p, size - off, len);
        if (!zero && !why) {
            const uint64_t lsn = load64(p + 8);
            if (lsn == 0 && p[16] == kFillerType) {
                s.fillers.push_back({off, record_span(len)});
                off += record_span(len);
                continue;
            }
            // A record with a valid checksum but an LSN that does not fit is
            // stale data from before an earlier cut, never part of this log.
            if (!lsn_fits(lsn, expect_lsn, off, gap_start)) why = "unexpected lsn";
        }
        if (zero || why) {
            const uint64_t next = find_next_frame(data, size, off, gap_start, expect_lsn);
            if (!next) {
                // Nothing valid after it: the end of the log, or a torn tail.
                s.corrupt = !zero;
                if (why) s.reason = why;
                break;
            }
            if (s.skipped.empty()) s.skip_reason = zero ? "zeroed bytes" : why;
            s.skipped.push_back({off, next - off});
            off = next;
            continue;
        }
        const RecordView rec = read_record(p);
        if (!group_open(p)) {
            s.open_group_records = 0;
        } else if (s.open_group_records++ == 0) {
            s.open_group_at = off;
            s.closed_before_open_group = s.records != 0;
        }
        if (s.records == 0) s.first_lsn = rec.lsn;
        s.last_lsn = rec.lsn;
        ++s.records;
        if (!s.skipped.empty()) ++s.kept_after_skip;
        expect_lsn = rec.lsn + 1;
        if (fn) fn(rec, off);
        off += record_span(len);
        if (off > size) off = size;  // padding cut by the end of a file (never written so)
        gap_start = off;
    }
    s.end = off;
    return s;
}

bool is_foreign_segment(const uint8_t* data, uint64_t size, const SegmentScan& scan) {
    if (scan.records || !scan.fillers.empty() || !scan.skipped.empty()) return false;
    if (size >= 4 && load32(data) == kRecordMagic) return false;  // a torn first record
    return !all_zero(data, size);
}

std::string segment_file_name(uint64_t base_lsn) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx.seg", static_cast<unsigned long long>(base_lsn));
    return buf;
}

bool parse_segment_file_name(const std::string& name, uint64_t& base_lsn) {
    if (name.size() != 20 || name.compare(16, 4, ".seg") != 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; ++i) {
        const char c = name[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return false;
        v = (v << 4) | static_cast<uint64_t>(d);
    }
    base_lsn = v;
    return true;
}

}  // namespace hato::store
