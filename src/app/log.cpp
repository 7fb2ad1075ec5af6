#include "app/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace hato::app {

namespace {

config::LogLevel g_level = config::LogLevel::Info;

const char* level_word(config::LogLevel level) {
    switch (level) {
        case config::LogLevel::Error: return "error";
        case config::LogLevel::Warn: return "warn ";
        case config::LogLevel::Info: return "info ";
        case config::LogLevel::Debug: return "debug";
    }
    return "?    ";
}

// Under systemd stderr is a stream into the journal ($JOURNAL_STREAM names
// it): a "<N>" prefix gives each line its syslog priority, so that
// `journalctl -p err` and alerting on priority see errors (the level word
// alone left every line at "info").
bool stderr_is_journal() {
    static const bool is = [] {
        const char* stream = std::getenv("JOURNAL_STREAM");
        unsigned long long dev = 0, ino = 0;
        if (!stream || std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
        struct stat st {};
        return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
    }();
    return is;
}

int syslog_priority(config::LogLevel level) {
    switch (level) {
        case config::LogLevel::Error: return 3;
        case config::LogLevel::Warn: return 4;
        case config::LogLevel::Info: return 6;
        case config::LogLevel::Debug: return 7;
    }
    return 6;
}

void vlog(config::LogLevel level, const char* fmt, va_list args) {
    if (!log_enabled(level)) return;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);

    // Built in one buffer and written with one write(2), so lines from a
    // crash handler or a child never interleave mid-line.
    char line[2048];
    int n = stderr_is_journal() ? snprintf(line, sizeof line, "<%d>", syslog_priority(level)) : 0;
    n += static_cast<int>(strftime(line + n, sizeof line - n, "%Y-%m-%dT%H:%M:%S", &utc));
    n += snprintf(line + n, sizeof line - n, ".%03ldZ %s ", now.tv_nsec / 1000000, level_word(level));
    int body = vsnprintf(line + n, sizeof line - n, fmt, args);
    if (body < 0) body = 0;
    n += body;
    if (n > static_cast<int>(sizeof line) - 2) n = sizeof line - 2;  // truncated
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;  // nowhere left to report a failing stderr
}

}  // namespace

void set_log_level(config::LogLevel level) { g_level = level; }

bool log_enabled(config::LogLevel level) { return level <= g_level; }

#define HATO_DEFINE_LOG(name, level)    \
    void name(const char* fmt, ...) {   \
        va_list args;                   \
        va_start(args, fmt);            \
        vlog(level, fmt, args);         \
        va_end(args);                   \
    }

HATO_DEFINE_LOG(log_error, config::LogLevel::Error)
HATO_DEFINE_LOG(log_warn, config::LogLevel::Warn)
HATO_DEFINE_LOG(log_info, config::LogLevel::Info)
HATO_DEFINE_LOG(log_debug, config::LogLevel::Debug)

}  // namespace hato::app
