// The broker: sessions, subscriptions, routing, retained messages, wills,
// QoS state. No sockets: it is driven by events (connection opened, bytes
// arrived, connection closed, clock ticked, loop pass ended) and answers
// through the Transport interface. Tests drive it with a fake transport.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "broker/config.hpp"
#include "broker/persistence.hpp"

namespace hato::broker {

using ConnId = uint64_t;

class Authenticator;  // broker/auth.hpp
class Authorizer;     // broker/auth.hpp

// What the broker needs from the network layer.
class Transport {
public:
    virtual ~Transport() = default;
    virtual void send(ConnId id, std::span<const uint8_t> bytes) = 0;
    // Acknowledgements to a publisher: may leave after the other output of
    // the same loop pass (what subscribers wait for goes first); the order
    // of one connection's bytes is kept.
    virtual void send_low_priority(ConnId id, std::span<const uint8_t> bytes) { send(id, bytes); }
    virtual size_t queued_bytes(ConnId id) const = 0;   // for back-pressure
    virtual void close(ConnId id) = 0;                  // flush, then close
};

struct Stats {
    uint64_t connections = 0;
    uint64_t messages_in = 0;
    uint64_t messages_out = 0;
    uint64_t qos0_dropped = 0;      // output limit hit
    uint64_t queued_dropped = 0;    // session queue limit hit
    // Durable writes the store refused (Persistence::Append), in all and by
    // reason. What depended on one was answered with a refusal code.
    uint64_t store_refusals = 0;
    uint64_t store_refused_quota = 0;       // [storage] max_bytes reached
    uint64_t store_refused_disk_full = 0;
    uint64_t store_refused_too_large = 0;   // larger than a segment
    uint64_t store_refused_io = 0;          // read-only file system, EIO
    uint64_t store_refused_full = 0;        // QoS 1/2 PUBLISH refused before writing (Persistence::full)
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
    void on_close(ConnId id);                  // transport gone (any reason)
    void on_tick(uint64_t now_ms);             // keep alive, expiry, will delay
    void on_pass_end();                        // group commit point
    // Called by the wiring when persisted state up to `ticket` is durable:
    // held PUBACK/PUBREC go out.
    void on_durable(uint64_t ticket);

    // Graceful shutdown: v5 clients get DISCONNECT 0x8B, all are closed.
    void shutdown();

    const Stats& stats() const;

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

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hato::broker
