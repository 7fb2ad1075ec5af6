#include "config/migrate.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "broker/persistence.hpp"

namespace hato::config {
namespace {

constexpr int64_t kMaxPacket = 268435460;  // the largest MQTT packet ([limits] max_packet_size)
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kDefaultSegmentMb = 64;

// One option line: "key value", where it came from.
struct Line {
    std::string where;  // file:line
    std::string key;
    std::string value;
    bool in_main = true;
};

// A value as Mosquitto last set it; an empty `where` means never set.
struct Setting {
    std::string value;
    std::string where;
    bool set() const { return !where.empty(); }
};

struct Note {
    std::string where;
    std::string line;  // "key value" as written (secrets hidden)
    std::string text;
    bool unmapped = false;
};

struct Listener {
    std::string where;
    bool is_default = false;
    bool used = false;  // the default listener exists only if something set it
    Setting port, bind, socket_domain, protocol;
    Setting cafile, capath, certfile, keyfile, tls_version, require_certificate, use_identity;
    Setting allow_anonymous, password_file, acl_file;  // per_listener_settings true
    Setting max_connections, max_qos, max_topic_alias;
    std::vector<Note> notes;
};

struct Bridge {
    std::string where;
    std::string name;
    std::vector<Note> lines;
    std::vector<std::pair<std::string, std::string>> raw;   // key, value as written (secrets too)
};

const std::set<std::string> kBridgeKeys = {
    "address", "addresses", "topic", "remote_username", "remote_password", "remote_clientid",
    "local_clientid", "local_username", "local_password", "cleansession", "local_cleansession",
    "try_private", "restart_timeout", "notifications", "notifications_local_only", "notification_topic",
    "keepalive_interval", "start_type", "round_robin", "idle_timeout", "threshold", "clientid",
    "username", "password"};

const std::set<std::string> kSecretKeys = {"remote_password", "local_password", "password", "bridge_psk"};

// Mosquitto's yes/no options: it reads "true" or "1", "false" or "0" from
// the value's first word, and refuses to start on anything else
// (conf__parse_bool).
const std::set<std::string> kBooleanKeys = {
    "allow_anonymous", "allow_duplicate_messages", "allow_zero_length_clientid", "autosave_on_changes",
    "bridge_attempt_unsubscribe", "bridge_insecure", "bridge_outgoing_retain", "bridge_require_ocsp",
    "check_retain_source", "cleansession", "connection_messages", "local_cleansession", "log_timestamp",
    "notifications", "notifications_local_only", "per_listener_settings", "persistence", "queue_qos0_messages",
    "require_certificate", "retain_available", "round_robin", "set_tcp_nodelay", "try_private",
    "upgrade_outgoing_qos", "use_identity_as_username", "use_subject_as_username", "use_username_as_clientid",
};

// Mosquitto's integer options that the translator maps: it reads the value's
// first word with atoi (conf__parse_int), so "1 # only one" is 1.
const std::set<std::string> kIntegerKeys = {
    "port", "max_connections", "max_qos", "max_topic_alias", "max_inflight_messages", "max_queued_messages",
    "max_queued_bytes", "max_packet_size", "message_size_limit", "max_keepalive", "sys_interval",
    "keepalive_interval", "bridge_max_packet_size", "bridge_receive_maximum", "bridge_session_expiry_interval",
};

// Listener options hato has no equivalent for, with the reason.
const std::map<std::string, std::string> kListenerUnmapped = {
    {"bind_interface", "hato binds to an address, not an interface; give the interface's address"},
    {"http_dir", "hato serves no HTTP files"},
    {"mount_point", "hato has no per-listener topic prefix"},
    {"ciphers", "hato offers a fixed set of AEAD/ECDHE cipher suites"},
    {"ciphers_tls1.3", "hato offers a fixed set of AEAD/ECDHE cipher suites"},
    {"crlfile", "hato does not read certificate revocation lists"},
    {"dhparamfile", "hato uses ECDHE only"},
    {"psk_hint", "hato has no TLS-PSK"},
    {"psk_file", "hato has no TLS-PSK"},
    {"use_subject_as_username", "hato takes the certificate's CN only (identity_as_username)"},
    {"use_username_as_clientid", "hato keeps the client id the client sends"},
    {"websockets_headers_size", "hato bounds the WebSocket upgrade request itself"},
    {"websockets_log_level", "hato logs WebSocket errors at its [log] level"},
    {"tls_engine", "hato has no TLS engine support"},
    {"tls_engine_kpass_sha1", "hato has no TLS engine support"},
    {"tls_keyform", "hato reads PEM keys only"},
    {"require_certificate_ocsp", "hato does not check OCSP"},
    {"accept_protocol_versions", "hato accepts MQTT 3.1, 3.1.1 and 5.0 on every listener"},
    {"enable_proxy_protocol", "hato does not read the PROXY protocol"},
};

// Global options hato has no equivalent for, with the reason.
const std::map<std::string, std::string> kGlobalUnmapped = {
    {"auth_plugin", "hato loads no plugins; it reads Mosquitto's password and ACL files itself"},
    {"plugin", "hato loads no plugins; it reads Mosquitto's password and ACL files itself"},
    {"global_plugin", "hato loads no plugins"},
    {"allow_zero_length_clientid", "hato assigns an id to an MQTT 5 client or an MQTT 3.1.1 clean-session client that sends an empty one, as MQTT allows"},
    {"auto_id_prefix", "hato chooses the prefix of the ids it assigns"},
    {"clientid_prefixes", "hato does not restrict client ids by prefix"},
    {"persistent_client_expiration", "hato keeps an MQTT 3.x persistent session until it is cleaned; [mqtt] max_session_expiry bounds MQTT 5 sessions only"},
    {"queue_qos0_messages", "hato queues only QoS 1/2 messages for offline clients"},
    {"upgrade_outgoing_qos", "hato delivers at the lower of the published and subscribed QoS, as MQTT requires"},
    {"check_retain_source", "hato checks the ACL when a message is published, not again when its retained copy is delivered"},
    {"memory_limit", "hato bounds memory with [limits] max_queued_messages / max_queued_bytes / max_output_bytes"},
    {"max_inflight_bytes", "hato bounds in-flight messages by count ([limits] max_inflight)"},
    {"connection_messages", "hato logs connections and disconnections at [log] level debug"},
    {"log_facility", "hato writes to stderr; the syslog facility is the service manager's"},
    {"websockets_log_level", "hato logs WebSocket errors at its [log] level"},
    {"psk_file", "hato has no TLS-PSK"},
    {"allow_duplicate_messages", "hato delivers one copy per matching subscription set as MQTT 5 requires"},
};

// Global options that need no setting in hato, with the reason (a comment
// only, not counted as unmapped).
const std::map<std::string, std::string> kGlobalNotes = {
    {"pid_file", "not needed: systemd tracks hato (Type=notify)"},
    {"user", "not needed: the hato service runs as user hato (see packaging)"},
    {"autosave_interval",
     "not needed: hato's append log is durable per acknowledgement (a QoS 1/2 message is on disk "
     "before it is acknowledged, [storage] sync), so nothing waits for a periodic save"},
    {"autosave_on_changes",
     "not needed: hato's append log is durable per acknowledgement (a QoS 1/2 message is on disk "
     "before it is acknowledged, [storage] sync), so nothing waits for a periodic save"},
    {"persistence_file", "not needed: hato's log is a directory of segment files ([storage] dir)"},
    {"log_timestamp", "hato's log lines always start with a UTC timestamp"},
    {"log_timestamp_format", "hato's log lines always start with a UTC timestamp (ISO 8601)"},
    {"set_tcp_nodelay", "not needed: hato always sets TCP_NODELAY"},
};

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string first_word(const std::string& s) {
    return s.substr(0, s.find_first_of(" \t"));
}

std::optional<int64_t> to_int(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (*end != '\0') return std::nullopt;
    return v;
}

// Mosquitto's order for an include_dir's files (scmp_p): character by
// character, case-insensitively first, then by the character itself, so
// B.conf is read after a.conf.
bool mosquitto_before(const std::string& a, const std::string& b) {
    auto upper = [](char c) { return std::toupper(static_cast<unsigned char>(c)); };
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (upper(a[i]) != upper(b[i])) return upper(a[i]) < upper(b[i]);
        if (a[i] != b[i]) return a[i] < b[i];
    }
    return a.size() < b.size();
}

class Migrator {
public:
    explicit Migrator(const MigrateInput& in) : in_(in) { default_.is_default = true; }

