// Topic -> (LSN, aux) for LogPersistence's retained messages: which
// retained_set record currently holds each topic. A flat open-addressing
// table (linear probing, backward-shift deletion, see open_table.hpp) that
// does not copy its keys: each entry refers to its topic where the caller
// keeps it, as a length-prefixed string (u32 length, then the bytes: the
// encoding of store::BodyWriter::str). LogPersistence points every entry at
// the topic inside the very log record its LSN names (a retained_set body
// starts with its topic) and re-points it whenever that record changes, so
// a million retained topics cost no key copies (they were 38 MB).
//
// A lookup compares the stored 32-bit hash first and reads the key only on
// a match, so a miss never touches the log.
#pragma once

#include <cstdint>
#include <cstring>
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
        uint32_t hash_ = 0;
        const uint8_t* key_ = nullptr;   // length-prefixed topic; null = free slot
    };

    // The entry for `topic`, a new one (lsn 0, aux 0) if absent, and then
    // `created` is true. Either way the entry now refers to `stored`: the
    // same topic as a length-prefixed string that stays readable while the
    // entry refers to it. The reference is valid until the next insert or
    // erase.
    Entry& get(std::string_view topic, const uint8_t* stored, bool& created);
    Entry* find(std::string_view topic);
    // Points `e` (an entry of this table) at another stored copy of its topic.
    void rekey(Entry& e, const uint8_t* stored) { e.key_ = stored; }
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
    // Room for `n` topics without regrowing.
    void reserve(size_t n);

    // The topic a length-prefixed string holds.
    static std::string_view stored_view(const uint8_t* stored) {
        uint32_t len;
        std::memcpy(&len, stored, 4);
        return {reinterpret_cast<const char*>(stored) + 4, len};
    }

private:
    struct Slot : Entry {
        static bool is_empty(const Slot& s) { return s.key_ == nullptr; }
        static uint32_t hash_of(const Slot& s) { return s.hash_; }
    };

    size_t probe(std::string_view topic, uint32_t hash) const;   // its slot, or the empty one ending the run

    std::vector<Slot> slots_;   // empty, or at least kMinTableSlots
    size_t live_ = 0;
};

}  // namespace hato::broker
