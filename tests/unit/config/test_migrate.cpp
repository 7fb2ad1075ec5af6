// hato migrate: each configuration of the corpus in tests/migrate/ converts
// to a hato.toml that the config loader accepts, with the expected values and
// a NOT MAPPED comment for every line without an equivalent; then Mosquitto's
// order-sensitive rules, one by one.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/migrate.hpp"

using namespace hato;
using config::MigrateInput;
using config::MigrateResult;

namespace {

const std::string kCorpus = std::string(HATO_SOURCE_ROOT) + "/tests/migrate/";

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), path);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// Files by path, for include_dir: "dir/name" -> contents.
using Files = std::map<std::string, std::string>;

MigrateResult migrate(const std::string& text, const Files& files = {}) {
    MigrateInput in;
    in.name = "mosquitto.conf";
    in.text = text;
    in.list_dir = [&files](const std::string& dir) -> std::optional<std::vector<std::string>> {
        std::vector<std::string> names;
        for (const auto& [path, _] : files)
            if (path.rfind(dir + "/", 0) == 0) names.push_back(path.substr(dir.size() + 1));
        if (names.empty()) return std::nullopt;
        std::reverse(names.begin(), names.end());  // the reader's order must not matter
        return names;
    };
    in.read_file = [&files](const std::string& path) -> std::optional<std::string> {
        auto it = files.find(path);
        if (it == files.end()) return std::nullopt;
        return it->second;
    };
    in.hostname = "gw-host";
    return config::migrate_mosquitto(in);
}

// The corpus directory `name`: its mosquitto.conf, and conf.d/ (if any) as
// the directory /etc/mosquitto/conf.d.
MigrateResult migrate_corpus(const std::string& name) {
    Files files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(kCorpus + name + "/conf.d", ec))
        files["/etc/mosquitto/conf.d/" + e.path().filename().string()] = slurp(e.path().string());
    return migrate(slurp(kCorpus + name + "/mosquitto.conf"), files);
}

config::AppConfig load(const MigrateResult& r) {
    config::AppConfig cfg = config::defaults();
    std::vector<std::string> errors;
    bool ok = config::load_string(r.toml, "hato.toml", cfg, errors);
    for (const auto& e : errors) MESSAGE(e);
    INFO(r.toml);
    REQUIRE(ok);
    return cfg;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The unmapped entry for `where` ("mosquitto.conf:N"), or "".
std::string unmapped_at(const MigrateResult& r, const std::string& where) {
    for (const auto& u : r.unmapped)
        if (u.rfind(where + ":", 0) == 0) return u;
    return "";
}

}  // namespace

TEST_CASE("migrate: Debian's default with include_dir conf.d") {
    MigrateResult r = migrate_corpus("debian");
    config::AppConfig cfg = load(r);
    // conf.d/local.conf: listener 1883, allow_anonymous true
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].address == "0.0.0.0");
    CHECK(cfg.listeners[0].port == 1883);
    CHECK(cfg.auth.allow_anonymous == true);
    // conf.d/limits.conf
    CHECK(cfg.broker.max_queued_messages == 5000);
    CHECK(cfg.broker.max_keep_alive == 300);
    CHECK(cfg.broker.max_packet_size >= 262144);
    CHECK(has(r.toml, "# /etc/mosquitto/conf.d/limits.conf:2: message_size_limit 262144"));
    // both .conf files are read, README (no .conf) not at all
    CHECK(has(r.toml, "# /etc/mosquitto/conf.d/local.conf:2: listener 1883"));
    CHECK_FALSE(has(r.toml, "README"));
    CHECK(cfg.storage_enabled);
    // Not Mosquitto's directory: the packaged service may write only its own.
    CHECK(cfg.storage.dir == config::defaults().storage.dir);
    CHECK(has(r.toml, "# dir = \"/var/lib/mosquitto/\""));
    CHECK(has(r.toml, "pid_file /run/mosquitto/mosquitto.pid: not needed"));
    // log_dest file is the one line without an equivalent
    REQUIRE(r.unmapped.size() == 1);
    CHECK(has(r.unmapped[0], "mosquitto.conf:11: log_dest"));
    CHECK(has(r.toml, "# NOT MAPPED mosquitto.conf:11: log_dest file /var/log/mosquitto/mosquitto.log"));
}