    MigrateResult run() {
        collect(in_.name, in_.text, true);
        for (const Line& l : lines_)
            if (l.key == "per_listener_settings") per_listener_ = l.value == "true";
        for (const Line& l : lines_) dispatch(l);
        emit();
        result_.toml = out_.str();
        return std::move(result_);
    }

private:
    const MigrateInput& in_;
    MigrateResult result_;
    std::vector<Line> lines_;
    bool per_listener_ = false;
    Listener default_;
    std::vector<Listener> listeners_;
    std::vector<Line> before_listeners_;  // per-listener auth lines above any listener
    std::vector<Bridge> bridges_;
    std::map<std::string, Setting> global_;
    std::vector<Setting> log_dests_;
    std::vector<Setting> log_types_;
    std::map<std::string, std::vector<Note>> notes_;  // by section: auth, limits, mqtt, storage, log, other
    std::ostringstream out_;

    // Splits a file into option lines, reading include_dir files in place
    // (Mosquitto reads them where the include_dir line stands).
    void collect(const std::string& name, const std::string& text, bool main_file) {
        std::istringstream s(text);
        std::string raw;
        int n = 0;
        while (std::getline(s, raw)) {
            ++n;
            std::string t = trim(raw);
            if (t.empty() || t[0] == '#') continue;
            Line l;
            l.where = name + ":" + std::to_string(n);
            size_t sp = t.find_first_of(" \t");
            l.key = t.substr(0, sp);
            l.value = sp == std::string::npos ? "" : trim(t.substr(sp));
            l.in_main = main_file;
            if (!read_value(l)) continue;
            if (l.key == "include_dir") {
                include(l, main_file);
                continue;
            }
            lines_.push_back(std::move(l));
        }
    }

    // A yes/no or integer option's value as Mosquitto reads it: its first
    // word, the rest (such as "# a comment") ignored. false: NOT MAPPED.
    bool read_value(Line& l) {
        if (kBooleanKeys.count(l.key)) {
            l.value = first_word(l.value);
            // One spelling from here on: the rest compares with "true"/"false".
            if (l.value == "1") l.value = "true";
            else if (l.value == "0") l.value = "false";
            if (l.value != "true" && l.value != "false") {
                unmapped("other", l, "not true, false, 1 or 0: Mosquitto refuses to start on it");
                return false;
            }
        } else if (kIntegerKeys.count(l.key)) {
            l.value = first_word(l.value);
            if (!to_int(l.value)) {
                unmapped("other", l, l.value.empty() ? "no value: Mosquitto refuses to start on it"
                                                     : "not an integer (Mosquitto reads the digits it starts with, "
                                                       "0 without any); not converted");
                return false;
            }
        }
        return true;
    }

    void include(const Line& l, bool main_file) {
        if (!main_file) {
            unmapped("other", l, "Mosquitto reads include_dir in the main file only; not followed");
            return;
        }
        std::optional<std::vector<std::string>> names = in_.list_dir ? in_.list_dir(l.value) : std::nullopt;
        if (!names) {
            unmapped("other", l, "cannot read the directory; its files are not converted");
            return;
        }
        std::vector<std::string> confs;
        for (const std::string& f : *names)
            if (f.size() > 5 && ends_with(f, ".conf")) confs.push_back(f);  // Mosquitto skips a bare ".conf"
        std::sort(confs.begin(), confs.end(), mosquitto_before);
        std::string dir = l.value;
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        for (const std::string& f : confs) {
            std::string path = dir + "/" + f;
            std::optional<std::string> text = in_.read_file ? in_.read_file(path) : std::nullopt;
            if (!text) {
                unmapped("other", l, "cannot read " + path);
                continue;
            }
            collect(path, *text, false);
        }
    }

    static std::string shown(const Line& l) {
        return l.key + (l.value.empty() ? "" : " " + (kSecretKeys.count(l.key) ? std::string("***") : l.value));
    }

    void note(const std::string& section, const Line& l, const std::string& text) {
        notes_[section].push_back({l.where, shown(l), text, false});
    }
    void unmapped(const std::string& section, const Line& l, const std::string& text) {
        notes_[section].push_back({l.where, shown(l), text, true});
        result_.unmapped.push_back(l.where + ": " + l.key + ": " + text);
    }
    void listener_unmapped(Listener& li, const Line& l, const std::string& text) {
        li.notes.push_back({l.where, shown(l), text, true});
        result_.unmapped.push_back(l.where + ": " + l.key + ": " + text);
    }

    Listener& current() { return listeners_.empty() ? default_ : listeners_.back(); }

    static void assign(Setting& s, const Line& l) { s = {l.value, l.where}; }

