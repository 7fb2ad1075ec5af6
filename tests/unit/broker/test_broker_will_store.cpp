// Wills in the store: one is stored while its client is connected (or waits
// out its delay) and removed when it is published, discarded or cancelled,
// so that one whose connection ended with the broker (a crash, a power cut,
// a restart) is published at the next start (Broker::Impl::recover_wills).
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// A retained will, as a device's status topic has.
Connect retained_will(const char* id, const char* topic, uint32_t delay = 0, uint32_t expiry = 0) {
    Connect c = with_will(id, topic, delay, true, expiry);
    c.will_retain = true;
    return c;
}

RecoveredWill stored_will(const char* client, const char* topic, uint32_t delay = 0) {
    RecoveredWill w;
    w.client_id = client;
    w.msg.topic = topic;
    w.msg.payload = {'o', 'f', 'f'};
    w.msg.qos = 1;
    w.msg.retain = true;
    w.delay_s = delay;
    w.owner_source = OwnerSource::Anonymous;
    return w;
}

// Index of the first call starting with `prefix`; calls.size() if none.
size_t first_call(const FakePersistence& p, std::string_view prefix) {
    for (size_t i = 0; i < p.calls.size(); ++i)
        if (p.calls[i].rfind(prefix, 0) == 0) return i;
    return p.calls.size();
}

}  // namespace

TEST_CASE("a will is stored while its client is connected and removed when it is published, discarded or cancelled") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);

    // Discarded by a normal DISCONNECT.
    TestClient a(h, Version::V5);
    a.connect_with(retained_will("a", "will/a"));
    CHECK(h.persist.count("will_put a will/a delay=0 owner=1: listener=0") == 1);   // anonymous
    a.disconnect();
    CHECK(h.persist.count("will_remove a") == 1);
    CHECK(w.publishes().empty());

    // Published when the connection is lost: the removal comes after what
    // the publication wrote (a crash in between publishes it twice, never
    // not at all).
    TestClient b(h, Version::V5);
    b.connect_with(retained_will("b", "will/b"));
    b.transport_gone();
    REQUIRE(w.publishes().size() == 1);
    CHECK(first_call(h.persist, "retained_set will/b") < first_call(h.persist, "will_remove b"));
    CHECK(h.persist.count("will_remove b") == 1);

    // Waiting out its delay: still stored; a reconnect cancels it.
    TestClient c(h, Version::V5);
    c.connect_with(retained_will("c", "will/c", 10, 100));
    c.transport_gone();
    CHECK(h.persist.count("will_remove c") == 0);
    TestClient c2(h, Version::V5);
    Properties keep;
    keep.session_expiry = 100;
    CHECK(c2.connect("c", false, 0, keep).session_present);
    CHECK(h.persist.count("will_remove c") == 1);
    CHECK(h.persist.count("will_put c") == 1);   // the new CONNECT has no will
    h.broker->on_tick(20000);
    CHECK(w.publishes().empty());

    // Published once its delay elapses.
    TestClient d(h, Version::V5);
    d.connect_with(retained_will("d", "will/d", 10, 100));
    d.transport_gone();
    h.broker->on_tick(31000);
    CHECK(w.publishes().size() == 1);
    CHECK(h.persist.count("will_remove d") == 1);

    // A takeover publishes the old connection's will, and stores the new one's after.
    TestClient e(h, Version::V5);
    e.connect_with(retained_will("e", "will/e"));
    TestClient e2(h, Version::V5);
    e2.connect_with(retained_will("e", "will/e2"));
    CHECK(w.publishes().size() == 1);
    const size_t removed = first_call(h.persist, "will_remove e");
    CHECK(removed < h.persist.calls.size());
    CHECK(first_call(h.persist, "will_put e will/e2") > removed);

    // A will the ACL does not allow is never published, so never stored.
    // (A will whose store write is refused stays in memory only.)
    h.persist.refuse = {"will_put f"};
    TestClient f(h, Version::V5);
    CHECK(f.connect_with(retained_will("f", "will/f")).reason == rc::Success);
    f.disconnect();
    CHECK(h.persist.count("will_remove f") == 0);
}

TEST_CASE("a shutdown leaves connected clients' wills stored, for the next start") {
    Harness h;
    TestClient a(h, Version::V311);
    Connect c = retained_will("a", "will/a");
    a.connect_with(c);
    REQUIRE(h.persist.count("will_put a") == 1);
    h.broker->shutdown();
    CHECK(h.persist.count("will_remove a") == 0);
}

