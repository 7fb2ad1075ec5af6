// The client side of TlsConn (a bridge to its upstream) against the server
// side, both over memory: verification by default (CA and name), insecure,
// mutual TLS, and an IP address checked against the certificate's IP names.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../../certs/test_certs.hpp"
#include "net/tls.hpp"

using namespace hato::net;

namespace {

std::shared_ptr<TlsContext> server(bool require_client_cert) {
    TlsSettings s;
    s.cert = test_cert_dir() + "/server.crt";
    s.key = test_cert_dir() + "/server.key";
    s.ca = test_cert_dir() + "/ca.crt";
    s.require_client_cert = require_client_cert;
    std::string err;
    auto c = TlsContext::create(s, err);
    REQUIRE_MESSAGE(c, err);
    return c;
}

std::shared_ptr<TlsContext> client(const std::string& ca, bool insecure = false, bool with_cert = false) {
    TlsClientSettings s;
    s.ca = ca.empty() ? "" : test_cert_dir() + "/" + ca;
    s.insecure = insecure;
    if (with_cert) {
        s.cert = test_cert_dir() + "/client.crt";
        s.key = test_cert_dir() + "/client.key";
    }
    std::string err;
    auto c = TlsContext::create_client(s, err);
    REQUIRE_MESSAGE(c, err);
    return c;
}

// Pumps bytes both ways until neither side has output; then "hello" from
// the client must reach the server. True when it did, false on failure.
bool talk(TlsConn& cl, TlsConn& sv, std::string& why) {
    std::vector<uint8_t> plain_sv, plain_cl;
    if (cl.start() == TlsConn::Status::Failed) return why = cl.error(), false;
    const std::string hello = "hello";
    cl.write({reinterpret_cast<const uint8_t*>(hello.data()), hello.size()});
    for (int round = 0; round < 20; ++round) {
        std::vector<uint8_t> c2s, s2c;
        c2s.swap(cl.output());
        if (!c2s.empty() && sv.on_ciphertext(c2s, plain_sv) == TlsConn::Status::Failed)
            return why = "server: " + sv.error(), false;
        s2c.swap(sv.output());
        if (!s2c.empty() && cl.on_ciphertext(s2c, plain_cl) == TlsConn::Status::Failed)
            return why = "client: " + cl.error(), false;
        if (c2s.empty() && s2c.empty()) break;
    }
    return std::string(plain_sv.begin(), plain_sv.end()) == hello;
}

}  // namespace

TEST_CASE("bridge TLS: a verified upstream, by host name (SNI) or by IP address") {
    for (const char* name : {"localhost", "127.0.0.1"}) {
        INFO(name);
        TlsConn cl(client("ca.crt"), name);
        TlsConn sv(server(false));
        std::string why;
        CHECK_MESSAGE(talk(cl, sv, why), why);
        CHECK(cl.handshake_done());
    }
}

TEST_CASE("bridge TLS: a certificate from another CA, or for another name, is refused") {
    {
        TlsConn cl(client("rogue-ca.crt"), "localhost");
        TlsConn sv(server(false));
        std::string why;
        CHECK_FALSE(talk(cl, sv, why));
        CHECK_FALSE(cl.handshake_done());
    }
    for (const char* name : {"broker.elsewhere.example", "10.1.2.3"}) {
        INFO(name);
        TlsConn cl(client("ca.crt"), name);
        TlsConn sv(server(false));
        std::string why;
        CHECK_FALSE(talk(cl, sv, why));
        CHECK(why.rfind("client: ", 0) == 0);
    }
}

TEST_CASE("bridge TLS: insecure accepts any upstream") {
    TlsConn cl(client("rogue-ca.crt", true), "broker.elsewhere.example");
    TlsConn sv(server(false));
    std::string why;
    CHECK_MESSAGE(talk(cl, sv, why), why);
}

TEST_CASE("bridge TLS: mutual TLS, and an upstream that requires a certificate refuses none") {
    {
        TlsConn cl(client("ca.crt", false, true), "localhost");
        TlsConn sv(server(true));
        std::string why;
        CHECK_MESSAGE(talk(cl, sv, why), why);
        CHECK(sv.peer_common_name() == "sensor-1");
    }
    {
        TlsConn cl(client("ca.crt"), "localhost");
        TlsConn sv(server(true));
        std::string why;
        CHECK_FALSE(talk(cl, sv, why));
    }
}

TEST_CASE("bridge TLS: files that cannot be used are reported") {
    TlsClientSettings s;
    s.ca = "/nonexistent/ca.pem";
    std::string err;
    CHECK_FALSE(TlsContext::create_client(s, err));
    CHECK(err.find("cannot load CA file /nonexistent/ca.pem") != std::string::npos);
    s.ca.clear();
    s.cert = "/nonexistent/client.crt";
    s.key = test_cert_dir() + "/client.key";
    CHECK_FALSE(TlsContext::create_client(s, err));
    CHECK(err.find("cannot load certificate /nonexistent/client.crt") != std::string::npos);
}
