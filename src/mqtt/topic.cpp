// UTF-8 validation (1.5.4), topic names / filters and matching (4.7),
// shared subscription syntax (4.8.2).
#include <algorithm>
#include <cstring>

#include "mqtt/wire.hpp"

namespace hato::mqtt {

bool valid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        // Fast path: eight ASCII bytes at a time, none of them NUL.
        if (end - p >= 8) {
            uint64_t w;
            std::memcpy(&w, p, 8);
            constexpr uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;
            const bool has_zero = ((w - lo) & ~w & hi) != 0;
            if (!has_zero && (w & hi) == 0) {
                p += 8;
                continue;
            }
        }
        const unsigned char c = *p;
        if (c < 0x80) {
            if (c == 0) return false;  // U+0000 is forbidden (MQTT-1.5.4-2)
            ++p;
            continue;
        }
        int extra;
        uint32_t cp;
        uint32_t min;
        if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; min = 0x10000; }
        else return false;  // stray continuation byte or 0xF8..0xFF
        if (end - p <= extra) return false;
        for (int i = 1; i <= extra; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if (cp < min) return false;                      // overlong
        if (cp > 0x10FFFF) return false;                 // beyond Unicode
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate halves (MQTT-1.5.4-1)
        p += extra + 1;
    }
    return true;
}

bool valid_topic_name(std::string_view topic) {
    if (topic.empty() || topic.size() > 65535) return false;
    if (wire::has_wildcard(topic)) return false;
    return valid_utf8(topic);
}

bool valid_topic_filter(std::string_view filter) {
    if (filter.empty() || filter.size() > 65535) return false;
    const size_t n = filter.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = filter[i];
        if (c != '+' && c != '#') continue;
        // A wildcard must fill its whole level.
        const bool starts_level = i == 0 || filter[i - 1] == '/';
        const bool ends_level = i + 1 == n || filter[i + 1] == '/';
        if (!starts_level || !ends_level) return false;
        if (c == '#' && i + 1 != n) return false;  // '#' only as the last level
    }
    return valid_utf8(filter);
}

bool within_levels(std::string_view name, uint32_t max_levels) {
    // n bytes hold at most n + 1 levels ("/" has 2): short names need no
    // count, the common case on the publish path.
    if (name.size() < max_levels) return true;
    return size_t(std::count(name.begin(), name.end(), '/')) < max_levels;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
    // 4.7.2: a filter starting with a wildcard does not match topics starting with '$'.
    if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
        (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t f = 0, t = 0;
    const size_t fn = filter.size(), tn = topic.size();
    while (true) {
        // Here both f and t sit at the start of a level.
        if (f < fn && filter[f] == '#') return true;  // matches this level and all below
        const size_t f_end = std::min(filter.find('/', f), fn);
        const size_t t_end = std::min(topic.find('/', t), tn);
        const std::string_view flevel = filter.substr(f, f_end - f);
        if (!(flevel == "+" || flevel == topic.substr(t, t_end - t))) return false;
        const bool f_last = f_end == fn, t_last = t_end == tn;
        if (f_last && t_last) return true;
        if (t_last) {
            // Topic ended; only a trailing "/#" still matches ("a/#" matches "a").
            return filter.substr(f_end) == "/#";
        }
        if (f_last) return false;
        f = f_end + 1;
        t = t_end + 1;
    }
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

bool parse_shared(std::string_view filter, std::string_view& group, std::string_view& inner,
                  bool& ok) {
    constexpr std::string_view prefix = "$share/";
    if (filter.substr(0, prefix.size()) != prefix) return false;
    ok = false;
    const std::string_view rest = filter.substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return true;  // "$share/group" without a filter
    group = rest.substr(0, slash);
    inner = rest.substr(slash + 1);
    if (group.empty() || wire::has_wildcard(group)) return true;
    if (!valid_utf8(group) || !valid_topic_filter(inner)) return true;
    ok = true;
    return true;
}

}  // namespace hato::mqtt
