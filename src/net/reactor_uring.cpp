// io_uring backend. Multishot accept per listener; multishot recv per
// connection selecting buffers from one provided buffer ring (an idle
// connection holds no receive buffer); one send per connection per pass;
// the tick is an IORING_OP_TIMEOUT; fsync is IORING_OP_FSYNC. The rest of
// a large packet is read in place instead (read_in_place). Every SQE
// prepared during a pass leaves in the single io_uring_submit_and_wait at
// the top of the next loop iteration.
#include <fcntl.h>
#include <liburing.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "net/reactor_core.hpp"
#include "net/uring_setup.hpp"

namespace hato::net {
namespace {

enum Kind : uint8_t { kAccept = 1, kRecv, kSend, kTimeout, kPoll, kFsync, kCancel, kPollIn };

// An operation in flight still references the connection's fd: it may be
// closed (and the slot freed) only after the last one's completion.
bool ops_in_flight(const Conn& c) { return c.recv_armed || c.send_busy || c.poll_armed; }

constexpr unsigned kRingEntries = 1024;
constexpr size_t kMaxCqesPerPass = 4096;

// Before Linux 6.13 a file taken out of the fixed-file table is released
// only once every request issued before its removal, on any file, has
// completed, oldest first. A multishot recv on an idle connection lives as
// long as that connection, so it would keep every socket closed after it
// allocated in the kernel (towards ENFILE on a gateway whose sensors stay
// connected while other clients come and go). Those kernels get plain fds.
bool fixed_files_released_promptly() {
    utsname u{};
    unsigned major = 0, minor = 0;
    if (uname(&u) != 0 || std::sscanf(u.release, "%u.%u", &major, &minor) != 2) return false;
    return major > 6 || (major == 6 && minor >= 13);
}

struct Watch {
    int fd;
    std::function<void()> fn;
    bool armed = false;
};

class UringReactor final : public ReactorBase {
public:
    UringReactor() = default;
    ~UringReactor() override;
    // Ring setup + probe; false with `why` if the kernel cannot do it.
    bool init(std::string& why);

    const char* name() const override { return "io_uring"; }
    bool listen(const std::string& address, uint16_t port, std::string& err) override;
    void close(ConnId id, bool flush) override { begin_close(id, flush); }
    ConnId adopt(int fd) override;
    void watch_readable(int fd, std::function<void()> fn) override;
    void fsync_async(int fd, std::function<void(int)> done) override;
    void close_listeners() override;
    void close_listener(int listener_index) override;
    void run(Handler& h) override;

private:
    io_uring_sqe* get_sqe();
    void cancel(uint64_t tag);
    void arm_accept(uint32_t index);
    void arm_recv(uint32_t slot);
    void process_cqe(Handler& h, uint64_t tag, int res, uint32_t flags);
    void on_accept(Handler& h, uint32_t index, int res, bool more);
    void on_recv(Handler& h, uint32_t slot, uint32_t gen, int res, uint32_t flags);
    void on_send(uint32_t slot, uint32_t gen, int res);
    void reap(Handler& h);
    void prepare_pass_sqes();
    void reading_changed(uint32_t slot) override;
    // Input flows again (after a pause, a hold, the multishot's end): the
    // multishot recv is armed, or the connection listed for read_in_place.
    void resume_recv(uint32_t slot);
    // A large packet's rest (Handler::receive_target) is read with plain
    // non-blocking recvs straight into the handler's memory, up to
    // kInPlaceBudgetPerPass per pass, and a POLLIN waits for more. The
    // multishot recv is stopped first (its last completion seen): input
    // then has a single reader and stays in order.
    void list_in_place(uint32_t slot);
    void read_in_place(Handler& h);
    void read_in_place(Handler& h, uint32_t slot);
    void on_poll_in(uint32_t slot, uint32_t gen, int res);
    std::vector<uint32_t> in_place_;         // slots listed for read_in_place
    std::vector<uint32_t> in_place_scratch_;
    std::array<uint8_t, 4096> between_{};   // read_in_place: the start of the next packet
    struct Completion {
        uint64_t tag;
        int res;
        uint32_t flags;
    };
    // Fairness (kInputBudgetPerPass): true if `c` (a recv completion) must
    // wait for the next pass; it then goes to held_.
    bool over_budget(const Completion& c);
    // set_intake(false): true if `c` is input of an open connection, which
    // then waits in held_ like input over budget.
    bool intake_stopped_for(const Completion& c) {
        if (!intake_paused_ || tag_kind(c.tag) != kRecv) return false;
        const Conn& conn = conns_.at(tag_index(c.tag));
        return conn.gen == tag_gen(c.tag) && conn.state == ConnState::Open;
    }
    // Stops the recv of connections with held completions, restarts the
    // others that had some in the previous pass.
    void update_held_recvs();
    // At a tick: the receive buffers' pages go back to the kernel when the
    // ring was nearly idle since the previous tick (BufferRing::discard_pages).
    void discard_idle_buffers();
    uint64_t buffers_used_at_tick_ = 0;   // bufs_.used() at the previous tick
    uint32_t pass_ = 0;
    // Recv completions of connections over their budget, in arrival order;
    // they come first in the next pass (their buffers stay out meanwhile).
    std::vector<Completion> held_;
    std::vector<uint32_t> held_slots_;   // slots with recv_held set
    std::vector<uint32_t> held_prev_;    // update_held_recvs' scratch
    std::vector<ConnId> rearm_at_tick_;  // closing connections whose recv ran out of buffers

