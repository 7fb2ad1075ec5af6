// The topic rules of one bridge and the topic rewriting they imply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hato::bridge {

enum class Direction : uint8_t { Out, In, Both };

struct TopicRule {
    std::string pattern;         // local filter for out, remote filter for in
    Direction direction = Direction::Out;
    uint8_t qos = 1;             // a message crosses at min(its QoS, this)
    std::string local_prefix;
    std::string remote_prefix;
    bool out() const { return direction != Direction::In; }
    bool in() const { return direction != Direction::Out; }
};

// out: the local topic of a message the bridge's local session received,
// rewritten for the upstream by the first out rule whose pattern matches it
// (local_prefix removed, remote_prefix prepended); nullopt if none matches.
std::optional<std::string> remote_topic(const std::vector<TopicRule>& rules, std::string_view local);
// in: an upstream topic rewritten for local publication by the first in
// rule whose pattern matches (remote_prefix removed, local_prefix prepended).
std::optional<std::string> local_topic(const std::vector<TopicRule>& rules, std::string_view remote);

// The upstream filter of what an out rule sends: its pattern rewritten as
// its topics are.
std::string remote_filter(const TopicRule& out_rule);

}  // namespace hato::bridge
