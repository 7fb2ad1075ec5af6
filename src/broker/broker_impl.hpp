// Internal state of the broker, shared by its translation units (per-client
// state is in client_state.hpp): broker.cpp (events, timers, input),
// connect.cpp (CONNECT, sessions, wills, closing), publish.cpp (inbound
// PUBLISH, routing), delivery.cpp (outbound QoS flows), subscribe.cpp
// (SUBSCRIBE, retained), recover.cpp (rebuilding from Persistence).
// The state with rules of its own lives in parts that keep them: the
// sessions by slot and client id (SessionTable), shared-subscription groups
// (SharedGroups), acknowledgements held until durable (HeldAcks),
// back-pressure (BackPressure) and the timer heap (TimerHeap). What the
// store writes of one operation came to travels as an explicit OpWrites.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/auth.hpp"
#include "broker/back_pressure.hpp"
#include "broker/broker.hpp"
#include "broker/client_state.hpp"
#include "broker/counting_transport.hpp"
#include "broker/held_acks.hpp"
#include "broker/match_budget.hpp"
#include "broker/match_collector.hpp"
#include "broker/message.hpp"
#include "broker/op_writes.hpp"
#include "broker/retained_store.hpp"
#include "broker/route_cache.hpp"
#include "broker/session_table.hpp"
#include "broker/shared_groups.hpp"
#include "broker/slot_map.hpp"
#include "broker/sub_index.hpp"
#include "broker/timers.hpp"
#include "mqtt/codec.hpp"

namespace hato::broker {

struct Broker::Impl {
    Impl(const Config& c, Transport& t, Persistence& p)
        : cfg(c), counted_transport(t, stats), transport(counted_transport), persist(p),
          granted_receive_max(c.receive_maximum), granted_alias_max(c.topic_alias_maximum) {}

    Config cfg;
    CountingTransport counted_transport;   // counts packets and bytes out into `stats`
    Transport& transport;
    Persistence& persist;
    AllowAll allow_all;
    Authenticator* auth = &allow_all;
    Authorizer* authz = nullptr;     // null: no ACL
    PublishObserver* observer = nullptr;
    Stats stats;
    // The largest Receive Maximum / Topic Alias Maximum any CONNACK announced
    // (reconfigure may lower cfg's; a client connected before keeps what it
    // was granted, so inbound limits are checked against these).
    uint16_t granted_receive_max;
    uint16_t granted_alias_max;
    uint64_t now_ms = 0;             // monotonic, from on_tick, relative to the first tick
    uint64_t tick_base = 0;          // first on_tick value: state built before it is at time 0
    bool ticked = false;

    // By value: one allocation per connection. Nodes do not move, so a
    // Connection& stays valid while others are added or removed.
    SlotMap<ConnId, Connection> conns;   // by the reactor slot in the id: no hashing per lookup
    std::vector<ConnId> graveyard;   // dead, erased from `conns` after the current event
    SessionTable sessions;   // by slot and by client id

    SubIndex subs;
    // Retained messages, by topic; those the store holds are served from it.
    RetainedStore retained{persist};
    SharedGroups shared;   // shared subscription groups: members, filter, round robin

