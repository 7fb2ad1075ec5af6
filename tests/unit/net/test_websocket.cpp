// The WebSocket codec: the upgrade request and the client frame stream.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "net/websocket.hpp"

using namespace hato::net::ws;

namespace {

using Bytes = std::vector<uint8_t>;

// A client frame: masked unless told otherwise, FIN unless told otherwise.
Bytes frame(uint8_t opcode, const Bytes& payload, bool fin = true, bool masked = true, uint8_t rsv = 0) {
    Bytes f;
    f.push_back(uint8_t((fin ? 0x80 : 0) | rsv | opcode));
    uint8_t m = masked ? 0x80 : 0;
    size_t n = payload.size();
    if (n < 126) {
        f.push_back(uint8_t(m | n));
    } else if (n <= 0xFFFF) {
        f.push_back(uint8_t(m | 126));
        f.push_back(uint8_t(n >> 8));
        f.push_back(uint8_t(n));
    } else {
        f.push_back(uint8_t(m | 127));
        for (int s = 56; s >= 0; s -= 8) f.push_back(uint8_t(uint64_t(n) >> s));
    }
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) f.insert(f.end(), mask, mask + 4);
    for (size_t i = 0; i < n; ++i) f.push_back(masked ? uint8_t(payload[i] ^ mask[i & 3]) : payload[i]);
    return f;
}

Bytes bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// The close code of a server close frame in `reply` (its first frame).
int close_code_of(const Bytes& reply) {
    if (reply.size() < 4 || reply[0] != 0x88) return -1;
    return (reply[2] << 8) | reply[3];
}

struct Run {
    FrameReader::Status status;
    Bytes payload;
    Bytes reply;
};

Run feed(const Bytes& in, size_t chunk = 0) {
    FrameReader r;
    Run out{FrameReader::Status::Open, {}, {}};
    if (chunk == 0) chunk = in.size() ? in.size() : 1;
    for (size_t i = 0; i < in.size(); i += chunk) {
        size_t n = std::min(chunk, in.size() - i);
        out.status = r.feed(std::span<const uint8_t>(in.data() + i, n), out.payload, out.reply);
    }
    return out;
}

const Bytes kConnect = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00};
const Bytes kPingreq = {0xc0, 0x00};

std::string request(const std::string& extra = "", const std::string& target = "/mqtt") {
    return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: mqtt\r\n" + extra + "\r\n";
}

}  // namespace

