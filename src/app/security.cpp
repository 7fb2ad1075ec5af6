#include "app/security.hpp"

namespace hato::app {

bool load_password_file(const std::string& path, std::shared_ptr<const auth::PasswordFile>& out,
                        std::vector<std::string>& errors) {
    auto file = std::make_shared<auth::PasswordFile>();
    if (!file->load(path, errors)) return false;
    out = std::move(file);
    return true;
}

bool load_acl_file(const std::string& path, std::shared_ptr<const auth::Acl>& out,
                   std::vector<std::string>& errors) {
    auto acl = std::make_shared<auth::Acl>();
    if (!acl->load(path, errors)) return false;
    out = std::move(acl);
    return true;
}

bool load_auth_files(const config::AuthConfig& cfg, AuthFiles& out, std::vector<std::string>& errors) {
    bool ok = true;
    if (!cfg.password_file.empty()) ok &= load_password_file(cfg.password_file, out.passwords, errors);
    if (!cfg.acl_file.empty()) ok &= load_acl_file(cfg.acl_file, out.acl, errors);
    return ok;
}

bool load_listener_password_files(const config::AppConfig& cfg,
                                  std::vector<std::shared_ptr<const auth::PasswordFile>>& out,
                                  std::vector<std::string>& errors) {
    std::vector<std::shared_ptr<const auth::PasswordFile>> files(cfg.listeners.size());
    bool ok = true;
    for (size_t i = 0; i < cfg.listeners.size(); ++i)
        if (!cfg.listeners[i].password_file.empty())
            ok &= load_password_file(cfg.listeners[i].password_file, files[i], errors);
    if (ok) out = std::move(files);
    return ok;
}

bool load_listener_acl_files(const config::AppConfig& cfg, std::vector<std::shared_ptr<const auth::Acl>>& out,
                             std::vector<std::string>& errors) {
    std::vector<std::shared_ptr<const auth::Acl>> files(cfg.listeners.size());
    bool ok = true;
    for (size_t i = 0; i < cfg.listeners.size(); ++i)
        if (!cfg.listeners[i].acl_file.empty()) ok &= load_acl_file(cfg.listeners[i].acl_file, files[i], errors);
    if (ok) out = std::move(files);
    return ok;
}

net::TlsSettings tls_settings(const config::ListenerTls& tls) {
    net::TlsSettings s;
    s.cert = tls.cert;
    s.key = tls.key;
    s.ca = tls.ca;
    s.require_client_cert = tls.require_client_cert;
    s.identity_as_username = tls.identity_as_username;
    s.min_version = tls.min_version;
    return s;
}

bool load_tls_contexts(const config::AppConfig& cfg, std::vector<std::shared_ptr<net::TlsContext>>& out,
                       std::vector<std::string>& errors) {
    std::vector<std::shared_ptr<net::TlsContext>> contexts(cfg.listeners.size());
    bool ok = true;
    for (size_t i = 0; i < cfg.listeners.size(); ++i) {
        const config::Listener& l = cfg.listeners[i];
        if (!l.tls.enabled) continue;
        std::string err;
        contexts[i] = net::TlsContext::create(tls_settings(l.tls), err);
        if (!contexts[i]) {
            errors.push_back("listener[" + std::to_string(i) + "] " + l.address + ":" + std::to_string(l.port) +
                             " tls: " + err);
            ok = false;
        }
    }
    if (ok) out = std::move(contexts);
    return ok;
}

std::vector<std::string> unverifiable_acl_users(const config::AppConfig& cfg, const AuthFiles& files) {
    std::vector<std::string> out;
    if (!files.acl) return out;
    for (const config::Listener& l : cfg.listeners)
        if (l.tls.enabled && l.tls.identity_as_username) return out;   // any name may be a certificate's
    std::vector<std::shared_ptr<const auth::PasswordFile>> own;
    std::vector<std::string> ignored;
    load_listener_password_files(cfg, own, ignored);   // a name any listener's file has is verifiable
    auto known = [&](const std::string& name) {
        if (files.passwords && files.passwords->has_user(name)) return true;
        for (const auto& f : own)
            if (f && f->has_user(name)) return true;
        return false;
    };
    for (std::string& name : files.acl->user_names())
        if (!known(name)) out.push_back(std::move(name));
    return out;
}

bool check_security_files(const config::AppConfig& cfg, std::vector<std::string>& errors) {
    AuthFiles files;
    std::vector<std::shared_ptr<net::TlsContext>> contexts;
    std::vector<std::shared_ptr<const auth::PasswordFile>> listener_passwords;
    std::vector<std::shared_ptr<const auth::Acl>> listener_acls;
    bool ok = load_auth_files(cfg.auth, files, errors);
    ok &= load_listener_password_files(cfg, listener_passwords, errors);
    ok &= load_listener_acl_files(cfg, listener_acls, errors);
    ok &= load_tls_contexts(cfg, contexts, errors);
    return ok;
}

}  // namespace hato::app
