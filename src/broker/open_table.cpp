#include "broker/open_table.hpp"

#include <sys/mman.h>

namespace hato::broker::detail {

void advise_huge_pages(const void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t begin = (uintptr_t(p) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (uintptr_t(p) + bytes) & ~(kHuge - 1);
    // A failure (old kernel, THP compiled out) only means ordinary pages.
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

}  // namespace hato::broker::detail
