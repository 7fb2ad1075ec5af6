// A small tmpfs for tests of a full disk: mounted on a fresh directory,
// unmounted at the end; and a hog that takes the rest of it, like another
// process filling the disk.
#pragma once

#include <doctest/doctest.h>

#include <sys/mount.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "temp_dir.hpp"

namespace hato::store::test {

// mounted() is false where mounting is not allowed (needs CAP_SYS_ADMIN).
class SmallFs {
public:
    explicit SmallFs(const char* size) : dir_(tmp_.sub("fs")) {
        std::filesystem::create_directory(dir_);
        const std::string opts = std::string("size=") + size;
        mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    }
    ~SmallFs() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    std::string dir() const { return dir_ + "/log"; }

private:
    TempDir tmp_;
    std::string dir_;
    bool mounted_ = false;
};

// Takes every byte left on the file system holding `dir`, so the store's
// spare segments cannot come back by themselves; again each time, in a new
// file (hog-N) beside `dir`.
inline void fill_the_rest(const std::string& dir) {
    static int n = 0;
    FILE* f = std::fopen((dir + "/../hog-" + std::to_string(n++)).c_str(), "w");
    REQUIRE(f);
    static const char block[512] = {};
    while (std::fwrite(block, 1, sizeof block, f) == sizeof block && std::fflush(f) == 0) {
    }
    std::fclose(f);
}

}  // namespace hato::store::test
