#include "broker/state_records.hpp"

#include <sstream>

namespace hato::broker {

const char* state_record_name(uint8_t type) {
    switch (static_cast<StateRecord>(type)) {
        case StateRecord::RetainedSet: return "retained_set";
        case StateRecord::RetainedClear: return "retained_clear";
        case StateRecord::SessionPut: return "session_put";
        case StateRecord::SessionRemove: return "session_remove";
        case StateRecord::SubPut: return "sub_put";
        case StateRecord::SubRemove: return "sub_remove";
        case StateRecord::OutEnqueue: return "out_enqueue";
        case StateRecord::OutState: return "out_state";
        case StateRecord::OutDone: return "out_done";
        case StateRecord::Qos2InPut: return "qos2_in_put";
        case StateRecord::Qos2InRemove: return "qos2_in_remove";
    }
    return "?";
}

namespace {

void describe_message(BodyReader& r, std::ostream& os) {
    os << " topic=\"" << r.str() << "\"";
    os << " payload=" << r.bytes().size() << "B";
    os << " props=" << r.bytes().size() << "B";
    os << " qos=" << int(r.u8());
    os << " retain=" << int(r.u8());
    os << " expiry_wall_ms=" << r.u64();
}

// The extension of session_put / out_enqueue, when the body has one.
void describe_session_ext(BodyReader& r, std::ostream& os) {
    if (r.at_end()) return;
    if (r.u8() < kExtensionV1) return;
    os << " owner_source=" << int(r.u8());
    os << " username=\"" << r.str() << "\"";
}

void describe_delivery_ext(BodyReader& r, std::ostream& os) {
    if (r.at_end()) return;
    if (r.u8() < kExtensionV1) return;
    const uint32_t n = r.u32();
    os << " sub_ids=[";
    for (uint32_t i = 0; i < n && r.ok(); ++i) os << (i ? "," : "") << r.u32();
    os << "]";
    os << " share=\"" << r.str() << "\"";
}

// Future extension versions append fields: a dump shows what it knows.
void skip_rest(BodyReader& r) {
    while (r.ok() && !r.at_end()) r.u8();
}

}  // namespace

std::string describe_state_record(uint8_t type, std::span<const uint8_t> body) {
    BodyReader r(body);
    std::ostringstream os;
    switch (static_cast<StateRecord>(type)) {
        case StateRecord::RetainedSet: describe_message(r, os); break;
        case StateRecord::RetainedClear: os << " topic=\"" << r.str() << "\""; break;
        case StateRecord::SessionPut:
            os << " client=\"" << r.str() << "\"";
            os << " expiry_s=" << r.u32();
            os << " offline_since_wall_ms=" << r.u64();
            describe_session_ext(r, os);
            skip_rest(r);
            break;
        case StateRecord::SessionRemove: os << " client=\"" << r.str() << "\""; break;
        case StateRecord::SubPut:
            os << " client=\"" << r.str() << "\"";
            os << " filter=\"" << r.str() << "\"";
            os << " options=" << int(r.u8());
            os << " sub_id=" << r.u32();
            break;
        case StateRecord::SubRemove:
            os << " client=\"" << r.str() << "\"";
            os << " filter=\"" << r.str() << "\"";
            break;
        case StateRecord::OutEnqueue:
            os << " client=\"" << r.str() << "\"";
            os << " seq=" << r.u64();
            describe_message(r, os);
            describe_delivery_ext(r, os);
            skip_rest(r);
            break;
        case StateRecord::OutState:
            os << " client=\"" << r.str() << "\"";
            os << " seq=" << r.u64();
            os << " state=" << int(r.u8());
            os << " packet_id=" << r.u16();
            break;
        case StateRecord::OutDone:
            os << " client=\"" << r.str() << "\"";
            os << " seq=" << r.u64();
            break;
        case StateRecord::Qos2InPut:
        case StateRecord::Qos2InRemove:
            os << " client=\"" << r.str() << "\"";
            os << " packet_id=" << r.u16();
            break;
        default: os << " body=" << body.size() << "B"; return os.str();
    }
    if (!r.ok() || !r.at_end()) os << " MALFORMED(" << body.size() << "B)";
    return os.str();
}

}  // namespace hato::broker
