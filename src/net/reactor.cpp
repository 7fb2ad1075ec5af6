// Reactor::create (backend choice) and the parts both backends share.
#include "net/reactor_core.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <utility>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "hato_build.h"

namespace hato::net {

std::unique_ptr<Reactor> Reactor::create(Backend want, std::string& note) {
    note.clear();
    std::string why;
    if (want != Backend::Epoll) {
        // Tests and qemu runs force the fallback path through the environment.
        const char* force = std::getenv("HATO_FORCE_NO_URING");
        if (force && *force && std::strcmp(force, "0") != 0) {
            why = "HATO_FORCE_NO_URING set";
        } else {
#if HATO_HAVE_URING
            if (auto r = make_uring_reactor(why)) return r;
#else
            why = "built without liburing";
#endif
        }
        if (want == Backend::IoUring) {
            note = "io_uring unavailable: " + why;
            return nullptr;
        }
        note = why;
    }
    std::string epoll_why;
    auto r = make_epoll_reactor(epoll_why);
    if (!r) note = note.empty() ? epoll_why : note + "; " + epoll_why;
    return r;
}

// ---- socket helpers ----

uint64_t monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

uint64_t monotonic_us() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

int open_listen_socket(const std::string& address, uint16_t port, uint16_t& bound, std::string& err) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    std::string host = address.empty() ? "0.0.0.0" : address;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
    } else {
        err = "not an IP address: " + address;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1024) != 0) {
        err = "listen " + address + ":" + std::to_string(port) + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    sockaddr_storage got{};
    socklen_t got_len = sizeof got;
    getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len);
    bound = got.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    return fd;
}

bool can_listen(const std::string& address, uint16_t port, std::string& err) {
    uint16_t bound = 0;
    const int fd = open_listen_socket(address, port, bound, err);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::string peer_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        uint16_t port = ntohs(a->sin6_port);
        // An IPv4 client on a dual-stack "::" listener: show the plain IPv4 form.
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
            return std::string(buf) + ":" + std::to_string(port);
        }
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        std::string out = "[";   // appended, not "[" + ...: GCC 12 -O3 flags that with a false -Wrestrict
        out += buf;
        out += "]:";
        out += std::to_string(port);
        return out;
    }
    return "?";
}

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_nonblocking(int fd, bool on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

bool wants_in_place(Handler& h, ConnId id, Conn& c) {
    if (!c.in_place_hint) return false;
    if (h.wants_in_place(id)) return true;
    c.in_place_hint = false;
    return false;
}

std::span<uint8_t> in_place_target(Handler& h, ConnId id, Conn& c, size_t limit) {
    if (!wants_in_place(h, id, c)) return {};
    int waiting = 0;
    if (ioctl(c.fd, FIONREAD, &waiting) != 0 || waiting <= 0) return {};
    return h.receive_target(id, std::min(limit, size_t(waiting)));
}

void drain_input(int fd) {
    uint8_t scratch[4096];
    // Bounded: a peer that keeps sending must not hold the loop here.
    for (int i = 0; i < 64; ++i) {
        ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n <= 0) break;
    }
}

bool unsent_in_kernel(int fd) {
    int unsent = 0;   // bytes sent but not acknowledged by the peer, or not sent
    return ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent > 0;
}

