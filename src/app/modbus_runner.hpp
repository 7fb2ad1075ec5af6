// The wiring of the [[modbus]] devices: their points planned into reads,
// the I/O thread (modbus_io) started, and its results published through the
// broker's normal path (retained values and QoS 1/2 copies are stored like
// a client's). "<topic>/set" PUBLISHes the ACL let through are seen through
// broker::PublishObserver, converted and written; the answer goes to
// "<topic>/set/result", and the value is read back and published.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "app/metrics.hpp"
#include "app/modbus_io.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "modbus/plan.hpp"
#include "modbus/schedule.hpp"
#include "modbus/value.hpp"
#include "net/reactor.hpp"

namespace hato::app {

class ModbusRunner final : public broker::PublishObserver {
public:
    // Keeps its own copy of the devices: a reload replaces the server's
    // configuration (the devices are restart-only), while the I/O thread
    // and the points keep reading theirs.
    ModbusRunner(std::vector<config::ModbusDevice> cfgs, net::Reactor& reactor);
    ~ModbusRunner() override;

    // Starts the I/O thread and takes writes from the broker.
    bool start(broker::Broker& broker, std::string& err);
    // Publishes the write answers queued from inside the broker.
    void flush();
    void stop();

    void on_client_publish(std::string_view topic, std::span<const uint8_t> payload, bool bridged_retained) override;

    std::vector<ModbusStatus> status() const;
    // $SYS/broker/hato/modbus/<device>/...: the status() counters, like the
    // other $SYS topics (memory only), every `interval_s` (0: never).
    void publish_sys(uint64_t now_ms, uint32_t interval_s);

private:
    struct Point {
        const config::ModbusPoint* cfg = nullptr;
        std::string topic;
        size_t read = 0;             // the planned read that covers it
        modbus::Value last;          // as last published
        bool good = false;           // last published quality
        bool known = false;          // anything published yet
        bool force = false;          // written: the read-back publishes even if unchanged
    };
    struct Device {
        const config::ModbusDevice* cfg = nullptr;
        std::vector<Point> points;
        std::vector<modbus::PlannedRead> plan;
        bool online = false;
        bool status_known = false;
        modbus::WriteQueueBound writes;   // accepted writes not yet answered
    };

    void collect();
    void on_values(Device& d, const ModbusEvent& e);
    void on_fault(Device& d, const ModbusEvent& e);
    void publish(const std::string& topic, const std::string& payload, uint8_t qos, bool retain);
    void publish_point(Point& p, const modbus::Value& v, bool good, uint64_t ts);

    net::Reactor& reactor_;
    broker::Broker* broker_ = nullptr;
    const std::vector<config::ModbusDevice> cfgs_;   // what devices_ and io_ point into
    std::vector<Device> devices_;
    std::unique_ptr<ModbusIo> io_;
    // "<point topic>/set" -> (device, point)
    std::unordered_map<std::string, std::pair<size_t, size_t>> set_topics_;
    std::unordered_map<uint64_t, std::string> pending_;   // write token -> result topic
    std::vector<std::pair<std::string, std::string>> answers_;   // (topic, payload), for flush()
    uint64_t next_token_ = 1;
    std::vector<ModbusEvent> events_;
    bool stopping_ = false;
    uint64_t sys_last_ms_ = 0;
    bool sys_published_ = false;
};

}  // namespace hato::app
