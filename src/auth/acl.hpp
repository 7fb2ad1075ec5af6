// Access control lists in Mosquitto's acl_file syntax:
//   # comment
//   topic [read|write|readwrite|deny] TOPIC     (no keyword: readwrite)
//   user NAME                                   (following topic lines are NAME's)
//   pattern [read|write|readwrite|deny] TOPIC   (%c = client id, %u = username;
//                                                applies to every client)
// topic lines before any `user` line apply to anonymous clients. A matching
// deny rule wins over any grant; with no matching grant, access is denied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hato::auth {

enum Access : uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3, kDeny = 0 };

struct AclRule {
    uint8_t access = kReadWrite;   // kDeny = deny
    std::string topic;             // a topic filter; for patterns may hold %c / %u
};

class Acl {
public:
    bool load(const std::string& path, std::vector<std::string>& errors);
    bool parse(std::string_view text, const std::string& name, std::vector<std::string>& errors);

    // May this client publish to / receive from the topic name `topic`?
    bool allowed(std::optional<std::string_view> user, std::string_view client_id,
                 std::string_view topic, Access want) const;

    // May it subscribe to `filter`? Yes when some read grant overlaps the
    // filter and no deny rule covers all of it; delivery is then checked per
    // message with allowed(kRead), so `#` only receives what may be read.
    bool subscribe_allowed(std::optional<std::string_view> user, std::string_view client_id,
                           std::string_view filter) const;

    size_t rule_count() const;
    // The names of the `user` blocks, sorted.
    std::vector<std::string> user_names() const;

private:
    // Calls fn(rule access, concrete filter) for each rule that applies.
    template <typename Fn>
    void for_each_rule(std::optional<std::string_view> user, std::string_view client_id, Fn&& fn) const;

    std::vector<AclRule> anonymous_;
    std::unordered_map<std::string, std::vector<AclRule>> users_;
    std::vector<AclRule> patterns_;
};

// Every topic of `inner` matches `outer` (a deny rule then refuses the
// subscription; '$' topics are not set apart here, so a deny errs wide).
bool filter_covers(std::string_view outer, std::string_view inner);

}  // namespace hato::auth
