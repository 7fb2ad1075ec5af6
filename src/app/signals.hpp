// SIGINT/SIGTERM/SIGHUP arrive as readable events on a signalfd, so their
// handling runs on the reactor thread like everything else. SIGPIPE is
// ignored (a peer that went away is seen as a write error instead).
#pragma once

#include <functional>
#include <string>

namespace hato::app {

enum class SignalAction { None, Shutdown, Reload };
// What the server does for signal `signo`.
SignalAction action_for(int signo);

class SignalFd {
public:
    SignalFd() = default;
    SignalFd(const SignalFd&) = delete;
    SignalFd& operator=(const SignalFd&) = delete;
    ~SignalFd();

    // Blocks the three signals for this thread (threads started later
    // inherit the mask) and opens the fd; false with `err` on failure.
    bool open(std::string& err);
    int fd() const { return fd_; }
    // Every signal waiting, in arrival order.
    void drain(const std::function<void(int signo)>& fn);

private:
    int fd_ = -1;
};

}  // namespace hato::app
