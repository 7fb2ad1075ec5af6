// The fuzz script's environment over the real durable store: the broker
// writes the append log (small segments, so compaction and segment changes
// happen), a "durable" step syncs it, and a restart is a crash: the broker
// is dropped without shutdown, the newest segment's tail is optionally torn
// or overwritten, and a new broker recovers from what is on disk. Recovery
// must never crash or trust a damaged record, whatever was written before.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "broker/log_persistence.hpp"
#include "store/log.hpp"

namespace hato::fuzz {

class LogEnv {
public:
    LogEnv() {
        // tmpfs when there is one: a fuzzer reopens the log thousands of times.
        const std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        dir_ = base + "/hato-fuzz-log-" + std::to_string(::getpid());
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        open();
    }
    ~LogEnv() {
        persist_.reset();
        log_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    LogEnv(const LogEnv&) = delete;
    LogEnv& operator=(const LogEnv&) = delete;

    broker::Persistence& persistence() { return *persist_; }
    uint64_t make_durable() {
        log_->sync_now();
        return persist_->durable_ticket();
    }
    void toggle_full() {}   // the log's own quota (max_bytes) decides
    void pass_end() { persist_->maintenance(64); }   // compaction, as the server runs it
    void restart(uint8_t damage) {
        persist_.reset();
        log_.reset();
        if (damage) damage_newest_segment(damage);
        open();
    }

private:
    void open() {
        store::Options o;
        o.dir = dir_;
        o.segment_bytes = 16 * 1024;
        o.max_bytes = 256 * 1024;   // reachable: quota exceeded paths
        std::string err;
        log_ = store::Log::open(o, err);
        if (!log_) {
            std::fprintf(stderr, "fuzz: cannot open log in %s: %s\n", dir_.c_str(), err.c_str());
            std::abort();
        }
        persist_ = std::make_unique<broker::LogPersistence>(*log_, store::SyncMode::Always);
    }

    // damage: low 2 bits choose what (none, truncate, zero 64 bytes, flip a
    // byte), the rest where (a fraction of the file).
    void damage_newest_segment(uint8_t damage) {
        namespace fs = std::filesystem;
        fs::path newest;
        for (const auto& e : fs::directory_iterator(dir_))
            if (e.is_regular_file() && (newest.empty() || e.path().filename() > newest.filename())) newest = e.path();
        if (newest.empty()) return;
        const uint64_t size = fs::file_size(newest);
        const uint64_t at = size * (damage >> 2) / 64;
        switch (damage & 3) {
        case 1:
            fs::resize_file(newest, at);
            break;
        case 2:
        case 3: {
            std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
            f.seekg(std::streamoff(at));
            char c = 0;
            f.get(c);
            f.seekp(std::streamoff(at));
            if ((damage & 3) == 2) {
                const std::string zeros(size_t(std::min<uint64_t>(64, size - at)), '\0');
                f.write(zeros.data(), std::streamsize(zeros.size()));
            } else {
                f.put(char(c ^ 0x5A));
            }
            break;
        }
        default:
            break;
        }
    }

    std::string dir_;
    std::unique_ptr<store::Log> log_;
    std::unique_ptr<broker::LogPersistence> persist_;
};

}  // namespace hato::fuzz
