#include "broker/log_sink.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdint>
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

std::string shown_client_id(std::string_view id) {
    std::string shown(id.substr(0, 64));
    std::replace_if(shown.begin(), shown.end(), [](char ch) { return uint8_t(ch) < 0x20 || ch == 0x7F; }, '?');
    return shown;
}

}  // namespace hato::broker
