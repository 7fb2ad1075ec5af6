// The running listeners as a table of slots (the [[listener]] list) whose
// indices never change: every layer keeps per-listener state by slot, a
// reload appends new slots and leaves a removed one closed. The reactor
// numbers its listeners in the order they were opened; this maps between
// the two (the metrics endpoint's listener has no slot).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "net/reactor.hpp"

namespace hato::app {

class ListenerTable {
public:
    explicit ListenerTable(net::Reactor& reactor) : reactor_(reactor) {}

    // Slots 0..n-1 exist (new ones closed).
    void resize(size_t n);
    size_t size() const { return open_.size(); }

    // Listens for `slot`; false with `err`.
    bool open(size_t slot, const std::string& address, uint16_t port, std::string& err);
    // A listener without a slot; its reactor index, or -1 with `err`.
    int open_unslotted(const std::string& address, uint16_t port, std::string& err);
    // Stops accepting on `slot` (its connections are the caller's to close).
    void close(size_t slot);

    bool is_open(size_t slot) const { return slot < open_.size() && open_[slot]; }
    const std::vector<bool>& open_slots() const { return open_; }
    size_t open_count() const;
    // The port the kernel bound for an open slot (port 0 asks it to choose).
    uint16_t bound_port(size_t slot) const { return reactor_.bound_port(reactor_index_[slot]); }
    // The slot of reactor listener `index`, -1 for one without a slot.
    int slot_of(int reactor_index) const;

private:
    net::Reactor& reactor_;
    std::vector<bool> open_;
    std::vector<int> reactor_index_;   // slot -> reactor listener index
    std::vector<int> slot_of_;         // reactor listener index -> slot (-1: none)
};

}  // namespace hato::app
