#include "app/modbus_io.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bridge/backoff.hpp"
#include "modbus/schedule.hpp"

namespace hato::app {

namespace {

constexpr size_t kNone = ~size_t(0);

uint64_t mono_us() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

uint64_t wall_ms() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

speed_t speed_of(uint32_t baud) {
    switch (baud) {
    case 1200: return B1200;
    case 2400: return B2400;
    case 4800: return B4800;
    case 9600: return B9600;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    default: return B19200;
    }
}

// Opens and sets up the serial port: raw bytes, the configured rate,
// parity, data and stop bits, no flow control, non-blocking reads.
int open_serial(const config::ModbusDevice& c, std::string& why) {
    int fd = ::open(c.serial.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        why = "open " + c.serial + ": " + std::strerror(errno);
        return -1;
    }
    termios t{};
    if (tcgetattr(fd, &t) != 0) {
        why = "tcgetattr " + c.serial + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    cfmakeraw(&t);
    t.c_cflag &= ~tcflag_t(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= CLOCAL | CREAD | (c.data_bits == 7 ? CS7 : CS8);
    if (c.parity != 'N') t.c_cflag |= PARENB | (c.parity == 'O' ? PARODD : 0);
    if (c.stop_bits == 2) t.c_cflag |= CSTOPB;
    t.c_iflag &= ~tcflag_t(IXON | IXOFF | IXANY);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    cfsetispeed(&t, speed_of(c.baud));
    cfsetospeed(&t, speed_of(c.baud));
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        why = "tcsetattr " + c.serial + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    tcflush(fd, TCIOFLUSH);
    return fd;
}

// Starts a non-blocking connect. `done`: connected at once.
int open_tcp(const config::ModbusDevice& c, bool& done, std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(c.port);
    if (int rc = getaddrinfo(c.host.c_str(), service.c_str(), &hints, &res); rc != 0) {
        why = "cannot resolve " + c.host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = std::string("socket: ") + std::strerror(errno);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            done = true;
            break;
        }
        if (errno == EINPROGRESS) {
            done = false;
            break;
        }
        why = "connect to " + c.host + ":" + service + ": " + std::strerror(errno);
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

}  // namespace

// A serial port and the RTU devices on it. One request is on the wire at a
// time, whoever sends it: the answers of two units would collide, and two
// readers of one port would steal each other's bytes.
struct ModbusIo::Line {
    std::string path;
    int fd = -1;
    Device* holder = nullptr;      // the device whose request is on the wire
    uint64_t quiet_until_us = 0;   // silence after the last frame (3.5 characters)
};

struct ModbusIo::Device {
    Device(const config::ModbusDevice& c, std::vector<modbus::Request> r, size_t i, uint64_t seed, Line* l)
        : cfg(c), reads(std::move(r)), index(i), tcp(c.transport == "tcp"), line(l),
          backoff(std::min<uint64_t>({1000, c.poll_interval_ms, c.reconnect_max_ms}), c.reconnect_max_ms, seed) {
        interval_us = uint64_t(c.poll_interval_ms) * 1000;
        timeout_us = uint64_t(c.timeout_ms) * 1000;
        // RTU frames are separated by 3.5 character times of silence
        // (11 bits a character; 1.75 ms above 19200 baud).
        quiet_us = c.baud > 19200 ? 1750 : (3500 * 11 * 1000 + c.baud - 1) / c.baud;
    }

    const config::ModbusDevice& cfg;
    std::vector<modbus::Request> reads;
    size_t index;
    bool tcp;
    Line* line;                     // rtu: its port (the fd below stays -1)
    bridge::Backoff backoff;
    ModbusDeviceStats stats;
    uint64_t interval_us = 0, timeout_us = 0, quiet_us = 0;

    enum class State : uint8_t { Down, Connecting, Ready } state = State::Down;
    int fd = -1;
    uint64_t next_connect_us = 0;
    uint64_t deadline_us = 0;       // connect or answer due
    uint64_t base_us = 0;           // the poll schedule: base + k * interval
    uint64_t next_poll_us = 0;
    size_t cycle_next = kNone;      // the running poll's next read
    bool cycle_failed = false;

    enum class What : uint8_t { Poll, Write, Readback } what = What::Poll;
    bool busy = false;
    modbus::Request cur;
    size_t cur_read = kNone;
    uint64_t cur_token = 0;
    uint16_t transaction = 0;
    uint64_t sent_us = 0;
    std::vector<uint8_t> tx;
    size_t tx_off = 0;
    std::vector<uint8_t> rx;
    modbus::Response resp;
    // Why the last frame heard while waiting was not this answer (a late
    // answer, another unit's, line noise): kept for the timeout's report.
    std::string discarded;

    std::deque<WriteJob> writes;
    size_t writes_in_row = 0;       // since the last poll read: polls are not starved
    std::deque<size_t> readbacks;   // reads to do again after successful writes, each once
    bool poll_on_connect = true;    // first connect, or after a fault
};

ModbusIo::ModbusIo(std::vector<DeviceSpec> devices) {
    uint64_t seed = uint64_t(getpid()) * 0x9E3779B97F4A7C15ull ^ mono_us();
    for (size_t i = 0; i < devices.size(); ++i) {
        const config::ModbusDevice& c = *devices[i].cfg;
        Line* line = nullptr;
        if (c.transport != "tcp") {
            for (auto& l : lines_)
                if (l->path == c.serial) line = l.get();
            if (!line) {
                lines_.push_back(std::make_unique<Line>());
                line = lines_.back().get();
                line->path = c.serial;
            }
        }
        devices_.push_back(std::make_unique<Device>(c, std::move(devices[i].reads), i, seed++, line));
    }
}

ModbusIo::~ModbusIo() {
    stopping_ = true;
    if (thread_.joinable()) {
        uint64_t one = 1;
        ssize_t n = ::write(wake_fd_, &one, sizeof one);
        (void)n;
        thread_.join();
    }
    for (auto& d : devices_)
        if (d->fd >= 0) ::close(d->fd);
    for (auto& l : lines_)
        if (l->fd >= 0) ::close(l->fd);
    if (event_fd_ >= 0) ::close(event_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool ModbusIo::start(std::string& err) {
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0 || wake_fd_ < 0) {
        err = std::string("modbus: eventfd: ") + std::strerror(errno);
        return false;
    }
    thread_ = std::thread([this] { run(); });
    return true;
}

void ModbusIo::write(size_t device, modbus::Request req, size_t readback, uint64_t token) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        writes_.push_back({device, std::move(req), readback, token});
    }
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
}

void ModbusIo::drain(std::vector<ModbusEvent>& out) {
    uint64_t count;
    while (::read(event_fd_, &count, sizeof count) == ssize_t(sizeof count)) {
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (out.empty()) out.swap(events_);
    else {
        for (auto& e : events_) out.push_back(std::move(e));
        events_.clear();
    }
}

const ModbusDeviceStats& ModbusIo::stats(size_t device) const { return devices_[device]->stats; }

void ModbusIo::post(ModbusEvent ev) {
    if (ev.ts_ms == 0) ev.ts_ms = wall_ms();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        events_.push_back(std::move(ev));
    }
    uint64_t one = 1;
    ssize_t n = ::write(event_fd_, &one, sizeof one);
    (void)n;
}

namespace {

// The loop's work on one device; all of it runs on the I/O thread.
class Driver {
public:
    Driver(ModbusIo::Device& d, std::function<void(ModbusEvent)> post) : d_(d), post_(std::move(post)) {}

    // `link_broken`: the socket or port itself failed (else a unit on a
    // shared line was silent or answered wrong, and the line stays open).
    void fail(const std::string& why, uint64_t now, bool link_broken = true);
    void connected(uint64_t now);
    void reopen_quietly(uint64_t now);
    void open(uint64_t now);
    void service(uint64_t now, uint64_t& wake);
    void on_ready(short revents, uint64_t now);
    void refuse_writes(const std::string& why);

private:
    void send(ModbusIo::Device::What what, const modbus::Request& req, uint64_t now);
    void complete(uint64_t now);
    bool flush_tx(uint64_t now);
    int fd() const { return d_.line ? d_.line->fd : d_.fd; }
    void release_line(uint64_t now);

    ModbusIo::Device& d_;
    std::function<void(ModbusEvent)> post_;
};

}  // namespace

void ModbusIo::run() {
    std::vector<pollfd> pfds;
    struct Owner {
        Device* device = nullptr;   // a tcp device
        Line* line = nullptr;       // else a serial line: its holder's
    };
    std::vector<Owner> owners;
    std::vector<Driver> drivers;
    size_t first = 0;   // the devices are served in turn from here: one line, no favourite
    for (auto& d : devices_) drivers.emplace_back(*d, [this](ModbusEvent e) { post(std::move(e)); });
    const uint64_t start = mono_us();
    for (auto& d : devices_) {
        d->base_us = start;
        d->next_poll_us = start;
    }
    while (!stopping_.load(std::memory_order_acquire)) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (WriteJob& w : writes_) {
                if (w.device < devices_.size()) devices_[w.device]->writes.push_back(std::move(w));
            }
            writes_.clear();
        }
        uint64_t now = mono_us();
        uint64_t wake = now + 1000000;
        for (size_t k = 0; k < drivers.size(); ++k) drivers[(first + k) % drivers.size()].service(now, wake);
        if (!drivers.empty()) first = (first + 1) % drivers.size();
        // A request sent just now has its deadline too: without it the wait
        // below ran up to a second, and a unit answering after timeout_ms but
        // within it was never timed out (and held its RS-485 line meanwhile).
        for (const auto& d : devices_)
            if (d->busy || d->state == Device::State::Connecting) wake = std::min(wake, d->deadline_us);
        pfds.clear();
        owners.clear();
        pfds.push_back({wake_fd_, POLLIN, 0});
        owners.push_back({});
        for (auto& d : devices_) {
            if (d->line || d->fd < 0) continue;
            short ev = POLLIN;
            if (d->state == Device::State::Connecting || d->tx_off < d->tx.size()) ev |= POLLOUT;
            pfds.push_back({d->fd, ev, 0});
            owners.push_back({d.get(), nullptr});
        }
        for (auto& l : lines_) {
            if (l->fd < 0) continue;
            short ev = POLLIN;
            if (l->holder && l->holder->tx_off < l->holder->tx.size()) ev |= POLLOUT;
            pfds.push_back({l->fd, ev, 0});
            owners.push_back({nullptr, l.get()});
        }
        now = mono_us();
        const int timeout = wake > now ? int(std::min<uint64_t>((wake - now + 999) / 1000, 1000)) : 0;
        if (::poll(pfds.data(), pfds.size(), timeout) < 0 && errno != EINTR) break;
        if (pfds[0].revents & POLLIN) {
            uint64_t count;
            while (::read(wake_fd_, &count, sizeof count) == ssize_t(sizeof count)) {
            }
        }
        now = mono_us();
        for (size_t i = 1; i < pfds.size(); ++i) {
            if (!pfds[i].revents) continue;
            if (owners[i].device) {
                drivers[owners[i].device->index].on_ready(pfds[i].revents, now);
            } else if (Line* l = owners[i].line; l->holder) {
                drivers[l->holder->index].on_ready(pfds[i].revents, now);
            } else {
                // Nothing asked on the line: noise, or the port went away
                // (closed here; its devices notice at their next turn).
                uint8_t noise[256];
                ssize_t n;
                while ((n = ::read(l->fd, noise, sizeof noise)) > 0) {
                }
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || (pfds[i].revents & (POLLHUP | POLLERR))) {
                    ::close(l->fd);
                    l->fd = -1;
                }
            }
        }
    }
}

