// What --check-config checks beyond the TOML itself. hato --check-config,
// hato migrate and a SIGHUP reload run these same checks, so none of them
// accepts a configuration the others refuse.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace hato::app {

// Reads every file the configuration names (password and ACL files, the
// listeners' certificates, the bridges' TLS and password files), keeping
// nothing. false with `errors`; `warnings` (the bridges' budgets and topic
// rules) do not make it fail.
bool check_config_files(const config::AppConfig& cfg, std::vector<std::string>& errors,
                        std::vector<std::string>& warnings);

}  // namespace hato::app
