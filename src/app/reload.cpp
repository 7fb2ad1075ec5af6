#include "app/reload.hpp"

#include <algorithm>
#include <ranges>
#include <string>

#include "app/log.hpp"
#include "app/reload_plan.hpp"

namespace hato::app {

namespace {

void warn_restart_only(const std::vector<std::string>& kept) {
    if (kept.empty()) return;
    std::string list;
    for (const std::string& k : kept) list += (list.empty() ? "" : ", ") + k;
    log_warn("reload: %s changed, which needs a restart: keeping the running value", list.c_str());
}

// The new listener table: kept slots take their new settings, new ones are
// appended, and every other slot is emptied (no files, no TLS): the removed
// ones, and any that never opened (a listener a reload added that failed to
// bind), whose files would otherwise be loaded again at every reload.
// Returns the added slots.
std::vector<size_t> build_table(const std::vector<config::Listener>& running, const ListenerPlan& plan,
                                std::vector<config::Listener>& next) {
    std::vector<config::Listener> table(running.size());
    std::vector<size_t> added;
    for (size_t n = 0; n < next.size(); ++n) {
        if (plan.slot_of_new[n] >= 0) {
            table[size_t(plan.slot_of_new[n])] = next[n];
        } else {
            added.push_back(table.size());
            table.push_back(next[n]);
        }
    }
    next = std::move(table);
    return added;
}

// Whether every listener the reload adds, and the metrics endpoint if it
// moves, can bind. A port one of our open sockets holds is not tried: that
// socket is closed first (moved to another address on its port).
bool added_ports_bind(const config::AppConfig& running, const std::vector<bool>& open_slots,
                      const config::AppConfig& next, const ListenerPlan& plan, ReloadSteps& steps) {
    const size_t open = std::min(open_slots.size(), running.listeners.size());
    const bool metrics_moved =
        next.metrics.address != running.metrics.address || next.metrics.port != running.metrics.port;
    auto ours = [&](uint16_t port) {
        if (metrics_moved && running.metrics.port == port) return true;
        return std::ranges::any_of(std::views::iota(size_t{0}, open), [&](size_t i) {
            return open_slots[i] && running.listeners[i].port == port;
        });
    };
    auto binds = [&](const char* what, const std::string& address, uint16_t port) {
        std::string err;
        if (port == 0 || ours(port) || steps.can_listen(address, port, err)) return true;
        log_error("reload: new %s %s:%u cannot open: %s", what, address.c_str(), unsigned(port), err.c_str());
        return false;
    };
    bool ok = true;
    for (size_t n = 0; n < next.listeners.size(); ++n)
        if (plan.slot_of_new[n] < 0) ok = binds("listener", next.listeners[n].address, next.listeners[n].port) && ok;
    if (metrics_moved) ok = binds("metrics endpoint", next.metrics.address, next.metrics.port) && ok;
    return ok;
}

}  // namespace

bool apply_reload(const config::AppConfig& running, const std::vector<bool>& open_slots, config::AppConfig next,
                  ReloadSteps& steps) {
    const config::MetricsConfig old_metrics = running.metrics;
    const uint32_t old_sys = running.sys_interval_s;
    const ListenerPlan plan = plan_listeners(running.listeners, open_slots, next.listeners);
    if (!added_ports_bind(running, open_slots, next, plan, steps)) return false;
    warn_restart_only(keep_restart_only(running, next));
    // Closed while `running` still describes them (the log names them).
    for (size_t i : plan.removed) steps.close_listener(i);
    const std::vector<size_t> added = build_table(running.listeners, plan, next.listeners);
    const bool sys_changed = next.sys_interval_s != old_sys;
    const bool metrics_moved = next.metrics.address != old_metrics.address || next.metrics.port != old_metrics.port;

    steps.adopt(std::move(next));
    steps.reload_security();
    // The metrics endpoint first: a new listener may take the port it leaves.
    if (metrics_moved) steps.reopen_metrics(old_metrics);
    for (size_t i : added) steps.open_added_listener(i);
    if (sys_changed) steps.restart_sys();
    steps.reload_bridges();
    return true;
}

}  // namespace hato::app
