// The order a reload applies a new configuration in (app/reload.hpp), on a
// recorder: removed listeners close first, security files load before any
// new listener opens, [sys]/[metrics] restart only when changed.
#include <doctest/doctest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "app/reload.hpp"

using namespace hato;
using hato::app::apply_reload;

namespace {

struct Recorder final : app::ReloadSteps {
    std::vector<std::string> steps;
    config::AppConfig adopted;
    std::vector<uint16_t> busy_ports;   // can_listen fails on these
    bool can_listen(const std::string&, uint16_t port, std::string& err) override {
        steps.push_back("try " + std::to_string(port));
        err = "Address already in use";
        return std::find(busy_ports.begin(), busy_ports.end(), port) == busy_ports.end();
    }
    void close_listener(size_t slot) override { steps.push_back("close " + std::to_string(slot)); }
    void adopt(config::AppConfig next) override {
        steps.push_back("adopt");
        adopted = std::move(next);
    }
    void reload_security() override { steps.push_back("security"); }
    void open_added_listener(size_t slot) override { steps.push_back("open " + std::to_string(slot)); }
    void restart_sys() override { steps.push_back("sys"); }
    void reopen_metrics(const config::MetricsConfig& old) override {
        steps.push_back("metrics from " + std::to_string(old.port));
    }
    void reload_bridges() override { steps.push_back("bridges"); }
};

config::Listener listener(uint16_t port) {
    config::Listener l;
    l.address = "127.0.0.1";
    l.port = port;
    return l;
}

}  // namespace

TEST_CASE("removed listeners close, then the config, security, new listeners, bridges") {
    config::AppConfig running;
    running.listeners = {listener(2883), listener(1884)};
    running.listeners[0].password_file = "/etc/hato/old.passwd";
    config::AppConfig next = running;
    next.listeners = {listener(1884), listener(1885)};
    next.listeners[0].max_connections = 7;
    Recorder r;
    apply_reload(running, {true, true}, next, r);
    CHECK(r.steps == std::vector<std::string>{"try 1885", "close 0", "adopt", "security", "open 2", "bridges"});
    // The table keeps slot indices: slot 0 emptied, 1884 kept in slot 1 with its new settings.
    REQUIRE(r.adopted.listeners.size() == 3);
    CHECK(r.adopted.listeners[0].port == config::Listener{}.port);   // emptied: no files, no TLS
    CHECK(r.adopted.listeners[0].password_file.empty());
    CHECK(r.adopted.listeners[1].port == 1884);
    CHECK(r.adopted.listeners[1].max_connections == 7);
    CHECK(r.adopted.listeners[2].port == 1885);
}

// A listener moved to a busy port closed the old one, then failed to bind:
// the gateway was left with no listener until the next reload.
TEST_CASE("a new listener that cannot bind refuses the whole reload: nothing closed or adopted") {
    config::AppConfig running;
    running.listeners = {listener(1883), listener(2883)};
    config::AppConfig next = running;
    next.listeners = {listener(1883), listener(2884)};
    Recorder r;
    r.busy_ports = {2884};
    CHECK_FALSE(apply_reload(running, {true, true}, next, r));
    CHECK(r.steps == std::vector<std::string>{"try 2884"});
}

TEST_CASE("a listener moved to another address on its own port is not tried: the old socket is ours") {
    config::AppConfig running;
    running.listeners = {listener(1883)};
    running.listeners[0].address = "0.0.0.0";
    config::AppConfig next = running;
    next.listeners = {listener(1883)};
    Recorder r;
    r.busy_ports = {1883};
    CHECK(apply_reload(running, {true}, next, r));
    CHECK(r.steps == std::vector<std::string>{"close 0", "adopt", "security", "open 1", "bridges"});
}

// A listener a reload added that failed to open keeps no settings at the
// next reload: its certificate and files were loaded at every reload after,
// and one of them gone made every listener's reload fail.
TEST_CASE("a slot that never opened is emptied at the next reload") {
    config::AppConfig running;
    running.listeners = {listener(1883), listener(8883)};
    running.listeners[1].tls.enabled = true;
    running.listeners[1].tls.cert = "/etc/hato/gone.crt";
    config::AppConfig next = running;
    next.listeners = {listener(1883), listener(8884)};
    Recorder r;
    apply_reload(running, {true, false}, next, r);   // slot 1 failed to bind
    CHECK(r.steps ==
          std::vector<std::string>{"try 8884", "adopt", "security", "open 2", "bridges"});   // nothing to close
    REQUIRE(r.adopted.listeners.size() == 3);
    CHECK(r.adopted.listeners[0].port == 1883);
    CHECK_FALSE(r.adopted.listeners[1].tls.enabled);
    CHECK(r.adopted.listeners[1].tls.cert.empty());
    CHECK(r.adopted.listeners[2].port == 8884);
}

TEST_CASE("[sys] and [metrics] restart only when their settings changed; the metrics endpoint moves before new listeners open") {
    config::AppConfig running;
    running.listeners = {listener(1883)};
    running.metrics.port = 9100;
    Recorder unchanged;
    apply_reload(running, {true}, running, unchanged);
    CHECK(unchanged.steps == std::vector<std::string>{"adopt", "security", "bridges"});

    config::AppConfig next = running;
    next.sys_interval_s = running.sys_interval_s + 5;
    next.metrics.port = 9200;
    next.listeners.push_back(listener(1890));
    Recorder changed;
    apply_reload(running, {true}, next, changed);
    CHECK(changed.steps ==
          std::vector<std::string>{"try 1890", "try 9200", "adopt", "security", "metrics from 9100", "open 1", "sys",
                                   "bridges"});
    // A new listener on the port the metrics endpoint leaves opens after it closed.
    config::AppConfig swap = running;
    swap.metrics.port = 9200;
    swap.listeners.push_back(listener(9100));
    Recorder swapped;
    swapped.busy_ports = {9100};   // held by the running endpoint
    CHECK(apply_reload(running, {true}, swap, swapped));
    CHECK(swapped.steps == std::vector<std::string>{"try 9200", "adopt", "security", "metrics from 9100", "open 1",
                                                    "bridges"});
}

// The metrics endpoint closed its old socket, then failed to bind the new
// port: monitoring was gone until the next reload.
TEST_CASE("metrics moved to a port that cannot bind refuses the whole reload") {
    config::AppConfig running;
    running.listeners = {listener(1883)};
    running.metrics.port = 9100;
    config::AppConfig next = running;
    next.metrics.port = 9200;
    Recorder r;
    r.busy_ports = {9200};
    CHECK_FALSE(apply_reload(running, {true}, next, r));
    CHECK(r.steps == std::vector<std::string>{"try 9200"});

    next.metrics = running.metrics;   // to another address on its own port: ours, not tried
    next.metrics.address = "0.0.0.0";
    Recorder moved;
    moved.busy_ports = {9100};
    CHECK(apply_reload(running, {true}, next, moved));
    CHECK(moved.steps == std::vector<std::string>{"adopt", "security", "metrics from 9100", "bridges"});
}

TEST_CASE("restart-only keys keep their running values in what is adopted") {
    config::AppConfig running;
    running.storage.dir = "/var/lib/hato";
    config::AppConfig next = running;
    next.storage.dir = "/elsewhere";
    next.log_level = config::LogLevel::Debug;
    Recorder r;
    apply_reload(running, {}, next, r);
    CHECK(r.adopted.storage.dir == "/var/lib/hato");
    CHECK(r.adopted.log_level == config::LogLevel::Debug);
}
