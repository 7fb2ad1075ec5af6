// hato-bench internals: a minimal MQTT client state machine (its own tiny
// encoder/decoder, so the generator never shares a bug with the broker it
// measures) and the loss / duplicate / order / latency accounting.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace hato::bench {

// Payload stamp: publisher id (4) + sequence (8) + send time ns (8).
constexpr int kStampSize = 20;

struct Client {
    int fd = -1;
    bool is_pub = false;
    int pub_index = -1, sub_index = -1;
    bool connacked = false, subscribed = false;
    // in[in_off, in_end) is received and not yet parsed; out[out_off, end)
    // is queued and not yet written. Offsets, not erase-from-front: a large
    // batch is not moved down after every partial write or recv.
    std::vector<uint8_t> in, out;
    size_t in_off = 0, in_end = 0, out_off = 0;
    size_t recv_room = 4096;        // free space a recv asks for; doubles while recvs fill it
    // A large PUBLISH is queued as its head only (in `out`, id and stamp
    // patched), and its payload's constant rest is written with sendmsg
    // straight from `templ`: each payload byte is copied once, into the
    // kernel, where a broker copies it twice (in and out), so the generator
    // can go faster than the broker it feeds.
    std::vector<size_t> tails;      // positions in `out` where templ's tail is sent, ascending
    size_t tails_done = 0;          // tails[0, tails_done) written
    size_t tail_off = 0;            // bytes of tails[tails_done] written
    size_t tail_from = 0;           // the tail is templ[tail_from, end); 0: none (small messages)
    size_t tail_len() const { return tail_from ? templ.size() - tail_from : 0; }
    size_t pending() const { return out.size() - out_off + (tails.size() - tails_done) * tail_len() - tail_off; }
    // Blast publishers wait for EPOLLOUT: once a send found the socket full
    // it is not tried again (one failing system call per socket per pass)
    // until epoll says it takes more.
    bool watch_out = false, blocked = false;
    uint16_t next_id = 1;
    uint32_t inflight = 0;          // QoS 1/2 publishes not yet PUBACK/PUBCOMP
    uint32_t server_receive_max = 65535;
    uint64_t sent = 0;              // messages published
    uint64_t rate_start = 0;
    uint64_t stall_since = 0;
    uint64_t written_off = 0;       // deliveries given up as lost after a stall (window mode)
    std::vector<uint8_t> templ;     // this publisher's PUBLISH, packet id and stamp patched per message
    size_t stamp_off = 0;           // where the stamp sits in templ
    size_t id_off = 0;              // where the packet id sits in templ (QoS > 0)
    // A large PUBLISH being received: its first bytes (fixed header and up
    // to kHeadKeep of the rest, which hold topic, id and stamp) are kept and
    // the rest of its payload is skipped as it arrives, not buffered.
    std::vector<uint8_t> head;
    uint64_t skip = 0;              // payload bytes of that PUBLISH still to come
};

struct Totals {
    uint64_t received = 0, expected = 0, lost = 0, duplicated = 0, out_of_order = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

// Log-linear latency histogram in microseconds: 64 powers of two x 16 steps.
class Histogram {
public:
    void add(uint64_t us) {
        int e = us < 16 ? 0 : 63 - __builtin_clzll(us) - 3;
        uint64_t idx = us < 16 ? us : uint64_t(e) * 8 + 8 + ((us >> e) & 7);
        if (idx >= buckets_.size()) idx = buckets_.size() - 1;
        ++buckets_[idx];
        ++count_;
        max_ = std::max(max_, us);
    }
    double percentile(double p) const {
        if (count_ == 0) return 0;
        uint64_t want = uint64_t(std::ceil(p * double(count_))), seen = 0;
        for (size_t i = 0; i < buckets_.size(); ++i) {
            seen += buckets_[i];
            if (seen >= want) return double(lower_bound(i));
        }
        return double(max_);
    }
    double max() const { return double(max_); }

private:
    static uint64_t lower_bound(size_t idx) {
        if (idx < 16) return idx;
        uint64_t e = (idx - 8) / 8;
        return (8 + (idx - 8) % 8) << e;
    }
    std::vector<uint64_t> buckets_ = std::vector<uint64_t>(16 + 8 * 64, 0);
    uint64_t count_ = 0, max_ = 0;
};

class Run {
public:
    Run(int qos, int size, int version) : qos_(qos), size_(size), v5_(version == 5) {}

