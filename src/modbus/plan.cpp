#include "modbus/plan.hpp"

#include <algorithm>
#include <numeric>

#include "modbus/codec.hpp"

namespace hato::modbus {

std::vector<PlannedRead> plan_reads(const std::vector<PlanPoint>& points, uint16_t max_gap) {
    std::vector<size_t> order(points.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (points[a].kind != points[b].kind) return points[a].kind < points[b].kind;
        return points[a].address < points[b].address;
    });
    std::vector<PlannedRead> reads;
    for (size_t idx : order) {
        const PlanPoint& p = points[idx];
        const uint32_t limit = is_bit_kind(p.kind) ? kMaxReadBits : kMaxReadRegisters;
        const uint32_t end = uint32_t(p.address) + p.width;
        if (p.width == 0 || p.width > limit || end > 65536) continue;
        if (!reads.empty()) {
            PlannedRead& r = reads.back();
            const uint32_t r_end = uint32_t(r.address) + r.count;
            // Overlapping points, or ones close enough, share the read.
            if (r.kind == p.kind && p.address <= r_end + max_gap && std::max(end, r_end) - r.address <= limit) {
                r.count = uint16_t(std::max(end, r_end) - r.address);
                r.points.push_back(idx);
                continue;
            }
        }
        reads.push_back({p.kind, p.address, p.width, {idx}});
    }
    return reads;
}

}  // namespace hato::modbus
