#include "app/listener_table.hpp"

#include <algorithm>

namespace hato::app {

void ListenerTable::resize(size_t n) {
    open_.resize(n, false);
    reactor_index_.resize(n, -1);
}

bool ListenerTable::open(size_t slot, const std::string& address, uint16_t port, std::string& err) {
    if (slot >= size()) resize(slot + 1);
    if (!reactor_.listen(address, port, err)) return false;
    reactor_index_[slot] = static_cast<int>(slot_of_.size());
    slot_of_.push_back(static_cast<int>(slot));
    open_[slot] = true;
    return true;
}

int ListenerTable::open_unslotted(const std::string& address, uint16_t port, std::string& err) {
    if (!reactor_.listen(address, port, err)) return -1;
    slot_of_.push_back(-1);
    return static_cast<int>(slot_of_.size()) - 1;
}

void ListenerTable::close(size_t slot) {
    reactor_.close_listener(reactor_index_[slot]);
    open_[slot] = false;
}

size_t ListenerTable::open_count() const {
    return size_t(std::count(open_.begin(), open_.end(), true));
}

int ListenerTable::slot_of(int reactor_index) const {
    return reactor_index >= 0 && size_t(reactor_index) < slot_of_.size() ? slot_of_[size_t(reactor_index)] : -1;
}

}  // namespace hato::app
