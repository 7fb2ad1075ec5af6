#include "broker/sparkplug.hpp"

#include <array>

namespace hato::broker::sparkplug {

std::string certificate_topic(std::string_view topic) {
    constexpr std::string_view kNamespace = "spBv1.0/";
    if (topic.substr(0, kNamespace.size()) != kNamespace) return {};   // the common case: not Sparkplug
    // At most 5 levels: namespace, group, message type, edge node, device.
    std::array<std::string_view, 5> level{};
    size_t n = 0;
    size_t start = 0;
    for (;;) {
        size_t slash = topic.find('/', start);
        if (n == level.size()) return {};   // a sixth level
        level[n++] = topic.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    for (size_t i = 0; i < n; ++i)
        if (level[i].empty()) return {};   // Sparkplug ids are never empty
    const bool node_birth = n == 4 && level[2] == "NBIRTH";
    const bool device_birth = n == 5 && level[2] == "DBIRTH";
    if (!node_birth && !device_birth) return {};
    std::string out;
    out.reserve(kCertificatesPrefix.size() + topic.size());
    out.append(kCertificatesPrefix).append(topic);
    return out;
}

}  // namespace hato::broker::sparkplug
