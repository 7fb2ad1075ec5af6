// Logging to stderr, one line per event:
//   2026-11-25T06:30:00.123Z info  listening on 127.0.0.1:1883
// printf-style (g++ 12 has no <format>). Never pass passwords or payloads.
#pragma once

#include "config/config.hpp"

namespace hato::app {

void set_log_level(config::LogLevel level);
bool log_enabled(config::LogLevel level);

void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace hato::app
