// A CONNECT whose authenticator answers later: the client's input waits, the
// verdict resumes it, a closed connection's verdict is dropped, and only a
// verified user name reaches the ACL.
#include <cstring>

#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// Answers nothing at once; the test gives the verdicts.
struct DeferredAuth final : Authenticator {
    struct Asked {
        ConnId conn;
        uint64_t id;
        std::optional<std::string> username;
        std::optional<std::string> identity;
    };
    std::vector<Asked> asked;
    std::vector<std::pair<ConnId, uint64_t>> cancelled;

    std::optional<AuthVerdict> start(const AuthRequest& r) override {
        auto copy = [](std::optional<std::string_view> v) {
            return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
        };
        asked.push_back({r.conn, r.id, copy(r.username), copy(r.identity)});
        return std::nullopt;
    }
    void cancel(ConnId conn, uint64_t id) override { cancelled.emplace_back(conn, id); }
};

// Records the user name each SUBSCRIBE is checked for; allows everything.
struct RecordingAuthz final : Authorizer {
    std::vector<std::optional<std::string>> users;
    bool can_publish(const ClientInfo&, std::string_view) override { return true; }
    bool can_receive(const ClientInfo&, std::string_view) override { return true; }
    bool can_subscribe(const ClientInfo& c, std::string_view) override {
        users.push_back(c.username ? std::optional<std::string>(std::string(*c.username)) : std::nullopt);
        return true;
    }
};

Connect connect_packet(std::string_view id, std::optional<std::string_view> user = std::nullopt) {
    Connect c;
    c.client_id = id;
    c.clean_start = true;
    c.username = user;
    return c;
}

std::vector<uint8_t> encoded(const Packet& p, Version v = Version::V311) {
    std::vector<uint8_t> out;
    if (auto* c = std::get_if<Connect>(&p)) {
        Connect copy = *c;
        copy.version = v;
        encode(Packet{copy}, v, out);
    } else {
        encode(p, v, out);
    }
    return out;
}

}  // namespace

TEST_CASE("a pending CONNECT holds the input that follows it until the verdict") {
    Harness h;
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);

    // CONNECT and PINGREQ in one read, then a SUBSCRIBE in the next.
    std::vector<uint8_t> bytes = encoded(connect_packet("a"));
    std::vector<uint8_t> ping = encoded(Pingreq{});
    bytes.insert(bytes.end(), ping.begin(), ping.end());
    a.send_raw(bytes);
    Subscribe sub;
    sub.packet_id = 1;
    sub.topics.push_back({"t", 1});
    a.send(sub);
    REQUIRE(auth.asked.size() == 1);
    CHECK(auth.asked[0].conn == a.id);
    CHECK(a.take().empty());
    CHECK(h.broker->stats().connections == 0);

    // Another client is served meanwhile.
    TestClient b(h, Version::V311);
    b.send(connect_packet("b"));
    REQUIRE(auth.asked.size() == 2);
    h.broker->on_auth_result(b.id, auth.asked[1].id, AuthVerdict{rc::Success, false});
    b.take_one<Connack>();

    h.broker->on_auth_result(a.id, auth.asked[0].id + 1000, AuthVerdict{rc::Success, false});   // stale id
    CHECK(a.take().empty());
    h.broker->on_auth_result(a.id, auth.asked[0].id, AuthVerdict{rc::Success, false});
    std::vector<Packet> got = a.take();
    REQUIRE(got.size() == 3);
    CHECK(std::get<Connack>(got[0]).reason == rc::Success);
    CHECK(std::holds_alternative<Pingresp>(got[1]));
    CHECK(std::holds_alternative<Suback>(got[2]));
    CHECK(h.broker->stats().connections == 2);
    CHECK(auth.asked.size() == 2);   // the CONNECT was not checked twice
    CHECK(auth.cancelled.empty());
}

TEST_CASE("a refusing verdict is answered and closes") {
    Harness h;
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V5);
    Connect c = connect_packet("a", "mallory");
    c.version = Version::V5;
    a.send(c);
    REQUIRE(auth.asked.size() == 1);
    CHECK(auth.asked[0].username == std::optional<std::string>("mallory"));
    h.broker->on_auth_result(a.id, auth.asked[0].id, AuthVerdict{rc::BadUserNameOrPassword, false});
    CHECK(a.take_one<Connack>().reason == rc::BadUserNameOrPassword);
    CHECK(a.closed());
    CHECK(h.broker->stats().connections == 0);
}

TEST_CASE("a connection that closes while its check runs: cancelled, the verdict is dropped") {
    Harness h;
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);
    a.send(connect_packet("a"));
    REQUIRE(auth.asked.size() == 1);
    h.broker->on_close(a.id);
    REQUIRE(auth.cancelled.size() == 1);
    CHECK(auth.cancelled[0] == std::make_pair(a.id, auth.asked[0].id));
    h.broker->on_auth_result(a.id, auth.asked[0].id, AuthVerdict{rc::Success, true});
    CHECK(a.take().empty());
    CHECK(h.broker->stats().connections == 0);
}

