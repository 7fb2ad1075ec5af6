#include "broker/sys_topics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace hato::broker {

uint64_t LoadAverages::counter(const SysGauges& g, Series s) {
    const Stats& st = g.stats;
    switch (s) {
    case MessagesReceived: return st.packets_in;
    case MessagesSent: return st.packets_out;
    case BytesReceived: return st.bytes_in;
    case BytesSent: return st.bytes_out;
    case PublishReceived: return st.messages_in;
    case PublishSent: return st.messages_out;
    case PublishDropped: return st.qos0_dropped + st.queued_dropped;
    case Connections: return st.connects;
    case kSeries: break;
    }
    return 0;
}

void LoadAverages::update(const SysGauges& g, double dt_s) {
    const bool first = !started_;
    started_ = true;
    for (size_t s = 0; s < kSeries; ++s) {
        const uint64_t now = counter(g, Series(s));
        const uint64_t delta = now >= last_[s] ? now - last_[s] : 0;
        last_[s] = now;
        if (first || dt_s <= 0) continue;
        const double rate = double(delta) * 60.0 / dt_s;   // per minute
        for (size_t w = 0; w < kWindowsS.size(); ++w) {
            const double decay = std::exp(-dt_s / kWindowsS[w]);
            avg_[s][w] = rate + decay * (avg_[s][w] - rate);
        }
    }
}

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

std::vector<SysMessage> sys_topics(const SysGauges& g, const LoadAverages& load) {
    const Stats& st = g.stats;
    std::vector<SysMessage> out;
    out.reserve(96);
    auto put = [&](std::string_view sub, std::string value) {
        out.push_back({"$SYS/broker/" + std::string(sub), std::move(value)});
    };

    put("version", "hato version " + g.version);
    put("uptime", num(g.uptime_s) + " seconds");

    const uint64_t connected = st.connections;
    const uint64_t total = std::max(g.sessions, connected);
    put("clients/connected", num(connected));
    put("clients/disconnected", num(total - connected));
    put("clients/total", num(total));
    put("clients/maximum", num(st.connections_max));
    put("clients/expired", num(st.sessions_expired));

    put("messages/received", num(st.packets_in));
    put("messages/sent", num(st.packets_out));
    put("publish/messages/received", num(st.messages_in));
    put("publish/messages/sent", num(st.messages_out));
    put("publish/messages/dropped", num(st.qos0_dropped + st.queued_dropped));
    put("publish/bytes/received", num(st.publish_bytes_in));
    put("publish/bytes/sent", num(st.publish_bytes_out));
    put("bytes/received", num(st.bytes_in));
    put("bytes/sent", num(st.bytes_out));

    static constexpr const char* kSeriesName[LoadAverages::kSeries] = {
        "messages/received", "messages/sent", "bytes/received", "bytes/sent",
        "publish/received", "publish/sent", "publish/dropped", "connections"};
    static constexpr const char* kWindowName[3] = {"1min", "5min", "15min"};
    for (size_t s = 0; s < LoadAverages::kSeries; ++s)
        for (size_t w = 0; w < 3; ++w)
            put(std::string("load/") + kSeriesName[s] + "/" + kWindowName[w],
                fixed(load.value(LoadAverages::Series(s), w), 2));

    put("retained messages/count", num(g.retained));
    put("subscriptions/count", num(g.subscriptions));
    put("shared_subscriptions/count", num(g.shared_subscriptions));
    put("store/messages/count", num(g.held_messages));
    put("store/messages/bytes", num(g.held_bytes));
    if (g.heap_bytes) put("heap/current", num(*g.heap_bytes));

    if (g.store) {
        put("hato/store/bytes", num(g.store_bytes));
        put("hato/store/live_bytes", num(g.store_live_bytes));
        put("hato/store/max_bytes", num(g.store_max_bytes));
        put("hato/store/free_bytes", num(g.store_free_bytes));
        put("hato/store/fill_percent", fixed(g.store_fill_percent, 1));
        if (g.sync_p50_ms) put("hato/store/sync/p50_ms", fixed(*g.sync_p50_ms, 3));
        if (g.sync_p99_ms) put("hato/store/sync/p99_ms", fixed(*g.sync_p99_ms, 3));
    }
    put("hato/store/refused/total", num(st.store_refusals));
    put("hato/store/refused/quota", num(st.store_refused_quota));
    put("hato/store/refused/disk_full", num(st.store_refused_disk_full));
    put("hato/store/refused/too_large", num(st.store_refused_too_large));
    put("hato/store/refused/io_error", num(st.store_refused_io));
    put("hato/store/refused/while_full", num(st.store_refused_full));
    put("hato/publish/dropped/qos0_slow_consumer", num(st.qos0_dropped));
    put("hato/publish/dropped/queue_full", num(st.queued_dropped));
    put("hato/publish/dropped/unreadable", num(st.unreadable_dropped));
    put("hato/clients/slow_closed", num(st.slow_clients_closed));
    put("hato/subscriptions/refused_limit", num(st.subscriptions_refused_limit));
    put("hato/sessions/refused_limit", num(st.sessions_refused_limit));
    put("hato/retained/refused_limit", num(st.retained_refused_limit));
    put("hato/topics/refused_levels", num(st.topics_refused_levels));
    put("hato/inputs/deferred", num(st.inputs_deferred));
    put("hato/route_cache/topics", num(g.route_cache_topics));
    put("hato/route_cache/matches", num(g.route_cache_matches));
    return out;
}

}  // namespace hato::broker
