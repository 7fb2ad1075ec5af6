// Test doubles for the broker: a transport that collects bytes per
// connection, a persistence that records calls and controls durability, and
// a small client that encodes packets in and decodes what the broker sent.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "broker/auth.hpp"
#include "broker/broker.hpp"
#include "mqtt/codec.hpp"

namespace hato::broker::test {

using namespace hato::mqtt;

struct FakeTransport final : Transport {
    std::map<ConnId, std::vector<uint8_t>> sent;   // not yet taken by a TestClient
    std::map<ConnId, size_t> queued;               // what queued_bytes() reports
    std::set<ConnId> closed;
    std::map<ConnId, bool> reading;                // last set_reading() per connection

    void set_reading(ConnId id, bool on) override { reading[id] = on; }
    bool intake = true;                            // last set_intake()
    std::vector<std::pair<bool, uint64_t>> slow;   // slow_consumer() calls: (started, dropped)
    void set_intake(bool on) override { intake = on; }
    std::map<ConnId, int> in_place_hints;          // expect_in_place() calls per connection
    void expect_in_place(ConnId id) override { ++in_place_hints[id]; }
    int passes_asked = 0;                          // pass_again() calls
    void pass_again() override { ++passes_asked; }
    void slow_consumer(ConnId, std::string_view, bool started, uint64_t dropped) override {
        slow.emplace_back(started, dropped);
    }
    void send(ConnId id, std::span<const uint8_t> bytes) override {
        auto& v = sent[id];
        v.insert(v.end(), bytes.begin(), bytes.end());
    }
    size_t queued_bytes(ConnId id) const override {
        auto it = queued.find(id);
        return it == queued.end() ? 0 : it->second;
    }
    void close(ConnId id) override { closed.insert(id); }
};

// Records each call as one line ("sub_put c1 a/b 1 0"); every write gets the
// next ticket unless it is to be refused; durable_ticket() is `durable` (or the last ticket when
// auto_durable).
struct FakePersistence final : Persistence {
    std::vector<std::string> calls;
    uint64_t last_ticket = 0;
    uint64_t durable = 0;
    bool auto_durable = true;
    bool is_full = false;
    RecoveredState to_load;

    // Calls whose line starts with one of these are refused with `refuse_with`
    // (and recorded with a "refused " prefix).
    std::vector<std::string> refuse;
    AppendStatus refuse_with = AppendStatus::QuotaExceeded;

    // Calls made while the broker had a message admitted (admit_whole).
    bool admitted = false;
    std::vector<std::string> admitted_calls;

    Append rec(std::string line) {
        if (admitted) admitted_calls.push_back(line);
        for (const std::string& r : refuse)
            if (line.rfind(r, 0) == 0) {
                calls.push_back("refused " + line);
                return Append::refused(refuse_with);
            }
        calls.push_back(std::move(line));
        return Append::stored(++last_ticket);
    }
    static std::string s(std::string_view v) { return std::string(v); }
    size_t count(std::string_view prefix) const {
        size_t n = 0;
        for (auto& c : calls) n += c.rfind(prefix, 0) == 0;
        return n;
    }

