// Sparkplug B 3.0 "Sparkplug Aware MQTT Server": birth certificates are kept
// retained on $sparkplug/certificates/..., so a host application that
// connects late can read every edge node's and device's last birth.
#pragma once

#include <string>
#include <string_view>

namespace hato::broker::sparkplug {

inline constexpr std::string_view kCertificatesPrefix = "$sparkplug/certificates/";

// The certificate topic for a birth: "$sparkplug/certificates/" + `topic`
// when `topic` is spBv1.0/<group>/NBIRTH/<edge_node> or
// spBv1.0/<group>/DBIRTH/<edge_node>/<device> with every id non-empty;
// empty for any other topic (data, deaths, commands, STATE, malformed).
std::string certificate_topic(std::string_view topic);

}  // namespace hato::broker::sparkplug
