// Access rights at delivery time: queued and in-flight messages are checked
// against the session owner's rights when they are sent, a persistent session
// belongs to the user that created it, shared groups pick a member that may
// read the message, and a session's owner and its deliveries' subscription
// identifiers come back after a restart.
#include <chrono>
#include <map>

#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// Read rights by user: a user may read a topic that starts with one of its
// prefixes ("" = anonymous). Publishing and subscribing are always allowed.
struct FakeAuthorizer final : Authorizer {
    std::map<std::string, std::vector<std::string>> readable;
    std::vector<std::string> asked;   // "user topic" per can_receive call

    bool can_publish(const ClientInfo&, std::string_view) override { return true; }
    bool can_subscribe(const ClientInfo&, std::string_view) override { return true; }
    bool can_receive(const ClientInfo& c, std::string_view topic) override {
        const std::string user(c.username.value_or(""));
        asked.push_back(user + " " + std::string(topic));
        auto it = readable.find(user);
        if (it == readable.end()) return false;
        for (const std::string& prefix : it->second)
            if (topic.substr(0, prefix.size()) == prefix) return true;
        return false;
    }
};

Connect login(std::string_view client_id, std::optional<std::string_view> user, bool clean,
              uint32_t expiry = 0xFFFFFFFF) {
    Connect c;
    c.client_id = client_id;
    c.username = user;
    c.clean_start = clean;
    c.props.session_expiry = expiry;
    return c;
}

struct RightsHarness : Harness {
    FakeAuthorizer authz;
    explicit RightsHarness(Config c = Config{}) : Harness(c) {
        authz.readable["alice"] = {"secret/", "public/"};
        authz.readable["bob"] = {"public/"};
        authz.readable["worker"] = {"plant1/tasks", "public/tasks"};
        authz.readable["mallory"] = {"public/tasks"};
        authz.readable[""] = {"public/"};
        broker->set_authorizer(&authz);
    }
};

// alice subscribes to secret/# with a persistent session and goes offline;
// three QoS 1 messages are queued for her.
void alice_offline_with_queue(RightsHarness& h, Version v) {
    TestClient alice(h, v);
    // Not clean: a v3.1.1 session persists only then.
    CHECK(alice.connect_with(login("alice-dev", "alice", false)).reason == rc::Success);
    alice.subscribe("secret/#", 1);
    alice.disconnect();
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    for (int i = 0; i < 3; ++i) pub.publish("secret/plan", "m" + std::to_string(i), 1);
    pub.take();
}

}  // namespace

TEST_CASE("rights: another user's CONNECT for a persistent session is refused") {
    for (Version v : {Version::V5, Version::V311}) {
        RightsHarness h;
        alice_offline_with_queue(h, v);
        TestClient bob(h, v);
        Connack ack = bob.connect_with(login("alice-dev", "bob", false));
        CHECK(ack.reason == rc::NotAuthorized);   // encoded 0x87 (v5) / 0x05 (v3)
        CHECK(!ack.session_present);
        CHECK(bob.closed());
        // An anonymous client is another user too.
        TestClient anon(h, v);
        CHECK(anon.connect_with(login("alice-dev", std::nullopt, true)).reason == rc::NotAuthorized);
        // alice still gets her three messages.
        TestClient alice(h, v);
        Connack back = alice.connect_with(login("alice-dev", "alice", false));
        CHECK(back.reason == rc::Success);
        CHECK(back.session_present);
        CHECK(alice.extra().size() == 3);
    }
}

TEST_CASE("rights: refusal also keeps a connected owner connected") {
    RightsHarness h;
    TestClient alice(h, Version::V5);
    alice.connect_with(login("alice-dev", "alice", true));
    TestClient bob(h, Version::V5);
    CHECK(bob.connect_with(login("alice-dev", "bob", true)).reason == rc::NotAuthorized);
    CHECK(!alice.closed());
}