void Driver::refuse_writes(const std::string& why) {
    while (!d_.writes.empty()) {
        ModbusEvent e;
        e.device = d_.index;
        e.type = ModbusEvent::Type::WriteDone;
        e.token = d_.writes.front().token;
        e.error = why;
        post_(std::move(e));
        d_.writes.pop_front();
    }
}

void Driver::release_line(uint64_t now) {
    if (!d_.line || d_.line->holder != &d_) return;
    d_.line->holder = nullptr;
    d_.line->quiet_until_us = now + d_.quiet_us;
}

void Driver::fail(const std::string& why, uint64_t now, bool link_broken) {
    ++d_.stats.errors;
    if (d_.busy && d_.what == ModbusIo::Device::What::Write) {
        ModbusEvent e;
        e.device = d_.index;
        e.type = ModbusEvent::Type::WriteDone;
        e.token = d_.cur_token;
        e.error = why;
        post_(std::move(e));
    }
    refuse_writes("device offline: " + why);
    release_line(now);
    if (d_.fd >= 0) ::close(d_.fd);
    d_.fd = -1;
    if (d_.line && link_broken && d_.line->fd >= 0) {
        // The other devices on it find it closed at their next turn.
        ::close(d_.line->fd);
        d_.line->fd = -1;
    }
    d_.state = ModbusIo::Device::State::Down;
    d_.busy = false;
    d_.cycle_next = kNone;
    d_.readbacks.clear();
    d_.tx.clear();
    d_.tx_off = 0;
    d_.rx.clear();
    d_.next_connect_us = now + d_.backoff.next_delay_ms() * 1000;
    d_.poll_on_connect = true;
    ModbusEvent e;
    e.device = d_.index;
    e.type = ModbusEvent::Type::Fault;
    e.error = why;
    post_(std::move(e));
}

