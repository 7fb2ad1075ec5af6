// The [[modbus]] device counters in /metrics: one sample per device and
// family, labelled with the device; no family without a device.
#include <doctest/doctest.h>

#include "app/metrics.hpp"

using namespace hato::app;

TEST_CASE("modbus families: per device, only when devices exist") {
    StatusData d;
    d.version = "1";
    d.backend = "epoll";
    CHECK(render_prometheus(d).find("hato_modbus_") == std::string::npos);
    ModbusStatus a;
    a.device = "press1";
    a.online = true;
    a.polls = 10;
    a.skipped = 2;
    a.requests = 30;
    a.errors = 1;
    a.writes_refused = 7;
    a.latency_sum_s = 0.5;
    a.latency_max_s = 0.125;
    ModbusStatus b;
    b.device = "tank\"2";
    d.modbus = {a, b};
    const std::string out = render_prometheus(d);
    CHECK(out.find("# TYPE hato_modbus_polls_total counter") != std::string::npos);
    CHECK(out.find("hato_modbus_online{device=\"press1\"} 1\n") != std::string::npos);
    CHECK(out.find("hato_modbus_online{device=\"tank\\\"2\"} 0\n") != std::string::npos);
    CHECK(out.find("hato_modbus_polls_total{device=\"press1\"} 10\n") != std::string::npos);
    CHECK(out.find("hato_modbus_skipped_polls_total{device=\"press1\"} 2\n") != std::string::npos);
    CHECK(out.find("hato_modbus_requests_total{device=\"press1\"} 30\n") != std::string::npos);
    CHECK(out.find("hato_modbus_errors_total{device=\"press1\"} 1\n") != std::string::npos);
    CHECK(out.find("hato_modbus_writes_refused_total{device=\"press1\"} 7\n") != std::string::npos);
    CHECK(out.find("hato_modbus_request_seconds_total{device=\"press1\"} 0.5\n") != std::string::npos);
    CHECK(out.find("hato_modbus_request_seconds_max{device=\"press1\"} 0.125\n") != std::string::npos);
}
