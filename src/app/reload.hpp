// A SIGHUP reload with a valid configuration, applied in this order:
//   0. every new listener must be able to bind, else nothing changes (a
//      listener moved to a busy port would otherwise close the old one and
//      leave the gateway unreachable);
//   1. restart-only keys keep their running values (named in a warning);
//   2. listeners the new list drops stop accepting, their clients get
//      DISCONNECT; kept ones take their new settings in their slot;
//   3. the new configuration is adopted: limits, log level, broker settings;
//   4. password files, ACL files and certificates are read again (at the new
//      paths) before any new listener accepts, so none opens unprotected;
//   5. new listeners open;
//   6. [sys], [metrics] when their settings changed, then the bridges.
// The steps are the wiring's (server.cpp); the order is tested on a recorder.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace hato::app {

class ReloadSteps {
public:
    virtual ~ReloadSteps() = default;
    // A trial bind of a listener or metrics port the reload adds (false: `err` says why).
    virtual bool can_listen(const std::string& address, uint16_t port, std::string& err) = 0;
    virtual void close_listener(size_t slot) = 0;
    virtual void adopt(config::AppConfig next) = 0;
    virtual void reload_security() = 0;
    virtual void open_added_listener(size_t slot) = 0;   // a failure is logged; the slot stays closed
    virtual void restart_sys() = 0;
    virtual void reopen_metrics(const config::MetricsConfig& old) = 0;
    virtual void reload_bridges() = 0;
};

// `running` is read before adopt() replaces it (it may be the same object
// adopt() assigns); `open_slots` says which of its listeners are open.
// False when a new listener cannot bind: logged, nothing applied.
bool apply_reload(const config::AppConfig& running, const std::vector<bool>& open_slots, config::AppConfig next,
                  ReloadSteps& steps);

}  // namespace hato::app