    void load(RecoveredState& out) override { out = to_load; }
    Append retained_set(const StoredMessageView& m) override { return rec("retained_set " + s(m.topic)); }
    Append retained_clear(std::string_view t) override { return rec("retained_clear " + s(t)); }
    Append session_put(std::string_view c, uint32_t e, uint64_t off, const SessionOwner& o = {}) override {
        return rec("session_put " + s(c) + " " + std::to_string(e) + (off ? " offline" : " online") +
                   " owner=" + std::to_string(int(o.source)) + ":" + s(o.username));
    }
    Append session_remove(std::string_view c) override { return rec("session_remove " + s(c)); }
    Append sub_put(std::string_view c, std::string_view f, uint8_t o, uint32_t id) override {
        return rec("sub_put " + s(c) + " " + s(f) + " " + std::to_string(o) + " " + std::to_string(id));
    }
    Append sub_remove(std::string_view c, std::string_view f) override {
        return rec("sub_remove " + s(c) + " " + s(f));
    }
    Append out_enqueue(std::string_view c, uint64_t seq, const StoredMessageView& m) override {
        std::string ids;
        for (uint32_t id : m.sub_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
        return rec("out_enqueue " + s(c) + " " + std::to_string(seq) + " " + s(m.topic) + " ids=" + ids +
                   " share=" + s(m.share_filter));
    }
    Append out_state(std::string_view c, uint64_t seq, OutState st, uint16_t pid) override {
        return rec("out_state " + s(c) + " " + std::to_string(seq) + " " +
                   std::to_string(int(st)) + " " + std::to_string(pid));
    }
    Append out_done(std::string_view c, uint64_t seq) override {
        return rec("out_done " + s(c) + " " + std::to_string(seq));
    }
    Append qos2_in_put(std::string_view c, uint16_t id, uint64_t digest) override {
        return rec("qos2_in_put " + s(c) + " " + std::to_string(id) + " digest=" + std::to_string(digest));
    }
    Append qos2_in_remove(std::string_view c, uint16_t id) override {
        return rec("qos2_in_remove " + s(c) + " " + std::to_string(id));
    }
    Append will_put(std::string_view c, const StoredMessageView& m, uint32_t delay_s, std::optional<uint32_t> expiry_s,
                    const SessionOwner& o, int listener) override {
        return rec("will_put " + s(c) + " " + s(m.topic) + " delay=" + std::to_string(delay_s) +
                   (expiry_s ? " expiry=" + std::to_string(*expiry_s) : std::string()) +
                   " owner=" + std::to_string(int(o.source)) + ":" + s(o.username) + " listener=" + std::to_string(listener));
    }
    Append will_remove(std::string_view c) override { return rec("will_remove " + s(c)); }
    bool full() const override { return is_full; }
    void admit_whole(bool on) override {
        REQUIRE(admitted != on);   // never nested
        admitted = on;
    }
    uint64_t durable_ticket() const override { return auto_durable ? last_ticket : durable; }
    uint64_t latest_ticket() const override { return last_ticket; }
};

struct Harness {
    Config cfg;
    FakeTransport transport;
    FakePersistence persist;
    std::unique_ptr<Broker> broker;
    ConnId next_id = 1;

    explicit Harness(Config c = Config{}) : cfg(c) {
        broker = std::make_unique<Broker>(cfg, transport, persist);
        broker->on_tick(0);
    }
};

// Every packet in `in`, which must hold whole packets only. They point into
// `in`, which must outlive them.
inline std::vector<Packet> decode_all(std::span<const uint8_t> in, Version v) {
    std::vector<Packet> out;
    while (!in.empty()) {
        Packet p;
        DecodeResult r = decode(in, v, 0, p);
        REQUIRE(r.status == DecodeStatus::Ok);
        out.push_back(p);
        in = in.subspan(r.consumed);
    }
    return out;
}

// A v5 CONNECT with a QoS 1 will ("bye" on `topic`).
inline Connect with_will(const char* id, const char* topic, uint32_t delay = 0, bool clean = true,
                         uint32_t expiry = 0) {
    Connect c;
    c.client_id = id;
    c.clean_start = clean;
    c.will_flag = true;
    c.will_topic = topic;
    c.will_qos = 1;
    c.will_payload = Bytes(reinterpret_cast<const uint8_t*>("bye"), 3);
    if (delay) c.will_props.will_delay = delay;
    if (expiry) c.props.session_expiry = expiry;
    return c;
}

class TestClient {
public:
    TestClient(Harness& h, Version v, int listener = 0) : h_(h), v_(v), id(h.next_id++) {
        h_.broker->on_open(id, listener, "test");
    }

    void send(const Packet& p) {
        std::vector<uint8_t> bytes;
        encode(p, v_, bytes);
        h_.broker->on_data(id, bytes);
    }
    void send_raw(std::vector<uint8_t> bytes) { h_.broker->on_data(id, bytes); }

