// Transport routing (app/transport_stack.hpp) on a fake reactor: which layers
// a connection's bytes pass through, both ways, per listener protocol.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "../../certs/test_certs.hpp"
#include "app/bridge_runner.hpp"
#include "app/transport_stack.hpp"
#include "net/tls.hpp"

using namespace hato;
using namespace hato::app;

namespace {

class FakeReactor final : public net::Reactor {
public:
    const char* name() const override { return "fake"; }
    bool listen(const std::string&, uint16_t, std::string&) override { return true; }
    uint16_t bound_port(int) const override { return 0; }
    void send(net::ConnId id, std::span<const uint8_t> d) override { sent[id].append(d.begin(), d.end()); }
    void send_low_priority(net::ConnId id, std::span<const uint8_t> d) override {
        low[id].append(d.begin(), d.end());
    }
    size_t queued_bytes(net::ConnId) const override { return 42; }
    void close(net::ConnId id, bool flush) override { closed[id] = flush; }
    void set_max_lingering(size_t) override {}
    void set_reading(net::ConnId id, bool on) override { reading[id] = on; }
    void watch_readable(int, std::function<void()>) override {}
    void fsync_async(int, std::function<void(int)> done) override { done(0); }
    void set_tick_interval(uint32_t) override {}
    uint64_t now_ms() const override { return 1000; }
    void close_listeners() override {}
    void run(net::Handler&) override {}
    void stop() override {}
    uint64_t connection_count() const override { return 0; }
    void send_kept(net::ConnId id, Kept k) override {
        kept[id].append(k.bytes.begin(), k.bytes.end());
        k.release(k.obj);
    }
    void expect_in_place(net::ConnId id) override { ++in_place_hints[id]; }

    std::map<net::ConnId, std::string> sent, low, kept;
    std::map<net::ConnId, bool> closed, reading;
    std::map<net::ConnId, int> in_place_hints;
};

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Listener 0 plain MQTT, listener 1 WebSockets.
config::AppConfig two_listeners() {
    config::AppConfig cfg;
    cfg.listeners.resize(2);
    cfg.listeners[1].protocol = config::ListenerProtocol::WebSockets;
    cfg.listeners[1].path = "/mqtt";
    return cfg;
}

const std::string kUpgrade =
    "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n";

}  // namespace

TEST_CASE("a plain connection: bytes pass untouched both ways, closes flush") {
    FakeReactor r;
    TransportStack stack(r);
    stack.configure_ws(two_listeners());
    stack.on_open(1, 0, "127.0.0.1:5000");
    std::span<const uint8_t> in = bytes("\xc0");
    std::optional<std::string> identity;
    CHECK(stack.unwrap(1, in, identity));
    CHECK(in.size() == 1);
    CHECK_FALSE(identity);
    stack.transport().send(1, bytes("ab"));
    stack.transport().send_low_priority(1, bytes("cd"));
    CHECK(r.sent[1] == "ab");
    CHECK(r.low[1] == "cd");
    CHECK(stack.transport().queued_bytes(1) == 42);
    stack.transport().set_reading(1, false);
    CHECK(r.reading[1] == false);
    stack.transport().close(1);
    CHECK(r.closed[1] == true);
}

TEST_CASE("a WebSocket connection: the upgrade is answered, frames carry the MQTT bytes") {
    FakeReactor r;
    TransportStack stack(r);
    stack.configure_ws(two_listeners());
    stack.on_open(2, 1, "127.0.0.1:5001");
    std::span<const uint8_t> in = bytes(kUpgrade);
    std::optional<std::string> identity;
    CHECK_FALSE(stack.unwrap(2, in, identity));   // the request carries no MQTT bytes
    CHECK(r.sent[2].rfind("HTTP/1.1 101", 0) == 0);
    // A masked binary frame holding PINGREQ (c0 00), mask 0.
    const std::string frame("\x82\x82\x00\x00\x00\x00\xc0\x00", 8);
    in = bytes(frame);
    REQUIRE(stack.unwrap(2, in, identity));
    CHECK(std::string(in.begin(), in.end()) == std::string("\xc0\x00", 2));
    r.sent[2].clear();
    stack.transport().send(2, bytes(std::string("\xd0\x00", 2)));   // PINGRESP as one binary frame
    CHECK(r.sent[2] == std::string("\x82\x02\xd0\x00", 4));
    stack.on_close(2);
    r.sent[2].clear();
    stack.transport().send(2, bytes("x"));   // no longer WebSocket: goes straight down
    CHECK(r.sent[2] == "x");
}