// A will the store refused (a full disk) is only in memory: a shutdown
// stores it if there is room by then, else publishes it while subscribers
// are still connected, rather than lose it with the process.
TEST_CASE("a shutdown publishes a will the store refused, or stores it if it now can") {
    Harness h;
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);
    h.persist.refuse = {"will_put a", "will_put b", "will_put c"};
    TestClient a(h, Version::V311);
    a.connect_with(retained_will("a", "will/a"));
    TestClient b(h, Version::V5);
    b.connect_with(retained_will("b", "will/b", 30, 100));
    b.transport_gone();   // waits out its delay, in memory only
    TestClient c(h, Version::V5);
    c.connect_with(retained_will("c", "will/c"));
    REQUIRE(h.persist.count("refused will_put") == 3);
    REQUIRE(w.publishes().empty());
    h.persist.refuse = {"will_put a", "will_put b"};   // room for c's now
    h.broker->shutdown();
    std::vector<std::string> topics;
    for (const auto& p : w.take())   // then DISCONNECT, as the server shuts down
        if (const auto* pub = std::get_if<Publish>(&p)) topics.emplace_back(pub->topic);
    std::sort(topics.begin(), topics.end());
    CHECK(topics == std::vector<std::string>{"will/a", "will/b"});
    CHECK(h.persist.count("will_put c") == 1);   // kept for the next start
    CHECK(h.persist.count("will_remove c") == 0);
}

// A listener a reload removed ends its connections while the broker runs on:
// their wills go as for lost connections, not discarded. A delayed one waits
// out its delay (a reconnect within it cancels it, MQTT-3.1.3-9), judged by
// the removed listener's ACL now, not by another when it is published.
TEST_CASE("a connection shut down by the server publishes its will, after its delay") {
    struct TogglingAcl final : Authorizer {
        bool allow = true;
        bool can_publish(const ClientInfo&, std::string_view t) override { return allow || t == "will/a"; }
        bool can_subscribe(const ClientInfo&, std::string_view) override { return true; }
        bool can_receive(const ClientInfo&, std::string_view) override { return true; }
    } acl;
    Harness h;
    h.broker->set_authorizer(&acl);
    TestClient w(h, Version::V5);
    w.connect("w");
    w.subscribe("will/#", 1);
    TestClient a(h, Version::V5);
    a.connect_with(retained_will("a", "will/a"));
    TestClient d(h, Version::V5);
    d.connect_with(retained_will("d", "will/d", 10, 100));
    TestClient back(h, Version::V5);
    back.connect_with(retained_will("back", "will/back", 10, 100));
    h.broker->shut_down_connection(a.id);
    h.broker->shut_down_connection(d.id);
    h.broker->shut_down_connection(back.id);
    auto now = w.publishes();
    REQUIRE(now.size() == 1);
    CHECK(now[0].topic == "will/a");
    CHECK(h.persist.count("will_remove a") == 1);
    // The reload's new ACL would refuse it: the removed listener's allowed it.
    acl.allow = false;
    h.broker->on_tick(5000);
    TestClient again(h, Version::V5);
    Connect resume = retained_will("back", "will/back", 10, 100);
    resume.clean_start = false;
    again.connect_with(resume);
    h.broker->on_tick(10000);
    auto later = w.publishes();
    REQUIRE(later.size() == 1);
    CHECK(later[0].topic == "will/d");
    CHECK(h.persist.count("will_remove d") == 1);
    h.broker->on_tick(11000);
    CHECK(w.publishes().empty());
}

TEST_CASE("wills recovered at start are published, or wait out what is left of their delay") {
    Harness h;
    // A clean session's client: published at once, under its owner's rights.
    h.persist.to_load.wills.push_back(stored_will("gone", "status/gone"));
    // A persistent session connected when the broker stopped: the delay
    // runs from now, and a reconnect within it cancels the will.
    RecoveredSession back;
    back.client_id = "back";
    back.expiry_s = 3600;
    back.owner_source = OwnerSource::Anonymous;
    h.persist.to_load.sessions.push_back(back);
    h.persist.to_load.wills.push_back(stored_will("back", "status/back", 30));
    // A persistent session that does not come back: published after the delay.
    RecoveredSession away = back;
    away.client_id = "away";
    h.persist.to_load.sessions.push_back(away);
    h.persist.to_load.wills.push_back(stored_will("away", "status/away", 30));
    h.broker->recover();

    CHECK(h.persist.count("will_remove gone") == 1);
    CHECK(h.broker->counts().sessions == 2);   // the stand-in for "gone" is not kept

    TestClient s(h, Version::V5);
    s.connect("s");
    s.subscribe("status/#", 1);   // the retained copy of the published one
    auto retained = s.extra();
    REQUIRE(retained.size() == 1);
    const Publish& r = std::get<Publish>(retained[0]);
    CHECK(r.topic == "status/gone");
    CHECK(r.retain);
    s.ack(PacketType::Puback, r.packet_id);

    h.broker->on_tick(10000);
    TestClient b(h, Version::V5);
    Properties keep;
    keep.session_expiry = 3600;
    CHECK(b.connect("back", false, 0, keep).session_present);
    CHECK(h.persist.count("will_remove back") == 1);

    h.broker->on_tick(31000);
    auto got = s.publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "status/away");
    CHECK(h.persist.count("will_remove away") == 1);
    h.broker->on_tick(60000);
    CHECK(s.publishes().empty());
}