    void dispatch(const Line& l) {
        const std::string& k = l.key;
        if (k == "per_listener_settings") return;
        if (k == "listener") {
            Listener li;
            li.where = l.where;
            std::istringstream v(l.value);
            std::string port, bind;
            v >> port >> bind;
            li.port = {port, l.where};
            if (!bind.empty() && bind[0] != '#') li.bind = {bind, l.where};  // Mosquitto 2.x: "#..." is a comment
            listeners_.push_back(std::move(li));
            return;
        }
        if (k == "connection") {
            bridges_.push_back({l.where, l.value, {}, {}});
            return;
        }
        if (kBridgeKeys.count(k) || k.rfind("bridge_", 0) == 0) {
            if (bridges_.empty()) {
                unmapped("other", l, "a bridge option outside any connection block (Mosquitto refuses it)");
                return;
            }
            bridges_.back().lines.push_back({l.where, shown(l), "", true});
            bridges_.back().raw.push_back({l.key, l.value});
            return;
        }
        if (k == "port" || k == "bind_address") {
            default_.used = true;
            if (default_.where.empty()) default_.where = l.where;
            assign(k == "port" ? default_.port : default_.bind, l);
            return;
        }
        if (k == "allow_anonymous" || k == "password_file" || k == "acl_file") {
            if (!per_listener_) {
                assign(global_[k], l);
                return;
            }
            Listener& li = current();
            if (li.is_default) before_listeners_.push_back(l);
            assign(k == "allow_anonymous" ? li.allow_anonymous : k == "password_file" ? li.password_file : li.acl_file, l);
            return;
        }
        static const std::map<std::string, Setting Listener::*> kListenerKeys = {
            {"socket_domain", &Listener::socket_domain},
            {"protocol", &Listener::protocol},
            {"cafile", &Listener::cafile},
            {"capath", &Listener::capath},
            {"certfile", &Listener::certfile},
            {"keyfile", &Listener::keyfile},
            {"tls_version", &Listener::tls_version},
            {"require_certificate", &Listener::require_certificate},
            {"use_identity_as_username", &Listener::use_identity},
            {"max_connections", &Listener::max_connections},
            {"max_qos", &Listener::max_qos},
            {"max_topic_alias", &Listener::max_topic_alias},
        };
        if (auto it = kListenerKeys.find(k); it != kListenerKeys.end()) {
            Listener& li = current();
            if (li.is_default) {
                li.used = true;
                if (li.where.empty()) li.where = l.where;
            }
            assign(li.*(it->second), l);
            return;
        }
        if (auto it = kListenerUnmapped.find(k); it != kListenerUnmapped.end()) {
            Listener& li = current();
            if (li.is_default && !li.used) {
                unmapped("other", l, it->second);
                return;
            }
            listener_unmapped(li, l, it->second);
            return;
        }
        if (k == "log_dest") {
            log_dests_.push_back({l.value, l.where});
            return;
        }
        if (k == "log_type") {
            log_types_.push_back({l.value, l.where});
            return;
        }
        static const std::set<std::string> kGlobalMapped = {
            "persistence", "persistence_location", "max_queued_messages", "max_queued_bytes",
            "max_inflight_messages", "message_size_limit", "max_packet_size", "max_keepalive",
            "retain_available", "sys_interval"};
        if (kGlobalMapped.count(k)) {
            assign(global_[k], l);
            return;
        }
        if (auto it = kGlobalNotes.find(k); it != kGlobalNotes.end()) {
            note(k.rfind("autosave", 0) == 0 || k == "persistence_file" ? "storage"
                 : k.rfind("log_", 0) == 0                              ? "log"
                                                                        : "other",
                 l, it->second);
            return;
        }
        if (auto it = kGlobalUnmapped.find(k); it != kGlobalUnmapped.end()) {
            unmapped("other", l, it->second);
            return;
        }
        if (k.rfind("auth_opt_", 0) == 0 || k.rfind("plugin_opt_", 0) == 0) {
            unmapped("other", l, "hato loads no plugins");
            return;
        }
        unmapped("other", l, "not a Mosquitto option this translator knows");
    }

    // ---- output ---------------------------------------------------------

    void comments(const std::string& section) {
        for (const Note& n : notes_[section]) comment(n);
    }
    void comment(const Note& n) {
        out_ << "# " << (n.unmapped ? "NOT MAPPED " : "") << n.where << ": " << n.line << ": " << n.text << "\n";
    }
    void from(const Setting& s, const std::string& key) { out_ << "# " << s.where << ": " << key << " " << s.value << "\n"; }

    // An option of kIntegerKeys: read_value() let only integers through
    // (value() throws rather than guess one for a key missing there).
    static int64_t integer(const Setting& s) { return to_int(s.value).value(); }

    // The listener's port as written in decimal ("01883" is 1883), or none
    // when it is not a port number.
    static std::optional<int64_t> port_of(const Listener& li) {
        auto port = to_int(li.port.set() ? li.port.value : "1883");
        if (!port || *port < 0 || *port > 65535) return std::nullopt;
        return port;
    }

    // A listener hato can serve, or why not (recorded as unmapped).
    bool servable(Listener& li) {
        if (!port_of(li)) {
            const std::string where = li.port.set() ? li.port.where : li.where;
            li.notes.insert(li.notes.begin(), {where, (li.is_default ? "port " : "listener ") + li.port.value,
                                               "not a port number (0..65535); not converted", true});
            result_.unmapped.push_back(where + ": " + (li.is_default ? "port" : "listener") + ": not a port number");
            return false;
        }
        if (port_of(li) == 0 && li.bind.set()) {
            li.notes.insert(li.notes.begin(), {li.where, "listener 0 " + li.bind.value,
                                               "hato has no Unix socket listeners; not converted", true});
            result_.unmapped.push_back(li.where + ": listener: hato has no Unix socket listeners");
            return false;
        }
        return true;
    }

    struct Auth {
        Setting allow_anonymous, password_file, acl_file;
    };

    Auth auth_of(const Listener& li) {
        if (!per_listener_) return {global_["allow_anonymous"], global_["password_file"], global_["acl_file"]};
        return {li.allow_anonymous, li.password_file, li.acl_file};
    }

