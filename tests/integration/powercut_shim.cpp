// A power cut for hato's log, as an LD_PRELOAD shim (the epoll backend,
// whose fdatasync runs on the loop thread through libc; io_uring's
// IORING_OP_FSYNC does not pass here). After each successful
// fdatasync/fsync of a *.seg file the file is copied to $HATO_SNAPDIR:
// that folder is what the disk holds for sure. An fsync of the data folder
// carries segment creations and removals over. Once $HATO_SNAPDIR/FREEZE
// exists nothing more is copied: the power went at that instant, and the
// test puts the snapshot's segments back in place of the data folder's.
// Once $HATO_SNAPDIR/EIO exists, the next fdatasync of a *.seg file fails
// with EIO and copies nothing (that writeback was lost), and the file goes:
// Linux reports a failed writeback once, and the next sync succeeds.
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool ends_with(const char* s, const char* suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// A path that does not fit is skipped (never truncated into another name).
static bool fits(int n, size_t size) { return n >= 0 && size_t(n) < size; }

// Through a temporary name, so the snapshot never holds half a copy.
static void copy_file(const char* from, const char* to) {
    char tmp[PATH_MAX];
    if (!fits(snprintf(tmp, sizeof tmp, "%s.tmp", to), sizeof tmp)) return;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return;
    }
    static char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) if (write(out, buf, size_t(n)) != n) break;
    close(in);
    close(out);
    rename(tmp, to);
}

// The data folder was synced: segments gone there leave the snapshot, new
// ones enter it (as they are now).
static void sync_names(const char* dir, const char* snap) {
    char p[PATH_MAX], q[PATH_MAX];
    DIR* d = opendir(snap);
    if (d) {
        struct dirent* e;
        while ((e = readdir(d))) {
            if (!ends_with(e->d_name, ".seg")) continue;
            if (!fits(snprintf(p, sizeof p, "%s/%s", dir, e->d_name), sizeof p) ||
                !fits(snprintf(q, sizeof q, "%s/%s", snap, e->d_name), sizeof q))
                continue;
            if (access(p, F_OK) != 0) unlink(q);
        }
        closedir(d);
    }
    d = opendir(dir);
    if (d) {
        struct dirent* e;
        while ((e = readdir(d))) {
            if (!ends_with(e->d_name, ".seg")) continue;
            if (!fits(snprintf(p, sizeof p, "%s/%s", dir, e->d_name), sizeof p) ||
                !fits(snprintf(q, sizeof q, "%s/%s", snap, e->d_name), sizeof q))
                continue;
            if (access(q, F_OK) != 0) copy_file(p, q);
        }
        closedir(d);
    }
}

static void record(int fd) {
    const char* snap = getenv("HATO_SNAPDIR");
    if (!snap) return;
    char freeze[PATH_MAX];
    if (!fits(snprintf(freeze, sizeof freeze, "%s/FREEZE", snap), sizeof freeze)) return;
    if (access(freeze, F_OK) == 0) return;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) return sync_names(path, snap);
    if (!ends_with(path, ".seg")) return;
    const char* base = strrchr(path, '/');
    char q[PATH_MAX];
    if (!fits(snprintf(q, sizeof q, "%s/%s", snap, base ? base + 1 : path), sizeof q)) return;
    copy_file(path, q);
}

static bool is_segment(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return false;
    path[n] = 0;
    return ends_with(path, ".seg");
}

// The failure the test asked for, once.
static bool fail_once(int fd) {
    const char* snap = getenv("HATO_SNAPDIR");
    char eio[PATH_MAX];
    if (!snap || !fits(snprintf(eio, sizeof eio, "%s/EIO", snap), sizeof eio)) return false;
    if (access(eio, F_OK) != 0 || !is_segment(fd)) return false;
    unlink(eio);
    errno = EIO;
    return true;
}

extern "C" int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = reinterpret_cast<int (*)(int)>(dlsym(RTLD_NEXT, "fdatasync"));
    if (fail_once(fd)) return -1;
    int r = real(fd);
    if (r == 0) record(fd);
    return r;
}

extern "C" int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = reinterpret_cast<int (*)(int)>(dlsym(RTLD_NEXT, "fsync"));
    int r = real(fd);
    if (r == 0) record(fd);
    return r;
}