    // Everything the broker sent since the last call, decoded.
    std::vector<Packet> take() {
        auto& raw = h_.transport.sent[id];
        buffers_.push_back(std::move(raw));
        raw.clear();
        return decode_all(buffers_.back(), v_);
    }
    template <class T>
    std::vector<T> take_all() {
        std::vector<T> out;
        for (auto& p : take()) {
            REQUIRE(std::holds_alternative<T>(p));
            out.push_back(std::get<T>(p));
        }
        return out;
    }
    template <class T>
    T take_one() {
        auto all = take_all<T>();
        REQUIRE(all.size() == 1);
        return all.front();
    }
    std::vector<Publish> publishes() { return take_all<Publish>(); }

    Connack connect(std::string_view client_id, bool clean = true, uint16_t keep_alive = 0,
                    Properties props = {}) {
        Connect c;
        c.version = v_;
        c.client_id = client_id;
        c.clean_start = clean;
        c.keep_alive = keep_alive;
        c.props = std::move(props);
        return connect_with(c);
    }
    // CONNACK and SUBACK wait for their records: tests that hold durability
    // back for other packets let these through.
    std::vector<Packet> take_held() {
        auto packets = take();
        if (packets.empty() && !h_.persist.auto_durable) {
            h_.persist.durable = h_.persist.last_ticket;
            h_.broker->on_durable();
            packets = take();
        }
        return packets;
    }
    Connack connect_with(Connect c) {
        c.version = v_;
        send(c);
        auto packets = take_held();
        REQUIRE(!packets.empty());
        REQUIRE(std::holds_alternative<Connack>(packets.front()));
        for (size_t i = 1; i < packets.size(); ++i) pending_.push_back(packets[i]);
        return std::get<Connack>(packets.front());
    }

    Suback subscribe(std::string_view filter, uint8_t qos, uint16_t pid = 1, uint32_t sub_id = 0,
                     uint8_t retain_handling = 0, bool no_local = false, bool rap = false) {
        Subscribe s;
        s.packet_id = pid;
        if (sub_id) s.props.subscription_ids.push_back(sub_id);
        s.topics.push_back({filter, qos, no_local, rap, retain_handling});
        send(s);
        auto packets = take_held();
        REQUIRE(!packets.empty());
        REQUIRE(std::holds_alternative<Suback>(packets.front()));
        for (size_t i = 1; i < packets.size(); ++i) pending_.push_back(packets[i]);
        return std::get<Suback>(packets.front());
    }
    // Packets that followed a CONNACK (resends) or SUBACK (retained messages).
    std::vector<Packet> extra() { return std::exchange(pending_, {}); }

    void publish(std::string_view topic, std::string_view payload, uint8_t qos = 0,
                 bool retain = false, uint16_t pid = 0, Properties props = {}) {
        Publish p;
        p.topic = topic;
        p.payload = Bytes(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
        p.qos = qos;
        p.retain = retain;
        p.packet_id = qos ? (pid ? pid : next_pid_++) : 0;
        p.props = std::move(props);
        send(p);
    }
    void ack(PacketType t, uint16_t pid, uint8_t reason = 0) { send(Ack{t, pid, reason, {}}); }
    void disconnect(uint8_t reason = 0, Properties props = {}) { send(Disconnect{reason, std::move(props)}); }

    bool closed() const { return h_.transport.closed.count(id) != 0; }
    void transport_gone() { h_.broker->on_close(id); }

private:
    Harness& h_;
    Version v_;
    std::deque<std::vector<uint8_t>> buffers_;   // decoded packets point into these
    std::vector<Packet> pending_;
    uint16_t next_pid_ = 1;

public:
    const ConnId id;
};

inline std::string text(Bytes b) { return std::string(b.begin(), b.end()); }
// The bytes of `s`, which must outlive them.
inline Bytes bytes_of(std::string_view s) { return Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

}  // namespace hato::broker::test