    // Persistent sessions (clean session 0; v5: clean start 0 and a session
    // expiry of 300 s): the broker then stores every QoS 1/2 delivery.
    bool persistent = false;

    std::vector<Client> clients;
    bool measuring = false;
    // Messages received inside the measured window, whenever they were
    // sent: blast mode's rate (what it sent in the warm-up still drains
    // from socket buffers during the window, so counting by send time
    // would measure the wrong thing).
    uint64_t window_end_ns = 0;
    uint64_t received_in_window = 0;

    Client& add_client(int fd) {
        clients.emplace_back();
        clients.back().fd = fd;
        return clients.back();
    }

    void set_topology(int npub, int nsub, bool pairs) {
        npub_ = npub;
        nsub_ = nsub;
        pairs_ = pairs;
        fan_ = pairs ? 1 : uint64_t(nsub);
        streams_.assign(pairs ? size_t(nsub) : size_t(nsub) * size_t(npub), Stream{});
        received_from_.assign(size_t(npub), 0);
        first_measured_.assign(size_t(npub), UINT64_MAX);
    }

    void start_measuring() {
        measuring = true;
        for (int p = 0; p < npub_; ++p) first_measured_[size_t(p)] = clients[size_t(p)].sent;
    }

    bool all_ready() const {
        for (auto& c : clients)
            if (!c.connacked || (!c.is_pub && npub_ > 0 && !c.subscribed)) return false;
        return true;
    }

    void send_connect(Client& c, const std::string& id) {
        const uint8_t flags = persistent ? 0x00 : 0x02;
        std::vector<uint8_t> body = {0, 4, 'M', 'Q', 'T', 'T', uint8_t(v5_ ? 5 : 4), flags, 0, 60};
        if (v5_) {  // properties: Receive Maximum 65535, so the broker may push freely
            body.push_back(persistent ? 8 : 3);
            body.insert(body.end(), {0x21, 0xFF, 0xFF});
            if (persistent) body.insert(body.end(), {0x11, 0, 0, 0x01, 0x2C});   // Session Expiry 300 s
        }
        put_str(body, id);
        frame(c, 0x10, body);
    }

    void send_subscribe(Client& c, const std::string& topic) {
        std::vector<uint8_t> body = {0, 1};
        if (v5_) body.push_back(0);
        put_str(body, topic);
        body.push_back(uint8_t(qos_));
        frame(c, 0x82, body);
    }

