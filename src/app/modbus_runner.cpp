#include "app/modbus_runner.hpp"

#include <cstdio>

#include "app/log.hpp"

namespace hato::app {

namespace {

std::string result_json(const std::string& error) {
    if (error.empty()) return "{\"ok\": true}";
    modbus::Value v;
    v.tag = modbus::Value::Tag::Text;
    v.text = error;
    return "{\"ok\": false, \"error\": " + modbus::to_json(v) + "}";
}

}  // namespace

ModbusRunner::ModbusRunner(std::vector<config::ModbusDevice> cfgs, net::Reactor& reactor)
    : reactor_(reactor), cfgs_(std::move(cfgs)) {
    std::vector<ModbusIo::DeviceSpec> specs;
    for (const config::ModbusDevice& c : cfgs_) {
        Device d;
        d.cfg = &c;
        std::vector<modbus::PlanPoint> pts;
        for (const config::ModbusPoint& p : c.points) {
            Point pt;
            pt.cfg = &p;
            pt.topic = c.topic_prefix + "/" + p.name;
            d.points.push_back(std::move(pt));
            pts.push_back({p.kind, p.address, modbus::width(p.kind, p.format)});
        }
        d.plan = modbus::plan_reads(pts, c.max_gap);
        ModbusIo::DeviceSpec spec;
        spec.cfg = &c;
        for (size_t r = 0; r < d.plan.size(); ++r) {
            for (size_t i : d.plan[r].points) d.points[i].read = r;
            modbus::Request req;
            req.function = modbus::read_function(d.plan[r].kind);
            req.address = d.plan[r].address;
            req.count = d.plan[r].count;
            spec.reads.push_back(std::move(req));
        }
        for (size_t i = 0; i < d.points.size(); ++i)
            if (d.points[i].cfg->writable) set_topics_[d.points[i].topic + "/set"] = {devices_.size(), i};
        devices_.push_back(std::move(d));
        specs.push_back(std::move(spec));
    }
    io_ = std::make_unique<ModbusIo>(std::move(specs));
}

ModbusRunner::~ModbusRunner() {
    io_.reset();   // joins the I/O thread before the devices go
}

bool ModbusRunner::start(broker::Broker& broker, std::string& err) {
    broker_ = &broker;
    if (devices_.empty()) return true;
    if (!io_->start(err)) return false;
    reactor_.watch_readable(io_->event_fd(), [this] { collect(); });
    broker.set_publish_observer(this);
    for (const Device& d : devices_)
        log_info("modbus %s: %zu point(s) in %zu read(s) every %u ms (%s)", d.cfg->name.c_str(), d.points.size(),
                 d.plan.size(), d.cfg->poll_interval_ms,
                 d.cfg->transport == "tcp" ? (d.cfg->host + ":" + std::to_string(d.cfg->port)).c_str()
                                           : d.cfg->serial.c_str());
    return true;
}

void ModbusRunner::stop() {
    stopping_ = true;
    if (broker_) broker_->set_publish_observer(nullptr);
}

void ModbusRunner::publish(const std::string& topic, const std::string& payload, uint8_t qos, bool retain) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(payload.data());
    broker_->publish_stored(topic, {bytes, payload.size()}, qos, retain);
}

void ModbusRunner::publish_point(Point& p, const modbus::Value& v, bool good, uint64_t ts) {
    p.known = true;
    p.good = good;
    if (good) p.last = v;
    // A raw payload carries no quality: the status topic tells instead.
    if (p.cfg->raw) {
        if (good) publish(p.topic, modbus::to_text(v), p.cfg->qos, p.cfg->retain);
        return;
    }
    publish(p.topic, modbus::json_payload(v, ts, good), p.cfg->qos, p.cfg->retain);
}

void ModbusRunner::flush() {
    if (answers_.empty() || !broker_) return;
    std::vector<std::pair<std::string, std::string>> out;
    out.swap(answers_);
    for (auto& [topic, payload] : out) publish(topic, payload, 1, false);
}

void ModbusRunner::collect() {
    events_.clear();
    io_->drain(events_);
    if (stopping_) return;
    for (const ModbusEvent& e : events_) {
        Device& d = devices_[e.device];
        switch (e.type) {
        case ModbusEvent::Type::Values:
            on_values(d, e);
            break;
        case ModbusEvent::Type::Fault:
            on_fault(d, e);
            break;
        case ModbusEvent::Type::Online:
            if (!d.online || !d.status_known) {
                if (d.status_known) log_info("modbus %s: online again", d.cfg->name.c_str());
                d.online = true;
                d.status_known = true;
                publish(d.cfg->status_topic, "online", 1, true);
            }
            break;
        case ModbusEvent::Type::WriteDone: {
            d.writes.done();
            auto it = pending_.find(e.token);
            if (it == pending_.end()) break;
            publish(it->second, result_json(e.error), 1, false);
            pending_.erase(it);
            break;
        }
        }
    }
    flush();
}

