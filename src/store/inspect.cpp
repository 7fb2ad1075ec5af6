#include "store/inspect.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "store/frame.hpp"
#include "store/segment.hpp"

namespace hato::store {
namespace {

// Base LSNs of the segment files in `dir`, sorted; false if unreadable.
bool list_segments(const std::string& dir, std::vector<uint64_t>& bases, std::ostream& out) {
    DIR* d = opendir(dir.c_str());
    if (!d) {
        out << dir << ": cannot open directory\n";
        return false;
    }
    while (dirent* e = readdir(d)) {
        uint64_t base;
        if (parse_segment_file_name(e->d_name, base)) bases.push_back(base);
    }
    closedir(d);
    std::sort(bases.begin(), bases.end());
    return true;
}

// Calls fn(segment, scan-callback) for each segment; returns the exit code.
template <class PerSegment>
int for_each_segment(const std::string& dir, std::ostream& out, PerSegment&& fn) {
    std::vector<uint64_t> bases;
    if (!list_segments(dir, bases, out)) return 2;
    int rc = 0;
    for (uint64_t base : bases) {
        Segment seg;
        std::string err;
        if (!open_segment(seg, dir + "/" + segment_file_name(base), base, false, err)) {
            out << err << "\n";
            rc = 2;
            continue;
        }
        if (fn(seg) && rc == 0) rc = 1;
    }
    return rc;
}

// Whether a file too short to map holds only zeros (an empty segment).
bool short_file_is_zero(const Segment& seg) {
    uint8_t buf[64];
    const ssize_t n = pread(seg.fd, buf, sizeof buf, 0);
    for (ssize_t i = 0; i < n; ++i)
        if (buf[i]) return false;
    return true;
}

}  // namespace

int store_verify(const std::string& dir, std::ostream& out, RecordInspector* owner) {
    uint64_t total_records = 0, prev_last = 0, segments = 0;
    bool bad = false;
    bool empty_before = false;   // the segment before this one is an empty file
    const int rc = for_each_segment(dir, out, [&](const Segment& seg) {
        ++segments;
        if (empty_before) {
            // Only the newest segment can be empty after a crash.
            out << "  EMPTY though later segments exist: the records it held are LOST (moved to quarantine at "
                   "next start)\n";
            bad = true;
            empty_before = false;
        }
        out << segment_file_name(seg.base_lsn) << ": ";
        if (seg.size < kHeaderBytes) {
            if (!short_file_is_zero(seg)) {
                out << "NOT A HATO SEGMENT (too short to hold a record), moved to quarantine at next start\n";
                bad = true;
                return true;
            }
            out << "empty file (" << seg.size << " bytes)\n";
            empty_before = true;
            return bad;
        }
        const SegmentScan s = scan_segment(seg.map, seg.size, seg.base_lsn, [&](const RecordView& rec, uint64_t) {
            if (owner) owner->observe(rec);
        });
        if (is_foreign_segment(seg.map, seg.size, s)) {
            out << "NOT A HATO SEGMENT (no valid record), moved to quarantine at next start\n";
            bad = true;
            return true;
        }
        total_records += s.records;
        out << s.records << " records, " << s.end << " of " << seg.size << " bytes";
        if (s.records) out << ", lsn " << s.first_lsn << ".." << s.last_lsn;
        if (prev_last && s.records && seg.base_lsn <= prev_last) {
            out << ", OVERLAPS the previous segment";
            bad = true;
        }
        if (s.records) prev_last = s.last_lsn;
        if (s.corrupt) {
            out << ", CORRUPT at offset " << s.end << ": " << s.reason;
            bad = true;
        }
        if (!s.skipped.empty()) {
            out << ", DAMAGED: " << s.skipped.size() << " range(s) skipped (the first starts with "
                << s.skip_reason << "), " << s.kept_after_skip << " record(s) after them";
            bad = true;
        }
        out << "\n";
        for (const ByteRange& r : s.skipped)
            out << "  skipped: segment " << segment_file_name(seg.base_lsn) << " offset " << r.offset << " length "
                << r.length << "\n";
        // Ranges an earlier recovery skipped and filled, after copying the
        // segment to quarantine: the log is consistent, so they are not errors.
        for (const ByteRange& r : s.fillers)
            out << "  repaired earlier (copy in quarantine/): segment " << segment_file_name(seg.base_lsn)
                << " offset " << r.offset << " length " << r.length << "\n";
        return bad;
    });
    if (empty_before) out << "  the last segment: removed at next start\n";
    const bool owner_bad = owner && owner->summarize(out, false);
    bad |= owner_bad;
    // A store that could not be read is not "ok" (a script may grep for it).
    out << segments << " segment(s), " << total_records << " record(s): "
        << (rc == 2 ? "NOT READ" : bad ? "CORRUPTION FOUND" : "ok") << "\n";
    return rc == 0 && owner_bad ? 1 : rc;
}

int store_dump(const std::string& dir, std::ostream& out, RecordInspector* owner) {
    const int rc = for_each_segment(dir, out, [&](const Segment& seg) {
        out << "# segment " << segment_file_name(seg.base_lsn) << "\n";
        if (seg.size < kHeaderBytes) return false;
        const SegmentScan s = scan_segment(seg.map, seg.size, seg.base_lsn, [&](const RecordView& rec, uint64_t) {
            out << rec.lsn << " ";
            if (owner) {
                out << owner->describe(rec.type, rec.body);
                owner->observe(rec);
            } else {
                out << "type " << unsigned(rec.type) << " (" << rec.body.size() << " bytes)";
            }
            out << "\n";
        });
        for (const ByteRange& r : s.skipped)
            out << "# skipped damaged bytes at offset " << r.offset << ", length " << r.length << "\n";
        if (s.corrupt) out << "# stops at offset " << s.end << ": " << s.reason << "\n";
        return s.corrupt || !s.skipped.empty();
    });
    if (owner) owner->summarize(out, true);
    return rc;
}

}  // namespace hato::store