TEST_CASE("rights: with allow_session_takeover_by_other_user the old session is discarded") {
    Config cfg;
    cfg.allow_session_takeover_by_other_user = true;
    RightsHarness h(cfg);
    alice_offline_with_queue(h, Version::V5);
    TestClient bob(h, Version::V5);
    Connack ack = bob.connect_with(login("alice-dev", "bob", false));
    CHECK(ack.reason == rc::Success);
    CHECK(!ack.session_present);
    CHECK(bob.extra().empty());
    CHECK(h.persist.count("session_remove alice-dev") == 1);
    // alice's subscription went with her session.
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("secret/plan", "later", 1);
    CHECK(bob.take().empty());
    // The session is bob's now: alice is the other user.
    h.persist.calls.clear();
    bob.disconnect();
    CHECK(h.persist.count("session_put alice-dev 4294967295 offline owner=2:bob") == 1);
}

TEST_CASE("rights: the same user resumes; owner and source are written with the session") {
    RightsHarness h;
    TestClient a(h, Version::V5);
    a.connect_with(login("dev", "alice", true));
    CHECK(h.persist.count("session_put dev 4294967295 online owner=2:alice") == 1);
    a.disconnect();
    TestClient b(h, Version::V5);
    CHECK(b.connect_with(login("dev", "alice", false)).session_present);
    TestClient anon(h, Version::V5);
    anon.connect_with(login("anon-dev", std::nullopt, true));
    CHECK(h.persist.count("session_put anon-dev 4294967295 online owner=1:") == 1);
}

TEST_CASE("rights: queued messages are checked again when sent") {
    RightsHarness h;
    alice_offline_with_queue(h, Version::V5);
    h.authz.readable["alice"] = {"public/"};   // rules reloaded while she was away
    h.persist.calls.clear();
    TestClient alice(h, Version::V5);
    alice.connect_with(login("alice-dev", "alice", false));
    CHECK(alice.extra().empty());
    CHECK(h.broker->stats().unreadable_dropped == 3);
    CHECK(h.persist.count("out_done alice-dev") == 3);
}

