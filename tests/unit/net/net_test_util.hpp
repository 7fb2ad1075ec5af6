// Test helpers for the reactor: a configurable handler, a harness that runs
// the reactor on its own thread, and blocking-socket client functions.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "net/reactor.hpp"

namespace nettest {

using hato::net::Backend;
using hato::net::ConnId;
using hato::net::Reactor;

// Backends to run every test on: epoll always, io_uring when this kernel has it.
inline const std::vector<Backend>& backends() {
    static std::vector<Backend> list = [] {
        std::vector<Backend> v{Backend::Epoll};
        std::string note;
        if (Reactor::create(Backend::IoUring, note))
            v.push_back(Backend::IoUring);
        else
            MESSAGE("io_uring backend skipped: " << note);
        return v;
    }();
    return list;
}

inline const char* backend_name(Backend b) { return b == Backend::IoUring ? "io_uring" : "epoll"; }

// Echoes by default; hooks let a test change what happens on each event.
// State is read by the test thread, so it sits behind a mutex.
struct TestHandler : hato::net::Handler {
    Reactor* reactor = nullptr;
    std::mutex mu;
    std::vector<ConnId> opened;
    std::vector<std::string> peers;
    std::map<ConnId, int> close_calls;  // id -> number of on_close calls
    std::map<ConnId, int> close_error;
    std::atomic<int> ticks{0};
    std::atomic<int> passes{0};
    std::atomic<int> accept_pauses{0};
    std::atomic<int> accept_pause_error{0};
    std::function<void(ConnId, std::span<const uint8_t>)> data_hook;  // replaces echo
    std::function<void(ConnId)> close_hook;
    std::function<bool(ConnId)> peer_eof_hook;   // on_peer_eof's answer (default false)
    std::function<void()> tick_hook;
    // Receiving in place (Handler::receive_target), when set.
    std::function<bool(ConnId)> wants_in_place_hook;
    std::function<std::span<uint8_t>(ConnId, size_t)> target_hook;
    std::function<void(ConnId, size_t)> in_place_hook;
    bool wants_in_place(ConnId id) override { return wants_in_place_hook && wants_in_place_hook(id); }
    std::span<uint8_t> receive_target(ConnId id, size_t limit) override {
        return target_hook ? target_hook(id, limit) : std::span<uint8_t>{};
    }
    void on_received_in_place(ConnId id, size_t n) override {
        if (in_place_hook) in_place_hook(id, n);
    }

    void on_open(ConnId id, int, const std::string& peer) override {
        std::lock_guard lock(mu);
        opened.push_back(id);
        peers.push_back(peer);
    }
    void on_data(ConnId id, std::span<const uint8_t> data) override {
        if (data_hook)
            data_hook(id, data);
        else
            reactor->send(id, data);
    }
    bool on_peer_eof(ConnId id) override { return peer_eof_hook && peer_eof_hook(id); }
    void on_accept_paused(int, int error) override {
        ++accept_pauses;
        accept_pause_error = error;
    }
    void on_close(ConnId id, int error) override {
        {
            std::lock_guard lock(mu);
            close_calls[id]++;
            close_error[id] = error;
        }
        if (close_hook) close_hook(id);
    }
    void on_tick(uint64_t) override {
        ++ticks;
        if (tick_hook) tick_hook();
    }
    void on_pass_end() override { ++passes; }

    size_t open_count() {
        std::lock_guard lock(mu);
        return opened.size();
    }
    size_t closed_count() {
        std::lock_guard lock(mu);
        return close_calls.size();
    }
};

// Polls `pred` for up to `ms`.
inline bool wait_until(const std::function<bool()>& pred, int ms = 5000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
}

struct Harness {
    std::unique_ptr<Reactor> reactor;
    TestHandler handler;
    std::thread thread;
    uint16_t port = 0;

    explicit Harness(Backend b, const std::string& address = "127.0.0.1") {
        std::string note, err;
        reactor = Reactor::create(b, note);
        REQUIRE(reactor);
        REQUIRE(std::string(reactor->name()) == backend_name(b));
        REQUIRE_MESSAGE(reactor->listen(address, 0, err), err);
        port = reactor->bound_port(0);
        REQUIRE(port != 0);
        handler.reactor = reactor.get();
    }
    void start() {
        thread = std::thread([this] { reactor->run(handler); });
    }
    void stop() {
        if (!thread.joinable()) return;
        reactor->stop();
        thread.join();
    }
    ~Harness() { stop(); }
};

// ---- blocking client side ----
//
// The receive calls retry EINTR. With SO_RCVTIMEO set, recv() is not
// restarted after an interruption, and this thread does get interrupted:
// cases that call Reactor::run() on the test thread tie it to that io_uring
// ring, and the kernel's teardown of the ring, some milliseconds after the
// reactor is destroyed, interrupts the blocking call this thread is in then,
// possibly in a later case (so do SIGSTOP/SIGCONT and a debugger attaching).
// connect() and send() (no SO_SNDTIMEO) are restarted by the kernel;
// send_all() checks anyway.

inline int connect_to(uint16_t port, const char* ip = "127.0.0.1") {
    bool v6 = std::string(ip).find(':') != std::string::npos;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    timeval tv{10, 0};  // no test may hang forever on a lost reply
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc;
    if (v6) {
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &a.sin6_addr);
        rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        inet_pton(AF_INET, ip, &a.sin_addr);
        rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    REQUIRE(rc == 0);
    return fd;
}

inline bool send_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

inline bool send_all(int fd, const std::string& s) {
    return send_all(fd, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Reads exactly n bytes (fewer on EOF/error/timeout).
inline std::vector<uint8_t> recv_exact(int fd, size_t n) {
    std::vector<uint8_t> out(n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += size_t(r);
    }
    out.resize(got);
    return out;
}

// Reads until EOF; `clean_eof` tells whether it ended with EOF (not error/timeout).
inline std::vector<uint8_t> recv_until_eof(int fd, bool& clean_eof) {
    std::vector<uint8_t> out;
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            out.insert(out.end(), buf, buf + r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        clean_eof = r == 0;
        return out;
    }
}

inline std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1103515245u + 12345u;
        b = uint8_t(x >> 16);
    }
    return v;
}

}  // namespace nettest
