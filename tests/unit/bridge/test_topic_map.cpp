// Topic rewriting of out and in rules.
#include <doctest/doctest.h>

#include "bridge/topic_map.hpp"

using namespace hato::bridge;

TEST_CASE("out rules strip the local prefix and prepend the remote one") {
    std::vector<TopicRule> rules = {{"plant/#", Direction::Out, 1, "plant/", "site/gw17/"},
                                    {"cmd/#", Direction::In, 1, "remote/", "site/gw17/"}};
    CHECK(remote_topic(rules, "plant/line1/temp") == "site/gw17/line1/temp");
    CHECK_FALSE(remote_topic(rules, "cmd/x"));   // an in rule does not send out
    CHECK_FALSE(remote_topic(rules, "office/temp"));
}

TEST_CASE("in rules strip the remote prefix and prepend the local one") {
    std::vector<TopicRule> rules = {{"site/gw17/cmd/#", Direction::In, 1, "local/", "site/gw17/"},
                                    {"status/#", Direction::Both, 0, "", ""}};
    CHECK(local_topic(rules, "site/gw17/cmd/open") == "local/cmd/open");
    CHECK(local_topic(rules, "status/a") == "status/a");
    CHECK(remote_topic(rules, "status/a") == "status/a");
    CHECK_FALSE(local_topic(rules, "other"));
}

TEST_CASE("an out rule's upstream filter is its pattern rewritten as its topics are") {
    CHECK(remote_filter({"plant/#", Direction::Out, 1, "", "site/gw/"}) == "site/gw/plant/#");
    CHECK(remote_filter({"local/plant/#", Direction::Out, 1, "local/", "site/"}) == "site/plant/#");
    CHECK(remote_filter({"plant/#", Direction::Out, 1, "", ""}) == "plant/#");
}
