// `hato migrate mosquitto.conf [-o hato.toml] [--strict]`: the command line
// around config::migrate_mosquitto (file reading, output, the check).
#pragma once

#include <string>
#include <vector>

namespace hato::app {

// `args` are the words after "migrate". Returns the exit code.
int migrate_command(const std::vector<std::string>& args);

}  // namespace hato::app