TEST_CASE("migrate: Raspberry Pi tutorial, TLS + passwords + ACL") {
    MigrateResult r = migrate_corpus("pi-tls");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[0].address == "127.0.0.1");  // listener 1883 localhost
    CHECK(cfg.listeners[0].port == 1883);
    CHECK_FALSE(cfg.listeners[0].tls.enabled);
    CHECK(cfg.listeners[1].address == "0.0.0.0");
    CHECK(cfg.listeners[1].port == 8883);
    // cafile/certfile/keyfile/tls_version after `listener 8883` belong to it
    CHECK(cfg.listeners[1].tls.enabled);
    CHECK(cfg.listeners[1].tls.cert == "/etc/mosquitto/certs/server.crt");
    CHECK(cfg.listeners[1].tls.key == "/etc/mosquitto/certs/server.key");
    CHECK(cfg.listeners[1].tls.ca == "/etc/mosquitto/certs/ca.crt");
    CHECK_FALSE(cfg.listeners[1].tls.require_client_cert);
    CHECK(cfg.listeners[1].tls.min_version == "1.2");
    CHECK(cfg.auth.allow_anonymous == false);
    CHECK(cfg.auth.password_file == "/etc/mosquitto/passwd");
    CHECK(cfg.auth.acl_file == "/etc/mosquitto/acl");
    CHECK(cfg.log_level == config::LogLevel::Info);
    // autosave is explained, not counted as unmapped
    CHECK(has(r.toml, "autosave_interval 900: not needed: hato's append log is durable per acknowledgement"));
    CHECK(unmapped_at(r, "mosquitto.conf:6").empty());
    // max_connections belongs to its listener in both; the other listener
    // has none, so hato's overall default stays
    CHECK(cfg.listeners[1].max_connections == 200);
    CHECK(cfg.listeners[0].max_connections == 0);
    CHECK(cfg.broker.max_connections == config::defaults().broker.max_connections);
    CHECK(has(unmapped_at(r, "mosquitto.conf:7"), "log_dest"));
    CHECK(r.unmapped.size() == 1);
}

TEST_CASE("migrate: a bridge over TLS to a cloud broker becomes [[bridge]] with tls") {
    MigrateResult r = migrate_corpus("bridge");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].address == "127.0.0.1");
    CHECK(cfg.auth.allow_anonymous == true);
    CHECK(cfg.broker.max_inflight == 20);
    CHECK(cfg.broker.max_queued_bytes == 10485760);
    CHECK(cfg.sys_interval_s == 10);
    REQUIRE(cfg.bridges.size() == 1);
    const config::Bridge& b = cfg.bridges[0];
    CHECK(b.name == "cloud");
    CHECK(b.address == "mqtt.example.com");
    CHECK(b.port == 8883);
    CHECK(b.tls.enabled);
    CHECK(b.tls.ca == "/etc/mosquitto/certs/cloud-ca.crt");
    CHECK(b.tls.cert == "/etc/mosquitto/certs/gateway.crt");
    CHECK(b.tls.key == "/etc/mosquitto/certs/gateway.key");
    CHECK(b.tls.server_name.empty());   // the address, like Mosquitto
    CHECK_FALSE(b.tls.insecure);
    CHECK(b.client_id == "gateway-17");
    CHECK(b.reconnect_min_ms == 10000);
    CHECK(b.reconnect_max_ms == 60000);
    REQUIRE(b.topics.size() == 2);
    CHECK(b.topics[0] == config::BridgeTopic{"sensors/#", "out", 1, "", "site17/"});
    CHECK(b.topics[1] == config::BridgeTopic{"site17/gateway/commands/#", "in", 1, "gateway/", "site17/gateway/"});
    CHECK(b.notifications);
    // what is left: the password (kept out of hato.toml)
    CHECK(has(unmapped_at(r, "mosquitto.conf:19"), "password"));
    CHECK(r.unmapped.size() == 1);
    CHECK(has(r.toml, "mosquitto.conf:19: remote_password ***"));
    CHECK_FALSE(has(r.toml, "s3cret"));
}

