// Drives the broker with a script read from arbitrary bytes: connections
// open and close, bytes arrive (valid MQTT or not), the clock moves, loop
// passes end, the store becomes durable or full, a connection's output
// backs up. Shared by the libFuzzer target (fuzz_broker.cpp) and the
// corpus replay in the unit tests, so every input the fuzzer ever found
// interesting keeps running in CI under the sanitizers.
//
// What it checks besides "no crash, no sanitizer report": every byte the
// broker sends decodes as a well-formed packet of the connection's version.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/persistence.hpp"
#include "mqtt/codec.hpp"

namespace hato::fuzz {

using broker::ConnId;

// Hands out real tickets (so held acks wait for on_durable) and can refuse
// new messages (full), like the log store; keeps nothing.
class TicketPersistence final : public broker::Persistence {
public:
    uint64_t last = 0;
    uint64_t durable = 0;
    bool is_full = false;

    void load(broker::RecoveredState&) override {}
    broker::Append retained_set(const broker::StoredMessageView&) override { return broker::Append::stored(++last); }
    broker::Append retained_clear(std::string_view) override { return broker::Append::stored(++last); }
    broker::Append session_put(std::string_view, uint32_t, uint64_t, const broker::SessionOwner& = {}) override {
        return broker::Append::stored(++last);
    }
    broker::Append session_remove(std::string_view) override { return broker::Append::stored(++last); }
    broker::Append sub_put(std::string_view, std::string_view, uint8_t, uint32_t) override { return broker::Append::stored(++last); }
    broker::Append sub_remove(std::string_view, std::string_view) override { return broker::Append::stored(++last); }
    broker::Append out_enqueue(std::string_view, uint64_t, const broker::StoredMessageView&) override { return broker::Append::stored(++last); }
    broker::Append out_state(std::string_view, uint64_t, broker::OutState, uint16_t) override { return broker::Append::stored(++last); }
    broker::Append out_done(std::string_view, uint64_t) override { return broker::Append::stored(++last); }
    broker::Append qos2_in_put(std::string_view, uint16_t, uint64_t) override { return broker::Append::stored(++last); }
    broker::Append qos2_in_remove(std::string_view, uint16_t) override { return broker::Append::stored(++last); }
    broker::Append will_put(std::string_view, const broker::StoredMessageView&, uint32_t, std::optional<uint32_t>,
                            const broker::SessionOwner&, int) override {
        return broker::Append::stored(++last);
    }
    broker::Append will_remove(std::string_view) override { return broker::Append::stored(++last); }
    bool full() const override { return is_full; }
    uint64_t durable_ticket() const override { return durable; }
    uint64_t latest_ticket() const override { return last; }
};

// Checks the broker's output per connection; the version is learnt from the
// CONNECT the script sent (byte 7 of a CONNECT with a 1-byte remaining length
// is the protocol level; v5 is assumed until then, and then every v3 decode
// is tried too, since a CONNACK refusing an unknown level is v3-encoded).
class CheckingTransport final : public broker::Transport {
public:
    std::map<ConnId, std::vector<uint8_t>> out;
    std::map<ConnId, mqtt::Version> version;
    std::set<ConnId> congested;
    std::vector<ConnId> close_requests;