void Driver::connected(uint64_t now) {
    d_.state = ModbusIo::Device::State::Ready;
    if (!d_.poll_on_connect) return;   // an idle connection the device closed: same schedule
    // A device connected after a fault is polled at once, and the schedule
    // starts afresh from there: the time spent down is no overrun.
    d_.poll_on_connect = false;
    d_.base_us = now;
    d_.next_poll_us = now;
}

void Driver::reopen_quietly(uint64_t now) {
    ::close(d_.fd);
    d_.fd = -1;
    d_.state = ModbusIo::Device::State::Down;
    d_.rx.clear();
    d_.next_connect_us = now + 100000;   // a device that closes every connection at once is not spun on
}

void Driver::open(uint64_t now) {
    std::string why;
    if (d_.tcp) {
        bool done = false;
        d_.fd = open_tcp(d_.cfg, done, why);
        if (d_.fd < 0) return fail(why, now);
        if (done) return connected(now);
        d_.state = ModbusIo::Device::State::Connecting;
        d_.deadline_us = now + std::max<uint64_t>(d_.timeout_us, 1000000);
        return;
    }
    if (d_.line->fd < 0) {
        d_.line->fd = open_serial(d_.cfg, why);
        if (d_.line->fd < 0) return fail(why, now);
    }
    connected(now);
}

