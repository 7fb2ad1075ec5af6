// Private to src/net: what both backends share. The connection table (slot +
// generation ids, output buffers), socket helpers and a base class that
// implements the backend-independent parts of Reactor (send, queued_bytes,
// tick bookkeeping, stop).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include "net/reactor.hpp"

namespace hato::net {

// ---- socket helpers (reactor.cpp) ----

uint64_t monotonic_ms();
uint64_t monotonic_us();
// Creates a non-blocking, close-on-exec listening socket (SO_REUSEADDR,
// backlog 1024) for an IPv4 or IPv6 literal ("" means "0.0.0.0"). Returns the
// fd and the bound port, or -1 with `err` set.
int open_listen_socket(const std::string& address, uint16_t port, uint16_t& bound, std::string& err);
// "ip:port" of the peer ("[v6]:port" for IPv6), "?" if unknown.
std::string peer_address(int fd);
void set_nodelay(int fd);
// O_NONBLOCK on (epoll) or off (io_uring: a non-blocking socket's recv
// would end with EAGAIN instead of waiting, as accepted sockets show).
void set_nonblocking(int fd, bool on);
// Reads and discards whatever is already received, without blocking. Done
// before close() so unread input does not turn our FIN into an RST that
// could destroy replies the peer has not read yet.
void drain_input(int fd);
// close() then sends RST and drops unsent output (SO_LINGER 0).
void reset_on_close(int fd);
// The socket still holds output its peer has not acknowledged.
bool unsent_in_kernel(int fd);
// Where the next bytes of `id` go in place (Handler::receive_target), at
// most `limit` and no more than the socket holds now (the handler reserves
// memory for them: it follows bytes that arrived, not sizes announced);
// empty when the handler wants none or nothing is waiting.
struct Conn;
std::span<uint8_t> in_place_target(Handler& h, ConnId id, Conn& c, size_t limit);
// Handler::wants_in_place, asked only after expect_in_place set the hint
// (which a "no" clears): most receives ask nothing.
bool wants_in_place(Handler& h, ConnId id, Conn& c);

// Backend factories (each in its own file). make_uring returns nullptr and
// sets `why` if the kernel cannot do what the backend needs.
std::unique_ptr<Reactor> make_epoll_reactor(std::string& why);
std::unique_ptr<Reactor> make_uring_reactor(std::string& why);

// Tags for epoll_event.data / io_uring user_data: what an event is about
// (kind), which table index, and the generation of that index, so an event
// for a slot that was since reused is recognised as stale.
inline uint64_t make_tag(uint8_t kind, uint32_t gen, uint32_t index) {
    return (uint64_t(kind) << 56) | (uint64_t(gen) << 24) | (index & 0xffffffu);
}
inline uint8_t tag_kind(uint64_t tag) { return uint8_t(tag >> 56); }
inline uint32_t tag_gen(uint64_t tag) { return uint32_t(tag >> 24); }
inline uint32_t tag_index(uint64_t tag) { return uint32_t(tag & 0xffffffu); }

// ---- connection table ----

// Open: normal. Draining: close(flush) requested, output still leaving.
// Lingering: output sent, write side shut down, input read and discarded
// until the peer closes (the handler already got on_close).
// Closing: teardown underway, waiting for the backend to let go of the fd.
enum class ConnState : uint8_t { Free, Open, Draining, Lingering, Closing };

// Hard upper bound of close(id, flush=true).
inline constexpr uint64_t kFlushTimeoutMs = 2000;
// How long a gracefully closed connection waits for the peer's EOF.
inline constexpr uint64_t kLingerMs = 2000;
// How long a connection kept after the peer's EOF (Handler::on_peer_eof)
// waits for the handler's close: past the broker's hold of answers waiting
// for the store (5 s) and a flush.
inline constexpr uint64_t kPeerEofMs = 10000;

// Output buffer capacity a busy connection keeps from pass to pass. Past it
// the buffer is freed once it was handed over, so a single big burst's
// memory does not linger; below it, a receiver under back-pressure (its
// output near max_output_bytes, 1 MiB by default, every pass) does not
// allocate, fault in and copy a fresh multi-MiB buffer each pass.
inline constexpr size_t kKeptOutputCapacity = 4u << 20;

// Output sent from memory the layer above keeps (Reactor::send_kept): each
// piece sits in its buffer's byte stream at `at` (what that buffer held
// when it was queued). Only connections that were sent such pieces have
// one; its destructor gives back whatever was not sent.
struct KeptOutput {
    struct Piece {
        uint32_t at;
        uint32_t len;
        Reactor::Kept kept;
    };
    std::vector<Piece> pending, inflight;   // beside Conn::pending, Conn::inflight
    size_t pending_len = 0, inflight_len = 0;
    std::vector<iovec> iov;   // io_uring: the sendmsg's, kept until its completion
    msghdr mh{};

