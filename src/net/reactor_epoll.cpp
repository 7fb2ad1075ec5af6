// epoll backend: level-triggered readiness, non-blocking sockets, one shared
// 64 KiB read buffer (an idle connection holds no buffer), output written at
// pass end with EPOLLOUT registered only while output is pending.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "net/reactor_core.hpp"

namespace hato::net {
namespace {

enum Kind : uint8_t { kListener = 1, kConn = 2, kWatch = 3 };

constexpr size_t kReadBufSize = 64 * 1024;
constexpr int kMaxAcceptPerPass = 64;
constexpr int kMaxEvents = 256;

class EpollReactor final : public ReactorBase {
public:
    explicit EpollReactor(int epfd) : epfd_(epfd), read_buf_(kReadBufSize) {}
    ~EpollReactor() override;

    const char* name() const override { return "epoll"; }
    bool listen(const std::string& address, uint16_t port, std::string& err) override;
    void close(ConnId id, bool flush) override { begin_close(id, flush); }
    ConnId adopt(int fd) override;
    void watch_readable(int fd, std::function<void()> fn) override;
    void fsync_async(int fd, std::function<void(int)> done) override;
    void close_listeners() override;
    void close_listener(int listener_index) override;
    void run(Handler& h) override;

private:
    void set_events(int fd, uint32_t events, uint64_t tag, int op = EPOLL_CTL_MOD);
    void accept_from(Handler& h, uint32_t index);
    void read_from(Handler& h, uint32_t slot);
    void flush_output();
    void write_conn(uint32_t slot);
    void reap(Handler& h);
    void reading_changed(uint32_t slot) override;
    // epoll_pwait2 (Linux 5.11) for a timeout finer than a millisecond, the
    // group-commit window's; before it, epoll_wait rounded up to whole ms.
    int wait_events(epoll_event* events, uint64_t timeout_us);
    bool have_pwait2_ = true;
    void intake_resumed() override;
    // Intake stopped: `slot` is readable but not read; EPOLLIN goes off
    // (level-triggered, it would wake every pass) until intake resumes.
    void hold_intake(uint32_t slot);
    std::vector<iovec> iov_;   // write_conn's, for output with kept pieces
    uint32_t conn_events(const Conn& c) const {
        return (c.recv_paused || c.intake_held ? 0u : uint32_t(EPOLLIN)) | (c.want_write ? uint32_t(EPOLLOUT) : 0u);
    }

    int epfd_;
    std::vector<uint8_t> read_buf_;
    std::vector<std::function<void()>> watches_;
    // fdatasync already ran; `done` is delivered in the next pass like a completion.
    std::vector<std::pair<std::function<void(int)>, int>> fsync_done_;
    std::vector<ConnId> intake_held_;   // connections with intake_held set
    // Output left in the last flush: while intake is stopped the next pass
    // runs at once, so the handler sees the room it made (its check runs
    // before the flush) instead of waiting for the tick.
    bool output_moved_ = false;
};

EpollReactor::~EpollReactor() {
    for (uint32_t slot = 0; slot < conns_.capacity(); ++slot)
        if (conns_.at(slot).fd >= 0) ::close(conns_.at(slot).fd);
    for (auto& l : listeners_)
        if (l.fd >= 0) ::close(l.fd);
    ::close(epfd_);
}

void EpollReactor::set_events(int fd, uint32_t events, uint64_t tag, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epfd_, op, fd, &ev);
}

bool EpollReactor::listen(const std::string& address, uint16_t port, std::string& err) {
    Listener l;
    l.fd = open_listen_socket(address, port, l.port, err);
    if (l.fd < 0) return false;
    set_events(l.fd, EPOLLIN, make_tag(kListener, 0, uint32_t(listeners_.size())), EPOLL_CTL_ADD);
    listeners_.push_back(l);
    return true;
}

void EpollReactor::watch_readable(int fd, std::function<void()> fn) {
    set_events(fd, EPOLLIN, make_tag(kWatch, 0, uint32_t(watches_.size())), EPOLL_CTL_ADD);
    watches_.push_back(std::move(fn));
}

void EpollReactor::fsync_async(int fd, std::function<void(int)> done) {
    int r = fdatasync(fd) == 0 ? 0 : -errno;
    fsync_done_.emplace_back(std::move(done), r);
}

void EpollReactor::close_listeners() {
    for (size_t i = 0; i < listeners_.size(); ++i) close_listener(int(i));
}

void EpollReactor::close_listener(int listener_index) {
    if (listener_index < 0 || size_t(listener_index) >= listeners_.size()) return;
    Listener& l = listeners_[size_t(listener_index)];
    if (l.fd < 0) return;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
    ::close(l.fd);
    l.fd = -1;
    l.closing = true;
}

void EpollReactor::accept_from(Handler& h, uint32_t index) {
    for (int i = 0; i < kMaxAcceptPerPass; ++i) {
        Listener& l = listeners_[index];
        if (l.fd < 0) return;
        int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: the pending connection stays readable and
                // level-triggered epoll would spin; stop listening until the tick.
                l.paused = true;
                set_events(l.fd, 0, make_tag(kListener, 0, index));
                h.on_accept_paused(int(index), errno);
            }
            return;
        }
        set_nodelay(fd);
        ConnId id = conns_.add(fd);
        uint32_t slot = ConnTable::slot_of(id);
        set_events(fd, EPOLLIN, make_tag(kConn, ConnTable::gen_of(id), slot), EPOLL_CTL_ADD);
        h.on_open(id, int(index), peer_address(fd));
    }
}

