// hato-bench: a one-thread MQTT 3.1.1 / 5.0 load generator in the spirit of
// emqtt-bench. Scenarios: pairs, fanin, fanout, conn. Every payload carries
// (publisher id, sequence, send time) so the receiver side can count loss,
// duplicates, reordering and latency. It batches its own writes (one write
// per socket per loop pass) so that it is not the bottleneck, and says so
// when its own CPU is near 100%.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "bench_wire.hpp"

namespace {

using namespace hato::bench;

// Blast mode: a publisher's next batch is made once what it has not written
// yet is under kBlastLow, up to kBlastBatch bytes: large writes, and never
// more than a batch held in the generator per socket.
constexpr size_t kBlastLow = 32 * 1024;
constexpr size_t kBlastBatch = 256 * 1024;
constexpr uint64_t kPaceTickNs = 1'000'000;   // --pace clock
constexpr int kPollUpTo = 16 * 1024;         // payload size up to which window mode polls

struct Options {
    std::string host = "127.0.0.1";
    int port = 1883;
    std::string scenario = "pairs";
    int clients = 10;
    int qos = 0;
    int size = 64;
    double rate = 0;        // total msg/s across publishers; 0 = as fast as the broker takes it
    double duration = 5;
    double warmup = 1;
    int window = 64;        // per publisher: messages sent but not yet seen by its subscribers (rate 0)
    int version = 4;        // 4 = 3.1.1, 5 = 5.0
    int broker_pid = 0;     // conn scenario: read this process's VmRSS
    bool persistent = false;  // persistent sessions: the broker stores each QoS 1/2 delivery
    int metrics_port = 0;   // hato's [metrics] port: its own QoS 0 dropped count before and after
    int sndbuf = 64 * 1024; // blast: each publisher's SO_SNDBUF; 0 = the kernel's autotuning
    // At a fixed rate, when what is due is written: "wake", whenever the
    // loop wakes (a reply from the broker wakes it too); "clock", only on
    // ticks of kPaceTickNs, as sensors on a fixed cycle publish. With
    // "wake" a slower broker wakes the generator at more moments, so each
    // write carries fewer messages and the broker makes more sends per
    // message: its extra CPU a message comes back about doubled (bench/README).
    bool pace_clock = false;
    bool blast() const { return rate == 0 && window == 0; }
};

void usage() {
    std::puts(
        "usage: hato-bench [options]\n"
        "  --scenario pairs|fanin|fanout|conn   (default pairs)\n"
        "  --host H --port P                    broker address (127.0.0.1:1883)\n"
        "  --clients N                          pairs: N publisher/subscriber pairs; fanin: N publishers;\n"
        "                                       fanout: N subscribers; conn: N idle connections\n"
        "  --qos 0|1|2  --size BYTES (>= 20)    message QoS and payload size (0, 64)\n"
        "  --rate R                             total target msg/s, 0 = as fast as possible (0)\n"
        "  --duration S --warmup S              measured seconds, warm-up seconds (5, 1)\n"
        "  --window N                           in-flight messages per publisher at rate 0 (64);\n"
        "                                       --rate 0 --window 0 is blast mode (QoS 0): publishers\n"
        "                                       write as fast as their sockets accept, many messages a write\n"
        "  --metrics-port P                     hato's [metrics] port: report the broker's QoS 0 dropped count\n"
        "  --sndbuf BYTES                       blast: each publisher's SO_SNDBUF, 0 = kernel autotuning (65536)\n"
        "  --pace wake|clock                    at --rate R: write what is due whenever the loop wakes\n"
        "                                       (wake, the default) or only every 1 ms (clock)\n"
        "  --mqtt 4|5                           protocol level (4)\n"
        "  --persistent                         persistent sessions (clean session 0 / session expiry 300 s)\n"
        "  --broker-pid PID                     conn: report the broker's VmRSS per connection;\n"
        "                                       others: its CPU time per received message\n"
        "The last line is machine-readable: RESULT key=value ...");
}

bool parse_args(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&](const char* what) -> const char* {
            if (i + 1 >= argc) { std::fprintf(stderr, "hato-bench: %s needs a value\n", what); std::exit(2); }
            return argv[++i];
        };
        if (a == "--host") o.host = next("--host");
        else if (a == "--port") o.port = std::atoi(next("--port"));
        else if (a == "--scenario") o.scenario = next("--scenario");
        else if (a == "--clients") o.clients = std::atoi(next("--clients"));
        else if (a == "--qos") o.qos = std::atoi(next("--qos"));
        else if (a == "--size") o.size = std::atoi(next("--size"));
        else if (a == "--rate") o.rate = std::atof(next("--rate"));
        else if (a == "--duration") o.duration = std::atof(next("--duration"));
        else if (a == "--warmup") o.warmup = std::atof(next("--warmup"));
        else if (a == "--window") o.window = std::atoi(next("--window"));
        else if (a == "--mqtt") o.version = std::atoi(next("--mqtt"));
        else if (a == "--persistent") o.persistent = true;
        else if (a == "--broker-pid") o.broker_pid = std::atoi(next("--broker-pid"));
        else if (a == "--metrics-port") o.metrics_port = std::atoi(next("--metrics-port"));
        else if (a == "--sndbuf") o.sndbuf = std::atoi(next("--sndbuf"));
        else if (a == "--pace") {
            const std::string v = next("--pace");
            if (v != "wake" && v != "clock") { std::fprintf(stderr, "hato-bench: --pace is wake or clock\n"); return false; }
            o.pace_clock = v == "clock";
        }
        else if (a == "-h" || a == "--help") { usage(); std::exit(0); }
        else { std::fprintf(stderr, "hato-bench: unknown option %s\n", a.c_str()); usage(); return false; }
    }
    if (o.scenario != "pairs" && o.scenario != "fanin" && o.scenario != "fanout" && o.scenario != "conn") {
        std::fprintf(stderr, "hato-bench: unknown scenario %s\n", o.scenario.c_str());
        return false;
    }
    if (o.pace_clock && o.rate <= 0) {
        std::fprintf(stderr, "hato-bench: --pace clock needs --rate\n");
        return false;
    }
    if (o.window == 0 && (o.rate != 0 || o.qos != 0)) {
        std::fprintf(stderr, "hato-bench: --window 0 (blast) needs --rate 0 and --qos 0\n");
        return false;
    }
    if (o.clients < 1 || o.qos < 0 || o.qos > 2 || o.size < kStampSize || o.window < 0 || o.sndbuf < 0 ||
        (o.version != 4 && o.version != 5) || o.duration <= 0 || o.warmup < 0) {
        std::fprintf(stderr, "hato-bench: bad option value\n");
        return false;
    }
    return true;
}

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

