// The append log (see log.hpp and docs/durability.md).
#include "store/log.hpp"
#include "store/log_pages.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iterator>
#include <sstream>

#include "store/frame.hpp"
#include "store/quarantine.hpp"
#include "store/segment.hpp"

namespace hato::store {
namespace {

constexpr uint64_t kMinSegmentBytes = 4096;
// After the disk was found full, plain appends that need new space are
// refused for this long without asking the file system again.
constexpr uint64_t kDiskFullRetryMs = 100;
// The reserve: two preallocated segments (see ensure_spare), the first
// named as earlier versions named their one.
constexpr const char* kSpareNames[] = {"reserve.spare", "reserve.spare2"};
constexpr size_t kSpares = std::size(kSpareNames);
// No log reaches this LSN (2^62: a million records a second for 146 000
// years); a segment named past it is no segment of ours.
constexpr uint64_t kLsnLimit = uint64_t(1) << 62;

uint64_t mono_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

// Whether the first bytes of a file too short to map are all zero.
bool file_is_zero(int fd) {
    uint8_t buf[64];
    const ssize_t n = pread(fd, buf, sizeof buf, 0);
    for (ssize_t i = 0; i < n; ++i)
        if (buf[i]) return false;
    return n >= 0;
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
    ~SegmentLog() override {
        if (lock_fd_ >= 0) ::close(lock_fd_);
    }

    bool recover(std::string& err);

    void release_resident_pages() {
        for (const Segment& seg : segs_)
            if (seg.map) madvise(seg.map, seg.size, MADV_DONTNEED);
    }

    void replay(const std::function<void(const RecordView&)>& fn) override {
        for (const Segment& seg : segs_)
            for (uint64_t off = 0; off < seg.end;) {
                const RecordView rec = read_record(seg.map + off);
                if (!is_filler(rec)) fn(rec);
                off += record_span(rec.body.size());
            }
    }

    std::string recovery_summary() const override { return summary_; }
    const std::vector<std::string>& recovery_errors() const override { return errors_; }

    AppendError append(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) override {
        return append_impl(type, body, lsn, Draw::Metered);
    }
    AppendError append_exempt(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) override {
        return append_impl(type, body, lsn, Draw::Reserve);
    }
    void begin_group() override { group_open_ = true; }
    void end_group() override {
        // In the mapping still (a group is written within one event, and no
        // segment of it can be deleted meanwhile).
        for (uint8_t* record : group_) close_group(record);
        group_.clear();
        group_open_ = false;
    }

    bool refusing() override;

    uint64_t last_lsn() const override { return next_lsn_ - 1; }
    uint64_t appended_bytes() const override { return appended_bytes_; }
    uint64_t durable_lsn() const override {
        return opt_.sync == SyncMode::Off ? last_lsn() : durable_lsn_;
    }

    SyncBatch begin_sync() override;
    void end_sync(uint64_t lsn, bool ok) override;
    bool sync_now() override;

    bool compact_step(const std::function<bool(const RecordView&)>& live,
                      const std::function<void(uint64_t, uint64_t)>& moved, size_t budget,
                      uint64_t min_bytes,
                      const std::function<DeadRecord(const RecordView&)>& dead) override;
    using Log::compact_step;

    uint64_t bytes_used() const override { return bytes_used_; }
    uint64_t dead_bytes() const override { return total_dead_bytes_; }
    uint64_t dead_records() const override { return total_dead_; }
    uint64_t record_count() const override { return total_records_; }
    bool wants_compaction() const override;
    void mark_dead(uint64_t lsn) override { mark(lsn, false, 0); }
    void mark_removal(uint64_t lsn, uint64_t cancels, std::span<const uint64_t> exactly) override {
        mark(lsn, true, cancels, exactly);
    }
    bool may_hold(uint64_t lsn) const override;
    uint64_t segment_count() const override { return segs_.size(); }
    uint64_t max_bytes() const override { return opt_.max_bytes; }
    uint64_t segment_bytes() const override { return opt_.segment_bytes; }
    bool out_of_space() override { return !io_failed_ && refusing(); }
    bool io_failed() const override { return io_failed_; }
    std::span<const uint8_t> last_body() const override { return last_body_; }

private:
    // Who may use which room: plain appends (Metered) only while the spares
    // exist and under max_bytes; exempt ones (Reserve) past max_bytes and
    // into the spares, but, once they are gone, not into the room
    // compaction needs; compaction copies (Copy) into all.
    enum class Draw : uint8_t { Metered, Reserve, Copy };
    AppendError append_impl(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn, Draw draw);
    // What the compaction under way has still to copy, while it fits in the
    // active segment, so that it finishes however full the disk is (on a
    // full disk one starts only when it fits: oldest_compactable,
    // newer_to_compact); for a newer segment, where it fits, also what
    // starting it over after a crash would copy again. Otherwise what
    // compacting the oldest segment copies, at most half a segment: a
    // segment compaction is asked to empty is mostly at least half dead.
    // 0 with a single segment.
    uint64_t room_for_compaction() const;
    uint64_t oldest_live_bytes() const {
        return segs_.front().end - segs_.front().liveness.dead_bytes;
    }
    uint64_t room_in_active() const {
        return segs_.empty() || segs_.back().sealed ? 0 : segs_.back().size - segs_.back().end;
    }
    // `why`, if given: what failed (the path and the errno).
    AppendError add_segment(std::string* why = nullptr);
    bool repair_damaged(Segment& seg, const SegmentScan& scan, bool bad_tail, std::string& err);
    void note_misfit(const Segment& seg, const SegmentScan& scan, bool is_last, uint64_t prev_last_lsn);
    bool quarantine_foreign(const std::string& path, const char* why, std::string& err);
    bool try_delete_compacted();
    bool sync_copies();   // sync = off: fdatasync every written segment but the compacted one
    void mark(uint64_t lsn, bool removal, uint64_t cancels, std::span<const uint64_t> exactly = {});
    // The segment whose LSNs span `lsn` (the last one whose base is <= lsn,
    // if `lsn` is not past its end); null once that is compacted away.
    template <class Segments>
    static auto segment_spanning(Segments& segs, uint64_t lsn) -> decltype(&segs.front()) {
        auto it = std::upper_bound(segs.begin(), segs.end(), lsn,
                                   [](uint64_t l, const Segment& s) { return l < s.base_lsn; });
        if (it == segs.begin() || lsn > std::prev(it)->last_lsn) return nullptr;
        return &*std::prev(it);
    }
    // Bytes compacting segs_[i] while it is not the oldest copies, at most:
    // its live records and the removals that may still cancel something.
    uint64_t newer_copy_bytes(size_t i) const;
    // Whether a dead removal of `seg` may still cancel a record in the log.
    bool may_cancel(const Segment& seg, uint64_t lsn) const;
    // Records `lsn` (of `span` bytes, in `seg`) as dead, once.
    void set_dead(Segment& seg, uint64_t lsn, uint64_t span, bool removal = false);
    // The disk full, the spare used and the oldest segment not compactable:
    // the sealed segment whose compaction frees the most, if one frees at
    // least half of itself and what it copies fits in the active segment;
    // 0 if none.
    size_t newer_to_compact(bool have_dead_check = true) const;
    bool oldest_compactable() const;
    // One scan step over segs_[compact_idx_]; false once the scan is over
    // or given up.
    bool scan_step(const std::function<bool(const RecordView&)>& live,
                   const std::function<void(uint64_t, uint64_t)>& moved, size_t budget,
                   uint64_t min_bytes, const std::function<DeadRecord(const RecordView&)>& dead);
    void give_up_newer();
    void set_aside(SegmentLiveness& l);
    bool probe_step(size_t budget, uint64_t min_bytes,
                    const std::function<DeadRecord(const RecordView&)>& dead);
    // The reserve: preallocated segments that only exempt appends and
    // compaction copies may move into once the disk is full. Two, because a
    // drain that writes more than it frees (QoS 2 state records over small
    // messages) must be able to fill one with records that soon die, so
    // compacting it (newer_to_compact) has the next one to copy into.
    std::string spare_path(size_t i) const { return opt_.dir + "/" + kSpareNames[i]; }
    bool ensure_spare();        // true if every spare exists (made where missing and possible)
    size_t spares_left() const;
    AppendError take_spare();   // a spare becomes the next segment
    bool disk_known_full() const { return full_until_ms_ != 0 && mono_ms() < full_until_ms_; }

    Options opt_;
    int lock_fd_ = -1;   // flock(LOCK_EX) on DIR/lock for the log's lifetime
    std::deque<Segment> segs_;  // oldest first; the back one takes appends
    uint64_t next_lsn_ = 1;
    uint64_t durable_lsn_ = 0;
    uint64_t bytes_used_ = 0;   // sum of segment write offsets
    uint64_t appended_bytes_ = 0;   // appended since open
    uint64_t total_records_ = 0;
    uint64_t total_dead_ = 0;
    uint64_t total_dead_bytes_ = 0;
    bool sync_in_flight_ = false;
    std::span<const uint8_t> last_body_;  // of the record appended last
    bool group_open_ = false;
    std::vector<uint8_t*> group_;   // the open group's records, in the mappings
    std::string summary_;
    std::vector<std::string> errors_;  // damage found by recover(), for the error log
    Segment spares_[kSpares];        // fd < 0: none (used up, or no room for it)
    uint64_t full_until_ms_ = 0;     // the disk was full; do not ask again before
    // A sync failed. For good in this process (end_sync says why): nothing
    // is durable after it, so plain appends are refused from then on.
    bool io_failed_ = false;

    // Compaction of segs_[compact_idx_] (the oldest, but for newer_to_compact):
    // scan position, and once scanned, the LSN that must be durable before
    // the segment may go. Appends only push_back, so the index holds.
    bool compacting_ = false;
    bool scan_done_ = false;
    size_t compact_idx_ = 0;
    uint64_t compact_off_ = 0;
    uint64_t delete_after_lsn_ = 0;
    bool compacted_unlinked_ = false;   // its unlink succeeded, the directory's sync not yet
    // A newer segment's compaction: bytes it may still copy, of them the
    // removals', and what it would copy if a crash made it start again (the
    // removals copied so far stay in the old segment, to be copied again).
    uint64_t newer_left_ = 0;
    uint64_t newer_removals_left_ = 0;
    uint64_t newer_redo_ = 0;
    uint64_t probe_removals_ = 0;   // of probe_need_
    // Changes whenever a segment is deleted or a compaction starts or stops:
    // what may_cancel() answers, and the room, may have changed.
    uint64_t layout_gen_ = 0;
    // A newer segment is probed first (nothing copied): whether any record
    // blocks it, and how much it copies; it is compacted only if that fits.
    bool probing_ = false;
    uint64_t probe_need_ = 0;
};

bool SegmentLog::recover(std::string& err) {
    if (!make_dirs(opt_.dir, err)) return false;
    // One writer per store: a second hato started on the same directory (by
    // hand beside the service, or the README's command on a gateway that
    // runs the package) would cut the live segment's "tail" and replace the
    // spares before failing to bind its port, losing acknowledged records.
    // Read-only and 0644: one made by root running hato by hand must not
    // keep the service's user out (flock needs no write access).
    lock_fd_ = ::open((opt_.dir + "/lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
        err = opt_.dir + "/lock: " + std::strerror(errno);
        return false;
    }
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? "the store " + opt_.dir + " is in use by another hato (its lock is held): "
                                     "two brokers on one store would destroy each other's records"
                                   : opt_.dir + "/lock: flock: " + std::strerror(errno);
        return false;
    }
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
    uint64_t skipped_bytes = 0;
    // First every file is scanned and those that are no segment are set
    // aside, so that which segment is the last one does not depend on them.
    struct Found {
        Segment seg;
        SegmentScan scan;
    };
    std::vector<Found> found;
    for (const uint64_t base : bases) {
        const std::string path = opt_.dir + "/" + segment_file_name(base);
        // Taken as the log's next LSN, such a name would wrap it.
        if (base >= kLsnLimit) {
            if (!quarantine_foreign(path, "its name is no LSN a log reaches", err)) return false;
            continue;
        }
        Segment seg;
        if (!open_segment(seg, path, base, true, err)) return false;
        if (seg.size < kHeaderBytes) {
            const bool empty = file_is_zero(seg.fd);
            seg.close();
            if (empty && base == bases.back()) {
                // A crash between creating a segment and reserving its space.
                ::unlink(path.c_str());
                sum << "removed empty segment " << path << "; ";
            } else if (empty) {
                // Only the newest can be caught between create and reserve:
                // an earlier one emptied (cut to nothing, zeroed) lost records.
                std::string moved;
                if (!quarantine_move(opt_.dir, path, moved, err)) return false;
                errors_.push_back(path + " is empty (" + std::to_string(seg.size) +
                                  " bytes) though later segments exist: the records it held are lost "
                                  "(cut short or zeroed outside hato); moved to " + moved);
            } else if (!quarantine_foreign(path, "too short to hold a record", err)) {
                return false;
            }
            continue;
        }
        const SegmentScan scan = scan_segment(seg.map, seg.size, seg.base_lsn);
        if (is_foreign_segment(seg.map, seg.size, scan)) {
            seg.close();
            if (!quarantine_foreign(path, "no valid record, does not start like one", err)) return false;
            continue;
        }
        found.push_back(Found{std::move(seg), scan});
    }
    // A segment with no record is the newest, caught by a crash before its
    // first record, and begins where the log goes on. One named anywhere else
    // (a stray file of zeros) is no part of this log: its name must not move
    // the LSNs. Set aside, not deleted: it is not known to be ours.
    uint64_t last_seen = 0;
    for (auto it = found.begin(); it != found.end();) {
        if (it->scan.records != 0) {
            last_seen = it->scan.last_lsn;
        } else if (last_seen != 0 && it->seg.base_lsn != last_seen + 1 && !it->scan.corrupt &&
                   it->scan.skipped.empty()) {   // damage, not emptiness: reported as such below
            const std::string path = it->seg.path;
            it->seg.close();
            std::string moved;
            if (!quarantine_move(opt_.dir, path, moved, err)) return false;
            sum << "set aside " << path << ": it holds no record and the log goes on at lsn " << last_seen + 1
                << ", not at its name; moved to " << moved << "; ";
            it = found.erase(it);
            continue;
        }
        ++it;
    }
    // A group still open at the end of the log (Log::begin_group): the
    // process stopped while writing it, before anything of it could be
    // acknowledged. Dropped whole: the segments after the one it began in
    // hold nothing else and go; in that one, the newest now, it is zeroed
    // (appends go on there), or the file goes too if nothing came before.
    uint64_t group_dropped = 0;
    size_t group_from = found.size();
    for (size_t i = found.size(); i-- > 0;) {
        const SegmentScan& scan = found[i].scan;
        if (scan.records == 0) continue;
        if (scan.open_group_records == 0) break;
        group_dropped += scan.open_group_records;
        group_from = i;
        if (scan.closed_before_open_group) break;
    }
    if (group_dropped) {
        const bool keep_first = found[group_from].scan.closed_before_open_group;
        while (found.size() > group_from + (keep_first ? 1 : 0)) {
            const std::string path = found.back().seg.path;
            found.back().seg.close();
            found.pop_back();
            if (::unlink(path.c_str()) != 0) {
                err = path + ": unlink: " + std::strerror(errno);
                return false;
            }
        }
        if (keep_first) {
            Found& f = found.back();
            std::memset(f.seg.map + f.scan.open_group_at, 0, f.scan.end - f.scan.open_group_at);
            f.scan = scan_segment(f.seg.map, f.seg.size, f.seg.base_lsn);
        }
        if (!fsync_dir(opt_.dir)) {
            err = opt_.dir + ": fsync: " + std::strerror(errno);
            return false;
        }
        sum << "dropped " << group_dropped << " record(s) of a group left open at the end of the log (the process "
            << "stopped while writing them: nothing of it was acknowledged); ";
    }
    uint64_t prev_last_lsn = 0;
    for (size_t i = 0; i < found.size(); ++i) {
        Segment& seg = found[i].seg;
        const SegmentScan& scan = found[i].scan;
        const std::string& path = seg.path;
        seg.end = scan.end;
        seg.records = scan.records;
        seg.last_lsn = scan.last_lsn;
        const bool is_last = i + 1 == found.size();
        note_misfit(seg, scan, is_last, prev_last_lsn);
        if (scan.records) prev_last_lsn = scan.last_lsn;
        // With one writer a later segment exists only once this one was
        // complete: a bad record at the end of an earlier one is damage too.
        const bool bad_tail = scan.corrupt && !is_last;
        if (!scan.skipped.empty() || bad_tail) {
            if (!repair_damaged(seg, scan, bad_tail, err)) return false;
            for (const ByteRange& r : scan.skipped) skipped_bytes += r.length;
            if (bad_tail) cut_bytes += seg.size - scan.end;
        }
        if (scan.corrupt && is_last) {
            // The normal power-cut case: cut below, as the log's end.
            cut_bytes += seg.size - scan.end;
            sum << "cut torn tail of " << path << " at offset " << scan.end << " (" << scan.reason << "); ";
        }
        // After any repair the segment walks record by record; fillers hold
        // no state, so their bytes count as dead from the start.
        for (uint64_t off = 0; off < seg.end;) {
            const RecordView rec = read_record(seg.map + off);
            const uint64_t span = record_span(rec.body.size());
            if (is_filler(rec)) {
                seg.liveness.dead_bytes += span;
                total_dead_bytes_ += span;
            } else {
                seg.liveness.note_record(seg.base_lsn, rec.lsn, off);
            }
            off += span;
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
        std::string why;
        if (const AppendError e = add_segment(&why); e != AppendError::None) {
            err = "cannot create the first segment in " + opt_.dir + ": " + why;
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
        prepare_appends(last, last.end);
    }
    durable_lsn_ = last_lsn();  // everything found on disk is on disk
    // A spare left by the last run is reused as it is (never written to),
    // once every block of it is allocated: a spare copied sparse would be a
    // SIGBUS at the first record written into it, on a disk that is full by
    // then. Without room for its blocks it goes, and ensure_spare says so.
    // Only its fd is kept: it is mapped when it is taken, so its pages cost
    // no memory meanwhile.
    for (size_t i = 0; i < kSpares; ++i) {
        Segment& spare = spares_[i];
        const std::string path = spare_path(i);
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0) continue;
        const bool right_size = uint64_t(st.st_size) == opt_.segment_bytes;
        spare.fd = right_size ? ::open(path.c_str(), O_RDWR | O_CLOEXEC) : -1;
        if (right_size && spare.fd < 0) {
            // Not a bad spare: this process cannot open files (EMFILE, EACCES).
            err = path + ": open: " + std::strerror(errno);
            return false;
        }
        if (spare.fd >= 0 && allocate_holes(spare.fd, opt_.segment_bytes) != 0) {
            ::close(spare.fd);
            spare.fd = -1;
        }
        if (spare.fd < 0) ::unlink(path.c_str());
        spare.path = path;
        spare.size = opt_.segment_bytes;
    }
    const bool reserved = ensure_spare();
    std::ostringstream head;
    head << "store " << opt_.dir << ": " << segs_.size() << " segment(s), " << total_records_
         << " record(s), " << bytes_used_ << " bytes, next lsn " << next_lsn_;
    if (cut_bytes) head << ", " << cut_bytes << " bytes cut";
    if (skipped_bytes) head << ", " << skipped_bytes << " damaged bytes skipped";
    if (!errors_.empty()) head << ", " << errors_.size() << " file(s) damaged or foreign (see the errors)";
    if (!reserved) head << ", NO ROOM FOR THE RESERVE SEGMENTS (new durable work refused until there is)";
    summary_ = head.str() + (sum.str().empty() ? "" : "; " + sum.str());
    return true;
}

// A segment with damage that valid records follow (or, in a sealed segment,
// a bad tail): copy it to quarantine first, then repair it in place. Each
// skipped range becomes one filler frame, so the segment can be walked
// record by record again (replay, compaction and the next recovery need no
// list of ranges, and the damage is reported once, not at every start). The
// range is never reused for appends, which only go after `end`; a filler
// rather than zeros there, because zeros read as the end of the data, and a
// later recovery would have to resynchronise over them again. A bad tail of
// a sealed segment is zeroed, as the last segment's torn tail is.
bool SegmentLog::repair_damaged(Segment& seg, const SegmentScan& scan, bool bad_tail, std::string& err) {
    std::string copy;
    bool copied = quarantine_copy(opt_.dir, seg.path, seg.fd, copy, err);
    if (!copied && (errno == ENOSPC || errno == EDQUOT)) {
        // On a full disk, the reserve gives way (it is made again once there
        // is room): a start that fails here fails at every restart.
        for (size_t i = 0; i < kSpares; ++i) ::unlink(spare_path(i).c_str());
        copied = quarantine_copy(opt_.dir, seg.path, seg.fd, copy, err);
    }
    if (!copied) {
        err = "damaged segment " + seg.path + " left as it is, its copy to quarantine failed: " + err;
        return false;
    }
    std::ostringstream line;
    line << "damaged segment " << seg.path << ": ";
    if (!scan.skipped.empty()) {
        uint64_t bytes = 0;
        for (const ByteRange& r : scan.skipped) {
            bytes += r.length;
            write_filler(seg.map + r.offset, r.length);
        }
        line << "skipped " << bytes << " bytes in " << scan.skipped.size() << " range(s) (";
        for (size_t k = 0; k < scan.skipped.size(); ++k)
            line << (k ? ", " : "") << "offset " << scan.skipped[k].offset << " length " << scan.skipped[k].length;
        line << "; the first starts with " << scan.skip_reason << "), kept " << scan.kept_after_skip
             << " record(s) after the damage; ";
    }
    if (bad_tail) {
        line << "bad record at offset " << scan.end << " (" << scan.reason << ") and nothing valid after it, "
             << seg.size - scan.end << " bytes dropped; ";
        if (!zero_segment_tail(seg, scan.end)) {
            err = seg.path + ": cannot clear the damaged tail: " + std::strerror(errno);
            return false;
        }
    }
    if (fdatasync(seg.fd) != 0) {
        err = seg.path + ": fdatasync: " + std::strerror(errno);
        return false;
    }
    line << scan.records << " record(s) kept in all; the damaged segment was copied to " << copy;
    errors_.push_back(line.str());
    return true;
}

// What no single segment's scan sees, reported (the start goes on): a
// segment whose LSNs overlap the one before it holds a second history (an
// old copy restored beside the live files?), and the later file's records
// win where they collide; a sealed segment that is not whole pages was cut
// short (segments are created at whole pages), and whatever followed its
// last record is gone.
void SegmentLog::note_misfit(const Segment& seg, const SegmentScan& scan, bool is_last, uint64_t prev_last_lsn) {
    if (prev_last_lsn != 0 && scan.records != 0 && seg.base_lsn <= prev_last_lsn) {
        errors_.push_back(seg.path + " overlaps the segment before it (its LSNs start at " +
                          std::to_string(seg.base_lsn) + ", that one's end at " + std::to_string(prev_last_lsn) +
                          "): two histories in one directory (a copy restored beside the live files?); where "
                          "they collide this file's records win. Move the one that does not belong out of " +
                          opt_.dir);
    }
    struct stat st{};
    if (!is_last && fstat(seg.fd, &st) == 0 && st.st_size % 4096 != 0) {
        errors_.push_back(seg.path + " is " + std::to_string(st.st_size) +
                          " bytes, not whole pages: it was cut short (a partial copy?), and whatever followed "
                          "its last record (lsn " + std::to_string(scan.last_lsn) + ") is lost");
    }
}

// A file named like a segment that is not one: moved out of the way as it
// is. Its name says nothing about LSNs, so it does not move next_lsn_.
bool SegmentLog::quarantine_foreign(const std::string& path, const char* why, std::string& err) {
    std::string moved;
    if (!quarantine_move(opt_.dir, path, moved, err)) {
        err = "cannot move " + path + " (not a hato segment) to quarantine: " + err;
        return false;
    }
    errors_.push_back(path + " is not a hato segment (" + why + "): moved, unmodified, to " + moved);
    return true;
}

AppendError SegmentLog::add_segment(std::string* why) {
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
        if (why) *why = err;
        if (!segs_.empty()) segs_.back().sealed = false;  // keep using it if it has room
        return e == SegmentError::DiskFull ? AppendError::DiskFull : AppendError::IoError;
    }
    // The new name must survive a crash before records in it are called durable.
    if (!fsync_dir(opt_.dir)) {
        if (why) *why = opt_.dir + ": fsync: " + std::strerror(errno);
        seg.close();
        ::unlink(path.c_str());
        if (!segs_.empty()) segs_.back().sealed = false;
        return AppendError::IoError;
    }
    segs_.push_back(std::move(seg));
    return AppendError::None;
}

bool SegmentLog::ensure_spare() {
    for (size_t i = 0; i < kSpares; ++i) {
        Segment& spare = spares_[i];
        if (spare.fd >= 0) continue;
        if (disk_known_full()) return false;
        const std::string path = spare_path(i);
        ::unlink(path.c_str());  // a leftover of a creation cut short
        std::string err;
        if (create_segment(spare, path, 0, opt_.segment_bytes, err) == SegmentError::None &&
            fsync_dir(opt_.dir)) {
            full_until_ms_ = 0;
            continue;
        }
        spare.close();
        ::unlink(path.c_str());
        full_until_ms_ = mono_ms() + kDiskFullRetryMs;
        return false;
    }
    return true;
}

size_t SegmentLog::spares_left() const {
    size_t n = 0;
    for (const Segment& spare : spares_) n += spare.fd >= 0;
    return n;
}

// The first spare left goes first, so ensure_spare() makes that name again first.
AppendError SegmentLog::take_spare() {
    Segment* found = nullptr;
    for (Segment& spare : spares_)
        if (!found && spare.fd >= 0) found = &spare;
    if (!found) return AppendError::DiskFull;
    Segment& spare = *found;
    const std::string path = opt_.dir + "/" + segment_file_name(next_lsn_);
    if (!segs_.empty() && segs_.back().records == 0 && segs_.back().base_lsn == next_lsn_) {
        ::unlink(segs_.back().path.c_str());
        segs_.pop_back();
    }
    if (!spare.map) {
        void* p = mmap(nullptr, spare.size, PROT_READ | PROT_WRITE, MAP_SHARED, spare.fd, 0);
        if (p == MAP_FAILED) return AppendError::IoError;
        spare.map = static_cast<uint8_t*>(p);
    }
    if (::rename(spare.path.c_str(), path.c_str()) != 0) return AppendError::IoError;
    if (!fsync_dir(opt_.dir)) {
        ::rename(path.c_str(), spare.path.c_str());
        return AppendError::IoError;
    }
    if (!segs_.empty()) segs_.back().sealed = true;
    spare.path = path;
    spare.base_lsn = next_lsn_;
    segs_.push_back(std::move(spare));
    spare = Segment{};
    return AppendError::None;
}

bool SegmentLog::refusing() {
    if (io_failed_) return true;
    if (opt_.max_bytes && bytes_used_ >= opt_.max_bytes) return true;
    return !ensure_spare() || disk_known_full();
}

uint64_t SegmentLog::room_for_compaction() const {
    if (segs_.size() < 2) return 0;
    const uint64_t room = room_in_active();
    const uint64_t otherwise = std::min(oldest_live_bytes(), opt_.segment_bytes / 2);
    if (!compacting_ || probing_) return otherwise;
    if (compact_idx_ == 0) return !scan_done_ && oldest_live_bytes() <= room ? oldest_live_bytes() : otherwise;
    // A newer segment: room for the rest and, where it fits, for starting
    // over after a crash at any point until the old segment is deleted (the
    // redo grows by each removal copied while the room shrinks by it).
    const uint64_t redo = newer_redo_ + newer_removals_left_;
    if (scan_done_) return std::max(redo <= room ? redo : 0, otherwise);
    if (redo <= room) return redo;
    return newer_left_ <= room ? newer_left_ : otherwise;
}

AppendError SegmentLog::append_impl(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn,
                                    Draw draw) {
    const uint64_t span = record_span(body.size());
    if (body.size() > UINT32_MAX || span > opt_.segment_bytes) return AppendError::TooLarge;
    if (draw == Draw::Metered) {
        if (io_failed_) return AppendError::IoError;
        if (opt_.max_bytes && bytes_used_ + span > opt_.max_bytes) return AppendError::QuotaExceeded;
        if (!ensure_spare()) return AppendError::DiskFull;
    } else if (draw == Draw::Reserve && !ensure_spare() && spares_left() == 0 &&
               room_in_active() < span + room_for_compaction()) {
        // The disk is full and the spares used: what is left is compaction's,
        // or the store could stay full for good (removals filling the last
        // segment while the oldest still holds a live record to copy).
        return AppendError::DiskFull;
    }
    if (room_in_active() < span) {
        if (draw == Draw::Metered && disk_known_full()) return AppendError::DiskFull;
        AppendError e = add_segment();
        if (e == AppendError::DiskFull) {
            if (draw != Draw::Metered && spares_left() > 0) e = take_spare();
            else full_until_ms_ = mono_ms() + kDiskFullRetryMs;
        }
        if (e != AppendError::None) return e;
    }
    Segment& seg = segs_.back();
    lsn = next_lsn_++;
    const bool grouped = group_open_ && draw != Draw::Copy;
    write_record(seg.map + seg.end, lsn, type, body, grouped);
    if (grouped) group_.push_back(seg.map + seg.end);
    seg.liveness.note_record(seg.base_lsn, lsn, seg.end);
    last_body_ = read_record(seg.map + seg.end).body;
    seg.end += span;
    seg.records++;
    seg.last_lsn = lsn;
    seg.dirty = true;
    bytes_used_ += span;
    appended_bytes_ += span;
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
    if (b.fds.empty() && !io_failed_) durable_lsn_ = std::max(durable_lsn_, b.lsn);
    return b;
}

void SegmentLog::end_sync(uint64_t lsn, bool ok) {
    sync_in_flight_ = false;
    if (!ok || io_failed_) {
        // After a failed writeback Linux marks the pages clean and reports
        // the error once: a later sync "succeeds" without writing them, and
        // a page evicted since reads back the old disk blocks. So no later
        // sync proves anything written since the last good one: durable_lsn
        // stays, no compacted segment is deleted, plain appends are refused.
        // Only a restart (recovery from what the disk holds) goes on.
        io_failed_ = true;
        return;
    }
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
    return ok && !io_failed_;
}

void SegmentLog::mark(uint64_t lsn, bool removal, uint64_t cancels, std::span<const uint64_t> exactly) {
    Segment* spanning = segment_spanning(segs_, lsn);
    if (!spanning) return;  // already compacted away
    Segment& seg = *spanning;
    if (seg.liveness.is_dead(seg.base_lsn, lsn)) return;
    // Its size: walk the headers from the nearest index entry.
    for (uint64_t off = seg.liveness.search_from(seg.base_lsn, lsn); off < seg.end;) {
        const RecordView rec = read_record(seg.map + off);
        if (rec.lsn > lsn) return;  // not in this segment (a gap)
        const uint64_t span = record_span(rec.body.size());
        if (rec.lsn != lsn) {
            off += span;
            continue;
        }
        set_dead(seg, lsn, span, removal);
        if (removal && spares_left() < kSpares) {
            // Once, as a record is marked dead only once; in LSN order but
            // for a replay's late marks.
            SegmentLiveness& l = seg.liveness;
            auto at = std::upper_bound(l.cancels.begin(), l.cancels.end(), lsn,
                                       [](uint64_t x, const SegmentLiveness::Cancel& c) { return x < c.lsn; });
            SegmentLiveness::Cancel c{.lsn = lsn, .up_to = cancels, .span = span};
            if (exactly.size() <= c.exactly.size()) {
                std::copy(exactly.begin(), exactly.end(), c.exactly.begin());
                c.exact_count = uint8_t(exactly.size());
            }
            l.cancels.insert(at, c);
            l.cancel_bytes += span;
            l.kept_gen = UINT64_MAX;
        }
        return;
    }
}

void SegmentLog::set_dead(Segment& seg, uint64_t lsn, uint64_t span, bool removal) {
    if (seg.liveness.is_dead(seg.base_lsn, lsn)) return;
    seg.liveness.set_dead(seg.base_lsn, lsn);
    seg.liveness.dead_bytes += span;
    if (removal) seg.liveness.removal_bytes += span;
    seg.dead++;
    total_dead_++;
    total_dead_bytes_ += span;
}

bool SegmentLog::oldest_compactable() const {
    if (segs_.size() < 2) return false;  // the active segment is never compacted
    // The disk full and the spares used: only what can finish.
    if (spares_left() == 0 && oldest_live_bytes() > room_in_active()) return false;
    const Segment& oldest = segs_.front();
    // Oldest segment mostly dead: compacting it frees much for little copying.
    if (oldest.liveness.dead_bytes * 2 >= oldest.end) return true;
    // Half the whole log dead, with at least three segments: rotate through,
    // copying live records forward, even if the oldest is busy. Copying the
    // live bytes once per rotation is paid for by at least as many dead ones,
    // and the log stays within twice its live bytes plus a few segments.
    if (segs_.size() > 2 && total_dead_bytes_ * 2 >= bytes_used_) return true;
    // Close to the quota: anything dead in the oldest segment is worth reclaiming.
    if (opt_.max_bytes && bytes_used_ * 10 >= opt_.max_bytes * 9 && oldest.dead > 0) return true;
    // The disk full and the spares used: the same, as soon as the oldest
    // segment's live records fit in the room exempt appends leave for them.
    if (spares_left() == 0 && oldest.dead > 0) return true;
    return false;
}

size_t SegmentLog::newer_to_compact(bool have_dead_check) const {
    // Only where the oldest cannot go: the disk full, no spare for copies,
    // and more of the oldest live than the active segment has room for.
    if (!have_dead_check || spares_left() > 0 || segs_.size() < 3) return 0;
    const uint64_t room = room_in_active();
    if (oldest_live_bytes() <= room) return 0;
    size_t best = 0;
    uint64_t best_freed = 0;
    for (size_t i = 1; i + 1 < segs_.size(); ++i) {
        const Segment& seg = segs_[i];
        const SegmentLiveness& l = seg.liveness;
        const uint64_t copied = newer_copy_bytes(i);
        const uint64_t freed = seg.end - copied;
        if (copied > room || freed * 2 < seg.end || freed <= best_freed) continue;
        if (l.probe_gen == layout_gen_ && l.probe_dead == l.dead_bytes && room <= l.probe_room) continue;
        best = i;
        best_freed = freed;
    }
    return best;
}

uint64_t SegmentLog::newer_copy_bytes(size_t i) const {
    const Segment& seg = segs_[i];
    const SegmentLiveness& l = seg.liveness;
    // What may_cancel answers changes only with the layout (layout_gen_).
    if (l.kept_gen != layout_gen_) {
        l.kept_bytes = 0;
        for (const SegmentLiveness::Cancel& c : l.cancels)
            if (may_cancel(seg, c.lsn)) l.kept_bytes += c.span;
        l.kept_gen = layout_gen_;
    }
    return seg.end - l.dead_bytes + l.removal_bytes - l.cancel_bytes + l.kept_bytes;
}

bool SegmentLog::may_cancel(const Segment& seg, uint64_t lsn) const {
    // Everything below the oldest segment's first LSN is gone (a removal
    // that killed nothing: 0). Of one marked while the spares were there,
    // it is not known.
    const SegmentLiveness::Cancel* c = seg.liveness.cancel_of(lsn);
    if (!c) return true;
    if (c->exact_count == 0) return c->up_to >= segs_.front().base_lsn;
    return std::any_of(c->exactly.begin(), c->exactly.begin() + c->exact_count,
                       [&](uint64_t cancelled) { return may_hold(cancelled); });
}

static_assert(Log::kMaxExactCancels == std::tuple_size_v<decltype(SegmentLiveness::Cancel::exactly)>);

bool SegmentLog::may_hold(uint64_t lsn) const { return segment_spanning(segs_, lsn) != nullptr; }

bool SegmentLog::wants_compaction() const {
    return compacting_ || oldest_compactable() || newer_to_compact() != 0;
}

bool SegmentLog::compact_step(const std::function<bool(const RecordView&)>& live,
                              const std::function<void(uint64_t, uint64_t)>& moved, size_t budget,
                              uint64_t min_bytes,
                              const std::function<DeadRecord(const RecordView&)>& dead) {
    if (!compacting_) {
        if (segs_.size() < 2) return false;
        compacting_ = true;
        scan_done_ = false;
        // A newer segment only when the oldest would not fit (newer_to_compact).
        compact_idx_ = newer_to_compact(bool(dead));
        probing_ = compact_idx_ != 0;
        probe_need_ = 0;
        newer_left_ = newer_redo_ = newer_removals_left_ = probe_removals_ = 0;
        if (!probing_) ++layout_gen_;
        compact_off_ = 0;
    }
    if (probing_) return probe_step(budget, min_bytes, dead);
    if (!scan_done_) {
        if (scan_step(live, moved, budget, min_bytes, dead)) return true;
        if (!compacting_) return false;   // given up
        scan_done_ = true;
        delete_after_lsn_ = last_lsn();
    }
    return !try_delete_compacted();
}

bool SegmentLog::scan_step(const std::function<bool(const RecordView&)>& live,
                           const std::function<void(uint64_t, uint64_t)>& moved, size_t budget,
                           uint64_t min_bytes,
                           const std::function<DeadRecord(const RecordView&)>& dead) {
    Segment& old = segs_[compact_idx_];  // stays valid: appends only push_back
    const bool newer = compact_idx_ != 0;
    // Copies are not held to the quota: they are what lets it shrink.
    auto copy = [&](const RecordView& rec, uint64_t& new_lsn) {
        newer_left_ -= std::min(newer_left_, record_span(rec.body.size()));
        return append_impl(rec.type, rec.body, new_lsn, Draw::Copy) == AppendError::None;
    };
    uint64_t scanned = 0;
    for (size_t n = 0; (n < budget || scanned < min_bytes) && compact_off_ < old.end; ++n) {
        const RecordView rec = read_record(old.map + compact_off_);
        const uint64_t span = record_span(rec.body.size());
        uint64_t new_lsn = 0;
        if (is_filler(rec)) {
        } else if (!old.liveness.is_dead(old.base_lsn, rec.lsn)) {
            if (live(rec)) {
                if (!copy(rec, new_lsn)) {
                    // Disk full or an I/O error. The oldest is tried again
                    // later from here, unless a newer one can free room
                    // first; a newer one is given up.
                    if (newer) give_up_newer();
                    else if (newer_to_compact(bool(dead)) != 0) compacting_ = false;
                    if (!compacting_) ++layout_gen_;
                    return compacting_;
                }
                moved(rec.lsn, new_lsn);
                newer_redo_ -= std::min(newer_redo_, span);
            }
            // Either way this one is garbage now: the copy (if any) holds it.
            set_dead(old, rec.lsn, span);
        } else if (newer && may_cancel(old, rec.lsn)) {
            switch (dead(rec)) {
                case DeadRecord::Drop: break;
                case DeadRecord::CopyForward: {
                    newer_removals_left_ -= std::min(newer_removals_left_, span);
                    if (!copy(rec, new_lsn)) {
                        give_up_newer();
                        return false;
                    }
                    const SegmentLiveness::Cancel* c = old.liveness.cancel_of(rec.lsn);
                    if (c) mark(new_lsn, true, c->up_to, std::span(c->exactly.data(), c->exact_count));
                    else mark(new_lsn, true, UINT64_MAX);
                    break;
                }
                case DeadRecord::Blocked: give_up_newer(); return false;
            }
        }
        compact_off_ += span;
        scanned += span;
    }
    return compact_off_ < old.end;
}

bool SegmentLog::probe_step(size_t budget, uint64_t min_bytes,
                            const std::function<DeadRecord(const RecordView&)>& dead) {
    Segment& seg = segs_[compact_idx_];
    SegmentLiveness& l = seg.liveness;
    bool blocked = false;
    uint64_t scanned = 0;
    for (size_t n = 0; (n < budget || scanned < min_bytes) && compact_off_ < seg.end && !blocked; ++n) {
        const RecordView rec = read_record(seg.map + compact_off_);
        const uint64_t span = record_span(rec.body.size());
        if (is_filler(rec)) {
        } else if (!l.is_dead(seg.base_lsn, rec.lsn)) {
            probe_need_ += span;   // live, at most
        } else if (may_cancel(seg, rec.lsn)) {
            const DeadRecord d = dead(rec);
            blocked = d == DeadRecord::Blocked;
            if (d == DeadRecord::CopyForward) {
                probe_need_ += span;
                probe_removals_ += span;
            }
        }
        compact_off_ += span;
        scanned += span;
    }
    if (!blocked && compact_off_ < seg.end) return true;
    probing_ = false;
    compact_off_ = 0;
    if (blocked || probe_need_ > room_in_active()) {
        set_aside(l);
        return false;
    }
    newer_left_ = newer_redo_ = probe_need_;
    newer_removals_left_ = probe_removals_;
    ++layout_gen_;   // records are copied from here on
    return true;
}

// What was copied so far stays valid: live records moved (their originals
// dead here), removals copied forward (harmless twice); the rest is as it was.
void SegmentLog::give_up_newer() {
    ++layout_gen_;
    set_aside(segs_[compact_idx_].liveness);
}

bool SegmentLog::sync_copies() {
    for (size_t i = 0; i < segs_.size(); ++i) {
        Segment& seg = segs_[i];
        if (i == compact_idx_ || !seg.dirty) continue;
        if (fdatasync(seg.fd) != 0) {
            io_failed_ = true;   // as a failed group sync (end_sync)
            return false;
        }
        seg.dirty = false;
    }
    return true;
}

// Not probed again before something changes (newer_to_compact).
void SegmentLog::set_aside(SegmentLiveness& l) {
    l.probe_gen = layout_gen_;
    l.probe_dead = l.dead_bytes;
    l.probe_room = room_in_active();
    compacting_ = false;
}

// Removes the compacted segment once every copy made from it is durable.
// Until its unlink and the directory's sync both succeeded it stays counted
// as there: a removal that cancels one of its records must not be dropped
// (may_cancel), or a restart would bring that record back. A failed unlink,
// or a directory that could not be opened, is tried again later
// (compact_step, the next sync's end); a failed sync is final (io_failed_).
bool SegmentLog::try_delete_compacted() {
    if (!compacting_ || !scan_done_ || sync_in_flight_ || io_failed_ || durable_lsn() < delete_after_lsn_)
        return false;
    // sync = off syncs nothing else, and the copies are the only other home
    // of what the segment holds (old retained messages, sessions): they go
    // to disk before it goes. Blocking, but once per compacted segment.
    if (opt_.sync == SyncMode::Off && !sync_copies()) return false;
    Segment& old = segs_[compact_idx_];
    if (!compacted_unlinked_ && ::unlink(old.path.c_str()) != 0 && errno != ENOENT) return false;
    compacted_unlinked_ = true;
    // A directory that could not be opened is tried again; a failed fsync
    // of it is final, as a failed data sync (end_sync): a later one would
    // prove nothing about the unlink.
    if (const int status = fsync_dir_status(opt_.dir)) {
        if (status > 0) io_failed_ = true;
        return false;
    }
    compacted_unlinked_ = false;
    bytes_used_ -= old.end;
    total_records_ -= old.records;
    total_dead_ -= old.dead;
    total_dead_bytes_ -= old.liveness.dead_bytes;
    segs_.erase(segs_.begin() + ptrdiff_t(compact_idx_));
    ++layout_gen_;
    full_until_ms_ = 0;  // room again, perhaps
    compacting_ = false;
    scan_done_ = false;
    return true;
}

}  // namespace

void release_resident_pages(Log& log) {
    if (auto* l = dynamic_cast<SegmentLog*>(&log)) l->release_resident_pages();
}

std::unique_ptr<Log> Log::open(const Options& opt, std::string& err) {
    auto log = std::make_unique<SegmentLog>(opt);
    if (!log->recover(err)) return nullptr;
    return log;
}

}  // namespace hato::store