// RFC 6455 section 1.3 (and 4.2.2): base64(SHA-1(key + GUID)).
TEST_CASE("the Accept key of RFC 6455's example") {
    CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("a valid upgrade is accepted with 101, the Accept key and the mqtt subprotocol") {
    std::string req = request();
    Upgrade u = parse_upgrade(req + "\x82", UpgradeRules{});
    REQUIRE(u.status == Upgrade::Status::Accepted);
    CHECK(u.consumed == req.size());
    CHECK(u.http_status == 101);
    CHECK(u.subprotocol == "mqtt");
    CHECK(u.response.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(u.response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(u.response.find("Sec-WebSocket-Protocol: mqtt\r\n") != std::string::npos);
}

TEST_CASE("the upgrade is incomplete until the blank line, and refused beyond 8 KiB") {
    std::string req = request();
    for (size_t n = 0; n < req.size(); ++n)
        CHECK(parse_upgrade(req.substr(0, n), UpgradeRules{}).status == Upgrade::Status::Incomplete);
    std::string big = "GET /mqtt HTTP/1.1\r\nX-Pad: " + std::string(kMaxHandshakeBytes, 'a');
    Upgrade u = parse_upgrade(big, UpgradeRules{});
    CHECK(u.status == Upgrade::Status::Rejected);
    CHECK(u.http_status == 431);
    CHECK(parse_upgrade(request("X-Pad: " + std::string(kMaxHandshakeBytes, 'a') + "\r\n"), UpgradeRules{}).http_status == 431);
}

TEST_CASE("subprotocols: a comma-separated list over several headers must offer mqtt") {
    Upgrade u = parse_upgrade(request("Sec-WebSocket-Protocol: chat, mqttv3.1\r\nSec-WebSocket-Protocol: x, mqtt\r\n"),
                              UpgradeRules{});
    REQUIRE(u.status == Upgrade::Status::Accepted);
    CHECK(u.subprotocol == "mqtt");

    std::string only31 = "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                         "sec-websocket-protocol: mqttv3.1\r\n\r\n";
    u = parse_upgrade(only31, UpgradeRules{});
    REQUIRE(u.status == Upgrade::Status::Accepted);
    CHECK(u.subprotocol == "mqttv3.1");

    std::string none = "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: chat\r\n\r\n";
    CHECK(parse_upgrade(none, UpgradeRules{}).http_status == 400);
}

TEST_CASE("bad upgrades get the right HTTP status") {
    UpgradeRules rules;
    CHECK(parse_upgrade(request("", "/other"), rules).http_status == 404);
    CHECK(parse_upgrade(request("", "/mqtt?x=1"), rules).status == Upgrade::Status::Accepted);
    UpgradeRules any;
    any.path = "";
    CHECK(parse_upgrade(request("", "/other"), any).status == Upgrade::Status::Accepted);

    std::string post = request();
    post.replace(0, 3, "POST");
    CHECK(parse_upgrade(post, rules).http_status == 405);
    std::string v10 = request();
    v10.replace(v10.find("HTTP/1.1"), 8, "HTTP/1.0");
    CHECK(parse_upgrade(v10, rules).http_status == 400);
    std::string v8 = request();
    v8.replace(v8.find("Version: 13"), 11, "Version: 8");
    Upgrade u = parse_upgrade(v8, rules);
    CHECK(u.http_status == 426);
    CHECK(u.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
    std::string badkey = request();
    badkey.replace(badkey.find("dGhl"), 4, "d!hl");
    CHECK(parse_upgrade(badkey, rules).http_status == 400);
    std::string noupgrade = request();
    noupgrade.replace(noupgrade.find("Upgrade: websocket"), 18, "Upgrade: h2c");
    CHECK(parse_upgrade(noupgrade, rules).http_status == 400);
    CHECK(parse_upgrade(std::string(kConnect.begin(), kConnect.end()), rules).http_status == 400);
    CHECK(parse_upgrade(request(" folded\r\n"), rules).http_status == 400);
}

TEST_CASE("allowed origins: empty accepts any; otherwise the Origin must match one, else 403") {
    UpgradeRules rules;
    CHECK(parse_upgrade(request("Origin: http://evil.example\r\n"), rules).status == Upgrade::Status::Accepted);
    rules.allowed_origins = {"http://hmi.plant", "https://hmi.plant"};
    CHECK(parse_upgrade(request("Origin: https://HMI.plant\r\n"), rules).status == Upgrade::Status::Accepted);
    CHECK(parse_upgrade(request("Origin: http://evil.example\r\n"), rules).http_status == 403);
    CHECK(parse_upgrade(request(), rules).http_status == 403);
}

TEST_CASE("X-Forwarded-For is handed up as sent") {
    Upgrade u = parse_upgrade(request("X-Forwarded-For: 10.0.0.7\r\n"), UpgradeRules{});
    CHECK(u.forwarded_for == "10.0.0.7");
}

TEST_CASE("masked binary frames carry the MQTT stream; several packets in one frame") {
    Run r = feed(frame(2, cat({kConnect, kPingreq})));
    CHECK(r.status == FrameReader::Status::Open);
    CHECK(r.payload == cat({kConnect, kPingreq}));
    CHECK(r.reply.empty());
}

TEST_CASE("a packet split across frames and a fragmented message, fed byte by byte") {
    Bytes a(kConnect.begin(), kConnect.begin() + 5), b(kConnect.begin() + 5, kConnect.end());
    Bytes in = cat({frame(2, a), frame(2, b), frame(2, a, false), frame(0, {}, false), frame(0, b, true)});
    for (size_t chunk : {size_t(1), size_t(3), in.size()}) {
        Run r = feed(in, chunk);
        CHECK(r.status == FrameReader::Status::Open);
        CHECK(r.payload == cat({kConnect, kConnect}));
    }
}

TEST_CASE("lengths with 16 and 64 bit encodings") {
    Bytes big(70000, 0x5a);
    Run r = feed(cat({frame(2, Bytes(300, 1)), frame(2, big)}), 4096);
    CHECK(r.status == FrameReader::Status::Open);
    CHECK(r.payload.size() == 70300);
    CHECK(r.payload.back() == 0x5a);
}

TEST_CASE("with pongs off (the client's output backed up) pings are read and not answered; on again, answered") {
    FrameReader r;
    Bytes payload, reply;
    r.answer_pings(false);
    CHECK(r.feed(cat({frame(9, bytes("a")), frame(2, kPingreq), frame(9, bytes("b"))}), payload, reply) ==
          FrameReader::Status::Open);
    CHECK(payload == kPingreq);
    CHECK(reply.empty());
    r.answer_pings(true);
    CHECK(r.feed(frame(9, bytes("c")), payload, reply) == FrameReader::Status::Open);
    CHECK(reply == Bytes{0x8a, 1, 'c'});
}

TEST_CASE("ping is answered with a pong carrying its payload, also between fragments") {
    Bytes in = cat({frame(2, {1, 2}, false), frame(9, bytes("hi")), frame(10, bytes("x")), frame(0, {3}, true)});
    Run r = feed(in);
    CHECK(r.status == FrameReader::Status::Open);
    CHECK(r.payload == Bytes{1, 2, 3});
    CHECK(r.reply == Bytes{0x8a, 2, 'h', 'i'});
}

TEST_CASE("the close handshake: the peer's code is echoed") {
    Run r = feed(cat({frame(2, kPingreq), frame(8, {0x03, 0xe8, 'b', 'y', 'e'}), frame(2, kPingreq)}));
    CHECK(r.status == FrameReader::Status::PeerClosed);
    CHECK(r.payload == kPingreq);  // nothing after the close frame
    CHECK(close_code_of(r.reply) == 1000);
    Run empty = feed(frame(8, {}));
    CHECK(empty.status == FrameReader::Status::PeerClosed);
    CHECK(empty.reply == Bytes{0x88, 0});
}

TEST_CASE("bad close frames: 1 byte, invalid code, reason not UTF-8") {
    CHECK(close_code_of(feed(frame(8, {0x03})).reply) == 1002);
    CHECK(close_code_of(feed(frame(8, {0x03, 0xed})).reply) == 1002);   // 1005 is never sent
    CHECK(close_code_of(feed(frame(8, {0x03, 0xe8, 0xff})).reply) == 1007);
}

TEST_CASE("protocol errors close with the right code") {
    FrameReader r;
    Bytes payload, reply;
    SUBCASE("unmasked frame: 1002") {
        CHECK(feed(frame(2, kPingreq, true, false)).status == FrameReader::Status::Failed);
        CHECK(close_code_of(feed(frame(2, kPingreq, true, false)).reply) == 1002);
    }
    SUBCASE("text frame: 1003") { CHECK(close_code_of(feed(frame(1, bytes("hello"))).reply) == 1003); }
    SUBCASE("reserved bits: 1002") {
        for (uint8_t rsv : {0x40, 0x20, 0x10}) CHECK(close_code_of(feed(frame(2, kPingreq, true, true, rsv)).reply) == 1002);
    }
    SUBCASE("unknown opcodes: 1002") {
        for (uint8_t op : {3, 7, 11, 15}) CHECK(close_code_of(feed(frame(op, {})).reply) == 1002);
    }
    SUBCASE("fragmented or long control frames: 1002") {
        CHECK(close_code_of(feed(frame(9, {}, false)).reply) == 1002);
        CHECK(close_code_of(feed(frame(9, Bytes(126, 0))).reply) == 1002);
    }
    SUBCASE("continuation without a message, message inside a message: 1002") {
        CHECK(close_code_of(feed(frame(0, {1})).reply) == 1002);
        CHECK(close_code_of(feed(cat({frame(2, {1}, false), frame(2, {2})})).reply) == 1002);
    }
    SUBCASE("no size bound: a long frame or fragmented message is a stream (MQTT-6.0.0-2)") {
        Run run = feed(frame(2, Bytes(3 << 20, 7)));
        CHECK(run.status == FrameReader::Status::Open);
        CHECK(run.payload.size() == size_t(3) << 20);
        run = feed(cat({frame(2, Bytes(2 << 20, 1), false), frame(0, Bytes(2 << 20, 2))}));
        CHECK(run.status == FrameReader::Status::Open);
        CHECK(run.payload.size() == size_t(4) << 20);
    }
    SUBCASE("after a failure nothing more is read") {
        CHECK(r.feed(frame(1, {}), payload, reply) == FrameReader::Status::Failed);
        reply.clear();
        CHECK(r.feed(frame(2, kPingreq), payload, reply) == FrameReader::Status::Failed);
        CHECK(payload.empty());
        CHECK(reply.empty());
        CHECK(r.close_code() == 1003);
    }
}

TEST_CASE("server frames are unmasked with minimal length encodings") {
    Bytes out;
    encode_frame(Opcode::Binary, kPingreq, out);
    CHECK(out == Bytes{0x82, 2, 0xc0, 0x00});
    out.clear();
    encode_frame(Opcode::Binary, Bytes(300, 0), out);
    CHECK(out.size() == 304);
    CHECK(out[1] == 126);
    out.clear();
    encode_frame(Opcode::Binary, Bytes(70000, 0), out);
    CHECK(out.size() == 70010);
    CHECK(out[1] == 127);
    out.clear();
    encode_close(1009, "too big", out);
    CHECK(close_code_of(out) == 1009);
    CHECK(out[1] == 9);
}

TEST_CASE("a 64-bit length with the top bit set is a protocol error") {
    Bytes f = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    CHECK(close_code_of(feed(f).reply) == 1002);
}

TEST_CASE("arbitrary bytes never crash, and any split gives the same result") {
    uint32_t seed = 12345;
    auto rnd = [&] { return seed = seed * 1103515245u + 12345u, uint8_t(seed >> 16); };
    for (int round = 0; round < 300; ++round) {
        Bytes in;
        // Mostly well-formed masked binary frames, with random bytes mixed in.
        for (int k = 0; k < 4; ++k) {
            if (rnd() % 4 == 0) {
                for (int j = rnd() % 20; j > 0; --j) in.push_back(rnd());
            } else {
                Bytes p(rnd() % 200);
                for (uint8_t& b : p) b = rnd();
                Bytes f = frame(uint8_t(rnd() % 3 == 0 ? 9 : 2), p.size() > 125 && rnd() % 2 ? Bytes(3, 1) : p);
                in.insert(in.end(), f.begin(), f.end());
            }
        }
        Run whole = feed(in);
        Run bytewise = feed(in, 1);
        CHECK(whole.status == bytewise.status);
        CHECK(whole.payload == bytewise.payload);
        CHECK(whole.reply == bytewise.reply);
    }
}
