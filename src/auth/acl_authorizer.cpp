#include "auth/acl_authorizer.hpp"

namespace hato::auth {

namespace {

// Two bits per access kind in one memo byte: answered, and the answer.
constexpr uint8_t kReadKnown = 1, kReadAllowed = 2, kWriteKnown = 4, kWriteAllowed = 8;

}  // namespace

void AclAuthorizer::set_acl(std::shared_ptr<const Acl> acl) {
    acl_ = std::move(acl);
    ++generation_;
}

void AclAuthorizer::set_listener_acls(std::vector<std::shared_ptr<const Acl>> by_listener) {
    listener_acls_ = std::move(by_listener);
    ++generation_;
}

const Acl* AclAuthorizer::acl_for(const broker::ClientInfo& client) const {
    const int i = client.listener_index;
    if (i >= 0 && size_t(i) < listener_acls_.size() && listener_acls_[size_t(i)]) return listener_acls_[size_t(i)].get();
    return acl_.get();
}

bool AclAuthorizer::decide(const broker::ClientInfo& client, std::string_view topic, Access want) {
    // A session's memo holds the answers of one listener's rules: CONNECT,
    // which may change the listener, empties it.
    const Acl* acl = acl_for(client);
    if (!acl) return true;
    const uint8_t known = want == kRead ? kReadKnown : kWriteKnown;
    const uint8_t allowed = want == kRead ? kReadAllowed : kWriteAllowed;
    broker::AclCache* cache = client.cache;
    if (cache) {
        if (cache->generation != generation_) {
            cache->topics.clear();
            cache->generation = generation_;
        }
        if (auto it = cache->topics.find(topic); it != cache->topics.end() && (it->second & known))
            return (it->second & allowed) != 0;
    }
    bool ok = acl->allowed(client.username, client.client_id, topic, want);
    if (cache) {
        auto it = cache->topics.find(topic);
        if (it == cache->topics.end()) {
            if (cache->topics.size() >= kMaxCachedTopics) cache->topics.clear();
            it = cache->topics.emplace(std::string(topic), uint8_t(0)).first;
        }
        it->second |= known | (ok ? allowed : 0);
    }
    return ok;
}

bool AclAuthorizer::can_publish(const broker::ClientInfo& client, std::string_view topic) {
    return decide(client, topic, kWrite);
}

bool AclAuthorizer::can_receive(const broker::ClientInfo& client, std::string_view topic) {
    return decide(client, topic, kRead);
}

bool AclAuthorizer::can_subscribe(const broker::ClientInfo& client, std::string_view filter) {
    // SUBSCRIBE is rare next to PUBLISH: not memoised.
    const Acl* acl = acl_for(client);
    return !acl || acl->subscribe_allowed(client.username, client.client_id, filter);
}

}  // namespace hato::auth
