#include "auth/login_limiter.hpp"

namespace hato::auth {

std::string_view host_of(std::string_view peer) {
    size_t colon = peer.rfind(':');
    return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

LoginLimiter::Refusal LoginLimiter::blocked(std::string_view address, uint64_t now_ms, bool& first_refusal,
                                            uint32_t pending) {
    first_refusal = false;
    if (max_failed_ == 0) return kNotRefused;
    auto it = windows_.find(std::string(address));
    if (it != windows_.end() && now_ms - it->second.start_ms >= kWindowMs) {
        windows_.erase(it);
        it = windows_.end();
    }
    const uint32_t failures = it == windows_.end() ? 0 : it->second.failures;
    if (uint64_t(failures) + pending < max_failed_) return kNotRefused;
    if (failures < max_failed_) return kRefusedWithPending;
    first_refusal = !it->second.refusal_reported;
    it->second.refusal_reported = true;
    return kRefusedForFailures;
}

uint32_t LoginLimiter::failures(std::string_view address, uint64_t now_ms) const {
    auto it = windows_.find(std::string(address));
    if (it == windows_.end() || now_ms - it->second.start_ms >= kWindowMs) return 0;
    return it->second.failures;
}

void LoginLimiter::record_failure(std::string_view address, uint64_t now_ms) {
    if (max_failed_ == 0) return;
    std::string key(address);
    auto it = windows_.find(key);
    if (it != windows_.end() && now_ms - it->second.start_ms >= kWindowMs) {
        it->second = Window{now_ms, 0, false};
    } else if (it == windows_.end()) {
        if (windows_.size() >= max_addresses_) make_room(now_ms);
        it = windows_.emplace(std::move(key), Window{now_ms, 0, false}).first;
    }
    ++it->second.failures;
}

void LoginLimiter::make_room(uint64_t now_ms) {
    for (auto it = windows_.begin(); it != windows_.end();) {
        if (now_ms - it->second.start_ms >= kWindowMs) it = windows_.erase(it);
        else ++it;
    }
    if (windows_.size() < max_addresses_) return;
    auto oldest = windows_.begin();
    for (auto it = windows_.begin(); it != windows_.end(); ++it)
        if (it->second.start_ms < oldest->second.start_ms) oldest = it;
    windows_.erase(oldest);
}

}  // namespace hato::auth