TEST_CASE("migrate: bridge TLS lines without a one-to-one equivalent") {
    auto bridge = [](const std::string& tls_lines) {
        return migrate("listener 1883 127.0.0.1\nallow_anonymous true\n"
                       "connection up\naddress 10.0.0.1:8883\n" + tls_lines + "topic a/# out 1\n");
    };
    SUBCASE("insecure true and a CA directory: TLS on, system CAs, the chain still checked; both NOT MAPPED") {
        MigrateResult r = bridge("bridge_capath /etc/ssl/certs\nbridge_insecure true\nbridge_tls_version tlsv1.2\n");
        config::AppConfig cfg = load(r);
        REQUIRE(cfg.bridges.size() == 1);
        CHECK(cfg.bridges[0].tls.enabled);
        CHECK(cfg.bridges[0].tls.ca.empty());
        // Mosquitto's skips only the name check: hato's insecure would skip the chain too
        CHECK_FALSE(cfg.bridges[0].tls.insecure);
        CHECK(has(unmapped_at(r, "mosquitto.conf:5"), "one CA bundle file"));
        CHECK(has(unmapped_at(r, "mosquitto.conf:6"), "tls.server_name"));
        CHECK(has(r.toml, "mosquitto.conf:7: bridge_tls_version tlsv1.2: hato's bridges negotiate TLS 1.2 or 1.3"));
        CHECK(r.unmapped.size() == 2);
    }
    SUBCASE("bridge_insecure false is the default; tlsv1.3, alpn and ciphers are NOT MAPPED") {
        MigrateResult r = bridge("bridge_cafile /ca.pem\nbridge_insecure false\nbridge_tls_version tlsv1.3\n"
                                 "bridge_alpn mqtt\nbridge_ciphers ECDHE-RSA-AES128-GCM-SHA256\n");
        config::AppConfig cfg = load(r);
        REQUIRE(cfg.bridges.size() == 1);
        CHECK(cfg.bridges[0].tls.ca == "/ca.pem");
        CHECK_FALSE(cfg.bridges[0].tls.insecure);
        CHECK(has(unmapped_at(r, "mosquitto.conf:7"), "TLS 1.2 or 1.3"));
        CHECK(has(unmapped_at(r, "mosquitto.conf:8"), "bridge TLS option"));
        CHECK(has(unmapped_at(r, "mosquitto.conf:9"), "bridge TLS option"));
        CHECK(r.unmapped.size() == 3);
    }
    SUBCASE("a certificate without its key: neither is converted") {
        MigrateResult r = bridge("bridge_cafile /ca.pem\nbridge_certfile /gw.crt\n");
        config::AppConfig cfg = load(r);
        REQUIRE(cfg.bridges.size() == 1);
        CHECK(cfg.bridges[0].tls.ca == "/ca.pem");
        CHECK(cfg.bridges[0].tls.cert.empty());
        CHECK(has(unmapped_at(r, "mosquitto.conf:3"), "go together"));
        CHECK(r.unmapped.size() == 1);
    }
    SUBCASE("no CA: Mosquitto does not use TLS, nor does the converted bridge") {
        MigrateResult r = bridge("bridge_insecure true\n");
        config::AppConfig cfg = load(r);
        REQUIRE(cfg.bridges.size() == 1);
        CHECK_FALSE(cfg.bridges[0].tls.enabled);
        CHECK(has(unmapped_at(r, "mosquitto.conf:5"), "tls.server_name"));
    }
    SUBCASE("TLS-PSK: the block stays a comment") {
        MigrateResult r = bridge("bridge_identity gw\nbridge_psk 0123abcd\n");
        config::AppConfig cfg = load(r);
        CHECK(cfg.bridges.empty());
        CHECK(has(unmapped_at(r, "mosquitto.conf:3"), "no TLS-PSK"));
        CHECK_FALSE(has(r.toml, "0123abcd"));
    }
}

TEST_CASE("migrate: WebSockets + TLS") {
    MigrateResult r = migrate_corpus("websockets-tls");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[0].port == 8883);
    CHECK(cfg.listeners[1].port == 8083);
    CHECK(cfg.listeners[1].protocol == config::ListenerProtocol::WebSockets);
    CHECK(cfg.listeners[1].path == "");
    CHECK(cfg.listeners[1].tls.cert == "/etc/mosquitto/certs/server.crt");
    CHECK(cfg.listeners[0].tls.require_client_cert);
    CHECK(cfg.listeners[0].tls.identity_as_username);
    CHECK(cfg.listeners[0].tls.min_version == "1.3");
    CHECK(has(unmapped_at(r, "mosquitto.conf:19"), "http_dir"));
    CHECK(r.unmapped.size() == 1);
    CHECK_FALSE(cfg.storage_enabled);  // no `persistence true`
    CHECK(cfg.auth.allow_anonymous == false);
}

