// hato-floor: the cheapest forwarder hato-bench can talk to, to measure the
// floor under hato's QoS 1 CPU cost in the same run as the brokers.
//
// It runs on hato's own reactor (io_uring where available: multishot recv,
// provided buffers, one submission per pass, one send per socket per pass),
// speaks just enough MQTT 3.1.1 for hato-bench (CONNECT, SUBSCRIBE to one
// exact topic, PUBLISH QoS 0/1, PUBACK, PINGREQ, DISCONNECT) and does no
// broker work at all: no sessions, no store, no topic tree, no validation,
// no packet-id mapping (a PUBLISH leaves with its publisher's packet id).
// What it costs per message is what the socket work of a QoS 1 exchange
// costs on this machine: the same segments any broker must send and receive.
// QoS 0 pairs, fan-in and fan-out: every PUBLISH is routed on its own to
// every subscriber of its topic (exact match), the reactor batches the
// writes per socket per pass, and a subscriber whose output is over 1 MiB
// stops all intake until it drained below half of that, as hato's
// back-pressure does (without hato's slow-consumer drop: a bench never
// stops reading). That is the ceiling row of bench/compare.sh.
// Never a broker: it trusts its input and is only for bench/compare.sh.
//   hato-floor --port P
#include "net/reactor.hpp"

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <algorithm>
#include <unordered_map>
#include <vector>

namespace {

using hato::net::ConnId;

class Floor final : public hato::net::Handler {
public:
    explicit Floor(hato::net::Reactor& r) : r_(r) {}

    void on_open(ConnId id, int, const std::string&) override { conns_[id]; }
    void on_close(ConnId id, int) override {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        auto sub = subs_.find(it->second.topic);
        if (sub != subs_.end()) {
            std::erase(sub->second, id);
            if (sub->second.empty()) subs_.erase(sub);
        }
        last_subs_ = nullptr;
        conns_.erase(it);
        std::erase(backed_up_, id);
        if (backed_up_.empty()) r_.set_intake(true);
    }
    void on_tick(uint64_t) override { on_pass_end(); }
    // Intake resumes once every backed-up subscriber drained below half.
    void on_pass_end() override {
        if (backed_up_.empty()) return;
        std::erase_if(backed_up_, [&](ConnId s) { return r_.queued_bytes(s) <= kHighWater / 2; });
        if (backed_up_.empty()) r_.set_intake(true);
    }

    void on_data(ConnId id, std::span<const uint8_t> data) override {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        std::vector<uint8_t>& in = it->second.in;
        // Parse straight from the ring buffer when nothing is left over.
        const uint8_t* p = data.data();
        size_t n = data.size();
        if (!in.empty()) {
            in.insert(in.end(), data.begin(), data.end());
            p = in.data();
            n = in.size();
        }
        size_t pos = 0;
        while (n - pos >= 2) {
            uint32_t rem = 0;
            size_t i = pos + 1;
            int shift = 0;
            bool whole = false;
            while (i < n && i < pos + 5) {
                rem |= uint32_t(p[i] & 0x7F) << shift;
                shift += 7;
                if (!(p[i++] & 0x80)) { whole = true; break; }
            }
            if (!whole || n - i < rem) break;
            packet(id, it->second, p + pos, i - pos, p + i, rem);
            pos = i + rem;
        }
        if (in.empty()) in.assign(p + pos, p + n);
        else in.erase(in.begin(), in.begin() + long(pos));
    }

private:
    struct Conn {
        std::vector<uint8_t> in;  // an incomplete packet carried to the next recv
        std::string topic;        // its one subscription, if any
    };

