// Metrics endpoint: histogram, Prometheus exposition, health verdicts, the
// status JSON and page, and request handling over a fake reactor.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "app/metrics.hpp"

using namespace hato;
using namespace hato::app;

namespace {

StatusData sample() {
    StatusData d;
    d.version = "1.2.3";
    d.backend = "epoll";
    d.uptime_s = 12.5;
    d.stats.connections = 7;
    d.stats.connects = 25;
    d.stats.messages_in = 40;
    d.stats.messages_out = 80;
    d.stats.store_refusals = 3;
    d.stats.store_refused_quota = 2;
    d.stats.store_refused_full = 1;
    d.listeners = {{"127.0.0.1:1883", 4, 9}, {"0.0.0.0:\"x\"", 1, 1}};
    d.storage_enabled = true;
    d.store_bytes = 600;
    d.store_max_bytes = 1000;
    d.store_segments = 2;
    d.route_cache_topics = 5;
    d.route_cache_matches = 6;
    return d;
}

// A reactor that records what the endpoint sends and closes.
class FakeReactor final : public net::Reactor {
public:
    const char* name() const override { return "fake"; }
    bool listen(const std::string&, uint16_t, std::string&) override { return true; }
    uint16_t bound_port(int) const override { return 0; }
    void send(net::ConnId id, std::span<const uint8_t> d) override { sent[id].append(d.begin(), d.end()); }
    void send_low_priority(net::ConnId id, std::span<const uint8_t> d) override { send(id, d); }
    size_t queued_bytes(net::ConnId) const override { return 0; }
    void close(net::ConnId id, bool flush) override { closed[id] = flush; }
    void set_max_lingering(size_t) override {}
    void set_reading(net::ConnId, bool) override {}
    void watch_readable(int, std::function<void()>) override {}
    void fsync_async(int, std::function<void(int)> done) override { done(0); }
    void set_tick_interval(uint32_t) override {}
    uint64_t now_ms() const override { return now; }
    void close_listeners() override {}
    void run(net::Handler&) override {}
    void stop() override {}
    uint64_t connection_count() const override { return 0; }