TEST_CASE("migrate: per_listener_settings true: each listener keeps its own authentication") {
    MigrateResult r = migrate_corpus("per-listener");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[0].address == "10.0.0.1");
    CHECK(cfg.listeners[1].address == "192.168.1.10");
    CHECK(cfg.listeners[1].port == 1884);
    // each listener keeps its own, as hato has them per listener too
    CHECK(cfg.listeners[0].allow_anonymous == std::optional<bool>(true));
    CHECK(cfg.listeners[0].password_file.empty());
    CHECK(cfg.listeners[1].allow_anonymous == std::optional<bool>(false));
    CHECK(cfg.listeners[1].password_file == "/etc/mosquitto/passwd");
    CHECK(cfg.listeners[1].acl_file == "/etc/mosquitto/acl");
    CHECK(cfg.listeners[1].max_connections == 50);
    // what no listener sets: Mosquitto 2.x's default, and no shared files
    CHECK(cfg.auth.allow_anonymous == false);
    CHECK(cfg.auth.password_file.empty());
    CHECK(cfg.auth.acl_file.empty());
    CHECK(r.unmapped.empty());
}

TEST_CASE("migrate: per_listener_settings true with listeners that agree maps exactly") {
    MigrateResult r = migrate(
        "per_listener_settings true\n"
        "listener 1883 127.0.0.1\n"
        "password_file /p\n"
        "listener 1884 127.0.0.2\n"
        "password_file /p\n");
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[0].password_file == "/p");
    CHECK(cfg.listeners[1].password_file == "/p");
    CHECK(cfg.auth.allow_anonymous == false);  // Mosquitto 2.x default
}

TEST_CASE("migrate: without per_listener_settings, auth options are global wherever they stand") {
    MigrateResult r = migrate(
        "listener 1883 127.0.0.1\n"
        "listener 1884 127.0.0.2\n"
        "allow_anonymous true\n");
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    CHECK(cfg.auth.allow_anonymous == true);
}

TEST_CASE("migrate: options before any listener belong to the default listener") {
    MigrateResult r = migrate(
        "port 8883\n"
        "certfile /c.crt\n"
        "keyfile /c.key\n"
        "listener 1883 127.0.0.1\n"
        "max_qos 1\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[0].port == 8883);
    CHECK(cfg.listeners[0].tls.cert == "/c.crt");
    CHECK_FALSE(cfg.listeners[1].tls.enabled);
    // max_qos on one listener only: not the same for all
    CHECK(has(unmapped_at(r, "mosquitto.conf:5"), "max_qos"));
}

TEST_CASE("migrate: bridge options attach to the last connection, across listeners") {
    MigrateResult r = migrate(
        "connection a\n"
        "address a.example:1883\n"
        "listener 1883 127.0.0.1\n"
        "topic x/# both 0\n"
        "max_qos 1\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.bridges.size() == 1);
    REQUIRE(cfg.bridges[0].topics.size() == 1);   // the topic line belongs to bridge a
    CHECK(cfg.bridges[0].topics[0].direction == "both");
    CHECK(cfg.bridges[0].topics[0].qos == 0);
    CHECK(cfg.broker.maximum_qos == 1);  // the listener's, mapped (one listener)
    MigrateResult bad_port = migrate("listener\nlistener 70000\nlistener 0 /run/mqtt.sock\n");
    CHECK(load(bad_port).listeners.size() == 1);  // none converted: hato's default
    CHECK(has(unmapped_at(bad_port, "mosquitto.conf:1"), "not a port number"));
    CHECK(has(unmapped_at(bad_port, "mosquitto.conf:2"), "not a port number"));
    CHECK(has(unmapped_at(bad_port, "mosquitto.conf:3"), "Unix socket"));
    MigrateResult outside = migrate("address b.example\n");
    CHECK(has(unmapped_at(outside, "mosquitto.conf:1"), "outside any connection"));
}

TEST_CASE("migrate: include_dir is followed in the main file only") {
    Files files = {{"/d/a.conf", "include_dir /e\nmax_queued_messages 7\n"},
                   {"/e/b.conf", "max_queued_messages 9\n"},
                   {"/d/z.conf", "max_queued_messages 6\n"},
                   {"/d/zz.txt", "max_queued_messages 8\n"}};
    MigrateResult r = migrate("include_dir /d\n", files);
    config::AppConfig cfg = load(r);
    CHECK(cfg.broker.max_queued_messages == 6);  // read in name order: z.conf after a.conf, b.conf never
    CHECK(has(unmapped_at(r, "/d/a.conf:1"), "main file only"));
    MigrateResult missing = migrate("include_dir /nowhere\n");
    CHECK(has(unmapped_at(missing, "mosquitto.conf:1"), "cannot read the directory"));
}

TEST_CASE("migrate: no listener keeps hato's loopback default and its anonymous rule") {
    MigrateResult r = migrate("persistence false\n");
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].address == "127.0.0.1");
    CHECK_FALSE(cfg.auth.allow_anonymous.has_value());
    CHECK_FALSE(cfg.storage_enabled);
}

