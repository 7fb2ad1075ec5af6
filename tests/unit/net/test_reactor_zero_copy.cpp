// The reactor's two ways around a copy, on every backend: output sent from
// memory the layer above keeps (send_kept), and the rest of a large input
// packet received straight into the layer above's memory (receive_target).
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>

#include "net_test_util.hpp"

using namespace nettest;

namespace {

void count_release(void* counter) { static_cast<std::atomic<int>*>(counter)->fetch_add(1); }

Reactor::Kept kept(const std::vector<uint8_t>& bytes, std::atomic<int>& released) {
    return {bytes, &released, &count_release};
}

std::vector<uint8_t> concat(std::initializer_list<const std::vector<uint8_t>*> parts) {
    std::vector<uint8_t> all;
    for (const auto* p : parts) all.insert(all.end(), p->begin(), p->end());
    return all;
}

}  // namespace

TEST_CASE("kept output leaves in order with copied output and is released once, after it was sent") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        const auto a = pattern(100, 1), big = pattern(8 * 1024 * 1024, 2), c = pattern(300, 3),
                   mid = pattern(1024 * 1024, 4), e = pattern(7, 5);
        std::atomic<int> big_released{0}, mid_released{0};
        std::atomic<size_t> queued_seen{0};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) {
            hs.reactor->send(id, a);
            hs.reactor->send_kept(id, kept(big, big_released));
            hs.reactor->send(id, c);
            hs.reactor->send_kept(id, kept(mid, mid_released));
            hs.reactor->send_low_priority(id, e);
            queued_seen = hs.reactor->queued_bytes(id);
        };
        hs.start();
        int fd = connect_to(hs.port);
        REQUIRE(send_all(fd, "x"));
        const size_t total = a.size() + big.size() + c.size() + mid.size() + e.size();
        REQUIRE(wait_until([&] { return queued_seen.load() == total; }));
        // Not read yet: 8 MiB cannot all be in the socket buffers, so
        // neither piece may have been let go.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK(big_released.load() == 0);
        CHECK(mid_released.load() == 0);
        const auto got = recv_exact(fd, total);
        CHECK(got == concat({&a, &big, &c, &mid, &e}));
        CHECK(wait_until([&] { return big_released.load() == 1 && mid_released.load() == 1; }));
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
        hs.stop();
        CHECK(big_released.load() == 1);
        CHECK(mid_released.load() == 1);
    }
}

TEST_CASE("more kept pieces than one sendmsg takes, read slowly: in order, each released once") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        // 1500 pieces with copied bytes between them: 3000 iovec entries in
        // one batch, past IOV_MAX, and more than the socket buffers hold, so sends end
        // inside a piece.
        constexpr int kPieces = 1500;
        std::vector<std::vector<uint8_t>> pieces, gaps;
        for (int i = 0; i < kPieces; ++i) {
            pieces.push_back(pattern(16000 + size_t(i % 7) * 13, uint8_t(i)));   // 24 MB in all
            gaps.push_back(pattern(1 + size_t(i % 3), uint8_t(i + 101)));
        }
        std::atomic<int> released{0};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t>) {
            for (int i = 0; i < kPieces; ++i) {
                hs.reactor->send_kept(id, kept(pieces[size_t(i)], released));
                hs.reactor->send(id, gaps[size_t(i)]);
            }
        };
        hs.start();
        int fd = connect_to(hs.port);
        REQUIRE(send_all(fd, "x"));
        std::vector<uint8_t> want;
        for (int i = 0; i < kPieces; ++i) {
            want.insert(want.end(), pieces[size_t(i)].begin(), pieces[size_t(i)].end());
            want.insert(want.end(), gaps[size_t(i)].begin(), gaps[size_t(i)].end());
        }
        std::vector<uint8_t> got;
        while (got.size() < want.size()) {   // slowly at first: the reactor's sends stop part-way
            const auto chunk = recv_exact(fd, std::min<size_t>(got.size() < 200000 ? 7777 : 1 << 20, want.size() - got.size()));
            REQUIRE(!chunk.empty());
            got.insert(got.end(), chunk.begin(), chunk.end());
            if (got.size() < 200000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        CHECK(got == want);
        CHECK(wait_until([&] { return released.load() == kPieces; }));
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
        hs.stop();
        CHECK(released.load() == kPieces);
    }
}

