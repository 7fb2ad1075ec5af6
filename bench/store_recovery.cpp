// Recovery time of the durable store (the target: 1,000,000 retained and
// 100,000 queued messages back in under 2 s; docs/durability.md, "Recovery
// time"). Writes the data set once into DIR (default
// /tmp/hato-bench-recovery), then measures a cold start the way
// hato does it: open + scan + checksum every segment, replay the records into
// the recovered state, and rebuild the broker's indexes and queues.
//   store-recovery [--dir DIR] [--retained N] [--queued N] [--keep]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker.hpp"
#include "broker/log_persistence.hpp"

using namespace hato;

namespace {

struct NullTransport final : broker::Transport {
    void send(broker::ConnId, std::span<const uint8_t>) override {}
    size_t queued_bytes(broker::ConnId) const override { return 0; }
    void close(broker::ConnId) override {}
};

// CPU seconds this process has used, user and system: steadier than the
// wall clock on a shared machine. System time is mostly the kernel zeroing
// fresh pages for the heap, which varies a lot on a VM; user time is ours.
struct Cpu {
    double user = 0, sys = 0;
};
Cpu cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return {double(u.ru_utime.tv_sec) + double(u.ru_utime.tv_usec) / 1e6,
            double(u.ru_stime.tv_sec) + double(u.ru_stime.tv_usec) / 1e6};
}

double since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Forwards to the real persistence and times load(), so the report can split
// replay (log -> RecoveredState) from rebuild (RecoveredState -> broker).
struct TimedPersistence final : broker::Persistence {
    explicit TimedPersistence(broker::Persistence& inner) : p(inner) {}
    void load(broker::RecoveredState& out) override {
        auto t = std::chrono::steady_clock::now();
        p.load(out);
        load_s = since(t);
    }
    broker::Append retained_set(const broker::StoredMessageView& m) override { return p.retained_set(m); }
    broker::Append retained_clear(std::string_view t) override { return p.retained_clear(t); }
    broker::Append session_put(std::string_view c, uint32_t e, uint64_t o, const broker::SessionOwner& w = {}) override {
        return p.session_put(c, e, o, w);
    }
    broker::Append session_remove(std::string_view c) override { return p.session_remove(c); }
    broker::Append sub_put(std::string_view c, std::string_view f, uint8_t o, uint32_t id) override {
        return p.sub_put(c, f, o, id);
    }
    broker::Append sub_remove(std::string_view c, std::string_view f) override { return p.sub_remove(c, f); }
    broker::Append out_enqueue(std::string_view c, uint64_t s, const broker::StoredMessageView& m) override {
        return p.out_enqueue(c, s, m);
    }
    broker::Append out_state(std::string_view c, uint64_t s, broker::OutState st, uint16_t id) override {
        return p.out_state(c, s, st, id);
    }
    broker::Append out_done(std::string_view c, uint64_t s) override { return p.out_done(c, s); }
    broker::Append qos2_in_put(std::string_view c, uint16_t id, uint64_t digest) override {
        return p.qos2_in_put(c, id, digest);
    }
    broker::Append qos2_in_remove(std::string_view c, uint16_t id) override { return p.qos2_in_remove(c, id); }
    broker::Append will_put(std::string_view c, const broker::StoredMessageView& m, uint32_t delay_s,
                            std::optional<uint32_t> expiry_s, const broker::SessionOwner& o, int listener) override {
        return p.will_put(c, m, delay_s, expiry_s, o, listener);
    }
    broker::Append will_remove(std::string_view c) override { return p.will_remove(c); }
    bool full() const override { return p.full(); }
    uint64_t durable_ticket() const override { return p.durable_ticket(); }
    uint64_t latest_ticket() const override { return p.latest_ticket(); }

