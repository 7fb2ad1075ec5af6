// The io_uring provided buffer ring hands out few buffers at start and more
// as the load asks (net/uring_setup.hpp): an idle broker stays small.
#include <doctest/doctest.h>

#include <liburing.h>

#include "net/uring_setup.hpp"

using hato::net::BufferRing;

TEST_CASE("the buffer ring starts small and doubles up to its size") {
    io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0) {
        MESSAGE("io_uring unavailable: skipped");
        return;
    }
    BufferRing bufs;
    const int r = bufs.setup(ring);
    if (r < 0) {
        io_uring_queue_exit(&ring);
        bufs.release();
        MESSAGE("provided buffer rings unavailable: skipped");
        return;
    }
    CHECK(bufs.active() == BufferRing::kInitialCount);
    bufs.grow_for_pass(BufferRing::kInitialCount / 2 - 1);   // under half in use: no growth
    CHECK(bufs.active() == BufferRing::kInitialCount);
    bufs.grow_for_pass(BufferRing::kInitialCount / 2);        // half: doubles
    CHECK(bufs.active() == 2 * BufferRing::kInitialCount);
    while (bufs.grow()) {
    }
    CHECK(bufs.active() == BufferRing::kCount);
    CHECK_FALSE(bufs.grow());
    bufs.grow_for_pass(BufferRing::kCount);
    CHECK(bufs.active() == BufferRing::kCount);
    io_uring_queue_exit(&ring);
    bufs.release();
}
