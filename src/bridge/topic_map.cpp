#include "bridge/topic_map.hpp"

#include "mqtt/codec.hpp"

namespace hato::bridge {

namespace {

std::string rewrite(std::string_view topic, std::string_view strip, std::string_view prepend) {
    if (!strip.empty() && topic.substr(0, strip.size()) == strip) topic.remove_prefix(strip.size());
    std::string out(prepend);
    out += topic;
    return out;
}

}  // namespace

std::optional<std::string> remote_topic(const std::vector<TopicRule>& rules, std::string_view local) {
    for (const TopicRule& r : rules)
        if (r.out() && mqtt::topic_matches(r.pattern, local)) return rewrite(local, r.local_prefix, r.remote_prefix);
    return std::nullopt;
}

std::optional<std::string> local_topic(const std::vector<TopicRule>& rules, std::string_view remote) {
    for (const TopicRule& r : rules)
        if (r.in() && mqtt::topic_matches(r.pattern, remote)) return rewrite(remote, r.remote_prefix, r.local_prefix);
    return std::nullopt;
}

std::string remote_filter(const TopicRule& out_rule) {
    return rewrite(out_rule.pattern, out_rule.local_prefix, out_rule.remote_prefix);
}

}  // namespace hato::bridge
