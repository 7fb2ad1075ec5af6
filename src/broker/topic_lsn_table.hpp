// Topic -> (LSN, aux) for LogPersistence's retained messages: which
// retained_set record currently holds each topic. A flat open-addressing
// table whose keys live in one byte arena, so a million retained topics cost
// two allocations instead of two per topic, and a lookup is one probe run
// plus one string compare. Linear probing with backward-shift deletion (no
// tombstones, see open_table.hpp); the arena is compacted when more than half
// of it is dead.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace hato::broker {

class TopicLsnTable {
public:
    struct Entry {
        uint64_t lsn = 0;
        uint32_t aux = 0;   // owner's use (LogPersistence: index into the replay's vector)
    private:
        friend class TopicLsnTable;
        uint32_t hash_ = 0;  // here, in what would be padding: a slot is 24 bytes, not 32
    };

    // The entry for `topic`; a new one (lsn 0, aux 0) if absent, and then
    // `created` is true. The reference is valid until the next insert or erase.
    Entry& get(std::string_view topic, bool& created);
    Entry* find(std::string_view topic);
    // Removes `topic`, copying its entry to `out` first; false if absent.
    // One probe, where find() then erase() would take two.
    bool take(std::string_view topic, Entry& out);
    bool erase(std::string_view topic) {
        Entry e;
        return take(topic, e);
    }

    // Starts a lookup of `topic` by loading its home slot into the cache, so
    // a caller walking many topics can overlap the misses (recovery).
    void prefetch(std::string_view topic) const;

    size_t size() const { return live_; }
    // Room for `n` topics of `key_bytes` bytes in all without regrowing.
    void reserve(size_t n, size_t key_bytes = 0);

private:
    static constexpr uint64_t kEmpty = UINT64_MAX;
    struct Slot {
        Entry entry;
        uint64_t key = kEmpty;   // arena offset << 16 | length (MQTT topics are < 64 KiB)
        static bool is_empty(const Slot& s) { return s.key == kEmpty; }
        static uint32_t hash_of(const Slot& s) { return s.entry.hash_; }
    };
    static uint64_t key_offset(uint64_t key) { return key >> 16; }
    static uint32_t key_length(uint64_t key) { return uint32_t(key & 0xFFFF); }
    std::string_view key_view(uint64_t key) const {
        return {arena_.data() + key_offset(key), key_length(key)};
    }

    size_t probe(std::string_view topic, uint32_t hash) const;   // its slot, or the empty one ending the run
    void compact_arena();

    std::vector<Slot> slots_;   // empty, or at least kMinTableSlots
    std::vector<char> arena_;
    size_t live_ = 0;
    size_t dead_bytes_ = 0;
};

}  // namespace hato::broker
