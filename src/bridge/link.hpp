// One bridge's MQTT state machine, without sockets. It speaks MQTT on two
// sides: as a client to the upstream broker, and as a client of the local
// broker (a virtual connection whose persistent session "$bridge/<name>"
// holds the durable outbound queue). Messages and acknowledgements pass
// through with their packet identifiers unchanged, so an outbound message is
// completed in the local store only when the upstream acknowledged it, and
// an inbound one is acknowledged upstream only once the local broker
// acknowledged it (after it is durable).
//
// Order of a connection: upstream CONNECT -> CONNACK -> upstream SUBSCRIBE
// (in rules) -> SUBACK -> local CONNECT -> CONNACK (the local session resends
// its in-flight messages, then its queue) -> local SUBSCRIBE (out rules) ->
// SUBACK -> ready (state "1" published locally). Upstream packets that arrive before ready wait, so the
// packet identifiers of the SUBSCRIBEs never meet those of messages.
#pragma once

#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge/topic_map.hpp"
#include "mqtt/codec.hpp"
#include "mqtt/packet.hpp"

namespace hato::bridge {

struct LinkConfig {
    std::string name;
    mqtt::Version version = mqtt::Version::V311;
    std::string client_id;              // upstream client id
    std::optional<std::string> username;
    std::optional<std::string> password;
    uint16_t keep_alive = 60;
    bool clean_start = false;
    uint32_t session_expiry = 0;        // v5 upstream session expiry
    bool try_private = false;           // v3.1.1 bridge bit (protocol level 0x84)
    uint16_t inflight = 100;            // outbound window (capped by the upstream's Receive Maximum)
    // Largest packet the upstream takes, 0 = unknown: a v5 upstream says it
    // in its CONNACK (the smaller of the two applies), a v3.1.1 one cannot.
    uint32_t max_packet_size = 0;
    // Retained "$SYS/broker/connection/<client_id>/state" on the upstream:
    // "1" once ready, "0" through the will when the connection is lost.
    bool notifications = true;
    std::vector<TopicRule> topics;
};

// What the link asks of its wiring.
class LinkOutput {
public:
    virtual ~LinkOutput() = default;
    virtual void upstream_send(std::span<const uint8_t> bytes) = 0;
    virtual void upstream_close() = 0;           // protocol error or keep-alive timeout
    virtual void local_open() = 0;               // open the virtual local connection
    virtual void local_send(std::span<const uint8_t> bytes) = 0;   // bytes to the broker
    virtual void local_close() = 0;
    virtual void log(int level, const std::string& text) = 0;       // 0 info, 1 warn
    // The filters the local session is subscribed to now: those no rule
    // sends out any more are unsubscribed, so they stop filling the queue.
    virtual std::vector<std::string> local_filters() { return {}; }
    // The in-rule filters this bridge's upstream session is subscribed to,
    // as remembered durably (across reloads and restarts: MQTT cannot ask
    // an upstream what a session holds), and the update of that memory.
    virtual std::vector<std::string> upstream_filters() { return {}; }
    virtual void remember_upstream_filters(const std::vector<std::string>& /*filters*/) {}
    // The upstream's CONNACK says it has no session for us (new, expired,
    // or lost in a restart): it forgot the outbound QoS 2 messages whose
    // PUBREL it had not answered, so the local session must send their
    // PUBLISH again, not the PUBREL, or an upstream that delivers at PUBREL
    // never delivers them. Called before the local CONNECT; `answered_here`:
    // the ids whose PUBREL the link answers itself (they crossed at QoS 1).
    virtual void upstream_session_new(std::span<const uint16_t> /*answered_here*/) {}
};

class Link {
public:
    enum class State : uint8_t { Down, UpConnecting, UpSubscribing, LocalConnecting, LocalSubscribing, Ready };

    Link(LinkConfig cfg, LinkOutput& out);