    void emit_listener(const Listener& li) {
        out_ << "\n# " << li.where << ": " << (li.is_default ? "the default listener (port / bind_address)" : "listener " + li.port.value + (li.bind.set() ? " " + li.bind.value : "")) << "\n";
        out_ << "[[listener]]\n";
        std::string address;
        if (li.bind.set()) {
            address = li.bind.value;
            if (address == "localhost") {
                out_ << "# localhost: Mosquitto binds 127.0.0.1 and ::1; hato binds one address\n";
                address = "127.0.0.1";
            }
        } else if (li.socket_domain.value == "ipv6") {
            from(li.socket_domain, "socket_domain");
            address = "::";
        } else {
            if (li.socket_domain.set()) from(li.socket_domain, "socket_domain");
            else out_ << "# no bind address: Mosquitto listens on every IPv4 and IPv6 address; \"::\" does the same\n"
                         "# where IPv6 is enabled, \"0.0.0.0\" is every IPv4 address only\n";
            address = "0.0.0.0";
        }
        out_ << "address = " << quote(address) << "\n";
        out_ << "port = " << port_of(li).value() << "\n";
        if (li.protocol.value == "websockets") {
            from(li.protocol, "protocol");
            out_ << "protocol = \"websockets\"\n"
                    "# Mosquitto accepts the WebSocket upgrade on any path; \"\" does the same\n"
                    "path = \"\"\n";
        }

        const bool tls = li.certfile.set() || li.keyfile.set();
        if (tls) {
            std::vector<std::string> kv;
            kv.push_back("cert = " + quote(li.certfile.value));
            kv.push_back("key = " + quote(li.keyfile.value));
            if (li.cafile.set()) kv.push_back("ca = " + quote(li.cafile.value));
            if (li.require_certificate.value == "true") kv.push_back("require_client_cert = true");
            if (li.use_identity.value == "true" && li.require_certificate.value == "true")
                kv.push_back("identity_as_username = true");
            if (li.tls_version.value == "tlsv1.3") kv.push_back("min_version = \"1.3\"");
            else if (li.tls_version.set()) kv.push_back("min_version = \"1.2\"");
            for (auto [s, key] : {std::pair{&li.certfile, "certfile"}, {&li.keyfile, "keyfile"}, {&li.cafile, "cafile"},
                                  {&li.require_certificate, "require_certificate"},
                                  {&li.use_identity, "use_identity_as_username"}, {&li.tls_version, "tls_version"}})
                if (s->set()) from(*s, key);
            out_ << "tls = { ";
            for (size_t i = 0; i < kv.size(); ++i) out_ << (i ? ", " : "") << kv[i];
            out_ << " }\n";
        }
        // A limit per listener in both; Mosquitto's -1 (none) is hato's 0
        // (only [limits] max_connections).
        if (li.max_connections.set()) {
            from(li.max_connections, "max_connections");
            const int64_t v = integer(li.max_connections);
            out_ << "max_connections = " << (v > 0 ? std::min<int64_t>(v, 4294967295) : 0) << "\n";
        }
        if (per_listener_) {
            const Auth a = auth_of(li);
            if (a.allow_anonymous.set()) emit_allow_anonymous(a.allow_anonymous);
            emit_auth_files(a);
        }
        for (const Note& n : li.notes) comment(n);
    }

    // The same keys in [auth] and in a [[listener]].
    void emit_allow_anonymous(const Setting& s) {
        from(s, "allow_anonymous");
        out_ << "allow_anonymous = " << (s.value == "true" ? "true" : "false") << "\n";
    }
    void emit_auth_files(const Auth& a) {
        if (a.password_file.set()) {
            from(a.password_file, "password_file");
            out_ << "password_file = " << quote(a.password_file.value) << "\n";
        }
        if (a.acl_file.set()) {
            from(a.acl_file, "acl_file");
            out_ << "acl_file = " << quote(a.acl_file.value) << "\n";
        }
    }

    // Notes about a listener's TLS lines that do not map one to one.
    void check_listener_tls(Listener& li) {
        auto bad = [&](const Setting& s, const std::string& key, const std::string& why) {
            li.notes.push_back({s.where, key + " " + s.value, why, true});
            result_.unmapped.push_back(s.where + ": " + key + ": " + why);
        };
        if (li.bind.set() && li.bind.value != "localhost" &&
            li.bind.value.find_first_not_of("0123456789.") != std::string::npos &&
            li.bind.value.find(':') == std::string::npos)
            bad(li.bind, li.is_default ? "bind_address" : "listener",
                "hato binds numeric addresses only; write the host's address instead of its name");
        const bool tls = li.certfile.set() || li.keyfile.set();
        if (tls && (!li.certfile.set() || !li.keyfile.set()))
            bad(li.certfile.set() ? li.certfile : li.keyfile, li.certfile.set() ? "certfile" : "keyfile",
                "TLS needs both certfile and keyfile");
        if (li.capath.set())
            bad(li.capath, "capath",
                "hato reads one CA bundle file (tls ca); concatenate the directory's certificates into one file");
        if (!tls) {
            for (auto [s, key] : {std::pair{&li.cafile, "cafile"}, {&li.require_certificate, "require_certificate"},
                                  {&li.use_identity, "use_identity_as_username"}, {&li.tls_version, "tls_version"}})
                if (s->set()) bad(*s, key, "a TLS option on a listener without certfile/keyfile");
            return;
        }
        if (li.use_identity.value == "true" && li.require_certificate.value != "true")
            bad(li.use_identity, "use_identity_as_username", "hato needs require_certificate true for it");
        if (li.tls_version.set() && li.tls_version.value != "tlsv1.2" && li.tls_version.value != "tlsv1.3")
            bad(li.tls_version, "tls_version", "hato refuses TLS 1.1 and older; the oldest it accepts is 1.2");
    }

    void emit() {
        out_ << "# hato.toml converted by `hato migrate` from " << in_.name << ".\n"
             << "# Each setting names the Mosquitto line it comes from. A line marked\n"
             << "# NOT MAPPED has no hato equivalent (see docs/migrating-from-mosquitto.md);\n"
             << "# `hato migrate --strict` fails while there is one. Settings not given here\n"
             << "# keep hato's defaults (conf/hato.toml).\n";

        std::vector<Listener*> all;
        if (default_.used) all.push_back(&default_);
        for (Listener& li : listeners_) all.push_back(&li);
        std::vector<Listener*> served;
        for (Listener* li : all) {
            if (!servable(*li)) continue;
            check_listener_tls(*li);
            served.push_back(li);
        }
        const bool local_only = all.empty();
        // No default listener takes them (port / bind_address ...) while
        // listeners exist: they would vanish.
        if (!default_.used && !local_only)
            for (const Line& l : before_listeners_)
                unmapped("auth", l, std::string("per_listener_settings true and no listener above it: ") +
                                        (l.key == "password_file"
                                             ? "Mosquitto opens a default listener on port 1883 for it"
                                             : "Mosquitto 2.0 ignores it (other versions open a default "
                                               "listener on port 1883 for it)") +
                                        "; not converted: set it after the listener it is for");
        if (local_only)
            out_ << "\n# No listener: like Mosquitto 2.x without one, hato listens on 127.0.0.1:1883\n"
                    "# (its built-in default listener) and lets anonymous clients in there.\n";
        else if (served.empty())
            out_ << "\n# No listener hato can serve; hato's default listener (127.0.0.1:1883) applies.\n";
        for (Listener* li : served) emit_listener(*li);
        for (Listener* li : all)
            if (std::find(served.begin(), served.end(), li) == served.end()) {
                out_ << "\n# " << li->where << ": listener " << li->port.value << " (not converted)\n";
                for (const Note& n : li->notes) comment(n);
            }

        emit_limits(served);
        emit_mqtt(served);
        emit_storage();
        emit_log();
        emit_auth(all, served, local_only);
        emit_sys();
        emit_other();
        emit_bridges();
    }