    // Sockets in the ring's fixed-file table (index = connection slot), so
    // a send or recv does not look the fd up and take a file reference each
    // time. 0 = no table (kernel before 5.19, or before 6.13: see
    // fixed_files_released_promptly): plain fds.
    void use_fixed_file(io_uring_sqe* sqe, const Conn& c, uint32_t slot) const {
        if (!c.fixed_file) return;
        sqe->fd = int(slot);
        sqe->flags |= IOSQE_FIXED_FILE;
    }
    unsigned fixed_files_ = 0;

    io_uring ring_{};
    bool ring_ok_ = false;
    BufferRing bufs_;
    std::vector<bool> accept_armed_;  // per listener
    std::vector<Watch> watches_;
    std::vector<std::function<void(int)>> fsyncs_;  // index = tag index
    std::vector<uint32_t> fsync_free_;
    __kernel_timespec tick_ts_{};  // read by the kernel at submit time
    bool timeout_armed_ = false;
    // wake_at_us: absolute timeouts (index 1), the earliest in flight first.
    // A deadline that moved later only costs an early, empty pass.
    void arm_wake();
    __kernel_timespec wake_ts_{};
    std::vector<uint64_t> wakes_armed_;   // deadlines of wake timeouts in flight, ascending
};

UringReactor::~UringReactor() {
    if (ring_ok_) io_uring_queue_exit(&ring_);  // cancels everything in flight
    for (uint32_t slot = 0; slot < conns_.capacity(); ++slot)
        if (conns_.at(slot).fd >= 0) ::close(conns_.at(slot).fd);
    for (auto& l : listeners_)
        if (l.fd >= 0) ::close(l.fd);
    bufs_.release();
}

bool UringReactor::init(std::string& why) {
    if (!probe_uring(ring_, bufs_, kRingEntries, why)) return false;
    ring_ok_ = true;
    // As many table entries as we may have descriptors (capped); a slot
    // beyond it simply uses its plain fd.
    rlimit rl{};
    const rlim_t want = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? std::min<rlim_t>(rl.rlim_cur, 65536) : 1024;
    if (fixed_files_released_promptly() && io_uring_register_files_sparse(&ring_, unsigned(want)) == 0)
        fixed_files_ = unsigned(want);
    return true;
}

io_uring_sqe* UringReactor::get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        // SQ full: an early submit is the only way on; rare with 1024 entries.
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    if (!sqe) {
        // The submit took nothing (the kernel refused it): there is no way
        // to queue the operation, and every caller's state assumes it was.
        std::fprintf(stderr, "hato: io_uring submission queue stays full; cannot continue\n");
        std::abort();
    }
    return sqe;
}

void UringReactor::cancel(uint64_t tag) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, tag, 0);
    io_uring_sqe_set_data64(sqe, make_tag(kCancel, 0, 0));
}

