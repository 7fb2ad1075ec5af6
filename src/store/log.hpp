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

// What compacting a segment other than the oldest does with a record the
// owner marked dead. A put is superseded by something newer and can go; a
// removal cancels records that older segments may still hold, so it goes
// only when its key holds newer state (which supersedes those records too).
enum class DeadRecord : uint8_t {
    Drop,
    CopyForward,   // a removal whose key holds nothing now: copied to the end, dead again
    Blocked,       // may neither go nor move (a removal that cancels more than its key,
                   // which holds newer state): the segment is left as it is
};

class Log {
public:
    virtual ~Log() = default;

    // Opens (creating `dir` if needed) and recovers: scans every segment and
    // verifies checksums. A torn tail of the last segment (a bad or partial
    // record with nothing valid after it: the power-cut case) is cut. Damage
    // with valid records after it is skipped by resynchronising on the next
    // valid record, and every record after it is kept: the segment is first
    // copied to DIR/quarantine/, then each skipped range is overwritten with
    // a filler frame (frame.hpp). A file named like a segment that holds no
    // record is moved to DIR/quarantine/ unmodified. Never fails because of
    // bad data; fails only on I/O errors (permissions, a quarantine copy that
    // cannot be written, etc.) with `err` set.
    static std::unique_ptr<Log> open(const Options& opt, std::string& err);

    // Every valid record, oldest first. Call once after open().
    virtual void replay(const std::function<void(const RecordView&)>& fn) = 0;

    // What recovery found: records, bytes cut, etc., for the start-up log.
    virtual std::string recovery_summary() const = 0;
    // Damage recovery found and handled, one line per file: bytes skipped,
    // records kept after them, where the quarantine copy is. For the
    // start-up log at error level; empty when every file was intact.
    virtual const std::vector<std::string>& recovery_errors() const = 0;

    // Appends a record; sets `lsn`. Not durable until synced.
    virtual AppendError append(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) = 0;

    // The records appended (append, append_exempt) from begin_group() to
    // end_group() are one: should the process stop before end_group(), the
    // next recovery drops them all. For the records of one PUBLISH (its
    // copies queued for each session, then its QoS 2 id): kept in part,
    // a resend the id does not recognise would be taken as new, and some
    // sessions would get the message twice. Not nested; no compaction copy
    // belongs to a group.
    virtual void begin_group() = 0;
    virtual void end_group() = 0;

    virtual uint64_t last_lsn() const = 0;     // highest appended
    // Bytes appended since open (records with their framing, compaction
    // copies included); only grows. Group commit's batch size.
    virtual uint64_t appended_bytes() const = 0;
    virtual uint64_t durable_lsn() const = 0;  // highest known durable

    // Group commit, split so the reactor can run the fsync asynchronously:
    // begin_sync() returns the fds to datasync (possibly none) and the LSN
    // they will make durable; after every fd is synced, end_sync(lsn, ok).
    struct SyncBatch {
        std::vector<int> fds;
        uint64_t lsn = 0;
    };
    virtual SyncBatch begin_sync() = 0;
    // A failure is for good: durable_lsn() never moves again in this
    // process, and plain appends are refused (see SegmentLog::end_sync).
    virtual void end_sync(uint64_t lsn, bool ok) = 0;
    // Blocking convenience for tests and shutdown.
    virtual bool sync_now() = 0;

    // Incremental compaction of the oldest segment: `live(rec)` decides per
    // record (records marked dead are skipped without asking); live ones are
    // re-appended (`moved(old_lsn, new_lsn)` lets the owner update its
    // bookkeeping; it is called right after live() returned true for that
    // same record, so the owner may remember what live() looked at). The old segment is removed only after the copies are
    // durable. Scans until it has seen `budget` records and `min_bytes` bytes
    // (whichever is more work), so the reactor never pauses long and the
    // caller can pace compaction to its appends. Returns true while work remains.
    //
    // The oldest segment as a rule: a removal record is marked dead as soon
    // as it is written, which is safe only because everything it cancels is
    // older and so is dropped with it or before it. Only when the disk is
    // full, the spares used and the oldest segment cannot be compacted (a
    // drain whose state records outweigh the messages they end) is a newer
    // sealed segment compacted, and only when `dead` is given: it says of
    // each dead record there whether older segments may still need it.
    virtual bool compact_step(const std::function<bool(const RecordView&)>& live,
                              const std::function<void(uint64_t, uint64_t)>& moved,
                              size_t budget, uint64_t min_bytes,
                              const std::function<DeadRecord(const RecordView&)>& dead) = 0;
    bool compact_step(const std::function<bool(const RecordView&)>& live,
                      const std::function<void(uint64_t, uint64_t)>& moved, size_t budget,
                      uint64_t min_bytes = 0) {
        return compact_step(live, moved, budget, min_bytes, {});
    }

