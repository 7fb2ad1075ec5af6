// The broker's CONNECT check over a Mosquitto-style password file, with
// anonymous access decided per listener and TLS client certificates standing
// in for a password (identity_as_username).
//
// Password hashing (PBKDF2, ~90 ms) runs on a HashPool, never on the reactor:
// start() answers at once when it can (certificate, anonymous, a cached
// verified password, an address over its failure limit, a full queue) and
// otherwise queues the hash; collect() later sends the verdict to the result
// sink (the wiring forwards it to Broker::on_auth_result).
//
// Against a flood of wrong passwords: an address's checks still pending
// count against its failure limit, the pool's queue is bounded (a CONNECT
// beyond it is refused as server busy), and a check from an address with no
// failure in the window and nothing pending goes to the pool's first lane,
// ahead of every other. A flooding address has its own checks pending, so
// all but its first CONNECT wait in the second lane, even when it moves to
// a new address every few seconds: a device logging in from elsewhere waits
// behind at most one check per flooding address, not behind the flood.
// A flood from many addresses at once (one CONNECT each) can fill the first
// lane too; being bounded, logins are then refused as busy, but promptly.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/hash_pool.hpp"
#include "auth/login_limiter.hpp"
#include "auth/password_file.hpp"
#include "auth/verified_cache.hpp"
#include "broker/auth.hpp"

namespace hato::auth {

class PasswordAuthenticator final : public broker::Authenticator {
public:
    using ResultSink = std::function<void(broker::ConnId, uint64_t request, const broker::AuthVerdict&)>;
    // Called once per address and window when its failure limit starts refusing.
    using RefusalLog = std::function<void(std::string_view address, uint32_t limit)>;
    // Logins refused with server busy: called once when refusals start (with
    // the first refused address, and `queue_full`: the pool's queue, else
    // that address's own checks waiting at its failure limit) and once when
    // the queue has drained (with how many were refused since the last such
    // call), not per CONNECT; at most one such pair a minute.
    using BusyLog = std::function<void(bool begins, std::string_view address, uint64_t refused, bool queue_full)>;

    PasswordAuthenticator();

    // Index = listener index; a listener beyond the list refuses anonymous clients.
    void set_anonymous_allowed(std::vector<bool> by_listener) { anonymous_ = std::move(by_listener); }
    // nullptr: no password file. Swapped whole on reload; a check never sees
    // a half-loaded file. Empties the cache of verified passwords.
    void set_password_file(std::shared_ptr<const PasswordFile> file);
    // Index = listener index: a password file of that listener's own, used
    // there instead of the one above; null entries (and listeners beyond
    // the list) use the one above. Empties the cache too.
    void set_listener_password_files(std::vector<std::shared_ptr<const PasswordFile>> by_listener);
    // Hashes on `pool` and reports verdicts to `sink`. Without a pool (tests,
    // tools) start() hashes on the calling thread.
    void set_pool(HashPool* pool, ResultSink sink);
    void set_max_failed_per_minute(uint32_t limit);   // 0 = no limit
    void set_refusal_log(RefusalLog log) { refusal_log_ = std::move(log); }
    void set_busy_log(BusyLog log) { busy_log_ = std::move(log); }
    void set_clock(std::function<uint64_t()> now_ms) { now_ms_ = std::move(now_ms); }   // tests

    // The source address of a connection, for the failure limit; kept until
    // its CONNECT is checked or it closes.
    void note_peer(broker::ConnId id, std::string_view peer);
    void forget_peer(broker::ConnId id) { peers_.erase(id); }

    // The pool's eventfd is readable: hands finished verdicts to the sink.
    void collect();
    // Once a second: refusals of busy episodes not logged (within a minute
    // of a logged one) are logged once that minute is over, even if no
    // episode follows to carry them.
    void on_tick();