void ModbusRunner::on_values(Device& d, const ModbusEvent& e) {
    if (e.read >= d.plan.size()) return;
    const modbus::PlannedRead& r = d.plan[e.read];
    for (size_t i : r.points) {
        Point& p = d.points[i];
        const config::ModbusPoint& c = *p.cfg;
        const size_t at = c.address - r.address;
        modbus::Value v;
        if (modbus::is_bit_kind(c.kind)) {
            if (at >= e.bits.size()) continue;
            v = modbus::decode_bit(e.bits[at], c.format);
        } else {
            const size_t w = modbus::width(c.kind, c.format);
            if (at + w > e.registers.size()) continue;
            v = modbus::decode_registers(std::span<const uint16_t>(e.registers).subspan(at, w), c.format);
        }
        const bool publish_now = !p.known || !p.good || c.every_poll || (e.readback && p.force) ||
                                 modbus::changed(p.last, v, c.deadband);
        if (e.readback) p.force = false;
        if (publish_now) publish_point(p, v, true, e.ts_ms);
    }
}

void ModbusRunner::on_fault(Device& d, const ModbusEvent& e) {
    // Once per point and episode: a point already bad stays quiet.
    for (size_t i = 0; i < d.points.size(); ++i) {
        Point& p = d.points[i];
        if (e.read != ModbusEvent::kAll && p.read != e.read) continue;
        if (p.known && !p.good) continue;
        publish_point(p, p.last, false, e.ts_ms);
    }
    if (d.online || !d.status_known) {
        log_warn("modbus %s: offline: %s", d.cfg->name.c_str(), e.error.c_str());
        d.online = false;
        d.status_known = true;
        publish(d.cfg->status_topic, "offline: " + e.error, 1, true);
    }
}

void ModbusRunner::on_client_publish(std::string_view topic, std::span<const uint8_t> payload, bool bridged_retained) {
    if (stopping_ || set_topics_.empty()) return;
    auto it = set_topics_.find(std::string(topic));
    if (it == set_topics_.end()) return;
    const auto [di, pi] = it->second;
    Device& d = devices_[di];
    Point& p = d.points[pi];
    const config::ModbusPoint& c = *p.cfg;
    const std::string result_topic = p.topic + "/set/result";
    // An upstream sends its retained copy again at every (re)subscription:
    // written, it would put an old setpoint back after each WAN outage.
    if (bridged_retained) {
        answers_.emplace_back(result_topic, result_json("retained /set from a bridge not written (an upstream "
                                                        "replays its retained copy): publish /set unretained"));
        return;
    }
    std::vector<uint16_t> regs;
    uint8_t bit = 0;
    std::string err;
    const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (!modbus::encode_write(text, c.kind, c.format, regs, bit, err)) {
        // Published at flush(): never back into the broker from inside it.
        answers_.emplace_back(result_topic, result_json(err));
        return;
    }
    if (!d.writes.admit()) {
        answers_.emplace_back(result_topic, result_json("write queue full: " + std::to_string(d.writes.limit()) +
                                                        " writes to " + d.cfg->name + " wait already"));
        return;
    }
    modbus::Request req;
    req.address = c.address;
    if (c.kind == modbus::Kind::Coil) {
        req.function = modbus::fn::WriteSingleCoil;
        req.bits = {bit};
    } else if (regs.size() == 1) {
        req.function = modbus::fn::WriteSingleRegister;
        req.registers = std::move(regs);
    } else {
        req.function = modbus::fn::WriteMultipleRegisters;
        req.registers = std::move(regs);
    }
    const uint64_t token = next_token_++;
    pending_[token] = result_topic;
    p.force = true;
    io_->write(di, std::move(req), p.read, token);
}

std::vector<ModbusStatus> ModbusRunner::status() const {
    std::vector<ModbusStatus> out;
    for (size_t i = 0; i < devices_.size(); ++i) {
        const ModbusDeviceStats& s = io_->stats(i);
        ModbusStatus m;
        m.device = devices_[i].cfg->name;
        m.online = devices_[i].online;
        m.polls = s.polls;
        m.skipped = s.skipped;
        m.requests = s.requests;
        m.errors = s.errors;
        m.writes_refused = devices_[i].writes.refused();
        m.latency_sum_s = double(s.latency_us_sum) / 1e6;
        m.latency_max_s = double(s.latency_us_max) / 1e6;
        out.push_back(std::move(m));
    }
    return out;
}

void ModbusRunner::publish_sys(uint64_t now_ms, uint32_t interval_s) {
    if (!broker_ || stopping_ || interval_s == 0 || devices_.empty()) return;
    if (sys_published_ && now_ms - sys_last_ms_ < uint64_t(interval_s) * 1000) return;
    sys_published_ = true;
    sys_last_ms_ = now_ms;
    auto put = [&](const std::string& topic, const std::string& value) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(value.data());
        broker_->publish_internal(topic, {bytes, value.size()}, /*retain=*/true);
    };
    const std::vector<ModbusStatus> all = status();
    for (size_t i = 0; i < all.size(); ++i) {
        const ModbusStatus& m = all[i];
        const std::string base = "$SYS/broker/hato/modbus/" + m.device + "/";
        put(base + "online", m.online ? "1" : "0");
        put(base + "polls", std::to_string(m.polls));
        put(base + "polls/skipped", std::to_string(m.skipped));
        put(base + "requests", std::to_string(m.requests));
        put(base + "errors", std::to_string(m.errors));
        put(base + "writes/refused", std::to_string(m.writes_refused));
        char avg[32];
        snprintf(avg, sizeof avg, "%.2f", m.requests ? m.latency_sum_s * 1000.0 / double(m.requests) : 0.0);
        put(base + "latency_ms/avg", avg);
    }
}

}  // namespace hato::app