TEST_CASE("migrate: limits, unlimited values and a large packet size") {
    MigrateResult r = migrate(
        "listener 1883\n"
        "allow_anonymous true\n"
        "persistence true\n"
        "max_packet_size 100000000\n"
        "max_queued_messages 0\n"
        "max_inflight_messages 0\n"
        "max_connections -1\n"
        "socket_domain ipv6\n"
        "log_type all\n"
        "retain_available false\n"
        "frobnicate 1\n");
    config::AppConfig cfg = load(r);  // segment_size_mb is raised to hold the packet
    CHECK(cfg.broker.max_packet_size == 100000000);
    CHECK(cfg.broker.max_queued_messages == 4294967295u);
    CHECK(cfg.broker.max_inflight == 65535);
    CHECK(cfg.broker.max_connections == 4294967295u);
    CHECK(cfg.listeners[0].address == "::");
    CHECK(cfg.log_level == config::LogLevel::Debug);
    CHECK_FALSE(cfg.broker.retain_available);
    CHECK(has(unmapped_at(r, "mosquitto.conf:11"), "frobnicate"));
    CHECK(r.unmapped.size() == 1);
    // 0 is Mosquitto's "no limit" (its default): hato's default stays, said in a comment
    MigrateResult zero = migrate("message_size_limit 0\n");
    CHECK(load(zero).broker.max_packet_size == config::defaults().broker.max_packet_size);
    CHECK(has(zero.toml, "Mosquitto accepts packets up to 256 MiB"));
}

