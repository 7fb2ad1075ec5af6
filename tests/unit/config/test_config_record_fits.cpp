// A queued message is one record of the log: [limits] max_packet_size plus
// the record's own fields must fit in one [storage] segment.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;

TEST_CASE("a packet size that cannot fit in a segment is refused, naming both keys") {
    auto errors = load("[limits]\nmax_packet_size = 1048576\n\n[storage]\nsegment_size_mb = 1\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("t.toml:5:19: storage.segment_size_mb: ", 0) == 0);
    CHECK(errors[0].find("limits.max_packet_size = 1048576 (line 2:19)") != std::string::npos);

    // The default max_packet_size (1 MiB) does not fit a 1 MiB segment either.
    errors = load("[storage]\nsegment_size_mb = 1\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("(the default)") != std::string::npos);

    // Only max_packet_size in the file: the error points at it.
    errors = load("[limits]\nmax_packet_size = 268435460\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("t.toml:2:19: limits.max_packet_size: ", 0) == 0);
}

TEST_CASE("packet sizes that fit, or no storage at all, are accepted") {
    CHECK(load("[limits]\nmax_packet_size = 150000\n[storage]\nsegment_size_mb = 1\n").empty());
    CHECK(load("[storage]\nsegment_size_mb = 2\n").empty());
    CHECK(load("[limits]\nmax_packet_size = 268435460\n[storage]\nenabled = false\n").empty());
}