    uint64_t now = 1000;
    std::map<net::ConnId, std::string> sent;
    std::map<net::ConnId, bool> closed;
};

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("metrics: histogram buckets, sum and quantile estimate") {
    Histogram h({0.001, 0.01, 0.1});
    CHECK(h.quantile_s(0.5) == 0);
    h.observe_us(500);     // <= 1 ms
    h.observe_us(1000);    // == 1 ms: still the first bucket (le)
    h.observe_us(5000);
    h.observe_us(2000000); // +Inf
    CHECK(h.counts() == std::vector<uint64_t>{2, 1, 0, 1});
    CHECK(h.count() == 4);
    CHECK(h.sum_us() == 2006500);
    CHECK(h.quantile_s(0.25) == doctest::Approx(0.001));
    CHECK(h.quantile_s(0.5) == doctest::Approx(0.01));
    CHECK(h.quantile_s(0.99) == doctest::Approx(0.1));  // +Inf reports the largest bound
}

TEST_CASE("metrics: the exposition has HELP/TYPE, _total counters, escaped labels, cumulative buckets") {
    StatusData d = sample();
    Histogram sync({0.001, 0.01});
    sync.observe_us(500);
    sync.observe_us(5000);
    d.sync_latency = &sync;
    std::string t = render_prometheus(d);
    CHECK(t.find("# TYPE hato_messages_received_total counter\nhato_messages_received_total 40\n") != std::string::npos);
    CHECK(t.find("hato_connected_clients{listener=\"127.0.0.1:1883\"} 4\n") != std::string::npos);
    // A counter: every CONNACK that accepted, not the clients connected now.
    CHECK(t.find("hato_connections_total 25\n") != std::string::npos);
    CHECK(t.find("hato_accepted_connections_total{listener=\"127.0.0.1:1883\"} 9\n") != std::string::npos);
    CHECK(t.find("hato_connected_clients{listener=\"0.0.0.0:\\\"x\\\"\"} 1\n") != std::string::npos);
    CHECK(t.find("hato_store_refusals_total{reason=\"max_bytes\"} 2\n") != std::string::npos);
    CHECK(t.find("hato_store_refusals_total{reason=\"refusing\"} 1\n") != std::string::npos);
    CHECK(t.find("hato_sync_latency_seconds_bucket{le=\"0.001\"} 1\n") != std::string::npos);
    CHECK(t.find("hato_sync_latency_seconds_bucket{le=\"0.01\"} 2\n") != std::string::npos);
    CHECK(t.find("hato_sync_latency_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(t.find("hato_sync_latency_seconds_sum 0.0055\n") != std::string::npos);
    CHECK(t.find("hato_loop_pass_seconds") == std::string::npos);  // not given: not shown
    CHECK(t.find("hato_uptime_seconds 12.5\n") != std::string::npos);
    CHECK(t.find("# TYPE hato_route_cache_topics gauge\nhato_route_cache_topics 5\n") != std::string::npos);
    CHECK(t.find("# TYPE hato_route_cache_matches gauge\nhato_route_cache_matches 6\n") != std::string::npos);
    // every counter family ends in _total
    size_t pos = 0;
    while ((pos = t.find("# TYPE ", pos)) != std::string::npos) {
        size_t end = t.find('\n', pos);
        std::string line = t.substr(pos, end - pos);
        if (line.size() > 8 && line.substr(line.size() - 8) == " counter")
            CHECK_MESSAGE(line.find("_total ") != std::string::npos, line);
        pos = end;
    }
    d.storage_enabled = false;
    d.sync_latency = nullptr;
    t = render_prometheus(d);
    CHECK(t.find("hato_store_enabled 0\n") != std::string::npos);
    CHECK(t.find("hato_store_used_bytes") == std::string::npos);
}

TEST_CASE("metrics: health verdicts and their one-line reasons") {
    StatusData d = sample();
    std::string why;
    CHECK(healthy(d, why));
    CHECK(why == "ok");
    d.store_refusing = true;
    d.store_bytes = 1000;
    CHECK_FALSE(healthy(d, why));
    CHECK(why == "store refuses writes: max_bytes reached (1000 of 1000 bytes)");
    d.store_bytes = 10;
    d.store_sync_failing = true;
    CHECK_FALSE(healthy(d, why));
    CHECK(why.find("sync failing") != std::string::npos);
    d.store_refusing = false;
    d.recent_refusal = "disk full";
    CHECK_FALSE(healthy(d, why));
    CHECK(why == "store refused a write in the last 10 s: disk full");
    d.storage_enabled = false;   // memory only: the store cannot refuse
    CHECK(healthy(d, why));
    d.listeners_open = false;
    CHECK_FALSE(healthy(d, why));
    CHECK(why.find("listeners are closed") != std::string::npos);
    CHECK(why.find('\n') == std::string::npos);
}

TEST_CASE("metrics: status JSON and page carry the same numbers, escaped") {
    StatusData d = sample();
    d.listeners[1].name = "<b>&";
    std::string j = render_status_json(d);
    CHECK(j.find("\"connected\":5,") != std::string::npos);
    CHECK(j.find("\"connections_total\":25,") != std::string::npos);
    CHECK(j.find("\"fill\":0.6,") != std::string::npos);
    CHECK(j.find("\"sync_latency_seconds\":null") != std::string::npos);
    std::string h = render_status_html(d);
    CHECK(h.find("Connections: <span id=connected>5</span>") != std::string::npos);
    CHECK(h.find("&lt;b&gt;&amp;") != std::string::npos);
    CHECK(h.find("<b>&") == std::string::npos);
    CHECK(h.find("hato 1.2.3") != std::string::npos);
    CHECK(h.find("60.0 %") != std::string::npos);
}

TEST_CASE("metrics: one request per connection; routes, errors, timeout, connection bound") {
    FakeReactor r;
    int collected = 0;
    MetricsServer m(r, 500, [&] {
        ++collected;
        return sample();
    });
    REQUIRE(m.on_open(1));
    m.on_data(1, bytes("GET /metr"));
    CHECK(r.sent.count(1) == 0);
    m.on_data(1, bytes("ics HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE"));
    CHECK(r.sent[1].rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(r.sent[1].find("hato_messages_sent_total 80") != std::string::npos);
    CHECK(r.closed[1] == true);   // flushed close
    m.on_data(1, bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));  // after the answer: ignored
    CHECK(collected == 1);
    CHECK(m.on_close(1));
    CHECK_FALSE(m.on_close(1));

    REQUIRE(m.on_open(2));
    m.on_data(2, bytes("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(r.sent[2].rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(r.sent[2].find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(r.sent[2].substr(r.sent[2].size() - 4) == "\r\n\r\n");

    REQUIRE(m.on_open(7));   // RFC 9110 9.3.2: no body for HEAD, an error answer included
    m.on_data(7, bytes("HEAD /metrics HTTP/1.1\r\n\r\n"));
    CHECK(r.sent[7].rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(r.sent[7].substr(r.sent[7].size() - 4) == "\r\n\r\n");

    REQUIRE(m.on_open(3));
    m.on_data(3, bytes("DELETE / HTTP/1.1\r\n"));
    CHECK(r.sent[3].rfind("HTTP/1.1 405 ", 0) == 0);
    REQUIRE(m.on_open(8));   // a head sent a short header line at a time: answered at its blank line
    m.on_data(8, bytes("GET /healthz HTTP/1.1\r\n"));
    for (int i = 0; i < 300; ++i) m.on_data(8, bytes(i == 0 ? "Host: x\r\n" : "a:\r\n"));
    CHECK(r.sent.count(8) == 0);
    m.on_data(8, bytes("\r\n"));
    CHECK(r.sent[8].rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    REQUIRE(m.on_open(9));   // a bad request line in a later piece: answered at once
    m.on_data(9, bytes("G"));
    m.on_data(9, bytes("ET / HTTP/2.0\r\nHo"));
    CHECK(r.sent[9].rfind("HTTP/1.1 505 ", 0) == 0);

    REQUIRE(m.on_open(4));
    m.on_data(4, bytes("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(r.sent[4].rfind("HTTP/1.1 404 ", 0) == 0);

    REQUIRE(m.on_open(5));
    m.on_data(5, bytes("GET / HTTP/1.1\r\nHo"));
    m.on_tick(r.now + 499, {});
    CHECK(r.sent.count(5) == 0);
    m.on_tick(r.now + 500, {});
    CHECK(r.sent[5].rfind("HTTP/1.1 408 ", 0) == 0);
    m.set_request_timeout(2000);   // a reload's connect_timeout_ms, for connections from now on
    REQUIRE(m.on_open(6));
    m.on_tick(r.now + 1999, {});
    CHECK(r.sent.count(6) == 0);
    m.on_tick(r.now + 2000, {});
    CHECK(r.sent[6].rfind("HTTP/1.1 408 ", 0) == 0);

    for (net::ConnId id = 1; id <= 9; ++id) m.on_close(id);
    for (net::ConnId id = 100; id < 100 + MetricsServer::kMaxConnections; ++id) {
        r.now += 1;
        REQUIRE(m.on_open(id));
    }
    // full: the oldest unanswered one gives way with a 408
    REQUIRE(m.on_open(998));
    CHECK(r.sent[100].rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK(r.sent.count(101) == 0);
    m.on_data(998, bytes("GET /healthz HTTP/1.0\r\n\r\n"));
    CHECK(r.sent[998].rfind("HTTP/1.1 200 ", 0) == 0);
    // full of answered connections (still closing): a new one is refused
    for (net::ConnId id = 101; id < 100 + MetricsServer::kMaxConnections; ++id)
        m.on_data(id, bytes("GET /healthz HTTP/1.0\r\n\r\n"));
    CHECK_FALSE(m.on_open(999));
    m.close_all();
    CHECK(r.closed.count(999) == 0);
}

TEST_CASE("metrics: a refused write is remembered for 10 s, a too-large one is not") {
    FakeReactor r;
    MetricsServer m(r, 500, [] { return StatusData{}; });
    broker::Stats s;
    CHECK(m.recent_refusal(1000, s) == nullptr);
    s.store_refusals = 1;
    s.store_refused_too_large = 1;
    CHECK(m.recent_refusal(1100, s) == nullptr);
    s.store_refusals = 2;
    s.store_refused_quota = 1;
    CHECK(std::string(m.recent_refusal(1200, s)) == "max_bytes reached");
    CHECK(std::string(m.recent_refusal(1200 + MetricsServer::kRefusalMemoryMs - 1, s)) == "max_bytes reached");
    CHECK(m.recent_refusal(1200 + MetricsServer::kRefusalMemoryMs, s) == nullptr);
}
