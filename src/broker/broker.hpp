// The broker: sessions, subscriptions, routing, retained messages, wills,
// QoS state. No sockets: it is driven by events (connection opened, bytes
// arrived, connection closed, clock ticked, loop pass ended) and answers
// through the Transport interface. Tests drive it with a fake transport.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include <string_view>
#include <utility>

#include "broker/config.hpp"
#include "broker/persistence.hpp"

namespace hato::broker {

using ConnId = uint64_t;

class Authenticator;  // broker/auth.hpp
class Authorizer;     // broker/auth.hpp
struct AuthVerdict;   // broker/auth.hpp

// What the broker needs from the network layer.
class Transport {
public:
    virtual ~Transport() = default;
    virtual void send(ConnId id, std::span<const uint8_t> bytes) = 0;
    // Acknowledgements to a publisher: may leave after the other output of
    // the same loop pass (what subscribers wait for goes first); the order
    // of one connection's bytes is kept.
    virtual void send_low_priority(ConnId id, std::span<const uint8_t> bytes) { send(id, bytes); }
    // Like send(), without copying: `bytes` stay valid and unchanged until
    // release(obj) is called, once (sent, or the connection gone). Large
    // payloads go out from their message this way (one per packet, like a
    // second send of the same packet).
    virtual void send_kept(ConnId id, std::span<const uint8_t> bytes, void* obj, void (*release)(void*)) {
        send(id, bytes);
        release(obj);
    }
    virtual size_t queued_bytes(ConnId id) const = 0;   // for back-pressure
    // Stops (false) or resumes (true) reading from a client whose output is
    // over max_output_bytes. Bytes already received may still arrive.
    virtual void set_reading(ConnId /*id*/, bool /*on*/) {}
    // Stops (false) or resumes (true) reading from every client: a receiver
    // is over max_output_bytes and the input would only pile up behind it.
    virtual void set_intake(bool /*on*/) {}
    // A client's input now ends in the start of a large packet whose rest
    // could be received in place (Broker::wants_in_place): the hint that
    // makes the reactor ask.
    virtual void expect_in_place(ConnId /*id*/) {}
    // The broker deferred input to the next loop pass (MatchBudget): that
    // pass must come without waiting for an event.
    virtual void pass_again() {}
    // A receiver held intake back longer than slow_consumer_ms and its QoS 0
    // messages are now dropped (`started`), or that episode ended (caught
    // up or gone) after `dropped` messages: once each, for the log.
    virtual void slow_consumer(ConnId /*id*/, std::string_view /*client_id*/, bool /*started*/,
                               uint64_t /*dropped*/) {}
    virtual void close(ConnId id) = 0;                  // flush, then close
};

struct Stats {
    uint64_t connections = 0;
    uint64_t messages_in = 0;
    uint64_t messages_out = 0;
    uint64_t qos0_dropped = 0;      // output limit hit
    uint64_t queued_dropped = 0;    // session queue limit hit
    uint64_t budget_dropped = 0;    // a Config::session_budgets entry full (bridge queues)
    uint64_t room_dropped = 0;      // oldest of a drop_oldest budget's queue, dropped for a full store
    uint64_t slow_clients_closed = 0;   // over max_output_bytes longer than slow_client_timeout_ms
    uint64_t subscriptions_refused_limit = 0;   // filters refused: max_subscriptions_per_client reached
    uint64_t sessions_refused_limit = 0;        // CONNECTs refused: max_sessions reached
    uint64_t retained_refused_limit = 0;        // retained messages to new topics not retained: max_retained_messages
    uint64_t topics_refused_levels = 0;         // topics, filters, wills refused: over max_topic_levels
    uint64_t inputs_deferred = 0;   // a connection's input left for a later pass: its matching work ran out
    // Input reassembly: bytes copied into partial-packet buffers (appends
    // and the moves of their growth) and the allocations made for them.
    uint64_t partial_bytes_copied = 0;
    uint64_t partial_buffers = 0;
    uint64_t partial_alloc_failures = 0;   // clients closed: their partial packet's buffer could not be allocated
    uint64_t payloads_shared = 0;   // large payloads a message kept in their receive buffer
    uint64_t partial_bytes_in_place = 0;   // received straight into a partial packet (receive_target)
    uint64_t unreadable_dropped = 0; // queued / in flight, but the session's owner may not read it (ACL)
    // Durable writes the store refused (Persistence::Append), in all and by
    // reason. What depended on one was answered with a refusal code.
    uint64_t store_refusals = 0;
    uint64_t store_refused_quota = 0;       // [storage] max_bytes reached
    uint64_t store_refused_disk_full = 0;
    uint64_t store_refused_too_large = 0;   // larger than a segment
    uint64_t store_refused_io = 0;          // read-only file system, EIO
    uint64_t store_refused_full = 0;        // QoS 1/2 PUBLISH refused before writing (Persistence::full)
    // Traffic and clients, for $SYS (sys_topics.hpp). Packets and bytes are
    // MQTT's, after TLS; payload bytes are those of PUBLISH packets.
    uint64_t packets_in = 0;
    uint64_t packets_out = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t publish_bytes_in = 0;
    uint64_t publish_bytes_out = 0;
    uint64_t connects = 0;            // CONNECTs accepted
    uint64_t connections_max = 0;     // most clients connected at once
    uint64_t sessions_expired = 0;    // removed by their Session Expiry Interval
};

struct SysGauges;   // sys_topics.hpp

// Sees every PUBLISH a client sends that the ACL let through, before it is
// routed (a device adapter takes writes this way). Called from inside the
// broker: it must not call back into it.
class PublishObserver {
public:
    virtual ~PublishObserver() = default;
    // `bridged_retained`: a retained message that came over a bridge (hato's
    // own, or a client with the bridge bit): most likely the upstream's
    // stored copy, replayed on a (re)subscription, not a fresh command.
    virtual void on_client_publish(std::string_view topic, std::span<const uint8_t> payload,
                                   bool bridged_retained) = 0;
};

class Broker {
public:
    // `persist` may be a MemoryPersistence (nothing survives restart).
    Broker(const Config& cfg, Transport& transport, Persistence& persist);
    ~Broker();

