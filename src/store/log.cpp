// The append log (see log.hpp and docs/durability.md).
#include "store/log.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <sstream>

#include "store/frame.hpp"
#include "store/segment.hpp"

namespace hato::store {
namespace {

constexpr uint64_t kMinSegmentBytes = 4096;
// After the disk was found full, plain appends that need new space are
// refused for this long without asking the file system again.
constexpr uint64_t kDiskFullRetryMs = 100;
constexpr const char* kSpareName = "reserve.spare";

uint64_t mono_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

bool make_dirs(const std::string& dir, std::string& err) {
    // mkdir -p: every prefix ending before a '/', then the whole path.
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        const std::string prefix = dir.substr(0, pos);
        if (mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
            err = prefix + ": mkdir: " + std::strerror(errno);
            return false;
        }
    }
    return true;
}

class SegmentLog final : public Log {
public:
    explicit SegmentLog(const Options& opt) : opt_(opt) {
        // Page multiple, so records (8-aligned) never straddle the end.
        opt_.segment_bytes = std::max(kMinSegmentBytes, (opt_.segment_bytes + 4095) & ~uint64_t(4095));
    }

    bool recover(std::string& err);

    void replay(const std::function<void(const RecordView&)>& fn) override {
        for (const Segment& seg : segs_)
            for (uint64_t off = 0; off < seg.end;) {
                const RecordView rec = read_record(seg.map + off);
                fn(rec);
                off += record_span(rec.body.size());
            }
    }

    std::string recovery_summary() const override { return summary_; }

    AppendError append(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) override {
        return append_impl(type, body, lsn, true);
    }
    AppendError append_exempt(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) override {
        return append_impl(type, body, lsn, false);
    }

    bool refusing() override;

    uint64_t last_lsn() const override { return next_lsn_ - 1; }
    uint64_t durable_lsn() const override {
        return opt_.sync == SyncMode::Off ? last_lsn() : durable_lsn_;
    }

    SyncBatch begin_sync() override;
    void end_sync(uint64_t lsn, bool ok) override;
    bool sync_now() override;

    bool compact_step(const std::function<bool(const RecordView&)>& live,
                      const std::function<void(uint64_t, uint64_t)>& moved, size_t budget) override;

    uint64_t bytes_used() const override { return bytes_used_; }
    bool wants_compaction() const override;
    void mark_dead(uint64_t lsn) override;
    uint64_t segment_count() const override { return segs_.size(); }
    uint64_t max_bytes() const override { return opt_.max_bytes; }
    std::span<const uint8_t> last_body() const override { return last_body_; }

private:
    AppendError append_impl(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn, bool metered);
    AppendError add_segment();
    bool try_delete_compacted();
    // The reserve: one preallocated segment that only exempt appends may
    // move into once the disk is full.
    std::string spare_path() const { return opt_.dir + "/" + kSpareName; }
    bool ensure_spare();        // true if the spare exists (created if missing and possible)
    AppendError take_spare();   // the spare becomes the next segment
    bool disk_known_full() const { return full_until_ms_ != 0 && mono_ms() < full_until_ms_; }

    Options opt_;
    std::deque<Segment> segs_;  // oldest first; the back one takes appends
    uint64_t next_lsn_ = 1;
    uint64_t durable_lsn_ = 0;
    uint64_t bytes_used_ = 0;   // sum of segment write offsets
    uint64_t total_records_ = 0;
    uint64_t total_dead_ = 0;
    bool sync_in_flight_ = false;
    std::span<const uint8_t> last_body_;  // of the record appended last
    std::string summary_;
    Segment spare_;                  // fd < 0: none (used up, or no room for it)
    uint64_t full_until_ms_ = 0;     // the disk was full; do not ask again before
    bool io_failed_ = false;         // the last sync failed

