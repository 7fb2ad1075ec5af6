// TlsConn against a wolfSSL client, both over memory buffers: the same
// byte-pump the reactor wiring does, without sockets.
#include <doctest/doctest.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include <cstring>
#include <string>

#include "../../certs/test_certs.hpp"
#include "net/tls.hpp"

using namespace hato::net;

namespace {

struct MemClient {
    WOLFSSL_CTX* ctx = nullptr;
    WOLFSSL* ssl = nullptr;
    std::vector<uint8_t> in;   // from server
    size_t in_pos = 0;
    std::vector<uint8_t> out;  // to server

    MemClient(WOLFSSL_METHOD* method, const char* cert, const char* key) {
        ctx = wolfSSL_CTX_new(method);
        wolfSSL_CTX_load_verify_locations(ctx, (test_cert_dir() + "/ca.crt").c_str(), nullptr);
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, nullptr);
        if (cert) {
            wolfSSL_CTX_use_certificate_file(ctx, (test_cert_dir() + "/" + cert).c_str(), WOLFSSL_FILETYPE_PEM);
            wolfSSL_CTX_use_PrivateKey_file(ctx, (test_cert_dir() + "/" + key).c_str(), WOLFSSL_FILETYPE_PEM);
        }
        ssl = wolfSSL_new(ctx);
        wolfSSL_SSLSetIORecv(ssl, [](WOLFSSL*, char* b, int sz, void* c) -> int {
            auto* m = static_cast<MemClient*>(c);
            size_t avail = m->in.size() - m->in_pos;
            if (!avail) return WOLFSSL_CBIO_ERR_WANT_READ;
            size_t n = std::min(avail, size_t(sz));
            std::memcpy(b, m->in.data() + m->in_pos, n);
            m->in_pos += n;
            return int(n);
        });
        wolfSSL_SSLSetIOSend(ssl, [](WOLFSSL*, char* b, int sz, void* c) -> int {
            auto* m = static_cast<MemClient*>(c);
            m->out.insert(m->out.end(), b, b + sz);
            return sz;
        });
        wolfSSL_SetIOReadCtx(ssl, this);
        wolfSSL_SetIOWriteCtx(ssl, this);
        wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, "localhost", 9);
    }
    ~MemClient() {
        wolfSSL_free(ssl);
        wolfSSL_CTX_free(ctx);
    }
};

// Runs the handshake to completion or failure; returns true if both ends agree it is up.
bool handshake(MemClient& c, TlsConn& s, std::vector<uint8_t>& plain) {
    for (int round = 0; round < 20; ++round) {
        int r = wolfSSL_connect(c.ssl);
        if (!c.out.empty()) {
            std::vector<uint8_t> o;
            o.swap(c.out);
            if (s.on_ciphertext(o, plain) == TlsConn::Status::Failed) return false;
        }
        auto& so = s.output();
        c.in.insert(c.in.end(), so.begin(), so.end());
        so.clear();
        if (r == WOLFSSL_SUCCESS && s.handshake_done()) return true;
        if (r != WOLFSSL_SUCCESS) {
            int e = wolfSSL_get_error(c.ssl, r);
            if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE) return false;
        }
    }
    return false;
}

std::shared_ptr<TlsContext> server_ctx(bool require_cert, const std::string& minv = "1.2") {
    TlsSettings st;
    st.cert = test_cert_dir() + "/server.crt";
    st.key = test_cert_dir() + "/server.key";
    st.ca = test_cert_dir() + "/ca.crt";
    st.require_client_cert = require_cert;
    st.min_version = minv;
    std::string err;
    auto ctx = TlsContext::create(st, err);
    REQUIRE_MESSAGE(ctx, err);
    return ctx;
}

}  // namespace

TEST_CASE("tls: TLS 1.3 and 1.2 handshakes and data both ways") {
    for (auto* method : {wolfTLSv1_3_client_method(), wolfTLSv1_2_client_method()}) {
        auto ctx = server_ctx(false);
        TlsConn s(ctx);
        MemClient c(method, nullptr, nullptr);
        std::vector<uint8_t> plain;
        REQUIRE(handshake(c, s, plain));
        // client -> server
        const char msg[] = "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00";
        REQUIRE(wolfSSL_write(c.ssl, msg, sizeof msg - 1) == int(sizeof msg - 1));
        std::vector<uint8_t> o;
        o.swap(c.out);
        // Delivered in 1-byte pieces: records may arrive split anywhere.
        for (uint8_t b : o) REQUIRE(s.on_ciphertext(std::span<const uint8_t>(&b, 1), plain) == TlsConn::Status::Ok);
        CHECK(std::string(plain.begin(), plain.end()) == std::string(msg, sizeof msg - 1));
        // server -> client
        const uint8_t ack[] = {0x20, 0x02, 0x00, 0x00};
        REQUIRE(s.write(ack) == TlsConn::Status::Ok);
        c.in.insert(c.in.end(), s.output().begin(), s.output().end());
        s.output().clear();
        uint8_t buf[16];
        REQUIRE(wolfSSL_read(c.ssl, buf, sizeof buf) == 4);
        CHECK(std::memcmp(buf, ack, 4) == 0);
        CHECK(s.peer_common_name().empty());
    }
}

TEST_CASE("tls: min_version 1.3 refuses a TLS 1.2 client") {
    auto ctx = server_ctx(false, "1.3");
    TlsConn s(ctx);
    MemClient c(wolfTLSv1_2_client_method(), nullptr, nullptr);
    std::vector<uint8_t> plain;
    CHECK_FALSE(handshake(c, s, plain));
}

TEST_CASE("tls: mutual TLS") {
    auto ctx = server_ctx(true);
    SUBCASE("a certificate signed by the CA is accepted and its CN read") {
        TlsConn s(ctx);
        MemClient c(wolfTLSv1_3_client_method(), "client.crt", "client.key");
        std::vector<uint8_t> plain;
        REQUIRE(handshake(c, s, plain));
        CHECK(s.peer_common_name() == "sensor-1");
    }
    SUBCASE("no certificate is refused") {
        TlsConn s(ctx);
        MemClient c(wolfTLSv1_3_client_method(), nullptr, nullptr);
        std::vector<uint8_t> plain;
        CHECK_FALSE(handshake(c, s, plain));
    }
    SUBCASE("a certificate from another CA is refused") {
        TlsConn s(ctx);
        MemClient c(wolfTLSv1_2_client_method(), "rogue.crt", "rogue.key");
        std::vector<uint8_t> plain;
        CHECK_FALSE(handshake(c, s, plain));
    }
}

TEST_CASE("tls: plain MQTT bytes on a TLS connection fail cleanly") {
    auto ctx = server_ctx(false);
    TlsConn s(ctx);
    const uint8_t connect[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00};
    std::vector<uint8_t> plain;
    CHECK(s.on_ciphertext(connect, plain) == TlsConn::Status::Failed);
    CHECK_FALSE(s.error().empty());
    CHECK(plain.empty());
}

TEST_CASE("tls: bad settings are reported") {
    TlsSettings st;
    st.cert = "/nonexistent.crt";
    st.key = "/nonexistent.key";
    std::string err;
    CHECK_FALSE(TlsContext::create(st, err));
    CHECK(err.find("/nonexistent.crt") != std::string::npos);
    st.cert = test_cert_dir() + "/server.crt";
    st.key = test_cert_dir() + "/server.key";
    st.require_client_cert = true;  // without a CA to check against
    CHECK_FALSE(TlsContext::create(st, err));
    CHECK(err.find("needs ca") != std::string::npos);
}
