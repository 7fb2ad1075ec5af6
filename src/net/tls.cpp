#include "net/tls.hpp"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfio.h>

#include <arpa/inet.h>

#include <cstring>
#include <mutex>

namespace hato::net {

namespace {

void init_once() {
    static std::once_flag once;
    std::call_once(once, [] { wolfSSL_Init(); });
}

// TLS 1.3 suites first, then TLS 1.2 ECDHE with AEAD only: no CBC, no RSA
// key exchange, no SHA1 MACs.
constexpr const char* kCiphers =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string wolf_error(int code) {
    char buf[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code), buf, sizeof buf);
    return buf;
}

}  // namespace

bool clean_cert_name(std::span<const uint8_t> name) {
    const uint8_t* p = name.data();
    const size_t n = name.size();
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0) return false;
        if (c < 0x80) { ++i; continue; }
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > n) return false;
        uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

namespace {

bool clean_string(WOLFSSL_ASN1_STRING* str) {
    if (!str) return true;
    int len = wolfSSL_ASN1_STRING_length(str);
    const unsigned char* data = wolfSSL_ASN1_STRING_get0_data(str);
    return len <= 0 || (data && clean_cert_name({data, size_t(len)}));
}

// Checks every subject CN and every DNS / e-mail / URI subject alternative
// name of a client certificate, and gives the first CN as it is encoded
// (not cut at a NUL). False with `why` when one is not clean UTF-8.
bool check_peer_names(WOLFSSL_X509* cert, std::string& cn, std::string& why) {
    cn.clear();
    if (WOLFSSL_X509_NAME* name = wolfSSL_X509_get_subject_name(cert)) {
        bool first = true;
        for (int pos = -1; (pos = wolfSSL_X509_NAME_get_index_by_NID(name, NID_commonName, pos)) >= 0;) {
            WOLFSSL_ASN1_STRING* str = wolfSSL_X509_NAME_ENTRY_get_data(wolfSSL_X509_NAME_get_entry(name, pos));
            if (!clean_string(str)) {
                why = "client certificate CN holds a NUL or is not valid UTF-8";
                return false;
            }
            if (first && str && wolfSSL_ASN1_STRING_length(str) > 0)
                cn.assign(reinterpret_cast<const char*>(wolfSSL_ASN1_STRING_get0_data(str)),
                          size_t(wolfSSL_ASN1_STRING_length(str)));
            first = false;
        }
    }
    auto* names = static_cast<WOLFSSL_GENERAL_NAMES*>(
        wolfSSL_X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    bool ok = true;
    for (int i = 0; names && ok && i < wolfSSL_sk_GENERAL_NAME_num(names); ++i) {
        WOLFSSL_GENERAL_NAME* g = wolfSSL_sk_GENERAL_NAME_value(names, i);
        if (g && (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI)) ok = clean_string(g->d.ia5);
    }
    if (names) wolfSSL_GENERAL_NAMES_free(names);
    if (!ok) why = "client certificate subject alternative name holds a NUL or is not valid UTF-8";
    return ok;
}

// The protocol floor and the cipher suites, alike for both sides.
bool set_version_and_ciphers(WOLFSSL_CTX* ctx, const std::string& min_version, std::string& err) {
    if (min_version != "1.2" && min_version != "1.3") {
        err = "tls min_version must be \"1.2\" or \"1.3\"";
        return false;
    }
    int minv = min_version == "1.3" ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
    if (wolfSSL_CTX_SetMinVersion(ctx, minv) != WOLFSSL_SUCCESS) { err = "cannot set TLS minimum version"; return false; }
    if (wolfSSL_CTX_set_cipher_list(ctx, kCiphers) != WOLFSSL_SUCCESS) { err = "cannot set cipher list"; return false; }
    return true;
}

// The certificate chain this side presents and its key, checked to match.
bool use_cert_and_key(WOLFSSL_CTX* ctx, const std::string& cert, const std::string& key, std::string& err) {
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != WOLFSSL_SUCCESS) {
        err = "cannot load certificate " + cert;
        return false;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, key.c_str(), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        err = "cannot load private key " + key;
        return false;
    }
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        err = "private key " + key + " does not match certificate " + cert;
        return false;
    }
    return true;
}

