// The append log: segment files written through mmap, every record framed
// and checksummed. It knows nothing of MQTT: records are (type, body) pairs
// with a log sequence number (LSN). The broker's persistence adapter gives
// them meaning, and tells compaction which records are still live.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace hato::store {

enum class SyncMode : uint8_t { Always, Interval, Off };

struct Options {
    std::string dir;
    uint64_t segment_bytes = 64ull << 20;  // preallocated with fallocate
    uint64_t max_bytes = 0;                // 0 = no limit (besides the disk)
    SyncMode sync = SyncMode::Always;
};

struct RecordView {
    uint64_t lsn;
    uint8_t type;
    std::span<const uint8_t> body;
};

enum class AppendError : uint8_t { None, QuotaExceeded, DiskFull, IoError, TooLarge };

class Log {
public:
    virtual ~Log() = default;

    // Opens (creating `dir` if needed) and recovers: scans every segment,
    // verifies checksums, cuts a torn or corrupt tail (logged with its
    // offset). Never fails because of bad data; fails only on I/O errors
    // (permissions, etc.) with `err` set.
    static std::unique_ptr<Log> open(const Options& opt, std::string& err);

    // Every valid record, oldest first. Call once after open().
    virtual void replay(const std::function<void(const RecordView&)>& fn) = 0;

    // What recovery found: records, bytes cut, etc., for the start-up log.
    virtual std::string recovery_summary() const = 0;

    // Appends a record; sets `lsn`. Not durable until synced.
    virtual AppendError append(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) = 0;

    virtual uint64_t last_lsn() const = 0;     // highest appended
    virtual uint64_t durable_lsn() const = 0;  // highest known durable

    // Group commit, split so the reactor can run the fsync asynchronously:
    // begin_sync() returns the fds to datasync (possibly none) and the LSN
    // they will make durable; after every fd is synced, end_sync(lsn, ok).
    struct SyncBatch {
        std::vector<int> fds;
        uint64_t lsn = 0;
    };
    virtual SyncBatch begin_sync() = 0;
    virtual void end_sync(uint64_t lsn, bool ok) = 0;
    // Blocking convenience for tests and shutdown.
    virtual bool sync_now() = 0;

    // Incremental compaction of the oldest segment: `live(rec)` decides per
    // record; live ones are re-appended (`moved(old_lsn, new_lsn)` lets the
    // owner update its bookkeeping). The old segment is removed only after
    // the copies are durable. Does at most `budget` records per call, so the
    // reactor never pauses long. Returns true while work remains.
    virtual bool compact_step(const std::function<bool(const RecordView&)>& live,
                              const std::function<void(uint64_t, uint64_t)>& moved,
                              size_t budget) = 0;

    virtual uint64_t bytes_used() const = 0;
    virtual bool wants_compaction() const = 0;

    // --- Added by the store layer (additive) ---------------------------------
    // compact_step calls moved(old, new) right after live(rec) returned true
    // for that same record, so the owner may remember what live() looked at.

    // Like append, but draws on the reserve: not held to max_bytes, and when
    // the file system is full it moves into the spare segment the log keeps
    // preallocated (DIR/reserve.spare). For records that let space be freed
    // (removals, compaction copies) so a full store can always drain. Plain
    // appends are refused while no spare exists (it is re-created as soon as
    // there is room), so the spare is there whenever the disk fills.
    virtual AppendError append_exempt(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) = 0;

    // True while plain appends would be refused: max_bytes reached, the disk
    // full (re-tried at most every 100 ms, and at once when compaction frees
    // a segment), or the last sync failed (read-only file system, EIO).
    virtual bool refusing() = 0;

    // The owner tells the log that the record `lsn` is no longer live (call
    // once per record); wants_compaction() weighs these.
    virtual void mark_dead(uint64_t lsn) = 0;

    // The body of the record appended last (by append, append_exempt or a
    // compaction copy), as a view into the log's mapping: no copy is needed
    // to keep referring to it. It stays valid until that record's segment is
    // deleted, which compaction does only after copying out every record
    // live() kept; moved() runs while this still shows the copy just made.
    // Empty before the first append.
    virtual std::span<const uint8_t> last_body() const = 0;

    // Segment files currently in the directory (tests, `hato store`).
    virtual uint64_t segment_count() const = 0;
    virtual uint64_t max_bytes() const = 0;  // Options::max_bytes (0 = none)
};

}  // namespace hato::store
