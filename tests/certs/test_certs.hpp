// The unit tests' certificates, made once per test process by
// tests/certs/make-certs.sh (a test's meson target defines HATO_SOURCE_ROOT).
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

inline std::string test_cert_dir() {
    static std::string dir = [] {
        std::string d = "/tmp/hato-test-certs-" + std::to_string(getpid());
        std::string cmd = std::string("bash ") + HATO_SOURCE_ROOT + "/tests/certs/make-certs.sh " + d;
        REQUIRE(std::system(cmd.c_str()) == 0);
        return d;
    }();
    return dir;
}
