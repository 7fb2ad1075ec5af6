#include "app/config_check.hpp"

#include "app/bridge_runner.hpp"
#include "app/security.hpp"

namespace hato::app {

bool check_config_files(const config::AppConfig& cfg, std::vector<std::string>& errors,
                        std::vector<std::string>& warnings) {
    // Both run even when the first fails: every error shows at once.
    bool ok = check_security_files(cfg, errors);
    ok = check_bridge_files(cfg, errors, warnings) && ok;
    return ok;
}

}  // namespace hato::app
