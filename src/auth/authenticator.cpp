#include "auth/authenticator.hpp"

#include <chrono>

#include "mqtt/packet.hpp"

namespace hato::auth {

using broker::AuthVerdict;

PasswordAuthenticator::PasswordAuthenticator()
    : now_ms_([] {
          return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count());
      }),
      limiter_(max_failed_per_minute_) {}

bool PasswordAuthenticator::anonymous_allowed(int listener_index) const {
    return listener_index >= 0 && size_t(listener_index) < anonymous_.size() && anonymous_[size_t(listener_index)];
}

void PasswordAuthenticator::set_password_file(std::shared_ptr<const PasswordFile> file) {
    passwords_ = std::move(file);
    cache_.clear();   // a changed or removed password must not stay accepted
}

void PasswordAuthenticator::set_listener_password_files(std::vector<std::shared_ptr<const PasswordFile>> by_listener) {
    listener_passwords_ = std::move(by_listener);
    cache_.clear();
}

const std::shared_ptr<const PasswordFile>& PasswordAuthenticator::passwords_for(int listener_index) const {
    if (listener_index >= 0 && size_t(listener_index) < listener_passwords_.size() &&
        listener_passwords_[size_t(listener_index)])
        return listener_passwords_[size_t(listener_index)];
    return passwords_;
}

void PasswordAuthenticator::set_pool(HashPool* pool, ResultSink sink) {
    pool_ = pool;
    sink_ = std::move(sink);
}

void PasswordAuthenticator::set_max_failed_per_minute(uint32_t limit) {
    max_failed_per_minute_ = limit;
    limiter_.set_limit(limit);
}

void PasswordAuthenticator::note_peer(broker::ConnId id, std::string_view peer) {
    peers_[id] = std::string(host_of(peer));
}

std::optional<AuthVerdict> PasswordAuthenticator::start(const broker::AuthRequest& req) {
    // A certificate signed by the listener's CA already proved who this is.
    if (req.identity)
        return req.identity->empty() ? AuthVerdict{mqtt::rc::NotAuthorized, false} : AuthVerdict{mqtt::rc::Success, true};

    // No user name, or one with no password file to check it against (as
    // Mosquitto does): no credentials at all, so the anonymous rules apply.
    const std::shared_ptr<const PasswordFile>& passwords = passwords_for(req.listener_index);
    if (!req.username || !passwords) {
        return anonymous_verdict(req.listener_index);
    }

    Pending p;
    p.conn = req.conn;
    p.request = req.id;
    if (auto it = peers_.find(req.conn); it != peers_.end()) {
        p.address = std::move(it->second);
        peers_.erase(it);
    }
    // Before the cache: a guesser over the limit must not learn that a
    // guess matched a recently used password. Its checks still pending count
    // too, so a burst cannot queue past the limit before the first of them
    // has finished; refused for those alone, it is told to come back (busy),
    // not that its password is wrong: devices behind one NAT address with
    // the right one would otherwise hear that and stop trying.
    const uint64_t now = now_ms_();
    const uint32_t in_flight = pending_from(p.address);
    bool first_refusal = false;
    if (const LoginLimiter::Refusal r = limiter_.blocked(p.address, now, first_refusal, in_flight)) {
        if (r == LoginLimiter::kRefusedWithPending) return refuse_busy(p.address, /*queue_full=*/false);
        if (first_refusal && refusal_log_) refusal_log_(p.address, max_failed_per_minute_);
        return AuthVerdict{mqtt::rc::BadUserNameOrPassword, false};
    }

    std::string_view user = *req.username;
    std::string_view pw;
    if (req.password) pw = std::string_view(reinterpret_cast<const char*>(req.password->data()), req.password->size());
    p.cache_key = cache_key(user, pw, passwords, req.listener_index);
    if (cache_.contains(p.cache_key)) return AuthVerdict{mqtt::rc::Success, true};
    p.cache_generation = cache_.generation();

    if (!pool_) return conclude(p, passwords->verify(user, pw));
    // The first lane only for an address with a clean record: one that
    // failed this minute or already waits for a check goes behind it (see
    // the header for why this holds against a flood that changes address).
    const bool clean = in_flight == 0 && limiter_.failures(p.address, now) == 0;
    p.listener_index = req.listener_index;
    p.user = std::string(user);
    p.password = std::string(pw);
    p.file = passwords;
    return submit(std::move(p), clean ? HashPool::Lane::First : HashPool::Lane::Second);
}

std::optional<AuthVerdict> PasswordAuthenticator::submit(Pending p, HashPool::Lane lane) {
    // verify() costs the same for an unknown user as for a wrong password.
    const uint64_t ticket =
        pool_->submit([file = p.file, u = p.user, w = p.password] { return file->verify(u, w); }, lane);
    if (ticket == 0) return refuse_busy(p.address, /*queue_full=*/true);
    ticket_by_conn_[p.conn] = ticket;
    ++pending_by_address_[p.address];
    pending_.emplace(ticket, std::move(p));
    return std::nullopt;
}

AuthVerdict PasswordAuthenticator::anonymous_verdict(int listener_index) const {
    return anonymous_allowed(listener_index) ? AuthVerdict{mqtt::rc::Success, false}
                                             : AuthVerdict{mqtt::rc::NotAuthorized, false};
}

