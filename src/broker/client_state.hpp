// What the broker keeps per client: its network connection (Connection) and
// its MQTT session (Session). Both exist for every connected client, so they
// hold only what an idle client needs; anything most clients never use, or
// use only in bursts, sits behind a pointer that is null until first use.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "broker/inflight_window.hpp"
#include "broker/message.hpp"
#include "broker/sub_index.hpp"
#include "mqtt/packet.hpp"

namespace hato::broker {

using Slot = SubIndex::SubscriberId;
constexpr Slot kNoSlot = 0xFFFFFFFFu;
constexpr uint32_t kNeverExpires = 0xFFFFFFFFu;

struct SubRecord {
    std::string inner;               // filter without the $share/group/ prefix
    uint8_t options = 0;
    uint32_t sub_id = 0;
    uint32_t group = 0;
};

struct Will {
    MsgPtr msg;   // without expiry: its Message Expiry Interval runs from publication
    uint32_t delay_s = 0;
    std::optional<uint32_t> expiry_s;   // the will's Message Expiry Interval (v5 3.1.3.2.4)
    bool stored = false;   // a will_put holds it: its end writes a will_remove (Broker::Impl::end_will)
    // Allowed by its listener's ACL when a reload removed that listener: no
    // other ACL judges it when its delay ends.
    bool judged = false;
};

// A session's QoS 1/2 state. Created by the first queued message (or inbound
// QoS 2 id) and freed once empty again (Session::release_flows_if_empty): a
// std::deque allocates ~600 bytes even when empty, and most sessions are idle
// or QoS 0 only.
// Aligned, in this order, so that what one message reads and writes takes
// three cache lines: the window, the inbound ids and byte count (read when
// the flows are released), and the queue's two ends (deque::empty).
struct alignas(64) SessionFlows {
    InflightWindow inflight;                 // sent, waiting ack; in seq order
    struct InboundId {
        uint64_t digest;   // message_digest of what it carried; 0: unknown
        // Its slot is in this connection's inbound_pending (Receive
        // Maximum): not for an id held from an earlier connection until
        // the client sends its PUBLISH again on this one.
        bool counted;
    };
    std::map<uint16_t, InboundId> qos2_in;   // inbound QoS 2 ids waiting PUBREL
    uint64_t queue_bytes = 0;
    std::deque<OutItem> queue;               // not sent yet, in order
    // now_ms of the last sweep for expired messages: expiry follows the
    // broker's clock, which moves on each tick, so until then none expires
    // again and a flood into a full queue scans it once, not once a message.
    uint64_t expiry_swept_ms = ~uint64_t(0);
    // Answers waiting for a state record the store refused (a full disk with
    // the reserve used up, or an I/O error), in the order their acks came.
    // Tried again on each tick while connected; closing the connection
    // instead would have a client that reconnects at once sent everything
    // again, in a loop, for as long as the disk stays full.
    // A reconnect sends the PUBLISH again, and the client its PUBREC: cleared then.
    std::vector<uint64_t> pubrel_waiting;    // seqs whose PUBREC came: PUBREL once their Pubrel state is in
    // Kept across reconnects: the PUBREL came, so a PUBLISH under the id
    // is a new message, not a retransmission (on_publish). The PUBCOMP goes
    // on the connection the PUBREL came on: after a reconnect it waits for
    // the client to send that PUBREL again (MQTT-4.4.0-1), else the client
    // would get a second PUBCOMP for it, perhaps once it reused the id.
    struct WaitingPubcomp {
        uint16_t packet_id;
        bool asked;   // its PUBREL came on the current connection
    };
    std::vector<WaitingPubcomp> pubcomp_waiting;   // inbound ids whose PUBREL came: removal, then PUBCOMP
    WaitingPubcomp* pubcomp_waiting_for(uint16_t id) {
        for (WaitingPubcomp& w : pubcomp_waiting)
            if (w.packet_id == id) return &w;
        return nullptr;
    }

