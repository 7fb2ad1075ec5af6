#include "auth/acl.hpp"
#include "auth/text_file.hpp"

#include <algorithm>

#include "mqtt/codec.hpp"

namespace hato::auth {

namespace {

// Splits a topic or filter into levels (empty levels kept).
std::vector<std::string_view> levels(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '/') {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// Substitutes %c and %u; false when a value is missing or could widen the
// rule (Mosquitto refuses ids containing wildcards here too).
bool substitute(std::string_view pattern, std::optional<std::string_view> user, std::string_view client_id,
                std::string& out) {
    out.clear();
    for (size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '%' && i + 1 < pattern.size() && (pattern[i + 1] == 'c' || pattern[i + 1] == 'u')) {
            std::string_view v;
            if (pattern[i + 1] == 'c') v = client_id;
            else if (user) v = *user;
            else return false;
            if (v.find_first_of("+#/") != std::string_view::npos) return false;
            out.append(v);
            ++i;
        } else {
            out.push_back(pattern[i]);
        }
    }
    return true;
}

}  // namespace

bool filter_covers(std::string_view outer, std::string_view inner) {
    auto o = levels(outer), in = levels(inner);
    for (size_t i = 0; i < o.size(); ++i) {
        if (o[i] == "#") return true;
        if (i >= in.size()) return false;
        if (in[i] == "#") return false;
        if (o[i] == "+") continue;
        if (in[i] == "+" || o[i] != in[i]) return false;
    }
    return o.size() == in.size();
}

bool Acl::load(const std::string& path, std::vector<std::string>& errors) {
    std::string text;
    return read_text_file(path, text, errors) && parse(text, path, errors);
}

bool Acl::parse(std::string_view text, const std::string& name, std::vector<std::string>& errors) {
    Acl fresh;
    std::vector<AclRule>* current = &fresh.anonymous_;
    size_t before = errors.size(), line_no = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (line.empty() || line[0] == '#') continue;
        std::string where = name + ":" + std::to_string(line_no) + ": ";
        size_t sp = line.find_first_of(" \t");
        std::string_view keyword = line.substr(0, sp);
        std::string_view rest = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp));
        if (keyword == "user") {
            if (rest.empty()) { errors.push_back(where + "user needs a name"); continue; }
            current = &fresh.users_[std::string(rest)];
            continue;
        }
        if (keyword != "topic" && keyword != "pattern") {
            errors.push_back(where + "unknown keyword '" + std::string(keyword) + "' (expected topic, pattern or user)");
            continue;
        }
        AclRule rule;
        size_t sp2 = rest.find_first_of(" \t");
        std::string_view first = rest.substr(0, sp2);
        uint8_t acc = 0xFF;
        if (first == "read") acc = kRead;
        else if (first == "write") acc = kWrite;
        else if (first == "readwrite") acc = kReadWrite;
        else if (first == "deny") acc = kDeny;
        if (sp2 == std::string_view::npos) {
            rule.access = kReadWrite;   // the topic alone
        } else if (acc != 0xFF) {
            rule.access = acc;
            rest = trim(rest.substr(sp2));
        } else {
            // As Mosquitto: "topic denny secret/#" taken as a topic named
            // "denny secret/#" with readwrite would turn a mistyped deny
            // into nothing, silently.
            errors.push_back(where + "unknown access '" + std::string(first) +
                             "' (expected read, write, readwrite or deny before the topic)");
            continue;
        }
        if (rest.empty()) { errors.push_back(where + std::string(keyword) + " needs a topic"); continue; }
        // A malformed filter would match more than it says: "plant/#/status"
        // matched all of plant/#, "#/x" everything (Mosquitto refuses both).
        if (!mqtt::valid_topic_filter(rest)) {
            errors.push_back(where + "'" + std::string(rest) +
                             "' is not a valid topic filter (+ and # stand alone in a level, # only last)");
            continue;
        }
        rule.topic = std::string(rest);
        (keyword == "pattern" ? fresh.patterns_ : *current).push_back(std::move(rule));
    }
    if (errors.size() != before) return false;
    *this = std::move(fresh);
    return true;
}

template <typename Fn>
void Acl::for_each_rule(std::optional<std::string_view> user, std::string_view client_id, Fn&& fn) const {
    const std::vector<AclRule>* own = &anonymous_;
    if (user) {
        auto it = users_.find(std::string(*user));
        own = it == users_.end() ? nullptr : &it->second;
    }
    if (own)
        for (const auto& r : *own) fn(r.access, std::string_view(r.topic));
    std::string concrete;
    for (const auto& r : patterns_)
        if (substitute(r.topic, user, client_id, concrete)) fn(r.access, std::string_view(concrete));
}

bool Acl::allowed(std::optional<std::string_view> user, std::string_view client_id, std::string_view topic,
                  Access want) const {
    bool granted = false, denied = false;
    for_each_rule(user, client_id, [&](uint8_t access, std::string_view filter) {
        if (!mqtt::topic_matches(filter, topic)) return;
        if (access == kDeny) denied = true;
        else if (access & want) granted = true;
    });
    return granted && !denied;
}

bool Acl::subscribe_allowed(std::optional<std::string_view> user, std::string_view client_id,
                            std::string_view filter) const {
    bool granted = false, denied = false;
    for_each_rule(user, client_id, [&](uint8_t access, std::string_view rule) {
        if (access == kDeny) {
            if (filter_covers(rule, filter)) denied = true;
        } else if ((access & kRead) && mqtt::filters_overlap(rule, filter)) {
            granted = true;
        }
    });
    return granted && !denied;
}

std::vector<std::string> Acl::user_names() const {
    std::vector<std::string> names;
    names.reserve(users_.size());
    for (const auto& [u, rules] : users_) names.push_back(u);
    std::sort(names.begin(), names.end());
    return names;
}

size_t Acl::rule_count() const {
    size_t n = anonymous_.size() + patterns_.size();
    for (const auto& [u, rules] : users_) n += rules.size();
    return n;
}

}  // namespace hato::auth