    void packet(ConnId id, Conn& c, const uint8_t* head, size_t head_len, const uint8_t* body, uint32_t len) {
        switch (head[0] >> 4) {
        case 1: {  // CONNECT
            static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
            r_.send(id, connack);
            break;
        }
        case 8: {  // SUBSCRIBE: packet id, then one filter and its options
            if (len < 5) return;
            size_t tlen = size_t(body[2]) << 8 | body[3];
            if (4 + tlen + 1 > len) return;
            c.topic.assign(reinterpret_cast<const char*>(body + 4), tlen);
            subs_[c.topic].push_back(id);
            last_subs_ = nullptr;
            const uint8_t suback[] = {0x90, 0x03, body[0], body[1], uint8_t(body[4 + tlen] & 3)};
            r_.send(id, suback);
            break;
        }
        case 3: {  // PUBLISH: forward as it came, acknowledge QoS 1
            if (len < 2) return;
            size_t tlen = size_t(body[0]) << 8 | body[1];
            if (2 + tlen > len) return;
            // A burst from one publisher repeats its topic: the last lookup
            // is reused while the topic is the same (what any router caches).
            const std::string_view topic(reinterpret_cast<const char*>(body + 2), tlen);
            if (!last_subs_ || topic != last_topic_) {
                auto sub = subs_.find(topic);
                last_subs_ = sub == subs_.end() ? nullptr : &sub->second;
                last_topic_.assign(topic);
            }
            if (last_subs_) {
                // Header and body are contiguous in the input: one copy each.
                const std::span<const uint8_t> whole{head, head_len + len};
                for (ConnId to : *last_subs_) {
                    r_.send(to, whole);
                    if (r_.queued_bytes(to) > kHighWater &&
                        std::find(backed_up_.begin(), backed_up_.end(), to) == backed_up_.end()) {
                        if (backed_up_.empty()) r_.set_intake(false);
                        backed_up_.push_back(to);
                    }
                }
            }
            if (((head[0] >> 1) & 3) == 1 && 2 + tlen + 2 <= len) {
                const uint8_t puback[] = {0x40, 0x02, body[2 + tlen], body[3 + tlen]};
                r_.send_low_priority(id, puback);
            }
            break;
        }
        case 12: {  // PINGREQ
            static const uint8_t pingresp[] = {0xD0, 0x00};
            r_.send(id, pingresp);
            break;
        }
        case 14: r_.close(id, false); break;  // DISCONNECT
        default: break;                        // PUBACK from subscribers: nothing to do
        }
    }

    // Transparent lookup by string_view, so a PUBLISH's topic is not copied.
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    static constexpr size_t kHighWater = 1 << 20;   // hato's default max_output_bytes
    hato::net::Reactor& r_;
    std::unordered_map<ConnId, Conn> conns_;
    std::unordered_map<std::string, std::vector<ConnId>, Hash, std::equal_to<>> subs_;
    std::vector<ConnId> backed_up_;   // subscribers over kHighWater: intake stopped
    std::string last_topic_;                            // the last PUBLISH's topic ...
    const std::vector<ConnId>* last_subs_ = nullptr;    // ... and its subscribers (null: look up)
};

hato::net::Reactor* g_reactor = nullptr;

}  // namespace

int main(int argc, char** argv) {
    // As hato does (src/app/main.cpp): large blocks from the heap, reused,
    // not mapped fresh per message (page faults cost more than copies on a VM).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    uint16_t port = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = uint16_t(std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: hato-floor --port P\n");
            return 2;
        }
    }
    std::string note;
    auto reactor = hato::net::Reactor::create(hato::net::Backend::Auto, note);
    if (!reactor) {
        std::fprintf(stderr, "hato-floor: no reactor: %s\n", note.c_str());
        return 1;
    }
    std::string err;
    if (!reactor->listen("127.0.0.1", port, err)) {
        std::fprintf(stderr, "hato-floor: %s\n", err.c_str());
        return 1;
    }
    std::fprintf(stderr, "hato-floor: %s on 127.0.0.1:%u\n", reactor->name(), unsigned(reactor->bound_port(0)));
    g_reactor = reactor.get();
    std::signal(SIGTERM, [](int) { g_reactor->stop(); });
    std::signal(SIGINT, [](int) { g_reactor->stop(); });
    Floor floor(*reactor);
    reactor->run(floor);
    return 0;
}
