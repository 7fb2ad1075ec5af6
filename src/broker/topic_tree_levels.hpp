// Private helpers for the topic trees (SubIndex, RetainedIndex): hashing and
// the level intern table. Not part of the broker's public API.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace hato::broker::detail {

inline constexpr uint32_t kNoId = UINT32_MAX;

// Murmur3 finaliser: spreads every input bit over the whole word, so the low
// bits used as a table position depend on all of the key.
inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

// What fold_mul does on 32-bit targets (armhf), which have no 128-bit
// integers: two mix64 rounds, slower. Always compiled, so the unit tests
// check it on every machine.
inline uint64_t fold_mul_portable(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// The 128-bit product of a and b, folded to 64 bits: one multiply mixes
// every bit of both inputs into the middle of the result.
inline uint64_t fold_mul(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
    return uint64_t(p) ^ uint64_t(p >> 64);
#else
    return fold_mul_portable(a, b);
#endif
}

// Per-process random key of hash_level. Topics come from clients: with a
// fixed key anyone can compute many strings that share one hash (a 16-byte
// block whose word equals a known constant zeroes the state), and every
// probe of the level, child and topic -> LSN tables then walks one long run:
// hash flooding. Random bits mixed into the start value and every constant
// make the hashes unknowable from outside. Drawn once, before main() (the
// tables are in-memory only, so a new key per process is harmless).
struct HashKey {
    uint64_t start, block, last_a, last_b, final_a, final_b;
};
HashKey make_hash_key();   // getrandom(), or clock and addresses without it
inline const HashKey kHashKey = make_hash_key();

// Hash of one topic level (also used for whole topics), 32 bits, good in
// every bit. Inline and one multiply per 16 bytes: recovery hashes a few
// million short strings, and the previous two-multiplies-per-8-bytes version
// was 6-10 % of it. Strings of up to 16 bytes are read as two possibly
// overlapping words that together cover every byte.
inline uint32_t hash_level(std::string_view s) {
    const HashKey& k = kHashKey;
    const char* p = s.data();
    size_t n = s.size();
    uint64_t h = k.start ^ n;
    auto load8 = [](const char* q) { uint64_t w; std::memcpy(&w, q, 8); return w; };
    auto load4 = [](const char* q) { uint32_t w; std::memcpy(&w, q, 4); return uint64_t(w); };
    while (n > 16) {
        h = fold_mul(load8(p) ^ k.block, load8(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = load8(p);
        b = load8(p + n - 8);
    } else if (n >= 4) {
        a = load4(p);
        b = load4(p + n - 4);
    } else if (n > 0) {
        a = (uint64_t(uint8_t(p[0])) << 16) | (uint64_t(uint8_t(p[n / 2])) << 8) | uint8_t(p[n - 1]);
    }
    h = fold_mul(a ^ k.last_a, b ^ h ^ k.last_b);
    h = fold_mul(h ^ k.final_a, k.final_b ^ n);
    return uint32_t(h ^ (h >> 32));
}

// Interns topic level strings to dense 32-bit ids. Open addressing with
// linear probing and backward-shift deletion (open_table.hpp); the strings
// live in one byte arena addressed by offset, compacted when more than half
// of it is dead.
// Ids are reference counted: acquire() adds a reference (interning if new),
// release() drops one and frees the id at zero.
class LevelTable {
public:
    LevelTable();

    // Id of `s` (whose hash_level is `hash`), or kNoId. Never allocates.
    uint32_t find(std::string_view s, uint32_t hash) const;
    uint32_t acquire(std::string_view s, uint32_t hash);
    // One more reference to an id that find() returned; returns it.
    uint32_t add_ref(uint32_t id) {
        ++levels_[id].refs;
        return id;
    }
    void release(uint32_t id);

    // Room for `n` more levels of `bytes` bytes in all without regrowing.
    void reserve(size_t n, size_t bytes);
    // Loads the home slot of a level hash into the cache (see TopicTree::prefetch).
    void prefetch(uint32_t hash) const;

    std::string_view view(uint32_t id) const {
        const Level& l = levels_[id];
        return {arena_.data() + l.offset, l.len};
    }
    size_t live_count() const { return live_; }

private:
    struct Level {
        uint32_t offset = 0;
        uint32_t len = 0;
        uint32_t hash = 0;
        uint32_t refs = 0;  // 0 = free id
    };
    struct Slot {
        uint32_t id = kNoId;
        uint32_t hash = 0;
        static bool is_empty(const Slot& s) { return s.id == kNoId; }
        static uint32_t hash_of(const Slot& s) { return s.hash; }
    };

    size_t probe_for(std::string_view s, uint32_t hash) const;  // slot index
    void compact_arena();

    std::vector<Slot> slots_;  // at least kMinTableSlots
    std::vector<Level> levels_;
    std::vector<uint32_t> free_ids_;
    std::vector<char> arena_;
    size_t live_ = 0;
    size_t dead_bytes_ = 0;
};

}  // namespace hato::broker::detail