    bool can_publish(Client& c, int window, double per_pub_rate, uint64_t now) {
        if (qos_ > 0 && c.inflight >= std::min<uint32_t>(uint32_t(window), c.server_receive_max)) return false;
        if (per_pub_rate > 0) {
            double due = double(now - c.rate_start) / 1e9 * per_pub_rate;
            return double(c.sent) < due;
        }
        // (Written off, then late after all: counted once, as seen.)
        const uint64_t accounted = received_from_[size_t(c.pub_index)] + c.written_off;
        const uint64_t unseen = c.sent * fan_ > accounted ? c.sent * fan_ - accounted : 0;
        if (unseen < uint64_t(window) * fan_) {
            c.stall_since = 0;
            return true;
        }
        // QoS 0 may be dropped by design: do not stall forever on a lost
        // message. What is still unseen is written off, so the window opens
        // once (not without bound: 256 large messages a pass would be GiBs).
        if (c.stall_since == 0) c.stall_since = now;
        if (now - c.stall_since <= 1'000'000'000ull) return false;
        c.written_off += unseen;
        c.stall_since = 0;
        return true;
    }

    void publish(Client& c, const std::string& topic, uint64_t now) {
        uint16_t id = 0;
        if (qos_ > 0) {
            id = c.next_id++;
            if (c.next_id == 0) c.next_id = 1;
            ++c.inflight;
        }
        make_template(c, topic);
        uint8_t* m = queue_message(c);
        if (qos_ > 0) {
            m[c.id_off] = uint8_t(id >> 8);
            m[c.id_off + 1] = uint8_t(id);
        }
        stamp(m + c.stamp_off, uint32_t(c.pub_index), c.sent, now);
        ++c.sent;
    }

private:
    static void stamp(uint8_t* at, uint32_t pid, uint64_t seq, uint64_t now) {
        std::memcpy(at, &pid, 4);
        std::memcpy(at + 4, &seq, 8);
        std::memcpy(at + 12, &now, 8);
    }

    // One whole PUBLISH per publisher, copied per message (a large payload
    // is then one memcpy, not a fill and a copy), or only up to its stamp
    // when it is large (Client::tails).
    void make_template(Client& c, const std::string& topic) {
        if (!c.templ.empty()) return;
        Client t;
        publish_into(t, topic, 0, 0);
        c.templ = std::move(t.out);
        c.stamp_off = c.templ.size() - size_t(size_);
        c.id_off = c.stamp_off - (v5_ ? 1 : 0) - 2;
        if (c.templ.size() > kTailAbove) c.tail_from = c.stamp_off + kStampSize;
    }

    // Appends the template's copied part to c.out (and its tail's place):
    // returns where it starts, for the id and stamp.
    static uint8_t* queue_message(Client& c) {
        const size_t head = c.tail_from ? c.tail_from : c.templ.size();
        const size_t at = c.out.size();
        c.out.resize(at + head);
        std::memcpy(c.out.data() + at, c.templ.data(), head);
        if (c.tail_from) c.tails.push_back(c.out.size());
        return c.out.data() + at;
    }

    static void forget_written(Client& c) {
        if (c.pending() == 0) {
            c.out.clear();
            c.out_off = 0;
            c.tails.clear();
            c.tails_done = 0;
            c.tail_off = 0;
        } else if (c.out_off > c.out.size() / 2) {   // moved rarely, and only the smaller half
            c.out.erase(c.out.begin(), c.out.begin() + long(c.out_off));
            c.tails.erase(c.tails.begin(), c.tails.begin() + long(c.tails_done));
            for (size_t& t : c.tails) t -= c.out_off;
            c.tails_done = 0;
            c.out_off = 0;
        }
    }

    // One sendmsg of what c has queued, tails included. Returns its result.
    static ssize_t send_queued(Client& c) {
        constexpr int kMaxIov = 64;
        iovec iov[kMaxIov];
        int k = 0;
        size_t pos = c.out_off, done = c.tail_off;
        for (size_t t = c.tails_done; k + 2 <= kMaxIov; ++t) {
            const size_t mark = t < c.tails.size() ? c.tails[t] : c.out.size();
            if (pos < mark) iov[k++] = {c.out.data() + pos, mark - pos};
            pos = mark;
            if (t == c.tails.size()) break;
            iov[k++] = {c.templ.data() + c.tail_from + done, c.tail_len() - done};
            done = 0;
        }
        msghdr mh{};
        mh.msg_iov = iov;
        mh.msg_iovlen = size_t(k);
        const ssize_t n = ::sendmsg(c.fd, &mh, MSG_NOSIGNAL);
        for (size_t left = n > 0 ? size_t(n) : 0; left;) {
            const size_t mark = c.tails_done < c.tails.size() ? c.tails[c.tails_done] : c.out.size();
            if (c.out_off < mark) {
                const size_t step = std::min(left, mark - c.out_off);
                c.out_off += step;
                left -= step;
                continue;
            }
            const size_t step = std::min(left, c.tail_len() - c.tail_off);
            c.tail_off += step;
            left -= step;
            if (c.tail_off == c.tail_len()) {
                c.tail_off = 0;
                ++c.tails_done;
            }
        }
        return n;
    }

    void publish_into(Client& c, const std::string& topic, uint16_t id, uint64_t now) {
        std::vector<uint8_t>& o = scratch_;
        o.clear();
        put_str(o, topic);
        if (qos_ > 0) {
            o.push_back(uint8_t(id >> 8));
            o.push_back(uint8_t(id));
        }
        if (v5_) o.push_back(0);
        uint8_t stamp[kStampSize];
        uint32_t pid = uint32_t(c.pub_index);
        uint64_t seq = c.sent;
        std::memcpy(stamp, &pid, 4);
        std::memcpy(stamp + 4, &seq, 8);
        std::memcpy(stamp + 12, &now, 8);
        o.insert(o.end(), stamp, stamp + kStampSize);
        o.resize(o.size() + size_t(size_ - kStampSize), 'x');
        frame(c, uint8_t(0x30 | (qos_ << 1)), o);
    }

public:

    // Blast mode: appends whole PUBLISHes to c.out until it holds `bytes`
    // (one template per publisher, only the stamp changes), so a socket is
    // written in large batches and never waits for a window.
    void blast(Client& c, const std::string& topic, uint64_t now, size_t bytes) {
        make_template(c, topic);
        if (c.pending() >= bytes) return;
        forget_written(c);
        const size_t n = (bytes - c.pending() + c.templ.size() - 1) / c.templ.size();
        c.out.reserve(c.out.size() + n * (c.tail_from ? c.tail_from : c.templ.size()));
        const uint32_t pid = uint32_t(c.pub_index);
        for (size_t i = 0; i < n; ++i) stamp(queue_message(c) + c.stamp_off, pid, c.sent++, now);
    }

    // Writes what each client has queued, as much as its socket takes.
    void flush_all() {
        for (auto& c : clients) {
            if (c.blocked) continue;
            while (c.pending()) {
                ssize_t n;
                if (c.tails_done < c.tails.size()) {
                    n = send_queued(c);   // moves the offsets itself
                } else {
                    n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
                    if (n > 0) c.out_off += size_t(n);
                }
                if (n <= 0) {
                    c.blocked = c.watch_out;
                    break;
                }
            }
            forget_written(c);
        }
    }

    // Reads what is there and handles every whole packet. False: connection lost.
    // recv lands straight in c.in and packets are handled where they lie;
    // only an incomplete packet's bytes are moved, to the front.
    bool read_from(Client& c, uint64_t now) {
        for (;;) {
            if (c.skip) {
                // The rest of a large payload: MSG_TRUNC discards it in the
                // kernel (TCP), copying nothing, so receiving costs the
                // generator next to nothing per byte.
                const size_t want = size_t(std::min<uint64_t>(c.skip, kSkipChunk));
                const ssize_t n = ::recv(c.fd, nullptr, want, MSG_TRUNC);
                if (n == 0) return false;
                if (n < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                    return false;
                }
                c.skip -= uint64_t(n);
                if (c.skip == 0 && !handle_skipped(c, now)) return false;
                if (size_t(n) < want && c.skip) break;   // nothing more there now
                continue;
            }
            if (c.in.size() - c.in_end < c.recv_room) {
                const size_t left = c.in_end - c.in_off;
                if (c.in_off > 0) std::memmove(c.in.data(), c.in.data() + c.in_off, left);
                c.in_off = 0;
                c.in_end = left;
                if (c.in.size() - c.in_end < c.recv_room) c.in.resize(c.in_end + c.recv_room);
            }
            const size_t room = c.in.size() - c.in_end;
            ssize_t n = ::recv(c.fd, c.in.data() + c.in_end, room, 0);
            // A recv that filled all the room asks for more next time: busy
            // subscribers read large, 10 000 idle connections stay small.
            if (size_t(n) == room && c.recv_room < kRecvChunk) c.recv_room *= 2;
            if (n == 0) return false;
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return false;
            }
            c.in_end += size_t(n);
            if (!parse(c, now)) return false;
            if (size_t(n) < room) break;
        }
        return true;
    }