ConnId EpollReactor::adopt(int fd) {
    set_nonblocking(fd, true);
    set_nodelay(fd);
    ConnId id = conns_.add(fd);
    set_events(fd, EPOLLIN, make_tag(kConn, ConnTable::gen_of(id), ConnTable::slot_of(id)), EPOLL_CTL_ADD);
    return id;
}

void EpollReactor::read_from(Handler& h, uint32_t slot) {
    ConnId id = conns_.id_of(slot);
    size_t total = 0, in_place = 0;
    // Fairness (kInputBudgetPerPass, kInPlaceBudgetPerPass): what is left
    // stays readable for the next pass.
    while (total < kInputBudgetPerPass && in_place < kInPlaceBudgetPerPass) {
        Conn& c = conns_.at(slot);  // re-fetched: callbacks may change the table
        if (c.state == ConnState::Closing || c.state == ConnState::Free) return;
        if (c.recv_paused && c.state == ConnState::Open) return;   // set_reading(false) meanwhile
        if (intake_paused_ && c.state == ConnState::Open) return hold_intake(slot);
        // After close(flush) input is read only to be discarded.
        const std::span<uint8_t> target = c.state == ConnState::Open && c.in_place_hint
                                              ? in_place_target(h, id, c, kInPlaceBudgetPerPass - in_place)
                                              : std::span<uint8_t>{};
        ssize_t n;
        if (!target.empty()) {
            n = recv(c.fd, target.data(), target.size(), 0);
            const int err = errno;
            h.on_received_in_place(id, n > 0 ? size_t(n) : 0);
            errno = err;
            if (n > 0) {
                in_place += size_t(n);
                continue;
            }
        } else {
            n = recv(c.fd, read_buf_.data(), std::min(read_buf_.size(), kInputBudgetPerPass - total), 0);
            if (n > 0) {
                total += size_t(n);
                if (c.state == ConnState::Open) h.on_data(id, {read_buf_.data(), size_t(n)});
                continue;
            }
        }
        if (n == 0) {
            peer_closed(h, slot);
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            schedule_reap(slot, errno);
        }
        return;
    }
}

void EpollReactor::write_conn(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (!c.holds_output_memory()) {
        if (c.state == ConnState::Draining) schedule_reap(slot, 0);
        return;
    }
    // The batch being written and what was queued since leave in one
    // sendmsg, neither copied into the other: a large message queued while
    // the socket's buffer is full is not moved again on every pass.
    for (;;) {
        stage_output(c);   // pending becomes the batch once the batch is sent
        const size_t batch = c.inflight_total() - c.inflight_off;
        if (batch == 0) break;   // (then pending is empty too)
        msghdr mh{};
        iovec iov[2];
        if (c.kept_queued()) {
            // Kept pieces: the batch alone, pieces and all (pending's bytes
            // are not contiguous with what follows them in the stream).
            c.unsent_iov(iov_);
            mh.msg_iov = iov_.data();
            mh.msg_iovlen = iov_.size();
        } else {
            iov[0] = {c.inflight.data() + c.inflight_off, batch};
            iov[1] = {c.pending.data(), c.pending.size()};
            mh.msg_iov = iov;
            mh.msg_iovlen = c.pending.empty() ? 1 : 2;
        }
        ssize_t n = ::sendmsg(c.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            output_moved_ = true;
            if (size_t(n) <= batch) {
                c.inflight_off += uint32_t(n);
                continue;
            }
            c.inflight_off = uint32_t(c.inflight.size());
            stage_output(c);
            c.inflight_off = uint32_t(size_t(n) - batch);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            schedule_reap(slot, errno);
            return;
        }
        break;
    }
    if (c.inflight_off == c.inflight_total()) inflight_sent(slot, c);   // and pending is empty: all is sent
    bool pending_out = !c.output_empty();
    if (pending_out != c.want_write) {
        c.want_write = pending_out;
        set_events(c.fd, conn_events(c), make_tag(kConn, c.gen, slot));
    }
    if (!pending_out && c.state == ConnState::Draining) schedule_reap(slot, 0);
}

void EpollReactor::reading_changed(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.state == ConnState::Lingering && c.peer_eof) {
        // Nothing more to read or write: only the tick's look at the kernel's
        // output is left. Our SHUT_WR and the peer's EOF are a hang-up, which
        // epoll reports whatever the mask, every pass: out of the set.
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        return;
    }
    set_events(c.fd, conn_events(c), make_tag(kConn, c.gen, slot));
}

