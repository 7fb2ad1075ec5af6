#include "app/shutdown.hpp"

#include "app/log.hpp"

namespace hato::app {

void Shutdown::request(const char* why, uint64_t now_ms) {
    if (stopping_) {
        // A second signal: do not wait for slow clients any longer.
        log_info("%s again: stopping now", why);
        deadline_ms_ = 0;
        poll(now_ms);
        return;
    }
    stopping_ = true;
    log_info("shutting down (%s)", why);
    steps_.announce();
    steps_.stop_accepting();
    steps_.stop_clients_of_ours();
    steps_.disconnect_clients();
    deadline_ms_ = now_ms + grace_ms_;
    // The loop stops once every client is gone (or the deadline passes).
}

void Shutdown::poll(uint64_t now_ms) {
    if (!stopping_ || stopped_) return;
    if (!steps_.drained() && now_ms < deadline_ms_) return;
    stopped_ = true;
    steps_.finish();
}

}  // namespace hato::app
