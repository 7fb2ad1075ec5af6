// What `hato store dump` and `hato store verify` know of the broker's
// records: each one decoded by the schema (state_records), and the bridges'
// store-and-forward queues tallied from them and reported at the end.
#pragma once

#include "broker/bridge_queues.hpp"
#include "store/inspect.hpp"

namespace hato::broker {

class StateInspector final : public store::RecordInspector {
public:
    std::string describe(uint8_t type, std::span<const uint8_t> body) const override;
    void observe(const store::RecordView& rec) override;
    bool summarize(std::ostream& out, bool dump) const override;

private:
    BridgeQueueTally bridges_;
    uint64_t unread_ = 0;   // records this version cannot read (kept by the broker, not served)
};

}  // namespace hato::broker