    TimerHeap timers;   // connection checks, session expiries, delayed wills
    HeldAcks acks{transport, persist, stats};   // PUBACK/PUBREC/PUBCOMP until durable, in order
    BackPressure pressure{cfg, transport};   // connections over max_output_bytes, the intake hold
    MatchBudget match_budget;   // matching work per connection and pass; input deferred past it
    // Scratch reused across operations so its vectors keep their capacity (a
    // malloc/free pair per PUBLISH otherwise). Members, so that each Broker
    // has its own and nothing outlives it.
    RouteCache route_cache;   // route(): the matches per topic
    bool route_busy = false;   // a nested route() gets a collector of its own
    // A decoded packet process_packet reuses (see there).
    template <class P>
    struct ReusedPacket {
        P packet;
        bool busy = false;
        bool has_props = false;   // the last one was v5: its properties may be set
        P& take(mqtt::Version v) {
            busy = true;
            // Only v5 packets have properties: they start empty.
            if (v == mqtt::Version::V5 || has_props) packet.props = mqtt::Properties{};
            has_props = v == mqtt::Version::V5;
            return packet;
        }
    };
    ReusedPacket<mqtt::Publish> publish_scratch;
    ReusedPacket<mqtt::Ack> ack_scratch;
    // A QoS 0 PUBLISH without per-receiver parts, encoded once per fan-out
    // and version (send_publish). It holds the message itself, so another
    // message cannot reuse the address while its bytes are cached.
    struct SharedEncoding {
        MsgPtr msg;
        mqtt::Version version = mqtt::Version::V311;
        bool retain = false;
        std::vector<uint8_t> bytes;
        // The PUBLISH as it arrived, while on_publish routes it
        // (seed_shared_publish): the first receiver copies it into `bytes`,
        // so a message nobody receives is not copied. Empty otherwise.
        std::span<const uint8_t> wire;
    };
    SharedEncoding shared_publish;
    std::vector<uint8_t> publish_bytes; // every other PUBLISH: the transport copies the bytes
    std::vector<uint8_t> held_publish_bytes;   // send_publish_held: HeldAcks copies them if held
    // Sessions with a QoS 2 step waiting because its state record was
    // refused: the next delivery (start_flight), a PUBREL or a PUBCOMP
    // (SessionFlows::pubrel_waiting, pubcomp_waiting). Tried again on every
    // tick, as an idle session would get no other pump. Not only once the
    // store takes new work (full() false): these records draw on the reserve,
    // which compaction refills while the disk stays full.
    std::unordered_set<std::string> flight_retry;
    // publish_internal: a retained message goes to memory only (store_retained).
    bool retain_in_memory = false;
    std::unordered_set<std::string> memory_retained_topics;   // topics publish_internal retained
    uint64_t random_state = 0;
    uint64_t next_auth_request = 1;
    // Input a client may send after its CONNECT while the authenticator
    // works on it; more closes the connection.
    static constexpr size_t kMaxHeldAfterConnect = 64 * 1024;
    // From this payload size a message keeps its PUBLISH's buffer rather
    // than a copy: below it the copy is cheap and the buffer's header bytes
    // and spare capacity would be a larger share of what the message holds.
    static constexpr size_t kSharedPayloadMin = 64 * 1024;
    // How long a closed connection's transport stays open for the packets
    // held for it (HeldAcks::close_when_sent): a group commit takes far
    // less; only a sync that keeps failing reaches it.
    static constexpr uint64_t kHeldCloseWaitMs = 5000;

