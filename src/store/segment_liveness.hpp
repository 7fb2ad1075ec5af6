// What the log knows about which records of one segment are dead, so that
// compaction can weigh segments by dead bytes (not record counts: a dead
// 100 KB message and a dead 40-byte ack are not worth the same) and skip dead
// records without asking the owner.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace hato::store {

struct SegmentLiveness {
    // Every kStride-th LSN gets an index entry: ~1 bit of dead map and
    // 8/kStride bytes of index per record, and at most kStride header reads
    // to find a record's size from its LSN.
    static constexpr uint64_t kStride = 32;

    uint64_t dead_bytes = 0;
    // Of those, removal records (Log::mark_removal): compacting this segment
    // while it is not the oldest may have to copy them forward.
    uint64_t removal_bytes = 0;
    // The removals marked while the log's reserve was in use (a full disk),
    // with the newest LSN each cancels: one whose records are all gone need
    // not be copied forward. Only then, to cost no memory otherwise; of the
    // others it is not known, so they are kept.
    struct Cancel {
        uint64_t lsn = 0;
        uint64_t up_to = 0;   // Log::mark_removal's `cancels`
        uint64_t span = 0;
        std::array<uint64_t, 4> exactly{};   //   and `exactly`, `exact_count` of them
        uint8_t exact_count = 0;
    };
    std::vector<Cancel> cancels;  // ascending lsn
    uint64_t cancel_bytes = 0;    // their spans
    // Of cancel_bytes, those compaction would copy forward, as counted at
    // layout generation kept_gen (SegmentLog::newer_copy_bytes).
    mutable uint64_t kept_bytes = 0;
    mutable uint64_t kept_gen = UINT64_MAX;
    // The last probe of this segment found its compaction blocked, or
    // needing more room than there was: not probed again before something
    // changed (SegmentLog::newer_to_compact).
    uint64_t probe_gen = UINT64_MAX;
    uint64_t probe_dead = 0;
    uint64_t probe_room = 0;

    const Cancel* cancel_of(uint64_t lsn) const {
        auto it = std::lower_bound(cancels.begin(), cancels.end(), lsn,
                                   [](const Cancel& c, uint64_t l) { return c.lsn < l; });
        return it != cancels.end() && it->lsn == lsn ? &*it : nullptr;
    }
    std::vector<uint64_t> dead_bits;  // bit (lsn - base)
    // index[i]: offset of the first record whose LSN is >= base + i * kStride.
    std::vector<uint64_t> index;

    // A record of `lsn` was written at `offset` (LSNs ascend in a segment,
    // gaps allowed).
    void note_record(uint64_t base, uint64_t lsn, uint64_t offset) {
        const uint64_t rel = lsn - base;
        while (index.size() * kStride <= rel) index.push_back(offset);
        const uint64_t words = rel / 64 + 1;
        if (dead_bits.size() < words) dead_bits.resize(words, 0);
    }
    bool is_dead(uint64_t base, uint64_t lsn) const {
        const uint64_t rel = lsn - base;
        return rel / 64 < dead_bits.size() && (dead_bits[rel / 64] >> (rel % 64) & 1);
    }
    void set_dead(uint64_t base, uint64_t lsn) {
        const uint64_t rel = lsn - base;
        if (dead_bits.size() <= rel / 64) dead_bits.resize(rel / 64 + 1, 0);
        dead_bits[rel / 64] |= uint64_t(1) << (rel % 64);
    }
    // Where to start looking for `lsn` (its record is at or after this offset).
    uint64_t search_from(uint64_t base, uint64_t lsn) const {
        const uint64_t i = (lsn - base) / kStride;
        return i < index.size() ? index[i] : (index.empty() ? 0 : index.back());
    }
};

}  // namespace hato::store
