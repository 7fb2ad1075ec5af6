// What a SIGHUP reload changes, worked out before anything is touched: the
// settings that need a restart (kept at their running values) and how the
// new [[listener]] list maps onto the running listeners.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace hato::app {

// Names the keys whose new value needs a restart, and puts the running
// value back into `next` for each.
std::vector<std::string> keep_restart_only(const config::AppConfig& running, config::AppConfig& next);

// The running listeners are a table whose indices never change (the layers
// keep per-listener state by index); a removed one leaves a closed slot.
// A new listener with the address and port of a running one takes its slot
// (its other settings apply to new connections); any other is added.
struct ListenerPlan {
    std::vector<int> slot_of_new;      // per new listener: its running slot, or -1 to add
    std::vector<size_t> removed;       // running slots that no new listener keeps
};
ListenerPlan plan_listeners(const std::vector<config::Listener>& running, const std::vector<bool>& open,
                            const std::vector<config::Listener>& next);

}  // namespace hato::app
