// Huge pages for the heap while recovery builds a large state.
//
// Rebuilding a million retained messages touches a few hundred MiB of fresh
// heap in random order (hash tables, tree nodes, messages). With 4 KiB pages
// most of that time goes to page faults and TLB misses, above all in a VM.
// While a BulkHeap is alive, glibc serves even large blocks from the main
// heap and keeps freed memory there; the constructor grows the heap once by
// the expected size and marks that range MADV_HUGEPAGE, so the kernel backs it
// with 2 MiB pages (when transparent huge pages are in "madvise" or "always"
// mode; otherwise this changes nothing). The destructor restores glibc's
// thresholds; the memory already used stays where it is.
#pragma once

#include <cstddef>

namespace hato::broker {

class BulkHeap {
public:
    // `expected_bytes` of heap the bulk load will allocate; below a few MiB
    // this does nothing.
    explicit BulkHeap(size_t expected_bytes);
    ~BulkHeap();
    BulkHeap(const BulkHeap&) = delete;
    BulkHeap& operator=(const BulkHeap&) = delete;

private:
    bool active_ = false;
};

}  // namespace hato::broker
