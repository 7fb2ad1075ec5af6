#include "broker/log_sink.hpp"

#include <cstdarg>
#include <cstdio>

namespace hato::broker {
namespace {
LogFn sink = nullptr;
}  // namespace

void set_log_sink(LogFn fn) { sink = fn; }

void log_notice(const char* fmt, ...) {
    if (!sink) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sink(line);
}

}  // namespace hato::broker
