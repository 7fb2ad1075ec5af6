// `hato store verify DIR` and `hato store dump DIR`: read-only looks at a
// log directory (never cuts or rewrites anything; safe on a live broker's
// directory, though it may then see a record being written as torn).
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>

#include "store/log.hpp"

namespace hato::store {

// Per segment: records, bytes, first/last LSN, any bad record with its
// offset, and every damaged range the scan skipped (segment, offset, length)
// before the valid records after it. Returns 0 when every record checks out,
// 1 when damage (a skipped range, a torn tail, or a file named like a
// segment that is not one) was found, 2 when the directory cannot be read.
// Ranges an earlier recovery already filled (after its quarantine copy) are
// listed but are not errors.
//
// The log does not know what its owner's record types mean, so the owner
// may pass an inspector (`hato store` passes the broker's schema): it sees
// every valid record in log order and adds its own lines at the end.
class RecordInspector {
public:
    virtual ~RecordInspector() = default;
    // The text after a record's LSN in a dump.
    virtual std::string describe(uint8_t type, std::span<const uint8_t> body) const = 0;
    virtual void observe(const RecordView& rec) = 0;
    // Lines after the walk (a dump prefixes them with "# "); true when they
    // report damage the frames' checksums could not see.
    virtual bool summarize(std::ostream& out, bool dump) const = 0;
};

int store_verify(const std::string& dir, std::ostream& out, RecordInspector* owner = nullptr);

// One line per valid record: LSN and the inspector's text (type name,
// decoded fields, payloads by length; without one, the type number and body
// length), also those after a damaged range (listed as a comment). Returns
// 0, 1 if a segment has a damaged range or stops at a bad record, 2 on I/O
// errors.
int store_dump(const std::string& dir, std::ostream& out, RecordInspector* owner = nullptr);

}  // namespace hato::store