    // --- broker.cpp
    Connection* conn(ConnId id);
    Session* session(Slot s) { return sessions.get(s); }
    std::string_view client_id_of(const Connection& c) {
        const Session* s = session(c.slot);
        return s ? std::string_view(s->client_id) : std::string_view();
    }
    // Only for Authorizer calls: creates the session's ACL memo.
    ClientInfo client_info(Session& s) {
        if (!s.acl_cache) s.acl_cache = std::make_unique<AclCache>();
        return {s.username ? std::optional<std::string_view>(*s.username) : std::nullopt, s.client_id,
                s.acl_cache.get(), s.listener};
    }
    static SessionOwner owner_of(const Session& s) {
        return {s.owner_source, s.username ? std::string_view(*s.username) : std::string_view()};
    }
    void process_input(Connection& c, std::span<const uint8_t> bytes);
    // Adds bytes to the connection's partial packet; returns how many it took.
    // `ready`: the partial packet is complete. False return of `ok`: closed.
    size_t fill_partial(Connection& c, std::span<const uint8_t> in, bool& ready, bool& ok);
    // Both false when the buffer could not be allocated (nothing appended):
    // the caller closes the client with partial_alloc_failed.
    [[nodiscard]] bool partial_append(ConnectionExtras& x, std::span<const uint8_t> bytes);
    [[nodiscard]] bool reserve_partial(ConnectionExtras& x, size_t want);   // inbuf's capacity to `want` or beyond
    void partial_alloc_failed(Connection& c);
    bool complete_partial(Connection& c, std::span<const uint8_t> rest);
    size_t in_place_rest(const Connection& c) const;   // bytes a large partial packet still lacks, or 0
    // transport.expect_in_place when that is worth it (most input leaves no extras: one test).
    void hint_in_place(const Connection& c) {
        if (c.extras() && in_place_rest(c) >= Broker::kInPlaceMin) transport.expect_in_place(c.id);
    }
    std::span<uint8_t> receive_target(Connection& c, size_t limit);
    void received_in_place(Connection& c, size_t n);
    // The span receive_target gave out: its connection and inbuf's size before it.
    struct InPlace {
        ConnId conn = 0;
        size_t size = 0;
    } in_place;
    void keep_for_next_partial(Connection& c, InputBytes& packet, size_t capacity,
                               std::span<const uint8_t> rest);
    bool process_reassembled(Connection& c, InputBytes& packet, const mqtt::FixedHeader& hdr);
    // Decodes and handles one complete packet (`hdr.total()` bytes); false if the connection closed.
    bool process_packet(Connection& c, std::span<const uint8_t> packet, const mqtt::FixedHeader& hdr);
    uint32_t input_limit(const Connection& c) const;   // largest packet accepted now
    void hold_for_verdict(Connection& c, std::span<const uint8_t> rest);
    // Frames and handles `bytes` until the matching work done reaches
    // `work_limit` (a match_work() value); the rest is deferred.
    void frame_input(Connection& c, std::span<const uint8_t> bytes, uint64_t work_limit);
    // match_budget.cpp: topic tree nodes all matching has stepped through so
    // far, and the shared groups routed through (shared_work).
    uint64_t match_work() const { return subs.nodes_visited() + retained.nodes_visited() + shared_work; }
    // Each shared group a message goes through picks a member and delivers
    // a copy, served by the route cache without a node visited: one client
    // in 10 000 groups on one topic made each tiny PUBLISH 10 000
    // deliveries, the budget never charged. Weighted like the node visits
    // that much work costs.
    static constexpr uint64_t kSharedGroupWork = 16;
    uint64_t shared_work = 0;
    bool input_deferred(const Connection& c) const { return c.extras() && c.extras()->input_deferred; }
    // The client's input ended: by its EOF (socket_open: its answers can
    // still leave) or with its socket. What it sent before and is still to
    // be handled (deferred by the match budget; with the socket open, also
    // behind a password check) is handled first, the connection closed
    // after; else it is dropped now, as a lost connection (its will goes).
    void input_ended(Connection& c, bool socket_open);
    bool connect_waits(const Connection& c) const { return c.extras() && c.extras()->connect_waits; }
    // In stats.connections (and so max_connections): connected, with its
    // socket still open (one closed with input deferred is not).
    bool counted(const Connection& c) const {
        return c.connected && !(c.extras() && c.extras()->closed_after_input);
    }
    bool exempt_from_match_budget(const Connection& c) const;
    // Past `work_limit` and not exempt; an exempt connection's limit is lifted.
    bool out_of_match_work(const Connection& c, uint64_t& work_limit) const;
    void replay_input(Connection& c);   // inbuf's waiting input, as if it arrived now
    void defer_input(Connection& c, std::span<const uint8_t> rest);
    void resume_deferred_input();   // at a pass end: what earlier passes deferred
    void handle_packet(Connection& c, mqtt::Packet& p);
    // `ticket`: the packet waits until it is durable (HeldAcks), as does
    // anything behind a held CONNACK/SUBACK. A DISCONNECT never waits (the
    // connection closes after it), and behind a held CONNACK it is not sent.
    // True if the packet waits in the held queue.
    bool send_packet(Connection& c, const mqtt::Packet& p, uint64_t ticket = 0);
    void packet_too_large_for_client(Connection& c, const mqtt::Packet& p);   // closes (see broker.cpp)
    // v5 DISCONNECT from the server, with a Reason String: some clients (paho
    // 1.6) read the reason code only when the packet carries a property.
    void send_disconnect(Connection& c, uint8_t reason);
    void protocol_error(Connection& c, uint8_t reason);   // v5 DISCONNECT(reason), close; will published
    void run_timers();
    bool timer_live(const Timer& t);   // false: the entry is stale and would be ignored when it fires
    void bury();
    // Every write's Append goes through written(): it counts a refusal; the
    // second form also adds it to the operation's writes. True if stored.
    bool written(const Append& a) { return a.ok() || count_refusal(a.status); }
    bool written(const Append& a, OpWrites& w) {
        w.add(a);
        return written(a);
    }
    // The queue budget of a bridge's local session ("$bridge/<name>"), or null.
    const Config::SessionBudget* budget_of(std::string_view client_id) const {
        for (const Config::SessionBudget& b : cfg.session_budgets)
            if (b.client_id == client_id) return &b;
        return nullptr;
    }
    bool count_refusal(AppendStatus why);   // returns false
    // A message dropped from `client_id`'s queue (its limit, a bridge's
    // budget when_full, or make_room: for_room): counted, and per bridge backlog.
    void count_queue_drop(std::string_view client_id, const Config::SessionBudget* budget, bool for_room = false);
    std::map<std::string, uint64_t, std::less<>> backlog_dropped;   // budgeted sessions only: QueueInfo::dropped
    uint64_t wall_ms() const;