    // Rebuilds state from `persist` (retained, sessions, subscriptions,
    // queued / in-flight messages) before any connection arrives.
    void recover();

    void on_open(ConnId id, int listener_index, const std::string& peer);
    void on_data(ConnId id, std::span<const uint8_t> bytes);
    // Where up to `limit` next bytes of `id` may be received in place: the
    // unfilled rest of a large packet being reassembled (at least
    // kInPlaceMin bytes short of complete). Empty: use on_data. The span
    // is valid until the next call into the broker, which must be
    // on_received_in_place with how many bytes arrived in it (0 is fine).
    bool wants_in_place(ConnId id) const;
    std::span<uint8_t> receive_target(ConnId id, size_t limit);
    void on_received_in_place(ConnId id, size_t n);
    static constexpr size_t kInPlaceMin = 16 * 1024;
    void on_close(ConnId id);
    // The client closed its sending side: as on_close (its will goes), but
    // the transport is still writable and is closed once the answers to
    // what it sent are out (held ones wait for the store, as for any close).
    void on_peer_eof(ConnId id);                  // transport gone (any reason)
    void on_tick(uint64_t now_ms);             // keep alive, expiry, will delay
    void on_pass_end();                        // group commit point
    // Called by the wiring when a sync completed: held PUBACK/PUBREC whose
    // tickets Persistence::durable_ticket() now covers go out.
    void on_durable();

    // Graceful shutdown: v5 clients get DISCONNECT 0x8B, all are closed.
    void shutdown();
    // The same for one connection (its listener was removed by a reload):
    // DISCONNECT 0x8B for a v5 client, its will published now (under its
    // listener's ACL, before the reload replaces it), the session stays.
    void shut_down_connection(ConnId id);
    // A reload: limits and features apply from now on; what a client was
    // granted at CONNECT (keep alive, receive maximum) stays as granted.
    void reconfigure(const Config& cfg);

    const Stats& stats() const;

    // Sizes of internal tables, for tests and logs: what must shrink again
    // once the clients that caused it are gone.
    struct Counts {
        size_t shared_group_names = 0;   // interned $share group names
        size_t timers = 0;               // timer heap entries, stale ones included
        size_t sessions = 0;
        size_t route_cache_topics = 0;   // topics whose matches the route cache holds
        size_t route_cache_matches = 0;  // the matches it holds for them
    };
    Counts counts() const;