// A reload (SIGHUP) configures the layer again. Connections made before it
// keep the rules they were accepted under, and stay WebSocket until they
// close, even when no WebSocket listener is left. (The pending upgrade held a
// pointer into the replaced table: ASan saw a use after free.)
TEST_CASE("a reload keeps a pending upgrade's rules and an upgraded connection's framing") {
    FakeReactor r;
    TransportStack stack(r);
    stack.configure_ws(two_listeners());
    stack.on_open(2, 1, "127.0.0.1:5001");   // upgraded before the reload
    stack.on_open(3, 1, "127.0.0.1:5002");   // upgrade still pending at the reload
    std::span<const uint8_t> in = bytes(kUpgrade);
    std::optional<std::string> identity;
    CHECK_FALSE(stack.unwrap(2, in, identity));
    const std::string head = kUpgrade.substr(0, 40), rest = kUpgrade.substr(40);
    in = bytes(head);
    CHECK_FALSE(stack.unwrap(3, in, identity));
    CHECK(r.sent[3].empty());

    config::AppConfig plain = two_listeners();   // the same port, now plain MQTT
    plain.listeners[1].protocol = config::ListenerProtocol::Mqtt;
    stack.configure_ws(plain);

    in = bytes(rest);
    CHECK_FALSE(stack.unwrap(3, in, identity));
    CHECK(r.sent[3].rfind("HTTP/1.1 101", 0) == 0);   // under the rules it began with
    const std::string frame("\x82\x82\x00\x00\x00\x00\xc0\x00", 8);
    for (net::ConnId id : {net::ConnId(2), net::ConnId(3)}) {
        CAPTURE(id);
        in = bytes(frame);
        REQUIRE(stack.unwrap(id, in, identity));
        CHECK(std::string(in.begin(), in.end()) == std::string("\xc0\x00", 2));
        r.sent[id].clear();
        stack.transport().send(id, bytes(std::string("\xd0\x00", 2)));
        CHECK(r.sent[id] == std::string("\x82\x02\xd0\x00", 4));
    }
    stack.on_open(4, 1, "127.0.0.1:5003");   // new connections follow the new table
    in = bytes(std::string("\xc0\x00", 2));
    REQUIRE(stack.unwrap(4, in, identity));
    CHECK(in.size() == 2);
}

TEST_CASE("the bridges' local connections never reach the reactor") {
    FakeReactor r;
    TransportStack stack(r);
    const net::ConnId local = BridgeRunner::kLocalBit | 5;
    std::string to_bridge;
    bool bridge_closed = false;
    stack.transport().bridges = {[&](net::ConnId, std::span<const uint8_t> b) { to_bridge.append(b.begin(), b.end()); },
                                 [&](net::ConnId) { bridge_closed = true; },
                                 [&](net::ConnId) { return to_bridge.size() + 1000; }};
    stack.transport().send(local, bytes("pub"));
    stack.transport().close(local);
    CHECK(to_bridge == "pub");
    CHECK(bridge_closed);
    CHECK(r.sent.empty());
    CHECK(r.closed.empty());
    // What the bridge has not got upstream yet, not the reactor's count.
    CHECK(stack.transport().queued_bytes(local) == 1003);
    stack.transport().set_reading(local, false);
    CHECK(r.reading.empty());
}

