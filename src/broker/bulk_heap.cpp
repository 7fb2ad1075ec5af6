#include "broker/bulk_heap.hpp"

#include <cstdint>
#include <cstdlib>

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

namespace hato::broker {

namespace {
constexpr size_t kMinBytes = 8u << 20;             // smaller loads gain nothing
constexpr size_t kMaxBytes = size_t(8) << 30;      // never advise more than this
constexpr size_t kHugePage = 2u << 20;
// glibc's defaults, restored afterwards (128 KiB each).
constexpr int kDefaultMmapThreshold = 128 * 1024;
constexpr int kDefaultTrimThreshold = 128 * 1024;
}  // namespace

BulkHeap::BulkHeap(size_t expected_bytes) {
#if defined(__GLIBC__)
    if (expected_bytes < kMinBytes) return;
    if (expected_bytes > kMaxBytes) expected_bytes = kMaxBytes;
    // Large blocks from the heap (not separate mmaps), and no trimming, so
    // the block below stays in the heap after free() for later allocations.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    active_ = true;
    void* block = std::malloc(expected_bytes);
    if (!block) return;
    // Only whole huge pages inside the block; madvise does not touch memory.
    const uintptr_t begin = (uintptr_t(block) + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
    const uintptr_t end = (uintptr_t(block) + expected_bytes) & ~uintptr_t(kHugePage - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
    std::free(block);
#else
    (void)expected_bytes;
#endif
}

BulkHeap::~BulkHeap() {
#if defined(__GLIBC__)
    if (!active_) return;
    mallopt(M_MMAP_THRESHOLD, kDefaultMmapThreshold);
    mallopt(M_TRIM_THRESHOLD, kDefaultTrimThreshold);
#endif
}

}  // namespace hato::broker
