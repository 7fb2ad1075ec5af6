// [[listener]] max_connections: open connections counted per listener, for
// the listeners that set a limit ([limits] max_connections still bounds the
// total). Connections on listeners without one are not tracked at all.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "net/reactor.hpp"

namespace hato::app {

class ListenerLimits {
public:
    // One entry per listener; 0 = no limit of its own.
    void configure(std::vector<uint32_t> max_by_listener) {
        max_ = std::move(max_by_listener);
        open_.assign(max_.size(), 0);
        listener_of_.clear();
    }
    // Listener `index` has as many connections as it may.
    bool full(int index) const {
        return limited(index) && open_[size_t(index)] >= max_[size_t(index)];
    }
    void opened(net::ConnId id, int index) {
        if (!limited(index)) return;
        ++open_[size_t(index)];
        listener_of_[id] = index;
    }
    void closed(net::ConnId id) {
        auto it = listener_of_.find(id);
        if (it == listener_of_.end()) return;
        --open_[size_t(it->second)];
        listener_of_.erase(it);
    }
    uint32_t open(int index) const { return limited(index) ? open_[size_t(index)] : 0; }

private:
    bool limited(int index) const { return index >= 0 && size_t(index) < max_.size() && max_[size_t(index)] != 0; }

    std::vector<uint32_t> max_;
    std::vector<uint32_t> open_;
    std::unordered_map<net::ConnId, int> listener_of_;   // connections on limited listeners
};

}  // namespace hato::app
