// Bridges in the metrics endpoint: labelled gauges and counters, the status
// JSON and page; nothing about bridges when none is configured.
#include <doctest/doctest.h>

#include <string>

#include "app/metrics.hpp"

using namespace hato::app;

namespace {

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("metrics: each bridge's state and backlog, labelled by bridge") {
    StatusData d;
    d.version = "1";
    d.backend = "epoll";
    BridgeStatus b;
    b.name = "si\"te";
    b.connected = false;
    b.backlog_messages = 12;
    b.backlog_bytes = 3400;
    b.oldest_age_s = 7.5;
    b.backlog_dropped = 9;
    b.forwarded_out = 100;
    b.forwarded_in = 3;
    b.too_large_out = 2;
    b.unmappable_in = 5;
    b.refused_out = 4;
    b.refused_in = 6;
    b.closes_on_same = 3;
    d.bridges = {b};
    const std::string m = render_prometheus(d);
    CHECK(has(m, "# TYPE hato_bridge_connected gauge\n"));
    CHECK(has(m, "hato_bridge_connected{bridge=\"si\\\"te\"} 0\n"));
    CHECK(has(m, "hato_bridge_backlog_messages{bridge=\"si\\\"te\"} 12\n"));
    CHECK(has(m, "hato_bridge_backlog_bytes{bridge=\"si\\\"te\"} 3400\n"));
    CHECK(has(m, "hato_bridge_backlog_oldest_age_seconds{bridge=\"si\\\"te\"} 7.5\n"));
    CHECK(has(m, "# TYPE hato_bridge_backlog_dropped_total counter\n"));
    CHECK(has(m, "hato_bridge_backlog_dropped_total{bridge=\"si\\\"te\"} 9\n"));
    CHECK(has(m, "# TYPE hato_bridge_forwarded_messages_total counter\n"));
    CHECK(has(m, "hato_bridge_forwarded_messages_total{bridge=\"si\\\"te\",direction=\"out\"} 100\n"));
    CHECK(has(m, "hato_bridge_forwarded_messages_total{bridge=\"si\\\"te\",direction=\"in\"} 3\n"));
    CHECK(has(m, "# TYPE hato_bridge_too_large_dropped_total counter\n"));
    CHECK(has(m, "hato_bridge_too_large_dropped_total{bridge=\"si\\\"te\",direction=\"out\"} 2\n"));
    CHECK(has(m, "hato_bridge_too_large_dropped_total{bridge=\"si\\\"te\",direction=\"in\"} 0\n"));
    CHECK(has(m, "hato_bridge_unmappable_dropped_total{bridge=\"si\\\"te\",direction=\"out\"} 0\n"));
    CHECK(has(m, "hato_bridge_unmappable_dropped_total{bridge=\"si\\\"te\",direction=\"in\"} 5\n"));
    CHECK(has(m, "hato_bridge_refused_total{bridge=\"si\\\"te\"} 4\n"));
    CHECK(has(m, "hato_bridge_refused_locally_total{bridge=\"si\\\"te\"} 6\n"));
    CHECK(has(m, "# TYPE hato_bridge_upstream_closes_on_same_message gauge\n"));
    CHECK(has(m, "hato_bridge_upstream_closes_on_same_message{bridge=\"si\\\"te\"} 3\n"));
    const std::string j = render_status_json(d);
    CHECK(has(j, "\"bridges\":[{\"name\":\"si\\\"te\",\"connected\":false,\"backlog_messages\":12,"
                 "\"backlog_bytes\":3400,\"oldest_age_seconds\":7.5,\"backlog_dropped\":9,\"forwarded_out\":100,\"forwarded_in\":3,"
                 "\"too_large_dropped_out\":2,\"too_large_dropped_in\":0,\"unmappable_dropped_out\":0,"
                 "\"unmappable_dropped_in\":5,\"refused\":4,\"refused_locally\":6,"
                 "\"closes_on_same_message\":3}]"));
    const std::string h = render_status_html(d);
    CHECK(has(h, "<tr><td>si&quot;te</td><td class=bad>down</td><td class=n>12</td>"));
}

TEST_CASE("metrics: no bridge, no bridge families") {
    StatusData d;
    CHECK_FALSE(has(render_prometheus(d), "hato_bridge_"));
    CHECK(has(render_status_json(d), "\"bridges\":[]"));
    // (the page's script knows the card; the page rendered has none)
    const std::string h = render_status_html(d);
    CHECK_FALSE(has(h, "<th>bridge</th><th>state</th><th>backlog</th><th>bytes</th><th>oldest</th></tr><tr>"));
}
