// [storage] sync_window_us and sync_batch_bytes: defaults, parsing, range and type errors.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;
using config::AppConfig;

TEST_CASE("the group-commit window is 2000 us and the batch 64 KiB by default, as conf/hato.toml says") {
    CHECK(config::defaults().sync_window_us == 2000);
    CHECK(config::defaults().sync_batch_bytes == 65536);
    AppConfig c = config::defaults();
    std::vector<std::string> errors;
    REQUIRE(config::load_file(HATO_SOURCE_ROOT "/conf/hato.toml", c, errors));
    CHECK(c.sync_window_us == 2000);
    CHECK(c.sync_batch_bytes == 65536);
}

TEST_CASE("sync_window_us and sync_batch_bytes are read; 0 is allowed for both") {
    AppConfig c;
    CHECK(load("[storage]\nsync_window_us = 5000\nsync_batch_bytes = 65536\n", c).empty());
    CHECK(c.sync_window_us == 5000);
    CHECK(c.sync_batch_bytes == 65536);
    CHECK(load("[storage]\nsync_window_us = 0\nsync_batch_bytes = 0\n", c).empty());
    CHECK(c.sync_window_us == 0);
    CHECK(c.sync_batch_bytes == 0);
}

TEST_CASE("sync_window_us and sync_batch_bytes errors name the key and its position") {
    AppConfig c;
    auto errors = load("[storage]\nsync_window_us = 2000000\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("t.toml:2:") != std::string::npos);
    CHECK(errors[0].find("storage.sync_window_us") != std::string::npos);
    CHECK(errors[0].find("out of range") != std::string::npos);
    errors = load("[storage]\n\nsync_batch_bytes = -1\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("t.toml:3:") != std::string::npos);
    CHECK(errors[0].find("storage.sync_batch_bytes") != std::string::npos);
    errors = load("[storage]\nsync_window_us = \"1ms\"\n", c);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("storage.sync_window_us") != std::string::npos);
}
