// What of the log's mapping the process keeps resident.
#pragma once

#include "store/log.hpp"

namespace hato::store {

// Drops the process's page mappings of every segment of `log` (one from
// Log::open) with MADV_DONTNEED. The mappings are shared file mappings, so
// nothing is lost, dirty pages included: the bytes stay in the files and
// the kernel's page cache, and the next access to a record faults its page
// back in (a minor fault while the page cache holds it). Recovery maps
// every segment with MAP_POPULATE and reads every record; afterwards the
// broker reaches only the records it serves (retained messages on
// subscribe, compaction's oldest segment), so without this the whole log
// would stay counted in the broker's RSS.
void release_resident_pages(Log& log);

}  // namespace hato::store
