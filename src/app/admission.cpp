#include "app/admission.hpp"

namespace hato::app {

Admission::Verdict Admission::decide(int listener_index, bool stopping, uint64_t max_connections) const {
    if (stopping) return Verdict::ShuttingDown;
    // The listener's own bound names itself when both are reached.
    if (limits_.full(listener_index)) return Verdict::ListenerFull;
    if (open_ >= max_connections) return Verdict::TotalFull;
    return Verdict::Admit;
}

const char* Admission::reason(Verdict v) {
    switch (v) {
        case Verdict::ShuttingDown: return "shutting down";
        case Verdict::ListenerFull: return "the listener's max_connections reached";
        case Verdict::TotalFull: return "max_connections reached";
        case Verdict::Admit: break;
    }
    return "admitted";
}

void Admission::admitted(net::ConnId id, int listener_index) {
    ++open_;
    limits_.opened(id, listener_index);
    listener_of_[id] = listener_index;
}

void Admission::closed(net::ConnId id) {
    --open_;
    limits_.closed(id);
    listener_of_.erase(id);
}

std::optional<uint64_t> Admission::note_refusal(uint64_t now_ms) { return refusals_.note(now_ms); }

void Admission::set_listener_limits(std::vector<uint32_t> max_by_listener) {
    limits_.configure(std::move(max_by_listener));
    for (const auto& [id, slot] : listener_of_) limits_.opened(id, slot);
}

std::vector<net::ConnId> Admission::connections_on(int listener_index) const {
    std::vector<net::ConnId> ids;
    for (const auto& [id, slot] : listener_of_)
        if (slot == listener_index) ids.push_back(id);
    return ids;
}

}  // namespace hato::app
