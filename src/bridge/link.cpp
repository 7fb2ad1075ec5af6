#include "bridge/link.hpp"

#include <algorithm>
#include <cstdio>

#include "mqtt/codec.hpp"

namespace hato::bridge {

using mqtt::Packet;
using mqtt::PacketType;
using mqtt::Version;

namespace {

// The local connection always speaks v5: No Local keeps what the bridge
// publishes locally from coming back to it, and acknowledgements carry
// reason codes.
constexpr Version kLocalVersion = Version::V5;
constexpr uint32_t kLocalMaxPacket = 0;   // the broker's own limit applies
constexpr size_t kMaxHeld = 100000;       // upstream packets waiting for ready
constexpr size_t kMaxHeldBytes = 64u << 20;   // and their bytes (each up to the local packet limit)

bool has(const std::vector<uint16_t>& ids, uint16_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

// Adds `id` once: a resend under the same id is the same flow.
void add(std::vector<uint16_t>& ids, uint16_t id) {
    if (!has(ids, id)) ids.push_back(id);
}

// Removes `id` from `ids`; false if it was not there.
bool take(std::vector<uint16_t>& ids, uint16_t id) {
    auto it = std::find(ids.begin(), ids.end(), id);
    if (it == ids.end()) return false;
    ids.erase(it);
    return true;
}

// "0x87, not authorized".
std::string hex(uint8_t v) {
    char b[64];
    std::snprintf(b, sizeof b, "0x%02X, %s", unsigned(v), mqtt::reason_name(v));
    return b;
}

}  // namespace

Link::Link(LinkConfig cfg, LinkOutput& out) : cfg_(std::move(cfg)), out_(out) {}

void Link::send_upstream(const Packet& p) {
    scratch_.clear();
    mqtt::encode(p, cfg_.version, scratch_);
    send_scratch_upstream();
}

void Link::send_scratch_upstream() {
    out_.upstream_send(scratch_);
    last_up_send_ms_ = now_ms_;
}

void Link::send_local(const Packet& p) {
    scratch_.clear();
    mqtt::encode(p, kLocalVersion, scratch_);
    send_scratch_local();
}

void Link::send_scratch_local() {
    last_local_send_ms_ = now_ms_;
    out_.local_send(scratch_);
}

void Link::fail(const std::string& why) {
    if (state_ == State::Down) return;
    last_error_ = why;
    priming_ = false;
    out_.log(1, "bridge " + cfg_.name + ": disconnecting: " + why);
    const bool local_open = state_ >= State::LocalSubscribing;
    const bool local_exists = state_ >= State::LocalConnecting;
    if (local_open) publish_state(false);
    forget_connection();
    if (local_exists) out_.local_close();
    out_.upstream_close();
}

void Link::prime() {
    priming_ = true;
    start_local();
}

void Link::on_upstream_open(uint64_t now_ms) {
    now_ms_ = now_ms;
    last_up_recv_ms_ = now_ms;
    last_up_ping_ms_ = 0;
    up_keep_alive_ = cfg_.keep_alive;
    up_opened_ms_ = now_ms;
    state_ = State::UpConnecting;
    up_in_.clear();
    local_in_.clear();
    clear_held();
    up_receive_max_ = 65535;
    up_max_packet_ = cfg_.max_packet_size;
    local_max_packet_ = 0;
    too_large_logged_ = false;
    refused_logged_ = false;
    refused_in_logged_ = false;
    last_error_.clear();
    unanswered_out_.clear();
    up_max_qos_ = 2;
    up_retain_ = true;
    unmappable_logged_ = false;
    unrouted_logged_ = false;
    local_inflight_in_.clear();
    clear_waiting_in();
    downgraded_in_.clear();
    downgraded_out_.clear();

    mqtt::Connect c;
    c.version = cfg_.version;
    c.clean_start = cfg_.clean_start;
    c.keep_alive = cfg_.keep_alive;
    c.client_id = cfg_.client_id;
    if (cfg_.username) c.username = std::string_view(*cfg_.username);
    if (cfg_.password)
        c.password = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(cfg_.password->data()),
                                              cfg_.password->size());
    if (cfg_.version == Version::V5 && cfg_.session_expiry > 0) c.props.session_expiry = cfg_.session_expiry;
    // Inbound messages beyond the local broker's window wait here: this
    // bounds how many a v5 upstream sends before the first is answered.
    if (cfg_.version == Version::V5) c.props.receive_maximum = cfg_.inflight;
    // A v5 upstream then drops what the local broker would refuse anyway
    // (MQTT-3.1.2-25) instead of sending it over the WAN.
    up_told_limit_ = cfg_.version == Version::V5 ? upstream_limit() : 0;
    if (up_told_limit_ != 0) c.props.maximum_packet_size = up_told_limit_;
    static constexpr uint8_t kDown[] = {'0'};
    const std::string will_topic = upstream_state_topic();
    if (cfg_.notifications) {
        c.will_flag = true;
        c.will_qos = 1;
        c.will_retain = true;
        c.will_topic = will_topic;
        c.will_payload = mqtt::Bytes(kDown, sizeof kDown);
    }
    c.bridge = cfg_.try_private && cfg_.version != Version::V5;
    scratch_.clear();
    mqtt::encode(Packet{c}, cfg_.version, scratch_);
    out_.upstream_send(scratch_);
    last_up_send_ms_ = now_ms;
}

bool Link::drain(std::vector<uint8_t>& buf, Version v, uint32_t limit,
                 const std::function<bool(const Packet&, std::span<const uint8_t>)>& fn) {
    size_t off = 0;
    bool ok = true;
    while (ok && off < buf.size() && state_ != State::Down) {
        Packet p;
        std::span<const uint8_t> rest(buf.data() + off, buf.size() - off);
        if (limit != 0) {
            mqtt::FixedHeader hdr;
            const mqtt::DecodeResult h = mqtt::peek_header(rest, limit, hdr);
            if (h.status == mqtt::DecodeStatus::Incomplete) break;
            if (h.status == mqtt::DecodeStatus::Error && h.reason == mqtt::rc::PacketTooLarge) {
                const size_t used = skip_too_large(rest, hdr);
                if (used == SIZE_MAX) return false;
                if (used == 0) break;
                off += used;
                continue;
            }
        }
        mqtt::DecodeResult r = mqtt::decode(rest, v, kLocalMaxPacket, p);
        if (r.status == mqtt::DecodeStatus::Incomplete) break;
        if (r.status == mqtt::DecodeStatus::Error) {
            fail(std::string("malformed packet: ") + r.what);
            return false;
        }
        ok = fn(p, rest.first(r.consumed));
        off += r.consumed;
    }
    if (state_ == State::Down) buf.clear();
    else buf.erase(buf.begin(), buf.begin() + std::ptrdiff_t(off));
    return ok;
}

bool Link::on_upstream_data(std::span<const uint8_t> bytes, uint64_t now_ms) {
    if (state_ == State::Down) return false;
    now_ms_ = now_ms;
    last_up_recv_ms_ = now_ms;
    if (skip_left_ != 0) {
        const size_t n = size_t(std::min<uint64_t>(skip_left_, bytes.size()));
        skip_left_ -= n;
        bytes = bytes.subspan(n);
        if (skip_left_ != 0) return true;
        finish_skipped();
        if (state_ == State::Down) return false;
    }
    up_in_.insert(up_in_.end(), bytes.begin(), bytes.end());
    return drain(up_in_, cfg_.version, upstream_limit(), [this](const Packet& p, std::span<const uint8_t> raw) {
        return handle_upstream(p, raw);
    });
}

uint32_t Link::upstream_limit() const {
    if (local_limit_seen_ == 0) return 0;
    size_t slack = 0;
    for (const TopicRule& r : cfg_.topics)
        if (r.in() && r.remote_prefix.size() > r.local_prefix.size())
            slack = std::max(slack, r.remote_prefix.size() - r.local_prefix.size());
    return uint32_t(std::min<uint64_t>(uint64_t(local_limit_seen_) + slack, UINT32_MAX));
}

size_t Link::skip_too_large(std::span<const uint8_t> rest, const mqtt::FixedHeader& hdr) {
    const std::string what = "upstream sent a packet of " + std::to_string(hdr.total()) +
                             " bytes, more than the local broker takes (" + std::to_string(local_limit_seen_) + ")";
    if (up_told_limit_ != 0 && hdr.total() > up_told_limit_) {
        send_upstream(Packet{mqtt::Disconnect{mqtt::rc::PacketTooLarge, {}}});
        fail(what + ", over the Maximum Packet Size it was told (protocol error)");
        return SIZE_MAX;
    }
    if (hdr.type() != PacketType::Publish) {
        fail(what);
        return SIZE_MAX;
    }
    const uint8_t qos = (hdr.first_byte >> 1) & 3;
    const size_t at = hdr.header_len;
    if (rest.size() < at + 2) return 0;
    const size_t topic_len = size_t(rest[at]) << 8 | rest[at + 1];
    const size_t need = at + 2 + topic_len + (qos > 0 ? 2 : 0);
    if (need > hdr.total() || qos == 3) {
        fail("malformed packet: a PUBLISH too short for its topic");
        return SIZE_MAX;
    }
    if (rest.size() < need) return 0;
    skipped_.topic.assign(reinterpret_cast<const char*>(rest.data() + at + 2), topic_len);
    skipped_.qos = qos;
    skipped_.packet_id = qos > 0 ? uint16_t(rest[need - 2] << 8 | rest[need - 1]) : 0;
    skipped_.bytes = hdr.total();
    const size_t used = std::min(rest.size(), hdr.total());
    skip_left_ = hdr.total() - used;
    if (skip_left_ == 0) finish_skipped();
    return state_ == State::Down ? SIZE_MAX : used;
}

void Link::finish_skipped() {
    mqtt::Publish pub;
    pub.topic = skipped_.topic;
    pub.qos = skipped_.qos;
    pub.packet_id = skipped_.packet_id;
    if (pub.qos == 0) return drop_too_large(pub, skipped_.bytes, local_limit_seen_, /*to_upstream=*/false);
    skipped_in_[pub.packet_id] = skipped_.bytes;
    std::vector<uint8_t> stand_in;
    mqtt::encode(Packet{pub}, cfg_.version, stand_in);
    handle_upstream(Packet{pub}, stand_in);
}

bool Link::room_to_wait(size_t bytes) const {
    const size_t count = held_.size() + waiting_in_.size();
    const size_t held = held_bytes_ + waiting_in_bytes_;
    return count < kMaxHeld && (count == 0 || held + bytes <= kMaxHeldBytes);
}

bool Link::handle_upstream(const Packet& p, std::span<const uint8_t> raw) {
    if (const auto* pub = std::get_if<mqtt::Publish>(&p); pub && pub->props.topic_alias) {
        // Our CONNECT allows no topic aliases (no Topic Alias Maximum): one
        // is a protocol error (MQTT 5 3.3.2.3.4), not a message on "".
        if (cfg_.version == Version::V5)
            send_upstream(Packet{mqtt::Disconnect{mqtt::rc::TopicAliasInvalid, {}}});
        fail("upstream sent a topic alias, which this bridge does not allow (protocol error)");
        return false;
    }
    if (const auto* ack = std::get_if<mqtt::Connack>(&p)) {
        if (state_ != State::UpConnecting) return true;
        if (ack->reason != mqtt::rc::Success) {
            // A v3.1.1 upstream's log and documentation speak of its return code.
            fail(cfg_.version == mqtt::Version::V5
                     ? "upstream refused the connection: reason " + hex(ack->reason)
                     : "upstream refused the connection: return code " +
                           std::to_string(mqtt::v3_connack_code(ack->reason)) + ", " +
                           mqtt::reason_name(ack->reason));
            return false;
        }
        // The upstream's Server Keep Alive binds us (MQTT-3.2.2-21); a
        // PINGREQ is allowed at any time, so ours stays when it is shorter,
        // and 0 from the upstream does not stop us watching the link.
        if (const uint16_t ska = ack->props.server_keep_alive.value_or(0); ska != 0)
            up_keep_alive_ = cfg_.keep_alive == 0 ? ska : std::min(cfg_.keep_alive, ska);
        if (ack->props.receive_maximum) up_receive_max_ = *ack->props.receive_maximum;
        up_max_qos_ = ack->props.maximum_qos.value_or(2);
        up_retain_ = ack->props.retain_available.value_or(1) != 0;
        if (uint32_t m = ack->props.maximum_packet_size.value_or(0); m != 0)
            up_max_packet_ = up_max_packet_ == 0 ? m : std::min(up_max_packet_, m);
        // A fresh upstream session sends no PUBREL for what it sent before.
        if (!ack->session_present) {
            dropped_in_qos2_.clear();
            ids_released_.reset();   // ids the old session left open here are stale now
            out_.upstream_session_new(dropped_out_qos2_);
        }
        std::vector<mqtt::SubscribeTopic> in;
        for (const TopicRule& r : cfg_.topics) {
            if (!r.in()) continue;
            mqtt::SubscribeTopic t;
            t.filter = r.pattern;
            // What the local broker takes (it would refuse a QoS 2 PUBLISH
            // over its Maximum QoS, and the upstream resend it for ever).
            t.qos = std::min(r.qos, local_max_qos_);
            // The bridge's own messages (sent by any out rule) never come
            // back; and a retained update upstream stays retained here, or
            // the local copy would keep the first value it came with (a
            // host's STATE went offline upstream, online here for ever).
            t.no_local = true;
            t.retain_as_published = true;
            // A persistent upstream session keeps the subscription: its
            // retained messages came when it was new, and again on every
            // reconnect they would look like fresh commands here. v3.1.1
            // has no Retain Handling (docs/bridge.md).
            if (cfg_.version == Version::V5 && !cfg_.clean_start) t.retain_handling = 1;
            in.push_back(t);
        }
        if (in.empty()) {
            unsubscribe_stale_upstream({});
            start_local();
        } else {
            state_ = State::UpSubscribing;
            mqtt::Subscribe s;
            s.packet_id = kSubscribeId;
            s.topics = std::move(in);
            send_upstream(Packet{s});
        }
        return true;
    }
    if (std::holds_alternative<mqtt::Pingresp>(p)) return true;
    if (const auto* d = std::get_if<mqtt::Disconnect>(&p)) {
        note_upstream_close();
        fail("upstream sent DISCONNECT " + hex(d->reason));
        return false;
    }
    if (state_ == State::UpSubscribing) {
        if (const auto* sa = std::get_if<mqtt::Suback>(&p); sa && sa->packet_id == kSubscribeId) {
            std::vector<std::string> subscribed;
            size_t i = 0;
            for (const TopicRule& r : cfg_.topics) {   // the SUBSCRIBE listed the in rules in this order
                if (!r.in()) continue;
                const uint8_t reason = i < sa->reasons.size() ? sa->reasons[i] : 0x80;
                ++i;
                if (reason < 0x80) {
                    subscribed.push_back(r.pattern);
                    continue;
                }
                // A v3.1.1 SUBACK has one failure code, no reason.
                out_.log(1, "bridge " + cfg_.name + ": upstream refused subscription " + std::to_string(i) +
                                (cfg_.version == Version::V5 ? " (reason " + hex(reason) + ")" : " (return code 0x80)"));
            }
            unsubscribe_stale_upstream(std::move(subscribed));
            start_local();
            return true;
        }
    }
    if (state_ != State::Ready) {
        if (!room_to_wait(raw.size())) {
            fail("too many upstream packets before the local session was ready");
            return false;
        }
        held_.emplace_back(raw.begin(), raw.end());
        held_bytes_ += raw.size();
        return true;
    }
    if (const auto* pub = std::get_if<mqtt::Publish>(&p)) {
        forward_in(*pub, raw);
        return true;
    }
    if (const auto* ua = std::get_if<mqtt::Unsuback>(&p); ua && ua->packet_id == kUnsubscribeId) {
        if (remember_after_unsuback_) {
            std::vector<std::string> keep = std::move(*remember_after_unsuback_);
            for (size_t i = 0; i < unsubscribing_.size(); ++i) {
                // A v3.1.1 UNSUBACK has no reason codes: all succeeded.
                const uint8_t reason = i < ua->reasons.size() ? ua->reasons[i] : 0;
                if (reason < 0x80) continue;
                out_.log(1, "bridge " + cfg_.name + ": upstream refused to unsubscribe '" + unsubscribing_[i] +
                                "' (reason " + hex(reason) + "): retried on the next connect");
                keep.push_back(unsubscribing_[i]);
            }
            out_.remember_upstream_filters(keep);
        }
        remember_after_unsuback_.reset();
        unsubscribing_.clear();
        return true;
    }
    if (const auto* ack = std::get_if<mqtt::Ack>(&p)) {
        // PUBACK/PUBREC/PUBCOMP answer our outbound messages, PUBREL an
        // inbound QoS 2 one: each goes to the local session as is.
        if (answer_dropped_pubrel(*ack, /*from_upstream=*/true)) return true;
        if ((ack->type == PacketType::Puback || ack->type == PacketType::Pubrec) &&
            ack->reason == mqtt::rc::QuotaExceeded) {
            // A limit for now (a cloud broker's rate or quota), not a verdict
            // on the message, which was acknowledged here: it stays in the
            // local session and goes again after the reconnect's backoff.
            // The same message refused kQuotaRetries times in a row holds up
            // everything behind it for good: then it ends as MQTT has it.
            quota_refusals_ = ack->packet_id == quota_refused_id_ ? quota_refusals_ + 1 : 1;
            quota_refused_id_ = ack->packet_id;
            if (quota_refusals_ < kQuotaRetries) {
                fail("upstream refused a bridged message for now: reason " + hex(ack->reason) +
                     "; it is kept and sent again after reconnecting (" + std::to_string(quota_refusals_) + " of " +
                     std::to_string(kQuotaRetries) + " tries)");
                return false;
            }
            quota_refusals_ = 0;
        }
        if (ack->type == PacketType::Puback || ack->type == PacketType::Pubrec) {
            if (ack->packet_id == quota_refused_id_ && ack->reason < 0x80) quota_refusals_ = 0;   // taken at last
            note_answered_out(ack->packet_id);
            if (ack->reason >= 0x80) note_refused(*ack);
        }
        if (ack->type == PacketType::Puback && take(downgraded_out_, ack->packet_id)) {
            // Sent upstream at QoS 1: the local QoS 2 flow goes on here.
            if (ack->reason < 0x80) dropped_out_qos2_.push_back(ack->packet_id);
            send_local(Packet{mqtt::Ack{PacketType::Pubrec, ack->packet_id, ack->reason, {}}});
            return true;
        }
        send_local(Packet{*ack});
        return true;
    }
    return true;   // SUBACK, UNSUBACK, AUTH: nothing to do
}

void Link::forward_in(const mqtt::Publish& pub, std::span<const uint8_t> raw) {
    if (pub.qos > 0) {
        // A resend (DUP) under an id whose flow is still open here (an
        // upstream with a retry timer): the answer to the first copy is the
        // answer to it, so it is not published a second time.
        if (has(local_inflight_in_, pub.packet_id) || waiting_ids_.test(pub.packet_id)) return;
    }
    // A message answered here (a skipped one's stand-in, one not ours or
    // that cannot be published here) is answered at once: only once every
    // message before it was answered, or its answer would overtake theirs
    // (MQTT-4.6.0-2).
    const bool here = pub.qos > 0 && (!local_inflight_in_.empty() || !waiting_in_.empty()) && answered_here(pub);
    const bool full = pub.qos > 0 && (local_inflight_in_.size() >= local_receive_max_ ||
                                      (here && !local_inflight_in_.empty()));
    if (!full && waiting_in_.empty()) return deliver_in(pub);
    if (!room_to_wait(raw.size())) {
        fail("too many upstream messages waiting for the local broker");
        return;
    }
    waiting_in_.push_back({pub.qos > 0 ? pub.packet_id : uint16_t(0), pub.qos, here, {raw.begin(), raw.end()}});
    waiting_in_bytes_ += raw.size();
    if (pub.qos > 0) waiting_ids_.set(pub.packet_id);
}

void Link::deliver_waiting_in() {
    while (!waiting_in_.empty() && state_ == State::Ready) {
        WaitingIn& front = waiting_in_.front();
        if (front.qos > 0 && local_inflight_in_.size() >= local_receive_max_) return;
        if (front.answered_here && !local_inflight_in_.empty()) return;
        Packet p;
        mqtt::decode(front.raw, cfg_.version, kLocalMaxPacket, p);   // decoded once already
        const std::vector<uint8_t> raw = std::move(front.raw);   // p points into these bytes
        waiting_in_bytes_ -= raw.size();
        if (front.qos > 0) waiting_ids_.reset(front.packet_id);
        waiting_in_.pop_front();
        deliver_in(std::get<mqtt::Publish>(p));
    }
}

void Link::deliver_in(const mqtt::Publish& pub) {
    if (pub.qos > 0 && !skipped_in_.empty()) {
        if (auto it = skipped_in_.find(pub.packet_id); it != skipped_in_.end()) {
            const size_t bytes = it->second;
            skipped_in_.erase(it);
            return drop_too_large(pub, bytes, local_limit_seen_, /*to_upstream=*/false);
        }
    }
    std::optional<std::string> topic = local_topic(cfg_.topics, pub.topic);
    // Not ours (an upstream session's leftover subscription): accepted and
    // dropped, so the upstream does not resend it for ever.
    if (!topic) return drop_unrouted(pub, /*to_upstream=*/false);
    if (!mqtt::valid_topic_name(*topic) || reserved_here(*topic))
        return drop_unmappable(pub, *topic, /*to_upstream=*/false);
    // A new flow under this id: a drop of an earlier one is over.
    std::erase(dropped_in_qos2_, pub.packet_id);
    const mqtt::Publish local = local_form(pub, *topic);
    scratch_.clear();
    mqtt::encode(Packet{local}, kLocalVersion, scratch_);
    if (local_max_packet_ != 0 && scratch_.size() > local_max_packet_)
        return drop_too_large(pub, scratch_.size(), local_max_packet_, /*to_upstream=*/false);
    if (local.qos == 2 && !pub.dup && !ids_released_.test(pub.packet_id)) {
        // A new QoS 2 flow under an id the local session may still hold
        // open from an upstream session that is gone (its PUBREL never
        // comes): the local broker would take the message for a resend and
        // drop it. A PUBREL first closes any such flow (its PUBCOMP stays here).
        ids_released_.set(pub.packet_id);
        add(releasing_, pub.packet_id);
        std::vector<uint8_t> pubrel;
        mqtt::encode(Packet{mqtt::Ack{PacketType::Pubrel, pub.packet_id, 0, {}}}, kLocalVersion, pubrel);
        out_.local_send(pubrel);
    }
    ++forwarded_in_;
    send_scratch_local();
    if (local.qos > 0) add(local_inflight_in_, pub.packet_id);
    if (pub.qos == 2 && local.qos == 1) add(downgraded_in_, pub.packet_id);
    if (pub.qos > 0 && local.qos == 0) complete_here(pub, /*to_upstream=*/false);   // [mqtt] maximum_qos = 0
}

mqtt::Publish Link::local_form(const mqtt::Publish& pub, const std::string& topic) const {
    mqtt::Publish local = pub;
    local.topic = topic;
    local.props.topic_alias.reset();
    local.props.subscription_ids.clear();
    local.retain = pub.retain && local_retain_;
    local.qos = std::min(pub.qos, local_max_qos_);
    if (local.qos == 0) local.dup = false;   // an upstream resend, taken down to QoS 0: DUP there is malformed
    return local;
}

// The checks deliver_in makes before it publishes, in its order.
bool Link::answered_here(const mqtt::Publish& pub) {
    if (pub.qos == 0) return false;
    if (skipped_in_.count(pub.packet_id)) return true;
    const std::optional<std::string> topic = local_topic(cfg_.topics, pub.topic);
    if (!topic || !mqtt::valid_topic_name(*topic) || reserved_here(*topic)) return true;
    return local_max_packet_ != 0 && mqtt::encoded_size(Packet{local_form(pub, *topic)}, kLocalVersion) > local_max_packet_;
}

void Link::complete_here(const mqtt::Publish& pub, bool to_upstream) {
    if (pub.qos == 0) return;
    if (pub.qos == 2) {
        std::vector<uint16_t>& pending = to_upstream ? dropped_out_qos2_ : dropped_in_qos2_;
        std::erase(pending, pub.packet_id);
        pending.push_back(pub.packet_id);
    }
    const Packet done{mqtt::Ack{pub.qos == 2 ? PacketType::Pubrec : PacketType::Puback, pub.packet_id, 0, {}}};
    if (to_upstream) send_local(done);
    else send_upstream(done);
}

// The local broker's own topics: $SYS (its figures, the bridges' state) and
// $bridge/ (its bridges' own records). The bridge's session may write there,
// so an upstream topic that a rule's prefixes map there (cloud/$SYS/... with
// remote_prefix "cloud/") would let anyone upstream fake them.
bool Link::reserved_here(std::string_view topic) {
    return topic == "$SYS" || topic.starts_with("$SYS/") || topic.starts_with("$bridge/");
}

void Link::drop_unmappable(const mqtt::Publish& pub, const std::string& mapped, bool to_upstream) {
    ++(to_upstream ? unmappable_out_ : unmappable_in_);
    if (!unmappable_logged_) {
        unmappable_logged_ = true;
        out_.log(1, "bridge " + cfg_.name + ": a message on '" + std::string(pub.topic) + "' maps to '" + mapped +
                        "', not a valid topic " + (to_upstream ? "upstream" : "here (or one of its own)") +
                        ": dropped (check the rule's prefixes; this connection's further ones are only counted)");
    }
    complete_here(pub, to_upstream);
}

void Link::drop_unrouted(const mqtt::Publish& pub, bool to_upstream) {
    ++(to_upstream ? unmappable_out_ : unmappable_in_);
    if (!unrouted_logged_) {
        unrouted_logged_ = true;
        out_.log(1, "bridge " + cfg_.name + ": a message on '" + std::string(pub.topic) + "' matches no " +
                        (to_upstream ? "out" : "in") +
                        " rule (one removed from the configuration while its messages waited?): dropped "
                        "(this connection's further ones are only counted, as unmappable)");
    }
    complete_here(pub, to_upstream);
}

void Link::drop_too_large(const mqtt::Publish& pub, size_t bytes, uint32_t limit, bool to_upstream) {
    ++(to_upstream ? too_large_out_ : too_large_in_);
    if (!too_large_logged_) {
        too_large_logged_ = true;
        out_.log(1, "bridge " + cfg_.name + ": a message on '" + std::string(pub.topic) + "' is " +
                        std::to_string(bytes) + " bytes, more than the " + (to_upstream ? "upstream" : "local broker") +
                        " takes (" + std::to_string(limit) + "): dropped (this connection's further ones are only counted)");
    }
    complete_here(pub, to_upstream);
}

void Link::note_refused(const mqtt::Ack& ack) {
    ++refused_out_;
    if (refused_logged_) return;
    refused_logged_ = true;
    out_.log(1, "bridge " + cfg_.name + ": the upstream refused a message (reason " + hex(ack.reason) +
                    "): it ends there, as MQTT has it (this connection's further refusals are only counted)");
}

void Link::drop_refused_in(const mqtt::Ack& ack) {
    take(local_inflight_in_, ack.packet_id);
    // A PUBREC, or a PUBACK of a QoS 2 message published here at QoS 1.
    const bool qos2 = ack.type == PacketType::Pubrec || take(downgraded_in_, ack.packet_id);
    const bool v5 = cfg_.version == Version::V5;
    // A v5 PUBREC with a refusal ends the QoS 2 flow; a v3.1.1 one cannot
    // say so, its PUBREL comes and is answered here.
    if (qos2 && !v5) {
        std::erase(dropped_in_qos2_, ack.packet_id);
        dropped_in_qos2_.push_back(ack.packet_id);
    }
    ++refused_in_;
    if (!refused_in_logged_) {
        refused_in_logged_ = true;
        out_.log(1, "bridge " + cfg_.name + ": the local broker refused an upstream message (reason " +
                        hex(ack.reason) + "): dropped, and answered upstream so it is not resent "
                        "(this connection's further refusals are only counted)");
    }
    send_upstream(Packet{mqtt::Ack{qos2 ? PacketType::Pubrec : PacketType::Puback, ack.packet_id,
                                   v5 ? ack.reason : uint8_t(0), {}}});
}

bool Link::answer_dropped_pubrel(const mqtt::Ack& ack, bool from_upstream) {
    if (ack.type != PacketType::Pubrel) return false;
    std::vector<uint16_t>& pending = from_upstream ? dropped_in_qos2_ : dropped_out_qos2_;
    auto it = std::find(pending.begin(), pending.end(), ack.packet_id);
    if (it == pending.end()) return false;
    pending.erase(it);
    const Packet done{mqtt::Ack{PacketType::Pubcomp, ack.packet_id, 0, {}}};
    if (from_upstream) send_upstream(done);
    else send_local(done);
    return true;
}

void Link::start_local() {
    state_ = State::LocalConnecting;
    out_.local_open();
    mqtt::Connect c;
    c.version = kLocalVersion;
    c.clean_start = false;
    c.keep_alive = 0;
    std::string id = local_client_id(cfg_.name);
    c.client_id = id;
    c.props.session_expiry = 0xFFFFFFFFu;   // never expires
    c.props.receive_maximum = std::max<uint16_t>(1, std::min(cfg_.inflight, up_receive_max_));
    send_local(Packet{c});
}

void Link::on_local_data(std::span<const uint8_t> bytes) {
    if (state_ < State::LocalConnecting) return;
    local_in_.insert(local_in_.end(), bytes.begin(), bytes.end());
    drain(local_in_, kLocalVersion, kLocalMaxPacket, [this](const Packet& p, std::span<const uint8_t>) { return handle_local(p); });
}

bool Link::handle_local(const Packet& p) {
    if (const auto* ack = std::get_if<mqtt::Connack>(&p)) {
        if (state_ != State::LocalConnecting) return true;
        if (ack->reason != mqtt::rc::Success) {
            fail("local broker refused the bridge session: reason " + hex(ack->reason));
            return false;
        }
        local_keep_alive_ = ack->props.server_keep_alive.value_or(0);
        local_max_packet_ = ack->props.maximum_packet_size.value_or(0);
        local_limit_seen_ = local_max_packet_;
        local_receive_max_ = std::max<uint16_t>(1, ack->props.receive_maximum.value_or(65535));
        local_max_qos_ = ack->props.maximum_qos.value_or(2);
        local_retain_ = ack->props.retain_available.value_or(1) != 0;
        if (priming_) publish_state(false);   // not connected yet
        subscribe_local();
        return true;
    }
    if (const auto* sa = std::get_if<mqtt::Suback>(&p); sa && !priming_) {
        if (state_ != State::LocalSubscribing || sa->packet_id != kSubscribeId) return true;
        for (size_t i = 0; i < sa->reasons.size(); ++i)
            if (sa->reasons[i] >= 0x80)
                out_.log(1, "bridge " + cfg_.name + ": local subscription " + std::to_string(i + 1) +
                                " refused (reason " + hex(sa->reasons[i]) + ")");
        become_ready();
        return true;
    }
    if (priming_) {
        // No upstream yet: deliveries stay in flight; the session ends here.
        if (std::holds_alternative<mqtt::Suback>(p) && state_ == State::LocalSubscribing) {
            priming_ = false;
            primed_ = true;
            state_ = State::Down;
            send_local(Packet{mqtt::Disconnect{}});
            local_in_.clear();
            out_.local_close();
            return false;
        }
        return true;
    }
    if (const auto* pub = std::get_if<mqtt::Publish>(&p)) {
        forward_out(*pub);
        return true;
    }
    if (const auto* ack = std::get_if<mqtt::Ack>(&p)) {
        // PUBREL and PUBCOMP complete a flow whatever their reason (0x92:
        // the other side had nothing under that id, after a restart or a
        // reload of this bridge): they go on as they are.
        if (ack->reason >= 0x80 && ack->type != PacketType::Pubrel && ack->type != PacketType::Pubcomp) {
            if (ack->reason == mqtt::rc::QuotaExceeded) {
                // The store is full for now: no acknowledgement goes
                // upstream, the upstream resends after the reconnect.
                fail("local broker refused a bridged message: reason " + hex(ack->reason));
                return false;
            }
            // Refused for good (invalid payload format, not authorized):
            // a resend would be refused again, so the flow ends here.
            drop_refused_in(*ack);
            deliver_waiting_in();
            return true;
        }
        if (ack->type == PacketType::Pubcomp && take(releasing_, ack->packet_id)) return true;   // deliver_in's PUBREL
        if (answer_dropped_pubrel(*ack, /*from_upstream=*/false)) return true;
        if (ack->type == PacketType::Puback || ack->type == PacketType::Pubcomp) take(local_inflight_in_, ack->packet_id);
        if (ack->type == PacketType::Puback && take(downgraded_in_, ack->packet_id)) {
            // Published here at QoS 1: the upstream's QoS 2 flow goes on here.
            dropped_in_qos2_.push_back(ack->packet_id);
            send_upstream(Packet{mqtt::Ack{PacketType::Pubrec, ack->packet_id, 0, {}}});
        } else {
            send_upstream(Packet{*ack});
        }
        deliver_waiting_in();
        return true;
    }
    if (const auto* d = std::get_if<mqtt::Disconnect>(&p)) {
        fail("local broker closed the bridge session: reason " + hex(d->reason));
        return false;
    }
    return true;
}

void Link::forward_out(const mqtt::Publish& pub) {
    std::optional<std::string> topic = remote_topic(cfg_.topics, pub.topic);
    // A leftover subscription of the local session, or a message queued
    // under a rule since removed from the configuration: completed and dropped.
    if (!topic) return drop_unrouted(pub, /*to_upstream=*/true);
    if (!mqtt::valid_topic_name(*topic)) return drop_unmappable(pub, *topic, /*to_upstream=*/true);
    std::erase(dropped_out_qos2_, pub.packet_id);   // as in deliver_in
    mqtt::Publish up = pub;
    up.topic = *topic;
    up.props.topic_alias.reset();
    up.props.subscription_ids.clear();
    // Within what a v5 upstream said it takes (it closes the connection on more).
    up.retain = pub.retain && up_retain_;
    up.qos = std::min(pub.qos, up_max_qos_);
    if (up.qos == 0) up.dup = false;   // as in deliver_in
    scratch_.clear();
    mqtt::encode(Packet{up}, cfg_.version, scratch_);
    if (up_max_packet_ != 0 && scratch_.size() > up_max_packet_)
        return drop_too_large(pub, scratch_.size(), up_max_packet_, /*to_upstream=*/true);
    ++forwarded_out_;
    send_scratch_upstream();
    if (up.qos > 0) unanswered_out_.push_back({pub.packet_id, uint32_t(scratch_.size()), now_ms_, std::move(*topic)});
    if (pub.qos == 2 && up.qos == 1) add(downgraded_out_, pub.packet_id);
    if (pub.qos > 0 && up.qos == 0) complete_here(pub, /*to_upstream=*/true);
}

void Link::note_answered_out(uint16_t packet_id) {
    // Answers come in order: the oldest is almost always the one.
    auto it = std::find_if(unanswered_out_.begin(), unanswered_out_.end(),
                           [&](const SentOut& o) { return o.packet_id == packet_id; });
    if (it == unanswered_out_.end()) return;
    if (closes_on_same_ != 0 && it->same(stuck_on_)) closes_on_same_ = 0;
    unanswered_out_.erase(it);
}

void Link::note_upstream_close() {
    // A network that fails drops a connection at any moment, mostly after a
    // keep-alive timeout; an upstream that will not take a message closes
    // as soon as it has read it, however often that message is resent.
    if (unanswered_out_.empty() || now_ms_ - unanswered_out_.front().sent_ms > kStuckWindowMs) {
        closes_on_same_ = 0;
        return;
    }
    const SentOut& oldest = unanswered_out_.front();
    if (closes_on_same_ != 0 && oldest.same(stuck_on_)) {
        ++closes_on_same_;
    } else {
        stuck_on_ = oldest;
        closes_on_same_ = 1;
    }
    if (closes_on_same_ != kStuckCloses) return;
    out_.log(1, "bridge " + cfg_.name + ": the upstream closed the connection " + std::to_string(kStuckCloses) +
                    " times in a row right after the message on '" + stuck_on_.topic + "' (" +
                    std::to_string(stuck_on_.bytes) + " bytes), before answering it: it most likely will not take "
                    "that message, and what is queued behind it waits. If it limits the packet size, set this "
                    "bridge's max_packet_size (docs/bridge.md); else see the upstream's log");
}

void Link::subscribe_local() {
    state_ = State::LocalSubscribing;
    unsubscribe_stale_local();
    mqtt::Subscribe s;
    s.packet_id = kSubscribeId;
    for (const TopicRule& r : cfg_.topics) {
        if (!r.out()) continue;
        mqtt::SubscribeTopic t;
        t.filter = r.pattern;
        t.qos = r.qos;
        t.no_local = true;              // what came in over this bridge never goes back
        t.retain_as_published = true;
        t.retain_handling = 1;          // retained messages once, not on every reconnect
        s.topics.push_back(t);
    }
    if (s.topics.empty()) return become_ready();
    send_local(Packet{s});
}

void Link::unsubscribe_stale_local() {
    std::vector<std::string> current = out_.local_filters();
    mqtt::Unsubscribe u;
    u.packet_id = kUnsubscribeId;
    for (const std::string& f : current) {
        if (!has_rule(false, f)) u.filters.push_back(f);
    }
    if (u.filters.empty()) return;
    out_.log(0, "bridge " + cfg_.name + ": " + std::to_string(u.filters.size()) +
                    " local subscription(s) no longer in the configuration removed");
    send_local(Packet{u});   // its UNSUBACK is ignored; the broker answers before the SUBSCRIBE
}

bool Link::has_rule(bool in, const std::string& pattern) const {
    return std::any_of(cfg_.topics.begin(), cfg_.topics.end(), [&](const TopicRule& r) {
        return (in ? r.in() : r.out()) && r.pattern == pattern;
    });
}

void Link::unsubscribe_stale_upstream(std::vector<std::string> subscribed) {
    remember_after_unsuback_.reset();
    unsubscribing_.clear();
    const std::vector<std::string> remembered = out_.upstream_filters();
    // A clean start leaves nothing subscribed upstream from before.
    std::vector<std::string> stale;
    if (!cfg_.clean_start)
        for (const std::string& f : remembered) {
            const bool wanted = has_rule(true, f);
            const bool listed = std::find(subscribed.begin(), subscribed.end(), f) != subscribed.end();
            // A rule the upstream refused this time may still hold its
            // earlier subscription there: it stays remembered.
            if (wanted && !listed) subscribed.push_back(f);
            if (!wanted && std::find(stale.begin(), stale.end(), f) == stale.end()) stale.push_back(f);
        }
    if (stale.empty()) {
        if (subscribed != remembered) out_.remember_upstream_filters(subscribed);
        return;
    }
    mqtt::Unsubscribe u;
    u.packet_id = kUnsubscribeId;
    for (const std::string& f : stale) {
        out_.log(0, "bridge " + cfg_.name + ": upstream subscription '" + f +
                        "' no longer in the configuration: unsubscribing");
        u.filters.push_back(f);
    }
    // Remembered now with the stale ones, so a filter subscribed here is
    // never forgotten while the upstream may still hold a stale one.
    std::vector<std::string> both = subscribed;
    both.insert(both.end(), stale.begin(), stale.end());
    if (both != remembered) out_.remember_upstream_filters(both);
    remember_after_unsuback_ = std::move(subscribed);
    unsubscribing_ = stale;
    send_upstream(Packet{u});
}

void Link::publish_state(bool up) {
    const std::string topic = "$SYS/broker/connection/" + cfg_.name + "/state";
    const uint8_t value = up ? '1' : '0';
    mqtt::Publish p;
    p.retain = local_retain_;   // [mqtt] retain_available = false: live subscribers only
    p.topic = topic;
    p.payload = std::span<const uint8_t>(&value, 1);
    send_local(Packet{p});
}

void Link::become_ready() {
    if (priming_) {
        // Nothing to subscribe: the session exists once CONNACK came.
        priming_ = false;
        primed_ = true;
        state_ = State::Down;
        send_local(Packet{mqtt::Disconnect{}});
        local_in_.clear();
        out_.local_close();
        return;
    }
    state_ = State::Ready;
    publish_state(true);
    if (cfg_.notifications) {
        static constexpr uint8_t kUp[] = {'1'};
        const std::string topic = upstream_state_topic();
        mqtt::Publish pub;
        pub.retain = up_retain_;
        pub.topic = topic;
        pub.payload = mqtt::Bytes(kUp, sizeof kUp);
        send_upstream(Packet{pub});
    }
    out_.log(0, "bridge " + cfg_.name + ": connected");
    std::vector<std::vector<uint8_t>> held = std::move(held_);
    held_.clear();
    held_bytes_ = 0;   // the skip state stays: a PUBLISH may be half skipped
    for (const auto& raw : held) {
        if (state_ != State::Ready) break;
        Packet p;
        if (mqtt::decode(raw, cfg_.version, 0, p).status != mqtt::DecodeStatus::Ok) continue;
        handle_upstream(p, raw);
    }
}

void Link::on_upstream_closed() {
    if (state_ == State::Down) return;
    note_upstream_close();
    const bool local_open = state_ >= State::LocalConnecting;
    if (state_ >= State::LocalSubscribing) publish_state(false);
    forget_connection();
    if (local_open) out_.local_close();
}

void Link::forget_connection() {
    state_ = State::Down;
    clear_held();
    clear_waiting_in();   // unanswered upstream: resent on the next connection
    local_inflight_in_.clear();
    releasing_.clear();
    up_in_.clear();
    local_in_.clear();
}

void Link::on_local_closed() {
    if (state_ < State::LocalConnecting) return;
    if (priming_) {
        priming_ = false;
        state_ = State::Down;
        return;   // primed_ stays false: the wiring primes again
    }
    // The local connection is already gone: only the upstream is closed.
    last_error_ = "local session closed";
    out_.log(1, "bridge " + cfg_.name + ": local session closed, disconnecting upstream");
    state_ = State::Down;
    clear_held();
    up_in_.clear();
    local_in_.clear();
    out_.upstream_close();
}

void Link::on_tick(uint64_t now_ms) {
    now_ms_ = now_ms;
    // A local broker with server_keep_alive would drop a silent local session.
    if (state_ >= State::LocalSubscribing && local_keep_alive_ != 0 &&
        now_ms - last_local_send_ms_ >= uint64_t(local_keep_alive_) * 500)
        send_local(Packet{mqtt::Pingreq{}});
    if ((state_ == State::UpConnecting || state_ == State::UpSubscribing) && now_ms - up_opened_ms_ > kSetupTimeoutMs) {
        fail(state_ == State::UpConnecting ? "no CONNACK from the upstream within 30 s"
                                           : "no SUBACK from the upstream within 30 s");
        return;
    }
    if (state_ == State::Down || up_keep_alive_ == 0) return;
    const uint64_t ka = uint64_t(up_keep_alive_) * 1000;
    if (now_ms - last_up_recv_ms_ > ka * 3 / 2) {
        fail("upstream keep alive timeout");
        return;
    }
    if (state_ == State::UpConnecting) return;
    // A link that only sends (QoS 0 out) hears nothing back: a PINGREQ once
    // per silent keep_alive asks for the PINGRESP that proves it alive.
    const bool quiet_out = now_ms - last_up_send_ms_ >= ka;
    const bool quiet_in = now_ms - last_up_recv_ms_ >= ka && last_up_ping_ms_ <= last_up_recv_ms_;
    if (quiet_out || quiet_in) {
        send_upstream(Packet{mqtt::Pingreq{}});
        last_up_ping_ms_ = now_ms;
    }
}

}  // namespace hato::bridge