void UringReactor::arm_accept(uint32_t index) {
    io_uring_sqe* sqe = get_sqe();
    // No address buffer: all shots would share it; getpeername() instead.
    io_uring_prep_multishot_accept(sqe, listeners_[index].fd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, make_tag(kAccept, 0, index));
    accept_armed_[index] = true;
}

void UringReactor::arm_recv(uint32_t slot) {
    Conn& c = conns_.at(slot);
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
    use_fixed_file(sqe, c, slot);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BufferRing::kGroupId;
    io_uring_sqe_set_data64(sqe, make_tag(kRecv, c.gen, slot));
    c.recv_armed = true;
    c.recv_rearm = false;
}

bool UringReactor::listen(const std::string& address, uint16_t port, std::string& err) {
    Listener l;
    l.fd = open_listen_socket(address, port, l.port, err);
    if (l.fd < 0) return false;
    // io_uring honours O_NONBLOCK: an accept armed on a non-blocking socket
    // with an empty backlog ends at once (EAGAIN) instead of waiting.
    fcntl(l.fd, F_SETFL, fcntl(l.fd, F_GETFL) & ~O_NONBLOCK);
    listeners_.push_back(l);
    accept_armed_.push_back(false);
    arm_accept(uint32_t(listeners_.size() - 1));
    return true;
}

void UringReactor::watch_readable(int fd, std::function<void()> fn) {
    watches_.push_back(Watch{fd, std::move(fn)});  // armed at pass end
}

void UringReactor::fsync_async(int fd, std::function<void(int)> done) {
    uint32_t index;
    if (!fsync_free_.empty()) {
        index = fsync_free_.back();
        fsync_free_.pop_back();
        fsyncs_[index] = std::move(done);
    } else {
        index = uint32_t(fsyncs_.size());
        fsyncs_.push_back(std::move(done));
    }
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, make_tag(kFsync, 0, index));
}

void UringReactor::close_listeners() {
    for (uint32_t i = 0; i < listeners_.size(); ++i) close_listener(int(i));
}

void UringReactor::close_listener(int listener_index) {
    if (listener_index < 0 || size_t(listener_index) >= listeners_.size()) return;
    const uint32_t i = uint32_t(listener_index);
    Listener& l = listeners_[i];
    if (l.fd < 0 || l.closing) return;
    l.closing = true;
    // The pending accept holds the socket open; its final CQE closes the fd.
    // It stops listening now, though: a reload that moves the listener to
    // another address on the same port binds that at once (SO_REUSEADDR
    // yields a port only to a socket that no longer listens).
    if (accept_armed_[i]) {
        ::shutdown(l.fd, SHUT_RDWR);
        cancel(make_tag(kAccept, 0, i));
    } else {
        ::close(l.fd);
        l.fd = -1;
    }
}

ConnId UringReactor::adopt(int fd) {
    set_nonblocking(fd, false);
    set_nodelay(fd);
    ConnId id = conns_.add(fd);
    const uint32_t slot = ConnTable::slot_of(id);
    if (slot < fixed_files_ && io_uring_register_files_update(&ring_, slot, &fd, 1) == 1)
        conns_.at(slot).fixed_file = true;
    arm_recv(slot);
    return id;
}

void UringReactor::on_accept(Handler& h, uint32_t index, int res, bool more) {
    if (!more) accept_armed_[index] = false;
    if (res >= 0) {
        if (listeners_[index].closing) {
            ::close(res);
        } else {
            set_nodelay(res);
            ConnId id = conns_.add(res);
            const uint32_t slot = ConnTable::slot_of(id);
            if (slot < fixed_files_ && io_uring_register_files_update(&ring_, slot, &res, 1) == 1)
                conns_.at(slot).fixed_file = true;
            arm_recv(slot);
            h.on_open(id, int(index), peer_address(res));
        }
    }
    // After on_open: a handler that opened a listener may have moved them.
    Listener& l = listeners_[index];
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        // Back off until the next tick instead of spinning on a full fd table.
        if (more) cancel(make_tag(kAccept, 0, index));
        if (!l.paused) h.on_accept_paused(int(index), -res);   // once, though a multishot accept fails again
        l.paused = true;
    }
    if (l.closing && !accept_armed_[index] && l.fd >= 0) {
        ::close(l.fd);
        l.fd = -1;
    }
}