TEST_CASE("rights: in-flight messages are checked again before a resend") {
    RightsHarness h;
    TestClient alice(h, Version::V5);
    alice.connect_with(login("alice-dev", "alice", true));
    alice.subscribe("secret/#", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("secret/plan", "x", 1);
    CHECK(alice.publishes().size() == 1);   // sent, never acknowledged
    alice.transport_gone();
    h.authz.readable["alice"] = {"public/"};
    h.persist.calls.clear();
    TestClient again(h, Version::V5);
    again.connect_with(login("alice-dev", "alice", false));
    CHECK(again.extra().empty());
    CHECK(h.broker->stats().unreadable_dropped == 1);
    CHECK(h.persist.count("out_done alice-dev") == 1);
    // The session goes on working for what she may read.
    again.subscribe("public/#", 1, 2);
    pub.publish("public/news", "n", 1);
    CHECK(again.publishes().size() == 1);
}

TEST_CASE("rights: a recovered session keeps its owner, its queue and its subscription ids") {
    RightsHarness h;
    RecoveredSession rs;
    rs.client_id = "alice-dev";
    rs.expiry_s = 0xFFFFFFFF;
    rs.owner_source = OwnerSource::Password;
    rs.username = "alice";
    rs.subs.push_back({"secret/#", 1, 7});
    RecoveredOut ro;
    ro.seq = 1;
    ro.msg.topic = "secret/plan";
    ro.msg.payload = {'p'};
    ro.msg.qos = 1;
    ro.msg.sub_ids = {7, 9};
    rs.out.push_back(ro);
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();

    // Still alice's: bob is refused.
    TestClient bob(h, Version::V5);
    CHECK(bob.connect_with(login("alice-dev", "bob", false)).reason == rc::NotAuthorized);
    // A message published now is queued under alice's rights (not anonymous ones).
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("secret/next", "n", 1);
    TestClient alice(h, Version::V5);
    alice.connect_with(login("alice-dev", "alice", false));
    auto got = alice.extra();
    REQUIRE(got.size() == 2);
    const Publish& first = std::get<Publish>(got[0]);
    CHECK(first.topic == "secret/plan");
    CHECK(first.props.subscription_ids == std::vector<uint32_t>{7, 9});
    CHECK(std::get<Publish>(got[1]).props.subscription_ids == std::vector<uint32_t>{7});
}

TEST_CASE("rights: a session stored without an owner is judged once its client connects") {
    RightsHarness h;
    RecoveredSession rs;
    rs.client_id = "old";
    rs.expiry_s = 0xFFFFFFFF;   // owner_source Unknown: an older store
    rs.subs.push_back({"secret/#", 1, 0});
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("secret/a", "a", 1);   // kept, although anonymous may not read it
    CHECK(h.persist.count("out_enqueue old") == 1);
    TestClient alice(h, Version::V5);
    CHECK(alice.connect_with(login("old", "alice", false)).session_present);   // claims it
    CHECK(alice.extra().size() == 1);
    alice.disconnect();
    TestClient bob(h, Version::V5);
    CHECK(bob.connect_with(login("old", "bob", false)).reason == rc::NotAuthorized);
}

TEST_CASE("rights: a queued delivery's subscription ids and shared group are written") {
    RightsHarness h;
    TestClient a(h, Version::V5);
    a.connect_with(login("a", "alice", true));
    a.subscribe("secret/#", 1, 1, 5);
    a.subscribe("$share/g/secret/+", 1, 2, 6);
    a.disconnect();
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("secret/x", "x", 1);
    CHECK(h.persist.count("out_enqueue a 1 secret/x ids=5 share=") == 1);
    CHECK(h.persist.count("out_enqueue a 2 secret/x ids=6 share=$share/g/secret/+") == 1);
}

TEST_CASE("rights: a shared group skips members that may not read the message") {
    RightsHarness h;
    TestClient worker(h, Version::V5);
    worker.connect_with(login("worker", "worker", true, 0));
    worker.subscribe("$share/w/+/tasks", 1);
    TestClient mallory(h, Version::V5);
    mallory.connect_with(login("mallory", "mallory", true, 0));
    mallory.subscribe("$share/w/+/tasks", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    for (int i = 0; i < 10; ++i) pub.publish("plant1/tasks", std::to_string(i), 1);
    auto acks = pub.take_all<Ack>();
    REQUIRE(acks.size() == 10);
    for (const Ack& a : acks) CHECK(a.reason == rc::Success);
    CHECK(worker.publishes().size() == 10);
    CHECK(mallory.take().empty());
    // public/tasks: both may read it, round robin goes on.
    for (int i = 0; i < 4; ++i) pub.publish("public/tasks", "p", 1);
    pub.take();
    CHECK(mallory.publishes().size() == 2);
}

TEST_CASE("rights: a shared group where nobody may read counts as no subscriber") {
    RightsHarness h;
    TestClient mallory(h, Version::V5);
    mallory.connect_with(login("mallory", "mallory", true, 0));
    mallory.subscribe("$share/w/+/tasks", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("plant1/tasks", "t", 1);
    CHECK(pub.take_one<Ack>().reason == rc::NoMatchingSubscribers);
    CHECK(mallory.take().empty());
}

TEST_CASE("rights: an offline member that may read wins over an online one that may not") {
    RightsHarness h;
    TestClient worker(h, Version::V5);
    worker.connect_with(login("worker", "worker", true));
    worker.subscribe("$share/w/+/tasks", 1);
    worker.disconnect();
    TestClient mallory(h, Version::V5);
    mallory.connect_with(login("mallory", "mallory", true, 0));
    mallory.subscribe("$share/w/+/tasks", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("plant1/tasks", "t", 1);
    CHECK(pub.take_one<Ack>().reason == rc::Success);
    CHECK(mallory.take().empty());
    TestClient back(h, Version::V5);
    back.connect_with(login("worker", "worker", false));
    CHECK(back.extra().size() == 1);
}

TEST_CASE("rights: a leaving member's messages go only to a member that may read them") {
    RightsHarness h;
    TestClient worker(h, Version::V5);
    worker.connect_with(login("worker", "worker", true, 0));
    worker.subscribe("$share/w/+/tasks", 1);
    TestClient mallory(h, Version::V5);
    mallory.connect_with(login("mallory", "mallory", true, 0));
    mallory.subscribe("$share/w/+/tasks", 1);
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    pub.publish("plant1/tasks", "t", 1);
    CHECK(worker.publishes().size() == 1);   // not acknowledged
    worker.transport_gone();                 // its message looks for another member
    CHECK(mallory.take().empty());
}

TEST_CASE("rights: a recovered shared delivery is handed on when its member leaves") {
    RightsHarness h;
    RecoveredSession rs;
    rs.client_id = "w1";
    rs.expiry_s = 0xFFFFFFFF;
    rs.owner_source = OwnerSource::Password;
    rs.username = "worker";
    rs.subs.push_back({"$share/g/plant1/tasks", 1, 0});
    RecoveredOut ro;
    ro.seq = 1;
    ro.msg.topic = "plant1/tasks";
    ro.msg.payload = {'t'};
    ro.msg.qos = 1;
    ro.msg.share_filter = "$share/g/plant1/tasks";
    rs.out.push_back(ro);
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();

    TestClient w2(h, Version::V5);
    w2.connect_with(login("w2", "worker", true, 0));
    w2.subscribe("$share/g/plant1/tasks", 1);
    TestClient w1(h, Version::V5);
    w1.connect_with(login("w1", "worker", false));
    CHECK(w1.extra().size() == 1);   // sent, not acknowledged
    w1.transport_gone();
    auto got = w2.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "plant1/tasks");
}

TEST_CASE("rights: an in-flight delivery whose expiry passed during a restart goes out with 1 s left") {
    RightsHarness h;
    RecoveredSession rs;
    rs.client_id = "alice-dev";
    rs.expiry_s = 0xFFFFFFFF;
    rs.owner_source = OwnerSource::Password;
    rs.username = "alice";
    RecoveredOut ro;
    ro.seq = 1;
    ro.state = OutState::Inflight;
    ro.packet_id = 5;
    ro.msg.topic = "secret/plan";
    ro.msg.qos = 1;
    ro.msg.expiry_wall_ms = 1;   // long past
    rs.out.push_back(ro);
    h.persist.to_load.sessions.push_back(rs);
    h.broker->recover();
    TestClient alice(h, Version::V5);
    alice.connect_with(login("alice-dev", "alice", false));
    auto got = alice.extra();
    REQUIRE(got.size() == 1);
    const Publish& p = std::get<Publish>(got[0]);
    CHECK(p.dup);
    CHECK(p.packet_id == 5);
    CHECK(p.props.message_expiry == std::optional<uint32_t>(1));
}

TEST_CASE("rights: a queued shared delivery finds its shared subscription without a scan") {
    // One persistent session in many groups of the same topic: every
    // delivery's shared filter is written with it. A look-up per delivery
    // that walks the session's shared subscriptions makes this quadratic
    // (minutes); by share key it is linear (well under a second).
    constexpr int kGroups = 20000;
    Config cfg;
    cfg.max_queued_messages = kGroups;
    cfg.max_subscriptions_per_client = 0;
    Harness h(cfg);
    TestClient a(h, Version::V5);
    Properties persistent;
    persistent.session_expiry = 3600;
    a.connect("a", true, 0, persistent);
    for (int i = 0; i < kGroups; ++i) a.subscribe("$share/g" + std::to_string(i) + "/t", 1, 1);
    a.disconnect();
    TestClient pub(h, Version::V5);
    pub.connect("pub");
    const auto start = std::chrono::steady_clock::now();
    pub.publish("t", "x", 1);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(h.persist.count("out_enqueue a ") == kGroups);
    CHECK(h.persist.count("out_enqueue a 1 t ids= share=$share/g") == 1);
    CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("rights: a message handed on in a shared group carries the new member's subscription id") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5), p(h, Version::V5);
    a.connect("a");
    b.connect("b");
    p.connect("p");
    a.subscribe("$share/g/job", 1, 1, 5);
    b.subscribe("$share/g/job", 1, 1, 9);
    p.publish("job", "q1", 1);
    p.take();
    auto ga = a.publishes(), gb = b.publishes();
    REQUIRE(ga.size() + gb.size() == 1);
    const bool a_holds = !ga.empty();
    CHECK((a_holds ? ga : gb)[0].props.subscription_ids == std::vector<uint32_t>{a_holds ? 5u : 9u});
    (a_holds ? a : b).transport_gone();
    auto moved = (a_holds ? b : a).publishes();
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].props.subscription_ids == std::vector<uint32_t>{a_holds ? 9u : 5u});
}

