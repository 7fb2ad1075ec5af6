// TLS as a byte transform over our own buffers: wolfSSL never touches a
// socket (custom I/O callbacks), so TLS behaves the same on io_uring and
// epoll and never blocks the reactor. Ciphertext in -> plaintext out, and
// plaintext in -> ciphertext out; the wiring moves the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

struct WOLFSSL_CTX;
struct WOLFSSL;
struct WOLFSSL_X509_STORE_CTX;

namespace hato::net {

struct TlsSettings {
    std::string cert;                  // PEM certificate chain
    std::string key;                   // PEM private key
    std::string ca;                    // PEM CA bundle for client certificates (optional)
    bool require_client_cert = false;
    bool identity_as_username = false; // the client certificate's CN becomes the username
    std::string min_version = "1.2";   // "1.2" or "1.3"
};

// The client side (a bridge to an upstream broker). The upstream's
// certificate is verified against `ca` (or the system's CA store when `ca`
// is empty) and its name against the server name, unless `insecure`.
struct TlsClientSettings {
    std::string ca;                    // PEM CA bundle; empty: the system's CAs
    std::string cert;                  // PEM client certificate (mutual TLS), optional
    std::string key;                   // its private key (with cert)
    bool insecure = false;             // no verification at all (test setups only)
    std::string min_version = "1.2";
};

// A certificate name hato accepts: well-formed UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF) without NUL. A name C code would cut
// short, or that reads differently than it compares, must not name anyone.
bool clean_cert_name(std::span<const uint8_t> name);

// One server context per listener. Shared by its connections (shared_ptr), so
// a reload builds a new context while existing connections keep the old one.
class TlsContext {
public:
    static std::shared_ptr<TlsContext> create(const TlsSettings& s, std::string& err);
    static std::shared_ptr<TlsContext> create_client(const TlsClientSettings& s, std::string& err);
    ~TlsContext();
    bool is_client() const { return client_; }
    bool insecure() const { return insecure_; }
    const TlsSettings& settings() const { return settings_; }
    WOLFSSL_CTX* raw() const { return ctx_; }

private:
    TlsContext() = default;
    WOLFSSL_CTX* ctx_ = nullptr;
    TlsSettings settings_;
    bool client_ = false;
    bool insecure_ = false;
};

class TlsConn {
public:
    explicit TlsConn(std::shared_ptr<TlsContext> ctx);
    // Client side: `server_name` goes out as SNI (unless it is an IP
    // address) and the upstream's certificate must name it (DNS or IP
    // subject alternative name, or CN), unless the context is insecure.
    TlsConn(std::shared_ptr<TlsContext> ctx, const std::string& server_name);
    ~TlsConn();
    TlsConn(const TlsConn&) = delete;
    TlsConn& operator=(const TlsConn&) = delete;

    enum class Status : uint8_t { Ok, Failed };

    // Feeds ciphertext received from the peer. Decrypted application bytes
    // are appended to `plain`; handshake/alert bytes to send go to
    // take_output(). Failed: the handshake or record layer failed (error()).
    Status on_ciphertext(std::span<const uint8_t> in, std::vector<uint8_t>& plain);
    // Client side: produces the ClientHello in output().
    Status start();
    // Encrypts application bytes (only after the handshake; before it they
    // are buffered and flushed once it completes).
    Status write(std::span<const uint8_t> plain);
    // Ciphertext waiting to be sent; the caller sends and clears it.
    std::vector<uint8_t>& output() { return out_; }

    bool handshake_done() const { return established_; }
    const std::string& error() const { return error_; }
    // CN of the verified client certificate (empty if none).
    const std::string& peer_common_name() const { return peer_cn_; }
    // Sends close_notify into output().
    void shutdown();

    // The server context's certificate verify callback.
    static int verify_peer_names(int preverify, WOLFSSL_X509_STORE_CTX* store);

private:
    static int recv_cb(WOLFSSL*, char* buf, int sz, void* ctx);
    static int send_cb(WOLFSSL*, char* buf, int sz, void* ctx);
    Status pump(std::vector<uint8_t>& plain);
    Status fail(int ret);

    std::shared_ptr<TlsContext> ctx_;
    WOLFSSL* ssl_ = nullptr;
    std::vector<uint8_t> in_;           // ciphertext not yet consumed by wolfSSL
    static constexpr size_t kKeptInput = 64 * 1024;   // in_ kept between reads, at most
    size_t in_pos_ = 0;
    std::vector<uint8_t> out_;          // ciphertext to send
    std::vector<uint8_t> pending_plain_;  // written before the handshake finished
    bool established_ = false;
    bool failed_ = false;
    std::string error_;
    std::string peer_cn_;
    std::string server_ip_;             // client side: an IP literal to find in the upstream's certificate
    std::string name_refusal_;          // why verify_peer_names refused, for the handshake's error
};

}  // namespace hato::net
