#include "app/store_refusal_report.hpp"

#include <cstdio>

namespace hato::app {

std::optional<std::string> StoreRefusalReport::due(const broker::Stats& s, uint64_t now_ms) {
    broker::Stats& last = reported_;
    if (s.store_refusals == last.store_refusals) return std::nullopt;
    if (last.store_refusals != 0 && now_ms - last_ms_ < 1000) return std::nullopt;
    using ull = unsigned long long;
    char line[400];
    std::snprintf(line, sizeof line,
                  "store refused %llu durable write(s) since the last report: %llu max_bytes reached, "
                  "%llu disk full, %llu larger than a segment, %llu I/O error, %llu QoS 1/2 PUBLISH "
                  "refused while full (refusal codes sent; nothing acknowledged was lost)",
                  ull(s.store_refusals - last.store_refusals), ull(s.store_refused_quota - last.store_refused_quota),
                  ull(s.store_refused_disk_full - last.store_refused_disk_full),
                  ull(s.store_refused_too_large - last.store_refused_too_large),
                  ull(s.store_refused_io - last.store_refused_io), ull(s.store_refused_full - last.store_refused_full));
    last = s;
    last_ms_ = now_ms;
    return std::string(line);
}

}  // namespace hato::app
