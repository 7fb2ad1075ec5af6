// Where the broker's few log lines go. The broker layer does no I/O: the
// wiring points this at its logger; unset (unit tests), lines are dropped.
#pragma once

#include <string>
#include <string_view>

namespace hato::broker {

using LogFn = void (*)(const char* line);

// Not thread-safe: set once at start-up, before the broker runs.
void set_log_sink(LogFn fn);

// printf-style; the line is formatted only when a sink is set.
void log_notice(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// A client id as log lines show it. It is the client's own text: shortened
// to 64 bytes, control characters masked ('?'), so that it cannot forge or
// break up lines of the log.
std::string shown_client_id(std::string_view id);

}  // namespace hato::broker
