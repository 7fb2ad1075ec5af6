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

bool filters_overlap(std::string_view a, std::string_view b) {
    // A wildcard first level never matches a topic starting with '$' ($SYS, $aws).
    auto wild = [](std::string_view f) { return f.starts_with('+') || f.starts_with('#'); };
    if ((a.starts_with('$') && wild(b)) || (b.starts_with('$') && wild(a))) return false;
    for (;;) {
        const size_t ea = a.find('/'), eb = b.find('/');
        const std::string_view la = a.substr(0, ea), lb = b.substr(0, eb);
        if (la == "#" || lb == "#") return true;
        if (la != lb && la != "+" && lb != "+") return false;
        const bool last_a = ea == std::string_view::npos, last_b = eb == std::string_view::npos;
        // "x/#" also matches "x" itself.
        if (last_a || last_b) return last_a == last_b || (last_a ? b.substr(eb + 1) == "#" : a.substr(ea + 1) == "#");
        a.remove_prefix(ea + 1);
        b.remove_prefix(eb + 1);
    }
}

std::string remote_filter(const TopicRule& out_rule) {
    return rewrite(out_rule.pattern, out_rule.local_prefix, out_rule.remote_prefix);
}

}  // namespace hato::bridge