    // Success (user_verified when a password or certificate proved the
    // name), BadUserNameOrPassword (unknown user, wrong password, or the
    // address over its failure limit: never which one) or NotAuthorized
    // (anonymous client where that is refused), or ServerBusy (the pool's
    // queue is full: nothing was checked or counted, the client may retry).
    std::optional<broker::AuthVerdict> start(const broker::AuthRequest& req) override;
    void cancel(broker::ConnId conn, uint64_t request) override;

    // start() on the calling thread, for tests (no pool set).
    uint8_t check(std::optional<std::string_view> username, std::optional<std::span<const uint8_t>> password,
                  std::string_view client_id, int listener_index,
                  std::optional<std::string_view> identity = std::nullopt);

    size_t cached() const { return cache_.size(); }
    size_t pending() const { return pending_.size(); }
    uint32_t pending_from(std::string_view address) const;   // host part

private:
    struct Pending {
        broker::ConnId conn = 0;
        uint64_t request = 0;
        bool wanted = true;          // false: its connection left while the hash ran
        std::string address;
        std::string cache_key;
        uint64_t cache_generation = 0;
        // What is checked, and against which file: a reload that replaces
        // the file while the hash runs has the check done again (recheck).
        int listener_index = -1;
        std::string user, password;
        std::shared_ptr<const PasswordFile> file;
    };

    bool anonymous_allowed(int listener_index) const;
    // A user name with no password file to check it against: the anonymous rule.
    broker::AuthVerdict anonymous_verdict(int listener_index) const;
    // The verified cache's key for a pair checked against `file`.
    std::string cache_key(std::string_view user, std::string_view password,
                          const std::shared_ptr<const PasswordFile>& file, int listener_index) const;
    const std::shared_ptr<const PasswordFile>& passwords_for(int listener_index) const;
    using PendingMap = std::unordered_map<uint64_t, Pending>;   // by pool ticket
    // Records the outcome (cache or failure count) and returns the verdict.
    broker::AuthVerdict conclude(const Pending& p, bool ok);
    // Queues p's hash against p.file; nullopt, or busy when the queue is full.
    std::optional<broker::AuthVerdict> submit(Pending p, HashPool::Lane lane);
    // A success against a file a reload has since replaced: checked again
    // against the listener's file now, so a user removed or a password
    // changed there does not get in on the old one.
    std::optional<broker::AuthVerdict> recheck(Pending p);
    // The only way out of pending_: keeps pending_by_address_ in step.
    Pending release(PendingMap::iterator it);
    broker::AuthVerdict refuse_busy(std::string_view address, bool queue_full);
    void end_busy_episode_if_drained();

    std::vector<bool> anonymous_;
    std::shared_ptr<const PasswordFile> passwords_;
    std::vector<std::shared_ptr<const PasswordFile>> listener_passwords_;
    HashPool* pool_ = nullptr;
    ResultSink sink_;
    RefusalLog refusal_log_;
    BusyLog busy_log_;
    std::function<uint64_t()> now_ms_;
    uint32_t max_failed_per_minute_ = 30;
    LoginLimiter limiter_;
    VerifiedCache cache_;
    std::unordered_map<broker::ConnId, std::string> peers_;       // host part only
    PendingMap pending_;
    std::unordered_map<broker::ConnId, uint64_t> ticket_by_conn_;
    // Checks in pending_ per address; an address leaves at 0 (bounded by the
    // queue bound plus the workers).
    std::unordered_map<std::string, uint32_t> pending_by_address_;
    static constexpr uint64_t kBusyLogIntervalMs = 60000;   // between logged busy episodes
    bool busy_episode_ = false;     // refusing as server busy until the queue drains
    bool busy_line_open_ = false;   // this episode's start was logged: its end is too
    bool busy_logged_ = false;
    uint64_t busy_logged_ms_ = 0;   // when an episode's start was last logged
    uint64_t busy_refused_ = 0;     // refused as server busy since the last end line
};

}  // namespace hato::auth
