// One segment file of the log: created preallocated, mapped MAP_SHARED for
// the life of the log, written with memcpy.
#pragma once

#include <cstdint>
#include <string>

#include "store/segment_liveness.hpp"

namespace hato::store {

struct Segment {
    uint64_t base_lsn = 0;   // from the file name: the LSN of its first record
    std::string path;
    int fd = -1;
    uint8_t* map = nullptr;
    uint64_t size = 0;       // file (and mapping) size
    uint64_t end = 0;        // write offset: just past the last valid record
    uint64_t records = 0;
    uint64_t dead = 0;       // records the owner marked dead
    uint64_t last_lsn = 0;   // 0 while empty
    bool dirty = false;      // written since the last begin_sync
    bool sealed = false;     // no more appends (full, or found corrupt)
    SegmentLiveness liveness;  // dead map and bytes (kept by the log)

    Segment() = default;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    Segment(Segment&& o) noexcept { *this = std::move(o); }
    Segment& operator=(Segment&& o) noexcept;
    ~Segment() { close(); }

    void close();  // munmap + close
};

enum class SegmentError : uint8_t { None, DiskFull, IoError };

// Creates `path` with `size` bytes reserved (fallocate, posix_fallocate
// fallback) and maps it. On failure the file is removed and `err` says why.
SegmentError create_segment(Segment& seg, const std::string& path, uint64_t base_lsn, uint64_t size,
                            std::string& err);

// Opens and maps an existing segment (read-write, or read-only for `hato store`).
// Read-write, blocks not allocated (a copy made sparse: cp, rsync -S, tar -S)
// are allocated first: a store into a hole on a full disk would be a SIGBUS
// (on tmpfs even a read), a failed allocation is a clean error.
bool open_segment(Segment& seg, const std::string& path, uint64_t base_lsn, bool writable,
                  std::string& err);

// Bytes of the first `size` of `fd` with no block allocated (0 if unknown).
uint64_t unallocated_bytes(int fd, uint64_t size);
// Allocates those bytes' blocks: 0, or the errno of the allocation.
int allocate_holes(int fd, uint64_t size);

// Readies the mapping for appends at `from`: a sync writes back every dirty
// folio whole, and fault readahead on a mapping builds large folios (ext4
// with large-folio support: up to 2 MiB), so a sync of a few records would
// rewrite all of that; measured about 1 MiB per sync. MADV_RANDOM turns
// fault readahead off (each page an append touches is a folio of its own),
// and what a recovery scan cached from `from` on (rounded down to 2 MiB, a
// folio's largest alignment) is dropped so it is faulted in the same way.
void prepare_appends(Segment& seg, uint64_t from);

// Makes [from, size) read as zeros and durable (ZERO_RANGE, or memset + sync).
bool zero_segment_tail(Segment& seg, uint64_t from);

// fsync of a directory, after creating or removing a file in it.
bool fsync_dir(const std::string& dir);
// The same, telling why: 0, or -errno of the open (nothing was synced: try
// again) or +errno of the fsync (what it covered is in doubt for good).
int fsync_dir_status(const std::string& dir);

}  // namespace hato::store