void UringReactor::on_recv(Handler& h, uint32_t slot, uint32_t gen, int res, uint32_t flags) {
    bool more = flags & IORING_CQE_F_MORE;
    const uint8_t* data = nullptr;
    uint16_t bid = 0;
    if (flags & IORING_CQE_F_BUFFER) {
        bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
        data = bufs_.data(bid);
    }
    ConnId id = ConnTable::make_id(slot, gen);
    Conn* c = conns_.find(id);
    if (c && !more) c->recv_armed = false;
    if (c && res > 0 && data) {
        if (c->state == ConnState::Open) h.on_data(id, {data, size_t(res)});
        c = conns_.find(id);
        if (c && c->state == ConnState::Open && !c->in_place && wants_in_place(h, id, *c)) {
            c->in_place = true;
            if (c->recv_armed) cancel(make_tag(kRecv, c->gen, slot));
        }
    }
    if (data) bufs_.give_back(bid);  // only after on_data returned
    if (!c) return;
    if (c->state == ConnState::Closing) {
        if (!ops_in_flight(*c)) schedule_reap(slot, c->close_error);
        return;
    }
    if (res == -ENOBUFS) bufs_.grow();   // the ring ran dry: the load wants more buffers
    if (res == 0) {
        peer_closed(h, slot);
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        schedule_reap(slot, -res);
    } else if (!c->recv_armed && !c->recv_paused && !c->recv_held) {
        // A closing connection's input is discarded, and while intake is
        // stopped the ring may stay empty: a recv re-armed at once would fail
        // with ENOBUFS at once, every pass (a spin). It reads again at the
        // next tick (a peer that waits to write must not hold its flush).
        if (res == -ENOBUFS && c->state != ConnState::Open) {
            rearm_at_tick_.push_back(id);
            return;
        }
        // Multishot ended (ENOBUFS: ring ran dry, buffers are back now;
        // ECANCELED: reading was paused and resumed since, or is to go on in place).
        resume_recv(slot);
    }
}

void UringReactor::resume_recv(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.in_place && c.state == ConnState::Open) return list_in_place(slot);
    c.in_place = false;   // draining or lingering: what arrives is discarded
    c.recv_rearm = true;
    mark_dirty(slot);
}

void UringReactor::list_in_place(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.in_place_listed || c.poll_armed) return;
    c.in_place_listed = true;
    in_place_.push_back(slot);
}

void UringReactor::read_in_place(Handler& h) {
    if (in_place_.empty() || intake_paused_) return;   // (the list waits for set_intake(true))
    in_place_scratch_.clear();
    in_place_scratch_.swap(in_place_);
    for (uint32_t slot : in_place_scratch_) {
        conns_.at(slot).in_place_listed = false;
        read_in_place(h, slot);
    }
}