    void send(ConnId id, std::span<const uint8_t> bytes) override {
        auto& buf = out[id];
        buf.insert(buf.end(), bytes.begin(), bytes.end());
        check(id, buf);
    }
    size_t queued_bytes(ConnId id) const override { return congested.count(id) ? (64u << 20) : 0; }
    void close(ConnId id) override { close_requests.push_back(id); }

private:
    void check(ConnId id, std::vector<uint8_t>& buf) {
        std::span<const uint8_t> in(buf);
        while (!in.empty()) {
            mqtt::Packet p;
            mqtt::DecodeResult r{};
            auto v = version.find(id);
            const mqtt::Version tries[] = {v == version.end() ? mqtt::Version::V5 : v->second,
                                           mqtt::Version::V311, mqtt::Version::V31};
            for (mqtt::Version t : tries) {
                r = mqtt::decode(in, t, 0, p);
                if (r.status != mqtt::DecodeStatus::Error) break;
            }
            if (r.status == mqtt::DecodeStatus::Incomplete) break;
            if (r.status == mqtt::DecodeStatus::Error) {
                std::fprintf(stderr, "broker sent a malformed packet to %llu: %s:",
                             (unsigned long long)id, r.what);
                for (size_t k = 0; k < in.size() && k < 64; ++k) std::fprintf(stderr, " %02x", in[k]);
                std::fprintf(stderr, "\n");
                std::abort();
            }
            in = in.subspan(r.consumed);
        }
        buf.erase(buf.begin(), buf.end() - ptrdiff_t(in.size()));
    }
};

// Small limits, so that windows, queues, aliases and the packet size limit
// are reached by short inputs.
inline broker::Config fuzz_config() {
    broker::Config c;
    c.max_connections = 8;
    c.max_packet_size = 4096;
    c.max_inflight = 3;
    c.max_queued_messages = 6;
    c.max_output_bytes = 2048;
    c.receive_maximum = 3;
    c.topic_alias_maximum = 3;
    c.max_outbound_topic_aliases = 3;
    return c;
}

// Where the broker's state goes: TicketEnv keeps nothing (a restart loses
// everything); log_env.hpp's LogEnv writes the real append log and restarts
// by crashing and recovering from it.
class TicketEnv {
public:
    broker::Persistence& persistence() { return persist_; }
    uint64_t make_durable() { return persist_.durable = persist_.last; }
    void toggle_full() { persist_.is_full = !persist_.is_full; }
    void restart(uint8_t /*damage*/) {}
    void pass_end() {}

private:
    TicketPersistence persist_;
};

// The interpreter. Each step takes an opcode byte, then its operands.
template <class Env>
void run_broker_script(std::span<const uint8_t> script, Env& env) {
    CheckingTransport transport;
    broker::Config cfg = fuzz_config();
    auto b = std::make_unique<broker::Broker>(cfg, transport, env.persistence());
    b->recover();
    uint64_t now = 1000;
    b->on_tick(now);

    std::vector<ConnId> live;
    ConnId next_id = 1;
    size_t i = 0;
    auto byte = [&]() -> uint8_t { return i < script.size() ? script[i++] : 0; };
    auto pick = [&]() -> ConnId { return live.empty() ? 0 : live[byte() % live.size()]; };
    auto gone = [&](ConnId id) {   // what the reactor does after close()
        for (size_t k = 0; k < live.size(); ++k)
            if (live[k] == id) {
                live.erase(live.begin() + ptrdiff_t(k));
                b->on_close(id);
                return;
            }
    };
    auto data = [&](ConnId id, size_t len) {
        len = std::min(len, script.size() - i);
        std::span<const uint8_t> chunk = script.subspan(i, len);
        i += len;
        if (!id) return;
        // Learn the version from a CONNECT: 0x10, 1-byte length, "\0\4MQTT" or "\0\6MQIsdp", level.
        if (!transport.version.count(id) && chunk.size() >= 9 && chunk[0] == 0x10 && chunk[1] < 0x80) {
            const uint8_t level = chunk[3] == 4 ? chunk[8] : chunk.size() > 10 ? chunk[10] : 0;
            if (level >= 3 && level <= 5) transport.version[id] = mqtt::Version(level);
        }
        b->on_data(id, chunk);
    };

    while (i < script.size()) {
        switch (byte() % 10) {
        case 0:
            if (live.size() < 8) {
                live.push_back(next_id);
                b->on_open(next_id++, 0, "fuzz");
            }
            break;
        case 1: {
            ConnId id = pick();
            data(id, byte());
            break;
        }
        case 2: {
            ConnId id = pick();
            size_t len = byte();
            data(id, len | size_t(byte()) << 8);
            break;
        }
        case 3:
            gone(pick());
            break;
        case 4:
            now += uint64_t(byte()) * 250;   // up to about a minute: keep alive, expiry, will delay
            b->on_tick(now);
            break;
        case 5: {
            b->on_pass_end();
            env.pass_end();
            std::vector<ConnId> closing;
            closing.swap(transport.close_requests);
            for (ConnId id : closing) gone(id);
            break;
        }
        case 6:
            env.make_durable();
            b->on_durable();
            break;
        case 7:
            env.toggle_full();
            break;
        case 8: {
            ConnId id = pick();
            if (!transport.congested.erase(id)) transport.congested.insert(id);
            break;
        }
        default:
            // A crash (no shutdown) and a restart on whatever the env kept,
            // with the operand saying how the store's tail is damaged.
            b.reset();
            live.clear();
            transport.close_requests.clear();
            env.restart(byte());
            b = std::make_unique<broker::Broker>(cfg, transport, env.persistence());
            b->recover();
            b->on_tick(now);
            break;
        }
    }
    b->shutdown();
}

inline void run_broker_script(std::span<const uint8_t> script) {
    TicketEnv env;
    run_broker_script(script, env);
}

}  // namespace hato::fuzz
