// Probe arithmetic shared by the broker's open-addressing tables
// (TopicLsnTable, LevelTable, TopicTree's child table, ClientIndex): linear
// probing over a slot array, with backward-shift deletion so lookups need no
// tombstones.
//
// A slot's home position is (hash * capacity) >> 32 instead of hash & mask,
// so the capacity need not be a power of two: a table sized from a count
// known in advance (recovery) holds a million entries in 1.33 M slots at
// load 3/4, where a power of two would take 2 M, and every slot is memory the
// kernel has to zero and the cache has to miss on. Hashes must therefore be
// good in their high bits (mix64 and hash_level are).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hato::broker::detail {

inline constexpr size_t kMinTableSlots = 16;

// Slots for `n` entries at a load factor of at most 3/4.
inline size_t table_capacity_for(size_t n) {
    const size_t c = n + n / 3 + 1;
    return c < kMinTableSlots ? kMinTableSlots : c;
}

class ProbeRange {
public:
    explicit ProbeRange(size_t capacity) : cap_(capacity) {}
    size_t home(uint32_t hash) const { return size_t((uint64_t(hash) * cap_) >> 32); }
    size_t next(size_t pos) const { return pos + 1 == cap_ ? 0 : pos + 1; }
    // Steps from `from` forward to `to`, wrapping around.
    size_t distance(size_t from, size_t to) const { return to >= from ? to - from : to + cap_ - from; }

private:
    size_t cap_;
};

// The table's slot type describes itself through two static functions:
//   bool Slot::is_empty(const Slot&)   and   uint32_t Slot::hash_of(const Slot&)
// and a default-constructed Slot is empty.

// The position of the slot `matches` accepts in the probe run of `hash`, or
// of the empty slot that ends the run. `slots` is not empty and never full.
template <class Slot, class Match>
size_t probe_slot(const std::vector<Slot>& slots, uint32_t hash, Match&& matches) {
    const ProbeRange r(slots.size());
    size_t pos = r.home(hash);
    while (!Slot::is_empty(slots[pos]) && !matches(slots[pos])) pos = r.next(pos);
    return pos;
}

// Puts `s` (not in the table) into the first free slot of its probe run.
template <class Slot>
void place_slot(std::vector<Slot>& slots, const Slot& s) {
    const ProbeRange r(slots.size());
    size_t pos = r.home(Slot::hash_of(s));
    while (!Slot::is_empty(slots[pos])) pos = r.next(pos);
    slots[pos] = s;
}

// Empties slots[hole] and pulls later members of its probe run back: an
// entry may move into the hole only if its home is not in (hole, pos].
template <class Slot>
void erase_slot(std::vector<Slot>& slots, size_t hole) {
    const ProbeRange r(slots.size());
    for (size_t pos = r.next(hole); !Slot::is_empty(slots[pos]); pos = r.next(pos)) {
        if (r.distance(r.home(Slot::hash_of(slots[pos])), pos) >= r.distance(hole, pos)) {
            slots[hole] = slots[pos];
            hole = pos;
        }
    }
    slots[hole] = Slot{};
}

// Asks the kernel for transparent huge pages (when THP is in "madvise"
// mode) for the whole 2 MiB pages inside [p, p + bytes), if there are any.
// A big table is probed at random, so with 4 KiB pages nearly every probe
// (and every prefetch) also misses the TLB, and a page walk in a VM is
// expensive. Only the tables: recovery runs with the rest of its heap on
// ordinary pages (see docs/durability.md, "Recovery time").
void advise_huge_pages(const void* p, size_t bytes);

// Moves every entry into a fresh array of `capacity` slots.
template <class Slot>
void rehash_slots(std::vector<Slot>& slots, size_t capacity) {
    std::vector<Slot> old = std::move(slots);
    slots.reserve(capacity);   // allocated, not yet touched: advise first
    advise_huge_pages(slots.data(), capacity * sizeof(Slot));
    slots.assign(capacity, Slot{});
    for (const Slot& s : old)
        if (!Slot::is_empty(s)) place_slot(slots, s);
}

}  // namespace hato::broker::detail
