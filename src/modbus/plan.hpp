// The request planner: the points of one device grouped into as few read
// requests as the protocol allows. Points of one kind whose addresses lie
// within `max_gap` registers (or bits) of each other share one request, up
// to 125 registers or 2000 bits.
#pragma once

#include <cstdint>
#include <vector>

#include "modbus/value.hpp"

namespace hato::modbus {

struct PlanPoint {
    Kind kind = Kind::Holding;
    uint16_t address = 0;
    uint16_t width = 1;   // registers or bits
};

struct PlannedRead {
    Kind kind = Kind::Holding;
    uint16_t address = 0;
    uint16_t count = 0;
    std::vector<size_t> points;   // indexes into the planner's input
};

// Points wider than one request (a string over 125 registers) are not
// planned: validation refuses them first.
std::vector<PlannedRead> plan_reads(const std::vector<PlanPoint>& points, uint16_t max_gap);

}  // namespace hato::modbus
