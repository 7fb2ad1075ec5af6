// The one TOML file, parsed into plain structs. Unknown keys and wrong types
// are errors, each reported as "file:line:column: key: message".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "broker/config.hpp"
#include "store/log.hpp"

namespace hato::config {

struct Listener {
    std::string address = "127.0.0.1";
    uint16_t port = 1883;
    // TLS keys arrive with the security issue.
};

enum class LogLevel : uint8_t { Error, Warn, Info, Debug };

struct AppConfig {
    std::string event_backend = "auto";    // [broker] auto | io_uring | epoll
    std::vector<Listener> listeners;        // [[listener]]; default: one on 127.0.0.1:1883
    broker::Config broker;                  // [limits], [mqtt]
    bool storage_enabled = true;            // [storage] enabled
    store::Options storage;                 // [storage] dir, sync, ...
    uint32_t sync_interval_ms = 100;        // [storage] sync_interval_ms (sync = "interval")
    LogLevel log_level = LogLevel::Info;    // [log] level
};

// The built-in defaults, equal to conf/hato.toml.
AppConfig defaults();

// Parses `path` over defaults(). Returns false with one entry per problem
// in `errors` ("file:line:column: key: message").
bool load_file(const std::string& path, AppConfig& out, std::vector<std::string>& errors);
// Same, from a string (tests); `name` is used in messages.
bool load_string(const std::string& text, const std::string& name, AppConfig& out,
                 std::vector<std::string>& errors);

}  // namespace hato::config
