#include "app/signals.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/signalfd.h>
#include <unistd.h>

namespace hato::app {

SignalAction action_for(int signo) {
    switch (signo) {
        case SIGINT:
        case SIGTERM: return SignalAction::Shutdown;
        case SIGHUP: return SignalAction::Reload;
        default: return SignalAction::None;
    }
}

SignalFd::~SignalFd() {
    if (fd_ >= 0) ::close(fd_);
}

bool SignalFd::open(std::string& err) {
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
        err = std::string("sigprocmask: ") + std::strerror(errno);
        return false;
    }
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) {
        err = std::string("signalfd: ") + std::strerror(errno);
        return false;
    }
    return true;
}

void SignalFd::drain(const std::function<void(int signo)>& fn) {
    signalfd_siginfo info;
    while (read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) fn(int(info.ssi_signo));
}

}  // namespace hato::app
