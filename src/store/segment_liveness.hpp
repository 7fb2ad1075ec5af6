// What the log knows about which records of one segment are dead, so that
// compaction can weigh segments by dead bytes (not record counts: a dead
// 100 KB message and a dead 40-byte ack are not worth the same) and skip dead
// records without asking the owner.
#pragma once

#include <cstdint>
#include <vector>

namespace hato::store {

struct SegmentLiveness {
    // Every kStride-th LSN gets an index entry: ~1 bit of dead map and
    // 8/kStride bytes of index per record, and at most kStride header reads
    // to find a record's size from its LSN.
    static constexpr uint64_t kStride = 32;

    uint64_t dead_bytes = 0;
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
