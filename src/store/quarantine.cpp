#include "store/quarantine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "store/segment.hpp"

namespace hato::store {
namespace {

bool quarantine_dir(const std::string& dir, std::string& qdir, std::string& err) {
    qdir = dir + "/quarantine";
    if (mkdir(qdir.c_str(), 0750) == 0) {
        if (!fsync_dir(dir)) {
            err = dir + ": fsync: " + std::strerror(errno);
            return false;
        }
    } else if (const int failed = errno; failed != EEXIST) {
        err = qdir + ": mkdir: " + std::strerror(failed);
        errno = failed;
        return false;
    }
    return true;
}

// A name in `qdir` for `path` that does not exist yet.
std::string fresh_name(const std::string& qdir, const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    char stamp[32];
    const time_t now = time(nullptr);
    struct tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    std::string name = qdir + "/" + base + "." + stamp;
    struct stat st{};
    for (int n = 1; lstat(name.c_str(), &st) == 0; ++n)
        name = qdir + "/" + base + "." + stamp + "-" + std::to_string(n);
    return name;
}

bool all_zero(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i]) return false;
    return true;
}

}  // namespace

bool quarantine_copy(const std::string& dir, const std::string& path, int fd, std::string& copy,
                     std::string& err) {
    std::string qdir;
    if (!quarantine_dir(dir, qdir, err)) return false;
    copy = fresh_name(qdir, path);
    const int out = ::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (out < 0) {
        const int failed = errno;
        err = copy + ": open: " + std::strerror(failed);
        errno = failed;
        return false;
    }
    std::vector<uint8_t> buf(64 * 1024);
    off_t at = 0;
    bool ok = true;
    int failed = 0;   // the failing call's errno, for the caller
    for (;;) {
        const ssize_t n = pread(fd, buf.data(), buf.size(), at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failed = errno;
            err = path + ": read: " + std::strerror(failed);
            ok = false;
            break;
        }
        if (n == 0) break;
        if (!all_zero(buf.data(), static_cast<size_t>(n))) {
            for (ssize_t done = 0; done < n;) {
                const ssize_t w = pwrite(out, buf.data() + done, static_cast<size_t>(n - done), at + done);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    failed = w < 0 ? errno : ENOSPC;
                    err = copy + ": write: " + std::strerror(failed);
                    ok = false;
                    break;
                }
                done += w;
            }
            if (!ok) break;
        }
        at += n;
    }
    if (ok && ftruncate(out, at) != 0) {  // trailing zeros as a hole
        failed = errno;
        err = copy + ": ftruncate: " + std::strerror(failed);
        ok = false;
    }
    if (ok && fsync(out) != 0) {
        failed = errno;
        err = copy + ": fsync: " + std::strerror(failed);
        ok = false;
    }
    ::close(out);
    if (ok && !fsync_dir(qdir)) {
        failed = errno;
        err = qdir + ": fsync: " + std::strerror(failed);
        ok = false;
    }
    if (!ok) {
        ::unlink(copy.c_str());
        errno = failed;
    }
    return ok;
}

bool quarantine_move(const std::string& dir, const std::string& path, std::string& moved, std::string& err) {
    std::string qdir;
    if (!quarantine_dir(dir, qdir, err)) return false;
    moved = fresh_name(qdir, path);
    if (::rename(path.c_str(), moved.c_str()) != 0) {
        err = path + ": rename to " + moved + ": " + std::strerror(errno);
        return false;
    }
    // Both directories: the new name must exist once the old one is gone.
    if (!fsync_dir(qdir) || !fsync_dir(dir)) {
        err = dir + ": fsync: " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace hato::store