void Driver::service(uint64_t now, uint64_t& wake) {
    using State = ModbusIo::Device::State;
    using What = ModbusIo::Device::What;
    switch (d_.state) {
    case State::Down:
        // Reconnecting after the device closed an idle connection is not
        // being offline: writes wait for it (a failed connect refuses them).
        if (d_.poll_on_connect) refuse_writes("device offline");
        if (now >= d_.next_connect_us) open(now);
        else wake = std::min(wake, d_.next_connect_us);
        if (d_.state != State::Ready) {
            if (d_.state == State::Down) wake = std::min(wake, d_.next_connect_us);
            else wake = std::min(wake, d_.deadline_us);
            return;
        }
        break;
    case State::Connecting:
        if (now >= d_.deadline_us) return fail("connect to " + d_.cfg.host + ": timed out", now);
        wake = std::min(wake, d_.deadline_us);
        return;
    case State::Ready:
        if (d_.line && d_.line->fd < 0) return fail(d_.line->path + ": the line was closed", now, false);
        break;
    }
    if (d_.busy) {
        if (now >= d_.deadline_us) {
            const std::string heard = d_.discarded.empty() ? "" : " (heard instead: " + d_.discarded + ")";
            fail("no answer within " + std::to_string(d_.cfg.timeout_ms) + " ms" + heard, now, !d_.line);
            // Its answer may still come: the line stays silent as long again,
            // so it lands in nobody's wait instead of the next unit's.
            if (d_.line) {
                d_.line->quiet_until_us = std::max(d_.line->quiet_until_us, now + d_.timeout_us);
                wake = std::min(wake, d_.line->quiet_until_us);   // the other units' turn
            }
            wake = std::min(wake, d_.next_connect_us);
            return;
        }
        wake = std::min(wake, d_.deadline_us);
        return;
    }
    if (d_.line) {
        // Another unit's request is on the line: its answer (or timeout)
        // ends the loop's wait, and every device is served again.
        if (d_.line->holder) return;
        if (now < d_.line->quiet_until_us) {
            wake = std::min(wake, d_.line->quiet_until_us);
            return;
        }
    }
    modbus::DeviceTurn turn;
    turn.write_queued = !d_.writes.empty();
    turn.readback_due = !d_.readbacks.empty();
    turn.poll_due = d_.cycle_next != kNone || now >= d_.next_poll_us;
    turn.writes_in_row = d_.writes_in_row;
    switch (modbus::next_request(turn)) {
    case modbus::NextRequest::Write: {
        ++d_.writes_in_row;
        d_.cur_token = d_.writes.front().token;
        d_.cur_read = d_.writes.front().readback;
        modbus::Request req = std::move(d_.writes.front().req);
        d_.writes.pop_front();
        return send(What::Write, req, now);
    }
    case modbus::NextRequest::Readback:
        d_.cur_read = d_.readbacks.front();
        d_.readbacks.pop_front();
        return send(What::Readback, d_.reads[d_.cur_read], now);
    case modbus::NextRequest::Wait:
        wake = std::min(wake, d_.next_poll_us);
        return;
    case modbus::NextRequest::Poll: break;
    }
    d_.writes_in_row = 0;
    if (d_.cycle_next == kNone) {
        ++d_.stats.polls;
        d_.cycle_next = 0;
        d_.cycle_failed = false;
        // Slots that passed while the previous poll still ran are skipped.
        d_.next_poll_us += d_.interval_us;
        while (d_.next_poll_us <= now) {
            d_.next_poll_us += d_.interval_us;
            ++d_.stats.skipped;
        }
    }
    d_.cur_read = d_.cycle_next;
    send(What::Poll, d_.reads[d_.cycle_next], now);
}

