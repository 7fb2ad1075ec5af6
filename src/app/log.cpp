#include "app/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <unistd.h>

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

void vlog(config::LogLevel level, const char* fmt, va_list args) {
    if (!log_enabled(level)) return;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);

    // Built in one buffer and written with one write(2), so lines from a
    // crash handler or a child never interleave mid-line.
    char line[2048];
    int n = static_cast<int>(strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &utc));
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
