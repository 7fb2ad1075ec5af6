// BufferRing::discard_pages: the pages of buffers the kernel wrote into go
// back to the kernel, so an idle broker does not keep a burst's buffers.
#include <doctest/doctest.h>

#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "net/uring_setup.hpp"

using hato::net::BufferRing;

namespace {
size_t resident_pages(const uint8_t* p, size_t bytes) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> vec((bytes + page - 1) / page);
    REQUIRE(mincore(const_cast<uint8_t*>(p), bytes, vec.data()) == 0);
    size_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return n;
}
}  // namespace

TEST_CASE("discard_pages gives the buffers' memory back and they stay usable") {
    io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0) {
        MESSAGE("io_uring unavailable: skipped");
        return;
    }
    BufferRing bufs;
    if (bufs.setup(ring) < 0) {
        io_uring_queue_exit(&ring);
        bufs.release();
        MESSAGE("provided buffer rings unavailable: skipped");
        return;
    }
    const size_t bytes = size_t(bufs.active()) * BufferRing::kSize;
    uint8_t* first = bufs.data(0);
    CHECK(bufs.used() == 0);
    for (unsigned i = 0; i < bufs.active(); ++i) std::memset(bufs.data(uint16_t(i)), 0x5a, BufferRing::kSize);
    CHECK(resident_pages(first, bytes) == bytes / size_t(sysconf(_SC_PAGESIZE)));
    bufs.discard_pages();
    CHECK(resident_pages(first, bytes) == 0);
    CHECK(bufs.used() == 0);
    // Written again (as a recv would), a buffer is an ordinary page.
    std::memset(first, 0x11, BufferRing::kSize);
    CHECK(first[BufferRing::kSize - 1] == 0x11);
    CHECK(bufs.data(1)[0] == 0);   // discarded content reads as zero
    io_uring_queue_exit(&ring);
    bufs.release();
}