    void emit_sys() {
        const Setting& s = global_["sys_interval"];
        if (!s.set()) return;
        out_ << "\n[sys]\n";
        from(s, "sys_interval");
        const int64_t v = integer(s);
        out_ << "interval = " << (v > 0 ? std::min<int64_t>(v, 86400) : 0) << "\n";
    }

    // Mosquitto's "connection" blocks as [[bridge]] tables. One that uses
    // TLS-PSK stays a comment: converted, it would connect with certificates
    // hato does not have, or in plain TCP.
    void emit_bridges() {
        static const std::set<std::string> kPskKeys = {"bridge_identity", "bridge_psk"};
        for (Bridge& b : bridges_) {
            bool psk = false;
            for (const auto& [k, v] : b.raw) psk |= kPskKeys.count(k) != 0;
            if (psk || b.name.empty()) {
                std::string why = psk ? "hato's bridges have no TLS-PSK; this bridge is not converted"
                                      : "a connection without a name; not converted";
                out_ << "\n# NOT MAPPED " << b.where << ": connection " << b.name << ": " << why << ":\n";
                result_.unmapped.push_back(b.where + ": connection: " + why + " (" + b.name + ")");
                for (const Note& n : b.lines) {
                    out_ << "#   " << n.where << ": " << n.line << describe_topic(n.line) << "\n";
                    result_.unmapped.push_back(n.where + ": " + n.line.substr(0, n.line.find(' ')) +
                                               ": part of bridge " + b.name);
                }
                continue;
            }
            emit_bridge(b);
        }
    }

    // The bridge_* TLS lines of a connection as the fields of its tls table.
    // Mosquitto talks TLS to the remote once a CA file or directory is set.
    struct BridgeTlsLines {
        bool on = false;
        std::vector<std::string> fields;   // "ca = ...", in the order written
        bool has_cert = false, has_key = false;
    };

    // true: `k` is a bridge TLS key, handled (mapped, commented or NOT MAPPED).
    bool bridge_tls_line(BridgeTlsLines& t, std::ostringstream& body, const Note& n, const std::string& k,
                         const std::string& v) {
        auto src = [&] { body << "# " << n.where << ": " << n.line << "\n"; };
        if (k == "bridge_cafile") {
            src();
            t.on = true;
            t.fields.push_back("ca = " + quote(v));
        } else if (k == "bridge_capath") {
            t.on = true;
            bridge_unmapped(body, n, "hato reads one CA bundle file (tls.ca), or the system's CAs without it; "
                                     "concatenate the directory's certificates into one file and set tls.ca");
        } else if (k == "bridge_certfile" || k == "bridge_keyfile") {
            src();
            (k == "bridge_certfile" ? t.has_cert : t.has_key) = true;
            t.fields.push_back((k == "bridge_certfile" ? "cert = " : "key = ") + quote(v));
        } else if (k == "bridge_insecure") {
            // Mosquitto's skips only the host name check; hato's insecure
            // would skip the chain too, and let anyone on the path pose as the
            // upstream. The chain stays checked: the name to check is the
            // operator's to give (tls.server_name).
            if (v == "true") {
                bridge_unmapped(body, n, "Mosquitto skips only the host name check; hato checks the chain and the "
                                         "name, so set tls.server_name to the name in the upstream's certificate "
                                         "(tls.insecure would skip the chain check too)");
            } else {
                src();
            }
        } else if (k == "bridge_tls_version") {
            if (v != "tlsv1.2") {
                bridge_unmapped(body, n, "hato's bridges negotiate TLS 1.2 or 1.3; the version is not set");
                return true;
            }
            body << "# " << n.where << ": " << n.line << ": hato's bridges negotiate TLS 1.2 or 1.3\n";
        } else if (k == "bridge_alpn" || k == "bridge_require_ocsp" || k == "bridge_ciphers" ||
                   k == "bridge_ciphers_tls1.3") {
            bridge_unmapped(body, n, "no hato equivalent for this bridge TLS option");
        } else {
            return false;
        }
        return true;
    }

