// io_uring setup and run-time probe: gateways run kernels older than the
// build host, so every feature the backend uses is checked before use.
#include "net/uring_setup.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <system_error>
#include <thread>

namespace hato::net {

int BufferRing::setup(io_uring& ring) {
    ring_bytes_ = kCount * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    ring_ = static_cast<io_uring_buf_ring*>(mem);
    // Address space for every buffer, memory only for those handed out
    // (and received into): see kInitialCount.
    void* pool = mmap(nullptr, kCount * kSize, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE,
                      -1, 0);
    if (pool == MAP_FAILED) return -errno;
    buffers_ = static_cast<uint8_t*>(pool);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ring_);
    reg.ring_entries = kCount;
    reg.bgid = kGroupId;
    int r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) return r;
    io_uring_buf_ring_init(ring_);
    active_ = 0;
    grow();
    return 0;
}

bool BufferRing::grow() {
    const unsigned from = active_;
    const unsigned to = from == 0 ? kInitialCount : std::min(kCount, from * 2);
    if (to == from) return false;
    for (unsigned i = from; i < to; ++i)
        io_uring_buf_ring_add(ring_, data(uint16_t(i)), kSize, uint16_t(i), io_uring_buf_ring_mask(kCount),
                              int(i - from));
    io_uring_buf_ring_advance(ring_, int(to - from));
    active_ = to;
    return true;
}

void BufferRing::release() {
    if (ring_) munmap(ring_, ring_bytes_);
    if (buffers_) munmap(buffers_, kCount * kSize);
    ring_ = nullptr;
    buffers_ = nullptr;
}

void BufferRing::give_back(uint16_t bid) {
    io_uring_buf_ring_add(ring_, data(bid), kSize, bid, io_uring_buf_ring_mask(kCount), 0);
    io_uring_buf_ring_advance(ring_, 1);
    ++used_;
}

void BufferRing::discard_pages() {
    if (buffers_ && active_ > 0) madvise(buffers_, size_t(active_) * kSize, MADV_DONTNEED);
    used_ = 0;
}

namespace {

std::string errstr(const char* what, int neg_errno) {
    return std::string(what) + ": " + std::strerror(-neg_errno);
}

bool opcodes_supported(io_uring& ring, std::string& why) {
    io_uring_probe* probe = io_uring_get_probe_ring(&ring);
    if (!probe) {
        why = "io_uring_get_probe failed";
        return false;
    }
    struct Op {
        int code;
        const char* name;
    };
    static constexpr Op needed[] = {
        {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},         {IORING_OP_SEND, "SEND"},
        {IORING_OP_TIMEOUT, "TIMEOUT"}, {IORING_OP_FSYNC, "FSYNC"},       {IORING_OP_POLL_ADD, "POLL_ADD"},
        {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, {IORING_OP_SENDMSG, "SENDMSG"},
    };
    bool ok = true;
    for (const Op& op : needed) {
        if (!io_uring_opcode_supported(probe, op.code)) {
            why = std::string("kernel lacks IORING_OP_") + op.name;
            ok = false;
            break;
        }
    }
    io_uring_free_probe(probe);
    return ok;
}

// Arms a multishot recv on a socketpair, feeds it one byte and expects a
// buffer-ring CQE flagged MORE, then EOF to end it.
bool multishot_recv_works(io_uring& ring, BufferRing& bufs, std::string& why) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        why = errstr("socketpair", -errno);
        return false;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sqe) {   // a fresh ring has room; checked all the same
        ::close(sv[0]);
        ::close(sv[1]);
        why = "no submission queue entry";
        return false;
    }
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BufferRing::kGroupId;
    io_uring_sqe_set_data64(sqe, 1);
    io_uring_submit(&ring);
    bool ok = write(sv[1], "x", 1) == 1;
    __kernel_timespec wait{1, 0};
    io_uring_cqe* cqe = nullptr;
    bool ended = false;
    for (int step = 0; ok && !ended && step < 2; ++step) {
        if (io_uring_wait_cqe_timeout(&ring, &cqe, &wait) != 0) {
            why = "multishot recv self-test timed out";
            ok = false;
            break;
        }
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&ring, cqe);
        if (flags & IORING_CQE_F_BUFFER) bufs.give_back(uint16_t(flags >> IORING_CQE_BUFFER_SHIFT));
        ended = !(flags & IORING_CQE_F_MORE);
        if (step == 0) {
            if (res != 1 || !(flags & IORING_CQE_F_BUFFER) || ended) {
                why = res < 0 ? errstr("multishot recv", res) : "multishot recv not supported";
                ok = false;
            }
            ::close(sv[1]);  // EOF ends the multishot recv
            sv[1] = -1;
        }
    }
    if (sv[1] >= 0) ::close(sv[1]);
    ::close(sv[0]);
    if (ok && !ended) {
        why = "multishot recv did not end on EOF";
        ok = false;
    }
    return ok;
}