void UringReactor::read_in_place(Handler& h, uint32_t slot) {
    const ConnId id = conns_.id_of(slot);
    size_t got = 0;
    for (;;) {
        Conn& c = conns_.at(slot);   // re-fetched: callbacks may change the table
        // Closed with output still to send while it waited here: what it
        // sends is read and discarded from now on, as epoll does, so a peer
        // blocked writing does not hold the flush until its timeout.
        if (c.state == ConnState::Draining && c.in_place && !c.recv_armed && !c.poll_armed) return resume_recv(slot);
        // Paused or held: resuming lists it again. Closed otherwise: the
        // close path has taken over (resume_recv re-arms the discarding
        // recv). A poll armed: a stale entry of the list (the slot closed
        // and was taken again) must not arm a second one.
        if (c.state != ConnState::Open || !c.in_place || c.recv_paused || c.recv_held || c.recv_armed || c.poll_armed)
            return;
        // Stopped by a callback of this pass (set_intake(false)), or over
        // the budget: the rest waits on the list, as epoll's input does.
        if (intake_paused_ || got >= kInPlaceBudgetPerPass) return list_in_place(slot);
        const std::span<uint8_t> target = in_place_target(h, id, c, kInPlaceBudgetPerPass - got);
        ssize_t n;
        int err = 0;
        if (!target.empty()) {
            n = ::recv(c.fd, target.data(), target.size(), MSG_DONTWAIT);
            err = n < 0 ? errno : 0;
            h.on_received_in_place(id, n > 0 ? size_t(n) : 0);
        } else {
            // Between packets: the next one's start comes through a small
            // buffer. A stream of large packets stays here (the multishot
            // recv would take the next one in 4 KiB pieces before it could
            // be stopped again); anything else goes back to the multishot recv.
            n = ::recv(c.fd, between_.data(), between_.size(), MSG_DONTWAIT);
            err = n < 0 ? errno : 0;
            if (n > 0) {
                h.on_data(id, {between_.data(), size_t(n)});
                Conn& now = conns_.at(slot);
                if (now.state == ConnState::Open && now.in_place && !wants_in_place(h, id, now)) {
                    now.in_place = false;
                    return resume_recv(slot);
                }
            }
        }
        if (n > 0) {
            got += size_t(n);
            continue;
        }
        if (conns_.at(slot).state == ConnState::Free) return;
        if (n == 0) peer_closed(h, slot);
        else if (err == EAGAIN || err == EWOULDBLOCK) {
            Conn& w = conns_.at(slot);
            io_uring_sqe* sqe = get_sqe();
            io_uring_prep_poll_add(sqe, w.fd, POLLIN);
            use_fixed_file(sqe, w, slot);
            io_uring_sqe_set_data64(sqe, make_tag(kPollIn, w.gen, slot));
            w.poll_armed = true;
        } else if (err == EINTR) list_in_place(slot);
        else schedule_reap(slot, err);
        return;
    }
}

void UringReactor::on_poll_in(uint32_t slot, uint32_t gen, int res) {
    Conn* c = conns_.find(ConnTable::make_id(slot, gen));
    if (!c) return;
    c->poll_armed = false;
    if (c->state == ConnState::Closing) {
        if (!ops_in_flight(*c)) schedule_reap(slot, c->close_error);
        return;
    }
    (void)res;   // a poll error shows again in the recv that follows
    if (c->in_place && !c->recv_paused && !c->recv_held) resume_recv(slot);
}

void UringReactor::reading_changed(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.recv_paused || c.recv_held) {
        // The recv's last CQE (ECANCELED) clears recv_armed; no new one is armed.
        if (c.recv_armed) cancel(make_tag(kRecv, c.gen, slot));
    } else if (!c.recv_armed) {
        resume_recv(slot);
    }
}

void UringReactor::on_send(uint32_t slot, uint32_t gen, int res) {
    Conn* c = conns_.find(ConnTable::make_id(slot, gen));
    if (!c) return;
    c->send_busy = false;
    if (c->state == ConnState::Closing) {
        if (!ops_in_flight(*c)) schedule_reap(slot, c->close_error);
        return;
    }
    if (res < 0) {
        schedule_reap(slot, -res);
        return;
    }
    c->inflight_off += uint32_t(res);
    if (c->inflight_off >= c->inflight_total()) inflight_sent(slot, *c);
    // More to send, or a drain to finish: both happen at pass end.
    if (!c->output_empty() || c->state == ConnState::Draining) mark_dirty(slot);
}

bool UringReactor::over_budget(const Completion& cq) {
    if (tag_kind(cq.tag) != kRecv) return false;
    Conn& c = conns_.at(tag_index(cq.tag));
    if (c.gen != tag_gen(cq.tag) || c.state == ConnState::Free) return false;   // stale: on_recv frees it
    if (c.input_pass != pass_) {
        c.input_pass = pass_;
        c.input_bytes = 0;
    }
    // Once over, every later completion of this connection waits too: its
    // input keeps its order.
    if (c.input_bytes >= kInputBudgetPerPass) return true;
    if (cq.res > 0) c.input_bytes += uint32_t(cq.res);
    return false;
}

