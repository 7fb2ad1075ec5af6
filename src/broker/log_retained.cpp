// LogPersistence serving retained messages from the log's mapping: a
// reference is the body of a retained_set record where the log maps it
// (what Log::last_body() and replay() show), so the broker holds 8 bytes
// per retained topic instead of a heap copy of its message. The log keeps
// a body in place until compaction copies its record (the mapping contract
// in store/log.hpp); the copy is reported through on_retained_moved.
#include "broker/log_persistence.hpp"
#include "broker/record_schema.hpp"
#include "store/frame.hpp"

namespace hato::broker {

const void* LogPersistence::last_retained_ref() const { return log_.last_body().data(); }

StoredMessageView LogPersistence::retained_at(const void* ref) const {
    // The frame header in front of the body gives its length (store/frame.hpp).
    const auto* body = static_cast<const uint8_t*>(ref);
    BodyReader r(store::read_record(body - store::kHeaderBytes).body);
    rec::RetainedSet m;
    (void)rec::decode(m, r);   // checked when it was written or replayed
    return m.msg;
}

}  // namespace hato::broker
