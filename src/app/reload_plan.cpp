#include "app/reload_plan.hpp"

namespace hato::app {

std::vector<std::string> keep_restart_only(const config::AppConfig& running, config::AppConfig& next) {
    std::vector<std::string> names;
    auto keep = [&](const char* name, auto& next_value, const auto& running_value) {
        if (next_value == running_value) return;
        names.push_back(name);
        next_value = running_value;
    };
    keep("[broker] event_backend", next.event_backend, running.event_backend);
    keep("[storage] enabled", next.storage_enabled, running.storage_enabled);
    keep("[storage] dir", next.storage.dir, running.storage.dir);
    keep("[storage] segment_size_mb", next.storage.segment_bytes, running.storage.segment_bytes);
    keep("[storage] max_bytes_mb", next.storage.max_bytes, running.storage.max_bytes);
    keep("[storage] sync", next.storage.sync, running.storage.sync);
    keep("[storage] sync_interval_ms", next.sync_interval_ms, running.sync_interval_ms);
    keep("[storage] sync_window_us", next.sync_window_us, running.sync_window_us);
    keep("[storage] sync_batch_bytes", next.sync_batch_bytes, running.sync_batch_bytes);
    keep("[[modbus]]", next.modbus, running.modbus);   // the device thread is built once
    keep("[auth] hash_workers", next.auth.hash_workers, running.auth.hash_workers);
    // The file was checked against its own segment size, which a restart
    // would bring: a message the broker accepts must fit the running one.
    if (!config::packets_fit_segments(next))
        keep("[limits] max_packet_size (larger than the running segment_size_mb holds)",
             next.broker.max_packet_size, running.broker.max_packet_size);
    return names;
}

ListenerPlan plan_listeners(const std::vector<config::Listener>& running, const std::vector<bool>& open,
                            const std::vector<config::Listener>& next) {
    ListenerPlan plan;
    std::vector<bool> taken(running.size(), false);
    for (const config::Listener& n : next) {
        int slot = -1;
        for (size_t i = 0; i < running.size() && slot < 0; ++i)
            if (open[i] && !taken[i] && running[i].address == n.address && running[i].port == n.port) slot = int(i);
        if (slot >= 0) taken[size_t(slot)] = true;
        plan.slot_of_new.push_back(slot);
    }
    for (size_t i = 0; i < running.size(); ++i)
        if (open[i] && !taken[i]) plan.removed.push_back(i);
    return plan;
}

}  // namespace hato::app