    void emit_bridge(const Bridge& b) {
        std::ostringstream body, topics;
        std::string name = b.name;
        std::replace_if(name.begin(), name.end(), [](char c) { return c == '/' || c == '+' || c == '#'; }, '_');
        bool have_address = false, have_client_id = false;
        BridgeTlsLines tls;
        for (size_t i = 0; i < b.raw.size(); ++i) {
            const auto& [k, v] = b.raw[i];
            const Note& n = b.lines[i];
            Line l{n.where, k, v, true};
            auto src = [&] { body << "# " << n.where << ": " << n.line << "\n"; };
            if (bridge_tls_line(tls, body, n, k, v)) {
                continue;
            } else if (k == "address" || k == "addresses") {
                std::istringstream words(v);
                std::string first, more;
                words >> first;
                if (have_address || first.empty()) {
                    bridge_unmapped(body, n, "hato connects a bridge to one address");
                    continue;
                }
                std::string host = first, port = "1883";
                if (size_t c = first.rfind(':'); c != std::string::npos && first.find(':') == c) {
                    host = first.substr(0, c);
                    port = first.substr(c + 1);
                }
                auto number = to_int(port);  // written in decimal: TOML has no "01883"
                if (!number || *number < 1 || *number > 65535) {
                    bridge_unmapped(body, n, "the port is not a number (1..65535)");
                    continue;
                }
                have_address = true;
                src();
                body << "address = " << quote(host) << "\nport = " << *number << "\n";
                if (words >> more) bridge_unmapped(body, n, "hato connects a bridge to one address; the others are not used");
            } else if (k == "remote_clientid" || k == "clientid") {
                have_client_id = true;
                src();
                body << "client_id = " << quote(v) << "\n";
            } else if (k == "remote_username" || k == "username") {
                src();
                body << "username = " << quote(v) << "\n";
            } else if (k == "remote_password" || k == "password") {
                bridge_unmapped(body, n, "hato reads the password from a file: write it to the file below and "
                                         "uncomment password_file");
                body << "# password_file = " << quote("/etc/hato/bridge-" + name + ".secret") << "\n";
            } else if (k == "cleansession") {
                src();
                body << "clean_start = " << (v == "true" ? "true" : "false") << "\n";
            } else if (k == "try_private") {
                src();
                body << "try_private = " << (v == "false" ? "false" : "true") << "\n";
            } else if (k == "keepalive_interval") {
                auto ka = to_int(v);
                if (!ka || *ka < 0 || *ka > 65535) {
                    bridge_unmapped(body, n, "not a keep alive in seconds");
                    continue;
                }
                src();
                body << "keep_alive = " << *ka << "\n";
            } else if (k == "restart_timeout") {
                std::istringstream words(v);
                std::string a, c;
                words >> a >> c;
                auto base = to_int(a);
                auto cap = c.empty() ? base : to_int(c);
                if (!base || !cap || *base < 1 || *cap < *base) {
                    bridge_unmapped(body, n, "not a restart timeout in seconds");
                    continue;
                }
                src();
                body << "# hato backs off from the first value to the second, with jitter, like Mosquitto's\n"
                        "# two-value form (one value: a fixed delay)\n";
                body << "reconnect_min_ms = " << *base * 1000 << "\nreconnect_max_ms = " << *cap * 1000 << "\n";
            } else if (k == "bridge_protocol_version") {
                if (v != "mqttv311" && v != "mqttv50") {
                    bridge_unmapped(body, n, "hato's bridges speak MQTT 3.1.1 or 5.0");
                    continue;
                }
                src();
                body << "protocol = " << quote(v == "mqttv50" ? "mqttv5" : "mqttv311") << "\n";
            } else if (k == "notifications") {
                // Both publish the retained state (and a will) on the upstream's
                // $SYS/broker/connection/<client id>/state; some upstreams (AWS
                // IoT) refuse it, hence the `false` that must carry over.
                if (v != "true" && v != "false") {
                    bridge_unmapped(body, n, "notifications is true or false");
                    continue;
                }
                src();
                body << "notifications = " << v << "\n";
            } else if (k == "bridge_max_packet_size" || k == "bridge_receive_maximum" ||
                       k == "bridge_session_expiry_interval") {
                bridge_number(body, n, k, *to_int(v));
            } else if (k == "topic") {
                emit_bridge_topic(topics, body, n, v);
            } else {
                bridge_unmapped(body, n, "no hato equivalent for this bridge option");
            }
        }
        if (!have_client_id) default_client_id(b, body);
        out_ << "\n# " << b.where << ": connection " << b.name << "\n[[bridge]]\nname = " << quote(name) << "\n";
        if (!have_address) {
            connection_unmapped(b, "no address hato can use");
            out_ << "address = \"\"\n";
        }
        out_ << body.str();
        emit_bridge_tls(b, tls);
        out_ << topics.str();
    }

    // Mosquitto reads these with atoi: a C int.
    void bridge_number(std::ostringstream& body, const Note& n, const std::string& k, int64_t v) {
        constexpr int64_t kIntMax = 2147483647;
        if (k == "bridge_max_packet_size") {
            if (v > kIntMax) return bridge_unmapped(body, n, "above 2147483647, more than Mosquitto reads; not converted");
            body << "# " << n.where << ": " << n.line << (v < 0 ? ": below 0 is 0 (no limit) in Mosquitto" : "") << "\n";
            body << "max_packet_size = " << std::max<int64_t>(v, 0) << "\n";
        } else if (k == "bridge_receive_maximum") {
            if (v < 1 || v > 65535) return bridge_unmapped(body, n, "not 1..65535: Mosquitto refuses it");
            body << "# " << n.where << ": " << n.line << ": hato's inflight bounds the messages sent upstream too\n";
            body << "inflight = " << v << "\n";
        } else {
            if (v < 0 || v > kIntMax)
                return bridge_unmapped(body, n, "not 0..2147483647: Mosquitto refuses it or reads another number");
            body << "# " << n.where << ": " << n.line << "\n";
            body << "session_expiry = " << v << "\n";
        }
    }

    // Mosquitto's default remote client id; hato's own default differs, and
    // the upstream's session, its ACLs (%c) and the state topic follow the id.
    void default_client_id(const Bridge& b, std::ostringstream& body) {
        if (in_.hostname.empty()) {
            body << "# NOT MAPPED " << b.where << ": connection " << b.name << ": no remote_clientid, and this "
                 << "machine's name (Mosquitto's default <hostname>." << b.name << ") is unknown: set client_id\n";
            result_.unmapped.push_back(b.where + ": connection: no remote_clientid and no host name (" + b.name + ")");
            return;
        }
        body << "# no remote_clientid: Mosquitto's default <hostname>.<connection name>, computed on this\n"
                "# machine; edit it if this file is deployed on another one\n";
        body << "client_id = " << quote(in_.hostname + "." + b.name) << "\n";
    }

    // hato wants a client certificate and its key together: one alone is
    // left out (Mosquitto refuses that too).
    void emit_bridge_tls(const Bridge& b, BridgeTlsLines& t) {
        if (t.has_cert != t.has_key) {
            std::erase_if(t.fields, [](const std::string& f) { return f.starts_with("cert =") || f.starts_with("key ="); });
            connection_unmapped(b, "bridge_certfile and bridge_keyfile go together; neither is converted");
        }
        if (!t.on && t.fields.empty()) return;
        if (!t.on) {
            connection_unmapped(b, "TLS options without bridge_cafile or bridge_capath; Mosquitto would not use "
                                   "TLS either");
            return;
        }
        out_ << "tls = { ";
        for (size_t i = 0; i < t.fields.size(); ++i) out_ << (i ? ", " : "") << t.fields[i];
        out_ << (t.fields.empty() ? "}" : " }") << "\n";
    }

    void connection_unmapped(const Bridge& b, const std::string& why) {
        out_ << "# NOT MAPPED " << b.where << ": connection " << b.name << ": " << why << "\n";
        result_.unmapped.push_back(b.where + ": connection: " + why + " (" + b.name + ")");
    }