    // --- connect.cpp
    void on_connect(Connection& c, mqtt::Connect& p);
    // on_connect's steps; those returning uint8_t answer 0 or the reason to refuse.
    uint8_t connect_precheck(const mqtt::Connect& p) const;
    uint8_t choose_client_id(const mqtt::Connect& p, std::string& client_id, bool& assigned);
    bool at_session_limit(std::string_view client_id);
    void note_deep_topic(std::string_view client_id);
    // A log line a client can cause at will is written at most once a
    // minute (the log lives on flash).
    struct OncePerMinute {
        bool logged = false;
        uint64_t at_ms = 0;
        bool due(uint64_t now_ms) {
            if (logged && now_ms - at_ms < 60000) return false;
            logged = true;
            at_ms = now_ms;
            return true;
        }
    };
    OncePerMinute deep_topic_log;
    mutable OncePerMinute keep_alive_refusal_log;   // connect_precheck is const
    bool session_limit_noted = false;   // the refusal is logged once per time the limit is reached
    uint8_t make_will(const mqtt::Connect& p, std::unique_ptr<Will>& out);
    uint32_t granted_expiry(std::string_view client_id, uint32_t asked) const;
    Session& attach_session(const std::string& client_id, bool fresh, bool& session_present);
    struct ConnackFacts {
        uint32_t expiry, asked_expiry;
        uint16_t keep_alive;
        bool assigned;   // the broker chose the client id
    };
    void connack_properties(const mqtt::Connect& p, const Session& s, const ConnackFacts& f,
                            mqtt::Properties& pr) const;
    // The authenticator's verdict on this CONNECT: true with `out` set, or
    // false while it is pending (on_connect runs again when it arrives).
    bool authenticate(Connection& c, const mqtt::Connect& p, std::string_view client_id, AuthVerdict& out);
    bool auth_pending(const Connection& c) const { return c.extras() && c.extras()->auth_request != 0; }
    void on_disconnect(Connection& c, const mqtt::Disconnect& p);
    // Detaches the connection from its session and closes it. The will goes
    // out (now or after its delay) when `publish_will`.
    void drop(Connection& c, bool publish_will, bool close_transport);
    // Makes sure the connection's timer entry fires no later than `due_ms`.
    void arm_conn_timer(Connection& c, uint64_t due_ms);
    void schedule_keep_alive(Connection& c);
    // CONNECT timeout before CONNECT, keep alive after; `due_ms` tells a stale entry.
    void on_conn_timer(ConnId id, uint64_t due_ms);
    void on_session_expiry_timer(Slot s, uint64_t gen);
    void on_will_delay_timer(Slot s, uint64_t gen);
    Session& create_session(const std::string& client_id) { return sessions.create(client_id); }
    void remove_session(Session& s);
    void publish_will(Session& owner, const Will& w);
    void store_will(const Session& s, Will& w);
    // The will of `s`'s client is over: published (when `publish`),
    // discarded or cancelled; out of the store from then on.
    void end_will(Session& s, Will& w, bool publish);
    // At a shutdown: true if `w` is in the store for the next start (stored
    // now if an earlier write was refused); else it was published now.
    bool will_kept_for_restart(Session& s, Will& w);
    void recover_wills(RecoveredState& state, uint64_t wall);
    std::string random_client_id();

