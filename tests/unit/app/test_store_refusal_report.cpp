// The store-refusal log line (app/store_refusal_report.hpp): at most one a
// second, counting what was refused since the previous one.
#include <doctest/doctest.h>

#include "app/store_refusal_report.hpp"

using hato::app::StoreRefusalReport;

TEST_CASE("nothing refused: no line; the first refusal is reported at once") {
    StoreRefusalReport r;
    hato::broker::Stats s;
    CHECK_FALSE(r.due(s, 1000));
    s.store_refusals = 2;
    s.store_refused_quota = 1;
    s.store_refused_full = 1;
    std::optional<std::string> line = r.due(s, 1000);
    REQUIRE(line);
    CHECK(line->find("store refused 2 durable write(s)") == 0);
    CHECK(line->find("1 max_bytes reached") != std::string::npos);
    CHECK(line->find("0 disk full") != std::string::npos);
    CHECK(line->find("1 QoS 1/2 PUBLISH refused while full") != std::string::npos);
}

TEST_CASE("later refusals wait for the second to pass, and count from the last line") {
    StoreRefusalReport r;
    hato::broker::Stats s;
    s.store_refusals = 1;
    s.store_refused_io = 1;
    REQUIRE(r.due(s, 1000));
    s.store_refusals = 4;
    s.store_refused_io = 4;
    CHECK_FALSE(r.due(s, 1500));
    std::optional<std::string> line = r.due(s, 2000);
    REQUIRE(line);
    CHECK(line->find("store refused 3 durable write(s)") == 0);
    CHECK(line->find("3 I/O error") != std::string::npos);
    CHECK_FALSE(r.due(s, 9000));   // nothing new
}