    // The local session's client id.
    static std::string local_client_id(const std::string& name) { return "$bridge/" + name; }
    // Where the runner keeps the upstream filters it remembers (retained, local).
    static std::string upstream_filters_topic(const std::string& name) {
        return "$bridge/" + name + "/upstream_filters";
    }

    // Creates (or refreshes) the local session and its subscriptions before
    // the first upstream connection, so that what is published meanwhile is
    // queued: local CONNECT, SUBSCRIBE, then the local connection closes.
    // Messages the session delivers meanwhile stay unacknowledged (in flight,
    // resent on the next connection). primed() tells when it is done.
    void prime();
    bool primed() const { return primed_; }

    // Upstream transport connected: the CONNECT goes out.
    void on_upstream_open(uint64_t now_ms);
    // Bytes from the upstream. False: protocol error (the link closed itself).
    bool on_upstream_data(std::span<const uint8_t> bytes, uint64_t now_ms);
    // Upstream transport gone: the local connection is closed too (the
    // session keeps its queue and in-flight messages for the next time).
    void on_upstream_closed();
    // Bytes the broker sent to the local connection.
    void on_local_data(std::span<const uint8_t> bytes);
    // The broker closed the local connection (e.g. taken over, shutting down).
    void on_local_closed();
    // Keep alive towards the upstream.
    void on_tick(uint64_t now_ms);

    // The upstream password (read from password_file at start and on reload).
    void set_password(std::string pw) { cfg_.password = std::move(pw); }