    // A session's outbound backlog (a bridge's store-and-forward queue):
    // queued plus in-flight messages, their bytes, and when the oldest was
    // queued (monotonic ms; recovered messages count from the recovery).
    struct QueueInfo {
        uint64_t messages = 0;
        uint64_t bytes = 0;
        // How long its oldest message has waited, by the broker's own clock
        // (on_tick's time less the first tick's): 0 when empty.
        uint64_t oldest_age_ms = 0;
        // Messages dropped from it (this run): a bridge's max_queued_bytes
        // full (when_full), or the store full (drop_oldest's make room).
        uint64_t dropped = 0;
    };
    QueueInfo session_queue(std::string_view client_id) const;
    // The filters a session is subscribed to, as subscribed (empty if no such session).
    std::vector<std::string> session_filters(std::string_view client_id) const;
    // The client ids of the sessions whose id starts with `prefix`.
    std::vector<std::string> session_ids_with_prefix(std::string_view prefix) const;
    // Removes every subscription of the session `client_id`, connected or
    // not, durably; its queue and its expiry stay as they are. For the local
    // session of a bridge no longer configured: nothing connects to
    // unsubscribe it, and a CONNECT would give it an expiry. Returns how many.
    size_t remove_session_subscriptions(std::string_view client_id);
    // For the local session of a bridge whose upstream started a new
    // session: the upstream forgot the QoS 2 messages whose PUBREL it had
    // not answered, and one that delivers at PUBREL (Mosquitto) never
    // delivered them. Those in flight here past PUBREC go back to awaiting
    // PUBREC, durably, so the next connection sends their PUBLISH again
    // (at worst a duplicate upstream, never a loss), except `answered_here`:
    // the ids the bridge completed itself (sent upstream at QoS 1, and
    // acknowledged there). Only while the session is offline. Returns how many.
    size_t resend_released_qos2(std::string_view client_id, std::span<const uint16_t> answered_here);
    // The payload of the message retained on `topic` (no wildcards); empty
    // if there is none.
    std::string retained_payload(std::string_view topic) const;
    // The topic and payload of every retained message `filter` matches.
    std::vector<std::pair<std::string, std::string>> retained_matching(std::string_view filter) const;

    // The broker's part of the $SYS values: Stats plus table sizes. Walks
    // the sessions and retained messages (once per [sys] interval).
    void fill_gauges(SysGauges& g) const;

    // Routes a message like a PUBLISH from no client, at QoS 0 (ACLs apply
    // to its receivers). A retained one replaces the topic's retained
    // message in memory only: it is never written to the store, so state
    // the broker regenerates ($SYS) costs no disk writes.
    void publish_internal(std::string_view topic, std::span<const uint8_t> payload, bool retain);
    // Drops the retained messages publish_internal kept under `prefix`
    // ($SYS turned off: a later subscriber must not read stale figures).
    void forget_internal_retained(std::string_view prefix);
    // Routes a message like a PUBLISH from no client, stored like a
    // client's: a retained one is written to the store, copies queued for
    // persistent sessions at QoS 1/2 are durable. ACLs apply to receivers.
    // With [mqtt] retain_available = false it is not retained, as a client's.
    void publish_stored(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos, bool retain);
    // The same at QoS 1, retained whatever retain_available says: state a
    // part of hato keeps for itself and reads back with retained_payload()
    // (a bridge's upstream filters), not a publication.
    void keep_retained(std::string_view topic, std::span<const uint8_t> payload);
    // Not owned; must outlive the broker. nullptr: none.
    void set_publish_observer(PublishObserver* observer);

    // Replaces the default allow-all authenticator (not owned; must outlive
    // the broker). nullptr restores the default.
    void set_authenticator(Authenticator* auth);
    // ACL hook checked on PUBLISH, SUBSCRIBE, delivery and wills (not owned;
    // must outlive the broker). nullptr (the default): everything allowed.
    void set_authorizer(Authorizer* authz);
    // The verified identity of a connection (TLS client certificate CN with
    // identity_as_username): used as its user name from its CONNECT on,
    // whatever user name the CONNECT carries. Call before the CONNECT bytes.
    void set_identity(ConnId id, std::string username);
    // The answer to an Authenticator::start that returned no verdict. The
    // CONNECT it belongs to continues, then the input held meanwhile. A
    // connection that is gone, or a stale `request`, is ignored.
    void on_auth_result(ConnId id, uint64_t request, const AuthVerdict& verdict);

private:
    void route_stored(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos, bool retain);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hato::broker