void reset_on_close(int fd) {
    const linger abort{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
}

// ---- connection table ----

ConnId ConnTable::add(int fd) {
    uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else {
        slot = uint32_t(slots_.size());
        slots_.emplace_back();
    }
    Conn& c = slots_[slot];
    c = Conn{};
    c.fd = fd;
    // Generation 0 is never handed out, so id 0 is never a live connection.
    if (++next_gen_ == 0) ++next_gen_;
    c.gen = next_gen_;
    c.state = ConnState::Open;
    ++live_;
    return id_of(slot);
}

void ConnTable::remove(uint32_t slot) {
    Conn& c = slots_[slot];
    uint32_t gen = c.gen;
    c = Conn{};  // frees the buffers: a closed slot holds no memory
    c.gen = gen;
    free_.push_back(slot);
    --live_;
}

// ---- ReactorBase ----

Conn* ReactorBase::output_target(ConnId id, size_t n) {
    Conn* c = conns_.find(id);
    // Output queued after close() would never be wanted; drop it.
    if (!c || c->state != ConnState::Open || n == 0) return nullptr;
    // A buffer stays below 4 GiB (Conn::inflight_off is 32 bits): a peer
    // that lets that much pile up is not reading anyway.
    if (n >= UINT32_MAX - c->pending_total()) {
        schedule_reap(ConnTable::slot_of(id), ENOBUFS);
        return nullptr;
    }
    return c;
}

void ReactorBase::queue_output(ConnId id, std::span<const uint8_t> data, bool late) {
    Conn* c = output_target(id, data.size());
    if (!c) return;
    if (c->pending.capacity() == 0) take_spare_output(c->pending);
    c->pending.insert(c->pending.end(), data.begin(), data.end());
    c->out_used = true;
    mark_dirty(ConnTable::slot_of(id), late);
}

void ReactorBase::send_kept(ConnId id, Kept kept) {
    Conn* c = output_target(id, kept.bytes.size());
    if (!c) return kept.release(kept.obj);
    if (!c->has_kept) {
        c->kept = std::make_unique<KeptOutput>();
        c->has_kept = true;
    }
    c->kept->pending.push_back({uint32_t(c->pending.size()), uint32_t(kept.bytes.size()), kept});
    c->kept->pending_len += kept.bytes.size();
    c->out_used = true;
    mark_dirty(ConnTable::slot_of(id), false);
}

void Conn::unsent_iov(std::vector<iovec>& iov) const {
    iov.clear();
    size_t pos = 0;   // through the stream: inflight's bytes with the pieces between them
    auto add = [&](const uint8_t* data, size_t len) {
        if (pos + len > inflight_off && iov.size() < IOV_MAX) {
            const size_t skip = inflight_off > pos ? inflight_off - pos : 0;
            iov.push_back({const_cast<uint8_t*>(data) + skip, len - skip});
        }
        pos += len;
    };
    size_t at = 0;
    if (has_kept) {
        for (const KeptOutput::Piece& p : kept->inflight) {
            add(inflight.data() + at, p.at - at);
            add(p.kept.bytes.data(), p.len);
            at = p.at;
        }
    }
    add(inflight.data() + at, inflight.size() - at);
}

size_t ReactorBase::queued_bytes(ConnId id) const {
    const Conn* c = conns_.find(id);
    return c ? c->queued() : 0;
}

uint16_t ReactorBase::bound_port(int listener_index) const {
    if (listener_index < 0 || size_t(listener_index) >= listeners_.size()) return 0;
    return listeners_[size_t(listener_index)].port;
}

void ReactorBase::set_tick_interval(uint32_t ms) {
    tick_interval_ms_ = ms == 0 ? 1 : ms;
    next_tick_ms_ = monotonic_ms() + tick_interval_ms_;
}

void ReactorBase::mark_dirty(uint32_t slot, bool late) {
    Conn& c = conns_.at(slot);
    if (c.on_dirty_list) return;
    if (late) {
        if (c.on_late_list) return;
        c.on_late_list = true;
        if (dirty_late_.empty()) late_since_us_ = monotonic_us();
        dirty_late_.push_back(slot);
        return;
    }
    c.on_dirty_list = true;
    dirty_.push_back(slot);
}

void ReactorBase::take_dirty(std::vector<uint32_t>& out) {
    out.clear();
    out.swap(dirty_);   // dirty_ keeps out's capacity for the next pass
    for (uint32_t slot : out) conns_.at(slot).on_dirty_list = false;
    if (dirty_late_.empty()) return;
    if (!out.empty() && monotonic_us() - late_since_us_ < late_hold_us_) return;   // held
    const size_t first_late = out.size();
    out.insert(out.end(), dirty_late_.begin(), dirty_late_.end());
    dirty_late_.clear();
    for (size_t i = first_late; i < out.size(); ++i) conns_.at(out[i]).on_late_list = false;
}

void ReactorBase::schedule_reap(uint32_t slot, int error) {
    Conn& c = conns_.at(slot);
    if (c.state == ConnState::Lingering) --lingering_live_;
    if (c.state != ConnState::Closing) c.close_error = error;
    c.state = ConnState::Closing;
    if (c.on_reap_list) return;
    c.on_reap_list = true;
    reap_.push_back(slot);
}

void ReactorBase::peer_closed(Handler& h, uint32_t slot) {
    Conn& c = conns_.at(slot);
    // Nothing more comes: set before the handler runs, as it may close at once.
    auto stop_reading = [&] {
        c.peer_eof = true;
        c.recv_paused = true;
        reading_changed(slot);
    };
    // Closed already, its last output leaving (a refused CONNACK, an HTTP
    // answer to the request that came with the EOF): it drains as asked,
    // bounded by the flush timeout.
    if (c.state == ConnState::Draining && !c.peer_eof) return stop_reading();
    // What the peer has not taken leaves before the close, or is reset at
    // the lingering deadline: not left to the kernel after a close now.
    if (c.state == ConnState::Lingering && !c.peer_eof && unsent_in_kernel(c.fd)) {
        lingering_after_eof_.push_back({slot, c.gen, 0});
        return stop_reading();
    }
    if (c.state != ConnState::Open || c.peer_eof) return schedule_reap(slot, 0);
    stop_reading();
    peer_eof_.push_back({slot, c.gen, monotonic_ms() + kPeerEofMs});
    if (!h.on_peer_eof(conns_.id_of(slot))) schedule_reap(slot, 0);
}

Conn* ReactorBase::begin_close(ConnId id, bool flush) {
    Conn* c = conns_.find(id);
    if (!c || c->state == ConnState::Closing || c->state == ConnState::Lingering) return nullptr;
    uint32_t slot = ConnTable::slot_of(id);
    c->linger = flush;
    if (flush && !c->output_empty()) {
        if (c->state == ConnState::Open) {
            c->state = ConnState::Draining;
            draining_.push_back({slot, c->gen, monotonic_ms() + kFlushTimeoutMs});
            mark_dirty(slot);
        }
        return c;
    }
    schedule_reap(slot, 0);
    return c;
}

void ReactorBase::stage_output(Conn& c) {
    if (c.inflight_off < c.inflight_total() || c.pending_total() == 0) return;
    c.inflight.clear();
    c.inflight_off = 0;
    c.inflight.swap(c.pending);
    if (c.has_kept) {
        KeptOutput& k = *c.kept;
        KeptOutput::release(k.inflight);   // all sent
        k.inflight.swap(k.pending);
        k.inflight_len = std::exchange(k.pending_len, 0);
    }
    // Keep a big burst's memory from lingering on a busy connection (an idle
    // one gives all of it back: release_drained_output).
    if (c.pending.capacity() > kKeptOutputCapacity) std::vector<uint8_t>().swap(c.pending);
}

void ReactorBase::inflight_sent(uint32_t slot, Conn& c) {
    c.inflight.clear();
    c.inflight_off = 0;
    if (c.inflight.capacity() > kKeptOutputCapacity) std::vector<uint8_t>().swap(c.inflight);
    if (c.has_kept) {
        KeptOutput::release(c.kept->inflight);
        c.kept->inflight_len = 0;
    }
    if (c.pending_total() == 0) note_drained(slot);
}

void ReactorBase::note_drained(uint32_t slot) {
    Conn& c = conns_.at(slot);
    if (c.state != ConnState::Open || !c.holds_output_memory()) return;
    c.out_used = false;
    if (c.on_drained_list) return;
    c.on_drained_list = true;
    drained_.push_back(slot);
}

void ReactorBase::release_drained_output() {
    // While intake is stopped, and in the pass it resumes, a drained
    // receiver is only waiting for the input it is fed by: its buffers are
    // kept (and judged again later), not freed and regrown every cycle.
    if (intake_paused_ || release_deferred_) {
        release_deferred_ = intake_paused_;
        return;
    }
    for (uint32_t slot : drained_) {
        Conn& c = conns_.at(slot);  // may since be closed, or reused: checked below
        c.on_drained_list = false;
        if (c.state != ConnState::Open || c.out_used || c.send_busy || c.queued() != 0) continue;
        release_output(c);
    }
    drained_.clear();
}

void ReactorBase::release_output(Conn& c) {
    keep_spare_output(c.pending);
    keep_spare_output(c.inflight);
    c.kept.reset();
    c.has_kept = false;
    c.inflight_off = 0;
    c.out_used = false;
}

void ReactorBase::take_spare_output(std::vector<uint8_t>& into) {
    if (spare_outputs_.empty()) return;
    into.swap(spare_outputs_.back());
    spare_outputs_.pop_back();
}

void ReactorBase::keep_spare_output(std::vector<uint8_t>& buf) {
    if (buf.capacity() == 0) return;
    // Only a few, and only small ones: the pool is a fixed cost, never a
    // per-connection one.
    if (spare_outputs_.size() >= kSpareOutputs || buf.capacity() > kSpareOutputBytes) {
        std::vector<uint8_t>().swap(buf);
        return;
    }
    buf.clear();
    spare_outputs_.emplace_back().swap(buf);
}

void ReactorBase::set_reading(ConnId id, bool on) {
    Conn* c = conns_.find(id);
    if (!c || c->state != ConnState::Open || c->recv_paused == !on || c->peer_eof) return;
    c->recv_paused = !on;
    reading_changed(ConnTable::slot_of(id));
}

void ReactorBase::set_intake(bool on) {
    if (intake_paused_ == !on) return;
    intake_paused_ = !on;
    if (on) {
        release_deferred_ = true;
        intake_resumed();
    }
}

void ReactorBase::expect_in_place(ConnId id) {
    if (Conn* c = conns_.find(id); c && c->state == ConnState::Open) c->in_place_hint = true;
}

void ReactorBase::start_lingering(Handler& h, uint32_t slot) {
    Conn& c = conns_.at(slot);
    // Our FIN follows the output already sent; the peer may still be sending.
    // Not after the peer's EOF: both sides shut is a hang-up (epoll reports
    // it and the connection would be reaped at once), and the wait is for
    // the kernel's output to leave, reset at the deadline if it did not.
    if (!c.peer_eof) shutdown(c.fd, SHUT_WR);
    c.state = ConnState::Lingering;
    c.handler_closed = true;
    c.recv_paused = c.peer_eof;   // nothing more comes after the peer's EOF
    if (!c.send_busy) release_output(c);   // nothing more is sent
    ++lingering_live_;
    const uint64_t now = monotonic_ms();
    lingering_.push_back({slot, c.gen, now + kLingerMs});
    if (c.peer_eof) lingering_after_eof_.push_back({slot, c.gen, 0});   // its deadline is lingering_'s
    reading_changed(slot);
    const ConnId id = conns_.id_of(slot);
    expire_lingering(now, true);   // over max_lingering_: the oldest goes now
    h.on_close(id, 0);
}

void ReactorBase::expire_lingering(uint64_t now, bool over_limit_only) {
    while (!lingering_.empty()) {
        const LingerEntry e = lingering_.front();
        const Conn& c = conns_.at(e.slot);
        if (c.gen != e.gen || c.state != ConnState::Lingering) {   // closed since
            lingering_.pop_front();
            continue;
        }
        if (lingering_live_ <= max_lingering_ && (over_limit_only || now < e.deadline_ms)) break;
        lingering_.pop_front();
        // Output the peer has not taken would stay with the kernel after close
        // (see the flush timeout in run_tick_if_due). Cut short by the limit
        // (a flood of closes), even young bytes in flight are given up.
        if (unsent_in_kernel(c.fd)) reset_on_close(c.fd);
        schedule_reap(e.slot, 0);
    }
}

uint64_t ReactorBase::ms_until_tick() const {
    uint64_t now = monotonic_ms();
    return next_tick_ms_ > now ? next_tick_ms_ - now : 0;
}

uint64_t ReactorBase::us_until_wake() {
    const uint64_t now = monotonic_us();
    uint64_t wait = ms_until_tick() * 1000;
    if (wake_at_us_ == 0) return wait;
    if (wake_at_us_ <= now) {
        wake_at_us_ = 0;
        return 0;
    }
    return std::min(wait, wake_at_us_ - now);
}

bool ReactorBase::run_tick_if_due(Handler& h) {
    uint64_t now = monotonic_ms();
    if (now < next_tick_ms_) return false;
    // Skip missed ticks instead of firing a burst after a long stall.
    next_tick_ms_ = now + tick_interval_ms_;
    std::erase_if(draining_, [&](const LingerEntry& e) {
        Conn& c = conns_.at(e.slot);
        if (c.gen != e.gen || c.state != ConnState::Draining) return true;   // closed since
        const bool flushed = !c.holds_output_memory();
        if (!flushed && now < e.deadline_ms) return false;
        if (!flushed) {
            c.linger = false;   // the peer does not read: nothing to wait for
            // Bytes it never took would stay with the kernel for minutes
            // after a plain close (an orphan probing a zero window) while the
            // peer never learns it was dropped: a reset frees both at once.
            if (!c.output_empty() || unsent_in_kernel(c.fd)) reset_on_close(c.fd);
        }
        schedule_reap(e.slot, 0);
        return true;
    });
    std::erase_if(peer_eof_, [&](const LingerEntry& e) {
        const Conn& c = conns_.at(e.slot);
        if (c.gen != e.gen || c.state != ConnState::Open) return true;   // closed since
        if (now < e.deadline_ms) return false;
        schedule_reap(e.slot, 0);
        return true;
    });
    // Lingering after the peer's EOF waits for the kernel's output to
    // leave (no FIN of the peer's to wait for): closed once it has, so a
    // peer that reads gets our EOF within a tick, not at the deadline.
    std::erase_if(lingering_after_eof_, [&](const LingerEntry& e) {
        const Conn& c = conns_.at(e.slot);
        if (c.gen != e.gen || c.state != ConnState::Lingering) return true;   // closed since
        if (unsent_in_kernel(c.fd)) return false;   // the deadline's reset is expire_lingering's
        schedule_reap(e.slot, 0);
        return true;
    });
    expire_lingering(now, false);
    h.on_tick(now);
    return true;
}

}  // namespace hato::net