    void bridge_unmapped(std::ostringstream& os, const Note& n, const std::string& why) {
        os << "# NOT MAPPED " << n.where << ": " << n.line << ": " << why << "\n";
        result_.unmapped.push_back(n.where + ": " + n.line.substr(0, n.line.find(' ')) + ": " + why);
    }

    // "topic PATTERN [DIRECTION [QOS [LOCAL [REMOTE]]]]". hato matches a
    // rule's pattern against the local topic (out) or the remote one (in),
    // prefixes included; a "both" rule with two different prefixes becomes
    // an out and an in rule. An empty pattern ("") maps the prefix itself:
    // it is then the whole topic on each side.
    void emit_bridge_topic(std::ostringstream& os, std::ostringstream& body, const Note& n, const std::string& v) {
        std::vector<std::string> w;
        std::istringstream words(v);
        for (std::string t; words >> t;) w.push_back(t == "\"\"" ? "" : t);
        std::string pattern = w.size() > 0 ? w[0] : "", dir = w.size() > 1 ? w[1] : "out",
                    qos = w.size() > 2 ? w[2] : "0", local = w.size() > 3 ? w[3] : "", remote = w.size() > 4 ? w[4] : "";
        // Mosquitto reads the direction in any letter case
        std::transform(dir.begin(), dir.end(), dir.begin(), [](unsigned char c) { return std::tolower(c); });
        if (pattern.empty() && (local.empty() || remote.empty())) {
            bridge_unmapped(body, n, "an empty pattern without both prefixes: Mosquitto refuses it");
            return;
        }
        if ((dir != "out" && dir != "in" && dir != "both") || (qos != "0" && qos != "1" && qos != "2")) {
            bridge_unmapped(body, n, "not a topic line hato understands");
            return;
        }
        auto rule = [&](const std::string& d, const std::string& p) {
            os << "\n# " << n.where << ": " << n.line << "\n[[bridge.topic]]\npattern = " << quote(p)
               << "\ndirection = " << quote(d) << "\nqos = " << qos << "\n";
            if (!local.empty()) os << "local_prefix = " << quote(local) << "\n";
            if (!remote.empty()) os << "remote_prefix = " << quote(remote) << "\n";
        };
        if (dir == "both" && local != remote) {
            rule("out", local + pattern);
            rule("in", remote + pattern);
        } else {
            rule(dir, (dir == "in" ? remote : local) + pattern);
        }
    }

    // The value every served listener gives `field`, if they agree and all set it.
    std::optional<Setting> uniform(const std::vector<Listener*>& served, Setting Listener::*field) {
        if (served.empty() || !(served[0]->*field).set()) return std::nullopt;
        for (Listener* li : served)
            if (!(li->*field).set() || (li->*field).value != (served[0]->*field).value) return std::nullopt;
        return served[0]->*field;
    }

    // A per-listener Mosquitto setting that hato has once: mapped when every
    // listener agrees, else each one's line is a NOT MAPPED comment.
    std::optional<Setting> per_listener_value(const std::vector<Listener*>& served, Setting Listener::*field,
                                              const std::string& key, const std::string& section) {
        if (auto u = uniform(served, field)) return u;
        for (Listener* li : served)
            if ((li->*field).set()) {
                const Setting& s = li->*field;
                Line l{s.where, key, s.value, true};
                unmapped(section, l, "set per listener in Mosquitto, once for all listeners in hato; the listeners differ");
            }
        return std::nullopt;
    }

    void emit_limits(const std::vector<Listener*>& served) {
        out_ << "\n[limits]\n";
        // Mosquitto has no limit over all listeners. hato's: the listeners'
        // sum when each sets one, none when one has none (-1), else its own
        // default.
        int64_t total = 0;
        bool all_set = !served.empty(), unlimited = false;
        for (Listener* li : served) {
            if (!li->max_connections.set()) {
                all_set = false;
                continue;
            }
            // Mosquitto's -1 (its default), and any value below 1, is no limit
            const int64_t v = integer(li->max_connections);
            if (v > 0) total = std::min<int64_t>(total + v, 4294967295);
            else unlimited = true;
        }
        if (unlimited || all_set) {
            out_ << "# the listeners' max_connections (" << (unlimited ? "one has no limit" : "their sum")
                 << "): Mosquitto has no limit over all of them\n";
            out_ << "max_connections = " << (unlimited ? int64_t{4294967295} : total) << "\n";
        }
        comments("limits");
        int64_t packet = 0;
        if (global_["max_packet_size"].set()) {
            const Setting& s = global_["max_packet_size"];
            from(s, "max_packet_size");
            const int64_t v = integer(s);
            packet = v > 0 ? std::min(v, kMaxPacket) : 0;  // 0: Mosquitto's "no limit", its default
        } else if (global_["message_size_limit"].set()) {
            const Setting& s = global_["message_size_limit"];
            from(s, "message_size_limit");
            out_ << "# Mosquitto limits the payload, hato the whole packet: this lets a payload of\n"
                    "# message_size_limit bytes through with any topic (and the packet's fields)\n";
            const int64_t v = integer(s);
            packet = v > 0 ? std::min<int64_t>(v + 65535 + 2 + 2 + 5 + 4096, kMaxPacket) : 0;
        }
        if (packet > 0) {
            out_ << "max_packet_size = " << packet << "\n";
            needed_segment_mb_ = (packet + int64_t(broker::kMaxRecordOverhead) + kMiB - 1) / kMiB;
        } else {
            out_ << "# Mosquitto accepts packets up to 256 MiB unless max_packet_size or\n"
                    "# message_size_limit says less; hato's default max_packet_size is 1 MiB\n";
        }
        if (global_["max_inflight_messages"].set()) {
            const Setting& s = global_["max_inflight_messages"];
            from(s, "max_inflight_messages");
            const int64_t v = integer(s);
            out_ << "max_inflight = " << (v > 0 ? std::min<int64_t>(v, 65535) : 65535) << "\n";
        }
        if (global_["max_queued_messages"].set()) {
            const Setting& s = global_["max_queued_messages"];
            from(s, "max_queued_messages");
            const int64_t v = integer(s);
            out_ << "max_queued_messages = " << (v > 0 ? std::min<int64_t>(v, 4294967295) : int64_t{4294967295}) << "\n";
        }
        if (global_["max_queued_bytes"].set()) {
            const Setting& s = global_["max_queued_bytes"];
            from(s, "max_queued_bytes");
            const int64_t v = integer(s);
            out_ << "max_queued_bytes = " << (v > 0 ? v : 0) << "\n";
        }
    }