TEST_CASE("kept output that cannot be sent is released: peer gone, hard close, after close") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        const auto big = pattern(16 * 1024 * 1024, 9);
        std::atomic<int> released{0};
        std::atomic<int> calls{0};
        hs.handler.data_hook = [&](ConnId id, std::span<const uint8_t> data) {
            ++calls;
            hs.reactor->send_kept(id, kept(big, released));
            if (data[0] == 'h') {
                hs.reactor->close(id, false);
                hs.reactor->send_kept(id, kept(big, released));   // after close: released at once
            }
        };
        hs.start();
        int peer_gone = connect_to(hs.port);
        REQUIRE(send_all(peer_gone, "p"));
        REQUIRE(wait_until([&] { return calls.load() == 1; }));
        ::close(peer_gone);   // never read: the kept bytes cannot leave
        CHECK(wait_until([&] { return released.load() == 1; }));
        int hard = connect_to(hs.port);
        REQUIRE(send_all(hard, "h"));
        CHECK(wait_until([&] { return released.load() == 3; }));
        ::close(hard);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 2; }));
        hs.stop();
        CHECK(released.load() == 3);
    }
}

namespace {

// A framing of 4-byte big-endian lengths, reassembled the way the broker
// does it: the rest of a large frame in place.
struct Frames {
    std::mutex mu;
    std::vector<std::vector<uint8_t>> done;
    std::atomic<size_t> in_place{0};
    uint8_t head[4]{};
    size_t head_have = 0;
    std::vector<uint8_t> cur;
    size_t want = 0, before_target = 0;

    void finish_if_whole() {
        if (head_have < 4 || cur.size() != want) return;
        std::lock_guard lock(mu);
        done.push_back(std::move(cur));
        cur = {};
        head_have = 0;
    }
    void feed(std::span<const uint8_t> in) {
        while (!in.empty()) {
            if (head_have < 4) {
                head[head_have++] = in[0];
                in = in.subspan(1);
                if (head_have == 4) want = size_t(head[0]) << 24 | size_t(head[1]) << 16 | size_t(head[2]) << 8 | head[3];
                finish_if_whole();   // (a zero-length frame)
                continue;
            }
            const size_t n = std::min(in.size(), want - cur.size());
            cur.insert(cur.end(), in.begin(), in.begin() + std::ptrdiff_t(n));
            in = in.subspan(n);
            finish_if_whole();
        }
    }
    bool wants() const { return head_have == 4 && want - cur.size() >= 16 * 1024; }
    std::span<uint8_t> target(size_t limit) {
        if (!wants()) return {};
        before_target = cur.size();
        const size_t n = std::min(limit, want - cur.size());
        cur.resize(before_target + n);
        return {cur.data() + before_target, n};
    }
    void received(size_t n) {
        cur.resize(before_target + n);
        in_place += n;
        finish_if_whole();
    }
};

std::vector<uint8_t> frame(const std::vector<uint8_t>& body) {
    const size_t n = body.size();
    std::vector<uint8_t> out{uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

// The handler's side of in-place receive, as the broker does it: hint once
// a large frame has begun, targets of at most `max_target` bytes.
void receive_frames(Harness& hs, Frames& frames, size_t max_target = SIZE_MAX) {
    hs.handler.data_hook = [&hs, &frames](ConnId id, std::span<const uint8_t> data) {
        frames.feed(data);
        if (frames.wants()) hs.reactor->expect_in_place(id);
    };
    hs.handler.wants_in_place_hook = [&frames](ConnId) { return frames.wants(); };
    hs.handler.target_hook = [&frames, max_target](ConnId, size_t limit) {
        return frames.target(std::min(limit, max_target));
    };
    hs.handler.in_place_hook = [&frames](ConnId, size_t n) { frames.received(n); };
}

}  // namespace

TEST_CASE("the rest of a large input frame is received in place, in order with the rest of the stream") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        Frames frames;
        receive_frames(hs, frames);
        hs.start();
        const std::vector<std::vector<uint8_t>> bodies = {pattern(3 * 1024 * 1024, 1), pattern(10, 2),
                                                          pattern(1024 * 1024, 3), pattern(1024 * 1024 + 1, 4),
                                                          pattern(20 * 1024, 5), pattern(5, 6)};
        std::vector<uint8_t> wire;
        for (const auto& body : bodies) {
            const auto f = frame(body);
            wire.insert(wire.end(), f.begin(), f.end());
        }
        int fd = connect_to(hs.port);
        // Uneven pieces with pauses: frames start and end inside writes, and
        // the reactor waits for more in the middle of one.
        std::thread writer([&] {
            size_t off = 0, step = 1000;
            while (off < wire.size()) {
                const size_t n = std::min(step, wire.size() - off);
                CHECK(send_all(fd, wire.data() + off, n));
                off += n;
                step = step * 3 % 700001 + 1;
                if (off % 7 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });
        writer.join();
        CHECK(wait_until([&] {
            std::lock_guard lock(frames.mu);
            return frames.done.size() == bodies.size();
        }));
        {
            std::lock_guard lock(frames.mu);
            REQUIRE(frames.done.size() == bodies.size());
            for (size_t i = 0; i < bodies.size(); ++i) CHECK(frames.done[i] == bodies[i]);
        }
        CHECK(frames.in_place.load() > 4 * 1024 * 1024);
        // Gone in the middle of a large frame: closed like any other.
        const auto cut = frame(pattern(2 * 1024 * 1024, 7));
        REQUIRE(send_all(fd, cut.data(), cut.size() / 2));
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
    }
}

TEST_CASE("input stopped in the middle of a large frame: nothing more is received in place until it resumes") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        hs.reactor->set_tick_interval(20);
        Frames frames;
        bool paused = false;
        int ticks_paused = 0;
        size_t at_pause = 0;
        std::atomic<long> while_paused{-1};
        // Small targets: many receives in one pass, with more data waiting
        // in the socket when the pause comes.
        receive_frames(hs, frames, 8192);
        hs.handler.in_place_hook = [&](ConnId, size_t n) {
            frames.received(n);
            if (!paused && while_paused.load() < 0 && frames.in_place.load() >= 64 * 1024) {
                hs.reactor->set_intake(false);   // as the broker does when a receiver is full
                paused = true;
                at_pause = frames.in_place.load();
            }
        };
        hs.handler.tick_hook = [&] {
            if (!paused || ++ticks_paused < 4) return;
            while_paused = long(frames.in_place.load() - at_pause);
            paused = false;
            hs.reactor->set_intake(true);
        };
        hs.start();
        const auto body = pattern(2 * 1024 * 1024, 9);
        const auto wire = frame(body);
        int fd = connect_to(hs.port);
        std::thread writer([&] { CHECK(send_all(fd, wire.data(), wire.size())); });
        // Bounded wait first: if the reactor never resumed, the writer stays
        // blocked in send until the peer is closed below.
        const bool whole = wait_until([&] {
            std::lock_guard lock(frames.mu);
            return frames.done.size() == 1;
        });
        CHECK(whole);
        if (!whole) ::shutdown(fd, SHUT_RDWR);
        writer.join();
        CHECK(while_paused.load() == 0);
        {
            std::lock_guard lock(frames.mu);
            REQUIRE(frames.done.size() == 1);
            CHECK(frames.done[0] == body);
        }
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
    }
}

