#include "app/metrics.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "net/http.hpp"

namespace hato::app {

// --- Histogram ----------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds_s)
    : bounds_(std::move(upper_bounds_s)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe_us(uint64_t us) {
    size_t i = 0;
    const double s = double(us) / 1e6;
    while (i < bounds_.size() && s > bounds_[i]) ++i;
    ++counts_[i];
    ++count_;
    sum_us_ += us;
}

double Histogram::quantile_s(double q) const {
    if (count_ == 0 || bounds_.empty()) return 0;
    uint64_t rank = uint64_t(q * double(count_));
    if (rank >= count_) rank = count_ - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
        seen += counts_[i];
        if (seen > rank) return i < bounds_.size() ? bounds_[i] : bounds_.back();
    }
    return bounds_.back();
}

std::optional<double> Histogram::quantile_ms(const Counts& now, const Counts& before, double q) const {
    auto in_period = [&](size_t i) { return now[i] - (i < before.size() ? before[i] : 0); };
    uint64_t total = 0;
    for (size_t i = 0; i < now.size(); ++i) total += in_period(i);
    if (total == 0) return std::nullopt;
    const double rank = q * double(total);
    uint64_t below = 0;
    for (size_t i = 0; i < now.size(); ++i) {
        const uint64_t n = in_period(i);
        if (n == 0 || double(below + n) < rank) {
            below += n;
            continue;
        }
        const double lo = i == 0 ? 0.0 : bounds_[i - 1] * 1000.0;
        if (i == bounds_.size()) return lo;
        const double hi = bounds_[i] * 1000.0;
        const double frac = (rank - double(below)) / double(n);
        return lo + (hi - lo) * frac;
    }
    return bounds_.empty() ? 0.0 : bounds_.back() * 1000.0;
}

// --- Rendering ------------------------------------------------------------------

namespace {

std::string num(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

std::string num(uint64_t v) { return std::to_string(v); }

// Prometheus label values and JSON/HTML strings: what must be escaped differs.
std::string label_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (uint8_t(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(uint8_t(c)));
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

class Exposition {
public:
    void family(const char* name, const char* type, const char* help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(const std::string& name, const std::string& labels, const std::string& value) {
        out_ += name;
        if (!labels.empty()) out_ += "{" + labels + "}";
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }
    void single(const char* name, const char* type, const char* help, const std::string& value) {
        family(name, type, help);
        sample(name, "", value);
    }
    void histogram(const char* name, const char* help, const Histogram& h) {
        family(name, "histogram", help);
        uint64_t cumulative = 0;
        for (size_t i = 0; i < h.bounds().size(); ++i) {
            cumulative += h.counts()[i];
            sample(std::string(name) + "_bucket", "le=\"" + num(h.bounds()[i]) + "\"", num(cumulative));
        }
        sample(std::string(name) + "_bucket", "le=\"+Inf\"", num(h.count()));
        sample(std::string(name) + "_sum", "", num(double(h.sum_us()) / 1e6));
        sample(std::string(name) + "_count", "", num(h.count()));
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

uint64_t connected_total(const StatusData& d) {
    uint64_t n = 0;
    for (const ListenerStatus& l : d.listeners) n += l.connected;
    return n;
}

// Fill of the store as a fraction of max_bytes; negative without a limit.
double store_fill(const StatusData& d) {
    return d.store_max_bytes ? double(d.store_bytes) / double(d.store_max_bytes) : -1.0;
}

}  // namespace

std::string render_prometheus(const StatusData& d) {
    const broker::Stats& s = d.stats;
    Exposition e;
    e.family("hato_build_info", "gauge", "Version of this hato and its event backend (always 1).");
    e.sample("hato_build_info", "version=\"" + label_escape(d.version) + "\",backend=\"" + label_escape(d.backend) + "\"",
             "1");
    e.single("hato_uptime_seconds", "gauge", "Seconds since the broker started serving (listeners open).", num(d.uptime_s));
    e.family("hato_connected_clients", "gauge", "Open client connections, by listener.");
    for (const ListenerStatus& l : d.listeners)
        e.sample("hato_connected_clients", "listener=\"" + label_escape(l.name) + "\"", num(l.connected));
    e.family("hato_accepted_connections_total", "counter", "TCP connections accepted, by listener.");
    for (const ListenerStatus& l : d.listeners)
        e.sample("hato_accepted_connections_total", "listener=\"" + label_escape(l.name) + "\"", num(l.accepted));
    e.single("hato_connections_total", "counter", "MQTT connections accepted (successful CONNACK).",
             num(s.connects));
    e.single("hato_messages_received_total", "counter", "PUBLISH messages received from clients.",
             num(s.messages_in));
    e.single("hato_messages_sent_total", "counter", "PUBLISH messages sent to clients.", num(s.messages_out));
    e.single("hato_qos0_dropped_total", "counter",
             "QoS 0 messages dropped because the subscriber's output was over max_output_bytes.",
             num(s.qos0_dropped));
    e.single("hato_queued_dropped_total", "counter",
             "Messages dropped because a session queue was full (max_queued_messages / max_queued_bytes).",
             num(s.queued_dropped));
    e.single("hato_unreadable_dropped_total", "counter",
             "Queued or in-flight messages dropped because the session's owner may not read them (ACL).",
             num(s.unreadable_dropped));
    e.single("hato_slow_clients_closed_total", "counter",
             "Clients closed for staying over max_output_bytes longer than slow_client_timeout_ms.",
             num(s.slow_clients_closed));
    e.single("hato_subscriptions_refused_limit_total", "counter",
             "Subscriptions refused because the client held max_subscriptions_per_client.",
             num(s.subscriptions_refused_limit));
    e.single("hato_sessions_refused_limit_total", "counter",
             "CONNECTs refused because they would add a persistent session past max_sessions.",
             num(s.sessions_refused_limit));
    e.single("hato_retained_refused_limit_total", "counter",
             "Retained messages to a new topic not retained because max_retained_messages topics were held.",
             num(s.retained_refused_limit));
    e.single("hato_topics_refused_levels_total", "counter",
             "PUBLISH topics, subscription filters and will topics refused for having more than max_topic_levels "
             "levels or max_topic_length bytes.",
             num(s.topics_refused_levels));
    e.single("hato_inputs_deferred_total", "counter",
             "Times a connection's input waited for a later loop pass because its matching work for the pass ran out.",
             num(s.inputs_deferred));
    e.single("hato_input_alloc_failures_total", "counter",
             "Clients closed because the buffer for their partly received packet could not be allocated.",
             num(s.partial_alloc_failures));
    e.single("hato_route_cache_topics", "gauge",
             "Topics whose subscription matches the route cache holds (emptied when subscriptions change).",
             num(d.route_cache_topics));
    e.single("hato_route_cache_matches", "gauge", "Subscription matches the route cache holds for those topics.",
             num(d.route_cache_matches));
    e.family("hato_store_refusals_total", "counter", "Durable writes the store refused, by reason.");
    e.sample("hato_store_refusals_total", "reason=\"max_bytes\"", num(s.store_refused_quota));
    e.sample("hato_store_refusals_total", "reason=\"disk_full\"", num(s.store_refused_disk_full));
    e.sample("hato_store_refusals_total", "reason=\"too_large\"", num(s.store_refused_too_large));
    e.sample("hato_store_refusals_total", "reason=\"io_error\"", num(s.store_refused_io));
    e.sample("hato_store_refusals_total", "reason=\"refusing\"", num(s.store_refused_full));
    e.single("hato_store_enabled", "gauge", "1 when messages and sessions are stored on disk.",
             d.storage_enabled ? "1" : "0");
    if (d.storage_enabled) {
        e.single("hato_store_used_bytes", "gauge", "Bytes the append log uses on disk.", num(d.store_bytes));
        e.single("hato_store_dead_bytes", "gauge", "Bytes of the log no longer live (compaction frees them).",
                 num(d.store_dead_bytes));
        e.single("hato_store_max_bytes", "gauge", "[storage] max_bytes_mb in bytes (0: no limit).",
                 num(d.store_max_bytes));
        e.single("hato_store_segments", "gauge", "Segment files of the log.", num(d.store_segments));
        e.single("hato_store_records", "gauge", "Records in the log.", num(d.store_records));
        e.single("hato_store_refusing", "gauge",
                 "1 while the store refuses new durable writes (max_bytes, disk full, failed sync).",
                 d.store_refusing ? "1" : "0");
    }
    if (!d.bridges.empty()) {
        auto label = [](const BridgeStatus& b) { return "bridge=\"" + label_escape(b.name) + "\""; };
        e.family("hato_bridge_connected", "gauge", "1 while the bridge is connected to its upstream, by bridge.");
        for (const BridgeStatus& b : d.bridges) e.sample("hato_bridge_connected", label(b), b.connected ? "1" : "0");
        e.family("hato_bridge_backlog_messages", "gauge",
                 "Messages waiting for the upstream's acknowledgement (queued and in flight), by bridge.");
        for (const BridgeStatus& b : d.bridges) e.sample("hato_bridge_backlog_messages", label(b), num(b.backlog_messages));
        e.family("hato_bridge_backlog_bytes", "gauge", "Bytes of those messages, by bridge.");
        for (const BridgeStatus& b : d.bridges) e.sample("hato_bridge_backlog_bytes", label(b), num(b.backlog_bytes));
        e.family("hato_bridge_backlog_oldest_age_seconds", "gauge",
                 "Age of the oldest backlog message (0 when empty), by bridge.");
        for (const BridgeStatus& b : d.bridges)
            e.sample("hato_bridge_backlog_oldest_age_seconds", label(b), num(b.oldest_age_s));
        e.family("hato_bridge_backlog_dropped_total", "counter",
                 "Messages dropped from the backlog since start: max_queued_bytes reached (when_full), or the store "
                 "full (drop_oldest), by bridge.");
        for (const BridgeStatus& b : d.bridges)
            e.sample("hato_bridge_backlog_dropped_total", label(b), num(b.backlog_dropped));
        // A counter family with a sample per direction for each bridge.
        auto per_direction = [&](const char* name, const char* help, uint64_t BridgeStatus::*out,
                                 uint64_t BridgeStatus::*in) {
            e.family(name, "counter", help);
            for (const BridgeStatus& b : d.bridges) {
                e.sample(name, label(b) + ",direction=\"out\"", num(b.*out));
                e.sample(name, label(b) + ",direction=\"in\"", num(b.*in));
            }
        };
        per_direction("hato_bridge_forwarded_messages_total",
                      "Messages carried over the bridge since start, by bridge and direction.",
                      &BridgeStatus::forwarded_out, &BridgeStatus::forwarded_in);
        per_direction("hato_bridge_too_large_dropped_total",
                      "Messages dropped since start because the receiving side does not take a packet that large, "
                      "by bridge and direction.",
                      &BridgeStatus::too_large_out, &BridgeStatus::too_large_in);
        per_direction("hato_bridge_unmappable_dropped_total",
                      "Messages dropped since start because their rule maps the topic to one that is not a valid "
                      "topic name (an empty one), by bridge and direction.",
                      &BridgeStatus::unmappable_out, &BridgeStatus::unmappable_in);
        e.family("hato_bridge_refused_total", "counter",
                 "Messages the upstream refused (v5 reason code 0x80 or above) since start, by bridge.");
        for (const BridgeStatus& b : d.bridges) e.sample("hato_bridge_refused_total", label(b), num(b.refused_out));
        e.family("hato_bridge_refused_locally_total", "counter",
                 "Inbound messages the local broker refused for good (a reason code other than 0x97, e.g. 0x99 "
                 "payload format invalid) since start, dropped, by bridge.");
        for (const BridgeStatus& b : d.bridges)
            e.sample("hato_bridge_refused_locally_total", label(b), num(b.refused_in));
        e.family("hato_bridge_upstream_closes_on_same_message", "gauge",
                 "Connections in a row the upstream closed right after the same unanswered outbound message "
                 "(3 or more: most likely it will not take it), by bridge.");
        for (const BridgeStatus& b : d.bridges)
            e.sample("hato_bridge_upstream_closes_on_same_message", label(b), num(b.closes_on_same));
    }
    if (d.sync_latency)
        e.histogram("hato_sync_latency_seconds", "Time from starting a group-commit sync to its completion.",
                    *d.sync_latency);
    if (d.loop_pass)
        e.histogram("hato_loop_pass_seconds",
                    "Busy time of one event loop pass (first event handled to the end of the pass).", *d.loop_pass);
    if (!d.modbus.empty()) {
        struct Family {
            const char* name;
            const char* type;
            const char* help;
            std::string (*value)(const ModbusStatus&);
        };
        static const Family families[] = {
            {"hato_modbus_online", "gauge", "1 while the Modbus device answers its polls.",
             [](const ModbusStatus& m) { return std::string(m.online ? "1" : "0"); }},
            {"hato_modbus_polls_total", "counter", "Poll cycles started, by Modbus device.",
             [](const ModbusStatus& m) { return num(m.polls); }},
            {"hato_modbus_skipped_polls_total", "counter",
             "Polls skipped because the previous one still ran (device slower than poll_interval_ms).",
             [](const ModbusStatus& m) { return num(m.skipped); }},
            {"hato_modbus_requests_total", "counter", "Modbus requests answered, by device.",
             [](const ModbusStatus& m) { return num(m.requests); }},
            {"hato_modbus_errors_total", "counter", "Timeouts, exceptions and lost connections, by Modbus device.",
             [](const ModbusStatus& m) { return num(m.errors); }},
            {"hato_modbus_writes_refused_total", "counter",
             "Writes from MQTT refused at once because the device's write queue was full.",
             [](const ModbusStatus& m) { return num(m.writes_refused); }},
            {"hato_modbus_request_seconds_total", "counter", "Time from request to answer, summed over the answered requests.",
             [](const ModbusStatus& m) { return num(m.latency_sum_s); }},
            {"hato_modbus_request_seconds_max", "gauge", "The slowest answer since start.",
             [](const ModbusStatus& m) { return num(m.latency_max_s); }},
        };
        for (const Family& f : families) {
            e.family(f.name, f.type, f.help);
            for (const ModbusStatus& m : d.modbus)
                e.sample(f.name, "device=\"" + label_escape(m.device) + "\"", f.value(m));
        }
    }
    return e.take();
}

bool healthy(const StatusData& d, std::string& reason) {
    if (!d.listeners_open) {
        reason = "listeners are closed (shutting down)";
        return false;
    }
    if (d.storage_enabled && !d.store_refusing && d.recent_refusal) {
        reason = std::string("store refused a write in the last 10 s: ") + d.recent_refusal;
        return false;
    }
    if (d.storage_enabled && d.store_refusing) {
        if (d.store_max_bytes && d.store_bytes >= d.store_max_bytes)
            reason = "store refuses writes: max_bytes reached (" + num(d.store_bytes) + " of " +
                     num(d.store_max_bytes) + " bytes)";
        else if (d.store_sync_failing)
            reason = "store refuses writes: sync failing (read-only file system or I/O error)";
        else
            reason = "store refuses writes: max_bytes reached, disk full or I/O error";
        return false;
    }
    reason = "ok";
    return true;
}

namespace {

std::string histogram_json(const Histogram* h) {
    if (!h) return "null";
    double mean = h->count() ? double(h->sum_us()) / 1e6 / double(h->count()) : 0;
    return "{\"count\":" + num(h->count()) + ",\"mean\":" + num(mean) + ",\"p50\":" + num(h->quantile_s(0.5)) +
           ",\"p99\":" + num(h->quantile_s(0.99)) + "}";
}

}  // namespace

std::string render_status_json(const StatusData& d) {
    const broker::Stats& s = d.stats;
    std::string reason;
    bool ok = healthy(d, reason);
    std::string j = "{";
    j += "\"version\":" + json_string(d.version);
    j += ",\"backend\":" + json_string(d.backend);
    j += ",\"uptime_seconds\":" + num(d.uptime_s);
    j += ",\"healthy\":" + std::string(ok ? "true" : "false");
    j += ",\"health\":" + json_string(reason);
    j += ",\"connected\":" + num(connected_total(d));
    j += ",\"listeners\":[";
    for (size_t i = 0; i < d.listeners.size(); ++i) {
        const ListenerStatus& l = d.listeners[i];
        j += (i ? "," : "");
        j += "{\"name\":" + json_string(l.name) + ",\"connected\":" + num(l.connected) +
             ",\"accepted\":" + num(l.accepted) + "}";
    }
    j += "],\"connections_total\":" + num(s.connects);
    j += ",\"messages\":{\"received_total\":" + num(s.messages_in) + ",\"sent_total\":" + num(s.messages_out) +
         ",\"received_per_second\":" + num(d.messages_in_per_s) + ",\"sent_per_second\":" + num(d.messages_out_per_s) +
         "}";
    j += ",\"dropped\":{\"qos0\":" + num(s.qos0_dropped) + ",\"queued\":" + num(s.queued_dropped) +
         ",\"unreadable\":" + num(s.unreadable_dropped) + ",\"slow_clients_closed\":" + num(s.slow_clients_closed) + "}";
    j += ",\"store\":{\"enabled\":" + std::string(d.storage_enabled ? "true" : "false");
    if (d.storage_enabled) {
        double fill = store_fill(d);
        j += ",\"used_bytes\":" + num(d.store_bytes) + ",\"max_bytes\":" + num(d.store_max_bytes) +
             ",\"fill\":" + (fill < 0 ? std::string("null") : num(fill)) + ",\"dead_bytes\":" + num(d.store_dead_bytes) +
             ",\"segments\":" + num(d.store_segments) + ",\"records\":" + num(d.store_records) +
             ",\"refusing\":" + (d.store_refusing ? "true" : "false");
    }
    j += ",\"refusals\":{\"total\":" + num(s.store_refusals) + ",\"max_bytes\":" + num(s.store_refused_quota) +
         ",\"disk_full\":" + num(s.store_refused_disk_full) + ",\"too_large\":" + num(s.store_refused_too_large) +
         ",\"io_error\":" + num(s.store_refused_io) + ",\"refusing\":" + num(s.store_refused_full) + "}}";
    j += ",\"sync_latency_seconds\":" + histogram_json(d.sync_latency);
    j += ",\"loop_pass_seconds\":" + histogram_json(d.loop_pass);
    j += ",\"bridges\":[";
    for (size_t i = 0; i < d.bridges.size(); ++i) {
        const BridgeStatus& b = d.bridges[i];
        j += (i ? "," : "");
        j += "{\"name\":" + json_string(b.name) + ",\"connected\":" + (b.connected ? "true" : "false") +
             ",\"backlog_messages\":" + num(b.backlog_messages) + ",\"backlog_bytes\":" + num(b.backlog_bytes) +
             ",\"oldest_age_seconds\":" + num(b.oldest_age_s) + ",\"backlog_dropped\":" + num(b.backlog_dropped) + ",\"forwarded_out\":" + num(b.forwarded_out) +
             ",\"forwarded_in\":" + num(b.forwarded_in) + ",\"too_large_dropped_out\":" + num(b.too_large_out) +
             ",\"too_large_dropped_in\":" + num(b.too_large_in) +
             ",\"unmappable_dropped_out\":" + num(b.unmappable_out) +
             ",\"unmappable_dropped_in\":" + num(b.unmappable_in) + ",\"refused\":" + num(b.refused_out) +
             ",\"refused_locally\":" + num(b.refused_in) +
             ",\"closes_on_same_message\":" + num(b.closes_on_same) + "}";
    }
    j += "]}\n";
    return j;
}

namespace {

// The page: inline CSS, and a script that re-renders the body from
// /status.json every 2 s with the same markup the server renders first
// (so the page is complete without JavaScript too).
constexpr const char* kHtmlHead = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>hato status</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;background:#f6f7f9;color:#1d2330}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.2em 0 .4em}
.sub{color:#5a6375}.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:1em}.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8em 1em;min-width:16em}
table{border-collapse:collapse}td,th{padding:.15em .8em .15em 0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#e4e7ec;border-radius:3px;height:.6em;width:14em}.bar>div{background:#3b6fd8;height:100%;border-radius:3px}
</style></head><body>
<div id="page">)";

constexpr const char* kHtmlTail = R"(</div>
<script>
"use strict";
function esc(s){return String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);}
function row(k,v){return "<tr><td>"+esc(k)+"</td><td class=n>"+esc(v)+"</td></tr>";}
function bytes(n){const u=["B","KiB","MiB","GiB","TiB"];let i=0;while(n>=1024&&i<4){n/=1024;i++;}return (i?n.toFixed(1):n)+" "+u[i];}
function ms(s){return (s*1000).toFixed(3)+" ms";}
function dur(s){s=Math.floor(s);const d=Math.floor(s/86400),h=Math.floor(s%86400/3600),m=Math.floor(s%3600/60);return (d?d+"d ":"")+h+"h "+m+"m "+(s%60)+"s";}
function render(d){
 let h="<h1>hato "+esc(d.version)+"</h1><div class=sub>up "+esc(dur(d.uptime_seconds))+" &middot; "+esc(d.backend)+" &middot; <span class="+(d.healthy?"ok":"bad")+">"+esc(d.health)+"</span></div><div class=grid>";
 h+="<div class=card><h2>Connections: <span id=connected>"+d.connected+"</span></h2><table><tr><th>listener</th><th>open</th><th>accepted</th></tr>";
 for(const l of d.listeners)h+="<tr><td>"+esc(l.name)+"</td><td class=n>"+l.connected+"</td><td class=n>"+l.accepted+"</td></tr>";
 h+="</table></div><div class=card><h2>Messages</h2><table>"+row("received /s",d.messages.received_per_second.toFixed(1))+row("sent /s",d.messages.sent_per_second.toFixed(1))+row("received",d.messages.received_total)+row("sent",d.messages.sent_total)+row("MQTT connections",d.connections_total)+"</table></div>";
 const s=d.store;h+="<div class=card><h2>Store</h2><table>";
 if(s.enabled){h+=row("used",bytes(s.used_bytes))+row("limit",s.max_bytes?bytes(s.max_bytes):"none");
  if(s.fill!==null)h+="<tr><td>fill</td><td class=n>"+(s.fill*100).toFixed(1)+" %<div class=bar><div style=\"width:"+Math.min(100,s.fill*100).toFixed(1)+"%\"></div></div></td></tr>";
  h+=row("segments",s.segments)+row("records",s.records)+row("refusing",s.refusing?"yes":"no");
  if(d.sync_latency_seconds)h+=row("sync p50",ms(d.sync_latency_seconds.p50))+row("sync p99",ms(d.sync_latency_seconds.p99));
 }else h+=row("storage","disabled");
 h+="</table></div><div class=card><h2>Refused and dropped</h2><table>"+row("store refusals",s.refusals.total)+row("QoS 0 dropped",d.dropped.qos0)+row("queue full dropped",d.dropped.queued)+row("ACL dropped",d.dropped.unreadable)+row("slow clients closed",d.dropped.slow_clients_closed)+row("loop pass p99",ms(d.loop_pass_seconds.p99))+"</table></div></div>";
 if(d.bridges&&d.bridges.length){h+="<div class=card><h2>Bridges</h2><table><tr><th>bridge</th><th>state</th><th>backlog</th><th>bytes</th><th>oldest</th></tr>";
  for(const b of d.bridges)h+="<tr><td>"+esc(b.name)+"</td><td class="+(b.connected?"ok":"bad")+">"+(b.connected?"connected":"down")+"</td><td class=n>"+b.backlog_messages+"</td><td class=n>"+bytes(b.backlog_bytes)+"</td><td class=n>"+esc(dur(b.oldest_age_seconds))+"</td></tr>";
  h+="</table></div>";}
 document.getElementById("page").innerHTML=h;
}
async function refresh(){try{const r=await fetch("/status.json",{cache:"no-store"});if(r.ok)render(await r.json());}catch(e){}}
setInterval(refresh,2000);
</script></body></html>
)";

std::string row(const std::string& k, const std::string& v) {
    return "<tr><td>" + html_escape(k) + "</td><td class=n>" + html_escape(v) + "</td></tr>";
}

std::string fixed(double v, int decimals) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string bytes(uint64_t n) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(n);
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        ++i;
    }
    return (i ? fixed(v, 1) : num(n)) + " " + units[i];
}

std::string ms(double s) { return fixed(s * 1000, 3) + " ms"; }

std::string duration(double seconds) {
    uint64_t s = uint64_t(seconds);
    uint64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
    return (d ? num(d) + "d " : std::string()) + num(h) + "h " + num(m) + "m " + num(s % 60) + "s";
}

}  // namespace

std::string render_status_html(const StatusData& d) {
    const broker::Stats& s = d.stats;
    std::string reason;
    bool ok = healthy(d, reason);
    std::string h = kHtmlHead;
    h += "<h1>hato " + html_escape(d.version) + "</h1><div class=sub>up " + duration(d.uptime_s) + " &middot; " +
         html_escape(d.backend) + " &middot; <span class=" + (ok ? "ok" : "bad") + ">" + html_escape(reason) +
         "</span></div><div class=grid>";
    h += "<div class=card><h2>Connections: <span id=connected>" + num(connected_total(d)) +
         "</span></h2><table><tr><th>listener</th><th>open</th><th>accepted</th></tr>";
    for (const ListenerStatus& l : d.listeners)
        h += "<tr><td>" + html_escape(l.name) + "</td><td class=n>" + num(l.connected) + "</td><td class=n>" +
             num(l.accepted) + "</td></tr>";
    h += "</table></div><div class=card><h2>Messages</h2><table>" + row("received /s", fixed(d.messages_in_per_s, 1)) +
         row("sent /s", fixed(d.messages_out_per_s, 1)) + row("received", num(s.messages_in)) +
         row("sent", num(s.messages_out)) + row("MQTT connections accepted", num(s.connects)) + "</table></div>";
    h += "<div class=card><h2>Store</h2><table>";
    if (d.storage_enabled) {
        h += row("used", bytes(d.store_bytes)) + row("limit", d.store_max_bytes ? bytes(d.store_max_bytes) : "none");
        double fill = store_fill(d);
        if (fill >= 0)
            h += "<tr><td>fill</td><td class=n>" + fixed(fill * 100, 1) + " %<div class=bar><div style=\"width:" +
                 fixed(fill > 1 ? 100 : fill * 100, 1) + "%\"></div></div></td></tr>";
        h += row("segments", num(d.store_segments)) + row("records", num(d.store_records)) +
             row("refusing", d.store_refusing ? "yes" : "no");
        if (d.sync_latency)
            h += row("sync p50", ms(d.sync_latency->quantile_s(0.5))) +
                 row("sync p99", ms(d.sync_latency->quantile_s(0.99)));
    } else {
        h += row("storage", "disabled");
    }
    h += "</table></div><div class=card><h2>Refused and dropped</h2><table>" +
         row("store refusals", num(s.store_refusals)) + row("QoS 0 dropped", num(s.qos0_dropped)) +
         row("queue full dropped", num(s.queued_dropped)) + row("ACL dropped", num(s.unreadable_dropped)) +
         row("slow clients closed", num(s.slow_clients_closed)) +
         row("loop pass p99", ms(d.loop_pass ? d.loop_pass->quantile_s(0.99) : 0)) + "</table></div></div>";
    if (!d.bridges.empty()) {
        h += "<div class=card><h2>Bridges</h2><table><tr><th>bridge</th><th>state</th><th>backlog</th><th>bytes</th>"
             "<th>oldest</th></tr>";
        for (const BridgeStatus& b : d.bridges)
            h += "<tr><td>" + html_escape(b.name) + "</td><td class=" + (b.connected ? "ok>connected" : "bad>down") +
                 "</td><td class=n>" + num(b.backlog_messages) + "</td><td class=n>" + bytes(b.backlog_bytes) +
                 "</td><td class=n>" + duration(b.oldest_age_s) + "</td></tr>";
        h += "</table></div>";
    }
    h += kHtmlTail;
    return h;
}

// --- Connection bookkeeping -----------------------------------------------------

void ListenerCounts::opened(net::ConnId id, int listener) {
    if (listener < 0 || size_t(listener) >= connected_.size()) return;
    listener_of_[id] = listener;
    ++connected_[size_t(listener)];
    ++accepted_[size_t(listener)];
}

void ListenerCounts::closed(net::ConnId id) {
    auto it = listener_of_.find(id);
    if (it == listener_of_.end()) return;
    --connected_[size_t(it->second)];
    listener_of_.erase(it);
}

// --- The HTTP side ----------------------------------------------------------------

bool MetricsServer::on_open(net::ConnId id) {
    if (conns_.size() >= kMaxConnections) {
        // The oldest request still waiting for its bytes gives way (408), so
        // idle connections cannot lock a scraper out; answered ones are
        // already closing.
        auto oldest = conns_.end();
        for (auto it = conns_.begin(); it != conns_.end(); ++it)
            if (!it->second.answered && (oldest == conns_.end() || it->second.deadline_ms < oldest->second.deadline_ms))
                oldest = it;
        if (oldest == conns_.end()) return false;
        answer(oldest->first, oldest->second,
               net::http::response(408, "text/plain; charset=utf-8", "request not complete in time\n"));
    }
    conns_[id].deadline_ms = reactor_.now_ms() + timeout_ms_;
    return true;
}

void MetricsServer::answer(net::ConnId id, Conn& c, const std::string& bytes) {
    c.answered = true;
    c.buf.clear();
    c.buf.shrink_to_fit();
    reactor_.send(id, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    reactor_.close(id, true);  // may erase `c`
}

void MetricsServer::on_data(net::ConnId id, std::span<const uint8_t> data) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.answered) return;  // input after the answer is discarded
    Conn& c = it->second;
    std::span<const uint8_t> in = data;
    if (!c.buf.empty()) {
        const size_t before = c.buf.size();
        c.buf.insert(c.buf.end(), data.begin(), data.end());
        in = c.buf;
        // Parsed again only when the request line ends (a bad one is answered
        // at once), once the blank line may be there, when a byte no head may
        // hold arrives, or when the head is too long: a request dribbled in a
        // byte or a short header line at a time is not parsed again from the
        // start for each piece (quadratic work on the loop).
        const bool bad_byte = std::any_of(data.begin(), data.end(), [](uint8_t b) {
            return (b < 0x20 && b != '\r' && b != '\t' && b != '\n') || b == 0x7f;
        });
        const std::string_view text(reinterpret_cast<const char*>(c.buf.data()), c.buf.size());
        const bool line_one_ends =
            !c.line_one_ended && std::find(data.begin(), data.end(), uint8_t('\n')) != data.end();
        c.line_one_ended = c.line_one_ended || line_one_ends;
        if (!bad_byte && !line_one_ends && !net::http::head_may_end(text, before) &&
            c.buf.size() <= net::http::kMaxHeadBytes)
            return;
    }
    net::http::Request req;
    net::http::ParseResult p = net::http::parse_request(in, req);
    if (p.status == net::http::ParseStatus::Incomplete) {
        if (c.buf.empty()) {
            c.buf.assign(data.begin(), data.end());
            c.line_one_ended = std::find(data.begin(), data.end(), uint8_t('\n')) != data.end();
        }
        return;
    }
    const char* text = "text/plain; charset=utf-8";
    // A HEAD gets no body, also in an error answer (once its request line
    // was read).
    const bool head = req.method == "HEAD";
    if (p.status == net::http::ParseStatus::Error)
        return answer(id, c, net::http::response(p.error_code, text, p.error + "\n", head));

    std::string_view path = req.path();
    if (path == "/metrics") {
        return answer(id, c,
                      net::http::response(200, "text/plain; version=0.0.4; charset=utf-8", render_prometheus(collect_()),
                                          head));
    }
    if (path == "/healthz") {
        std::string reason;
        bool ok = healthy(collect_(), reason);
        return answer(id, c, net::http::response(ok ? 200 : 503, text, reason + "\n", head));
    }
    if (path == "/status.json")
        return answer(id, c, net::http::response(200, "application/json", render_status_json(collect_()), head));
    if (path == "/" || path == "/index.html")
        return answer(id, c, net::http::response(200, "text/html; charset=utf-8", render_status_html(collect_()), head));
    answer(id, c, net::http::response(404, text, "not found: try /, /metrics, /healthz or /status.json\n", head));
}

void MetricsServer::on_tick(uint64_t now_ms, const broker::Stats& stats) {
    recent_refusal(now_ms, stats);
    // Ids first: a close may report on_close (and erase) at once.
    std::vector<net::ConnId> late;
    for (const auto& [id, c] : conns_)
        if (!c.answered && now_ms >= c.deadline_ms) late.push_back(id);
    for (net::ConnId id : late) {
        auto it = conns_.find(id);
        if (it != conns_.end())
            answer(id, it->second,
                   net::http::response(408, "text/plain; charset=utf-8", "request not complete in time\n"));
    }
    if (rate_sample_ms_ == 0) {
        rate_sample_ms_ = now_ms;
        rate_in_ = stats.messages_in;
        rate_out_ = stats.messages_out;
    } else if (now_ms - rate_sample_ms_ >= 1000) {
        double dt = double(now_ms - rate_sample_ms_) / 1000.0;
        in_rate_ = double(stats.messages_in - rate_in_) / dt;
        out_rate_ = double(stats.messages_out - rate_out_) / dt;
        rate_sample_ms_ = now_ms;
        rate_in_ = stats.messages_in;
        rate_out_ = stats.messages_out;
    }
}

const char* MetricsServer::recent_refusal(uint64_t now_ms, const broker::Stats& s) {
    broker::Stats& seen = refusals_seen_;
    // A record larger than a segment says nothing about the store's health.
    const char* why = s.store_refused_io != seen.store_refused_io             ? "I/O error"
                      : s.store_refused_disk_full != seen.store_refused_disk_full ? "disk full"
                      : s.store_refused_quota != seen.store_refused_quota     ? "max_bytes reached"
                      : s.store_refused_full != seen.store_refused_full       ? "store full"
                                                                              : nullptr;
    if (why) {
        last_refusal_ms_ = now_ms;
        last_refusal_reason_ = why;
    }
    seen = s;
    if (last_refusal_reason_ && now_ms - last_refusal_ms_ < kRefusalMemoryMs) return last_refusal_reason_;
    return nullptr;
}

void MetricsServer::close_all() {
    std::vector<net::ConnId> open;
    for (auto& [id, c] : conns_) {
        if (c.answered) continue;
        c.answered = true;
        open.push_back(id);
    }
    for (net::ConnId id : open) reactor_.close(id, false);
}

}  // namespace hato::app