std::string PasswordAuthenticator::cache_key(std::string_view user, std::string_view password,
                                             const std::shared_ptr<const PasswordFile>& file,
                                             int listener_index) const {
    std::string key = cache_.key(user, password);
    // A pair accepted by one listener's own file proves nothing on another.
    if (file != passwords_) key += "@" + std::to_string(listener_index);
    return key;
}

std::optional<AuthVerdict> PasswordAuthenticator::recheck(Pending p) {
    const std::shared_ptr<const PasswordFile>& passwords = passwords_for(p.listener_index);
    if (!passwords) return anonymous_verdict(p.listener_index);   // no file any more, as in start()
    p.file = passwords;
    p.cache_key = cache_key(p.user, p.password, passwords, p.listener_index);
    p.cache_generation = cache_.generation();
    return submit(std::move(p), HashPool::Lane::First);   // it passed once: not a suspect
}

uint32_t PasswordAuthenticator::pending_from(std::string_view address) const {
    auto it = pending_by_address_.find(std::string(address));
    return it == pending_by_address_.end() ? 0 : it->second;
}

PasswordAuthenticator::Pending PasswordAuthenticator::release(PendingMap::iterator it) {
    Pending p = std::move(it->second);
    pending_.erase(it);
    auto n = pending_by_address_.find(p.address);
    if (n != pending_by_address_.end() && --n->second == 0) pending_by_address_.erase(n);
    return p;
}

// Not a failure: nothing was checked. A client retries later (v3.1.1 gets
// code 3, server unavailable).
AuthVerdict PasswordAuthenticator::refuse_busy(std::string_view address, bool queue_full) {
    ++busy_refused_;
    if (!busy_episode_) {
        busy_episode_ = true;
        const uint64_t now = now_ms_();
        if (busy_log_ && (!busy_logged_ || now - busy_logged_ms_ >= kBusyLogIntervalMs)) {
            busy_log_(true, address, 0, queue_full);
            busy_logged_ = busy_line_open_ = true;
            busy_logged_ms_ = now;
        }
    }
    return AuthVerdict{mqtt::rc::ServerBusy, false};
}

// An episode of refusals ends when the queue is empty again: one line for
// its start and one for its end, however long a flood keeps it full. A
// flood that fills and drains the queue over and over is logged once a
// minute: the episodes in between are counted into the next line's figure.
void PasswordAuthenticator::end_busy_episode_if_drained() {
    if (!busy_episode_ || !pool_ || pool_->queued() != 0) return;
    busy_episode_ = false;
    if (!busy_line_open_) return;
    busy_line_open_ = false;
    if (busy_log_) busy_log_(false, {}, busy_refused_, false);
    busy_refused_ = 0;
}

void PasswordAuthenticator::on_tick() {
    if (busy_episode_ || busy_refused_ == 0 || !busy_log_) return;
    if (now_ms_() - busy_logged_ms_ < kBusyLogIntervalMs) return;
    busy_log_(false, {}, busy_refused_, false);
    busy_refused_ = 0;
}

AuthVerdict PasswordAuthenticator::conclude(const Pending& p, bool ok) {
    if (!ok) {
        limiter_.record_failure(p.address, now_ms_());
        return AuthVerdict{mqtt::rc::BadUserNameOrPassword, false};
    }
    if (p.cache_generation == cache_.generation()) cache_.insert(p.cache_key);
    return AuthVerdict{mqtt::rc::Success, true};
}

void PasswordAuthenticator::cancel(broker::ConnId conn, uint64_t request) {
    auto t = ticket_by_conn_.find(conn);
    if (t == ticket_by_conn_.end()) return;
    auto it = pending_.find(t->second);
    if (it == pending_.end() || it->second.request != request) return;
    ticket_by_conn_.erase(t);
    // Not started: no hash was spent, nothing to count. Running: its result
    // still counts (closing early must not dodge the failure limit), and
    // it stays pending for the address until then.
    if (pool_ && pool_->cancel(it->first)) {
        release(it);
        end_busy_episode_if_drained();
    } else {
        it->second.wanted = false;
    }
}

void PasswordAuthenticator::collect() {
    if (!pool_) return;
    pool_->drain([this](uint64_t ticket, bool ok) {
        auto it = pending_.find(ticket);
        if (it == pending_.end()) return;
        Pending p = release(it);
        if (p.wanted) ticket_by_conn_.erase(p.conn);
        if (ok && p.wanted && p.file != passwords_for(p.listener_index)) {
            const broker::ConnId conn = p.conn;
            const uint64_t request = p.request;
            if (const std::optional<AuthVerdict> v = recheck(std::move(p)); v && sink_) sink_(conn, request, *v);
            return;
        }
        const AuthVerdict v = conclude(p, ok);
        if (p.wanted && sink_) sink_(p.conn, p.request, v);   // may re-enter start()/cancel()
    });
    end_busy_episode_if_drained();
}

uint8_t PasswordAuthenticator::check(std::optional<std::string_view> username,
                                     std::optional<std::span<const uint8_t>> password,
                                     std::string_view client_id, int listener_index,
                                     std::optional<std::string_view> identity) {
    broker::AuthRequest req;
    req.username = username;
    req.password = password;
    req.client_id = client_id;
    req.listener_index = listener_index;
    req.identity = identity;
    std::optional<AuthVerdict> v = start(req);
    return v ? v->reason : mqtt::rc::ServerUnavailable;   // pending: only with a pool
}

}  // namespace hato::auth