    uint64_t received_count() const {
        uint64_t n = 0;
        for (uint64_t r : received_from_) n += r;
        return n;
    }

    bool drained() const {
        for (int p = 0; p < npub_; ++p) {
            const Client& c = clients[size_t(p)];
            if (c.inflight || received_from_[size_t(p)] < c.sent * fan_) return false;
        }
        return true;
    }

    Totals totals() const {
        Totals t;
        for (int p = 0; p < npub_; ++p) {
            uint64_t measured = clients[size_t(p)].sent - std::min(clients[size_t(p)].sent, first_measured_[size_t(p)]);
            t.expected += measured * fan_;
        }
        t.received = received_;
        t.duplicated = duplicated_;
        t.out_of_order = out_of_order_;
        t.lost = t.expected > received_ ? t.expected - received_ : 0;
        t.p50_us = hist_.percentile(0.50);
        t.p99_us = hist_.percentile(0.99);
        t.p999_us = hist_.percentile(0.999);
        t.max_us = hist_.max();
        return t;
    }

private:
    static constexpr size_t kRecvChunk = 256 * 1024;
    // A PUBLISH larger than this is not buffered whole (see Client::head).
    static constexpr uint32_t kSkipAbove = 64 * 1024;
    static constexpr size_t kHeadKeep = 512;