double cpu_seconds() {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long vmrss_kib(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// CPU seconds (user + system, all threads) the process `pid` has used so
// far; -1 if unreadable. The scheduler's nanosecond count of each live
// thread (/proc/PID/task/*/schedstat) is used where it exists: /proc/PID/stat
// counts in 10 ms ticks, about 1 % of a 3 s QoS 1 run, as large as the gaps
// floor-ratio.sh measures. Threads that have exited drop out of the sum;
// hato's workers live as long as it does.
double process_cpu_seconds(int pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    if (DIR* tasks = opendir((proc + "/task").c_str())) {
        unsigned long long on_cpu_ns = 0;
        bool any = false;
        while (dirent* e = readdir(tasks)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream f(proc + "/task/" + e->d_name + "/schedstat");
            unsigned long long ns = 0;
            if (f >> ns) { on_cpu_ns += ns; any = true; }
        }
        closedir(tasks);
        if (any) return double(on_cpu_ns) / 1e9;
    }
    std::ifstream f(proc + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // Fields 14 and 15 count after the command name, which may itself hold
    // spaces, so parsing starts after ')'.
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) return -1;
    std::istringstream rest(stat.substr(close_paren + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {   // field 3 is the state
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// Nanoseconds the main thread of `pid` (0: this process) has waited on a
// run queue for a CPU so far, from /proc/PID/schedstat; -1 if unreadable.
// On a shared machine a process may be idle for want of a CPU, which its
// CPU time cannot show.
double run_delay_seconds(int pid) {
    std::ifstream f(pid ? "/proc/" + std::to_string(pid) + "/schedstat" : std::string("/proc/self/schedstat"));
    unsigned long long on_cpu = 0, waited = 0;
    if (!(f >> on_cpu >> waited)) return -1;
    return double(waited) / 1e9;
}

// hato's counter `name` from its Prometheus endpoint on `port`; -1 if unreadable.
long long read_metric(const std::string& host, int port, const char* name) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    std::string text;
    if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) == 1 &&
        connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        const char req[] = "GET /metrics HTTP/1.0\r\nConnection: close\r\n\r\n";
        if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == ssize_t(sizeof req - 1)) {
            char buf[16384];
            ssize_t n;
            while ((n = recv(fd, buf, sizeof buf, 0)) > 0) text.append(buf, size_t(n));
        }
    }
    close(fd);
    const std::string key = std::string("\n") + name + " ";
    size_t at = text.find(key);
    return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + key.size());
}

int connect_to(const Options& o) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1 ||
        connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse_args(argc, argv, o)) return 2;

    // Who publishes and who subscribes where.
    int npub = 0, nsub = 0;
    if (o.scenario == "pairs") { npub = o.clients; nsub = o.clients; }
    else if (o.scenario == "fanin") { npub = o.clients; nsub = 1; }
    else if (o.scenario == "fanout") { npub = 1; nsub = o.clients; }
    else { npub = 0; nsub = 0; }
    const int nconn = o.scenario == "conn" ? o.clients : npub + nsub;

    Run run(o.qos, o.size, o.version);
    run.persistent = o.persistent;
    int ep = epoll_create1(0);
    long rss_before = o.broker_pid ? vmrss_kib(o.broker_pid) : -1;
    for (int i = 0; i < nconn; ++i) {
        int fd = connect_to(o);
        if (fd < 0) {
            std::fprintf(stderr, "hato-bench: connect %s:%d failed after %d connections: %s\n",
                         o.host.c_str(), o.port, i, std::strerror(errno));
            return 1;
        }
        Client& c = run.add_client(fd);
        c.is_pub = i < npub;
        if (c.is_pub && o.blast() && o.sndbuf > 0) {
            // A plant's gateway socket, not an autotuned multi-MB one: what
            // the broker does not take waits here, not seconds deep in the kernel.
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o.sndbuf, sizeof o.sndbuf);
        }
        c.pub_index = c.is_pub ? i : -1;
        c.sub_index = c.is_pub ? -1 : i - npub;
        epoll_event ev{};
        // Blast: a publisher wakes the loop when its socket takes more, so
        // the loop sleeps while the broker holds every publisher back and
        // its CPU shows whether the generator is the limit.
        ev.events = c.is_pub && o.blast() ? EPOLLIN | EPOLLOUT : EPOLLIN;
        c.watch_out = c.is_pub && o.blast();
        ev.data.u32 = uint32_t(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        std::string id = "bench-" + std::to_string(getpid()) + "-" + std::to_string(i);
        run.send_connect(c, id);
    }

    // Topics: pairs -> bench/<i> per pair; fanin / fanout -> one topic.
    auto pub_topic = [&](int p) { return o.scenario == "pairs" ? "bench/" + std::to_string(p) : std::string("bench/all"); };
    for (auto& c : run.clients)
        if (!c.is_pub && o.scenario != "conn") run.send_subscribe(c, pub_topic(o.scenario == "pairs" ? c.sub_index : 0));

    // Every subscriber expects every message of the publishers it listens to.
    run.set_topology(npub, nsub, o.scenario == "pairs");

    std::vector<std::string> topics;
    for (int p = 0; p < npub; ++p) topics.push_back(pub_topic(p));

    const long long dropped_before =
        o.metrics_port ? read_metric(o.host, o.metrics_port, "hato_qos0_dropped_total") : -1;
    const uint64_t t0 = now_ns();
    bool ready = false;
    uint64_t measure_start = 0, measure_end = 0, drain_deadline = 0;
    // The drain waits while deliveries still arrive (a slow broker, e.g. a
    // sanitized build, may hold seconds of backlog in socket buffers); what
    // is missing after a pause with no progress is lost.
    constexpr uint64_t kDrainStallNs = 3'000'000'000ull, kDrainCapNs = 120'000'000'000ull;
    uint64_t drain_seen = 0, drain_progress_at = 0;
    double cpu_at_start = 0;
    double cpu_at_window_end = -1;   // blast: the generator's own load is judged over the window
    double broker_cpu_at_start = -1;   // broker CPU seconds when measuring began
    // Measured time spent in polls that found nothing (window mode, small
    // messages): CPU burnt waiting, not work, so bench_cpu leaves it out.
    uint64_t empty_poll_ns = 0;
    double wait_at_start = -1, broker_wait_at_start = -1;   // run-queue waits when measuring began
    uint64_t published_total = 0;
    const double per_pub_rate = o.rate > 0 && npub > 0 ? o.rate / npub : 0;
    std::vector<epoll_event> evs(256);
    int rr = 0;
    uint64_t next_tick = 0;   // --pace clock: when the publishers write next

    for (;;) {
        uint64_t now = now_ns();
        if (!ready && run.all_ready()) {
            ready = true;
            measure_start = now + uint64_t(o.warmup * 1e9);
            measure_end = measure_start + uint64_t(o.duration * 1e9);
            for (auto& c : run.clients) c.rate_start = now;
        }
        if (!ready && now - t0 > 10'000'000'000ull) {
            std::fprintf(stderr, "hato-bench: clients not connected/subscribed after 10 s\n");
            return 1;
        }
        if (ready && !run.measuring && now >= measure_start) {
            run.window_end_ns = measure_end;
            run.start_measuring();
            cpu_at_start = cpu_seconds();
            if (o.broker_pid) broker_cpu_at_start = process_cpu_seconds(o.broker_pid);
            wait_at_start = run_delay_seconds(0);
            if (o.broker_pid) broker_wait_at_start = run_delay_seconds(o.broker_pid);
        }
        const bool publishing = ready && now < measure_end && o.scenario != "conn";
        // (--pace clock: between ticks nothing is written, and it is not the drain either.)
        const bool tick = !o.pace_clock || now >= next_tick;
        if (publishing && tick) {
            if (o.pace_clock) next_tick = now + kPaceTickNs - (now - t0) % kPaceTickNs;
            // Publish: at a fixed rate, or up to the window of unseen messages.
            for (int k = 0; k < npub; ++k) {
                Client& c = run.clients[size_t((rr + k) % npub)];
                if (o.blast()) {   // what the socket did not take yet waits; then the next batch
                    if (c.pending() < kBlastLow) run.blast(c, topics[size_t(c.pub_index)], now, kBlastBatch);
                    continue;
                }
                int budget = 256;  // per pass, keeps the loop fair
                while (budget-- > 0 && run.can_publish(c, o.window, per_pub_rate, now)) {
                    run.publish(c, topics[size_t(c.pub_index)], now);
                    ++published_total;
                }
            }
            rr = (rr + 1) % (npub ? npub : 1);
        } else if (ready && o.scenario != "conn" && drain_deadline == 0 && now >= measure_end) {
            drain_deadline = now + kDrainCapNs;  // drain: wait for what is in flight
            drain_progress_at = now;
            cpu_at_window_end = cpu_seconds();
            if (o.blast())   // nothing more to write: writable publishers must not spin the drain
                for (int k = 0; k < npub; ++k) {
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.u32 = uint32_t(k);
                    epoll_ctl(ep, EPOLL_CTL_MOD, run.clients[size_t(k)].fd, &ev);
                    // What is still queued is tried every pass, as epoll no longer says when.
                    run.clients[size_t(k)].watch_out = run.clients[size_t(k)].blocked = false;
                }
        }
        if (o.scenario == "conn" && ready && now >= measure_start) break;
        if (drain_deadline) {
            const uint64_t got = run.received_count();
            if (got != drain_seen) {
                drain_seen = got;
                drain_progress_at = now;
            }
            if (run.drained() || now >= drain_deadline || now - drain_progress_at >= kDrainStallNs) break;
        }

        run.flush_all();
        int n;
        if (publishing && o.pace_clock) {   // wakes at the tick, not up to 1 ms after it
            const uint64_t at = now_ns();
            const uint64_t left = next_tick > at ? next_tick - at : 0;
            const timespec ts{time_t(left / 1'000'000'000ull), long(left % 1'000'000'000ull)};
            n = epoll_pwait2(ep, evs.data(), int(evs.size()), &ts, nullptr);
            if (n < 0 && errno == ENOSYS) {   // before Linux 5.11
                std::fprintf(stderr, "hato-bench: --pace clock needs epoll_pwait2 (Linux 5.11)\n");
                return 2;
            }
        } else {
            // A window with no rate polls (its room opens with what arrives,
            // and polling saves the wake-up on small messages); with large
            // payloads a wake-up is nothing next to a transfer, and blocking
            // leaves bench_cpu the generator's work, not its polling.
            const bool poll = publishing && per_pub_rate == 0 && !o.blast() && o.size <= kPollUpTo;
            const int timeout_ms = poll ? 0 : 1;
            const uint64_t poll_start = poll && run.measuring ? now_ns() : 0;
            n = epoll_wait(ep, evs.data(), int(evs.size()), timeout_ms);
            if (poll_start && n == 0) empty_poll_ns += now_ns() - poll_start;
        }
        for (int i = 0; i < n; ++i) {
            Client& c = run.clients[evs[i].data.u32];
            if (evs[i].events & EPOLLOUT) c.blocked = false;
            // A blast publisher that is only writable has nothing to read.
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) continue;
            if (!run.read_from(c, now_ns())) {
                std::fprintf(stderr, "hato-bench: connection %u closed by broker\n", evs[i].data.u32);
                return 1;
            }
        }
    }
    const uint64_t end = now_ns();
    const double cpu_used = cpu_seconds() - cpu_at_start;
    const long long dropped_after =
        o.metrics_port ? read_metric(o.host, o.metrics_port, "hato_qos0_dropped_total") : -1;
    const long long broker_dropped = dropped_before >= 0 && dropped_after >= 0 ? dropped_after - dropped_before : -1;
    const double broker_cpu_end = o.broker_pid ? process_cpu_seconds(o.broker_pid) : -1;
    // Share of the measured time spent waiting for a CPU (other load on the
    // cores): then neither side ran when it could, and rates are lower bounds.
    const double span_s = double(end - measure_start) / 1e9;
    auto waited_share = [&](double at_start, int pid) {
        const double now = run_delay_seconds(pid);
        return at_start >= 0 && now >= 0 && span_s > 0 ? (now - at_start) / span_s : -1;
    };
    const double bench_wait = waited_share(wait_at_start, 0);
    const double broker_wait = o.broker_pid ? waited_share(broker_wait_at_start, o.broker_pid) : -1;

    if (o.scenario == "conn") {
        long rss_after = o.broker_pid ? vmrss_kib(o.broker_pid) : -1;
        double per_conn = rss_after >= 0 && rss_before >= 0 ? double(rss_after - rss_before) / nconn : -1;
        std::printf("conn: %d idle connections open", nconn);
        if (per_conn >= 0) std::printf(", broker VmRSS %ld KiB -> %ld KiB, %.3f KiB per connection", rss_before, rss_after, per_conn);
        std::printf("\nRESULT scenario=conn clients=%d rss_before_kib=%ld rss_after_kib=%ld kib_per_conn=%.3f\n",
                    nconn, rss_before, rss_after, per_conn);
        return 0;
    }

    const double secs = double(std::min(end, measure_end) - measure_start) / 1e9;
    const Totals t = run.totals();
    const double rate = secs > 0 ? double(o.blast() ? run.received_in_window : t.received) / secs : 0;
    double bench_cpu = double(end - measure_start) > 0
                           ? std::max(0.0, cpu_used - double(empty_poll_ns) / 1e9) / (double(end - measure_start) / 1e9)
                           : 0;
    // Blast: while publishing, not diluted by the drain's waiting.
    if (o.blast() && cpu_at_window_end >= 0 && secs > 0) bench_cpu = (cpu_at_window_end - cpu_at_start) / secs;
    // The generator's own CPU per message received in the window: 1 / this
    // is the most it could carry with a core to itself, whatever else ran.
    const double bench_us_per_msg = o.blast() && cpu_at_window_end >= 0 && run.received_in_window > 0
                                        ? (cpu_at_window_end - cpu_at_start) * 1e6 / double(run.received_in_window)
                                        : -1;
    // Broker CPU per received message over the measured window and drain
    // (connect and warm-up excluded); -1 without --broker-pid.
    const double broker_us_per_msg = broker_cpu_at_start >= 0 && broker_cpu_end >= 0 && t.received > 0
                                         ? (broker_cpu_end - broker_cpu_at_start) * 1e6 / double(t.received)
                                         : -1;
    // Payload bytes: what large-message runs compare (1 MB = 10^6 bytes).
    const double mb_per_s = rate * double(o.size) / 1e6;
    const double broker_us_per_mb = broker_us_per_msg >= 0 ? broker_us_per_msg * 1e6 / double(o.size) : -1;
    std::printf("%s: %d publishers, %d subscribers, qos %d, %d B, mqtt %d, %.1f s measured\n",
                o.scenario.c_str(), npub, nsub, o.qos, o.size, o.version, secs);
    if (o.blast())
        std::printf("blast: %llu msgs received inside the measured window; hato-bench %.3f us CPU a message "
                    "(%.1f M msg/s on a core of its own)\n",
                    (unsigned long long)run.received_in_window, bench_us_per_msg,
                    bench_us_per_msg > 0 ? 1 / bench_us_per_msg : 0);
    std::printf("received %llu msgs (%.0f msg/s), expected %llu, lost %llu, duplicated %llu, out-of-order %llu\n",
                (unsigned long long)t.received, rate, (unsigned long long)t.expected, (unsigned long long)t.lost,
                (unsigned long long)t.duplicated, (unsigned long long)t.out_of_order);
    std::printf("payload: %.1f MB/s", mb_per_s);
    if (broker_us_per_mb >= 0) std::printf(", broker CPU %.0f us per MB", broker_us_per_mb);
    std::printf("\n");
    std::printf("latency us: p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", t.p50_us, t.p99_us, t.p999_us, t.max_us);
    if (broker_dropped >= 0) std::printf("broker: %lld QoS 0 dropped during the run\n", broker_dropped);
    if (bench_wait > 0.1 || broker_wait > 0.1)
        std::printf("note: waited for a CPU (other load on the cores): hato-bench %.0f%%, broker %.0f%% of the time: "
                    "rates are lower bounds\n", std::max(bench_wait, 0.0) * 100, std::max(broker_wait, 0.0) * 100);
    if (bench_cpu > 0.9)
        std::printf("note: hato-bench used %.0f%% of its core: the generator may be the bottleneck\n", bench_cpu * 100);
    std::printf("RESULT scenario=%s clients=%d qos=%d size=%d mqtt=%d seconds=%.2f received=%llu rate=%.0f "
                "lost=%llu dup=%llu ooo=%llu p50_us=%.0f p99_us=%.0f p999_us=%.0f bench_cpu=%.2f "
                "broker_us_per_msg=%.2f broker_dropped=%lld blast=%d bench_us_per_msg=%.3f bench_wait=%.2f broker_wait=%.2f "
                "mb_per_s=%.1f broker_us_per_mb=%.0f pace=%s\n",
                o.scenario.c_str(), o.clients, o.qos, o.size, o.version, secs, (unsigned long long)t.received, rate,
                (unsigned long long)t.lost, (unsigned long long)t.duplicated, (unsigned long long)t.out_of_order,
                t.p50_us, t.p99_us, t.p999_us, bench_cpu, broker_us_per_msg, broker_dropped, o.blast() ? 1 : 0,
                bench_us_per_msg, bench_wait, broker_wait, mb_per_s, broker_us_per_mb, o.pace_clock ? "clock" : "wake");
    (void)published_total;
    return t.lost == 0 && t.duplicated == 0 ? 0 : 3;
}