    State state() const { return state_; }
    bool ready() const { return state_ == State::Ready; }
    uint64_t forwarded_out() const { return forwarded_out_; }
    uint64_t forwarded_in() const { return forwarded_in_; }
    // Messages dropped because the other side does not take a packet that
    // large (see forward_out / forward_in).
    uint64_t too_large_out() const { return too_large_out_; }
    uint64_t too_large_in() const { return too_large_in_; }
    // Messages dropped because a rule maps their topic to one that is not a
    // valid topic name (empty: "cmd/" with remote_prefix "cmd/" and no
    // local_prefix): the other side would close the connection on it.
    uint64_t unmappable_out() const { return unmappable_out_; }
    uint64_t unmappable_in() const { return unmappable_in_; }
    // Upstream bytes buffered, waiting for the rest of a packet (tests).
    size_t upstream_buffered() const { return up_in_.size(); }
    // Outbound messages the upstream refused (v5 PUBACK / PUBREC reason code
    // 0x80 or above): the flow ends with that answer, so they are not resent.
    uint64_t refused_out() const { return refused_out_; }
    // Inbound messages the local broker refused for good (a reason other
    // than 0x97, e.g. 0x99 payload format invalid): dropped, and answered
    // upstream so they are not resent.
    uint64_t refused_in() const { return refused_in_; }
    // Connections in a row the upstream closed soon after the bridge sent
    // the same outbound message, with that message unanswered: from
    // kStuckCloses on, most likely the one message it will not take (a
    // v3.1.1 upstream cannot say so), and nothing queued behind it crosses.
    // 0 once it is answered, or a close finds another message first.
    uint32_t closes_on_same_message() const { return closes_on_same_; }
    static constexpr uint32_t kStuckCloses = 3;
    static constexpr uint64_t kStuckWindowMs = 5000;   // "soon after"
    // The upstream must answer CONNECT and the SUBSCRIBE within this, also
    // with keep_alive = 0 (one that takes the connection and never answers
    // would otherwise hold the bridge, and its queue, for good). Paho's
    // connect timeout.
    static constexpr uint64_t kSetupTimeoutMs = 30000;
    // Why the upstream refused or dropped us, for the log.
    const std::string& last_error() const { return last_error_; }

private:
    void fail(const std::string& why);
    void forget_connection();   // Down: what only this connection needed goes
    bool handle_upstream(const mqtt::Packet& p, std::span<const uint8_t> raw);
    bool handle_local(const mqtt::Packet& p);
    void send_upstream(const mqtt::Packet& p);
    void send_local(const mqtt::Packet& p);
    // Send what scratch_ holds (encoded by the caller, who checked its size).
    void send_scratch_upstream();
    void send_scratch_local();
    void start_local();
    void subscribe_local();
    void unsubscribe_stale_local();
    // Whether a rule sending in direction `in` (upstream to local) or out
    // has exactly this pattern.
    bool has_rule(bool in, const std::string& pattern) const;
    // After the in rules' SUBACK (or at CONNACK with none): the remembered
    // upstream filters no rule asks for any more are unsubscribed upstream,
    // and `subscribed` (the in rules the upstream accepted) is remembered
    // once nothing else is left there.
    void unsubscribe_stale_upstream(std::vector<std::string> subscribed);
    void become_ready();
    // Retained "$SYS/broker/connection/<name>/state": "1" connected, "0" not
    // (Mosquitto's convention), published through the local session.
    void publish_state(bool up);
    // The upstream's copy of the state topic (named after our client id,
    // as Mosquitto's bridge does, so gateways with one bridge name differ).
    std::string upstream_state_topic() const { return "$SYS/broker/connection/" + cfg_.client_id + "/state"; }
    // Inbound messages wait (in waiting_in_, in order) while the local
    // broker's Receive Maximum is reached: it would close the connection.
    void forward_in(const mqtt::Publish& pub, std::span<const uint8_t> raw);
    void deliver_in(const mqtt::Publish& pub);
    // Whether deliver_in answers `pub` itself (dropped: skipped, not ours,
    // unmappable, too large here) instead of passing it to the local broker.
    bool answered_here(const mqtt::Publish& pub);
    // `pub` as the local broker gets it, under `topic`.
    mqtt::Publish local_form(const mqtt::Publish& pub, const std::string& topic) const;
    void deliver_waiting_in();   // after a local answer freed a slot
    void forward_out(const mqtt::Publish& pub);
    // Completes towards its sender a message that does not cross (no rule
    // for it, too large, a topic the rule cannot map): PUBACK, or PUBREC
    // with the PUBREL answered here later. `to_upstream`: where it was going.
    void complete_here(const mqtt::Publish& pub, bool to_upstream);
    static bool reserved_here(std::string_view topic);
    void drop_unmappable(const mqtt::Publish& pub, const std::string& mapped, bool to_upstream);
    // A message no rule maps any more (a rule removed while its messages
    // were queued, or a leftover subscription upstream): dropped, counted
    // with the unmappable ones and logged once a connection.
    void drop_unrouted(const mqtt::Publish& pub, bool to_upstream);
    // A message larger than the receiving side takes would close that
    // connection on every resend, and nothing behind it would ever cross:
    // it is dropped (counted, logged once per connection) and completed
    // towards its sender as if delivered, as MQTT-3.1.2-25 has a server do.
    // `to_upstream`: the direction it was going.
    void drop_refused_in(const mqtt::Ack& ack);
    void drop_too_large(const mqtt::Publish& pub, size_t bytes, uint32_t limit, bool to_upstream);
    // A PUBREL for a QoS 2 message dropped that way: answered here with the
    // PUBCOMP (true), since the side it was meant for never saw the message.
    bool answer_dropped_pubrel(const mqtt::Ack& ack, bool from_upstream);
    void note_refused(const mqtt::Ack& ack);   // counted, the first of a connection logged
    // The upstream ended the connection (closed it, or sent DISCONNECT):
    // counts a close on the same unanswered message (closes_on_same_message).
    void note_upstream_close();
    void note_answered_out(uint16_t packet_id);
    // Splits `buf` into packets; calls fn for each. False on a decode error.
    // `limit` (0: none): a larger packet is never buffered whole (skip_too_large).
    bool drain(std::vector<uint8_t>& buf, mqtt::Version v, uint32_t limit,
               const std::function<bool(const mqtt::Packet&, std::span<const uint8_t>)>& fn);
    // An upstream packet over what the local broker takes (`rest` starts
    // with it): over what a v5 upstream was told, a protocol error; else
    // (v3.1.1 cannot be told) a PUBLISH is read up to its packet id, the
    // rest skipped as it arrives, and then completed as too large. Returns the bytes of `rest` used, 0 when more are needed, or
    // SIZE_MAX when the link failed.
    size_t skip_too_large(std::span<const uint8_t> rest, const mqtt::FixedHeader& hdr);
    void finish_skipped();
    // What upstream packets waiting here (held_, waiting_in_) may hold in all.
    bool room_to_wait(size_t bytes) const;

