// The input of a connection whose matching work for this pass ran out
// (match_budget.hpp): kept unread in its input buffer, and handled from
// the next pass end on, one budget a pass, after everyone else's input.
#include "broker/broker_impl.hpp"

namespace hato::broker {

// A configured bridge's local end carries what the site broker sends, and
// the transport cannot stop it (no socket): deferring it would only pile
// its input up here.
bool Broker::Impl::exempt_from_match_budget(const Connection& c) const {
    const Session* s = sessions.get(c.slot);
    return s && budget_of(s->client_id);
}

bool Broker::Impl::out_of_match_work(const Connection& c, uint64_t& work_limit) const {
    if (match_work() < work_limit) return false;
    if (c.connected && !exempt_from_match_budget(c)) return true;
    work_limit = ~uint64_t(0);   // exempt: no need to ask again for this input
    return false;
}

void Broker::Impl::defer_input(Connection& c, std::span<const uint8_t> rest) {
    ConnectionExtras& x = c.open_extras();
    x.inbuf_need = 0;
    x.input_deferred = true;
    x.connect_waits = false;
    x.inbuf.insert(x.inbuf.end(), rest.begin(), rest.end());
    match_budget.defer(c.id);
    ++stats.inputs_deferred;
    // Reading resumes once the deferred input is handled: until then what
    // arrives would only queue behind it, unbounded.
    if (!c.reading_paused) transport.set_reading(c.id, false);
}

void Broker::Impl::resume_deferred_input() {
    if (pressure.intake_held()) return;   // the intake is stopped: no input is handled
    for (ConnId id : match_budget.take_due()) {
        Connection* c = conn(id);
        if (!c || c->dead || !input_deferred(*c)) continue;
        // A receiver it fed went over its limit and stopped the intake:
        // the others wait for a later pass, like the reactor's input.
        if (pressure.intake_held()) {
            match_budget.defer(id);
            continue;
        }
        c->extras()->input_deferred = false;
        replay_input(*c);
        if (c->dead) continue;
        if (!input_deferred(*c)) {
            if (c->extras() && c->extras()->closed_after_input) {
                // The transport may still be open (only the peer's EOF
                // came): closed once what is held for it is out.
                drop(*c, /*publish_will=*/true, /*close_transport=*/true);
                continue;
            }
            if (!c->reading_paused) transport.set_reading(id, true);
        }
        if (pressure.over_limit(*c)) pressure.block(*c, now_ms, /*hold_intake=*/false);
    }
}

}  // namespace hato::broker