// Ring flags, best first. Completions of recv/send are finished by "task
// work" in our own thread. By default the kernel interrupts the thread for it
// (an IPI, then a signal-like detour) every time a peer's data arrives;
// DEFER_TASKRUN (Linux 6.1) runs it only when we enter the ring to wait,
// batched; COOP_TASKRUN (5.19) at least drops the IPI. Older kernels refuse
// the flags with EINVAL, and we try the next set. DEFER_TASKRUN needs
// SINGLE_ISSUER: one thread submits. That is our design, but the thread that
// runs the loop need not be the one that built the reactor (tests do that), so
// the ring starts disabled and start_ring() binds it to the loop's thread.
constexpr unsigned kRingFlagSets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_R_DISABLED,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

int init_ring(io_uring& ring, unsigned entries) {
    int r = -EINVAL;
    for (unsigned flags : kRingFlagSets) {
        r = io_uring_queue_init(entries, &ring, flags);
        if (r != -EINVAL) break;
    }
    return r;
}

// What the backend needs from the kernel, checked on a throwaway ring (plain
// flags, so the self-test can submit from this thread).
bool kernel_supports_backend(std::string& why) {
    io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        why = errstr("io_uring_queue_init", r);
        return false;
    }
    BufferRing bufs;
    bool ok = false;
    if (!(ring.features & IORING_FEAT_FAST_POLL)) {
        why = "kernel lacks IORING_FEAT_FAST_POLL";
    } else if (!opcodes_supported(ring, why)) {
        // `why` set
    } else if ((r = bufs.setup(ring)) < 0) {
        why = errstr("io_uring_register_buf_ring", r);
    } else {
        ok = multishot_recv_works(ring, bufs, why);
    }
    io_uring_queue_exit(&ring);
    bufs.release();
    return ok;
}

bool probe_and_setup(io_uring& ring, BufferRing& bufs, unsigned entries, std::string& why) {
    if (!kernel_supports_backend(why)) return false;
    int r = init_ring(ring, entries);
    if (r < 0) {
        why = errstr("io_uring_queue_init", r);
        return false;
    }
    if ((r = bufs.setup(ring)) < 0) {
        why = errstr("io_uring_register_buf_ring", r);
        io_uring_queue_exit(&ring);
        bufs.release();
        return false;
    }
    return true;
}

}  // namespace

// The rings are created on a short-lived thread, not on the caller's. The
// kernel ties a ring to every thread that created it or submitted to it, and
// when the ring is freed (asynchronously after its fd is closed: ~15 ms on an
// idle machine, longer under load) it queues task work on each such thread
// with TWA_SIGNAL. A thread that is inside a blocking call that is not
// restarted at that moment gets EINTR from it: recv/connect/accept on a
// socket with SO_RCVTIMEO/SO_SNDTIMEO, poll, epoll_wait, ... So the
// throwaway self-test ring (closed right here), or a reactor built and
// dropped again, used to break a blocking call of whoever had called
// Reactor::create, well after create() returned. A thread that has exited
// is no longer tied to any ring; the loop thread ties itself to the ring
// when run() first submits, and only it is notified when the reactor goes.
bool probe_uring(io_uring& ring, BufferRing& bufs, unsigned entries, std::string& why) {
    bool ok = false;
    try {
        std::thread([&] { ok = probe_and_setup(ring, bufs, entries, why); }).join();
    } catch (const std::system_error&) {
        // No thread to be had (RLIMIT_NPROC): set up here, and accept the
        // stray EINTR described above.
        ok = probe_and_setup(ring, bufs, entries, why);
    }
    return ok;
}

void start_ring(io_uring& ring) {
    if (!(ring.flags & IORING_SETUP_R_DISABLED)) return;
    // Enabling binds a SINGLE_ISSUER ring to the calling thread. The flag is
    // cleared in our copy so a second run() does not try again (liburing only
    // reads the SQPOLL/IOPOLL/SQE128/CQE32 bits of it).
    // liburing 2.3 declares io_uring_enable_rings but does not export it.
    ::syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    ring.flags &= ~IORING_SETUP_R_DISABLED;
}

}  // namespace hato::net
