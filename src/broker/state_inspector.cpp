#include "broker/state_inspector.hpp"

#include "broker/state_records.hpp"

namespace hato::broker {

std::string StateInspector::describe(uint8_t type, std::span<const uint8_t> body) const {
    return state_record_name(type) + describe_state_record(type, body);
}

// One line per bridge: what would still be sent upstream.
bool StateInspector::summarize(std::ostream& out, bool dump) const {
    bool bad = false;
    for (const BridgeQueue& b : bridges_.result()) {
        out << (dump ? "# " : "") << "bridge " << b.name << " queue: " << b.messages << " message(s), " << b.bytes
            << " bytes";
        if (b.oldest_lsn) out << ", oldest at lsn " << b.oldest_lsn;
        if (b.malformed) {
            out << ", " << b.malformed << (dump ? " malformed" : " MALFORMED") << " record(s)";
            bad = true;
        }
        out << "\n";
    }
    return bad;
}

}  // namespace hato::broker