// A client that half-closes right after its CONNECT and PUBLISH (a script
// piping into a socket) while its password is checked: answered once the
// verdict comes, then closed (a review found the check cancelled and the
// CONNECT and PUBLISH dropped).
TEST_CASE("the peer's EOF while its check runs: the verdict still comes, the input is answered, then it closes") {
    Harness h;
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);
    std::vector<uint8_t> bytes = encoded(connect_packet("a"));
    Publish p;
    p.topic = "t";
    p.qos = 1;
    p.packet_id = 5;
    std::vector<uint8_t> pub = encoded(p);
    bytes.insert(bytes.end(), pub.begin(), pub.end());
    a.send_raw(bytes);
    REQUIRE(auth.asked.size() == 1);
    h.broker->on_peer_eof(a.id);
    CHECK(auth.cancelled.empty());
    CHECK_FALSE(a.closed());
    h.broker->on_auth_result(a.id, auth.asked[0].id, AuthVerdict{rc::Success, false});
    std::vector<Packet> got = a.take();
    REQUIRE(got.size() == 2);
    CHECK(std::get<Connack>(got[0]).reason == rc::Success);
    CHECK(std::get<Ack>(got[1]).packet_id == 5);
    CHECK(a.closed());
    CHECK(h.broker->stats().connections == 0);
}

TEST_CASE("the CONNECT deadline still applies while the check runs") {
    Config cfg;
    cfg.connect_timeout_ms = 1000;
    Harness h(cfg);
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);
    a.send(connect_packet("a"));
    h.broker->on_tick(1500);
    CHECK(a.closed());
    CHECK(auth.cancelled.size() == 1);
}

TEST_CASE("input held for a pending CONNECT is bounded") {
    Harness h;
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);
    a.send(connect_packet("a"));
    a.send_raw(std::vector<uint8_t>(40 * 1024, 0xC0));
    CHECK_FALSE(a.closed());
    a.send_raw(std::vector<uint8_t>(40 * 1024, 0xC0));
    CHECK(a.closed());
    REQUIRE(auth.cancelled.size() == 1);
}

TEST_CASE("only a verified user name reaches the ACL; the certificate identity goes to the authenticator") {
    Harness h;
    DeferredAuth auth;
    RecordingAuthz authz;
    h.broker->set_authenticator(&auth);
    h.broker->set_authorizer(&authz);
    Subscribe sub;
    sub.packet_id = 1;
    sub.topics.push_back({"private/x", 0});

    TestClient unverified(h, Version::V311), verified(h, Version::V311), cert(h, Version::V311);
    unverified.send(connect_packet("u", "admin"));
    verified.send(connect_packet("v", "admin"));
    h.broker->set_identity(cert.id, "sensor-1");
    cert.send(connect_packet("c", "admin"));
    REQUIRE(auth.asked.size() == 3);
    CHECK_FALSE(auth.asked[0].identity.has_value());
    CHECK(auth.asked[2].identity == std::optional<std::string>("sensor-1"));

    h.broker->on_auth_result(unverified.id, auth.asked[0].id, AuthVerdict{rc::Success, false});
    h.broker->on_auth_result(verified.id, auth.asked[1].id, AuthVerdict{rc::Success, true});
    h.broker->on_auth_result(cert.id, auth.asked[2].id, AuthVerdict{rc::Success, true});
    unverified.take_one<Connack>();
    verified.take_one<Connack>();
    cert.take_one<Connack>();
    unverified.send(sub);
    verified.send(sub);
    cert.send(sub);
    REQUIRE(authz.users.size() == 3);
    CHECK_FALSE(authz.users[0].has_value());
    CHECK(authz.users[1] == std::optional<std::string>("admin"));
    CHECK(authz.users[2] == std::optional<std::string>("sensor-1"));
}

TEST_CASE("a large PUBLISH that began behind a pending CONNECT is hinted for in-place receive by the verdict") {
    Config cfg;
    cfg.max_packet_size = 4 * 1024 * 1024;
    Harness h(cfg);
    DeferredAuth auth;
    h.broker->set_authenticator(&auth);
    TestClient a(h, Version::V311);
    // The CONNECT and the first 4 KiB of a 1 MiB PUBLISH in one read.
    std::vector<uint8_t> wire = encoded(connect_packet("a"));
    const std::string body(1024 * 1024, 'x');
    Publish p;
    p.topic = "big";
    p.payload = Bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size());
    std::vector<uint8_t> publish = encoded(p);
    wire.insert(wire.end(), publish.begin(), publish.begin() + 4096);
    a.send_raw(wire);
    REQUIRE(auth.asked.size() == 1);
    // The input waits for the verdict: nothing to receive in place yet.
    CHECK(h.transport.in_place_hints.count(a.id) == 0);
    CHECK(!h.broker->wants_in_place(a.id));

    h.broker->on_auth_result(a.id, auth.asked[0].id, AuthVerdict{rc::Success, false});
    CHECK(a.take_one<Connack>().reason == rc::Success);
    CHECK(h.transport.in_place_hints[a.id] == 1);
    CHECK(h.broker->wants_in_place(a.id));
    std::span<uint8_t> target = h.broker->receive_target(a.id, 2 * 1024 * 1024);
    REQUIRE(target.size() == publish.size() - 4096);
    std::memcpy(target.data(), publish.data() + 4096, target.size());
    h.broker->on_received_in_place(a.id, target.size());
    CHECK(!h.broker->wants_in_place(a.id));

    // A refused CONNECT gives no hint, whatever followed it.
    TestClient b(h, Version::V311);
    std::vector<uint8_t> wire_b = encoded(connect_packet("b"));
    wire_b.insert(wire_b.end(), publish.begin(), publish.begin() + 4096);
    b.send_raw(wire_b);
    REQUIRE(auth.asked.size() == 2);
    h.broker->on_auth_result(b.id, auth.asked[1].id, AuthVerdict{rc::NotAuthorized, false});
    CHECK(b.closed());
    CHECK(h.transport.in_place_hints.count(b.id) == 0);
}