void Driver::send(ModbusIo::Device::What what, const modbus::Request& req, uint64_t now) {
    d_.what = what;
    d_.cur = req;
    d_.tx.clear();
    d_.tx_off = 0;
    d_.rx.clear();
    d_.discarded.clear();
    if (d_.tcp) {
        modbus::encode_tcp(req, ++d_.transaction, d_.cfg.unit_id, d_.tx);
    } else {
        tcflush(fd(), TCIFLUSH);   // a late answer to an earlier request
        modbus::encode_rtu(req, d_.cfg.unit_id, d_.tx);
        d_.line->holder = &d_;
    }
    d_.busy = true;
    d_.sent_us = now;
    d_.deadline_us = now + d_.timeout_us;
    flush_tx(now);
}

bool Driver::flush_tx(uint64_t now) {
    while (d_.tx_off < d_.tx.size()) {
        ssize_t n = ::write(fd(), d_.tx.data() + d_.tx_off, d_.tx.size() - d_.tx_off);
        if (n > 0) {
            d_.tx_off += size_t(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        fail(std::string("send: ") + std::strerror(errno), now);
        return false;
    }
    return true;
}

void Driver::on_ready(short revents, uint64_t now) {
    using State = ModbusIo::Device::State;
    if (d_.state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(d_.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
            return fail("connect to " + d_.cfg.host + ":" + std::to_string(d_.cfg.port) + ": " + std::strerror(err),
                        now);
        if (revents & POLLOUT) connected(now);
        return;
    }
    if (d_.state != State::Ready) return;
    if ((revents & POLLOUT) && !flush_tx(now)) return;
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = ::read(fd(), buf, sizeof buf);
        if (n > 0) {
            d_.rx.insert(d_.rx.end(), buf, buf + n);
            if (size_t(n) < sizeof buf) break;
            continue;
        }
        if (n == 0) {
            // Many devices close a connection idle for a while: not a
            // fault unless an answer was due.
            if (d_.tcp && !d_.busy) return reopen_quietly(now);
            if (d_.tcp) return fail("the device closed the connection", now);
            break;
        }
        if (errno == EAGAIN || errno == EINTR) break;
        return fail(std::string("read: ") + std::strerror(errno), now);
    }
    if (!d_.busy) {
        d_.rx.clear();   // nothing asked: noise on the line
        return;
    }
    for (;;) {
        modbus::Decoded r = d_.tcp ? modbus::decode_tcp(d_.rx, d_.cur, d_.transaction, d_.cfg.unit_id, d_.resp)
                                   : modbus::decode_rtu(d_.rx, d_.cur, d_.cfg.unit_id, d_.resp);
        if (r.status == modbus::Status::Incomplete) return;
        if (r.status == modbus::Status::Skipped) {
            // Kept for the timeout's report: a device answering with the wrong
            // transaction or unit is not silent.
            d_.discarded = r.error;
            d_.rx.erase(d_.rx.begin(), d_.rx.begin() + ptrdiff_t(r.used));
            continue;
        }
        if (r.status == modbus::Status::Error) {
            if (!d_.line) return fail("bad answer: " + r.error, now, true);
            // On a shared line a frame that is not this unit's answer (another
            // unit's late one, or noise) says nothing about this unit: it is
            // dropped a byte at a time, and the answer may follow (or be
            // behind it already) within the timeout.
            d_.discarded = r.error;
            d_.rx.erase(d_.rx.begin());
            continue;
        }
        d_.rx.erase(d_.rx.begin(), d_.rx.begin() + ptrdiff_t(r.used));
        return complete(now);
    }
}

void Driver::complete(uint64_t now) {
    using What = ModbusIo::Device::What;
    d_.busy = false;
    const uint64_t lat = now - d_.sent_us;
    ++d_.stats.requests;
    d_.stats.latency_us_sum += lat;
    if (lat > d_.stats.latency_us_max) d_.stats.latency_us_max = lat;
    release_line(now);
    d_.backoff.reset();
    const bool exception = d_.resp.exception != 0;
    if (exception) ++d_.stats.errors;
    ModbusEvent e;
    e.device = d_.index;
    e.read = d_.cur_read;
    switch (d_.what) {
    case What::Poll:
        if (exception) {
            e.type = ModbusEvent::Type::Fault;
            e.error = modbus::exception_text(d_.resp.exception);
            d_.cycle_failed = true;
        } else {
            e.type = ModbusEvent::Type::Values;
            e.registers.swap(d_.resp.registers);
            e.bits.swap(d_.resp.bits);
        }
        post_(std::move(e));
        if (++d_.cycle_next >= d_.reads.size()) {
            d_.cycle_next = kNone;
            if (!d_.cycle_failed) {
                ModbusEvent ok;
                ok.device = d_.index;
                ok.type = ModbusEvent::Type::Online;
                post_(std::move(ok));
            }
        }
        return;
    case What::Write:
        e.type = ModbusEvent::Type::WriteDone;
        e.token = d_.cur_token;
        if (exception) e.error = modbus::exception_text(d_.resp.exception);
        else if (std::find(d_.readbacks.begin(), d_.readbacks.end(), d_.cur_read) == d_.readbacks.end())
            d_.readbacks.push_back(d_.cur_read);   // a second write's must not cancel the first's
        post_(std::move(e));
        return;
    case What::Readback:
        if (exception) return;
        e.type = ModbusEvent::Type::Values;
        e.readback = true;
        e.registers.swap(d_.resp.registers);
        e.bits.swap(d_.resp.bits);
        post_(std::move(e));
        return;
    }
}

}  // namespace hato::app