bool load_ca_file(WOLFSSL_CTX* ctx, const std::string& ca, std::string& err) {
    if (wolfSSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) == WOLFSSL_SUCCESS) return true;
    err = "cannot load CA file " + ca;
    return false;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::create(const TlsSettings& s, std::string& err) {
    init_once();
    std::shared_ptr<TlsContext> c(new TlsContext());
    c->settings_ = s;
    c->ctx_ = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!c->ctx_) { err = "wolfSSL_CTX_new failed"; return nullptr; }
    if (!set_version_and_ciphers(c->ctx_, s.min_version, err)) return nullptr;
    if (!use_cert_and_key(c->ctx_, s.cert, s.key, err)) return nullptr;
    if (!s.ca.empty()) {
        if (!load_ca_file(c->ctx_, s.ca, err)) return nullptr;
    } else if (s.require_client_cert) {
        err = "require_client_cert needs ca";
        return nullptr;
    }
    int mode = WOLFSSL_VERIFY_NONE;
    if (s.require_client_cert) mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    else if (!s.ca.empty()) mode = WOLFSSL_VERIFY_PEER;  // verify a certificate if one is offered
    wolfSSL_CTX_set_verify(c->ctx_, mode, mode == WOLFSSL_VERIFY_NONE ? nullptr : TlsConn::verify_peer_names);
    // wolfSSL keeps one session cache for the whole process: a TLS 1.2
    // session made on one listener could be resumed on another, whose `ca`
    // never checked its certificate (none, or another CA's taken as the
    // identity), and across a reload that replaced the CA. Each context
    // gets its own session id context, and one that verifies clients keeps
    // no sessions by id and issues no TLS 1.2 tickets (TLS 1.3 tickets are
    // sealed with this context's own key).
    static uint64_t contexts_made = 0;
    const uint64_t sid_context = ++contexts_made;
    wolfSSL_CTX_set_session_id_context(c->ctx_, reinterpret_cast<const unsigned char*>(&sid_context),
                                       sizeof sid_context);
    if (!s.ca.empty()) {
        wolfSSL_CTX_set_session_cache_mode(c->ctx_, WOLFSSL_SESS_CACHE_OFF);
        wolfSSL_CTX_NoTicketTLSv12(c->ctx_);
    }
    wolfSSL_CTX_SetIORecv(c->ctx_, nullptr);
    wolfSSL_CTX_SetIOSend(c->ctx_, nullptr);
    return c;
}

std::shared_ptr<TlsContext> TlsContext::create_client(const TlsClientSettings& s, std::string& err) {
    init_once();
    std::shared_ptr<TlsContext> c(new TlsContext());
    c->client_ = true;
    c->insecure_ = s.insecure;
    c->settings_.cert = s.cert;
    c->settings_.key = s.key;
    c->settings_.ca = s.ca;
    c->settings_.min_version = s.min_version;
    c->ctx_ = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!c->ctx_) { err = "wolfSSL_CTX_new failed"; return nullptr; }
    if (!set_version_and_ciphers(c->ctx_, s.min_version, err)) return nullptr;
    if (!s.cert.empty() && !use_cert_and_key(c->ctx_, s.cert, s.key, err)) return nullptr;
    if (!s.ca.empty()) {
        if (!load_ca_file(c->ctx_, s.ca, err)) return nullptr;
    } else if (!s.insecure && wolfSSL_CTX_load_system_CA_certs(c->ctx_) != WOLFSSL_SUCCESS) {
        err = "no ca given and the system's CA certificates cannot be loaded";
        return nullptr;
    }
    wolfSSL_CTX_set_verify(c->ctx_, s.insecure ? WOLFSSL_VERIFY_NONE : WOLFSSL_VERIFY_PEER, nullptr);
    wolfSSL_CTX_SetIORecv(c->ctx_, nullptr);
    wolfSSL_CTX_SetIOSend(c->ctx_, nullptr);
    return c;
}

