// The broker's ACL hook over an acl_file (auth::Acl), memoised per session in
// the broker-owned AclCache. A reload swaps the rules and bumps a generation
// number, which empties every memo lazily on its next use.
#pragma once

#include <memory>
#include <vector>

#include "auth/acl.hpp"
#include "broker/auth.hpp"

namespace hato::auth {

class AclAuthorizer final : public broker::Authorizer {
public:
    // nullptr: no acl_file, everything is allowed.
    void set_acl(std::shared_ptr<const Acl> acl);
    // Index = listener index: an ACL of that listener's own, used for its
    // clients instead of the one above; null entries (and sessions not
    // connected since the start, listener -1) use the one above.
    void set_listener_acls(std::vector<std::shared_ptr<const Acl>> by_listener);

    bool can_publish(const broker::ClientInfo& client, std::string_view topic) override;
    bool can_subscribe(const broker::ClientInfo& client, std::string_view filter) override;
    bool can_receive(const broker::ClientInfo& client, std::string_view topic) override;

    // A memo holding more topics than this is emptied first (a client
    // walking through endless topic names must not grow it without bound).
    static constexpr size_t kMaxCachedTopics = 4096;

private:
    bool decide(const broker::ClientInfo& client, std::string_view topic, Access want);

    const Acl* acl_for(const broker::ClientInfo& client) const;

    std::shared_ptr<const Acl> acl_;
    std::vector<std::shared_ptr<const Acl>> listener_acls_;
    uint64_t generation_ = 1;  // AclCache starts at 0: first use always refills
};

}  // namespace hato::auth