    virtual uint64_t bytes_used() const = 0;
    // Bytes and records of the log the owner marked dead (or compaction
    // copied away); bytes_used() - dead_bytes() is what the live set takes.
    virtual uint64_t dead_bytes() const = 0;
    virtual uint64_t dead_records() const = 0;
    virtual uint64_t record_count() const = 0;
    // True when compaction should run: the oldest segment is at least half
    // dead bytes, or the whole log is (with three or more segments), or the
    // log is near max_bytes with anything dead in the oldest segment, or the
    // disk is full without a spare, with anything dead in the oldest segment
    // and room for its live records in the active one, or else a newer
    // segment to compact (see compact_step). Under that policy the log stays
    // within 2 x live bytes plus a few segments (docs/durability.md).
    virtual bool wants_compaction() const = 0;

    // --- Room: the reserve, refusal, liveness --------------------------------
    // A full store must still be able to shrink: removals and compaction
    // copies draw on a reserve that plain appends cannot use.

    // Like append, but draws on the reserve: not held to max_bytes, and when
    // the file system is full it moves into the spare segments the log keeps
    // preallocated (DIR/reserve.spare, DIR/reserve.spare2). For records that
    // let space be freed (removals, compaction copies) so a full store can
    // drain. Plain appends are refused while a spare is missing (they are
    // re-created as soon as there is room), so the spares are there whenever
    // the disk fills. Once the disk is full and the spares used, an exempt
    // append is refused (DiskFull) rather than take the room compaction
    // needs (what the one under way has still to copy, or the oldest
    // segment's live bytes, at most half a segment): compaction copies alone
    // may use that, so the store can always shrink again.
    virtual AppendError append_exempt(uint8_t type, std::span<const uint8_t> body, uint64_t& lsn) = 0;

    // True while plain appends would be refused: max_bytes reached, the disk
    // full (re-tried at most every 100 ms, and at once when compaction frees
    // a segment), or a sync failed (read-only file system, EIO).
    virtual bool refusing() = 0;
    // refusing() for lack of space (max_bytes reached or the disk full), not
    // because a sync failed: dropping data frees room.
    virtual bool out_of_space() = 0;
    // A sync failed (of the data or of the directory): for good, see
    // end_sync. Only a restart goes on; the wiring stops the broker.
    virtual bool io_failed() const = 0;

    // The owner tells the log that the record `lsn` is no longer live;
    // wants_compaction() weighs these by size. Marking twice, or an LSN no
    // longer in the log, changes nothing.
    virtual void mark_dead(uint64_t lsn) = 0;
    // mark_dead() for a removal record the owner just wrote or replayed,
    // which cancels records up to LSN `cancels` (0: none a replay would
    // bring back). Compacting a newer segment copies a removal forward only
    // while a record it cancels may still be in the log (DeadRecord). With
    // `exactly` empty that is judged coarsely: while any record up to
    // `cancels` may be. Otherwise those (at most kMaxExactCancels) are all
    // the records it cancels, and it is kept only while one of them may be.
    static constexpr size_t kMaxExactCancels = 4;
    virtual void mark_removal(uint64_t lsn, uint64_t cancels, std::span<const uint64_t> exactly) = 0;
    // Whether the record `lsn` may still be in the log: a segment whose LSNs
    // span it is (compaction deletes whole segments).
    virtual bool may_hold(uint64_t lsn) const = 0;

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
    virtual uint64_t segment_bytes() const = 0;  // Options::segment_bytes
};

}  // namespace hato::store
