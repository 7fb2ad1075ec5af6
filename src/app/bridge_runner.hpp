// The wiring of the configured bridges (src/bridge): upstream connections
// through the reactor (name resolution and connect on a helper thread, so
// the loop never blocks), reconnects with backoff, and each bridge's local
// side attached to the broker as a virtual connection whose persistent
// session "$bridge/<name>" holds the durable outbound queue.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "app/metrics.hpp"
#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/sys_topics.hpp"
#include "config/config.hpp"
#include "net/reactor.hpp"

namespace hato::app {

class BridgeRunner {
public:
    BridgeRunner(const std::vector<config::Bridge>& cfgs, net::Reactor& reactor);
    ~BridgeRunner();

    // Reads the password files and starts connecting. False with `err` set.
    bool start(broker::Broker& broker, std::string& err);
    // SIGHUP: the password files again; the next connection uses them, and
    // a bridge waiting to reconnect tries at once (the reload may be its fix).
    void reload_passwords();
    // SIGHUP with a new configuration: bridges no longer listed, or listed
    // differently, are stopped (upstream closed, local session detached; its
    // queue stays in the store); new and changed ones start, a changed one
    // on its old local session, so its queue is intact. Unchanged ones are
    // left alone. False with `err` if a new password file cannot be read
    // (nothing changed then).
    bool reconfigure(const std::vector<config::Bridge>& cfgs, std::string& err);
    bool empty() const;

    // Connection ids of the virtual local connections: reactor ids never
    // have this bit (their generation counter would need 2^31 connections).
    static constexpr uint64_t kLocalBit = uint64_t(1) << 63;
    static bool is_local_id(uint64_t id) { return (id & kLocalBit) != 0; }

    // broker::Transport for the virtual connections. Output is held and
    // handed to the bridge at flush(): never back into the broker from
    // inside one of its calls.
    void local_send(uint64_t id, std::span<const uint8_t> bytes);
    void local_close(uint64_t id);
    // Bytes for `id`'s upstream not yet sent: what the link still holds from
    // the broker and what waits on the upstream socket.
    size_t local_queued(uint64_t id) const;

    // net::Handler for the upstream connections.
    bool owns_upstream(net::ConnId id) const;
    void on_upstream_data(net::ConnId id, std::span<const uint8_t> bytes);
    void on_upstream_close(net::ConnId id, int error);

    void on_tick(uint64_t now_ms);
    // Hands the broker's output to the bridges (before the broker's pass end).
    void flush();
    // Shutdown: no more reconnects, upstream connections closed.
    void stop();

    // Each bridge's state and backlog (for /metrics, status.json and $SYS).
    // The backlog's age is by the broker's clock, the one it stamps them with.
    std::vector<BridgeStatus> status() const;
    // $SYS/broker/hato/bridge/<name>/{state,backlog/messages,backlog/bytes,backlog/oldest_age_s}.
    void sys_topics(std::vector<broker::SysMessage>& out) const;

    struct Entry;

    // A bridge's password_file (trailing newline removed); false and a line
    // added to `err` when it cannot be read. --check-config uses it too.
    static bool read_password(const config::Bridge& c, std::string& out, std::string& err);

    // The $bridge/<name> sessions of bridges not in `cfgs` (removed by a
    // reload, or while hato was stopped): their local subscriptions are
    // removed, so nothing more is queued for them; what is queued stays for
    // when the bridge is configured again. At start and at each reload,
    // with or without bridges configured.
    static void settle_unconfigured(broker::Broker& broker, const std::vector<config::Bridge>& cfgs);

private:
    bool load_passwords(std::string& err);
    Entry& add_entry(const config::Bridge& c);
    void retire(Entry& e);
    bool ensure_event_fd(std::string& err);
    void attempt(Entry& e, uint64_t now);
    void collect();
    void schedule_retry(Entry& e, uint64_t now, const std::string& why);

    net::Reactor& reactor_;
    broker::Broker* broker_ = nullptr;
    std::vector<std::unique_ptr<Entry>> entries_;
    int event_fd_ = -1;
    uint64_t next_local_ = 0;
    bool stopping_ = false;
    bool started_ = false;
    std::string host_;
    uint64_t seed_ = 0;
    uint64_t dropped_reported_ = 0;   // Stats::budget_dropped as last logged
    uint64_t room_reported_ = 0;      // Stats::room_dropped as last logged
    uint64_t dropped_log_ms_ = 0;
    std::map<std::string, uint64_t> bridge_dropped_reported_;   // QueueInfo::dropped as last logged, by bridge name
};

// --check-config: unreadable password files are errors; budgets that add
// up to more than [storage] max_bytes are a warning (the bridge queues live
// in the same durable log).
bool check_bridge_files(const config::AppConfig& cfg, std::vector<std::string>& errors,
                        std::vector<std::string>& warnings);

// Lets the bridges' own local sessions in without credentials and ACL
// checks (they are internal), and refuses network clients that claim a
// "$bridge/" client id.
class BridgeAuthenticator final : public broker::Authenticator {
public:
    explicit BridgeAuthenticator(broker::Authenticator& inner) : inner_(inner) {}
    std::optional<broker::AuthVerdict> start(const broker::AuthRequest& req) override;
    void cancel(broker::ConnId conn, uint64_t id) override { inner_.cancel(conn, id); }

private:
    broker::Authenticator& inner_;
};

class BridgeAuthorizer final : public broker::Authorizer {
public:
    explicit BridgeAuthorizer(broker::Authorizer& inner) : inner_(inner) {}
    bool can_publish(const broker::ClientInfo& c, std::string_view topic) override;
    bool can_subscribe(const broker::ClientInfo& c, std::string_view filter) override;
    bool can_receive(const broker::ClientInfo& c, std::string_view topic) override;

private:
    broker::Authorizer& inner_;
};

}  // namespace hato::app
