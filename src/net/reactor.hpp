// The reactor: one thread owns every socket. Two backends behind this one
// small interface (like Redis's ae.c with ae_epoll.c / ae_kqueue.c):
// io_uring (multishot accept + multishot recv into a provided buffer ring,
// batched sends, fsync on the ring) and epoll (readiness + non-blocking I/O).
// Protocol code never sees a socket: it gets bytes and hands bytes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace hato::net {

// Identifies one connection for its whole life; never reused (a generation
// counter sits in the high bits), so a stale id is harmless.
using ConnId = uint64_t;

enum class Backend : uint8_t { Auto, IoUring, Epoll };

// Input one connection may have delivered per loop pass (io_uring delivers
// whole receive buffers, so up to one buffer more). Past it the rest waits,
// still in the kernel or in buffers already received, until the next pass,
// which first serves the other connections, timers and the pass-end flush:
// one client flooding small packets (32 KiB of 30-byte retained PUBLISHes is
// about 1k packets, a few ms) cannot hold up everyone else's round trips,
// while a busy publisher still moves its data in large batches.
inline constexpr size_t kInputBudgetPerPass = 32 * 1024;
// Input received in place (Handler::receive_target) costs its copy out of
// the kernel and nothing else until its packet is whole: a larger budget,
// so that a large packet arrives in few, large receives.
inline constexpr size_t kInPlaceBudgetPerPass = 256 * 1024;

// Implemented by the layer above (app wiring). All calls come from the
// reactor thread, inside run().
class Handler {
public:
    virtual ~Handler() = default;
    // A new connection accepted on listener `listener_index` (order of listen()).
    virtual void on_open(ConnId id, int listener_index, const std::string& peer) = 0;
    // Bytes received. The span is valid only during the call (it may be a
    // provided ring buffer that goes back to the kernel right after).
    virtual void on_data(ConnId id, std::span<const uint8_t> data) = 0;
    // The rest of a large packet can be received in place, into the memory
    // the layer above assembles it in, instead of through a receive buffer
    // and a copy. wants_in_place: whether `id` now awaits such a rest (no
    // side effects; asked only after Reactor::expect_in_place(id), until it
    // answers false). receive_target: that memory, at most `limit` bytes
    // (empty: receive as usual); on_received_in_place must follow, before
    // any other call, with how many bytes the recv put there (0 on EAGAIN,
    // EOF or error).
    virtual bool wants_in_place(ConnId) { return false; }
    virtual std::span<uint8_t> receive_target(ConnId, size_t /*limit*/) { return {}; }
    virtual void on_received_in_place(ConnId, size_t /*n*/) {}
    // The peer closed its sending side (EOF, no error) while the connection
    // was open. Return true to keep it for output: reading stops, and the
    // handler calls close(id, true) once its answers to what came before
    // the EOF are out (a client that half-closes after its last packet
    // still gets them); on_close follows that close as usual. false (the
    // default): closed now, on_close follows. A connection kept and never
    // closed is closed after kPeerEofMs.
    virtual bool on_peer_eof(ConnId) { return false; }
    // accept() on listener `listener_index` failed for want of descriptors
    // or memory (`error`: EMFILE, ENFILE, ENOBUFS, ENOMEM): that listener
    // stops accepting until the next tick, new connections wait in its
    // backlog. Called once per pause.
    virtual void on_accept_paused(int /*listener_index*/, int /*error*/) {}
    // The connection is gone: peer closed, error, or after close(). `error`
    // is 0 for an orderly close (EOF or our own close), else an errno.
    // No call for `id` follows.
    virtual void on_close(ConnId id, int error) = 0;
    // Periodic tick (see set_tick_interval), with a monotonic clock in ms.
    virtual void on_tick(uint64_t now_ms) = 0;
    // End of one loop pass, after all events of the pass were delivered and
    // before sends are submitted: the place for group commit.
    virtual void on_pass_end() = 0;
};

// Could a listener bind `address`:`port` now? A trial bind, closed at once:
// a reload checks its new listeners before it closes any old one.
bool can_listen(const std::string& address, uint16_t port, std::string& err);

class Reactor {
public:
    virtual ~Reactor() = default;

    // Builds the requested backend. Auto: io_uring if ring setup and an
    // opcode probe succeed, else epoll. `note` explains a fallback (or is
    // empty). Returns nullptr (with `note` set) only if nothing works, or if
    // IoUring was demanded and is unavailable.
    static std::unique_ptr<Reactor> create(Backend want, std::string& note);

    virtual const char* name() const = 0;  // "io_uring" or "epoll"

    // Binds and listens (SO_REUSEADDR, non-blocking). port 0 picks a free
    // port; bound_port() tells which. Before run() or from a handler
    // callback (a reload); indices are never reused.
    virtual bool listen(const std::string& address, uint16_t port, std::string& err) = 0;
    virtual uint16_t bound_port(int listener_index) const = 0;

