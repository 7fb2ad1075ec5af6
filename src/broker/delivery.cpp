// Outbound delivery: QoS 0 sends, the per-session QoS 1/2 queue and in-flight
// window, acks from the client, resend on reconnect, back-pressure (its
// rules in back_pressure.hpp), and
// handing a leaving shared-group member's messages to another member.
#include <algorithm>
#include <unordered_map>

#include "broker/broker_impl.hpp"

namespace hato::broker {

using namespace hato::mqtt;

namespace {
// From this payload size on, a PUBLISH leaves as head + payload, two sends:
// below it, one copy into the encoding costs less than a second send call.
constexpr size_t kPayloadApartBytes = 4096;
// Past this a payload is not copied into the output at all (send_kept): it
// leaves from the message, which the connection's output holds until sent.
constexpr size_t kPayloadKeptBytes = 16 * 1024;
}  // namespace

size_t Broker::Impl::window(const Connection& c) const {
    return std::max<size_t>(std::min<size_t>(cfg.max_inflight, c.client_receive_max), 1);
}

// The order matters to fill_window: only an over-limit output starts
// back-pressure, a full window or a blocked output just waits.
Broker::Impl::Room Broker::Impl::room_to_send(const Connection& c, const SessionFlows& f) const {
    // What the client holds: sent on this connection, or a PUBREL's (a QoS 2
    // flow takes its slot until PUBCOMP, 4.9), not what awaits its resend.
    if (f.inflight.outstanding() >= window(c)) return Room::WindowFull;
    if (c.output_blocked) return Room::OutputBlocked;
    // The transport's queue only: what is held behind a CONNACK/SUBACK goes
    // out with the next sync, no reason to hold everyone's intake (the
    // window bounds it).
    if (pressure.over_limit(transport.queued_bytes(c.id))) return Room::OverLimit;
    return Room::Yes;
}

bool Broker::Impl::may_read(Session& s, std::string_view topic) {
    if (!authz || s.owner_source == OwnerSource::Unknown) return true;
    return authz->can_receive(client_info(s), topic);
}

bool Broker::Impl::queue_full(const Session& s, const Config::SessionBudget* budget, uint64_t item_bytes,
                              size_t more_queued, uint64_t more_bytes) const {
    const size_t queued = (s.flows ? s.flows->queue.size() : 0) + more_queued;
    const uint64_t queued_bytes = (s.flows ? s.flows->queue_bytes : 0) + more_bytes;
    if (!budget && cfg.max_queued_messages != 0 && queued >= cfg.max_queued_messages) return true;
    // An empty queue takes one message of any size: a message larger than
    // the byte limit would otherwise reach no one.
    const uint64_t max_bytes = budget ? budget->max_bytes : cfg.max_queued_bytes;
    return max_bytes != 0 && queued > 0 && queued_bytes + item_bytes > max_bytes;
}

Broker::Impl::Qos0Room Broker::Impl::qos0_room(const Connection& c, uint64_t queued) const {
    // While it holds the intake, what the input already taken routes to it
    // is still queued (at most one receive's worth); twice the limit is the
    // hard bound. A slow consumer's QoS 0 is dropped.
    const uint64_t hard = cfg.slow_consumer_ms != 0 ? 2 * cfg.max_output_bytes : cfg.max_output_bytes;
    // Behind a held CONNACK/SUBACK (one sync at most) the same hard bound applies.
    if (c.output_held && cfg.max_output_bytes != 0 && queued + c.held_bytes > hard) return Qos0Room::DropHeld;
    if (c.slow_consumer || (cfg.slow_consumer_ms == 0 && c.output_blocked) ||
        (cfg.max_output_bytes != 0 && queued > hard))
        return Qos0Room::DropSlow;
    return Qos0Room::Send;
}

bool Broker::Impl::queue_closed(Session& s) {
    const Config::SessionBudget* budget = budget_of(s.client_id);
    if (budget && budget->drop_oldest) return false;   // always makes room
    if (!queue_full(s, budget, 0)) return false;
    OpWrites w;   // as deliver() does: expired messages do not take the room
    purge_expired(s, w);
    return queue_full(s, budget, 0);
}

void Broker::Impl::deliver(Session& s, const MsgPtr& msg, uint8_t qos, bool retain,
                           std::vector<uint32_t> sub_ids, uint64_t share, OpWrites& w, IfUnstored if_unstored) {
    if (msg->expired(now_ms)) return;
    // Checked per message and receiver (memoised per session): a `#`
    // subscriber receives only what it may read.
    if (!may_read(s, msg->topic())) return;
    Connection* c = s.conn ? conn(s.conn) : nullptr;
    const Config::SessionBudget* budget = budget_of(s.client_id);
    if (qos == 0 && budget && budget->queue_qos0) qos = 1;
    if (qos == 0) {
        if (!c) return;   // QoS 0 is not queued for offline sessions
        const uint64_t queued = cfg.max_output_bytes != 0 ? transport.queued_bytes(c->id) : 0;
        const Qos0Room room = qos0_room(*c, queued);
        if (room != Qos0Room::Send) {
            ++stats.qos0_dropped;
            if (room == Qos0Room::DropHeld) return;   // no reason to hold everyone's intake
            ++c->episode_dropped;
            pressure.block(*c, now_ms, true);
            return;
        }
        OutItem item;
        item.msg = msg;
        item.qos = 0;
        item.retain = retain;
        item.sub_ids = std::move(sub_ids);
        // From what was queued and what was just added (one lookup of the
        // transport's queue per delivery, not two).
        const size_t sent = send_publish(*c, item, false);
        if (pressure.over_limit(queued + sent)) pressure.block(*c, now_ms, true);
        return;
    }
    const uint64_t item_bytes = msg->byte_size() + sub_ids.size() * sizeof(uint32_t);   // OutItem::queued_bytes
    auto full = [&] { return queue_full(s, budget, item_bytes); };
    // Expiry is otherwise checked lazily when a message leaves the queue;
    // a full queue is swept first so expired messages do not take the room.
    if (full()) purge_expired(s, w);
    if (budget && budget->drop_oldest) {
        // The oldest queued (not in flight) give way, in order.
        while (full()) {
            drop_oldest_queued(s, w);
            count_queue_drop(s.client_id, budget);
        }
    }
    if (full()) {
        count_queue_drop(s.client_id, budget);   // the newest is dropped: what is queued keeps its order
        s.release_flows_if_empty(flows_pool);
        return;
    }
    OutItem item;
    item.seq = s.next_seq++;
    item.queued_ms = now_ms;
    item.msg = msg;
    item.qos = qos;
    item.retain = retain;
    item.sub_ids = std::move(sub_ids);
    item.share_key = share;
    if (s.persisted) {
        StoredMessageView stored = to_stored(*msg, qos, retain);
        stored.sub_ids = item.sub_ids;
        stored.share_filter = shared.filter_of(share);
        // A bridge's backlog age is reported: it must survive a restart.
        if (budget) stored.queued_wall_ms = wall_ms();
        if (!written(persist.out_enqueue(s.client_id, item.seq, stored), w) && if_unstored == IfUnstored::Drop) {
            // Not stored, so not queued either: the publisher hears of the refusal.
            s.release_flows_if_empty(flows_pool);
            return;
        }
    }
    SessionFlows& f = s.open_flows(flows_pool);
    // Nothing waiting ahead of it (queued, or awaiting its resend) and room
    // to send: straight into flight, without a trip through the queue (the
    // common case for an online, reading subscriber). The rest waits in the
    // queue for fill_window.
    if (c && c->connected && f.queue.empty() && f.inflight.awaiting_resend() == 0 &&
        room_to_send(*c, f) == Room::Yes) {
        start_flight(s, *c, f, std::move(item), w);
        s.release_flows_if_empty(flows_pool);
        return;
    }
    f.queue_bytes += item.queued_bytes();
    f.queue.push_back(std::move(item));
    pump(s, w);
}

// A backlog whose budget says drop_oldest (a bridge's, across a long WAN
// outage) must not stop the plant: when it has filled the store (the disk,
// or max_bytes, before its own max_queued_bytes) every local QoS 1/2
// publisher would be refused. So while the store is out of space and
// compaction has nothing to reclaim, the largest such backlogs give up their
// oldest queued (not in-flight) messages, half a segment's worth at a time:
// they sit in the oldest segments, which compaction then frees. Budgets
// with drop_new keep their backlog, and the store refuses new messages.
void Broker::Impl::make_room() {
    uint64_t want = 0;
    if (cfg.session_budgets.empty() || !persist.needs_room(want)) return;
    std::vector<Session*> backlogs;
    for (const Config::SessionBudget& b : cfg.session_budgets) {
        Session* s = b.drop_oldest ? sessions.find(b.client_id) : nullptr;
        if (s && s->flows && !s->flows->queue.empty()) backlogs.push_back(s);
    }
    std::sort(backlogs.begin(), backlogs.end(),
              [](const Session* a, const Session* b) { return a->flows->queue_bytes > b->flows->queue_bytes; });
    OpWrites w;   // removals: nothing waits for them
    uint64_t freed = 0;
    for (Session* s : backlogs) {
        while (freed < want && !s->flows->queue.empty()) {
            freed += drop_oldest_queued(*s, w);
            count_queue_drop(s->client_id, budget_of(s->client_id), /*for_room=*/true);
        }
        s->release_flows_if_empty(flows_pool);
        if (freed >= want) break;
    }
}

void Broker::Impl::count_queue_drop(std::string_view client_id, const Config::SessionBudget* budget, bool for_room) {
    ++stats.queued_dropped;
    if (!budget) return;
    ++(for_room ? stats.room_dropped : stats.budget_dropped);
    auto it = backlog_dropped.find(client_id);
    if (it == backlog_dropped.end()) it = backlog_dropped.emplace(std::string(client_id), 0).first;
    ++it->second;
}

uint64_t Broker::Impl::drop_oldest_queued(Session& s, OpWrites& w) {
    SessionFlows& f = *s.flows;
    const OutItem& old = f.queue.front();
    const uint64_t bytes = old.queued_bytes();
    f.queue_bytes -= std::min<uint64_t>(f.queue_bytes, bytes);
    if (s.persisted) written(persist.out_done(s.client_id, old.seq), w);
    f.queue.pop_front();
    return bytes;
}

void Broker::Impl::purge_expired(Session& s, OpWrites& w) {
    if (!s.flows || s.flows->expiry_swept_ms == now_ms) return;
    SessionFlows& f = *s.flows;
    f.expiry_swept_ms = now_ms;
    for (auto it = f.queue.begin(); it != f.queue.end();) {
        if (!it->msg->expired(now_ms)) {
            ++it;
            continue;
        }
        f.queue_bytes -= std::min<uint64_t>(f.queue_bytes, it->queued_bytes());
        if (s.persisted) written(persist.out_done(s.client_id, it->seq), w);
        it = f.queue.erase(it);
    }
}

// Moves queued messages into the in-flight window while the client has room
// and its output is not backed up; frees the session's flow state if that
// leaves it empty.
void Broker::Impl::pump(Session& s, OpWrites& w) {
    fill_window(s, w);
    s.release_flows_if_empty(flows_pool);
}

void Broker::Impl::fill_window(Session& s, OpWrites& w) {
    if (!s.flows || !s.conn || (s.flows->queue.empty() && s.flows->inflight.awaiting_resend() == 0)) return;
    Connection* c = conn(s.conn);
    if (!c || !c->connected) return;
    SessionFlows& f = *s.flows;
    // Messages already in flight go again before any queued one (in the
    // order they were first sent, MQTT-4.6.0-1).
    if (f.inflight.awaiting_resend() != 0) resend_awaiting(s, *c, /*with_pubrels=*/false);
    while (!f.queue.empty() && f.inflight.awaiting_resend() == 0) {
        const Room room = room_to_send(*c, f);
        if (room == Room::OverLimit) pressure.block(*c, now_ms, true);
        if (room != Room::Yes) return;
        OutItem item = std::move(f.queue.front());
        f.queue.pop_front();
        f.queue_bytes -= std::min<uint64_t>(f.queue_bytes, item.queued_bytes());
        if (item.msg->expired(now_ms)) {
            if (s.persisted) written(persist.out_done(s.client_id, item.seq), w);
            continue;
        }
        if (!may_read(s, item.msg->topic())) {   // done: the owner will never get it
            ++stats.unreadable_dropped;
            if (s.persisted) written(persist.out_done(s.client_id, item.seq), w);
            continue;
        }
        if (!start_flight(s, *c, f, std::move(item), w)) return;
    }
}

bool Broker::Impl::start_flight(Session& s, Connection& c, SessionFlows& f, OutItem&& item, OpWrites& w) {
    // Packet ids are per session; one still in flight is never reused.
    do {
        item.packet_id = s.next_packet_id++;
        if (s.next_packet_id == 0) s.next_packet_id = 1;
    } while (item.packet_id == 0 || f.inflight.has_packet_id(item.packet_id));
    item.state = OutState::Inflight;
    if (s.persisted && item.qos == 2) {
        const Append a = persist.out_state(s.client_id, item.seq, OutState::Inflight, item.packet_id);
        if (!written(a)) {
            // Refused (an I/O error, or a full disk with the reserve used up).
            // Sent without it, a power cut could bring it back queued, to go
            // out again under another id: it stays first in the queue, tried
            // again at the next pump or tick (flight_retry).
            item.state = OutState::Queued;
            f.queue_bytes += item.queued_bytes();
            f.queue.push_front(std::move(item));
            flight_retry.insert(s.client_id);
            return false;
        }
        item.state_ticket = a.ticket;
        w.add(a);
        if (!send_publish_held(c, item, false, item.state_ticket)) {
            written(persist.out_done(s.client_id, item.seq), w);   // too large for the client, as below
            return true;
        }
        f.inflight.insert(std::move(item));
        return true;
    }
    if (!send_publish(c, item, false)) {
        // Larger than the client's Maximum Packet Size: counts as delivered.
        if (s.persisted) written(persist.out_done(s.client_id, item.seq), w);
        return true;
    }
    if (s.persisted) written(persist.out_state(s.client_id, item.seq, OutState::Inflight, item.packet_id), w);
    f.inflight.insert(std::move(item));
    return true;
}

size_t Broker::Impl::send_publish_held(Connection& c, const OutItem& item, bool dup, uint64_t ticket) {
    std::vector<uint8_t>& bytes = held_publish_bytes;
    const size_t n = send_publish(c, item, dup, &bytes);
    if (n) acks.send_bytes(c, bytes, ticket, false, item.msg->payload().size());
    // One large message's bytes are not kept for the broker's lifetime.
    if (bytes.capacity() > kPayloadKeptBytes) std::vector<uint8_t>().swap(bytes);
    return n;
}

// The PUBLISH of `m` to `c`, without alias, retain, dup or packet id.
PublishParts Broker::Impl::publish_parts(const Connection& c, const Message& m, uint8_t qos,
                                         std::span<const uint32_t> sub_ids) const {
    PublishParts pp;
    pp.qos = qos;
    pp.topic = m.topic();
    if (c.version == Version::V5) {
        if (m.expiry_ms) pp.message_expiry = std::max<uint32_t>(m.remaining_s(now_ms), 1);
        pp.sub_ids = sub_ids;
        pp.forwarded = m.forwarded();
    }
    pp.payload = m.payload();
    return pp;
}

bool Broker::Impl::fits_client(const Connection& c, const PublishParts& pp) const {
    return c.client_max_packet == 0 || publish_size(pp, c.version) <= c.client_max_packet;
}

size_t Broker::Impl::send_publish(Connection& c, const OutItem& item, bool dup, std::vector<uint8_t>* held) {
    if (!held && c.output_held) return send_publish_held(c, item, dup, 0);   // behind a held CONNACK/SUBACK
    const Message& m = *item.msg;
    const bool v5 = c.version == Version::V5;
    PublishParts pp = publish_parts(c, m, item.qos, item.sub_ids);
    pp.retain = item.retain;
    pp.dup = dup;
    pp.packet_id = item.qos ? item.packet_id : 0;
    // Checked with the full topic and no alias first: a message that does not
    // fit that way is not sent, and no alias is assigned for it.
    if (!fits_client(c, pp)) return 0;
    // A held packet carries its topic: packets sent meanwhile may not use an
    // alias it would be the first to set.
    const size_t alias_limit = held ? 0 : std::min<size_t>(c.client_alias_max, cfg.max_outbound_topic_aliases);
    if (v5 && alias_limit > 0) {
        auto& alias_out = c.open_extras().alias_out;
        auto it = alias_out.find(m.topic());
        PublishParts aliased = pp;
        if (it != alias_out.end()) {
            aliased.topic = {};
            aliased.topic_alias = it->second;
        } else if (alias_out.size() < alias_limit) {
            aliased.topic_alias = static_cast<uint16_t>(alias_out.size() + 1);   // first use: topic and alias together
        }
        // The alias property adds 3 bytes (more than a short topic saves, and
        // all of them on first use): it is used only where the packet still
        // fits the client's Maximum Packet Size (MQTT-3.1.2-24).
        if (aliased.topic_alias && fits_client(c, aliased)) {
            if (it == alias_out.end()) alias_out.emplace(m.topic(), *aliased.topic_alias);
            pp = aliased;
        }
    }
    // A large payload is sent from the message, behind an encoded head: the
    // transport's copy is then its only one here. Both sends are one packet
    // (the counting transport counts a packet per send).
    const bool apart = pp.payload.size() >= kPayloadApartBytes;
    auto send_encoded = [&](std::span<const uint8_t> bytes) -> size_t {
        if (held) {
            held->assign(bytes.begin(), bytes.end());
            if (apart) held->insert(held->end(), m.payload().begin(), m.payload().end());
            return held->size();
        }
        transport.send(c.id, bytes);
        if (!apart) return bytes.size();
        // Large: not copied at all, the socket takes it from the message.
        if (m.payload().size() >= kPayloadKeptBytes) {
            transport.send_kept(c.id, m.payload(), Message::keep(m), &Message::let_go);
        } else {
            transport.send(c.id, m.payload());
            --stats.packets_out;   // counted by the send just above
        }
        return bytes.size() + m.payload().size();
    };
    // A QoS 0 PUBLISH without per-receiver parts (no packet id, alias, expiry
    // or subscription ids) is the same bytes for every receiver of one
    // version: fan-out encodes it once (shared_publish).
    SharedEncoding& shared = shared_publish;
    const bool same_for_all = item.qos == 0 && !dup && !pp.topic_alias && !pp.message_expiry && pp.sub_ids.empty();
    const bool shared_fits =
        same_for_all && shared.msg == item.msg && shared.version == c.version && shared.retain == item.retain;
    if (shared_fits && !shared.wire.empty()) {   // the first receiver of a seeded message
        shared.bytes.assign(shared.wire.begin(), shared.wire.end());
        shared.wire = {};
    }
    if (shared_fits && !shared.bytes.empty()) {
        const size_t sent = send_encoded(shared.bytes);
        if (!held) count_publish(item);
        return sent;
    }
    // Otherwise one buffer for every send: the transport copies the bytes, so
    // a fresh vector per PUBLISH would only add a malloc/free pair per delivery.
    std::vector<uint8_t>& out = publish_bytes;
    std::vector<uint8_t>& target = same_for_all ? shared.bytes : out;
    target.clear();
    if (apart) encode_publish_head(pp, c.version, target);
    else encode_publish(pp, c.version, target);
    if (same_for_all) {
        shared.msg = item.msg;
        shared.version = c.version;
        shared.retain = item.retain;
        shared.wire = {};   // another message's
    }
    const size_t sent = send_encoded(target);
    if (!held) count_publish(item);   // held: when it goes out (HeldAcks)
    return sent;
}

// A v3 QoS 0 PUBLISH without retain or dup is, byte for byte, what
// send_publish would encode for a receiver of the same version at QoS 0
// (v3 has no properties, and live messages go out with retain 0): its
// receivers are sent the bytes that arrived, not a fresh encoding. They are
// copied by the first receiver (send_publish): `wire` must stay valid until
// the caller has routed `m` and cleared shared_publish.wire.
void Broker::Impl::seed_shared_publish(const MsgPtr& m, Version v, std::span<const uint8_t> wire) {
    if (v == Version::V5 || wire.empty() || wire[0] != 0x30 || m->payload().size() >= kPayloadApartBytes) return;
    SharedEncoding& shared = shared_publish;
    shared.msg = m;
    shared.version = v;
    shared.retain = false;
    shared.bytes.clear();
    shared.wire = wire;
}

void Broker::Impl::resend_inflight(Session& s) {
    Connection* c = s.conn ? conn(s.conn) : nullptr;
    if (!c || !s.flows) return;
    // The client sends PUBRECs again for what is resent here, and its
    // PUBRELs: those that wait stay received, answered once sent again.
    s.flows->pubrel_waiting.clear();
    for (SessionFlows::WaitingPubcomp& w : s.flows->pubcomp_waiting) w.asked = false;
    for (auto& [id, in] : s.flows->qos2_in) in.counted = false;   // a new connection counts from 0
    // The send quota starts again at this connection's Receive Maximum
    // (4.9): each PUBLISH in flight awaits its resend until it fits.
    InflightWindow& inflight = s.flows->inflight;
    inflight.for_each([&](OutItem& item) { inflight.set_awaiting_resend(item, item.state != OutState::Pubrel); });
    resend_awaiting(s, *c, /*with_pubrels=*/true);
}

void Broker::Impl::resend_awaiting(Session& s, Connection& c, bool with_pubrels) {
    SessionFlows& f = *s.flows;
    std::vector<uint64_t> done;   // too large for the client, or not for its owner
    Room room = Room::Yes;
    f.inflight.for_each_while([&](OutItem& item) {
        // The message itself went through already. Its PUBREL waits for the
        // Pubrel record, as when first sent (a reconnect within the sync window).
        if (item.state == OutState::Pubrel) {
            if (with_pubrels) acks.send(c, PacketType::Pubrel, item.packet_id, rc::Success, item.state_ticket, false);
        } else if (item.awaiting_resend && room == Room::Yes) {
            room = room_to_send(c, f);
            if (room == Room::Yes && !resend_publish(s, c, item)) done.push_back(item.seq);
        }
        return room == Room::Yes || with_pubrels;   // the PUBRELs all go, room or not
    });
    if (room == Room::OverLimit) pressure.block(c, now_ms, true);
    for (uint64_t seq : done) finish_out(s, seq);
}

bool Broker::Impl::resend_publish(Session& s, Connection& c, OutItem& item) {
    if (!may_read(s, item.msg->topic())) {
        ++stats.unreadable_dropped;
        return false;
    }
    // A reconnect within the sync window: the state may not be durable yet,
    // so a QoS 2 PUBLISH waits for it as when first sent.
    const bool sent = s.persisted && item.qos == 2 ? send_publish_held(c, item, /*dup=*/true, item.state_ticket)
                                                   : send_publish(c, item, /*dup=*/true);
    // Left awaiting if not sent, so that it takes no room until finished.
    if (sent) s.flows->inflight.set_awaiting_resend(item, false);
    return sent;
}

void Broker::Impl::finish_out(Session& s, uint64_t seq) {
    if (!s.flows) return;
    SessionFlows& f = *s.flows;
    if (!f.inflight.erase(seq)) return;
    if (s.persisted) written(persist.out_done(s.client_id, seq));
}

void Broker::Impl::on_client_ack(Connection& c, const Ack& a) {
    Session* s = session(c.slot);
    if (!s) return;
    const uint64_t seq = s->flows ? s->flows->inflight.seq_of(a.packet_id) : 0;
    if (seq == 0) {
        if (a.type == PacketType::Pubrec)   // 4.3.3: answer so the client can finish its flow
            send_packet(c, Ack{PacketType::Pubrel, a.packet_id, rc::PacketIdentifierNotFound, {}});
        return;
    }
    OutItem& item = *s->flows->inflight.find(seq);
    // The ack must be the one this flow expects next (MQTT-4.8.0-1): PUBACK
    // for QoS 1; PUBREC, then PUBCOMP after our PUBREL, for QoS 2.
    const bool expected = a.type == PacketType::Puback  ? item.qos == 1
                          : a.type == PacketType::Pubrec  ? item.qos == 2
                          : a.type == PacketType::Pubcomp ? item.qos == 2 && item.state == OutState::Pubrel
                                                          : false;
    if (!expected) return protocol_error(c, rc::ProtocolError);
    switch (a.type) {
    case PacketType::Puback:
        finish_out(*s, seq);
        break;
    case PacketType::Pubrec:
        // For one awaiting its resend, the client had it from an earlier
        // connection: not sent again, its slot taken until PUBCOMP.
        s->flows->inflight.set_awaiting_resend(item, false);
        if (a.reason >= 0x80) {   // the receiver refused it: the flow ends here
            finish_out(*s, seq);
            break;
        }
        // PUBREL lets the receiver forget the packet id (its PUBCOMP ends
        // the flow): if the Pubrel state were not durable by then, a power
        // cut would bring the message back as in flight and resend the
        // PUBLISH, which the receiver can only take for a new message (QoS 2
        // delivered twice). So PUBREL waits for that record (a repeated
        // PUBREC too), through the held acks (behind any held for `c`).
        if (item.state == OutState::Inflight) {
            // Behind a PUBREL that waits already (PUBRELs leave in the order
            // of their PUBRECs, MQTT-4.6.0-4), or refused: no PUBREL without
            // its record. It waits (SessionFlows::pubrel_waiting), the
            // message still in flight.
            std::vector<uint64_t>& waiting = s->flows->pubrel_waiting;
            if (!waiting.empty() || !store_pubrel(*s, item)) {
                if (std::find(waiting.begin(), waiting.end(), seq) == waiting.end()) waiting.push_back(seq);
                flight_retry.insert(s->client_id);
                break;
            }
        }
        acks.send(c, PacketType::Pubrel, item.packet_id, rc::Success, item.state_ticket, false);
        break;
    case PacketType::Pubcomp:
        finish_out(*s, seq);
        break;
    default:
        break;
    }
    pump(*s);
}

bool Broker::Impl::store_pubrel(Session& s, OutItem& item) {
    if (s.persisted) {
        const Append r = persist.out_state(s.client_id, item.seq, OutState::Pubrel, item.packet_id);
        if (!written(r)) return false;
        item.state_ticket = r.ticket;
    }
    item.state = OutState::Pubrel;
    return true;
}

bool Broker::Impl::send_waiting_answers(Session& s) {
    if (!s.flows) return true;
    SessionFlows& f = *s.flows;
    Connection* c = s.conn ? conn(s.conn) : nullptr;
    if (!c || !c->connected) {   // tried again once it is back (resend_inflight)
        f.pubrel_waiting.clear();   // the PUBLISH goes again then
        return true;
    }
    size_t sent = 0;
    for (; sent < f.pubrel_waiting.size(); ++sent) {
        OutItem* item = f.inflight.find(f.pubrel_waiting[sent]);
        if (!item || item->state != OutState::Inflight) continue;   // its flow ended meanwhile
        if (!store_pubrel(s, *item)) break;
        acks.send(*c, PacketType::Pubrel, item->packet_id, rc::Success, item->state_ticket, false);
    }
    f.pubrel_waiting.erase(f.pubrel_waiting.begin(), f.pubrel_waiting.begin() + ptrdiff_t(sent));
    // PUBCOMPs need no order: one not asked for again since a reconnect is
    // passed over.
    bool refused = false;
    std::erase_if(f.pubcomp_waiting, [&](const SessionFlows::WaitingPubcomp& w) {
        if (!f.qos2_in.count(w.packet_id)) return true;   // released meanwhile
        if (refused || !w.asked) return false;
        refused = !release_inbound(s, *c, w.packet_id, /*answer=*/true);
        return !refused;
    });
    bool all_sent = f.pubrel_waiting.empty();
    for (const SessionFlows::WaitingPubcomp& w : f.pubcomp_waiting) all_sent = all_sent && !w.asked;
    s.release_flows_if_empty(flows_pool);
    return all_sent;
}

void Broker::Impl::check_blocked() {
    if (!pressure.any()) return;
    for (ConnId id : pressure.blocked()) {
        Connection* c = conn(id);
        if (!c) {
            pressure.forget(id);
            continue;
        }
        if (!pressure.drained(*c)) {
            // What waits for the store (held answers) is not the client's
            // doing: only a transport queue it does not read makes it slow.
            if (pressure.drained(transport.queued_bytes(c->id))) continue;
            // A bridge waits for its WAN, whatever its speed: its QoS 0 is
            // dropped at once (no one's intake waits for a WAN), its QoS 1/2
            // waits in its session, and its link's keep-alive judges the link.
            if (c->own_bridge) {
                if (!c->slow_consumer && cfg.slow_consumer_ms != 0) pressure.make_slow_consumer(*c, client_id_of(*c));
                continue;
            }
            if (pressure.held_too_long(*c, now_ms)) pressure.make_slow_consumer(*c, client_id_of(*c));
            if (cfg.slow_client_timeout_ms != 0 && now_ms - c->blocked_since_ms > cfg.slow_client_timeout_ms) {
                ++stats.slow_clients_closed;
                drop(*c, /*publish_will=*/true, /*close_transport=*/true);   // ends its back-pressure
            }
            continue;
        }
        pressure.end(*c, client_id_of(*c), now_ms);
        if (c->reading_paused) {
            c->reading_paused = false;
            if (!input_deferred(*c)) transport.set_reading(id, true);   // else resume_deferred_input does
            // It read its output meanwhile, and its PINGREQs waited unread:
            // keep alive counts from here.
            c->last_rx_ms = now_ms;
        }
        if (Session* s = session(c->slot)) pump(*s);
    }
}

bool Broker::Impl::member_can_take(const Session& s, const Message& m, uint8_t qos, uint32_t sub_id) {
    const Connection* c = s.conn ? conn(s.conn) : nullptr;
    if (!c) return true;
    const uint32_t ids[1] = {sub_id};
    return fits_client(*c, publish_parts(*c, m, qos, sub_id ? std::span<const uint32_t>(ids) : std::span<const uint32_t>()));
}

// A member leaving its shared group hands its unacknowledged messages (but
// not QoS 2 ones it was sent) to another online member of the same group
// that may read them and has room to queue them (if there is one; else they
// stay: a member's full queue would drop them, and they would be gone from
// both sessions). When its session `ending`, nothing stays to come back to:
// an offline member's session with room takes them then, as route() would.
void Broker::Impl::redistribute_shared(Session& s, bool ending) {
    // What each receiving member is given here, counted as queued (a
    // conservative bound: some go straight into its in-flight window).
    std::unordered_map<const Session*, std::pair<size_t, uint64_t>> given;
    auto taker = [&](const OutItem& item) -> Session* {
        const std::set<Slot>* members = shared.members(item.share_key);
        if (!members) return nullptr;
        for (const bool online : {true, false}) {
            if (!online && !ending) break;
            for (Slot who : *members) {
                Session* o = session(who);
                if (!o || o == &s || (o->conn != 0) != online || !may_read(*o, item.msg->topic())) continue;
                auto sub = o->subs.find(std::string(shared.filter_of(item.share_key)));
                if (sub == o->subs.end() ||
                    !member_can_take(*o, *item.msg, std::min<uint8_t>(item.msg->qos, sub->second.options & 0x03),
                                     sub->second.sub_id))
                    continue;
                // The receiver's subscription identifier, not the leaving member's.
                const uint64_t item_bytes = shared_item_bytes(*item.msg);
                auto& [count, bytes] = given[o];
                if (queue_full(*o, budget_of(o->client_id), item_bytes, count, bytes)) continue;
                ++count;
                bytes += item_bytes;
                return o;
            }
        }
        return nullptr;
    };
    if (!s.flows) return;
    SessionFlows& f = *s.flows;
    std::vector<OutItem> moved;
    std::vector<Session*> takers;   // moved[i] goes to takers[i]
    // A QoS 2 message already sent stays: the member may have it, and it is
    // completed with that member when it returns (MQTT-4.8.2-4/5).
    f.inflight.take_if([&](const OutItem& item) {
        if (!item.share_key || item.qos >= 2) return false;
        Session* o = taker(item);
        if (o) takers.push_back(o);
        return o != nullptr;
    }, moved);
    for (auto it = f.queue.begin(); it != f.queue.end();) {
        Session* o = it->share_key ? taker(*it) : nullptr;
        if (o) {
            f.queue_bytes -= std::min<uint64_t>(f.queue_bytes, it->queued_bytes());
            moved.push_back(std::move(*it));
            takers.push_back(o);
            it = f.queue.erase(it);
        } else {
            ++it;
        }
    }
    s.release_flows_if_empty(flows_pool);   // `f` is not used below
    for (size_t i = 0; i < moved.size(); ++i) {
        OutItem& item = moved[i];
        // These were acknowledged to their publishers long ago: a copy the
        // store refuses still goes out from memory, and the record in this
        // session stays, so a restart finds the message in one queue at least.
        OpWrites copy;
        // Granted QoS, retain as published and subscription identifier are
        // the receiving member's own, as if the message had been routed to it.
        Session& o = *takers[i];
        auto sub = o.subs.find(std::string(shared.filter_of(item.share_key)));
        if (sub != o.subs.end()) {   // always: taker() found it in the group
            const uint8_t options = sub->second.options;
            std::vector<uint32_t> ids;
            if (sub->second.sub_id) ids.push_back(sub->second.sub_id);
            deliver(o, item.msg, std::min<uint8_t>(item.msg->qos, options & 0x03),
                    (options & 0x08) && item.msg->retain, std::move(ids), item.share_key, copy,
                    IfUnstored::Queue);
        }
        const bool copy_stored = !copy.refused();
        if (s.persisted && copy_stored) written(persist.out_done(s.client_id, item.seq));
    }
}

}  // namespace hato::broker