    static constexpr size_t kSkipChunk = size_t(1) << 30;
    // Above this a PUBLISH is sent as a copied head and a shared tail (Client::tails).
    static constexpr size_t kTailAbove = 16 * 1024;

    // A large PUBLISH whose payload was all skipped is handled from its
    // head, so its latency is its whole transfer.
    bool handle_skipped(Client& c, uint64_t now) {
        std::vector<uint8_t> head;
        head.swap(c.head);
        return handle(c, head[0], head.data() + 1, uint32_t(head.size() - 1), now);
    }

    bool parse(Client& c, uint64_t now) {
        const uint8_t* b = c.in.data();
        size_t pos = c.in_off;
        const size_t end = c.in_end;
        while (end - pos >= 2) {
            uint32_t rem = 0;
            int shift = 0;
            size_t i = pos + 1;
            bool complete = false;
            while (i < end && i < pos + 5) {
                rem |= uint32_t(b[i] & 0x7F) << shift;
                shift += 7;
                if (!(b[i++] & 0x80)) { complete = true; break; }
            }
            if (!complete) break;
            const size_t have = end - i;
            if (have < rem) {
                const size_t keep = std::min<size_t>(rem, kHeadKeep);
                if ((b[pos] >> 4) == 3 && rem > kSkipAbove && have >= keep) {
                    // head: the packet's first byte, then the first `keep` bytes after its length
                    c.head.assign(1, b[pos]);
                    c.head.insert(c.head.end(), b + i, b + i + keep);
                    c.skip = rem - have;
                    pos = end;
                }
                break;
            }
            if (!handle(c, b[pos], b + i, rem, now)) return false;
            pos = i + rem;
        }
        c.in_off = pos;
        if (pos == end) c.in_off = c.in_end = 0;
        return true;
    }

    // One (subscriber, publisher) pair. Every sequence below `next` was
    // seen; `seen` (by sequence) only holds those that arrived ahead of a
    // gap, `ahead` counts them. In order, a message costs a compare and an
    // increment, no bitmap.
    struct Stream {
        uint64_t next = 0;
        uint64_t ahead = 0;
        std::vector<bool> seen;
        uint64_t max_seen = 0;
        bool any = false;
    };

    // True if `seq` is new on `s`, false if it is a duplicate.
    static bool mark_seen(Stream& s, uint64_t seq) {
        if (seq < s.next) return false;
        if (seq == s.next && s.ahead == 0) {
            ++s.next;
            return true;
        }
        if (s.seen.size() <= seq) s.seen.resize(std::max<size_t>(size_t(seq) + 1, s.seen.size() * 2));
        if (s.seen[seq]) return false;
        s.seen[seq] = true;
        ++s.ahead;
        while (s.ahead && s.next < s.seen.size() && s.seen[s.next]) {
            s.seen[s.next++] = false;
            --s.ahead;
        }
        return true;
    }

    static void put_str(std::vector<uint8_t>& o, const std::string& s) {
        o.push_back(uint8_t(s.size() >> 8));
        o.push_back(uint8_t(s.size()));
        o.insert(o.end(), s.begin(), s.end());
    }

    static void frame(Client& c, uint8_t first, const std::vector<uint8_t>& body) {
        c.out.push_back(first);
        size_t len = body.size();
        do {
            uint8_t b = uint8_t(len & 0x7F);
            len >>= 7;
            c.out.push_back(len ? uint8_t(b | 0x80) : b);
        } while (len);
        c.out.insert(c.out.end(), body.begin(), body.end());
    }

    static void ack(Client& c, uint8_t first, uint16_t id) {
        uint8_t b[4] = {first, 2, uint8_t(id >> 8), uint8_t(id)};
        c.out.insert(c.out.end(), b, b + 4);
    }

