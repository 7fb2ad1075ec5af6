// What the config unit tests share: a TOML text loaded over defaults(), and
// a look for one error among many.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace hato::config_test {

// Loads `text` (named `name` in the errors) over defaults(); returns the
// errors (empty on success).
inline std::vector<std::string> load(const std::string& text, config::AppConfig& out, const char* name = "t.toml") {
    out = config::defaults();
    std::vector<std::string> errors;
    bool ok = config::load_string(text, name, out, errors);
    CHECK(ok == errors.empty());
    return errors;
}

// The errors of `text` loaded over defaults().
inline std::vector<std::string> load(const std::string& text) {
    config::AppConfig c;
    return load(text, c);
}

// Loads `text` over defaults(), adding to `errors`; true on success.
inline bool load(const std::string& text, config::AppConfig& out, std::vector<std::string>& errors) {
    out = config::defaults();
    return config::load_string(text, "t.toml", out, errors);
}

// true: one of `errors` contains `part`.
inline bool has(const std::vector<std::string>& errors, const std::string& part) {
    for (const std::string& e : errors)
        if (e.find(part) != std::string::npos) return true;
    return false;
}

}  // namespace hato::config_test