    // --- publish.cpp
    // `wire`: the PUBLISH as it arrived (see seed_shared_publish), or empty.
    void on_publish(Connection& c, mqtt::Publish& p, std::span<const uint8_t> wire = {});
    // Whether a client (its CONNECT's bridge bit, its id) may publish, or
    // leave a will, to `topic`: $SYS only bridges (the local sessions of
    // hato's own have client ids under Config::kBridgeClientIdPrefix; else
    // `proven_bridge`: the bridge bit from a user a password or certificate
    // proved), and a client its own connection state; $bridge/ only hato's
    // bridges.
    bool may_publish_reserved(bool proven_bridge, std::string_view client_id, std::string_view topic) const;
    void seed_shared_publish(const MsgPtr& m, mqtt::Version v, std::span<const uint8_t> wire);
    void on_ack(Connection& c, const mqtt::Ack& a);   // PUBACK, PUBREC, PUBREL, PUBCOMP
    void on_pubrel(Connection& c, const mqtt::Ack& a);
    // Routes a message to every matching subscriber; returns the number of receivers.
    // `memo`: the publishing connection's RouteMemo, if a client published it.
    // Counts nothing received: the callers of a client's message do.
    size_t route(const MsgPtr& msg, Slot publisher, OpWrites& w, RouteMemo* memo = nullptr);
    void store_retained(const MsgPtr& msg, OpWrites& w);
    // Whether a retained message to `topic` would add one past
    // max_retained_messages (counted, logged once each time the limit is reached).
    // `own_bridge_state`: one of hato's bridges' $SYS topics (its
    // connection state), which is never refused (it is counted).
    bool retained_at_limit(std::string_view topic, bool own_bridge_state = false);
    // Within max_topic_levels and max_topic_length; counted when not.
    // `length`: the bytes counted (a shared filter's, with its prefix).
    bool topic_within_limits(std::string_view topic, size_t length) {
        if (length <= cfg.max_topic_length && mqtt::within_levels(topic, cfg.max_topic_levels)) return true;
        ++stats.topics_refused_levels;
        return false;
    }
    bool retained_limit_noted = false;
    uint64_t retained_swept_ms = 0;   // expired retained messages last cleared (retained_at_limit)
    static constexpr uint64_t kRetainedSweepMs = 10000;
    // How long a message lives from now: Bounded, its Message Expiry
    // Interval (or none) bounded by [mqtt] max_message_expiry, which applies
    // to messages that ask for none too (a client's); Own, the interval it
    // asked for only (the broker's own state that a bridge or a Sparkplug
    // birth brings); Later, none yet (a will: from its publication).
    enum class Lifetime : uint8_t { Bounded, Own, Later };
    // Sets expiry_ms / expiry_wall_ms from a Message Expiry Interval.
    void apply_expiry(Message::Init& m, std::optional<uint32_t> interval_s, Lifetime lifetime = Lifetime::Bounded);
    // A message from an incoming PUBLISH, a will, or the broker itself;
    // `v5_props` (v5 only) gives the forwarded properties and the interval.
    MsgPtr make_message(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos, bool retain,
                        const mqtt::Properties* v5_props, Lifetime lifetime);
    std::vector<uint8_t> forwarded_scratch;   // make_message's encoding buffer, reused
    // The reassembled PUBLISH being handled, whose payload a message may
    // keep in place (process_reassembled); null otherwise.
    ReceivedPacket* receiving = nullptr;
    FlowsPool flows_pool;                     // emptied SessionFlows, for reuse
    void release_acks() {
        acks.release([this](ConnId id) { return conn(id); });
    }