void UringReactor::update_held_recvs() {
    held_prev_.swap(held_slots_);
    held_slots_.clear();
    for (const Completion& cq : held_) {
        const uint32_t slot = tag_index(cq.tag);
        Conn& c = conns_.at(slot);
        if (c.gen != tag_gen(cq.tag) || c.held_pass == pass_) continue;
        c.held_pass = pass_;
        held_slots_.push_back(slot);
        if (c.recv_held) continue;
        c.recv_held = true;
        // No more buffers for it meanwhile: the ring stays free for the others.
        if (c.recv_armed) cancel(make_tag(kRecv, c.gen, slot));
    }
    // Those with nothing held any more read again.
    for (uint32_t slot : held_prev_) {
        Conn& c = conns_.at(slot);
        if (!c.recv_held || c.held_pass == pass_) continue;   // reused since, or still held
        c.recv_held = false;
        if (!c.recv_armed && !c.recv_paused && c.state != ConnState::Closing) resume_recv(slot);
    }
}

void UringReactor::process_cqe(Handler& h, uint64_t tag, int res, uint32_t flags) {
    uint32_t index = tag_index(tag);
    switch (tag_kind(tag)) {
    case kAccept:
        on_accept(h, index, res, flags & IORING_CQE_F_MORE);
        break;
    case kRecv:
        on_recv(h, index, tag_gen(tag), res, flags);
        break;
    case kSend:
        on_send(index, tag_gen(tag), res);
        break;
    case kPollIn:
        on_poll_in(index, tag_gen(tag), res);
        break;
    case kTimeout:
        if (index == 0) timeout_armed_ = false;
        else if (!wakes_armed_.empty()) wakes_armed_.erase(wakes_armed_.begin());
        break;
    case kPoll:
        watches_[index].armed = false;
        if (res > 0) watches_[index].fn();
        break;
    case kFsync: {
        auto done = std::move(fsyncs_[index]);
        fsyncs_[index] = nullptr;
        fsync_free_.push_back(index);
        if (done) done(res);
        break;
    }
    default:  // kCancel: outcome does not matter, the target's own CQE does
        break;
    }
}

void UringReactor::reap(Handler& h) {
    while (!reap_.empty()) {
        std::vector<uint32_t> slots;
        slots.swap(reap_);
        for (uint32_t slot : slots) {
            Conn& c = conns_.at(slot);
            c.on_reap_list = false;
            if (c.state != ConnState::Closing) continue;
            if (should_linger(c) && !c.send_busy && !c.cancel_sent) {
                start_lingering(h, slot);   // the recv goes on, discarding
                continue;
            }
            if (!c.cancel_sent) {
                c.cancel_sent = true;
                if (c.close_error == 0) drain_input(c.fd);
                // shutdown ends a pending recv/send at once; the cancels cover
                // ops that are not yet waiting on the socket.
                shutdown(c.fd, SHUT_RDWR);
                if (c.recv_armed) cancel(make_tag(kRecv, c.gen, slot));
                if (c.send_busy) cancel(make_tag(kSend, c.gen, slot));
                if (c.poll_armed) cancel(make_tag(kPollIn, c.gen, slot));
            }
            // The fd may be closed only once no op references it; the last
            // CQE schedules the reap again.
            if (ops_in_flight(c)) continue;
            if (c.fixed_file) {   // the table holds a reference of its own
                int none = -1;
                io_uring_register_files_update(&ring_, slot, &none, 1);
            }
            ::close(c.fd);
            ConnId id = conns_.id_of(slot);
            int error = c.close_error;
            const bool told = c.handler_closed;
            conns_.remove(slot);
            if (!told) h.on_close(id, error);
        }
    }
}

