// Internal state of the broker, shared by its translation units:
// broker.cpp (events, timers, input), connect.cpp (CONNECT, sessions, wills,
// closing), publish.cpp (inbound PUBLISH, routing, held acks), delivery.cpp
// (outbound QoS flows, back-pressure), subscribe.cpp (SUBSCRIBE, retained),
// recover.cpp (rebuilding from Persistence).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/message.hpp"
#include "broker/retained_index.hpp"
#include "broker/sub_index.hpp"
#include "mqtt/codec.hpp"

namespace hato::broker {

using Slot = SubIndex::SubscriberId;
constexpr Slot kNoSlot = 0xFFFFFFFFu;
constexpr uint32_t kNeverExpires = 0xFFFFFFFFu;

// One message in a session's outbound flow (QoS 1/2 only; QoS 0 is never queued).
struct OutItem {
    uint64_t seq = 0;
    MsgPtr msg;
    uint8_t qos = 1;                 // delivered QoS = min(published, granted)
    bool retain = false;             // retain flag as it goes out
    OutState state = OutState::Queued;
    uint16_t packet_id = 0;
    std::vector<uint32_t> sub_ids;
    uint64_t share_key = 0;          // != 0: came through this shared group (redistributed if the member leaves)
};

struct SubRecord {
    std::string inner;               // filter without the $share/group/ prefix
    uint8_t options = 0;
    uint32_t sub_id = 0;
    uint32_t group = 0;
};

struct Will {
    MsgPtr msg;
    uint32_t delay_s = 0;
};

struct Session {
    Slot slot = kNoSlot;
    uint64_t generation = 0;         // bumped on every attach/removal: stale timers compare it
    std::string client_id;
    ConnId conn = 0;                 // 0 = offline
    uint32_t expiry_s = 0;
    bool persisted = false;          // session_put was called (expiry > 0 at some point)
    std::map<std::string, SubRecord> subs;   // full filter as subscribed -> record
    std::map<uint64_t, OutItem> inflight;     // sent, waiting ack; by seq
    std::unordered_map<uint16_t, uint64_t> seq_by_packet_id;
    std::deque<OutItem> queue;               // not sent yet, in order
    uint64_t queue_bytes = 0;
    uint64_t next_seq = 1;
    uint16_t next_packet_id = 1;
    std::set<uint16_t> qos2_in;              // inbound QoS 2 ids waiting PUBREL
    std::optional<Will> delayed_will;        // will waiting its delay after the connection left
    std::optional<std::string> username;     // of the last CONNECT (ACL); unknown after a restart
    AclCache acl_cache;                      // ACL answers by topic, emptied on CONNECT
};

struct Connection {
    ConnId id = 0;
    int listener = 0;
    std::string peer;
    bool connected = false;          // CONNECT accepted
    bool dead = false;               // closed by us or by the transport; freed at the end of the event
    mqtt::Version version = mqtt::Version::V311;
    std::vector<uint8_t> inbuf;      // only while a partial packet remains
    Slot slot = kNoSlot;
    uint16_t keep_alive_s = 0;
    uint64_t last_rx_ms = 0;
    uint16_t client_receive_max = 65535;
    uint32_t client_max_packet = 0;  // 0 = no limit
    uint16_t client_alias_max = 0;
    bool problem_info = true;        // Request Problem Information
    std::unordered_map<uint16_t, std::string> alias_in;
    std::unordered_map<std::string, uint16_t> alias_out;
    std::optional<Will> will;
    std::optional<std::string> identity;   // set_identity(): replaces the CONNECT user name
    uint32_t inbound_pending = 0;    // QoS 1 acks not yet sent + QoS 2 ids waiting PUBREL
    uint32_t held_acks = 0;          // entries in the held-ack FIFO for this connection
    bool output_blocked = false;     // back-pressure: waiting for the transport to drain
};

// Identifies one shared group's filter ($share/group/inner) for round robin.
inline uint64_t share_key(uint32_t group, std::string_view inner) {
    return (uint64_t(group) << 40) ^ std::hash<std::string_view>{}(inner) ^ 0x9E3779B97F4A7C15ull;
}

enum class TimerKind : uint8_t { KeepAlive, SessionExpiry, WillDelay, ConnectTimeout };

struct Timer {
    uint64_t due_ms = 0;
    TimerKind kind = TimerKind::KeepAlive;
    uint64_t key = 0;                // ConnId, or session slot
    uint64_t generation = 0;         // session generation (ignored for keep alive)
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
};

// A PUBACK/PUBREC waiting for the persisted state it depends on.
struct HeldAck {
    ConnId conn = 0;
    uint64_t ticket = 0;
    bool counts_inbound = false;     // QoS 1 ack: frees an inbound receive-maximum slot when sent
    std::vector<uint8_t> bytes;
};

struct Broker::Impl {
    Impl(const Config& c, Transport& t, Persistence& p) : cfg(c), transport(t), persist(p) {}

    Config cfg;
    Transport& transport;
    Persistence& persist;
    AllowAll allow_all;
    Authenticator* auth = &allow_all;
    Authorizer* authz = nullptr;     // null: no ACL
    Stats stats;
    uint64_t now_ms = 0;             // monotonic, from on_tick, relative to the first tick
    uint64_t tick_base = 0;          // first on_tick value: state built before it is at time 0
    bool ticked = false;