    // --- delivery.cpp
    // Whether a message of `item_bytes` would be dropped for room in the
    // session's queue ([limits] max_queued_*, or its budget), with `more_*`
    // about to be queued before it.
    bool queue_full(const Session& s, const Config::SessionBudget* budget, uint64_t item_bytes,
                    size_t more_queued = 0, uint64_t more_bytes = 0) const;
    // The queue bytes of a shared delivery, as deliver() counts it: with
    // the receiving member's subscription identifier (at most one).
    static uint64_t shared_item_bytes(const Message& m) { return m.byte_size() + sizeof(uint32_t); }
    // Whether a QoS 0 message to `c`, with `queued` bytes in its output, is
    // sent, or dropped: behind a held CONNACK/SUBACK, or for a slow consumer
    // (or past the hard bound).
    enum class Qos0Room { Send, DropHeld, DropSlow };
    Qos0Room qos0_room(const Connection& c, uint64_t queued) const;
    // Whether every message deliver() would queue for `s` is now dropped (a
    // full queue, expired ones swept first; never with a drop_oldest budget).
    bool queue_closed(Session& s);
    void deliver(Session& s, const MsgPtr& msg, uint8_t qos, bool retain, std::vector<uint32_t> sub_ids,
                 uint64_t share_key, OpWrites& w, IfUnstored if_unstored = IfUnstored::Drop);
    void pump(Session& s, OpWrites& w);
    void retry_flights() {   // see flight_retry
        if (flight_retry.empty()) return;
        for (const std::string& id : std::exchange(flight_retry, {}))
            if (Session* s = sessions.find(id)) {
                if (!send_waiting_answers(*s)) flight_retry.insert(id);
                pump(*s);
            }
    }
    // The PUBRELs and PUBCOMPs that wait for their records, in order, up to
    // the first the store refuses again. False: some still wait.
    bool send_waiting_answers(Session& s);
    // Stores the Pubrel state of `item` (its PUBREC came). False: refused.
    bool store_pubrel(Session& s, OutItem& item);
    // Removes an inbound QoS 2 id (its PUBREL came), stored first, and sends
    // the PUBCOMP if `answer`. False: the store refused the removal, nothing changed.
    bool release_inbound(Session& s, Connection& c, uint16_t packet_id, bool answer);
    void pump(Session& s) {   // outside a PUBLISH: its writes are only counted
        OpWrites ignored;
        pump(s, ignored);
    }
    void fill_window(Session& s, OpWrites& w);     // pump() without freeing the flow state
    // Puts `item` in flight to `c`: a packet id, the PUBLISH, its state stored.
    // False: not sent, back first in the queue (its state record was refused).
    bool start_flight(Session& s, Connection& c, SessionFlows& f, OutItem&& item, OpWrites& w);
    void purge_expired(Session& s, OpWrites& w);   // drops expired messages from the queue
    void make_room();   // a store out of space gets room from the drop_oldest bridge backlogs
    uint64_t drop_oldest_queued(Session& s, OpWrites& w);   // the queue's front (not in flight); its bytes
    // A resumed session's in-flight messages: PUBRELs again, PUBLISHes again
    // (DUP) as far as the new connection's window allows (the rest await
    // room, ahead of the queue).
    void resend_inflight(Session& s);
    // Sends the in-flight PUBLISHes awaiting their resend, oldest first, while
    // there is room; `with_pubrels`: the PUBRELs among them too, in order.
    void resend_awaiting(Session& s, Connection& c, bool with_pubrels);
    // Sends `item` again with DUP. False: it is done instead (not for its
    // owner any more, or too large for the client), for finish_out.
    bool resend_publish(Session& s, Connection& c, OutItem& item);
    void on_client_ack(Connection& c, const mqtt::Ack& a);
    // The bytes queued for the client; 0: too large for it, not sent.
    // `held` set: the packet's bytes go there instead of to the transport.
    size_t send_publish(Connection& c, const OutItem& item, bool dup, std::vector<uint8_t>* held = nullptr);
    mqtt::PublishParts publish_parts(const Connection& c, const Message& m, uint8_t qos,
                                     std::span<const uint32_t> sub_ids) const;
    // Whether `pp` fits the Maximum Packet Size `c` announced (one that
    // does not is skipped there, MQTT-3.1.2-24/25).
    bool fits_client(const Connection& c, const mqtt::PublishParts& pp) const;
    // A shared group's member `s` could take `m` now: offline, or online with
    // a Maximum Packet Size it fits. One that could not would skip it, lost to
    // the whole group.
    bool member_can_take(const Session& s, const Message& m, uint8_t qos, uint32_t sub_id);
    // The PUBLISH through `acks`: sent once `ticket` is durable and what was
    // held for `c` before it is out. A QoS 2 PUBLISH to a persistent session
    // waits for item.state_ticket, since the receiver holds its packet id
    // until PUBREL and a power cut must not bring the message back unsent
    // (it would go out again under another id: delivered twice, and the
    // held id later reused, so the message sent on it would be swallowed);
    // any PUBLISH behind a held CONNACK/SUBACK goes this way with ticket 0.
    size_t send_publish_held(Connection& c, const OutItem& item, bool dup, uint64_t ticket);
    void count_publish(const OutItem& item) {
        ++stats.messages_out;
        stats.publish_bytes_out += item.msg->payload().size();
    }
    // Unblocks what drained below half the limit; drops clients blocked too long.
    void check_blocked();
    void redistribute_shared(Session& s, bool ending = false);
    void finish_out(Session& s, uint64_t seq);
    size_t window(const Connection& c) const;   // the in-flight window towards this client
    // Whether one more message may go into flight towards `c` now, or what stops it.
    enum class Room { Yes, WindowFull, OutputBlocked, OverLimit };
    Room room_to_send(const Connection& c, const SessionFlows& f) const;
    // May the session's owner read a message published to `topic`? Asked at
    // routing and again at every send (the rules may have been reloaded, the
    // queue may predate a restart). A session whose owner is not known yet
    // (stored before owners were) keeps its messages until its client
    // connects; they are judged when sent.
    bool may_read(Session& s, std::string_view topic);

    // --- subscribe.cpp
    void on_subscribe(Connection& c, const mqtt::Subscribe& p);
    void on_unsubscribe(Connection& c, const mqtt::Unsubscribe& p);
    // Adds a subscription to the session and index; returns true if new.
    // Nothing changes when the store refuses the subscription (returns false).
    bool add_subscription(Session& s, const std::string& filter, uint8_t options, uint32_t sub_id,
                          bool& is_new, OpWrites& w);
    // True when `filter` would be a new subscription past max_subscriptions_per_client.
    bool at_subscription_limit(const Session& s, std::string_view filter) const;
    // The retained messages `inner` matches, after a SUBSCRIBE's SUBACK; not
    // matched at all when `s` has room for none of them (output and queue).
    void send_retained(Session& s, const std::string& inner, uint8_t granted_qos, uint32_t sub_id);
    // Puts a subscription in the session and the index (no persistence); true if new.
    bool index_subscription(Session& s, const std::string& filter, uint8_t options, uint32_t sub_id);
    void unindex_subscription(Session& s, const SubRecord& rec);

    // --- recover.cpp
    void recover();
    uint64_t recovered_queue_time(uint64_t queued_wall_ms, uint64_t wall) const;
};

}  // namespace hato::broker
