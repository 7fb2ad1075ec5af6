#include "broker/inflight_window.hpp"

#include <utility>

#include "broker/open_table.hpp"

namespace hato::broker {

size_t InflightWindow::id_position(uint16_t packet_id) const {
    return detail::probe_slot(ids_, hash_id(packet_id), [&](const IdSlot& s) { return s.packet_id == packet_id; });
}

uint64_t InflightWindow::seq_of(uint16_t packet_id) const {
    if (!ids_.empty()) return ids_[id_position(packet_id)].seq;   // an empty slot's seq is 0
    // From the newest: a packet id held twice (only a damaged store could)
    // answers with the newer item, as the table does.
    for (size_t i = count_; i-- > 0;) {
        const OutItem& it = at(i);
        if (it.packet_id == packet_id && it.msg) return it.seq;
    }
    return 0;
}

void InflightWindow::index_put(uint16_t packet_id, uint64_t seq) {
    if (ids_.empty()) {
        if (count_ < kScanned) return;
        index_ring();
    }
    // A packet id already indexed (only a damaged store could hold two in
    // flight) points at the newer item, as the map this replaced did.
    IdSlot& s = ids_[id_position(packet_id)];
    if (!IdSlot::is_empty(s)) {
        s.seq = seq;
        return;
    }
    if ((live_ + 1) * 4 > ids_.size() * 3)
        detail::rehash_slots(ids_, detail::table_capacity_for((live_ + 1) * 2));
    detail::place_slot(ids_, IdSlot{packet_id, seq});
}

void InflightWindow::index_ring() {
    ids_.assign(detail::table_capacity_for((live_ + 1) * 2), IdSlot{});   // sized: index_put does not grow it
    for (size_t i = 0; i < count_; ++i) {   // oldest first: a repeated id ends on the newer item
        const OutItem& it = at(i);
        if (it.msg) index_put(it.packet_id, it.seq);
    }
}

void InflightWindow::index_erase(uint16_t packet_id) {
    if (ids_.empty()) return;
    const size_t pos = id_position(packet_id);
    if (!IdSlot::is_empty(ids_[pos])) detail::erase_slot(ids_, pos);
}

// Seqs are sorted along the ring (holes keep theirs), so a binary search.
size_t InflightWindow::index_of(uint64_t seq) {
    size_t lo = 0, hi = count_;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (at(mid).seq < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < count_ && at(lo).seq == seq && at(lo).msg ? lo : count_;
}

OutItem* InflightWindow::find(uint64_t seq) {
    const size_t i = index_of(seq);
    return i == count_ ? nullptr : &at(i);
}

void InflightWindow::grow() {
    std::vector<OutItem> bigger(ring_.empty() ? 8 : ring_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(at(i));
    ring_.swap(bigger);
    head_ = 0;
}

void InflightWindow::insert(OutItem&& item) {
    if (count_ == ring_.size()) grow();
    index_put(item.packet_id, item.seq);
    ++live_;
    awaiting_ += item.awaiting_resend;
    if (count_ == 0 || at(count_ - 1).seq < item.seq) {
        at(count_++) = std::move(item);
        return;
    }
    // Out of order (recovery only): shift the younger items up by one.
    size_t pos = count_;
    while (pos > 0 && at(pos - 1).seq > item.seq) {
        at(pos) = std::move(at(pos - 1));
        --pos;
    }
    at(pos) = std::move(item);
    ++count_;
}

void InflightWindow::drop(OutItem& hole, uint16_t packet_id) {
    index_erase(packet_id);
    hole.msg = MsgPtr();
    hole.sub_ids.clear();
    --live_;
    awaiting_ -= hole.awaiting_resend;
    hole.awaiting_resend = false;
}

void InflightWindow::set_awaiting_resend(OutItem& item, bool awaiting) {
    if (item.awaiting_resend == awaiting) return;
    item.awaiting_resend = awaiting;
    if (awaiting) ++awaiting_;
    else --awaiting_;
}

bool InflightWindow::erase(uint64_t seq) {
    const size_t i = index_of(seq);
    if (i == count_) return false;
    drop(at(i), at(i).packet_id);
    pop_holes();
    return true;
}

void InflightWindow::pop_holes() {
    while (count_ > 0 && !at(0).msg) {
        head_ = (head_ + 1) & (ring_.size() - 1);
        --count_;
    }
    if (count_ == 0) {
        head_ = 0;
        ids_.clear();   // back to scanning; the capacity stays for the next burst
    }
    // Holes behind an item that is never acknowledged: squeeze them out once
    // they outnumber the live items, so the ring stays within twice the window.
    const size_t holes = count_ - live_;
    if (holes <= 16 || holes <= live_) return;
    size_t out = 0;
    for (size_t i = 0; i < count_; ++i) {
        if (!at(i).msg) continue;
        if (out != i) at(out) = std::move(at(i));
        ++out;
    }
    for (size_t i = out; i < count_; ++i) at(i) = OutItem{};
    count_ = out;
}

void InflightWindow::trim() {
    if (!empty()) return;
    count_ = head_ = 0;
    if (ring_.size() > 64) std::vector<OutItem>().swap(ring_);
    if (ids_.capacity() > 128) std::vector<IdSlot>().swap(ids_);
}

}  // namespace hato::broker
