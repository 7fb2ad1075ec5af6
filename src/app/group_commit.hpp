// Group commit for sync = "always": when to start a store sync, and which
// LSN a finished one makes durable. No sockets, no clock of its own, no
// store: the wiring (server.cpp) tells it what was appended, when a sync
// started and how it ended, and what time it is; it answers "start a sync
// now", "durable up to this LSN" and "wake the loop at this time".
//
// The window: a sync starts once the oldest record not yet covered by a
// sync has waited `window_us`, or once `batch_bytes` are waiting, whichever
// comes first. One sync covers everything appended before it started, so
// on a flash card many acknowledgements share one page write and one
// journal commit instead of each paying for its own. window_us = 0 syncs
// as soon as anything is pending at a pass end.
#pragma once

#include <cstdint>

namespace hato::app {

struct GroupCommitPolicy {
    uint64_t window_us = 0;    // 0: no waiting
    uint64_t batch_bytes = 0;  // 0: no size trigger
};

class GroupCommit {
public:
    explicit GroupCommit(GroupCommitPolicy policy) : policy_(policy) {}

    // End of a loop pass: the store holds records up to `appended_lsn`, and
    // `appended_bytes` bytes were appended since it opened (monotonic).
    // Starts the window of records nobody has waited for yet.
    void note_appended(uint64_t now_us, uint64_t appended_lsn, uint64_t appended_bytes);

    // Whether a sync should start now: nothing in flight, something not yet
    // covered, and the window expired or the batch full (or the last sync
    // failed: retried at once, as the records already waited).
    bool due(uint64_t now_us) const;

    // A sync started that makes everything up to `lsn` durable once it
    // succeeds (`appended_bytes` as in note_appended, at its start);
    // records appended after it wait for the next one.
    void started(uint64_t lsn, uint64_t appended_bytes);

    struct Outcome {
        uint64_t durable_lsn = 0;  // acknowledgements up to here may leave (0: none)
        bool first_failure = false;  // this sync failed and the previous one did not
        bool recovered = false;      // this sync succeeded after failures
    };
    // The sync started last ended. A failure releases nothing: its records
    // are covered again by the next sync, which is due at once.
    Outcome finished(bool ok);

    // When the loop must wake up for the window to expire (0: no need: no
    // window, nothing waiting, a sync in flight whose completion wakes it,
    // or failing, when retries follow the loop's passes and ticks instead
    // of spinning on a broken disk).
    uint64_t wake_at_us() const;

    bool in_flight() const { return in_flight_; }
    uint64_t syncing_lsn() const { return syncing_lsn_; }   // of the sync in flight, or the last one
    bool failing() const { return failing_; }
    uint64_t durable_lsn() const { return durable_lsn_; }
    // Bytes appended and not covered by a started sync.
    uint64_t pending_bytes() const { return appended_bytes_ - covered_bytes_; }
    // Records noted that no started sync covers.
    bool pending() const { return appended_lsn_ > covered_lsn_; }

private:

    GroupCommitPolicy policy_;
    uint64_t appended_lsn_ = 0;
    uint64_t appended_bytes_ = 0;
    uint64_t covered_lsn_ = 0;     // the highest LSN a started sync covers
    uint64_t covered_bytes_ = 0;   // appended_bytes_ when that sync started
    uint64_t oldest_us_ = 0;       // when the oldest uncovered record was first seen
    uint64_t syncing_lsn_ = 0;     // LSN of the sync in flight
    uint64_t durable_lsn_ = 0;     // highest LSN released
    // What was covered before the sync in flight, and how long its records
    // had waited: a failed sync hands them back to the next one.
    uint64_t prev_covered_lsn_ = 0;
    uint64_t prev_covered_bytes_ = 0;
    uint64_t syncing_oldest_us_ = 0;
    bool in_flight_ = false;
    bool failing_ = false;
};

}  // namespace hato::app
