// While the store refuses durable work: one error line per second at most,
// with what was refused since the last line, by reason. Checked at every
// pass end and tick (a tick reports what the last second held back).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "broker/broker.hpp"

namespace hato::app {

class StoreRefusalReport {
public:
    // The line to log now, if any, for the broker's counters `s`.
    std::optional<std::string> due(const broker::Stats& s, uint64_t now_ms);

private:
    broker::Stats reported_;   // counters as of the last line
    uint64_t last_ms_ = 0;
};

}  // namespace hato::app