    bool empty() const { return queue.empty() && inflight.empty() && qos2_in.empty(); }
};
static_assert(sizeof(InflightWindow) == 64, "SessionFlows: the window is one cache line");

// Emptied SessionFlows kept for reuse, so a session that receives one QoS 1
// message now and then does not allocate and free the whole structure (a
// deque block among it) per message. Bounded: a fixed cost, not per session.
class FlowsPool {
public:
    std::unique_ptr<SessionFlows> take() {
        if (spare_.empty()) return std::make_unique<SessionFlows>();
        std::unique_ptr<SessionFlows> f = std::move(spare_.back());
        spare_.pop_back();
        return f;
    }
    void give(std::unique_ptr<SessionFlows> f) {
        if (spare_.size() >= kMaxSpare) return;
        f->queue_bytes = 0;
        f->expiry_swept_ms = ~uint64_t(0);
        f->inflight.trim();
        f->pubrel_waiting.clear();
        f->pubcomp_waiting.clear();
        spare_.push_back(std::move(f));
    }

private:
    static constexpr size_t kMaxSpare = 1024;   // ~1000 sessions with a message in flight
    std::vector<std::unique_ptr<SessionFlows>> spare_;
};

// What a delivery and an acknowledgement read comes first, within the first
// 64 bytes: with thousands of sessions each further line is a cache miss.
struct Session {
    ConnId conn = 0;                 // 0 = offline
    std::unique_ptr<SessionFlows> flows;     // null: no QoS 1/2 state
    uint64_t next_seq = 1;           // outlives `flows`: a seq is never reused
    uint64_t generation = 0;         // bumped on every attach/removal: stale timers compare it
    Slot slot = kNoSlot;
    uint32_t expiry_s = 0;
    uint16_t next_packet_id = 1;
    bool persisted = false;          // session_put was called (expiry > 0 at some point)
    OwnerSource owner_source = OwnerSource::Unknown;   // set by CONNECT, or recovered with the session
    int listener = -1;               // of its latest CONNECT (per-listener ACL); -1: none since start
    std::unique_ptr<AclCache> acl_cache;     // ACL answers by topic; null until the first check, reset on CONNECT
    std::unique_ptr<std::string> username;   // the owner's (ACL); null: anonymous, or owner_source Unknown
    std::string client_id;
    std::map<std::string, SubRecord> subs;   // full filter as subscribed -> record
    std::unique_ptr<Will> delayed_will;      // will waiting its delay after the connection left

    SessionFlows& open_flows(FlowsPool& pool) {
        if (!flows) flows = pool.take();
        return *flows;
    }
    void release_flows_if_empty(FlowsPool& pool) {
        if (flows && flows->empty()) pool.give(std::move(flows));
    }
};

// Per-connection state only some connections need (a partial packet, v5
// topic aliases, a TLS identity). Created on first use; process_input frees
// it again once it holds nothing.
struct ConnectionExtras {
    // Only while a partial packet remains: each receive appends its bytes,
    // up to the packet's total from its fixed header (already checked
    // against the size limit); see Broker::Impl::partial_append.
    InputBytes inbuf;
    size_t inbuf_need = 0;           // total size of that packet; 0 = its fixed header is incomplete
    std::unordered_map<uint16_t, std::string> alias_in;
    // Transparent lookup: a message's topic (a string_view) finds its alias
    // without building a std::string for every PUBLISH sent.
    struct TopicHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, uint16_t, TopicHash, std::equal_to<>> alias_out;
    std::unique_ptr<std::string> identity;   // set_identity(): replaces the CONNECT user name
    // While the authenticator works on the CONNECT: its request id (input,
    // the CONNECT first, waits in inbuf), then its answer until the CONNECT
    // runs again and takes it.
    uint64_t auth_request = 0;
    std::optional<AuthVerdict> auth_verdict;
    // Its matching work for this loop pass ran out (MatchBudget): inbuf
    // holds the rest of its input, unread, for a later pass, and the
    // transport stopped reading from it meanwhile.
    bool input_deferred = false;
    // The transport closed (or the peer's EOF came) while input was deferred
    // or a CONNECT waited for its password check: the connection ends once
    // that input is handled (a DISCONNECT in it ends it without a will).
    bool closed_after_input = false;
    // Its CONNECT takes over a session whose connection is closed_after_input:
    // the CONNECT and what follows wait (deferred) until that input is handled.
    bool connect_waits = false;