TEST_CASE("rights: a message handed on in a shared group goes at the new member's granted QoS") {
    Harness h;
    TestClient a(h, Version::V5), b(h, Version::V5), p(h, Version::V5);
    a.connect("a");
    b.connect("b");
    p.connect("p");
    a.subscribe("$share/g/job", 1);
    b.subscribe("$share/g/job", 0);
    p.publish("job", "q1", 1);
    p.take();
    REQUIRE(a.publishes().size() == 1);   // first in slot order
    a.transport_gone();
    auto moved = b.publishes();
    REQUIRE(moved.size() == 1);
    CHECK(moved[0].qos == 0);
}

TEST_CASE("rights: a QoS 2 message a shared member has started to receive is not handed on") {
    // MQTT-4.8.2-4/5: completed with that member when it reconnects, never
    // sent to another one (it may have it already: exactly once).
    for (bool pubrec_sent : {false, true}) {
        Harness h;
        TestClient a(h, Version::V5), b(h, Version::V5), p(h, Version::V5);
        Properties persistent;
        persistent.session_expiry = 3600;
        a.connect("a", true, 0, persistent);
        b.connect("b");
        p.connect("p");
        a.subscribe("$share/g/job", 2);
        b.subscribe("$share/g/job", 2);
        p.publish("job", "q2", 2);
        p.take();
        auto got = a.publishes();   // first in slot order
        REQUIRE(got.size() == 1);
        if (pubrec_sent) {
            a.ack(PacketType::Pubrec, got[0].packet_id);
            CHECK(a.take_one<Ack>().type == PacketType::Pubrel);
        }
        a.transport_gone();
        CHECK(b.take().empty());
        TestClient back(h, Version::V5);
        back.connect("a", false, 0, persistent);
        auto resent = back.extra();
        REQUIRE(resent.size() == 1);
        if (pubrec_sent) CHECK(std::get<Ack>(resent[0]).type == PacketType::Pubrel);
        else CHECK(std::get<Publish>(resent[0]).dup);
    }
}

// A member's session that ends takes nothing with it: an offline member's
// session with room gets what it held (MQTT 5.0 4.8.2; acknowledged to the
// publisher, so never dropped while a member can take it).
TEST_CASE("rights: a shared member whose session ends hands its messages to an offline member's session") {
    Harness h;
    Properties persistent;
    persistent.session_expiry = 3600;
    TestClient b(h, Version::V5), p(h, Version::V5), a(h, Version::V5);
    b.connect("b", true, 0, persistent);
    b.subscribe("$share/g/job", 1);
    b.transport_gone();   // offline, its session kept
    a.connect("a");       // its session ends with its connection
    a.subscribe("$share/g/job", 1);
    p.connect("p");
    p.publish("job", "q1", 1);
    p.take();
    REQUIRE(a.publishes().size() == 1);   // the online member; never acknowledged
    a.transport_gone();
    TestClient back(h, Version::V5);
    CHECK(back.connect("b", false, 0, persistent).session_present);
    auto got = back.extra();
    REQUIRE(got.size() == 1);
    CHECK(text(std::get<Publish>(got[0]).payload) == "q1");
}