    static size_t varint_len(const uint8_t* p, size_t n, uint32_t& v) {
        v = 0;
        for (size_t i = 0; i < n && i < 4; ++i) {
            v |= uint32_t(p[i] & 0x7F) << (7 * i);
            if (!(p[i] & 0x80)) return i + 1;
        }
        return 0;
    }

    bool handle(Client& c, uint8_t first, const uint8_t* p, uint32_t n, uint64_t now) {
        switch (first >> 4) {
        case 2:  // CONNACK
            if (n < 2 || p[1] != 0) return false;
            c.connacked = true;
            if (v5_ && n > 2) read_connack_props(c, p + 2, n - 2);
            return true;
        case 9:  // SUBACK
            c.subscribed = true;
            return true;
        case 3: return on_publish(c, first, p, n, now);
        case 4:  // PUBACK
        case 7:  // PUBCOMP
            if (c.inflight) --c.inflight;
            return true;
        case 5:  // PUBREC -> PUBREL
            if (n >= 2) ack(c, 0x62, uint16_t(p[0] << 8 | p[1]));
            return true;
        case 6:  // PUBREL -> PUBCOMP
            if (n >= 2) ack(c, 0x70, uint16_t(p[0] << 8 | p[1]));
            return true;
        case 14: return false;  // DISCONNECT
        default: return true;
        }
    }

    void read_connack_props(Client& c, const uint8_t* p, uint32_t n) {
        uint32_t len = 0;
        size_t k = varint_len(p, n, len);
        if (!k) return;
        const uint8_t* q = p + k;
        const uint8_t* end = q + std::min<uint32_t>(len, n - uint32_t(k));
        while (q < end) {
            uint8_t id = *q++;
            if (id == 0x21 && end - q >= 2) { c.server_receive_max = uint32_t(q[0] << 8 | q[1]); q += 2; }
            else if (id == 0x24 || id == 0x25 || id == 0x28 || id == 0x29 || id == 0x2A || id == 0x17 || id == 0x19) q += 1;
            else if (id == 0x13 || id == 0x22) q += 2;
            else if (id == 0x11 || id == 0x27) q += 4;
            else break;  // strings etc.: nothing more we need
        }
    }

    bool on_publish(Client& c, uint8_t first, const uint8_t* p, uint32_t n, uint64_t now) {
        int q = (first >> 1) & 3;
        if (n < 2) return false;
        size_t tlen = size_t(p[0] << 8 | p[1]);
        size_t off = 2 + tlen;
        uint16_t id = 0;
        if (q > 0) {
            if (off + 2 > n) return false;
            id = uint16_t(p[off] << 8 | p[off + 1]);
            off += 2;
        }
        if (v5_) {
            uint32_t plen = 0;
            size_t k = varint_len(p + off, n - off, plen);
            if (!k) return false;
            off += k + plen;
        }
        if (q == 1) ack(c, 0x40, id);
        if (q == 2) ack(c, 0x50, id);
        if (off + kStampSize > n) return true;  // not ours
        uint32_t pid;
        uint64_t seq, sent_at;
        std::memcpy(&pid, p + off, 4);
        std::memcpy(&seq, p + off + 4, 8);
        std::memcpy(&sent_at, p + off + 12, 8);
        if (int(pid) >= npub_ || c.sub_index < 0) return true;
        Stream& s = streams_[pairs_ ? size_t(c.sub_index) : size_t(c.sub_index) * size_t(npub_) + pid];
        if (!mark_seen(s, seq)) { ++duplicated_; return true; }
        if (measuring && now < window_end_ns) ++received_in_window;
        ++received_from_[pid];
        if (s.any && seq < s.max_seen) ++out_of_order_;
        s.max_seen = std::max(s.max_seen, seq);
        s.any = true;
        if (measuring && seq >= first_measured_[pid]) {
            ++received_;
            hist_.add((now - sent_at) / 1000);
        }
        return true;
    }

    int qos_, size_;
    bool v5_;
    int npub_ = 0, nsub_ = 0;
    bool pairs_ = false;
    uint64_t fan_ = 1;
    std::vector<Stream> streams_;
    std::vector<uint64_t> received_from_, first_measured_;
    uint64_t received_ = 0, duplicated_ = 0, out_of_order_ = 0;
    Histogram hist_;
    std::vector<uint8_t> scratch_;
};

}  // namespace hato::bench