    // Compaction of segs_.front(): scan position, and once scanned, the LSN
    // that must be durable before the segment may go.
    bool compacting_ = false;
    bool scan_done_ = false;
    uint64_t compact_off_ = 0;
    uint64_t delete_after_lsn_ = 0;
};

bool SegmentLog::recover(std::string& err) {
    if (!make_dirs(opt_.dir, err)) return false;
    DIR* d = opendir(opt_.dir.c_str());
    if (!d) {
        err = opt_.dir + ": opendir: " + std::strerror(errno);
        return false;
    }
    std::vector<uint64_t> bases;
    while (dirent* e = readdir(d)) {
        uint64_t base;
        if (parse_segment_file_name(e->d_name, base)) bases.push_back(base);
    }
    closedir(d);
    std::sort(bases.begin(), bases.end());

    std::ostringstream sum;
    uint64_t cut_bytes = 0;
    for (size_t i = 0; i < bases.size(); ++i) {
        const std::string path = opt_.dir + "/" + segment_file_name(bases[i]);
        Segment seg;
        if (!open_segment(seg, path, bases[i], true, err)) return false;
        if (seg.size < kHeaderBytes) {
            // A crash between creating a segment and reserving its space.
            seg.close();
            ::unlink(path.c_str());
            sum << "removed empty segment " << path << "; ";
            continue;
        }
        const SegmentScan scan = scan_segment(seg.map, seg.size, seg.base_lsn);
        seg.end = scan.end;
        seg.records = scan.records;
        seg.last_lsn = scan.last_lsn;
        const bool is_last = i + 1 == bases.size();
        if (scan.corrupt) {
            if (is_last) {
                cut_bytes += seg.size - scan.end;
                sum << "cut torn tail of " << path << " at offset " << scan.end << " (" << scan.reason
                    << "); ";
            } else {
                // With one writer a later segment exists only once this one was
                // complete: a bad record here is media corruption. Keep going.
                sum << "MEDIA CORRUPTION in " << path << " at offset " << scan.end << " (" << scan.reason
                    << "), rest of that segment dropped; ";
                seg.sealed = true;
            }
        }
        if (!is_last) seg.sealed = true;
        // Records found may sit only in the page cache (the process died, the
        // machine did not): make them durable before anything builds on them.
        if (!is_last && fdatasync(seg.fd) != 0) {
            err = path + ": fdatasync: " + std::strerror(errno);
            return false;
        }
        next_lsn_ = std::max(next_lsn_, std::max(seg.base_lsn, scan.last_lsn + 1));
        total_records_ += seg.records;
        bytes_used_ += seg.end;
        segs_.push_back(std::move(seg));
    }
    if (segs_.empty()) {
        if (const AppendError e = add_segment(); e != AppendError::None) {
            err = "cannot create the first segment in " + opt_.dir;
            return false;
        }
    } else {
        // Clear whatever follows the last record of the active segment (a torn
        // record, or stale bytes written after the last sync) so it can never
        // be mistaken for data once new records are written in front of it.
        Segment& last = segs_.back();
        if (!zero_segment_tail(last, last.end)) {
            err = last.path + ": cannot clear the tail: " + std::strerror(errno);
            return false;
        }
    }
    durable_lsn_ = last_lsn();  // everything found on disk is on disk
    // A spare left by the last run is reused as it is (never written to).
    // Only its fd is kept: it is mapped when it is taken, so its pages cost
    // no memory meanwhile.
    const std::string spare = spare_path();
    struct stat st{};
    if (::stat(spare.c_str(), &st) == 0) {
        spare_.fd = uint64_t(st.st_size) == opt_.segment_bytes ? ::open(spare.c_str(), O_RDWR | O_CLOEXEC) : -1;
        if (spare_.fd < 0) ::unlink(spare.c_str());
        spare_.path = spare;
        spare_.size = opt_.segment_bytes;
    }
    const bool reserved = ensure_spare();
    std::ostringstream head;
    head << "store " << opt_.dir << ": " << segs_.size() << " segment(s), " << total_records_
         << " record(s), " << bytes_used_ << " bytes, next lsn " << next_lsn_;
    if (cut_bytes) head << ", " << cut_bytes << " bytes cut";
    if (!reserved) head << ", NO ROOM FOR THE RESERVE SEGMENT (new durable work refused until there is)";
    summary_ = head.str() + (sum.str().empty() ? "" : "; " + sum.str());
    return true;
}

AppendError SegmentLog::add_segment() {
    // An empty last segment too short for the record (a file cut short before
    // a crash) has the very name the new one needs: replace it.
    if (!segs_.empty() && segs_.back().records == 0 && segs_.back().base_lsn == next_lsn_) {
        ::unlink(segs_.back().path.c_str());
        segs_.pop_back();
    }
    if (!segs_.empty()) segs_.back().sealed = true;
    Segment seg;
    std::string err;
    const std::string path = opt_.dir + "/" + segment_file_name(next_lsn_);
    const SegmentError e = create_segment(seg, path, next_lsn_, opt_.segment_bytes, err);
    if (e != SegmentError::None) {
        if (!segs_.empty()) segs_.back().sealed = false;  // keep using it if it has room
        return e == SegmentError::DiskFull ? AppendError::DiskFull : AppendError::IoError;
    }
    // The new name must survive a crash before records in it are called durable.
    if (!fsync_dir(opt_.dir)) {
        seg.close();
        ::unlink(path.c_str());
        if (!segs_.empty()) segs_.back().sealed = false;
        return AppendError::IoError;
    }
    segs_.push_back(std::move(seg));
    return AppendError::None;
}

bool SegmentLog::ensure_spare() {
    if (spare_.fd >= 0) return true;
    if (disk_known_full()) return false;
    const std::string path = spare_path();
    ::unlink(path.c_str());  // a leftover of a creation cut short
    std::string err;
    if (create_segment(spare_, path, 0, opt_.segment_bytes, err) == SegmentError::None && fsync_dir(opt_.dir)) {
        full_until_ms_ = 0;
        return true;
    }
    spare_.close();
    ::unlink(path.c_str());
    full_until_ms_ = mono_ms() + kDiskFullRetryMs;
    return false;
}

AppendError SegmentLog::take_spare() {
    const std::string path = opt_.dir + "/" + segment_file_name(next_lsn_);
    if (!segs_.empty() && segs_.back().records == 0 && segs_.back().base_lsn == next_lsn_) {
        ::unlink(segs_.back().path.c_str());
        segs_.pop_back();
    }
    if (!spare_.map) {
        void* p = mmap(nullptr, spare_.size, PROT_READ | PROT_WRITE, MAP_SHARED, spare_.fd, 0);
        if (p == MAP_FAILED) return AppendError::IoError;
        spare_.map = static_cast<uint8_t*>(p);
    }
    if (::rename(spare_.path.c_str(), path.c_str()) != 0) return AppendError::IoError;
    if (!fsync_dir(opt_.dir)) {
        ::rename(path.c_str(), spare_.path.c_str());
        return AppendError::IoError;
    }
    if (!segs_.empty()) segs_.back().sealed = true;
    spare_.path = path;
    spare_.base_lsn = next_lsn_;
    segs_.push_back(std::move(spare_));
    spare_ = Segment{};
    return AppendError::None;
}

bool SegmentLog::refusing() {
    if (io_failed_) return true;
    if (opt_.max_bytes && bytes_used_ >= opt_.max_bytes) return true;
    return !ensure_spare() || disk_known_full();
}

AppendError SegmentLog::append_impl(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn,
                                    bool metered) {
    const uint64_t span = record_span(body.size());
    if (body.size() > UINT32_MAX || span > opt_.segment_bytes) return AppendError::TooLarge;
    if (metered) {
        if (io_failed_) return AppendError::IoError;
        if (opt_.max_bytes && bytes_used_ + span > opt_.max_bytes) return AppendError::QuotaExceeded;
        if (!ensure_spare()) return AppendError::DiskFull;
    }
    if (segs_.empty() || segs_.back().sealed || segs_.back().end + span > segs_.back().size) {
        if (metered && disk_known_full()) return AppendError::DiskFull;
        AppendError e = add_segment();
        if (e == AppendError::DiskFull) {
            if (!metered && spare_.fd >= 0) e = take_spare();
            else full_until_ms_ = mono_ms() + kDiskFullRetryMs;
        }
        if (e != AppendError::None) return e;
    }
    Segment& seg = segs_.back();
    lsn = next_lsn_++;
    write_record(seg.map + seg.end, lsn, type, body);
    last_body_ = read_record(seg.map + seg.end).body;
    seg.end += span;
    seg.records++;
    seg.last_lsn = lsn;
    seg.dirty = true;
    bytes_used_ += span;
    total_records_++;
    return AppendError::None;
}

Log::SyncBatch SegmentLog::begin_sync() {
    SyncBatch b;
    b.lsn = last_lsn();
    if (opt_.sync == SyncMode::Off) return b;  // durable_lsn() already says last_lsn()
    for (Segment& seg : segs_)
        if (seg.dirty) {
            // MAP_SHARED stores dirty the file's page cache directly, and on
            // Linux fdatasync writes back pages dirtied through mappings too
            // (see docs/durability.md), so no msync is needed.
            b.fds.push_back(seg.fd);
            seg.dirty = false;
        }
    sync_in_flight_ = !b.fds.empty();
    if (b.fds.empty()) durable_lsn_ = std::max(durable_lsn_, b.lsn);
    return b;
}

void SegmentLog::end_sync(uint64_t lsn, bool ok) {
    sync_in_flight_ = false;
    if (!ok) {
        // Which pages failed is unknown: sync everything again next time, and
        // never claim durability we did not get. Until a sync succeeds again
        // (read-only file system, EIO), plain appends are refused.
        for (Segment& seg : segs_) seg.dirty = true;
        io_failed_ = true;
        return;
    }
    io_failed_ = false;
    durable_lsn_ = std::max(durable_lsn_, lsn);
    try_delete_compacted();
}

bool SegmentLog::sync_now() {
    SyncBatch b;
    b.lsn = last_lsn();
    for (Segment& seg : segs_)
        if (seg.dirty) {
            b.fds.push_back(seg.fd);
            seg.dirty = false;
        }
    bool ok = true;
    for (int fd : b.fds) ok = fdatasync(fd) == 0 && ok;
    end_sync(b.lsn, ok);
    return ok;
}

void SegmentLog::mark_dead(uint64_t lsn) {
    // The segment holding `lsn`: the last one whose base is <= lsn.
    auto it = std::upper_bound(segs_.begin(), segs_.end(), lsn,
                               [](uint64_t l, const Segment& s) { return l < s.base_lsn; });
    if (it == segs_.begin()) return;  // already compacted away
    --it;
    if (lsn > it->last_lsn || it->dead >= it->records) return;
    it->dead++;
    total_dead_++;
}

bool SegmentLog::wants_compaction() const {
    if (compacting_) return true;
    if (segs_.size() < 2) return false;  // the active segment is never compacted
    const Segment& oldest = segs_.front();
    // Oldest segment mostly dead: compacting it frees much for little copying.
    if (oldest.dead * 2 >= oldest.records) return true;
    // Half the whole log dead, with at least three segments: rotate through,
    // copying live records forward, even if the oldest is busy.
    if (segs_.size() > 2 && total_dead_ * 2 >= total_records_) return true;
    // Close to the quota: anything dead in the oldest segment is worth reclaiming.
    if (opt_.max_bytes && bytes_used_ * 10 >= opt_.max_bytes * 9 && oldest.dead > 0) return true;
    return false;
}

bool SegmentLog::compact_step(const std::function<bool(const RecordView&)>& live,
                              const std::function<void(uint64_t, uint64_t)>& moved, size_t budget) {
    if (!compacting_) {
        if (segs_.size() < 2) return false;
        compacting_ = true;
        scan_done_ = false;
        compact_off_ = 0;
    }
    if (!scan_done_) {
        Segment& old = segs_.front();  // stays valid: appends only push_back
        for (size_t n = 0; n < budget && compact_off_ < old.end; ++n) {
            const RecordView rec = read_record(old.map + compact_off_);
            if (live(rec)) {
                uint64_t new_lsn = 0;
                // Copies are not held to the quota: they are what lets it shrink.
                if (append_impl(rec.type, rec.body, new_lsn, false) != AppendError::None)
                    return true;  // disk full or I/O error: try again later
                moved(rec.lsn, new_lsn);
            }
            compact_off_ += record_span(rec.body.size());
        }
        if (compact_off_ < old.end) return true;
        scan_done_ = true;
        delete_after_lsn_ = last_lsn();
    }
    return !try_delete_compacted();
}

// Removes the compacted segment once every copy made from it is durable.
bool SegmentLog::try_delete_compacted() {
    if (!compacting_ || !scan_done_ || sync_in_flight_ || durable_lsn() < delete_after_lsn_) return false;
    Segment& old = segs_.front();
    ::unlink(old.path.c_str());
    fsync_dir(opt_.dir);
    bytes_used_ -= old.end;
    total_records_ -= old.records;
    total_dead_ -= old.dead;
    segs_.pop_front();
    full_until_ms_ = 0;  // room again, perhaps
    compacting_ = false;
    scan_done_ = false;
    return true;
}

}  // namespace

std::unique_ptr<Log> Log::open(const Options& opt, std::string& err) {
    auto log = std::make_unique<SegmentLog>(opt);
    if (!log->recover(err)) return nullptr;
    return log;
}

}  // namespace hato::store
