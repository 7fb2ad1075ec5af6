// Client id -> session slot. An open-addressing table (linear probing,
// backward-shift deletion) of (hash, slot) pairs: 8 bytes per session at
// most 3/4 full, no hash node and no second copy of the id. The ids are read
// back from the sessions themselves through `id_of`, so an indexed session
// must keep its id unchanged until it is erased.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

namespace hato::broker {

class ClientIndex {
public:
    using Slot = uint32_t;
    static constexpr Slot kNone = 0xFFFFFFFFu;
    using IdOf = std::function<std::string_view(Slot)>;

    explicit ClientIndex(IdOf id_of) : id_of_(std::move(id_of)) {}

    // The slot indexed under `id`, or kNone.
    Slot find(std::string_view id) const;
    bool contains(std::string_view id) const { return find(id) != kNone; }
    // Indexes `slot` under `id`, replacing the slot `id` had.
    void put(std::string_view id, Slot slot);
    // Removes `id` (nothing if absent).
    void erase(std::string_view id);
    size_t size() const { return size_; }

private:
    // A slot of the open-addressing table (open_table.hpp).
    struct Entry {
        uint32_t hash = 0;
        Slot slot = kNone;   // kNone: empty
        static bool is_empty(const Entry& e) { return e.slot == kNone; }
        static uint32_t hash_of(const Entry& e) { return e.hash; }
    };
    static uint32_t hash_id(std::string_view id);
    // Position of `id`, or of the empty entry that ends its probe sequence.
    size_t position(std::string_view id, uint32_t hash) const;

    std::vector<Entry> table_;   // empty until the first put
    size_t size_ = 0;
    IdOf id_of_;
};

}  // namespace hato::broker