void UringReactor::arm_wake() {
    if (wake_at_us_ == 0 || (!wakes_armed_.empty() && wakes_armed_.front() <= wake_at_us_)) return;
    wake_ts_.tv_sec = int64_t(wake_at_us_ / 1000000);
    wake_ts_.tv_nsec = int64_t(wake_at_us_ % 1000000) * 1000;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout(sqe, &wake_ts_, 0, IORING_TIMEOUT_ABS);   // CLOCK_MONOTONIC
    io_uring_sqe_set_data64(sqe, make_tag(kTimeout, 0, 1));
    wakes_armed_.insert(wakes_armed_.begin(), wake_at_us_);
}

void UringReactor::prepare_pass_sqes() {
    std::vector<uint32_t>& slots = dirty_scratch_;
    take_dirty(slots);
    for (uint32_t slot : slots) {
        Conn& c = conns_.at(slot);
        if (c.state != ConnState::Open && c.state != ConnState::Draining && c.state != ConnState::Lingering)
            continue;
        if (c.recv_rearm && !c.recv_armed && !c.recv_paused && !c.recv_held && !c.in_place) arm_recv(slot);
        if (c.send_busy) continue;  // its CQE re-lists the connection
        stage_output(c);
        if (c.inflight_off < c.inflight_total()) {
            io_uring_sqe* sqe = get_sqe();
            if (c.kept_inflight()) {   // the pieces leave from where they are
                KeptOutput& k = *c.kept;
                c.unsent_iov(k.iov);
                k.mh = msghdr{};
                k.mh.msg_iov = k.iov.data();
                k.mh.msg_iovlen = k.iov.size();
                io_uring_prep_sendmsg(sqe, c.fd, &k.mh, MSG_NOSIGNAL);
            } else {
                io_uring_prep_send(sqe, c.fd, c.inflight.data() + c.inflight_off,
                                   c.inflight.size() - c.inflight_off, MSG_NOSIGNAL);
            }
            use_fixed_file(sqe, c, slot);
            io_uring_sqe_set_data64(sqe, make_tag(kSend, c.gen, slot));
            c.send_busy = true;
        } else if (c.state == ConnState::Draining) {
            schedule_reap(slot, 0);
        }
    }
    slots.clear();   // the lists keep their capacity: no allocation per pass
    for (uint32_t i = 0; i < listeners_.size(); ++i) {
        Listener& l = listeners_[i];
        if (!accept_armed_[i] && !l.paused && !l.closing && l.fd >= 0) arm_accept(i);
    }
    for (uint32_t i = 0; i < watches_.size(); ++i) {
        // One-shot poll, re-armed after each callback: fires again at once
        // while the fd stays readable, which gives level-triggered semantics.
        if (watches_[i].armed) continue;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_add(sqe, watches_[i].fd, POLLIN);
        io_uring_sqe_set_data64(sqe, make_tag(kPoll, 0, i));
        watches_[i].armed = true;
    }
    if (!timeout_armed_) {
        uint64_t ms = ms_until_tick();
        if (ms == 0) ms = 1;
        tick_ts_.tv_sec = int64_t(ms / 1000);
        tick_ts_.tv_nsec = int64_t(ms % 1000) * 1000000;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
        io_uring_sqe_set_data64(sqe, make_tag(kTimeout, 0, 0));
        timeout_armed_ = true;
    }
    arm_wake();
}

void UringReactor::discard_idle_buffers() {
    const uint64_t used = bufs_.used();
    const uint64_t in_tick = used - buffers_used_at_tick_;
    buffers_used_at_tick_ = used;
    // Nothing touched since the last discard, or still busy: a ring in use
    // would only fault its pages in again.
    if (used == 0 || in_tick > bufs_.active() / 32) return;
    // The kernel fills a buffer only inside our io_uring_enter with
    // DEFER_TASKRUN (otherwise in task work at any return to user space), and
    // every buffer it filled is out in a completion until given back: in the
    // CQ ring, or held for the next pass.
    if (!(ring_.flags & IORING_SETUP_DEFER_TASKRUN) || !held_.empty() || io_uring_cq_ready(&ring_) != 0) return;
    bufs_.discard_pages();
    buffers_used_at_tick_ = 0;
}

