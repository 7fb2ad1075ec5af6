// Test helper: a fresh directory under /tmp, removed afterwards, plus raw
// file access for corrupting segments.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace hato::store::test {

class TempDir {
public:
    // `base` /dev/shm makes fsync free, for tests that reopen a log thousands
    // of times; the others run on a real file system (/tmp).
    explicit TempDir(const std::string& base = "/tmp") {
        std::string tmpl = (std::filesystem::is_directory(base) ? base : "/tmp") + "/hato-store-test-XXXXXX";
        path_ = mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string sub(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

inline std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// Segment files of a log directory, oldest first.
inline std::vector<std::string> segment_files(const std::string& dir) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".seg") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

// Copies every segment file of `from` into the (existing) directory `to`.
inline void copy_segments(const std::string& from, const std::string& to) {
    for (const auto& f : segment_files(from))
        write_file(to + "/" + std::filesystem::path(f).filename().string(), read_file(f));
}

}  // namespace hato::store::test