    broker::Persistence& p;
    double load_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::string dir = "/tmp/hato-bench-recovery";
    long retained = 1000000, queued = 100000;
    bool keep = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!std::strcmp(argv[i], "--retained") && i + 1 < argc) retained = std::atol(argv[++i]);
        else if (!std::strcmp(argv[i], "--queued") && i + 1 < argc) queued = std::atol(argv[++i]);
        else if (!std::strcmp(argv[i], "--keep")) keep = true;
        else { std::fprintf(stderr, "usage: store-recovery [--dir DIR] [--retained N] [--queued N] [--keep]\n"); return 2; }
    }
    store::Options o;
    o.dir = dir;
    o.sync = store::SyncMode::Off;
    std::string err;
    std::filesystem::remove_all(dir);
    // The data set is written by a child process, so the recovery below runs
    // in a fresh heap like a restarted hato, not in one full of the writer's
    // freed blocks (which made malloc a third of the measured time).
    const pid_t writer = fork();
    if (writer < 0) { std::perror("fork"); return 1; }
    if (writer == 0) {
        auto t = std::chrono::steady_clock::now();
        auto log = store::Log::open(o, err);
        if (!log) { std::fprintf(stderr, "open %s: %s\n", dir.c_str(), err.c_str()); return 1; }
        broker::LogPersistence p(*log, o.sync);
        broker::RecoveredState st;
        p.load(st);
        auto stored = [](const broker::Append& a) {
            if (!a.ok()) {
                std::fprintf(stderr, "store refused: %s\n", broker::append_status_name(a.status));
                _exit(1);
            }
        };
        broker::StoredMessage m;
        m.payload.assign(64, 7);
        m.qos = 1;
        m.retain = true;
        for (long i = 0; i < retained; ++i) {
            m.topic = "plant/line" + std::to_string(i % 100) + "/sensor" + std::to_string(i) + "/value";
            stored(p.retained_set(m));
        }
        m.retain = false;
        for (long c = 0; c < 1000; ++c) {
            std::string cid = "client" + std::to_string(c);
            stored(p.session_put(cid, 0xFFFFFFFF, 1));
            stored(p.sub_put(cid, "plant/#", 1, 0));
        }
        for (long i = 0; i < queued; ++i) {
            m.topic = "plant/q/" + std::to_string(i);
            stored(p.out_enqueue("client" + std::to_string(i % 1000), uint64_t(i / 1000 + 1), m));
        }
        log->sync_now();
        std::printf("wrote %ld retained + %ld queued: %.1f MiB in %llu segments (%.2f s)\n", retained, queued,
                    double(log->bytes_used()) / 1048576.0, (unsigned long long)log->segment_count(), since(t));
        std::fflush(stdout);
        _exit(0);
    }
    int status = 0;
    if (waitpid(writer, &status, 0) != writer || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "writing the data set failed\n");
        return 1;
    }
    // A restart normally finds its data already written back; without this
    // the scan below would also pay for flushing what the writer just made.
    ::sync();
    // Drop the page cache's advantage as far as we can without root tricks:
    // the numbers below are a warm-cache start (the gateway case after a
    // process restart); a cold boot adds the disk's read time.
    const Cpu cpu0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    auto log = store::Log::open(o, err);
    if (!log) { std::fprintf(stderr, "reopen: %s\n", err.c_str()); return 1; }
    double t_open = since(t0);
    broker::LogPersistence lp(*log, o.sync);
    TimedPersistence p(lp);
    NullTransport tr;
    broker::Config cfg;
    cfg.max_queued_messages = 1000000;
    broker::Broker b(cfg, tr, p);
    auto t1 = std::chrono::steady_clock::now();
    b.recover();
    double t_recover = since(t1);
    double total = since(t0);
    const Cpu cpu1 = cpu_seconds();
    const double user = cpu1.user - cpu0.user, sys = cpu1.sys - cpu0.sys, cpu = user + sys;
    // load() hands retained messages straight to the broker, so "load"
    // includes rebuilding the retained index; "sessions" is the rest.
    std::printf("scan+verify %.3f s, load+retained %.3f s, sessions %.3f s, total %.3f s wall, %.3f s CPU\n",
                t_open, p.load_s, t_recover - p.load_s, total, cpu);
    std::printf("RESULT retained=%ld queued=%ld open_s=%.3f load_s=%.3f recover_s=%.3f total_s=%.3f cpu_s=%.3f "
                "user_s=%.3f sys_s=%.3f\n",
                retained, queued, t_open, p.load_s, t_recover, total, cpu, user, sys);
    if (!keep) std::filesystem::remove_all(dir);
    return 0;
}
