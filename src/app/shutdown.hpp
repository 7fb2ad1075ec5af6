// Graceful shutdown, in order: announce it (sd_notify STOPPING=1), stop
// accepting, stop the bridges and Modbus pollers, send every client its
// DISCONNECT; then wait until the clients are gone and no store sync is in
// flight, or the grace period ends, and finish: a last store sync, the loop
// stops. A second SIGINT/SIGTERM does not wait any longer.
#pragma once

#include <cstdint>

namespace hato::app {

// The steps, as the wiring carries them out (tests record them).
class ShutdownSteps {
public:
    virtual ~ShutdownSteps() = default;
    virtual void announce() = 0;            // sd_notify STOPPING=1
    virtual void stop_accepting() = 0;      // listeners and the metrics endpoint
    virtual void stop_clients_of_ours() = 0;  // bridges, Modbus pollers
    virtual void disconnect_clients() = 0;  // the broker's DISCONNECT to each
    virtual bool drained() const = 0;       // no connection left, no sync in flight
    virtual void finish() = 0;              // the last store sync; the loop stops
};

class Shutdown {
public:
    Shutdown(ShutdownSteps& steps, uint64_t grace_ms) : steps_(steps), grace_ms_(grace_ms) {}

    // SIGINT/SIGTERM (`why` names it) at `now_ms`.
    void request(const char* why, uint64_t now_ms);
    // After anything that may have drained the broker: finishes once drained
    // or past the deadline (nothing before a request, nothing twice).
    void poll(uint64_t now_ms);

    bool stopping() const { return stopping_; }
    bool stopped() const { return stopped_; }

private:
    ShutdownSteps& steps_;
    uint64_t grace_ms_;
    bool stopping_ = false;
    bool stopped_ = false;
    uint64_t deadline_ms_ = 0;
};

}  // namespace hato::app
