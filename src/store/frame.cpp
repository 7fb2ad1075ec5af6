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

void write_record(uint8_t* dst, uint64_t lsn, uint8_t type, std::span<const uint8_t> body) {
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

SegmentScan scan_segment(const uint8_t* data, uint64_t size, uint64_t base_lsn,
                         const std::function<void(const RecordView&, uint64_t offset)>& fn) {
    SegmentScan s;
    uint64_t off = 0;
    uint64_t expect_lsn = base_lsn;
    while (size - off >= kHeaderBytes) {
        const uint8_t* p = data + off;
        if (all_zero(p, kHeaderBytes)) break;  // preallocated zeros: end of the log
        auto bad = [&](const char* why) {
            s.corrupt = true;
            s.reason = why;
        };
        if (load32(p) != kRecordMagic) { bad("bad magic"); break; }
        const uint64_t len = load32(p + 4);
        if (len > size - off - kHeaderBytes) { bad("length past end of segment"); break; }
        if (p[17] || p[18] || p[19]) { bad("nonzero reserved bytes"); break; }
        uint32_t crc = crc32c(0, p, 20);
        crc = crc32c(crc, p + kHeaderBytes, len);
        if (crc != load32(p + 20)) { bad("checksum mismatch"); break; }
        // A record with a valid checksum but an unexpected LSN is stale data
        // from before an earlier cut, never part of this log.
        if (load64(p + 8) != expect_lsn) { bad("unexpected lsn"); break; }
        const RecordView rec = read_record(p);
        if (s.records == 0) s.first_lsn = rec.lsn;
        s.last_lsn = rec.lsn;
        ++s.records;
        ++expect_lsn;
        if (fn) fn(rec, off);
        off += record_span(len);
        if (off > size) off = size;  // padding cut by the end of a file (never written so)
    }
    s.end = off;
    return s;
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