// Runs for each certificate of the client's chain (ALWAYS_VERIFY_CB): the
// client's own one is refused during the handshake when its names are not
// clean, and the connection it verifies for keeps why (its I/O context).
int TlsConn::verify_peer_names(int preverify, WOLFSSL_X509_STORE_CTX* store) {
    if (!preverify) return 0;
    if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0) return 1;
    WOLFSSL_X509* cert = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    auto* ssl = static_cast<WOLFSSL*>(
        wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl ? static_cast<TlsConn*>(wolfSSL_GetIOReadCtx(ssl)) : nullptr;
    std::string cn, why;
    if (!cert || check_peer_names(cert, cn, why)) return 1;
    if (self) self->name_refusal_ = std::move(why);
    return 0;
}

TlsContext::~TlsContext() {
    if (ctx_) wolfSSL_CTX_free(ctx_);
}

TlsConn::TlsConn(std::shared_ptr<TlsContext> ctx) : ctx_(std::move(ctx)) {
    ssl_ = wolfSSL_new(ctx_->raw());
    if (!ssl_) {
        failed_ = true;
        error_ = "wolfSSL_new failed";
        return;
    }
    wolfSSL_SSLSetIORecv(ssl_, &TlsConn::recv_cb);
    wolfSSL_SSLSetIOSend(ssl_, &TlsConn::send_cb);
    wolfSSL_SetIOReadCtx(ssl_, this);
    wolfSSL_SetIOWriteCtx(ssl_, this);
    // Server side only: a bridge offers no ALPN (cloud brokers on 8883
    // expect none, and some give other names a meaning, e.g. AWS IoT on 443).
    if (!ctx_->is_client()) {
        char alpn[] = "mqtt";
        wolfSSL_UseALPN(ssl_, alpn, sizeof alpn - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    }
}

TlsConn::TlsConn(std::shared_ptr<TlsContext> ctx, const std::string& server_name) : TlsConn(std::move(ctx)) {
    if (!ssl_ || server_name.empty()) return;
    in6_addr a6;
    in_addr a4;
    const bool is_ip = inet_pton(AF_INET, server_name.c_str(), &a4) == 1 ||
                       inet_pton(AF_INET6, server_name.c_str(), &a6) == 1;
    // SNI carries host names only (RFC 6066); an IP address is checked
    // against the certificate's IP subject alternative names after the
    // handshake instead.
    if (is_ip) {
        if (!ctx_->insecure()) server_ip_ = server_name;
        return;
    }
    wolfSSL_UseSNI(ssl_, WOLFSSL_SNI_HOST_NAME, server_name.data(), static_cast<unsigned short>(server_name.size()));
    if (!ctx_->insecure() && wolfSSL_check_domain_name(ssl_, server_name.c_str()) != WOLFSSL_SUCCESS) {
        failed_ = true;
        error_ = "cannot set the server name to verify";
    }
}

TlsConn::Status TlsConn::start() {
    std::vector<uint8_t> none;
    return on_ciphertext({}, none);
}

TlsConn::~TlsConn() {
    if (ssl_) wolfSSL_free(ssl_);
}

int TlsConn::recv_cb(WOLFSSL*, char* buf, int sz, void* ctx) {
    auto* self = static_cast<TlsConn*>(ctx);
    size_t avail = self->in_.size() - self->in_pos_;
    if (avail == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = std::min(avail, size_t(sz));
    std::memcpy(buf, self->in_.data() + self->in_pos_, n);
    self->in_pos_ += n;
    return int(n);
}

int TlsConn::send_cb(WOLFSSL*, char* buf, int sz, void* ctx) {
    auto* self = static_cast<TlsConn*>(ctx);
    self->out_.insert(self->out_.end(), buf, buf + sz);
    return sz;
}

TlsConn::Status TlsConn::fail(int ret) {
    int code = wolfSSL_get_error(ssl_, ret);
    failed_ = true;
    error_ = name_refusal_.empty() ? wolf_error(code) : name_refusal_;
    name_refusal_.clear();
    return Status::Failed;
}

TlsConn::Status TlsConn::on_ciphertext(std::span<const uint8_t> in, std::vector<uint8_t>& plain) {
    if (failed_) return Status::Failed;
    if (in_pos_ == in_.size()) {
        if (in_.capacity() > kKeptInput) std::vector<uint8_t>().swap(in_);   // one large read, not kept
        else in_.clear();
        in_pos_ = 0;
    }
    in_.insert(in_.end(), in.begin(), in.end());
    return pump(plain);
}

TlsConn::Status TlsConn::pump(std::vector<uint8_t>& plain) {
    if (!established_) {
        name_refusal_.clear();
        int r = ctx_->is_client() ? wolfSSL_connect(ssl_) : wolfSSL_accept(ssl_);
        if (r != WOLFSSL_SUCCESS) {
            int code = wolfSSL_get_error(ssl_, r);
            if (code == WOLFSSL_ERROR_WANT_READ || code == WOLFSSL_ERROR_WANT_WRITE) return Status::Ok;
            return fail(r);
        }
        established_ = true;
        // Client side, the upstream's host name was checked by wolfSSL
        // (check_domain_name); an IP address is checked here.
        if (!server_ip_.empty()) {
            WOLFSSL_X509* cert = wolfSSL_get_peer_certificate(ssl_);
            const bool named = cert && wolfSSL_X509_check_ip_asc(cert, server_ip_.c_str(), 0) == 1;
            if (cert) wolfSSL_X509_free(cert);
            if (!named) {
                failed_ = true;
                error_ = "the upstream's certificate does not name " + server_ip_;
                return Status::Failed;
            }
        }
        WOLFSSL_X509* cert = ctx_->is_client() ? nullptr : wolfSSL_get_peer_certificate(ssl_);
        if (cert) {
            // Checked again here, whole: the CN is the identity ACLs trust.
            std::string why;
            bool clean = check_peer_names(cert, peer_cn_, why);
            wolfSSL_X509_free(cert);
            if (!clean) {
                peer_cn_.clear();
                failed_ = true;
                error_ = why;
                return Status::Failed;
            }
        }
        if (!pending_plain_.empty()) {
            std::vector<uint8_t> p;
            p.swap(pending_plain_);
            if (write(p) == Status::Failed) return Status::Failed;
        }
    }
    uint8_t buf[16384];
    for (;;) {
        int n = wolfSSL_read(ssl_, buf, sizeof buf);
        if (n > 0) {
            plain.insert(plain.end(), buf, buf + n);
            continue;
        }
        int code = wolfSSL_get_error(ssl_, n);
        if (code == WOLFSSL_ERROR_WANT_READ || code == WOLFSSL_ERROR_WANT_WRITE) return Status::Ok;
        if (code == WOLFSSL_ERROR_ZERO_RETURN) {  // close_notify from the peer
            failed_ = true;
            error_ = "peer closed the TLS session";
            return Status::Failed;
        }
        return fail(n);
    }
}

TlsConn::Status TlsConn::write(std::span<const uint8_t> plain) {
    if (failed_) return Status::Failed;
    if (!established_) {
        pending_plain_.insert(pending_plain_.end(), plain.begin(), plain.end());
        return Status::Ok;
    }
    size_t off = 0;
    while (off < plain.size()) {
        int n = wolfSSL_write(ssl_, plain.data() + off, int(std::min<size_t>(plain.size() - off, 1 << 20)));
        if (n <= 0) return fail(n);
        off += size_t(n);
    }
    return Status::Ok;
}

void TlsConn::shutdown() {
    if (ssl_ && established_ && !failed_) wolfSSL_shutdown(ssl_);
}

}  // namespace hato::net