    KeptOutput() = default;
    KeptOutput(const KeptOutput&) = delete;
    KeptOutput& operator=(const KeptOutput&) = delete;
    ~KeptOutput() {
        release(pending);
        release(inflight);
    }
    static void release(std::vector<Piece>& pieces) {
        for (Piece& p : pieces) p.kept.release(p.kept.obj);
        pieces.clear();
    }
};

// One slot of the connection table: every open socket has one. Its first
// cache line holds what each message touches (the id check, the flags and
// the output buffers), so queueing, counting and flushing one connection's
// output costs one cold line, not a slot plus a separately allocated output
// block; the second holds what only closes and the io_uring intake budget
// use. An idle connection holds no output memory: its buffers are handed to
// the spare pool once drained (ReactorBase::release_drained_output).
struct alignas(64) Conn {
    uint32_t gen = 0;
    int fd = -1;
    ConnState state = ConnState::Free;
    bool on_dirty_list : 1 = false;  // listed for the pass-end flush
    bool on_late_list : 1 = false;   // listed for it, after the others (send_low_priority)
    bool on_reap_list : 1 = false;   // listed for teardown
    bool on_drained_list : 1 = false;  // listed for release_drained_output
    bool linger : 1 = false;         // close(flush): linger once the output is sent
    bool handler_closed : 1 = false; // on_close delivered (lingering): none follows
    bool recv_paused : 1 = false;    // set_reading(false)
    bool out_used : 1 = false;       // send() since the output last drained
    // Backend flags.
    bool recv_armed : 1 = false;     // io_uring: multishot recv in flight
    bool recv_rearm : 1 = false;     // io_uring: recv ended, arm again at pass end
    bool send_busy : 1 = false;      // io_uring: send in flight
    bool cancel_sent : 1 = false;    // io_uring: cancels submitted for teardown
    bool fixed_file : 1 = false;     // io_uring: in the fixed-file table at the slot's index
    bool want_write : 1 = false;     // epoll: EPOLLOUT registered
    bool recv_held : 1 = false;      // io_uring: over its input budget, completions wait (recv stopped)
    bool intake_held : 1 = false;    // epoll: readable while intake was stopped; EPOLLIN off until it resumes
    bool in_place : 1 = false;       // io_uring: a large packet's rest is read in place (no multishot recv)
    bool in_place_listed : 1 = false;  // io_uring: listed for read_in_place
    bool poll_armed : 1 = false;     // io_uring: waiting for input to read in place
    bool in_place_hint : 1 = false;  // expect_in_place: ask wants_in_place before receiving
    bool has_kept : 1 = false;       // `kept` is set (read here, not on the second line, per message)
    bool peer_eof : 1 = false;       // the peer's EOF came and the handler kept it for output (on_peer_eof)
    // Output. `pending` collects send() calls; `inflight` is what the kernel
    // is being handed (its memory must stay put while an io_uring send is in
    // flight, so appends never go there). A buffer is below 4 GiB
    // (queue_output refuses more), so the offset fits 32 bits.
    uint32_t inflight_off = 0;
    std::vector<uint8_t> pending;
    std::vector<uint8_t> inflight;
    // ---- second cache line ----
    std::unique_ptr<KeptOutput> kept;   // send_kept's pieces, in the stream of the two above
    int close_error = 0;             // reported by on_close
    uint32_t input_pass = 0;         // io_uring: the pass input_bytes counts for
    uint32_t input_bytes = 0;        // io_uring: input delivered in that pass
    uint32_t held_pass = 0;          // io_uring: last pass that held completions of it