    LinkConfig cfg_;
    LinkOutput& out_;
    State state_ = State::Down;
    bool priming_ = false;
    bool primed_ = false;
    std::vector<uint8_t> up_in_;
    std::vector<uint8_t> local_in_;
    std::vector<std::vector<uint8_t>> held_;   // upstream packets received before ready
    size_t held_bytes_ = 0;
    size_t waiting_in_bytes_ = 0;
    // The largest packet the local broker takes, from its last CONNACK (0:
    // no limit, or not known yet): upstream packets are bounded by it, and
    // a v5 upstream is told it as our Maximum Packet Size.
    uint32_t local_limit_seen_ = 0;
    uint32_t up_told_limit_ = 0;   // the Maximum Packet Size this connection's CONNECT gave (v5)
    // The limit upstream packets are held to: the local one, plus what the
    // in rules' prefixes take off a topic (what fits here after remapping).
    uint32_t upstream_limit() const;
    // The v3.1.1 PUBLISH over that limit being skipped: bytes still to come.
    uint64_t skip_left_ = 0;
    // Skipped QoS 1/2 messages (packet id -> bytes): each goes on as an
    // empty stand-in, so that it is answered in its turn behind those
    // received before it (MQTT-4.6.0-2), and deliver_in drops it there.
    std::unordered_map<uint16_t, size_t> skipped_in_;
    struct Skipped {
        std::string topic;
        uint8_t qos = 0;
        uint16_t packet_id = 0;
        size_t bytes = 0;
    } skipped_;
    // While an upstream UNSUBSCRIBE of stale filters is unanswered: what to
    // remember once its UNSUBACK comes (until then the stale ones count too).
    std::optional<std::vector<std::string>> remember_after_unsuback_;
    // The stale filters of that UNSUBSCRIBE, in its order: one the upstream
    // refuses (v5 reason >= 0x80) stays remembered for the next connect.
    std::vector<std::string> unsubscribing_;
    std::vector<uint8_t> scratch_;
    uint16_t up_receive_max_ = 65535;
    uint64_t last_up_send_ms_ = 0;
    uint64_t last_up_recv_ms_ = 0;
    uint64_t last_up_ping_ms_ = 0;
    // Consecutive 0x97 refusals of one outbound message (by packet id).
    static constexpr uint8_t kQuotaRetries = 5;
    uint16_t quota_refused_id_ = 0;
    uint8_t quota_refusals_ = 0;
    // keep_alive, or the upstream's Server Keep Alive if shorter, seconds.
    uint16_t up_keep_alive_ = 0;
    uint64_t up_opened_ms_ = 0;   // on_upstream_open: kSetupTimeoutMs runs from here
    uint16_t local_keep_alive_ = 0;   // imposed by the local broker (server_keep_alive), seconds
    uint64_t last_local_send_ms_ = 0;
    uint64_t now_ms_ = 0;
    uint64_t forwarded_out_ = 0;
    uint64_t forwarded_in_ = 0;
    uint32_t up_max_packet_ = 0;      // what the upstream takes (config, CONNACK); 0 = no limit known
    uint32_t local_max_packet_ = 0;   // what the local broker takes (its CONNACK)
    uint64_t too_large_out_ = 0;
    uint64_t too_large_in_ = 0;
    uint64_t unmappable_out_ = 0;
    uint64_t unmappable_in_ = 0;
    // What the local broker's CONNACK (always v5) says it takes; learnt when
    // the bridge primes its session, before the first upstream connection.
    uint16_t local_receive_max_ = 65535;
    uint8_t local_max_qos_ = 2;
    bool local_retain_ = true;
    // The same of the upstream (a v5 CONNACK; a v3.1.1 one takes all).
    uint8_t up_max_qos_ = 2;
    bool up_retain_ = true;
    // Inbound QoS 1/2 messages published locally and not yet completed
    // there (PUBACK, PUBCOMP): the local Receive Maximum counts them.
    std::vector<uint16_t> local_inflight_in_;
    struct WaitingIn {
        uint16_t packet_id = 0;   // 0: QoS 0
        uint8_t qos = 0;
        bool answered_here = false;   // not by the local broker: waits until all before it are answered
        std::vector<uint8_t> raw;
    };
    std::deque<WaitingIn> waiting_in_;   // upstream PUBLISHes waiting for a slot
    // The packet ids in waiting_in_: a resend is found without a walk of a
    // queue a v3.1.1 upstream (no Receive Maximum) can make long.
    std::bitset<65536> waiting_ids_;
    // What this connection held of the upstream's packets before ready, and
    // of an oversized PUBLISH being skipped.
    void clear_held() {
        held_.clear();
        held_bytes_ = 0;
        skip_left_ = 0;
        skipped_in_.clear();
    }
    void clear_waiting_in() {
        waiting_in_.clear();
        waiting_ids_.reset();
        waiting_in_bytes_ = 0;
    }
    // QoS 2 messages that cross at QoS 1 (the receiving side's Maximum
    // QoS): its PUBACK becomes a PUBREC towards the sender.
    std::vector<uint16_t> downgraded_in_;
    // Ids a new inbound QoS 2 flow has used since the upstream's session
    // last started afresh (or since start): the local session holds none of
    // them open from before. The others get a local PUBREL first (deliver_in),
    // whose PUBCOMP (releasing_) ends there.
    std::bitset<65536> ids_released_;
    std::vector<uint16_t> releasing_;
    std::vector<uint16_t> downgraded_out_;
    bool too_large_logged_ = false;   // this connection's first drop was logged
    bool unmappable_logged_ = false;
    bool unrouted_logged_ = false;
    uint64_t refused_out_ = 0;
    bool refused_logged_ = false;     // this connection's first refusal was logged
    uint64_t refused_in_ = 0;
    bool refused_in_logged_ = false;
    // Packet ids of dropped QoS 2 messages whose PUBREL is still to come,
    // kept across reconnects (the PUBREL is resent then).
    std::vector<uint16_t> dropped_out_qos2_;
    std::vector<uint16_t> dropped_in_qos2_;
    // Outbound QoS 1/2 messages sent on this connection and not yet answered
    // (PUBACK, PUBREC), oldest first; the oldest at a close, and how many
    // closes in a row found that same one (note_upstream_close).
    struct SentOut {
        uint16_t packet_id = 0;
        uint32_t bytes = 0;
        uint64_t sent_ms = 0;
        std::string topic;   // as sent upstream
        bool same(const SentOut& o) const { return packet_id == o.packet_id && bytes == o.bytes && topic == o.topic; }
    };
    std::deque<SentOut> unanswered_out_;
    SentOut stuck_on_;
    uint32_t closes_on_same_ = 0;
    std::string last_error_;
};

// Identifiers of the bridge's own SUBSCRIBE packets: far from where packet
// identifiers of messages start, so a persistent upstream session's leftover
// state does not meet them.
inline constexpr uint16_t kSubscribeId = 65535;
inline constexpr uint16_t kUnsubscribeId = 65534;

}  // namespace hato::bridge
