// Group commit (see group_commit.hpp).
#include "app/group_commit.hpp"

#include <algorithm>

namespace hato::app {

void GroupCommit::note_appended(uint64_t now_us, uint64_t appended_lsn, uint64_t appended_bytes) {
    const bool was_pending = pending();
    appended_lsn_ = std::max(appended_lsn_, appended_lsn);
    appended_bytes_ = std::max(appended_bytes_, appended_bytes);
    if (!was_pending && pending()) oldest_us_ = now_us;
}

bool GroupCommit::due(uint64_t now_us) const {
    if (in_flight_ || !pending()) return false;
    if (failing_ || policy_.window_us == 0) return true;
    if (policy_.batch_bytes != 0 && pending_bytes() >= policy_.batch_bytes) return true;
    return now_us >= oldest_us_ + policy_.window_us;
}

void GroupCommit::started(uint64_t lsn, uint64_t appended_bytes) {
    appended_lsn_ = std::max(appended_lsn_, lsn);
    appended_bytes_ = std::max(appended_bytes_, appended_bytes);
    prev_covered_lsn_ = covered_lsn_;
    prev_covered_bytes_ = covered_bytes_;
    syncing_oldest_us_ = oldest_us_;
    covered_lsn_ = std::max(covered_lsn_, lsn);
    covered_bytes_ = appended_bytes_;
    syncing_lsn_ = lsn;
    in_flight_ = true;
}

GroupCommit::Outcome GroupCommit::finished(bool ok) {
    Outcome out;
    in_flight_ = false;
    if (!ok) {
        out.first_failure = !failing_;
        failing_ = true;
        // Its records are not durable: the next sync covers them again, and
        // they have been waiting since before this one started.
        const bool others_pending = pending();
        covered_lsn_ = prev_covered_lsn_;
        covered_bytes_ = prev_covered_bytes_;
        oldest_us_ = others_pending ? std::min(oldest_us_, syncing_oldest_us_) : syncing_oldest_us_;
        return out;
    }
    out.recovered = failing_;
    failing_ = false;
    // Only ever forward: acknowledgements leave in LSN order.
    if (syncing_lsn_ > durable_lsn_) {
        durable_lsn_ = syncing_lsn_;
        out.durable_lsn = durable_lsn_;
    }
    return out;
}

uint64_t GroupCommit::wake_at_us() const {
    if (policy_.window_us == 0 || in_flight_ || failing_ || !pending()) return 0;
    return oldest_us_ + policy_.window_us;
}

}  // namespace hato::app