    // inflight_off counts through inflight and its kept pieces together.
    size_t inflight_total() const { return inflight.size() + (has_kept ? kept->inflight_len : 0); }
    size_t pending_total() const { return pending.size() + (has_kept ? kept->pending_len : 0); }
    bool kept_inflight() const { return has_kept && !kept->inflight.empty(); }
    bool kept_queued() const { return kept_inflight() || (has_kept && !kept->pending.empty()); }
    size_t queued() const { return pending_total() + inflight_total() - inflight_off; }
    bool output_empty() const { return queued() == 0; }
    bool holds_output_memory() const { return pending.capacity() != 0 || inflight.capacity() != 0 || has_kept; }
    // The unsent part of inflight and its kept pieces, in order (at most
    // IOV_MAX entries: a sendmsg takes no more; the rest goes next time).
    void unsent_iov(std::vector<iovec>& iov) const;
};
static_assert(sizeof(Conn) == 128, "Conn: the per-message fields fill the first cache line");

class ConnTable {
public:
    // Takes a free slot (or a new one) for `fd`; returns its id.
    ConnId add(int fd);
    // The live connection for `id`, or nullptr for a stale/unknown id.
    // Inline: the reactor and the output path look a connection up several
    // times per message.
    Conn* find(ConnId id) {
        const uint32_t slot = slot_of(id);
        if (slot >= slots_.size()) return nullptr;
        Conn& c = slots_[slot];
        return c.state == ConnState::Free || c.gen != gen_of(id) ? nullptr : &c;
    }
    const Conn* find(ConnId id) const { return const_cast<ConnTable*>(this)->find(id); }
    Conn& at(uint32_t slot) { return slots_[slot]; }
    ConnId id_of(uint32_t slot) const { return make_id(slot, slots_[slot].gen); }
    // The id names the slot and its generation, so an id of a closed
    // connection never finds the slot's next occupant.
    static ConnId make_id(uint32_t slot, uint32_t gen) { return (uint64_t(gen) << 32) | slot; }
    // Returns the slot to the free list; buffers are released.
    void remove(uint32_t slot);
    size_t live() const { return live_; }
    size_t capacity() const { return slots_.size(); }

