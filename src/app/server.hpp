// The wiring: reactor + listeners + append log + persistence + broker +
// signals + sd_notify, all on one thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace hato::app {

// Reads the configuration again for a SIGHUP reload (the file, the command
// line's overrides, the files it names); false with every error.
using ConfigLoader = std::function<bool(config::AppConfig& out, std::vector<std::string>& errors)>;

// Runs the broker until SIGINT/SIGTERM; returns the process exit code
// (0 after a clean shutdown, 1 when start-up failed). Without a loader a
// SIGHUP reads only the files of the running configuration again.
int run_server(const config::AppConfig& cfg, ConfigLoader loader = {});

}  // namespace hato::app