TEST_CASE("closed with output pending while waiting to read in place: the peer's input is still read and discarded") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        Harness hs(b);
        hs.reactor->set_tick_interval(20);
        Frames frames;
        ConnId conn = 0;
        int ticks = 0;
        receive_frames(hs, frames);
        hs.handler.in_place_hook = [&](ConnId id, size_t n) {
            frames.received(n);
            if (conn != 0 || frames.in_place.load() < 64 * 1024) return;
            conn = id;
            // More output than the peer, which never reads, lets leave: the
            // close below stays in its flush.
            const std::vector<uint8_t> out(8 * 1024 * 1024, 0x5a);
            hs.reactor->send(id, out);
            hs.reactor->set_intake(false);   // waits on the in-place list
        };
        hs.handler.tick_hook = [&] {
            if (conn == 0) return;
            ++ticks;
            if (ticks == 2) hs.reactor->close(conn, /*flush=*/true);
            if (ticks == 3) hs.reactor->set_intake(true);
        };
        hs.start();
        // Far more than the socket buffers hold: the writer finishes only if
        // the reactor keeps reading, well before the flush gives up.
        const auto wire = frame(pattern(24 * 1024 * 1024, 11));
        int fd = connect_to(hs.port);
        const auto started = std::chrono::steady_clock::now();
        bool sent = false;
        std::thread writer([&] { sent = send_all(fd, wire.data(), wire.size()); });
        writer.join();
        const auto took = std::chrono::steady_clock::now() - started;
        CHECK(sent);
        CHECK(took < std::chrono::milliseconds(2000));   // the flush timeout (kFlushTimeoutMs)
        ::close(fd);
        CHECK(wait_until([&] { return hs.handler.closed_count() == 1; }));
    }
}