void UringReactor::run(Handler& h) {
    start_ring(ring_);
    if (next_tick_ms_ == 0) next_tick_ms_ = monotonic_ms() + tick_interval_ms_;
    prepare_pass_sqes();
    std::vector<Completion> batch;
    while (!stop_requested_) {
        // Acks held back by take_dirty, and held input, must not wait for the next event.
        // Held input waits for the wake-up a send completion brings while
        // intake is stopped.
        bool busy = std::exchange(pass_again_, false) || !reap_.empty() || !dirty_late_.empty() ||
                    ((!held_.empty() || !in_place_.empty()) && !intake_paused_) ||
                    (wake_at_us_ != 0 && us_until_wake() == 0);
        // Not waiting still has to collect completions: with DEFER_TASKRUN
        // they are only finished inside an enter that asks for events.
        if (busy) io_uring_submit_and_get_events(&ring_);
        else io_uring_submit_and_wait(&ring_, 1);

        // Copy the CQEs out first: callbacks may prepare SQEs, and an early
        // submit inside get_sqe() must find CQ space.
        // Held input first: it arrived before anything now in the ring.
        batch.clear();
        batch.swap(held_);
        const size_t limit = batch.size() + kMaxCqesPerPass;
        io_uring_cqe* cqe;
        while (batch.size() < limit && io_uring_peek_cqe(&ring_, &cqe) == 0) {
            batch.push_back({io_uring_cqe_get_data64(cqe), cqe->res, cqe->flags});
            io_uring_cqe_seen(&ring_, cqe);
        }
        if (++pass_ == 0) pass_ = 1;   // 0 is what a new Conn's stamps hold
        size_t buffers_held = 0, input = 0;
        for (const auto& c : batch) {
            buffers_held += (c.flags & IORING_CQE_F_BUFFER) ? 1 : 0;
            if (tag_kind(c.tag) == kRecv && c.res > 0) input += size_t(c.res);
        }
        bufs_.grow_for_pass(buffers_held);
        // A pass that takes in less than one connection's budget in all cannot
        // put anyone over it: its connections' budget stamps (a line of their
        // own) are not touched.
        const bool budgeted = input >= kInputBudgetPerPass;
        // A completion held because intake stopped counts its connection
        // over budget for the pass: a handler may restart intake before the
        // connection's next completion in this batch, which must wait too
        // (its bytes keep their order).
        bool intake_held = false;
        for (const auto& c : batch) {
            if (intake_stopped_for(c)) {
                Conn& conn = conns_.at(tag_index(c.tag));
                conn.input_pass = pass_;
                conn.input_bytes = uint32_t(kInputBudgetPerPass);
                intake_held = true;
                held_.push_back(c);
            } else if ((budgeted || intake_held) && over_budget(c)) {
                held_.push_back(c);
            } else {
                process_cqe(h, c.tag, c.res, c.flags);
            }
        }
        update_held_recvs();
        read_in_place(h);

        reap(h);
        if (run_tick_if_due(h)) {
            for (auto& l : listeners_) l.paused = false;  // retry accept after EMFILE
            for (ConnId id : std::exchange(rearm_at_tick_, {})) {
                Conn* c = conns_.find(id);
                if (c && (c->state == ConnState::Draining || c->state == ConnState::Lingering) && !c->recv_armed &&
                    !c->recv_paused && !c->recv_held)
                    resume_recv(ConnTable::slot_of(id));
            }
            reap(h);
            discard_idle_buffers();
        }
        h.on_pass_end();
        release_drained_output();
        prepare_pass_sqes();
    }
    io_uring_submit(&ring_);  // what the last pass queued still leaves
    stop_requested_ = false;  // consumed here, not at the start: see ReactorBase::stop
}

}  // namespace

std::unique_ptr<Reactor> make_uring_reactor(std::string& why) {
    auto r = std::make_unique<UringReactor>();
    if (!r->init(why)) return nullptr;
    return r;
}

}  // namespace hato::net
