// InflightWindow against a model (std::map by seq), under random inserts in
// seq order, acks in any order, a stuck oldest item, recovery's out-of-order
// inserts and shared-group take_if.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <vector>

#include "broker/inflight_window.hpp"

using namespace hato::broker;

namespace {

OutItem item(uint64_t seq, uint16_t packet_id, uint64_t share = 0) {
    OutItem it;
    it.seq = seq;
    it.packet_id = packet_id;
    it.share_key = share;
    Message::Init init;
    init.topic = "t";
    it.msg = Message::make(init);
    return it;
}

void check_same(InflightWindow& w, const std::map<uint64_t, uint16_t>& model) {
    REQUIRE(w.size() == model.size());
    std::vector<uint64_t> seen;
    w.for_each([&](OutItem& it) { seen.push_back(it.seq); });
    std::vector<uint64_t> want;
    for (auto& [seq, id] : model) want.push_back(seq);
    CHECK(seen == want);
    for (auto& [seq, id] : model) {
        CHECK(w.seq_of(id) == seq);
        OutItem* found = w.find(seq);
        REQUIRE(found != nullptr);
        CHECK(found->packet_id == id);
    }
}

}  // namespace

TEST_CASE("inflight window: random acks against a model") {
    std::mt19937 rng(7);
    InflightWindow w;
    std::map<uint64_t, uint16_t> model;   // seq -> packet id
    uint64_t next_seq = 1;
    uint16_t next_id = 1;
    const size_t window = 40;
    for (int step = 0; step < 20000; ++step) {
        const bool add = model.size() < window && (model.empty() || rng() % 3 != 0);
        if (add) {
            while (next_id == 0 || w.has_packet_id(next_id)) ++next_id;
            w.insert(item(next_seq, next_id));
            model[next_seq] = next_id;
            ++next_seq;
            ++next_id;
        } else {
            // Mostly the oldest (acks in order), sometimes any: the oldest
            // itself only rarely, so holes pile up behind it.
            auto it = model.begin();
            if (rng() % 4 != 0) std::advance(it, long(rng() % model.size()));
            else if (rng() % 8 != 0 && model.size() > 1) std::advance(it, 1);
            CHECK(w.erase(it->first));
            CHECK_FALSE(w.erase(it->first));
            CHECK(w.seq_of(it->second) == 0);
            model.erase(it);
        }
        if (step % 97 == 0) check_same(w, model);
    }
    check_same(w, model);
    CHECK(w.find(next_seq + 5) == nullptr);
    CHECK(w.seq_of(uint16_t(next_id + 1000)) == 0);
}

TEST_CASE("inflight window: a stuck oldest item keeps memory bounded") {
    InflightWindow w;
    w.insert(item(1, 1));
    uint16_t id = 2;
    for (uint64_t seq = 2; seq < 100000; ++seq) {
        w.insert(item(seq, id));
        CHECK(w.erase(seq));
        id = id == 65535 ? 2 : uint16_t(id + 1);
    }
    CHECK(w.size() == 1);
    CHECK(w.seq_of(1) == 1);
    CHECK(w.erase(1));
    CHECK(w.empty());
    w.trim();
    w.insert(item(200000, 9));
    CHECK(w.seq_of(9) == 200000);
}

TEST_CASE("inflight window: recovery inserts out of order; take_if moves in seq order") {
    InflightWindow w;
    for (uint64_t seq : {50, 10, 30, 20, 40}) w.insert(item(seq, uint16_t(seq + 1), seq % 20 == 0 ? 7 : 0));
    std::map<uint64_t, uint16_t> model = {{10, 11}, {20, 21}, {30, 31}, {40, 41}, {50, 51}};
    check_same(w, model);

    std::vector<OutItem> moved;
    w.take_if([](const OutItem& it) { return it.share_key == 7; }, moved);
    REQUIRE(moved.size() == 2);
    CHECK(moved[0].seq == 20);
    CHECK(moved[1].seq == 40);
    CHECK(moved[0].msg);
    model.erase(20);
    model.erase(40);
    check_same(w, model);
    CHECK(w.seq_of(21) == 0);
}

TEST_CASE("inflight window: scanned while small, indexed while large, scanned again once empty") {
    std::mt19937 rng(11);
    InflightWindow w;
    uint64_t seq = 1;
    for (int round = 0; round < 60; ++round) {
        std::map<uint64_t, uint16_t> model;
        const size_t n = 1 + size_t(round % 24);   // on both sides of the scanned size
        for (size_t i = 0; i < n; ++i, ++seq) {
            const uint16_t id = uint16_t(1 + (seq * 7) % 60000);
            w.insert(item(seq, id));
            model[seq] = id;
        }
        check_same(w, model);
        while (!model.empty()) {
            auto it = model.begin();
            std::advance(it, long(rng() % model.size()));
            CHECK(w.seq_of(it->second) == it->first);
            CHECK(w.erase(it->first));
            CHECK(w.seq_of(it->second) == 0);
            model.erase(it);
            check_same(w, model);
        }
        CHECK(w.empty());
    }
}

TEST_CASE("inflight window: items awaiting their resend are counted apart, however they leave") {
    InflightWindow w;
    for (uint64_t seq = 1; seq <= 6; ++seq) w.insert(item(seq, uint16_t(seq), seq % 2 ? 0 : 7));
    w.for_each([&](OutItem& it) { w.set_awaiting_resend(it, true); });
    w.set_awaiting_resend(*w.find(1), true);   // again: counted once
    CHECK(w.awaiting_resend() == 6);
    CHECK(w.outstanding() == 0);
    w.set_awaiting_resend(*w.find(1), false);   // resent
    CHECK(w.awaiting_resend() == 5);
    CHECK(w.outstanding() == 1);
    CHECK(w.erase(3));   // acknowledged before its resend
    CHECK(w.awaiting_resend() == 4);
    std::vector<OutItem> moved;   // 2, 4, 6: to another member of the group
    w.take_if([](const OutItem& it) { return it.share_key != 0; }, moved);
    CHECK(moved.size() == 3);
    CHECK(w.awaiting_resend() == 1);
    CHECK(w.outstanding() == 1);
    CHECK(w.erase(5));
    CHECK(w.erase(1));
    CHECK(w.awaiting_resend() == 0);
    CHECK(w.empty());
}
