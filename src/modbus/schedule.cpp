#include "modbus/schedule.hpp"

namespace hato::modbus {

NextRequest next_request(const DeviceTurn& t) {
    const bool poll_turn = t.poll_due && t.writes_in_row >= kWritesBetweenPolls;
    if (t.write_queued && !poll_turn) return NextRequest::Write;
    if (t.readback_due) return NextRequest::Readback;
    if (t.poll_due) return NextRequest::Poll;
    return NextRequest::Wait;
}

bool WriteQueueBound::admit() {
    if (queued_ >= limit_) {
        ++refused_;
        return false;
    }
    ++queued_;
    return true;
}

}  // namespace hato::modbus