    // Queues bytes for `id` (copied). They leave at the end of the loop
    // pass, one send per connection per pass where possible. Unknown id: ignored.
    virtual void send(ConnId id, std::span<const uint8_t> data) = 0;
    // Like send(), but in the pass-end flush this connection may go after
    // every connection that got send(): for acknowledgements to publishers,
    // so that what subscribers are waiting for leaves first. The bytes of
    // one connection keep their order either way.
    virtual void send_low_priority(ConnId id, std::span<const uint8_t> data) = 0;
    // Like send(), without the copy: the bytes leave from where they are
    // (one sendmsg with the connection's other output), so the layer above
    // keeps them valid and unchanged until release(obj) runs, once, when
    // they are sent or their connection is gone. For large payloads that
    // several connections send, or that would otherwise be copied whole
    // into each one's buffer.
    struct Kept {
        std::span<const uint8_t> bytes;
        void* obj = nullptr;
        void (*release)(void*) = nullptr;
    };
    virtual void send_kept(ConnId id, Kept kept) {
        send(id, kept.bytes);
        kept.release(kept.obj);
    }
    // Bytes queued for `id` and not yet accepted by the kernel (back-pressure).
    virtual size_t queued_bytes(ConnId id) const = 0;
    // Closes `id`; with flush=true after its queued bytes are sent (bounded
    // by a short timeout). on_close follows (possibly in a later pass).
    // A flushed close is graceful: once the output is sent the write side is
    // shut down (the peer reads EOF) and input is read and discarded until
    // the peer closes or kLingerMs pass, so that unread input does not make
    // the kernel answer with an RST that could destroy the last reply (a
    // DISCONNECT's reason code) before the peer read it. on_close comes
    // when that lingering starts; set_max_lingering bounds how many
    // connections linger at once (the oldest is closed beyond it).
    virtual void close(ConnId id, bool flush) = 0;
    virtual void set_max_lingering(size_t n) = 0;   // default 10000

    // Stops (on=false) or resumes reading from `id`: back-pressure for a
    // peer that sends but does not read what it is sent. Data the kernel
    // already handed over may still be delivered after the call.
    virtual void set_reading(ConnId id, bool on) = 0;

    // Stops (on=false) or resumes taking input from every connection:
    // back-pressure for a receiver whose output is over its high-water mark.
    // Output keeps leaving meanwhile. Takes effect before the next on_data
    // (epoll: the rest of a readable socket stays in the kernel; io_uring:
    // completions already received wait, in order, and recvs are stopped),
    // so how much input one pass takes follows from the output room, not
    // from the size of the receive ring.
    virtual void set_intake(bool /*on*/) {}

    // The handler may now want the rest of a packet of `id` in place: the
    // reactor asks Handler::wants_in_place before its receives from `id`
    // until the answer is false. Called when a large packet's start was
    // seen, so the ordinary receive path asks nothing per message.
    virtual void expect_in_place(ConnId /*id*/) {}

    // Takes over a connected socket made elsewhere (the bridge's outbound
    // connections, connected on a helper thread so DNS and connect never
    // block the loop) as one of this reactor's connections: set non-blocking,
    // its bytes arrive through on_data and its end through on_close, like an
    // accepted one's (no on_open: the caller knows it). Returns its id, or
    // 0 where unsupported (test doubles; the fd is then left to the caller).
    virtual ConnId adopt(int /*fd*/) { return 0; }

    // Calls `fn` (on the reactor thread) when `fd` is readable; used for
    // signalfd. Level-triggered semantics.
    virtual void watch_readable(int fd, std::function<void()> fn) = 0;

    // Flushes `fd` to disk (fdatasync semantics) without blocking the loop
    // where the backend can (io_uring: IORING_OP_FSYNC with DATASYNC); epoll
    // does it inline. `done(result)` runs on the reactor thread (0 or -errno).
    virtual void fsync_async(int fd, std::function<void(int)> done) = 0;

    virtual void set_tick_interval(uint32_t ms) = 0;  // default 100
    virtual uint64_t now_ms() const = 0;              // CLOCK_MONOTONIC

    // The loop's next wait for events ends no later than `deadline_us`
    // (CLOCK_MONOTONIC, microseconds), so that a pass, and its on_pass_end,
    // runs then even if nothing happens: group commit's window. One
    // deadline: a call replaces the previous one; 0 clears it; once passed
    // it is cleared. Finer than the tick, and costs nothing while unset.
    virtual void wake_at_us(uint64_t /*deadline_us*/) {}
    // The next pass runs without waiting for an event: the handler left
    // work of its own for it (input it deferred). Once per call.
    virtual void pass_again() {}

    // Stops accepting new connections (listeners closed); existing ones stay.
    virtual void close_listeners() = 0;
    // Stops accepting on one listener (a reload removed it); its index stays
    // taken and its connections stay. Unknown or closed index: ignored.
    virtual void close_listener(int /*listener_index*/) {}

    // Runs until stop(). stop() may be called from a handler callback, or
    // from another thread (seen within one tick interval; the loop is not
    // woken), also before run() has started: run() then returns at once.
    // A pending stop ends the current run(), or the next one if none is
    // running; stops made during one run() are all cleared when it returns.
    // A later run() (on the same thread: the io_uring ring is bound to the
    // first thread that runs it) runs again.
    virtual void run(Handler& h) = 0;
    virtual void stop() = 0;

    // Counters for logs/tests.
    virtual uint64_t connection_count() const = 0;
};

}  // namespace hato::net
