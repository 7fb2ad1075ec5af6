// The ACL hook learns the listener of the session's latest CONNECT, so a
// listener may have rules of its own; a session not connected since the
// start is asked about with listener -1.
#include "test_broker_harness.hpp"

using namespace hato::broker;
using namespace hato::broker::test;

namespace {

// Allows what listener 1 may do only on "plc/..." topics; records each call
// as "kind listener topic".
struct ListenerAuthorizer final : Authorizer {
    std::vector<std::string> asked;
    bool revoked = false;   // a reload took every right to publish away
    bool judge(const char* kind, const ClientInfo& c, std::string_view topic) {
        asked.push_back(std::string(kind) + " " + std::to_string(c.listener_index) + " " + std::string(topic));
        if (revoked && std::string_view(kind) == "pub") return false;
        return c.listener_index != 1 || topic.substr(0, 4) == "plc/";
    }
    bool can_publish(const ClientInfo& c, std::string_view t) override { return judge("pub", c, t); }
    bool can_subscribe(const ClientInfo& c, std::string_view f) override { return judge("sub", c, f); }
    bool can_receive(const ClientInfo& c, std::string_view t) override { return judge("recv", c, t); }
};

}  // namespace

TEST_CASE("ACL checks carry the listener of the client's connection") {
    Harness h;
    ListenerAuthorizer authz;
    h.broker->set_authorizer(&authz);
    TestClient lan(h, Version::V5, 0);
    lan.connect("lan");
    TestClient plc(h, Version::V5, 1);
    plc.connect("plc");
    CHECK(plc.subscribe("lan/#", 0).reasons == std::vector<uint8_t>{rc::NotAuthorized});
    CHECK(plc.subscribe("plc/#", 0, 2).reasons == std::vector<uint8_t>{0});
    CHECK(lan.subscribe("lan/#", 0).reasons == std::vector<uint8_t>{0});
    plc.publish("lan/x", "no", 1);
    CHECK(plc.take_one<Ack>().reason == rc::NotAuthorized);
    lan.publish("plc/x", "yes", 0);
    CHECK(plc.publishes().size() == 1);
    CHECK(lan.publishes().empty());
    const std::vector<std::string> want = {"sub 1 lan/#", "sub 1 plc/#", "sub 0 lan/#",
                                           "pub 1 lan/x", "pub 0 plc/x", "recv 1 plc/x"};
    CHECK(authz.asked == want);
}

TEST_CASE("a will is judged by the listener its client connected through") {
    Harness h;
    ListenerAuthorizer authz;
    h.broker->set_authorizer(&authz);
    TestClient watch(h, Version::V5, 0);
    watch.connect("watch");
    watch.subscribe("#", 0);
    TestClient plc(h, Version::V311, 1);
    Connect c;
    c.client_id = "plc";
    c.will_flag = true;
    c.will_topic = "lan/will";
    c.will_payload = Bytes(reinterpret_cast<const uint8_t*>("w"), 1);
    plc.connect_with(c);
    plc.transport_gone();
    CHECK(watch.publishes().empty());   // the will was dropped: listener 1 may not write lan/
    CHECK(authz.asked.front() == "sub 0 #");
    CHECK(authz.asked[1] == "pub 1 lan/will");
}

// A will stored when the broker stopped keeps its client's listener: at
// the next start it is judged by that listener's rules, not the global ones.
TEST_CASE("a will recovered at start is judged by the listener its client connected through") {
    Harness h;
    ListenerAuthorizer authz;
    h.broker->set_authorizer(&authz);
    RecoveredWill w;
    w.client_id = "plc";
    w.msg.topic = "lan/will";
    w.msg.payload = {'w'};
    w.owner_source = OwnerSource::Anonymous;
    w.listener = 1;
    h.persist.to_load.wills.push_back(w);
    h.broker->recover();
    REQUIRE(authz.asked.size() == 1);
    CHECK(authz.asked[0] == "pub 1 lan/will");
}

// Checked at CONNECT, and again when published: a reload may have taken the
// right away while the will waited (its delay, or a long connection).
TEST_CASE("a will is checked again when it is published") {
    Harness h;
    ListenerAuthorizer authz;
    h.broker->set_authorizer(&authz);
    TestClient watch(h, Version::V5, 0);
    watch.connect("watch");
    watch.subscribe("#", 0);
    for (bool revoke : {false, true}) {
        CAPTURE(revoke);
        authz.revoked = false;
        TestClient plc(h, Version::V311, 1);
        Connect c;
        c.client_id = "plc";
        c.will_flag = true;
        c.will_topic = "plc/will";
        c.will_payload = Bytes(reinterpret_cast<const uint8_t*>("w"), 1);
        plc.connect_with(c);
        authz.revoked = revoke;
        plc.transport_gone();
        CHECK(watch.publishes().size() == (revoke ? 0u : 1u));
    }
}
