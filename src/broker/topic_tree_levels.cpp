#include "broker/topic_tree_levels.hpp"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "broker/open_table.hpp"

namespace hato::broker::detail {

HashKey make_hash_key() {
    uint64_t r[6] = {};
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != ssize_t(sizeof r)) {
        // No entropy yet (very early boot) or no getrandom: weaker, but still
        // not known to a remote client.
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
        x ^= uint64_t(getpid()) << 32 ^ reinterpret_cast<uintptr_t>(&ts);
        for (uint64_t& w : r) w = x = mix64(x + 0x9e3779b97f4a7c15ULL);
    }
    // Over arbitrary fixed bits (hex digits of pi), so a zero draw is no weaker.
    return {0x9e3779b97f4a7c15ULL ^ r[0], 0x243f6a8885a308d3ULL ^ r[1], 0x13198a2e03707344ULL ^ r[2],
            0xa4093822299f31d0ULL ^ r[3], 0x082efa98ec4e6c89ULL ^ r[4], 0x452821e638d01377ULL ^ r[5]};
}

LevelTable::LevelTable() : slots_(kMinTableSlots) {}

size_t LevelTable::probe_for(std::string_view s, uint32_t hash) const {
    return probe_slot(slots_, hash, [&](const Slot& slot) {
        if (slot.hash != hash) return false;
        const Level& l = levels_[slot.id];
        return l.len == s.size() && std::memcmp(arena_.data() + l.offset, s.data(), s.size()) == 0;
    });
}

uint32_t LevelTable::find(std::string_view s, uint32_t hash) const {
    return slots_[probe_for(s, hash)].id;
}

uint32_t LevelTable::acquire(std::string_view s, uint32_t hash) {
    size_t pos = probe_for(s, hash);
    if (slots_[pos].id != kNoId) {
        ++levels_[slots_[pos].id].refs;
        return slots_[pos].id;
    }
    uint32_t id;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
    } else {
        id = uint32_t(levels_.size());
        levels_.emplace_back();
    }
    Level& l = levels_[id];
    l.offset = uint32_t(arena_.size());
    l.len = uint32_t(s.size());
    l.hash = hash;
    l.refs = 1;
    arena_.insert(arena_.end(), s.begin(), s.end());
    ++live_;
    // Load factor at most 3/4: a probe compares the stored hash first, so
    // longer runs rarely touch the strings.
    if (live_ * 4 > slots_.size() * 3) {
        rehash_slots(slots_, slots_.size() * 2);
        place_slot(slots_, Slot{id, hash});
    } else {
        slots_[pos] = {id, hash};
    }
    return id;
}

void LevelTable::release(uint32_t id) {
    Level& l = levels_[id];
    if (--l.refs > 0) return;
    std::string_view s = view(id);
    erase_slot(slots_, probe_for(s, l.hash));
    dead_bytes_ += l.len;
    free_ids_.push_back(id);
    --live_;
    if (live_ == 0) {
        // Everything released: hand all memory back.
        std::vector<Level>().swap(levels_);
        std::vector<uint32_t>().swap(free_ids_);
        std::vector<char>().swap(arena_);
        dead_bytes_ = 0;
        slots_.assign(kMinTableSlots, Slot{});
        slots_.shrink_to_fit();
        return;
    }
    if (slots_.size() >= 2 * kMinTableSlots && live_ * 8 < slots_.size()) rehash_slots(slots_, slots_.size() / 2);
    if (dead_bytes_ > 4096 && dead_bytes_ > arena_.size() / 2) compact_arena();
}

void LevelTable::reserve(size_t n, size_t bytes) {
    const size_t want = table_capacity_for(live_ + n);
    if (want > slots_.size()) rehash_slots(slots_, want);
    levels_.reserve(levels_.size() + n);
    arena_.reserve(arena_.size() + bytes);
}

void LevelTable::prefetch(uint32_t hash) const {
    __builtin_prefetch(&slots_[ProbeRange(slots_.size()).home(hash)]);
}

void LevelTable::compact_arena() {
    std::vector<char> fresh;
    fresh.reserve(arena_.size() - dead_bytes_);
    for (Level& l : levels_) {
        if (l.refs == 0) continue;
        uint32_t offset = uint32_t(fresh.size());
        fresh.insert(fresh.end(), arena_.begin() + l.offset, arena_.begin() + l.offset + l.len);
        l.offset = offset;
    }
    arena_ = std::move(fresh);
    dead_bytes_ = 0;
}

}  // namespace hato::broker::detail
