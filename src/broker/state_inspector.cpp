#include "broker/state_inspector.hpp"

#include "broker/state_records.hpp"
#include "store/frame.hpp"

namespace hato::broker {

std::string StateInspector::describe(uint8_t type, std::span<const uint8_t> body) const {
    return state_record_name(type) + describe_state_record(type, body);
}

void StateInspector::observe(const store::RecordView& rec) {
    bridges_.add(rec);
    if (!store::is_filler(rec) && !readable_state_record(rec.type, rec.body)) ++unread_;
}

// One line per bridge: what would still be sent upstream; and the records
// this version cannot read.
bool StateInspector::summarize(std::ostream& out, bool dump) const {
    bool bad = false;
    if (unread_) {
        out << (dump ? "# " : "") << unread_ << " record(s) " << (dump ? "" : "UNREADABLE: ")
            << "of a type this version does not know, or whose body does not decode (written by a newer "
               "hato?); the broker keeps them as they are and does not serve what they hold\n";
        bad = true;
    }
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