    void emit_mqtt(const std::vector<Listener*>& served) {
        out_ << "\n[mqtt]\n";
        if (global_["max_keepalive"].set()) {
            const Setting& s = global_["max_keepalive"];
            from(s, "max_keepalive");
            out_ << "max_keep_alive = " << std::clamp<int64_t>(integer(s), 0, 65535) << "\n";
        }
        if (global_["retain_available"].set()) {
            from(global_["retain_available"], "retain_available");
            out_ << "retain_available = " << (global_["retain_available"].value == "false" ? "false" : "true") << "\n";
        }
        if (auto s = per_listener_value(served, &Listener::max_qos, "max_qos", "mqtt")) {
            from(*s, "max_qos");
            out_ << "maximum_qos = " << std::clamp<int64_t>(integer(*s), 0, 2) << "\n";
        }
        if (auto s = per_listener_value(served, &Listener::max_topic_alias, "max_topic_alias", "mqtt")) {
            from(*s, "max_topic_alias");
            out_ << "topic_alias_maximum = " << std::clamp<int64_t>(integer(*s), 0, 65535) << "\n";
        }
        comments("mqtt");
    }

    void emit_storage() {
        out_ << "\n[storage]\n";
        const Setting& p = global_["persistence"];
        const Setting& loc = global_["persistence_location"];
        if (p.value == "true") {
            from(p, "persistence");
            out_ << "enabled = true\n";
            out_ << "# hato does not read mosquitto.db: retained messages and sessions start empty\n";
            if (loc.set()) {
                // The packaged service may write only /var/lib/hato
                // (ProtectSystem=strict): a dir elsewhere would stop it.
                from(loc, "persistence_location");
                out_ << "# hato keeps its own log (not mosquitto.db) in its default dir, /var/lib/hato, the one\n"
                        "# directory the packaged service may write. Elsewhere: set dir and allow it in the unit\n"
                        "# (systemctl edit hato: [Service] ReadWritePaths=DIR)\n";
                out_ << "# dir = " << quote(loc.value) << "\n";
            } else {
                out_ << "# no persistence_location: Mosquitto saves in its working directory; hato uses\n"
                        "# its default dir\n";
            }
        } else {
            if (p.set()) from(p, "persistence");
            else out_ << "# no `persistence true`: Mosquitto keeps nothing across a restart\n";
            out_ << "# true keeps retained messages, sessions and queued messages across restarts\n";
            out_ << "enabled = false\n";
            if (loc.set()) out_ << "# " << loc.where << ": persistence_location " << loc.value << ": unused without persistence\n";
        }
        if (needed_segment_mb_ > kDefaultSegmentMb && p.value == "true") {
            out_ << "# one segment must hold the largest message ([limits] max_packet_size)\n";
            out_ << "segment_size_mb = " << needed_segment_mb_ << "\n";
        }
        comments("storage");
    }

    void emit_log() {
        out_ << "\n[log]\n";
        for (const Setting& d : log_dests_) {
            std::string kind = d.value.substr(0, d.value.find(' '));
            Line l{d.where, "log_dest", d.value, true};
            if (kind == "stderr" || kind == "stdout")
                note("log", l, "hato logs to stderr");
            else if (kind == "syslog")
                note("log", l, "hato logs to stderr, which systemd passes to the journal (and syslog)");
            else if (kind == "file")
                unmapped("log", l, "hato logs to stderr only; under systemd read it with journalctl -u hato");
            else if (kind == "topic")
                unmapped("log", l, "hato publishes no log messages on $SYS topics");
            else
                unmapped("log", l, "hato always logs to stderr");
        }
        // Mosquitto's log types are switches; hato has one threshold: the
        // most verbose type given picks it.
        static const std::map<std::string, int> kLevel = {
            {"error", 0}, {"warning", 1}, {"notice", 2}, {"information", 2}, {"debug", 3}, {"all", 3}};
        static const char* kNames[] = {"error", "warn", "info", "debug"};
        int level = -1;
        for (const Setting& t : log_types_) {
            Line l{t.where, "log_type", t.value, true};
            if (auto it = kLevel.find(t.value); it != kLevel.end()) level = std::max(level, it->second);
            else if (t.value == "none") unmapped("log", l, "hato always logs errors");
            else unmapped("log", l, "hato has no separate " + t.value + " messages; [log] level debug shows the most");
        }
        comments("log");
        if (level >= 0) {
            for (const Setting& t : log_types_) out_ << "# " << t.where << ": log_type " << t.value << "\n";
            out_ << "level = " << quote(kNames[level]) << "\n";
        }
    }

    void emit_auth(const std::vector<Listener*>& all, const std::vector<Listener*>& served, bool local_only) {
        out_ << "\n[auth]\n";
        if (per_listener_ && !served.empty()) {
            // Written on each [[listener]] (emit_listener), as hato has them
            // per listener too; what none sets falls back to this table.
            out_ << "# per_listener_settings true: each [[listener]] above carries its own allow_anonymous,\n"
                    "# password_file and acl_file; one that sets no allow_anonymous refuses anonymous\n"
                    "# clients, as Mosquitto 2.x does\n";
            comments("auth");
            out_ << "allow_anonymous = false\n";
            return;
        }
        Auth auth = per_listener_ && !all.empty() ? auth_of(*all[0]) : auth_of(default_);
        comments("auth");
        if (auth.allow_anonymous.set()) {
            emit_allow_anonymous(auth.allow_anonymous);
        } else if (!local_only) {
            out_ << "# no allow_anonymous: Mosquitto 2.x refuses clients without a user name\n"
                    "# (1.6 let them in; write true here to keep that)\n"
                    "allow_anonymous = false\n";
        }
        emit_auth_files(auth);
    }

    void emit_other() {
        if (notes_["other"].empty()) return;
        out_ << "\n# ---- Mosquitto settings without a place above ----\n";
        comments("other");
    }

    // "topic PATTERN [DIRECTION [QOS [LOCAL [REMOTE]]]]" spelled out.
    static std::string describe_topic(const std::string& line) {
        if (line.rfind("topic ", 0) != 0) return "";
        std::istringstream s(line.substr(6));
        std::string pattern, dir = "out", qos = "0", local, remote;
        s >> pattern >> dir >> qos >> local >> remote;
        std::string d = " (pattern " + pattern + ", direction " + dir + ", QoS " + qos;
        if (!local.empty() && local != "\"\"") d += ", local prefix " + local;
        if (!remote.empty() && remote != "\"\"") d += ", remote prefix " + remote;
        return d + ")";
    }

    int64_t needed_segment_mb_ = 0;
};

}  // namespace

MigrateResult migrate_mosquitto(const MigrateInput& input) {
    return Migrator(input).run();
}

}  // namespace hato::config
