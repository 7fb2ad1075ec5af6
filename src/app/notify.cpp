#include "app/notify.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "app/log.hpp"

namespace hato::app {

Notifier::Notifier() {
    const char* socket_name = std::getenv("NOTIFY_SOCKET");
    if (!socket_name || !*socket_name) return;
    address_ = socket_name;
    // '@' marks a socket in the abstract namespace: its name starts with NUL.
    if (address_[0] == '@') address_[0] = '\0';
    else if (address_[0] != '/') {
        log_warn("NOTIFY_SOCKET=%s is neither a path nor abstract; not notifying", socket_name);
        return;
    }
    if (address_.size() >= sizeof(sockaddr_un::sun_path)) {
        log_warn("NOTIFY_SOCKET too long; not notifying");
        return;
    }
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        log_warn("sd_notify socket: %s", std::strerror(errno));
        return;
    }

    // The watchdog applies only to us if WATCHDOG_PID (when set) is our pid.
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* pid = std::getenv("WATCHDOG_PID");
    bool for_us = !pid || std::strtoll(pid, nullptr, 10) == static_cast<long long>(getpid());
    if (usec && for_us) {
        unsigned long long us = std::strtoull(usec, nullptr, 10);
        if (us > 0) watchdog_half_ms_ = us / 2000 > 0 ? us / 2000 : 1;
    }
}

Notifier::~Notifier() {
    if (fd_ >= 0) close(fd_);
}

bool Notifier::send(const std::string& state) {
    if (fd_ < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, address_.data(), address_.size());
    // Exact length: for abstract names trailing NULs would be part of the name.
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    ssize_t sent = sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa), len);
    if (sent < 0) {
        log_warn("sd_notify %s: %s", state.c_str(), std::strerror(errno));
        return false;
    }
    return true;
}

void Notifier::watchdog_tick(uint64_t now_ms) {
    if (fd_ < 0 || watchdog_half_ms_ == 0) return;
    if (last_watchdog_ms_ != 0 && now_ms - last_watchdog_ms_ < watchdog_half_ms_) return;
    last_watchdog_ms_ = now_ms;
    send("WATCHDOG=1");
}

}  // namespace hato::app