TEST_CASE("only a plain TCP connection's bytes go in place or leave from the message") {
    FakeReactor r;
    TransportStack stack(r);
    stack.configure_ws(two_listeners());
    stack.on_open(1, 0, "127.0.0.1:5000");   // plain
    stack.on_open(2, 1, "127.0.0.1:5001");   // WebSocket
    std::span<const uint8_t> in = bytes(kUpgrade);
    std::optional<std::string> identity;
    CHECK_FALSE(stack.unwrap(2, in, identity));
    r.sent.clear();
    const net::ConnId local = BridgeRunner::kLocalBit | 5;
    std::string to_bridge;
    stack.transport().bridges = {[&](net::ConnId, std::span<const uint8_t> b) { to_bridge.append(b.begin(), b.end()); },
                                 [&](net::ConnId) {}, [](net::ConnId) { return size_t(0); }};

    for (net::ConnId id : {net::ConnId(1), net::ConnId(2), local}) stack.transport().expect_in_place(id);
    CHECK(r.in_place_hints == std::map<net::ConnId, int>{{1, 1}});

    int released = 0;
    auto release = [](void* n) { ++*static_cast<int*>(n); };
    for (net::ConnId id : {net::ConnId(1), net::ConnId(2), local})
        stack.transport().send_kept(id, bytes("payload"), &released, release);
    CHECK(released == 3);   // once each, whichever way the bytes went
    CHECK(r.kept == std::map<net::ConnId, std::string>{{1, "payload"}});
    CHECK(r.sent[2] == std::string("\x82\x07payload", 9));   // copied into a frame
    CHECK(to_bridge == "payload");
}

TEST_CASE("a TLS connection's bytes never go in place or leave from the message unencrypted") {
    FakeReactor r;
    TransportStack stack(r);
    std::string err;
    net::TlsSettings server;
    server.cert = test_cert_dir() + "/server.crt";
    server.key = test_cert_dir() + "/server.key";
    auto server_ctx = net::TlsContext::create(server, err);
    REQUIRE_MESSAGE(server_ctx, err);
    stack.tls().set_contexts({nullptr, server_ctx});   // listener 1 is TLS
    stack.on_open(3, 1, "127.0.0.1:5002");
    net::TlsClientSettings client_settings;
    client_settings.ca = test_cert_dir() + "/ca.crt";
    auto client_ctx = net::TlsContext::create_client(client_settings, err);
    REQUIRE_MESSAGE(client_ctx, err);
    net::TlsConn client(client_ctx, "localhost");
    REQUIRE(client.start() == net::TlsConn::Status::Ok);

    // The handshake, through the stack: the server's records reach the fake
    // reactor's send queue.
    std::vector<uint8_t> from_server;
    for (int round = 0; round < 20; ++round) {
        std::vector<uint8_t> to_server;
        to_server.swap(client.output());
        if (!to_server.empty()) {
            std::span<const uint8_t> in(to_server);
            std::optional<std::string> identity;
            stack.unwrap(3, in, identity);
        }
        std::string records;
        records.swap(r.sent[3]);
        if (!records.empty()) REQUIRE(client.on_ciphertext(bytes(records), from_server) == net::TlsConn::Status::Ok);
        if (to_server.empty() && records.empty()) break;
    }
    REQUIRE(client.handshake_done());
    CHECK(from_server.empty());

    stack.transport().expect_in_place(3);
    CHECK(r.in_place_hints.empty());
    int released = 0;
    stack.transport().send_kept(3, bytes("payload"), &released, [](void* n) { ++*static_cast<int*>(n); });
    CHECK(released == 1);
    CHECK(r.kept.empty());
    const std::string wire = r.sent[3];
    CHECK(wire.find("payload") == std::string::npos);   // encrypted before it reached the reactor
    REQUIRE(client.on_ciphertext(bytes(wire), from_server) == net::TlsConn::Status::Ok);
    CHECK(std::string(from_server.begin(), from_server.end()) == "payload");

    // The client's last records and its close_notify in one read (a PUBLISH
    // and a DISCONNECT, then SSL_shutdown): the broker still gets the bytes
    // (dropped, the DISCONNECT was lost and the will published).
    REQUIRE(client.write(bytes("last words")) == net::TlsConn::Status::Ok);
    client.shutdown();
    std::vector<uint8_t> tail;
    tail.swap(client.output());
    std::span<const uint8_t> in(tail);
    std::optional<std::string> identity;
    REQUIRE(stack.unwrap(3, in, identity));
    CHECK(std::string(in.begin(), in.end()) == "last words");
    CHECK(r.closed.count(3) == 1);   // and the connection closes
}
