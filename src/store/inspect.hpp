// `hato store verify DIR` and `hato store dump DIR`: read-only looks at a
// log directory (never cuts or rewrites anything; safe on a live broker's
// directory, though it may then see a record being written as torn).
#pragma once

#include <ostream>
#include <string>

namespace hato::store {

// Per segment: records, bytes, first/last LSN, and any bad record with its
// offset. Returns 0 when every record checks out, 1 when corruption (or a
// torn tail) was found, 2 when the directory cannot be read.
int store_verify(const std::string& dir, std::ostream& out);

// One line per valid record: LSN, type name, decoded fields (payloads by
// length). Returns 0, 1 if a segment stops at a bad record, 2 on I/O errors.
int store_dump(const std::string& dir, std::ostream& out);

}  // namespace hato::store