TEST_CASE("migrate: TLS options hato cannot honour are NOT MAPPED") {
    MigrateResult r = migrate(
        "listener 8883\n"
        "certfile /s.crt\n"
        "keyfile /s.key\n"
        "capath /etc/ssl/certs\n"
        "tls_version tlsv1.1\n"
        "use_identity_as_username true\n"
        "ciphers HIGH\n"
        "listener 1883\n"
        "cafile /ca.crt\n"
        "listener 1884 gateway.local\n");
    // The host name is kept and named: --check-config refuses it until an
    // address is written (binding every address instead would open more).
    config::AppConfig cfg = config::defaults();
    std::vector<std::string> errors;
    CHECK_FALSE(config::load_string(r.toml, "hato.toml", cfg, errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("listener[2].address: \"gateway.local\" is not an IP address") != std::string::npos);
    CHECK(has(unmapped_at(r, "mosquitto.conf:10"), "numeric addresses"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:4"), "capath"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:5"), "TLS 1.1"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:6"), "require_certificate"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:7"), "cipher"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:9"), "without certfile"));
}

TEST_CASE("migrate: a plain bridge becomes [[bridge]] with its topic rules") {
    MigrateResult r = migrate_corpus("bridge-plain");
    config::AppConfig cfg = load(r);
    CHECK(cfg.sys_interval_s == 30);
    REQUIRE(cfg.bridges.size() == 1);
    const config::Bridge& b = cfg.bridges[0];
    CHECK(b.name == "site");
    CHECK(b.address == "10.20.0.5");
    CHECK(b.port == 1884);
    CHECK(b.client_id == "gateway-17");
    CHECK(b.username == "gateway-17");
    CHECK(b.password_file.empty());   // a secret is never written into hato.toml
    CHECK_FALSE(has(r.toml, "s3cret"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:10"), "password"));
    CHECK_FALSE(b.clean_start);
    CHECK_FALSE(b.try_private);
    CHECK(b.keep_alive == 30);
    CHECK(b.reconnect_min_ms == 5000);
    CHECK(b.reconnect_max_ms == 60000);
    CHECK(b.protocol == "mqttv5");
    CHECK(b.notifications);
    REQUIRE(b.topics.size() == 4);
    // out: the local topic is matched; in: the remote one (prefixes included)
    CHECK(b.topics[0] == config::BridgeTopic{"sensors/#", "out", 1, "", "site17/"});
    CHECK(b.topics[1] == config::BridgeTopic{"site17/gateway/commands/#", "in", 2, "gateway/", "site17/gateway/"});
    // both with two different prefixes: one rule each way
    CHECK(b.topics[2] == config::BridgeTopic{"local/sync/#", "out", 1, "local/", "remote/"});
    CHECK(b.topics[3] == config::BridgeTopic{"remote/sync/#", "in", 1, "local/", "remote/"});
    CHECK(r.unmapped.size() == 1);
}

TEST_CASE("migrate: notifications carries over both ways (an upstream such as AWS IoT needs false)") {
    for (const char* v : {"false", "true"}) {
        MigrateResult r = migrate(std::string("listener 1883 127.0.0.1\nallow_anonymous true\nconnection up\n"
                                              "address 10.0.0.1\nnotifications ") + v + "\ntopic a/# out 1\n");
        config::AppConfig cfg = load(r);
        REQUIRE(cfg.bridges.size() == 1);
        CHECK(cfg.bridges[0].notifications == (std::string(v) == "true"));
        CHECK(r.unmapped.empty());
    }
}

// Mosquitto reads 1 and 0 as true and false: read as anything but true,
// `require_certificate 1` was dropped and the listener took clients with no
// certificate, and `per_listener_settings 1` merged the listeners' ACLs.
TEST_CASE("migrate: Mosquitto's 1 and 0 are true and false; another word is not mapped") {
    MigrateResult r = migrate(
        "per_listener_settings 1\n"
        "persistence 0\n"
        "listener 1883 127.0.0.1\n"
        "allow_anonymous 1\n"
        "listener 8883\n"
        "certfile /etc/c.crt\n"
        "keyfile /etc/c.key\n"
        "cafile /etc/ca.crt\n"
        "require_certificate 1\n"
        "use_identity_as_username 1\n"
        "allow_anonymous 0\n"
        "acl_file /etc/strict.acl\n"
        "retain_available yes\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 2);
    CHECK(cfg.listeners[1].tls.require_client_cert);
    CHECK(cfg.listeners[1].tls.identity_as_username);
    CHECK_FALSE(cfg.storage_enabled);
    // Per listener: the strict ACL is the TLS listener's alone.
    CHECK(cfg.listeners[1].acl_file == "/etc/strict.acl");
    CHECK(cfg.auth.acl_file.empty());
    CHECK(has(unmapped_at(r, "mosquitto.conf:13"), "not true, false, 1 or 0"));
    CHECK(r.unmapped.size() == 1);
}

// Mosquitto sorts an include_dir's files character by character,
// case-insensitively first, then by the character itself (a.conf before
// B.conf; Ac.conf before ab.conf). In plain byte order B.conf came first, and
// the a.conf read after it opened anonymous access that Mosquitto closes.
TEST_CASE("migrate: include_dir files are read in Mosquitto's order") {
    Files files = {{"/inc/a.conf", "allow_anonymous true\n"}, {"/inc/B.conf", "allow_anonymous false\n"}};
    MigrateResult r = migrate("listener 1883\ninclude_dir /inc\n", files);
    REQUIRE(load(r).auth.allow_anonymous.has_value());
    CHECK_FALSE(*load(r).auth.allow_anonymous);

    Files per_char = {{"/inc/ab.conf", "max_queued_messages 2\n"}, {"/inc/Ac.conf", "max_queued_messages 3\n"}};
    CHECK(load(migrate("include_dir /inc\n", per_char)).broker.max_queued_messages == 2);
    Files bare = {{"/inc/.conf", "frobnicate 1\n"}, {"/inc/x.conf", "persistence false\n"}};
    CHECK(migrate("include_dir /inc\n", bare).unmapped.empty());   // Mosquitto skips a bare ".conf"
}

// Mosquitto reads a yes/no or integer option's first word (strtok, then
// atoi) and ignores the rest: `max_connections 1 # only one` is 1. Read as a
// whole it did not parse, and the limit of 1 became none at all.
TEST_CASE("migrate: yes/no and integer options take the first word, as Mosquitto does") {
    MigrateResult r = migrate(
        "listener 1883\n"
        "max_connections 1 # only one\n"
        "allow_anonymous true # lab only\n"
        "max_queued_messages 5 messages\n"
        "connection up\n"
        "address 10.0.0.1:8883\n"
        "cleansession true # a fresh session\n"
        "keepalive_interval 30 s\n"
        "topic # out 1\n");
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].max_connections == 1);
    CHECK(cfg.broker.max_connections == 1);
    CHECK(cfg.auth.allow_anonymous == true);
    CHECK(cfg.broker.max_queued_messages == 5);
    REQUIRE(cfg.bridges.size() == 1);
    CHECK(cfg.bridges[0].clean_start);
    CHECK(cfg.bridges[0].keep_alive == 30);
}

// What is still no integer is NOT MAPPED, with that reason: it once became
// "max_connections = 0" on the listener and no limit in [limits].
TEST_CASE("migrate: an integer option that is no integer is NOT MAPPED, never unlimited") {
    MigrateResult r = migrate(
        "listener 1883\n"
        "max_connections one\n"
        "max_inflight_messages lots\n"
        "max_keepalive\n");
    config::AppConfig cfg = load(r);
    CHECK(cfg.listeners[0].max_connections == 0);   // none given
    CHECK(cfg.broker.max_connections == config::defaults().broker.max_connections);
    CHECK(cfg.broker.max_inflight == config::defaults().broker.max_inflight);
    CHECK(has(unmapped_at(r, "mosquitto.conf:2"), "not an integer"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:3"), "not an integer"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:4"), "no value"));
    CHECK(r.unmapped.size() == 3);
}

// TOML has no leading zeroes: "port = 01883" made the whole file unreadable.
TEST_CASE("migrate: ports are written as numbers, and a listener's \"#...\" is no bind address") {
    MigrateResult r = migrate(
        "listener 01883 # the usual port\n"
        "connection up\n"
        "address 10.0.0.1:08883\n"
        "topic # out 1\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].port == 1883);
    CHECK(cfg.listeners[0].address == "0.0.0.0");
    REQUIRE(cfg.bridges.size() == 1);
    CHECK(cfg.bridges[0].port == 8883);
    CHECK(r.unmapped.empty());
}

// Mosquitto 2.1's bridge limits have hato equivalents of the same meaning.
TEST_CASE("migrate: bridge_max_packet_size, bridge_receive_maximum, bridge_session_expiry_interval") {
    auto bridge = [](const std::string& lines) {
        return migrate("listener 1883 127.0.0.1\nallow_anonymous true\nconnection up\naddress 10.0.0.1\n" + lines +
                       "topic a/# out 1\n");
    };
    MigrateResult r = bridge("bridge_max_packet_size 131072\nbridge_receive_maximum 20\n"
                             "bridge_session_expiry_interval 3600\n");
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    REQUIRE(cfg.bridges.size() == 1);
    CHECK(cfg.bridges[0].max_packet_size == 131072);
    CHECK(cfg.bridges[0].inflight == 20);
    CHECK(cfg.bridges[0].session_expiry == 3600);
    // below 0 is Mosquitto's 0, no limit
    CHECK(load(bridge("bridge_max_packet_size -5\n")).bridges[0].max_packet_size == 0);
    // what Mosquitto refuses (or cannot read as an int) is not converted
    MigrateResult bad = bridge("bridge_receive_maximum 0\nbridge_receive_maximum 70000\n"
                               "bridge_session_expiry_interval -1\nbridge_max_packet_size 4294967296\n");
    cfg = load(bad);
    CHECK(cfg.bridges[0].inflight == config::Bridge{}.inflight);
    CHECK(cfg.bridges[0].session_expiry == config::Bridge{}.session_expiry);
    CHECK(cfg.bridges[0].max_packet_size == 0);
    CHECK(has(unmapped_at(bad, "mosquitto.conf:5"), "1..65535"));
    CHECK(has(unmapped_at(bad, "mosquitto.conf:6"), "1..65535"));
    CHECK(has(unmapped_at(bad, "mosquitto.conf:7"), "0..2147483647"));
    CHECK(has(unmapped_at(bad, "mosquitto.conf:8"), "2147483647"));
    CHECK(bad.unmapped.size() == 4);
}

// hato's own default id differs from Mosquitto's: the upstream would see a
// new client (its persistent session, ACLs on %c and the state topic lost).
TEST_CASE("migrate: a bridge without remote_clientid keeps Mosquitto's default <hostname>.<name>") {
    const std::string conf = "listener 1883 127.0.0.1\nallow_anonymous true\nconnection cloud\naddress 10.0.0.1\n"
                             "topic a/# out 1\n";
    MigrateResult r = migrate(conf);
    config::AppConfig cfg = load(r);
    CHECK(r.unmapped.empty());
    REQUIRE(cfg.bridges.size() == 1);
    CHECK(cfg.bridges[0].client_id == "gw-host.cloud");
    CHECK(has(r.toml, "computed on this\n# machine; edit it if this file is deployed on another one"));
    // given: kept, no comment
    MigrateResult given = migrate(conf + "remote_clientid gw-17\n");
    CHECK(load(given).bridges[0].client_id == "gw-17");
    CHECK_FALSE(has(given.toml, "computed on this"));
    // the host name unknown: said, not guessed
    MigrateInput in;
    in.name = "mosquitto.conf";
    in.text = conf;
    MigrateResult unknown = config::migrate_mosquitto(in);
    CHECK(load(unknown).bridges[0].client_id.empty());
    CHECK(has(unmapped_at(unknown, "mosquitto.conf:3"), "no remote_clientid"));
}

// Mosquitto: an empty pattern makes the local prefix the whole local topic
// and the remote prefix the whole remote one; the direction is read in any
// letter case.
TEST_CASE("migrate: an empty topic pattern with both prefixes, and the direction in any case") {
    MigrateResult r = migrate(
        "listener 1883 127.0.0.1\nallow_anonymous true\nconnection up\naddress 10.0.0.1\n"
        "topic \"\" out 1 single/local single/remote\n"
        "topic \"\" In 2 single/in single/rin\n"
        "topic \"\" BOTH 0 b/l b/r\n"
        "topic x/# OUT 1\n"
        "topic \"\" out 1 \"\" r/\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.bridges.size() == 1);
    const auto& t = cfg.bridges[0].topics;
    REQUIRE(t.size() == 5);
    CHECK(t[0] == config::BridgeTopic{"single/local", "out", 1, "single/local", "single/remote"});
    CHECK(t[1] == config::BridgeTopic{"single/rin", "in", 2, "single/in", "single/rin"});
    CHECK(t[2] == config::BridgeTopic{"b/l", "out", 0, "b/l", "b/r"});
    CHECK(t[3] == config::BridgeTopic{"b/r", "in", 0, "b/l", "b/r"});
    CHECK(t[4] == config::BridgeTopic{"x/#", "out", 1, "", ""});
    // Mosquitto refuses an empty pattern without both prefixes
    CHECK(has(unmapped_at(r, "mosquitto.conf:9"), "without both prefixes"));
    CHECK(r.unmapped.size() == 1);
}

// With per_listener_settings true an authentication line above every
// listener belongs to no converted listener: said, not dropped.
TEST_CASE("migrate: per_listener_settings true: auth lines above the listeners are NOT MAPPED") {
    MigrateResult r = migrate(
        "per_listener_settings true\n"
        "allow_anonymous true\n"
        "acl_file /a\n"
        "password_file /p\n"
        "listener 1883 127.0.0.1\n");
    config::AppConfig cfg = load(r);
    REQUIRE(cfg.listeners.size() == 1);
    CHECK_FALSE(cfg.listeners[0].allow_anonymous.has_value());
    CHECK(has(unmapped_at(r, "mosquitto.conf:2"), "Mosquitto 2.0 ignores it"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:3"), "Mosquitto 2.0 ignores it"));
    CHECK(has(unmapped_at(r, "mosquitto.conf:4"), "default listener on port 1883"));
    CHECK(has(r.toml, "# NOT MAPPED mosquitto.conf:2: allow_anonymous true: per_listener_settings true"));
    CHECK(r.unmapped.size() == 3);
    // A default listener (port) takes them, as in Mosquitto.
    MigrateResult dflt = migrate("per_listener_settings true\nallow_anonymous true\nport 1884\n"
                                 "listener 1883 127.0.0.1\n");
    config::AppConfig d = load(dflt);
    CHECK(dflt.unmapped.empty());
    REQUIRE(d.listeners.size() == 2);
    CHECK(d.listeners[0].allow_anonymous == std::optional<bool>(true));
}
