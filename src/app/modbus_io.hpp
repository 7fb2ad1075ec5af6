// Device I/O for the [[modbus]] devices: ONE helper thread for all of them,
// with non-blocking sockets and serial ports and one poll() over them, so a
// slow or dead device never blocks the reactor. At most one request is in
// flight per device, and per serial line: RTU devices on one port (several
// unit ids on an RS-485 line) share it and take turns. Polls start on a
// fixed schedule (skipped and counted when a device is slower than its
// interval); errors close the link and reconnect with capped backoff (a
// silent unit leaves its line open for the others). Results go to the
// reactor as events on an eventfd (like auth/hash_pool); writes from MQTT
// come in the same way.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "modbus/codec.hpp"

namespace hato::app {

struct ModbusEvent {
    enum class Type : uint8_t {
        Values,     // a read answered: `read`, `registers` or `bits`
        Fault,      // `read` (npos: the whole device) failed: `error`
        Online,     // a poll completed without error
        WriteDone,  // `token` finished: `error` empty on success
    };
    static constexpr size_t kAll = ~size_t(0);
    size_t device = 0;
    Type type = Type::Values;
    size_t read = kAll;
    bool readback = false;            // Values: read again after a write
    std::vector<uint16_t> registers;
    std::vector<uint8_t> bits;
    std::string error;
    uint64_t token = 0;
    uint64_t ts_ms = 0;               // wall clock when the answer came
};

// Counters per device, written by the I/O thread, read by the metrics.
struct ModbusDeviceStats {
    std::atomic<uint64_t> polls{0};          // poll cycles started
    std::atomic<uint64_t> skipped{0};        // polls skipped: the previous one still ran
    std::atomic<uint64_t> requests{0};       // requests answered
    std::atomic<uint64_t> errors{0};         // timeouts, exceptions, lost connections
    std::atomic<uint64_t> latency_us_sum{0}; // over `requests`
    std::atomic<uint64_t> latency_us_max{0};
};

class ModbusIo {
public:
    struct DeviceSpec {
        const config::ModbusDevice* cfg = nullptr;
        std::vector<modbus::Request> reads;   // one poll: the planned reads, in order
    };

    explicit ModbusIo(std::vector<DeviceSpec> devices);
    ~ModbusIo();   // stops the thread, closes the devices
    ModbusIo(const ModbusIo&) = delete;
    ModbusIo& operator=(const ModbusIo&) = delete;

    bool start(std::string& err);
    int event_fd() const { return event_fd_; }

    // Queues a write; `readback` is the read that covers the point, done
    // right after a successful write.
    void write(size_t device, modbus::Request req, size_t readback, uint64_t token);
    // Moves the events since the last call into `out` (reactor thread).
    void drain(std::vector<ModbusEvent>& out);

    const ModbusDeviceStats& stats(size_t device) const;

    struct Device;
    struct Line;

private:
    void run();
    void post(ModbusEvent ev);

    std::vector<std::unique_ptr<Line>> lines_;   // serial ports, each shared by its RTU devices
    std::vector<std::unique_ptr<Device>> devices_;
    std::thread thread_;
    int event_fd_ = -1;   // thread -> reactor
    int wake_fd_ = -1;    // reactor -> thread (writes, stop)
    std::mutex mutex_;
    std::vector<ModbusEvent> events_;
    struct WriteJob {
        size_t device;
        modbus::Request req;
        size_t readback;
        uint64_t token;
    };
    std::deque<WriteJob> writes_;
    std::atomic<bool> stopping_{false};
};

}  // namespace hato::app
