// What TCP on 127.0.0.1 can move on this machine for large messages, with
// and without a forwarder in the middle, copying or zero-copy: the ceiling
// that bounds any broker's bytes/s in bench/compare.sh's "large" rows.
// A sender, an optional forwarder and one or two receivers run as separate
// processes; the output is GB/s and each side's CPU seconds per GB (from
// /proc/PID/schedstat). Run by bench/loopback-probe.sh; not built by meson
// and not run by CI.
//   loopback_probe SIZE SENDER FWD RECV NRECV SECONDS
//     SENDER: write | vmsplice | zerocopy (MSG_ZEROCOPY)
//     FWD:    none | rw (read/write, what brokers do) | splice | tee
//             (tee needs NRECV=2; rw with NRECV=2 writes twice)
//     RECV:   read | trunc (recv MSG_TRUNC: discarded, not copied) | splice
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

struct shared {
    volatile uint64_t rbytes[2];
    volatile uint64_t zc_done, zc_copied;
    volatile int pipe_sz;
};
static struct shared *sh;
static size_t N;

static void die(const char *m) { perror(m); _exit(1); }

static int listen_any(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (void *)&a, sizeof a) || listen(s, 4)) die("listen");
    socklen_t l = sizeof a;
    getsockname(s, (void *)&a, &l);
    *port = ntohs(a.sin_port);
    return s;
}
static int connect_to(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    while (connect(s, (void *)&a, sizeof a)) { if (errno != ECONNREFUSED) die("connect"); usleep(1000); }
    return s;
}
static void make_pipe(int p[2]) {
    if (pipe(p)) die("pipe");
    int want = N > 1048576 ? 1048576 : (int)N;
    if (want < 65536) want = 65536;
    int got = fcntl(p[1], F_SETPIPE_SZ, want);
    if (got < 0) die("F_SETPIPE_SZ");
    sh->pipe_sz = got;
}
static void write_all(int fd, const char *b, size_t n) {
    while (n) { ssize_t k = write(fd, b, n); if (k <= 0) die("write"); b += k; n -= (size_t)k; }
}
static void pipe_to(int pr, int out, size_t n) {
    while (n) {
        ssize_t k = splice(pr, NULL, out, NULL, n, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (k <= 0) die("splice pipe->out");
        n -= (size_t)k;
    }
}

static void drain_errq(int fd) {
    char ctl[128];
    for (;;) {
        struct msghdr m = {.msg_control = ctl, .msg_controllen = sizeof ctl};
        if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            struct sock_extended_err *e = (void *)CMSG_DATA(c);
            if (e->ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
            uint64_t cnt = (uint64_t)(e->ee_data - e->ee_info + 1);
            sh->zc_done += cnt;
            if (e->ee_code & SO_EE_CODE_ZEROCOPY_COPIED) sh->zc_copied += cnt;
        }
    }
}

static void sender(int port, const char *mode) {
    int s = connect_to(port);
    char *buf = aligned_alloc(4096, N);
    memset(buf, 'x', N);
    if (!strcmp(mode, "write")) {
        for (;;) write_all(s, buf, N);
    } else if (!strcmp(mode, "vmsplice")) {
        int p[2]; make_pipe(p);
        for (;;) {
            size_t off = 0;
            while (off < N) {
                struct iovec iov = {buf + off, N - off};
                ssize_t k = vmsplice(p[1], &iov, 1, 0);
                if (k <= 0) die("vmsplice");
                pipe_to(p[0], s, (size_t)k);
                off += (size_t)k;
            }
        }
    } else if (!strcmp(mode, "zerocopy")) {
        int one = 1;
        if (setsockopt(s, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one)) die("SO_ZEROCOPY");
        for (unsigned i = 0;; i++) {
            size_t off = 0;
            while (off < N) {
                ssize_t k = send(s, buf + off, N - off, MSG_ZEROCOPY);
                if (k < 0 && errno == ENOBUFS) {
                    struct pollfd pf = {s, 0, 0}; poll(&pf, 1, 1); drain_errq(s); continue;
                }
                if (k <= 0) die("send zc");
                off += (size_t)k;
            }
            drain_errq(s);
        }
    }
    die("bad sender mode");
}

static void receiver(int lfd, int idx, const char *mode) {
    int s = accept(lfd, NULL, NULL);
    char *buf = aligned_alloc(4096, N);
    int p[2] = {-1, -1}, devnull = -1;
    if (!strcmp(mode, "splice")) { make_pipe(p); devnull = open("/dev/null", O_WRONLY); }
    int mtrunc = !strcmp(mode, "trunc"), mread = !strcmp(mode, "read");
    for (;;) {
        ssize_t k;
        if (mread) k = read(s, buf, N);
        else if (mtrunc) k = recv(s, NULL, N, MSG_TRUNC);
        else {
            k = splice(s, NULL, p[1], NULL, N, SPLICE_F_MOVE);
            if (k > 0) pipe_to(p[0], devnull, (size_t)k);
        }
        if (k <= 0) die("recv");
        __atomic_add_fetch(&sh->rbytes[idx], (uint64_t)k, __ATOMIC_RELAXED);
    }
}

static void forwarder(int lfd, const int *rports, int nr, const char *mode) {
    int in = accept(lfd, NULL, NULL);
    int out[2];
    for (int i = 0; i < nr; i++) out[i] = connect_to(rports[i]);
    if (!strcmp(mode, "rw")) {
        char *buf = aligned_alloc(4096, N);
        for (;;) {
            ssize_t k = read(in, buf, N);
            if (k <= 0) die("fwd read");
            for (int i = 0; i < nr; i++) write_all(out[i], buf, (size_t)k);
        }
    } else if (!strcmp(mode, "splice")) {
        int p[2]; make_pipe(p);
        for (;;) {
            ssize_t k = splice(in, NULL, p[1], NULL, N, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (k <= 0) die("fwd splice in");
            pipe_to(p[0], out[0], (size_t)k);
        }
    } else if (!strcmp(mode, "tee")) {
        int p[2], q[2]; make_pipe(p); make_pipe(q);
        for (;;) {
            ssize_t k = splice(in, NULL, p[1], NULL, N, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (k <= 0) die("fwd splice in");
            size_t t = 0;  // duplicate page refs into q (no copy), then drain both
            while (t < (size_t)k) { ssize_t j = tee(p[0], q[1], (size_t)k - t, 0); if (j <= 0) die("tee"); t += (size_t)j; }
            pipe_to(p[0], out[0], (size_t)k);
            pipe_to(q[0], out[1], (size_t)k);
        }
    }
    die("bad fwd mode");
}

static double cpu_ns(pid_t pid) {
    char path[64]; snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = fopen(path, "r"); if (!f) return 0;
    unsigned long long ns = 0; if (fscanf(f, "%llu", &ns) != 1) ns = 0; fclose(f);
    return (double)ns;
}
static double sys_busy_s(void) {  // all CPUs, non-idle jiffies -> seconds
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[10] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) v[0] = 0;
    fclose(f);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: loopback_probe SIZE SENDER FWD RECV NRECV SECONDS\n"); return 2; }
    N = strtoul(argv[1], NULL, 0);
    const char *smode = argv[2], *fmode = argv[3], *rmode = argv[4];
    int nr = atoi(argv[5]); double secs = atof(argv[6]);
    sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fwd = strcmp(fmode, "none") != 0;
    int rport[2], lr[2], fport = 0, lf = -1;
    for (int i = 0; i < nr; i++) lr[i] = listen_any(&rport[i]);
    if (fwd) lf = listen_any(&fport);
    pid_t pr[2], pf = 0, ps;
    for (int i = 0; i < nr; i++) if (!(pr[i] = fork())) receiver(lr[i], i, rmode);
    if (fwd && !(pf = fork())) forwarder(lf, rport, nr, fmode);
    if (!(ps = fork())) sender(fwd ? fport : rport[0], smode);
    usleep(500000);
    double t0 = now(), b0 = sh->rbytes[0] + sh->rbytes[1], cs0 = cpu_ns(ps), cf0 = fwd ? cpu_ns(pf) : 0, cr0 = 0, sys0 = sys_busy_s();
    uint64_t zd0 = sh->zc_done, zcp0 = sh->zc_copied;
    for (int i = 0; i < nr; i++) cr0 += cpu_ns(pr[i]);
    usleep((useconds_t)(secs * 1e6));
    double t1 = now(), b1 = sh->rbytes[0] + sh->rbytes[1], cs1 = cpu_ns(ps), cf1 = fwd ? cpu_ns(pf) : 0, cr1 = 0, sys1 = sys_busy_s();
    for (int i = 0; i < nr; i++) cr1 += cpu_ns(pr[i]);
    uint64_t zd = sh->zc_done - zd0, zcp = sh->zc_copied - zcp0;
    kill(ps, SIGKILL); if (fwd) kill(pf, SIGKILL); for (int i = 0; i < nr; i++) kill(pr[i], SIGKILL);
    while (wait(NULL) > 0) {}
    double dt = t1 - t0, gb = (b1 - b0) / 1e9, gb_in = gb / nr;
    // cpu in seconds per GB ingested by the forwarder (= per GB per stream)
    printf("size=%zu snd=%s fwd=%s rcv=%s nr=%d pipe=%d  in_GBps=%.3f out_GBps=%.3f  "
           "cpu%%: snd=%.0f fwd=%.0f rcv=%.0f sys=%.0f  s/GBin: fwd=%.3f snd+rcv=%.3f all=%.3f",
           N, smode, fmode, rmode, nr, sh->pipe_sz, gb_in / dt, gb / dt,
           100 * (cs1 - cs0) / 1e9 / dt, 100 * (cf1 - cf0) / 1e9 / dt, 100 * (cr1 - cr0) / 1e9 / dt, 100 * (sys1 - sys0) / dt,
           (cf1 - cf0) / 1e9 / gb_in, ((cs1 - cs0) + (cr1 - cr0)) / 1e9 / gb_in, (sys1 - sys0) / gb_in);
    if (!strcmp(smode, "zerocopy")) printf("  zc_compl=%llu copied=%llu", (unsigned long long)zd, (unsigned long long)zcp);
    printf("\n");
    return 0;
}
