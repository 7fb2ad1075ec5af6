// Topic -> (LSN, aux) for LogPersistence's retained messages: which
// retained_set record currently holds each topic. A flat open-addressing
// table whose keys live in one byte arena, so a million retained topics cost
// two allocations instead of two per topic, and a lookup is one probe run
// plus one string compare. Linear probing with backward-shift deletion (no
// tombstones); the arena is compacted when more than half of it is dead.
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
    };

    // The entry for `topic`; a new one (lsn 0, aux 0) if absent, and then
    // `created` is true. The reference is valid until the next insert or erase.
    Entry& get(std::string_view topic, bool& created);
    Entry* find(std::string_view topic);
    bool erase(std::string_view topic);

    size_t size() const { return live_; }
    // Room for `n` topics without regrowing the slot array.
    void reserve(size_t n);

private:
    static constexpr uint64_t kEmpty = UINT64_MAX;
    struct Slot {
        Entry entry;
        uint32_t hash = 0;
        uint64_t key = kEmpty;   // arena offset << 16 | length (MQTT topics are < 64 KiB)
    };
    static uint64_t key_offset(uint64_t key) { return key >> 16; }
    static uint32_t key_length(uint64_t key) { return uint32_t(key & 0xFFFF); }
    std::string_view key_view(uint64_t key) const {
        return {arena_.data() + key_offset(key), key_length(key)};
    }

    size_t probe(std::string_view topic, uint32_t hash) const;   // its slot, or the empty one ending the run
    void place(const Slot& s);                                   // into a free position (rehash)
    void rehash(size_t capacity);
    void compact_arena();

    std::vector<Slot> slots_;   // power-of-two capacity, or empty
    std::vector<char> arena_;
    size_t live_ = 0;
    size_t dead_bytes_ = 0;
};

}  // namespace hato::broker