    static uint32_t slot_of(ConnId id) { return uint32_t(id & 0xffffffffu); }
    static uint32_t gen_of(ConnId id) { return uint32_t(id >> 32); }

private:
    std::vector<Conn> slots_;
    std::vector<uint32_t> free_;
    uint32_t next_gen_ = 0;  // global, so an id is never handed out twice
    size_t live_ = 0;
};

struct Listener {
    int fd = -1;
    uint16_t port = 0;
    bool paused = false;   // accept backed off after EMFILE/ENFILE
    bool closing = false;  // close_listeners() called
};

// ---- shared Reactor base ----

class ReactorBase : public Reactor {
public:
    void send(ConnId id, std::span<const uint8_t> data) override { queue_output(id, data, false); }
    void send_low_priority(ConnId id, std::span<const uint8_t> data) override { queue_output(id, data, true); }
    void send_kept(ConnId id, Kept kept) override;
    size_t queued_bytes(ConnId id) const override;
    uint16_t bound_port(int listener_index) const override;
    void set_tick_interval(uint32_t ms) override;
    uint64_t now_ms() const override { return monotonic_ms(); }
    // The request stays set until run() returns, which clears it. run() used
    // to clear it on entry instead, and a stop() from another thread that
    // came before the loop thread got there was lost: the test harness's
    // join() then waited forever.
    void stop() override { stop_requested_ = true; }
    uint64_t connection_count() const override { return conns_.live(); }
    void set_max_lingering(size_t n) override { max_lingering_ = n == 0 ? 1 : n; }
    void wake_at_us(uint64_t deadline_us) override { wake_at_us_ = deadline_us; }
    void pass_again() override { pass_again_ = true; }
    void set_reading(ConnId id, bool on) override;
    void set_intake(bool on) override;
    void expect_in_place(ConnId id) override;

protected:
    // set_intake(false) in force.
    bool intake_paused_ = false;
    bool release_deferred_ = false;   // release_drained_output skips the pass intake resumed in
    // The backend restarts the input it held while intake was stopped.
    virtual void intake_resumed() {}
    // The backend applies Conn::recv_paused (stops or restarts its receive).
    virtual void reading_changed(uint32_t /*slot*/) {}
    // Reap step for a connection whose close(flush) completed: shuts down the
    // write side, makes it Lingering and delivers on_close. The backend
    // keeps receiving (and discarding) until EOF, error or the deadline.
    void start_lingering(Handler& h, uint32_t slot);
    // True if the reap of `slot` should start lingering instead of closing.
    // After the peer's EOF only while the kernel still holds output for it:
    // closed then, the socket would linger in the kernel, unaccounted, as
    // long as a peer that does not read stays alive (reset at the deadline).
    bool should_linger(const Conn& c) const {
        return c.linger && !c.handler_closed && c.close_error == 0 && (!c.peer_eof || unsent_in_kernel(c.fd));
    }
    // EOF (no error) from the peer of `slot`: closed, unless the handler
    // keeps it for its answers (Handler::on_peer_eof).
    void peer_closed(Handler& h, uint32_t slot);
    struct LingerEntry {
        uint32_t slot;
        uint32_t gen;
        uint64_t deadline_ms;
    };
    // Connections in close(flush), each with its deadline: the tick looks at
    // these, not at every slot (a walk over the whole table each tick would
    // evict the per-message state of thousands of connections from the cache).
    std::vector<LingerEntry> draining_;
    std::vector<LingerEntry> peer_eof_;   // kept after the peer's EOF: closed at the deadline if still open
    std::deque<LingerEntry> lingering_;   // oldest first; entries of since-closed slots are skipped
    // Those of them lingering after the peer's EOF: the tick closes each once
    // the kernel's output has left (a short list, not a walk of lingering_).
    std::vector<LingerEntry> lingering_after_eof_;
    size_t lingering_live_ = 0;
    size_t max_lingering_ = 10000;
    void expire_lingering(uint64_t now, bool over_limit_only);
    // Marks `c` for teardown with `error`; the backend's reap step finishes it.
    void schedule_reap(uint32_t slot, int error);
    // close(): the common state changes. Returns the conn if the backend must act.
    Conn* begin_close(ConnId id, bool flush);
    // Moves pending output to inflight when the previous batch is fully sent.
    static void stage_output(Conn& c);
    // A backend calls this when the output of `slot` drained completely.
    void note_drained(uint32_t slot);
    // The in-flight bytes of `slot` are all sent: empties that buffer (freed
    // if a burst made it big) and notes the drain when nothing is pending.
    void inflight_sent(uint32_t slot, Conn& c);
    // Frees the output of connections that drained and got nothing new to
    // send since (call once per pass, before the pass-end flush).
    void release_drained_output();
    // Output buffers of drained connections are kept for reuse (up to
    // kSpareOutputs, each at most kSpareOutputBytes of capacity), so a
    // connection that sends now and then does not cost an allocation and a
    // free per message; the last one given back is the first taken, so it is
    // still in the cache. 1000 publisher/subscriber pairs at 20 msg/s each
    // keep about 2000 in circulation; an idle broker's pool holds only what
    // its last burst left (CONNACKs: ~100 bytes each).
    static constexpr size_t kSpareOutputs = 2048;
    static constexpr size_t kSpareOutputBytes = 16 * 1024;
    void take_spare_output(std::vector<uint8_t>& into);
    void keep_spare_output(std::vector<uint8_t>& buf);
    // Gives both output buffers of a connection with nothing queued to the pool.
    void release_output(Conn& c);
    std::vector<std::vector<uint8_t>> spare_outputs_;
    // Calls on_tick if due; also turns expired flush deadlines into hard closes.
    // Returns true if a tick was delivered (backends unpause listeners then).
    bool run_tick_if_due(Handler& h);
    // Milliseconds until the next tick (0 if due).
    uint64_t ms_until_tick() const;
    // Microseconds the loop may wait for events: until the tick or the
    // wake_at_us deadline, whichever is first (0 if one is due; a deadline
    // that passed is cleared: the pass about to run is its wake-up).
    uint64_t us_until_wake();
    uint64_t wake_at_us_ = 0;   // wake_at_us (0: none)
    bool pass_again_ = false;   // pass_again(): the next wait for events does not block
    // Records a pass-end flush candidate (`late`: after the others).
    void mark_dirty(uint32_t slot, bool late = false);
    // Moves the pass-end flush candidates into `out`, the late ones last, and
    // clears their flags. A slot may appear twice (late, then sent to
    // normally): its second turn finds its output already on the way.
    // The late ones stay listed for a later pass while this pass has other
    // output and the oldest of them has waited less than kLateHoldUs: a
    // burst of PUBLISHes arriving over several passes then has all its
    // forwards sent before its acknowledgements, instead of every pass's
    // acks (a few us of loopback work each) delaying the next pass's
    // forwards. The backends do not block while late ones are held.
    void take_dirty(std::vector<uint32_t>& out);
    static constexpr uint64_t kLateHoldUs = 100;
    uint64_t late_hold_us_ = kLateHoldUs;   // a member so tests can widen it
    uint64_t late_since_us_ = 0;   // when dirty_late_ last became non-empty
    void queue_output(ConnId id, std::span<const uint8_t> data, bool late);
    // The connection `n` more bytes of output may be queued for, or null
    // (gone, closing, nothing to send, or over the 4 GiB bound: then reaped).
    Conn* output_target(ConnId id, size_t n);

    ConnTable conns_;
    std::vector<Listener> listeners_;
    std::vector<uint32_t> dirty_;  // slots with output to flush
    std::vector<uint32_t> dirty_late_;  // the same, flushed after dirty_
    std::vector<uint32_t> dirty_scratch_;  // the list being flushed (filled by take_dirty)
    std::vector<uint32_t> reap_;   // slots to tear down
    std::vector<uint32_t> drained_;  // slots whose output drained (see note_drained)
    uint32_t tick_interval_ms_ = 100;
    uint64_t next_tick_ms_ = 0;
    std::atomic<bool> stop_requested_{false};
};

}  // namespace hato::net