    std::unordered_map<ConnId, std::unique_ptr<Connection>> conns;
    std::vector<std::unique_ptr<Connection>> graveyard;   // dead, freed after the current event
    std::vector<std::unique_ptr<Session>> sessions;       // by slot; nullptr = free
    std::vector<Slot> free_slots;
    std::unordered_map<std::string, Slot> slot_by_client;
    uint64_t next_generation = 1;

    SubIndex subs;
    RetainedIndex retained_index;
    std::unordered_map<RetainedIndex::Handle, MsgPtr> retained;
    RetainedIndex::Handle next_retained_handle = 1;
    std::unordered_map<uint64_t, uint32_t> share_round_robin;   // share key -> counter
    std::unordered_map<uint64_t, std::set<Slot>> share_members; // share key -> member sessions

    std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
    std::deque<HeldAck> held_acks;
    std::unordered_set<ConnId> blocked_conns;
    uint64_t op_ticket = 0;          // highest persistence ticket of the current operation
    uint64_t random_state = 0;

    // --- broker.cpp
    Connection* conn(ConnId id);
    Session* session(Slot s) { return s < sessions.size() ? sessions[s].get() : nullptr; }
    ClientInfo client_info(Session& s) {
        return {s.username ? std::optional<std::string_view>(*s.username) : std::nullopt, s.client_id,
                &s.acl_cache};
    }
    void process_input(Connection& c, std::span<const uint8_t> bytes);
    void handle_packet(Connection& c, mqtt::Packet& p);
    void send_packet(Connection& c, const mqtt::Packet& p);
    // v5 DISCONNECT from the server, with a Reason String: some clients (paho
    // 1.6) read the reason code only when the packet carries a property.
    void send_disconnect(Connection& c, uint8_t reason);
    void protocol_error(Connection& c, uint8_t reason);   // v5 DISCONNECT(reason), close; will published
    void run_timers();
    void bury();
    uint64_t note(uint64_t ticket) { if (ticket > op_ticket) op_ticket = ticket; return ticket; }
    uint64_t wall_ms() const;

    // --- connect.cpp
    void on_connect(Connection& c, mqtt::Connect& p);
    void on_disconnect(Connection& c, const mqtt::Disconnect& p);
    // Detaches the connection from its session and closes it. The will goes
    // out (now or after its delay) when `publish_will`.
    void drop(Connection& c, bool publish_will, bool close_transport);
    void schedule_keep_alive(Connection& c);
    void on_keep_alive_timer(ConnId id);
    void on_connect_timeout(ConnId id);
    void on_session_expiry_timer(Slot s, uint64_t gen);
    void on_will_delay_timer(Slot s, uint64_t gen);
    Session& create_session(const std::string& client_id);
    void remove_session(Session& s);
    void publish_will(const Will& w);
    std::string random_client_id();

    // --- publish.cpp
    void on_publish(Connection& c, mqtt::Publish& p);
    void on_pubrel(Connection& c, const mqtt::Ack& a);
    // Routes a message to every matching subscriber; returns the number of receivers.
    size_t route(const MsgPtr& msg, Slot publisher);
    void store_retained(const MsgPtr& msg);
    // Sets expiry_ms / expiry_wall_ms from a Message Expiry Interval (capped by config).
    void apply_expiry(Message& m, std::optional<uint32_t> interval_s);
    void send_ack(Connection& c, mqtt::PacketType type, uint16_t id, uint8_t reason,
                  uint64_t ticket, bool counts_inbound);
    void release_acks();

    // --- delivery.cpp
    void deliver(Session& s, const MsgPtr& msg, uint8_t qos, bool retain,
                 std::vector<uint32_t> sub_ids, uint64_t share_key);
    void pump(Session& s);
    void purge_expired(Session& s);   // drops expired messages from the queue
    void resend_inflight(Session& s);
    void on_client_ack(Connection& c, const mqtt::Ack& a);
    bool send_publish(Connection& c, const OutItem& item, bool dup);   // false: too large for the client
    bool output_over_limit(Connection& c);
    void check_blocked();
    void redistribute_shared(Session& s);
    void finish_out(Session& s, uint64_t seq);
    size_t window(const Session& s);

    // --- subscribe.cpp
    void on_subscribe(Connection& c, const mqtt::Subscribe& p);
    void on_unsubscribe(Connection& c, const mqtt::Unsubscribe& p);
    // Adds a subscription to the session and index; returns true if new.
    bool add_subscription(Session& s, const std::string& filter, uint8_t options, uint32_t sub_id);
    void send_retained(Session& s, const std::string& inner, uint8_t granted_qos, uint32_t sub_id);
    // Puts a subscription in the session and the index (no persistence); true if new.
    bool index_subscription(Session& s, const std::string& filter, uint8_t options, uint32_t sub_id);
    void unindex_subscription(Session& s, const SubRecord& rec);

    // --- recover.cpp
    void recover();
};

}  // namespace hato::broker
