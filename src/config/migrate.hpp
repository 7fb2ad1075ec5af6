// `hato migrate`: translates a Mosquitto 1.6/2.0/2.1 configuration into a
// commented hato.toml. A pure function of the file contents; the files an
// `include_dir` names come through callbacks, so tests need no disk.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hato::config {

struct MigrateInput {
    std::string name;  // shown in comments as name:line (the main file's path)
    std::string text;  // its contents
    // The file names (not paths) in directory `dir`, or nullopt if it
    // cannot be read. Only names ending in ".conf" are followed, sorted.
    std::function<std::optional<std::vector<std::string>>(const std::string& dir)> list_dir;
    // The contents of file `path` (dir + "/" + name), or nullopt.
    std::function<std::optional<std::string>(const std::string& path)> read_file;
    // This machine's name: a bridge without remote_clientid gets Mosquitto's
    // default, "<hostname>.<connection name>". Empty: unknown.
    std::string hostname;
};

struct MigrateResult {
    std::string toml;  // the hato.toml text
    // One entry per Mosquitto line with no hato equivalent, as
    // "file:line: option: why" (each is also a comment in `toml`).
    std::vector<std::string> unmapped;
};

MigrateResult migrate_mosquitto(const MigrateInput& input);

}  // namespace hato::config
