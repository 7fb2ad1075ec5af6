#include "broker/record_schema.hpp"

#include <ostream>

namespace hato::broker::rec {

namespace {

// A message: topic, payload, forwarded_props, qos, retain, expiry_wall_ms.
// The topic comes first: it is a retained_set's key (and TopicLsnTable
// points into the body at it).
void write_message(BodyWriter& w, const StoredMessageView& m) {
    w.str(m.topic);
    w.bytes(m.payload);
    w.bytes(m.forwarded_props);
    w.u8(m.qos);
    w.u8(m.retain ? 1 : 0);
    w.u64(m.expiry_wall_ms);
}

void read_message_after_topic(BodyReader& r, StoredMessageView& m) {
    m.payload = r.bytes();
    m.forwarded_props = r.bytes();
    m.qos = r.u8();
    m.retain = r.u8() != 0;
    m.expiry_wall_ms = r.u64();
}

void describe_message(const StoredMessageView& m, std::ostream& os) {
    os << " topic=\"" << m.topic << "\"";
    os << " payload=" << m.payload.size() << "B";
    os << " props=" << m.forwarded_props.size() << "B";
    os << " qos=" << int(m.qos);
    os << " retain=" << int(m.retain);
    os << " expiry_wall_ms=" << m.expiry_wall_ms;
}

// The version of the extension the body goes on with (see
// state_records.hpp); 0 when it ends here (the older format).
uint8_t extension(BodyReader& r) { return r.at_end() ? 0 : r.u8(); }
bool has_extension(BodyReader& r) { return extension(r) >= kExtensionV1; }

// Later extension versions append fields: a reader takes what it knows.
void skip_rest(BodyReader& r) {
    while (r.ok() && !r.at_end()) r.u8();
}

void describe_client(std::string_view client, std::ostream& os) { os << " client=\"" << client << "\""; }

}  // namespace

// ---- retained_set / retained_clear ------------------------------------------

void RetainedSet::encode(BodyWriter& w) const { write_message(w, msg); }
void RetainedSet::read_key(BodyReader& r) { msg.topic = r.str(); }
void RetainedSet::read_rest(BodyReader& r) { read_message_after_topic(r, msg); }
void RetainedSet::describe(std::ostream& os) const { describe_message(msg, os); }

void RetainedClear::encode(BodyWriter& w) const { w.str(topic); }
void RetainedClear::read_key(BodyReader& r) { topic = r.str(); }
void RetainedClear::describe(std::ostream& os) const { os << " topic=\"" << topic << "\""; }

// ---- session_put / session_remove -------------------------------------------

namespace {
// A source this version does not know (written by a newer one) is judged by
// the user name alone, never as Unknown: Unknown would let any client claim
// the session and skip the ACL check of its queue.
OwnerSource owner_of(uint8_t source, std::string_view username) {
    if (source <= static_cast<uint8_t>(OwnerSource::Certificate)) return static_cast<OwnerSource>(source);
    return username.empty() ? OwnerSource::Anonymous : OwnerSource::Password;
}
}  // namespace

OwnerSource SessionPut::owner() const { return owner_of(owner_source, username); }

void SessionPut::encode(BodyWriter& w) const {
    w.str(client);
    w.u32(expiry_s);
    w.u64(offline_since_wall_ms);
    w.u8(kExtensionV1);
    w.u8(owner_source);
    w.str(username);
}

void SessionPut::read_key(BodyReader& r) { client = r.str(); }

void SessionPut::read_rest(BodyReader& r) {
    expiry_s = r.u32();
    offline_since_wall_ms = r.u64();
    has_owner = has_extension(r);
    if (has_owner) {
        owner_source = r.u8();
        username = r.str();
    }
    skip_rest(r);
}

void SessionPut::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " expiry_s=" << expiry_s;
    os << " offline_since_wall_ms=" << offline_since_wall_ms;
    if (!has_owner) return;
    os << " owner_source=" << int(owner_source);
    os << " username=\"" << username << "\"";
}

void SessionRemove::encode(BodyWriter& w) const { w.str(client); }
void SessionRemove::read_key(BodyReader& r) { client = r.str(); }
void SessionRemove::describe(std::ostream& os) const { describe_client(client, os); }

// ---- sub_put / sub_remove ---------------------------------------------------

void SubPut::encode(BodyWriter& w) const {
    w.str(client);
    w.str(filter);
    w.u8(options);
    w.u32(sub_id);
}

void SubPut::read_key(BodyReader& r) {
    client = r.str();
    filter = r.str();
}

void SubPut::read_rest(BodyReader& r) {
    options = r.u8();
    sub_id = r.u32();
}

void SubPut::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " filter=\"" << filter << "\"";
    os << " options=" << int(options);
    os << " sub_id=" << sub_id;
}

void SubRemove::encode(BodyWriter& w) const {
    w.str(client);
    w.str(filter);
}

void SubRemove::read_key(BodyReader& r) {
    client = r.str();
    filter = r.str();
}

void SubRemove::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " filter=\"" << filter << "\"";
}

// ---- out_enqueue / out_state / out_done -------------------------------------