    bool empty() const {
        return inbuf.empty() && alias_in.empty() && alias_out.empty() && !identity && auth_request == 0 &&
               !auth_verdict && !input_deferred && !closed_after_input;
    }
};

// One topic's entry in the RouteCache (route_cache.hpp), the value type of
// its table: declared here so that a connection can point at one.
struct RouteMatches;
using RouteCacheEntry = std::pair<const std::string, RouteMatches>;

// Which RouteCache entry this connection's last PUBLISH used (route_cache.hpp):
// a client repeats its topics, and its own line of state is at hand.
struct RouteMemo {
    uint64_t generation = ~uint64_t(0);   // the subscription generation it was taken at
    RouteCacheEntry* entry = nullptr;
};

// Field order matters: the first 56 bytes (with the connection map's 8-byte
// key, one cache line) hold what every packet in and every delivery out
// reads; the map keeps an entry in two aligned lines (SlotMap), and with
// thousands of clients each line is a miss per message.
struct Connection {
    ConnId id = 0;
    RouteMemo route_memo;
    Slot slot = kNoSlot;
    uint32_t client_max_packet = 0;  // 0 = no limit
    uint32_t inbound_pending = 0;    // QoS 1 acks not yet sent + QoS 2 ids waiting PUBREL
    uint32_t held_acks = 0;          // entries in the held-ack FIFO for this connection
    uint64_t last_rx_ms = 0;
    uint16_t client_receive_max = 65535;
    uint16_t client_alias_max = 0;
    mqtt::Version version = mqtt::Version::V311;
    bool connected : 1 = false;          // CONNECT accepted
    bool dead : 1 = false;               // closed by us or by the transport; freed at the end of the event
    bool problem_info : 1 = true;        // Request Problem Information
    bool output_blocked : 1 = false;     // back-pressure: waiting for the transport to drain
    bool reading_paused : 1 = false;     // output over max_output_bytes: the transport stopped reading
    bool bridge : 1 = false;             // Mosquitto's bridge bit: subscriptions are No Local + Retain As Published
    // Blocked, and the broker's intake is stopped for it (at most slow_consumer_ms).
    bool holds_intake : 1 = false;
    bool slow_consumer : 1 = false;      // held it longer: its QoS 0 is dropped until it drained
    bool slow_again : 1 = false;         // slow at once, in its cool-down: its episodes are not reported again
    bool has_extras : 1 = false;         // extras_ is set: every packet asks, so the answer is on this line
    bool output_held : 1 = false;        // all output waits behind a held CONNACK/SUBACK (HeldAcks::hold_output)
    // One of hato's own bridges' local sessions: its output waits for a WAN
    // link, so it never holds everyone's intake and is never closed as slow.
    bool own_bridge : 1 = false;
    // What its CONNACK allowed ([mqtt] maximum_qos, retain_available when it
    // connected): a reload that lowers them refuses nothing it was promised.
    uint8_t granted_qos : 2 = 2;
    bool granted_retain : 1 = true;
    // ---- second line ----
    // Due time of this connection's live entry in the timer heap (0: none):
    // the CONNECT deadline until CONNECT is accepted, then the keep-alive
    // deadline. One entry per connection; see Broker::Impl::arm_conn_timer.
    uint64_t timer_due_ms = 0;
    std::unique_ptr<Will> will;
    uint16_t listener = 0;           // index into the listeners
    uint16_t keep_alive_s = 0;
    uint32_t held_bytes = 0;         // its packets held by HeldAcks (and their bookkeeping): part of its output
    uint64_t blocked_since_ms = 0;   // when output_blocked was set (slow_client_timeout_ms)
    // While holds_intake: when it began. Otherwise, after it was a slow
    // consumer: it does not hold the intake again before this (BackPressure).
    uint64_t intake_hold_ms = 0;
    uint64_t episode_dropped = 0;    // QoS 0 dropped for it since it was last blocked

    ConnectionExtras* extras() const { return has_extras ? extras_.get() : nullptr; }
    ConnectionExtras& open_extras() {
        if (!extras_) extras_ = std::make_unique<ConnectionExtras>();
        has_extras = true;
        return *extras_;
    }
    void close_extras() {
        extras_.reset();
        has_extras = false;
    }

private:
    std::unique_ptr<ConnectionExtras> extras_;
};
static_assert(sizeof(Connection) <= 112, "Connection: with the map's key and position, two cache lines");

}  // namespace hato::broker