void EpollReactor::hold_intake(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.intake_held) return;
    c.intake_held = true;
    intake_held_.push_back(conns_.id_of(slot));
    set_events(c.fd, conn_events(c), make_tag(kConn, c.gen, slot));
}

void EpollReactor::intake_resumed() {
    for (ConnId id : intake_held_) {
        Conn* c = conns_.find(id);
        if (!c || !c->intake_held) continue;
        c->intake_held = false;
        if (c->state != ConnState::Closing) set_events(c->fd, conn_events(*c), make_tag(kConn, c->gen, ConnTable::slot_of(id)));
    }
    intake_held_.clear();
}

void EpollReactor::flush_output() {
    std::vector<uint32_t>& slots = dirty_scratch_;
    take_dirty(slots);
    for (uint32_t slot : slots) {
        Conn& c = conns_.at(slot);
        if (c.state == ConnState::Open || c.state == ConnState::Draining) write_conn(slot);
    }
    slots.clear();
}

void EpollReactor::reap(Handler& h) {
    while (!reap_.empty()) {
        std::vector<uint32_t> slots;
        slots.swap(reap_);
        for (uint32_t slot : slots) {
            Conn& c = conns_.at(slot);
            c.on_reap_list = false;
            if (c.state != ConnState::Closing) continue;
            if (should_linger(c)) {
                start_lingering(h, slot);
                continue;
            }
            epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
            if (c.close_error == 0) drain_input(c.fd);
            ::close(c.fd);
            ConnId id = conns_.id_of(slot);
            int error = c.close_error;
            const bool told = c.handler_closed;
            conns_.remove(slot);
            if (!told) h.on_close(id, error);
        }
    }
}

int EpollReactor::wait_events(epoll_event* events, uint64_t timeout_us) {
    if (have_pwait2_ && timeout_us % 1000 != 0) {
        const timespec ts{time_t(timeout_us / 1000000), long(timeout_us % 1000000) * 1000};
        const int n = epoll_pwait2(epfd_, events, kMaxEvents, &ts, nullptr);
        if (n >= 0 || errno != ENOSYS) return n;
        have_pwait2_ = false;
    }
    return epoll_wait(epfd_, events, kMaxEvents, int((timeout_us + 999) / 1000));
}

void EpollReactor::run(Handler& h) {
    if (next_tick_ms_ == 0) next_tick_ms_ = monotonic_ms() + tick_interval_ms_;
    epoll_event events[kMaxEvents];
    while (!stop_requested_) {
        bool busy = std::exchange(pass_again_, false) || !reap_.empty() || !fsync_done_.empty() ||
                    !dirty_.empty() || !dirty_late_.empty() ||
                    (intake_paused_ && output_moved_);
        output_moved_ = false;
        int n = wait_events(events, busy ? 0 : us_until_wake());
        if (n < 0) n = 0;  // EINTR: just run the pass

        auto dones = std::move(fsync_done_);
        fsync_done_.clear();
        for (auto& [done, result] : dones) done(result);

        for (int i = 0; i < n; ++i) {
            uint64_t tag = events[i].data.u64;
            uint32_t index = tag_index(tag);
            switch (tag_kind(tag)) {
            case kListener:
                accept_from(h, index);
                break;
            case kWatch:
                watches_[index]();
                break;
            case kConn: {
                ConnId id = ConnTable::make_id(index, tag_gen(tag));
                if (!conns_.find(id)) break;  // closed earlier in this pass
                if (events[i].events & EPOLLOUT) mark_dirty(index);
                const Conn& c = conns_.at(index);
                if ((c.recv_paused || c.intake_held) && c.state == ConnState::Open) {
                    // Not reading: a hang-up or error still ends the connection
                    // (level-triggered, it would otherwise be reported forever).
                    if (events[i].events & (EPOLLHUP | EPOLLERR)) schedule_reap(index, ECONNRESET);
                } else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    read_from(h, index);
                }
                break;
            }
            default:
                break;
            }
        }
        reap(h);
        if (run_tick_if_due(h)) {
            for (uint32_t i = 0; i < listeners_.size(); ++i) {
                Listener& l = listeners_[i];
                if (!l.paused || l.fd < 0) continue;
                l.paused = false;
                set_events(l.fd, EPOLLIN, make_tag(kListener, 0, i));
            }
            reap(h);
        }
        h.on_pass_end();
        release_drained_output();
        flush_output();
    }
    stop_requested_ = false;  // consumed here, not at the start: see ReactorBase::stop
}

}  // namespace

std::unique_ptr<Reactor> make_epoll_reactor(std::string& why) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        why = std::string("epoll_create1: ") + std::strerror(errno);
        return nullptr;
    }
    return std::make_unique<EpollReactor>(epfd);
}

}  // namespace hato::net
