#include "broker/state_records.hpp"

#include <sstream>

#include "broker/record_schema.hpp"

namespace hato::broker {

const char* state_record_name(uint8_t type) {
    const char* name = "?";
    rec::visit(type, [&](auto& r) { name = r.kName; });
    return name;
}

bool readable_state_record(uint8_t type, std::span<const uint8_t> body) {
    bool decoded = false;
    rec::visit(type, [&](auto& r) {
        BodyReader in(body);
        decoded = rec::decode(r, in);
    });
    return decoded;
}

std::string describe_state_record(uint8_t type, std::span<const uint8_t> body) {
    std::ostringstream os;
    BodyReader in(body);
    const bool known = rec::visit(type, [&](auto& r) {
        // Decoded as far as it goes: a damaged record shows what it holds.
        r.read_key(in);
        r.read_rest(in);
        r.describe(os);
    });
    if (!known) os << " body=" << body.size() << "B";
    else if (!in.ok() || !in.at_end()) os << " MALFORMED(" << body.size() << "B)";
    return os.str();
}

}  // namespace hato::broker