void OutEnqueue::encode(BodyWriter& w) const {
    w.str(client);
    w.u64(seq);
    write_message(w, msg);
    // Left out when both are empty (most deliveries): the short form loads
    // the same, and the hot path writes no extra bytes.
    if (msg.sub_ids.empty() && msg.share_filter.empty() && msg.queued_wall_ms == 0) return;
    w.u8(msg.queued_wall_ms ? kExtensionV2 : kExtensionV1);
    w.u32(static_cast<uint32_t>(msg.sub_ids.size()));
    for (uint32_t id : msg.sub_ids) w.u32(id);
    w.str(msg.share_filter);
    if (msg.queued_wall_ms) w.u64(msg.queued_wall_ms);
}

void OutEnqueue::read_key(BodyReader& r) {
    client = r.str();
    seq = r.u64();
}

void OutEnqueue::read_rest(BodyReader& r) {
    msg.topic = r.str();
    read_message_after_topic(r, msg);
    // A malformed message leaves the extension unread (it would not load).
    const uint8_t version = r.ok() ? extension(r) : 0;
    has_delivery = version >= kExtensionV1;
    if (has_delivery) {
        const uint32_t n = r.u32();
        for (uint32_t i = 0; i < n && r.ok(); ++i) sub_ids.push_back(r.u32());
        msg.share_filter = r.str();
    }
    if (version >= kExtensionV2) msg.queued_wall_ms = r.u64();
    skip_rest(r);
}

void OutEnqueue::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " seq=" << seq;
    describe_message(msg, os);
    if (!has_delivery) return;
    os << " sub_ids=[";
    for (size_t i = 0; i < sub_ids.size(); ++i) os << (i ? "," : "") << sub_ids[i];
    os << "]";
    os << " share=\"" << msg.share_filter << "\"";
    if (msg.queued_wall_ms) os << " queued_wall_ms=" << msg.queued_wall_ms;
}

void OutStateSet::encode(BodyWriter& w) const {
    w.str(client);
    w.u64(seq);
    w.u8(state);
    w.u16(packet_id);
}

void OutStateSet::read_key(BodyReader& r) {
    client = r.str();
    seq = r.u64();
}

void OutStateSet::read_rest(BodyReader& r) {
    state = r.u8();
    packet_id = r.u16();
}

void OutStateSet::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " seq=" << seq;
    os << " state=" << int(state);
    os << " packet_id=" << packet_id;
}

void OutDone::encode(BodyWriter& w) const {
    w.str(client);
    w.u64(seq);
}

void OutDone::read_key(BodyReader& r) {
    client = r.str();
    seq = r.u64();
}

void OutDone::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " seq=" << seq;
}

// ---- qos2_in_put / qos2_in_remove -------------------------------------------

void Qos2InPut::encode(BodyWriter& w) const {
    w.str(client);
    w.u16(packet_id);
    if (digest == 0) return;
    w.u8(kExtensionV1);
    w.u64(digest);
}

void Qos2InPut::read_key(BodyReader& r) {
    client = r.str();
    packet_id = r.u16();
}

void Qos2InPut::read_rest(BodyReader& r) {
    digest = has_extension(r) ? r.u64() : 0;
    skip_rest(r);
}

void Qos2InPut::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " packet_id=" << packet_id;
    if (digest) os << " digest=" << std::hex << digest << std::dec;
}

void Qos2InRemove::encode(BodyWriter& w) const {
    w.str(client);
    w.u16(packet_id);
}

void Qos2InRemove::read_key(BodyReader& r) {
    client = r.str();
    packet_id = r.u16();
}

void Qos2InRemove::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " packet_id=" << packet_id;
}

// ---- will_put / will_remove -------------------------------------------------

OwnerSource WillPut::owner() const { return owner_of(owner_source, username); }

void WillPut::encode(BodyWriter& w) const {
    w.str(client);
    w.u32(delay_s);
    w.u8(has_expiry ? 1 : 0);
    w.u32(expiry_s);
    w.u8(owner_source);
    w.str(username);
    w.u32(static_cast<uint32_t>(listener));
    write_message(w, msg);
}

void WillPut::read_key(BodyReader& r) { client = r.str(); }

void WillPut::read_rest(BodyReader& r) {
    delay_s = r.u32();
    has_expiry = r.u8() != 0;
    expiry_s = r.u32();
    owner_source = r.u8();
    username = r.str();
    listener = static_cast<int32_t>(r.u32());
    msg.topic = r.str();
    read_message_after_topic(r, msg);
    skip_rest(r);
}

void WillPut::describe(std::ostream& os) const {
    describe_client(client, os);
    os << " delay_s=" << delay_s;
    if (has_expiry) os << " expiry_s=" << expiry_s;
    os << " owner_source=" << int(owner_source);
    os << " username=\"" << username << "\"";
    os << " listener=" << listener;
    describe_message(msg, os);
}

void WillRemove::encode(BodyWriter& w) const { w.str(client); }
void WillRemove::read_key(BodyReader& r) { client = r.str(); }
void WillRemove::describe(std::ostream& os) const { describe_client(client, os); }

}  // namespace hato::broker::rec
