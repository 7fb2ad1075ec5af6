// systemd readiness protocol (sd_notify), spoken directly: one datagram per
// state change to the unix socket named by $NOTIFY_SOCKET. No libsystemd.
#pragma once

#include <cstdint>
#include <string>

namespace hato::app {

class Notifier {
public:
    // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Without
    // $NOTIFY_SOCKET every call is a no-op.
    Notifier();
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    bool enabled() const { return fd_ >= 0; }
    // Sends `state` (e.g. "READY=1"); false if it could not be sent.
    bool send(const std::string& state);
    // Sends "WATCHDOG=1" when half the watchdog period has passed since the
    // last one; call often (every tick). `now_ms` is a monotonic clock.
    void watchdog_tick(uint64_t now_ms);
    uint64_t watchdog_interval_ms() const { return watchdog_half_ms_; }

private:
    int fd_ = -1;
    std::string address_;           // sockaddr_un path bytes ('\0'-led when abstract)
    uint64_t watchdog_half_ms_ = 0;  // 0: no watchdog asked for
    uint64_t last_watchdog_ms_ = 0;
};

}  // namespace hato::app
