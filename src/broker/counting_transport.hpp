// A Transport that counts what the broker sends (packets and bytes, for
// $SYS) and passes everything on. Every call of send / send_low_priority
// carries one MQTT packet.
#pragma once

#include "broker/broker.hpp"

namespace hato::broker {

class CountingTransport final : public Transport {
public:
    // `stats` may be a member not constructed yet: it is only written by sends.
    CountingTransport(Transport& inner, Stats& stats) : inner_(inner), stats_(stats) {}
    void send(ConnId id, std::span<const uint8_t> bytes) override {
        count(bytes.size());
        inner_.send(id, bytes);
    }
    void send_low_priority(ConnId id, std::span<const uint8_t> bytes) override {
        count(bytes.size());
        inner_.send_low_priority(id, bytes);
    }
    void send_kept(ConnId id, std::span<const uint8_t> bytes, void* obj, void (*release)(void*)) override {
        stats_.bytes_out += bytes.size();   // the rest of a packet that send() counted
        inner_.send_kept(id, bytes, obj, release);
    }
    size_t queued_bytes(ConnId id) const override { return inner_.queued_bytes(id); }
    void set_reading(ConnId id, bool on) override { inner_.set_reading(id, on); }
    void set_intake(bool on) override { inner_.set_intake(on); }
    void expect_in_place(ConnId id) override { inner_.expect_in_place(id); }
    void pass_again() override { inner_.pass_again(); }
    void slow_consumer(ConnId id, std::string_view client_id, bool started, uint64_t dropped) override {
        inner_.slow_consumer(id, client_id, started, dropped);
    }
    void close(ConnId id) override { inner_.close(id); }

private:
    void count(size_t n) {
        ++stats_.packets_out;
        stats_.bytes_out += n;
    }
    Transport& inner_;
    Stats& stats_;
};

}  // namespace hato::broker
