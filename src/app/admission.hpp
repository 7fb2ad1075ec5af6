// Connection admission: whether an accepted connection may reach the broker
// ([limits] max_connections, [[listener]] max_connections, shutdown), which
// connections are open on which listener slot, and which were refused (closed
// at once; their close must not reach the broker either). Refusals are
// reported at most once a second, with a count, so a connection flood does
// not flood the log. No sockets: the wiring closes what this refuses.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "app/listener_limits.hpp"
#include "app/report_throttle.hpp"
#include "net/reactor.hpp"

namespace hato::app {

class Admission {
public:
    enum class Verdict { Admit, ShuttingDown, TotalFull, ListenerFull };

    // For a connection accepted on listener slot `listener_index`.
    Verdict decide(int listener_index, bool stopping, uint64_t max_connections) const;
    static const char* reason(Verdict v);

    // An admitted connection: counted until closed().
    void admitted(net::ConnId id, int listener_index);
    void closed(net::ConnId id);
    // A refused one: closed by the wiring, hidden from the broker.
    void refused(net::ConnId id) { refused_.insert(id); }
    bool is_refused(net::ConnId id) const { return refused_.count(id) != 0; }
    // Its close arrived: true if it was a refused one (now forgotten).
    bool forget_refused(net::ConnId id) { return refused_.erase(id) != 0; }

    // A refusal happened at `now_ms`: the number refused since the last
    // report when a report line is due now, nullopt while a line was written
    // less than a second ago.
    std::optional<uint64_t> note_refusal(uint64_t now_ms);

    uint64_t open() const { return open_; }
    std::vector<net::ConnId> connections_on(int listener_index) const;
    // [[listener]] max_connections, at start and on reload: each limited
    // listener counts the connections it has now, also one that had no
    // limit before (it is full at once if it has as many as its new one).
    void set_listener_limits(std::vector<uint32_t> max_by_listener);
    const ListenerLimits& limits() const { return limits_; }

private:
    std::unordered_set<net::ConnId> refused_;
    std::unordered_map<net::ConnId, int> listener_of_;   // admitted connections -> slot
    uint64_t open_ = 0;
    ListenerLimits limits_;
    ReportThrottle refusals_{1000};
};

}  // namespace hato::app
