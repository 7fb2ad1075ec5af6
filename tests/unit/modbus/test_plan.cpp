// The planner: nearby points of one kind share a read, within the limits.
#include <doctest/doctest.h>

#include "modbus/plan.hpp"

using namespace hato::modbus;

TEST_CASE("adjacent points share one read, kinds never mix") {
    std::vector<PlanPoint> pts{{Kind::Holding, 10, 2}, {Kind::Holding, 12, 1}, {Kind::Input, 10, 2},
                               {Kind::Holding, 0, 1},  {Kind::Coil, 5, 1},    {Kind::Coil, 7, 1}};
    auto reads = plan_reads(pts, 0);
    REQUIRE(reads.size() == 5);
    CHECK(reads[0].kind == Kind::Holding);
    CHECK(reads[0].address == 0);
    CHECK(reads[0].count == 1);
    CHECK(reads[1].address == 10);
    CHECK(reads[1].count == 3);
    CHECK(reads[1].points == std::vector<size_t>{0, 1});
    CHECK(reads[2].kind == Kind::Input);
    CHECK(reads[3].kind == Kind::Coil);   // 5 and 7: a gap of one bit
    CHECK(reads[4].address == 7);

    reads = plan_reads(pts, 9);
    REQUIRE(reads.size() == 3);
    CHECK(reads[0].address == 0);
    CHECK(reads[0].count == 13);
    CHECK(reads[2].count == 3);
}

TEST_CASE("a read never exceeds 125 registers or 2000 bits") {
    std::vector<PlanPoint> pts;
    for (uint16_t a = 0; a < 300; a += 2) pts.push_back({Kind::Holding, a, 2});
    auto reads = plan_reads(pts, 0);
    REQUIRE(reads.size() == 3);
    CHECK(reads[0].count == 124);
    CHECK(reads[1].address == 124);
    for (auto& r : reads) CHECK(r.count <= 125);
    pts.clear();
    for (uint16_t a = 0; a < 4500; ++a) pts.push_back({Kind::Discrete, a, 1});
    reads = plan_reads(pts, 0);
    REQUIRE(reads.size() == 3);
    CHECK(reads[0].count == 2000);
    CHECK(reads[2].count == 500);
}

TEST_CASE("overlapping points and the top of the address space") {
    std::vector<PlanPoint> pts{{Kind::Holding, 0, 4}, {Kind::Holding, 1, 2}, {Kind::Holding, 65534, 2},
                               {Kind::Holding, 65535, 2}};
    auto reads = plan_reads(pts, 0);
    REQUIRE(reads.size() == 2);
    CHECK(reads[0].count == 4);
    CHECK(reads[0].points.size() == 2);
    CHECK(reads[1].address == 65534);   // the one past 65535 is left out
    CHECK(reads[1].points.size() == 1);
}
