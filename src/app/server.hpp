// The wiring: reactor + listeners + append log + persistence + broker +
// signals + sd_notify, all on one thread.
#pragma once

#include "config/config.hpp"

namespace hato::app {

// Runs the broker until SIGINT/SIGTERM; returns the process exit code
// (0 after a clean shutdown, 1 when start-up failed).
int run_server(const config::AppConfig& cfg);

}  // namespace hato::app
