// Private to src/net: io_uring ring setup, the run-time capability probe and
// the provided buffer ring used by multishot recv.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace hato::net {

// A provided buffer ring (liburing 2.3 has no io_uring_setup_buf_ring, so the
// ring memory is mmap'ed here and registered by hand). The kernel picks a
// buffer per received chunk; give_back() returns it once consumed.
class BufferRing {
public:
    static constexpr uint16_t kGroupId = 0;
    // Every recv completion of one loop pass holds a buffer until the pass
    // has handled it; when the ring runs dry, each connection that finds no
    // buffer has its multishot recv ended (ENOBUFS) and re-armed, which costs
    // a submission and a recv per connection. So: many small buffers (an
    // MQTT packet is usually far below 4 KiB; a larger one spans several).
    // 16 KiB buffers cost a quarter less CPU per MB of large packets, but a
    // client that publishes and never reads then parks four times as much
    // input in the ring, and its replies in its output (test_hostile.py).
    static constexpr unsigned kCount = 1024;  // power of two: the ring's entries, the most buffers
    static constexpr size_t kSize = 4 * 1024;
    // Buffers handed to the kernel at start. An idle broker should cost
    // little memory: the pool's address space is reserved for kCount
    // buffers, but only those handed out are ever touched, and more are
    // handed out (doubling, up to kCount) when the load asks for them: a
    // recv that found the ring empty (ENOBUFS), or a loop pass whose
    // completions held half the buffers handed out (grow_for_pass).
    static constexpr unsigned kInitialCount = 32;

    // Allocates and registers with `ring`; -errno on failure.
    int setup(io_uring& ring);
    // Frees the memory; call after the ring is gone (the kernel may write until then).
    void release();
    uint8_t* data(uint16_t bid) { return buffers_ + size_t(bid) * kSize; }
    void give_back(uint16_t bid);
    // Hands out more buffers (twice as many, at most kCount). False at kCount.
    bool grow();
    // A loop pass's recv completions held `used` buffers at once.
    void grow_for_pass(size_t used) {
        if (used * 2 >= active_) grow();
    }
    unsigned active() const { return active_; }
    // The kernel takes buffers in ring order, so every buffer handed out is
    // written to in turn and stays resident: after a burst (10 000 CONNECTs
    // grow the ring to kCount) that is 4 MiB of an idle broker.
    // discard_pages() gives their pages back (a later recv into one faults a
    // fresh page in). Only while the kernel cannot be writing into one and
    // no completion holding one waits unprocessed: see
    // UringReactor::discard_idle_buffers.
    void discard_pages();
    // Buffers given back since discard_pages() last ran.
    uint64_t used() const { return used_; }

private:
    unsigned active_ = 0;   // buffers handed out (bids 0 .. active_-1)
    uint64_t used_ = 0;
    io_uring_buf_ring* ring_ = nullptr;
    size_t ring_bytes_ = 0;
    uint8_t* buffers_ = nullptr;
};

// Opcode probe + FAST_POLL + a multishot-recv self-test on a socketpair
// (kernels before 6.0 lack it and no opcode probe tells), then the ring
// itself (io_uring_queue_init with the best flags the kernel takes) and its
// buffer ring. On failure nothing is left open and `why` says why. Runs on a
// helper thread that is joined before it returns, so that the calling thread
// is not tied to the rings (see uring_setup.cpp: a ring's teardown interrupts
// the blocking calls of every thread tied to it).
bool probe_uring(io_uring& ring, BufferRing& bufs, unsigned entries, std::string& why);

// Call from the thread that runs the loop, before its first submission: the
// ring may have been created disabled, to be bound to that thread.
void start_ring(io_uring& ring);

}  // namespace hato::net
