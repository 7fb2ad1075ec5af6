// A small HTTP/1.1 request codec in the style of src/mqtt: bytes in, a parsed
// request head (or "incomplete", or an error carrying the status to answer
// with) out. No I/O, no bodies: the servers built on it read one request per
// connection and answer with Connection: close.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hato::net::http {

// Bound on the request line plus headers; beyond it the answer is 431.
constexpr size_t kMaxHeadBytes = 8192;

struct Request {
    std::string method;   // as sent (methods are case-sensitive)
    std::string target;   // origin-form path and query ("/metrics?x=1")
    int minor_version = 1;  // HTTP/1.<minor>
    std::vector<std::pair<std::string, std::string>> headers;  // names as sent

    // The path without the query.
    std::string_view path() const;
    // The first header named `name` (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const;
};

enum class ParseStatus : uint8_t { Complete, Incomplete, Error };

struct ParseResult {
    ParseStatus status = ParseStatus::Incomplete;
    size_t consumed = 0;   // Complete: bytes of the request head
    int error_code = 0;    // Error: 400, 405, 431 or 505
    std::string error;     // Error: one line saying why
};

// What a server built on the parser accepts in the request line. The
// defaults serve pages; a WebSocket upgrade is stricter (RFC 6455 4.1: a GET
// of HTTP/1.1 or later, to an origin-form target).
struct RequestRules {
    bool head = true;               // HEAD as well as GET
    bool http11_only = false;       // any other version: 400, checked before the method
    bool origin_form_only = false;  // an absolute-form target ("http://host/path"): 400
};

// Parses one request head from the start of `in`. Only GET (and HEAD, unless
// `rules` say otherwise) are served: any other method is answered 405 as soon
// as the request line is read. A request with a body (Content-Length other
// than 0, or any Transfer-Encoding) is a 400, as is an HTTP/1.1 request
// without exactly one Host header. Lines may end in CRLF or a bare LF; empty
// lines before the request line are skipped. `max_head` bounds the head (431
// beyond it, also while still incomplete).
ParseResult parse_request(std::span<const uint8_t> in, Request& out, size_t max_head = kMaxHeadBytes,
                          const RequestRules& rules = {});

// Whether the blank line that ends a head may be in `buf`, none having been
// in its first `before` bytes (CRLF or bare LF line ends). A server that
// parses only then spends no quadratic work on a request dribbled in byte
// by byte, however it is split.
inline bool head_may_end(std::string_view buf, size_t before) {
    const size_t from = before >= 2 ? before - 2 : 0;
    return buf.find("\n\n", from) != std::string_view::npos || buf.find("\n\r\n", from) != std::string_view::npos;
}

// "OK", "Not Found", ... for the codes the servers use ("" if unknown).
const char* reason_phrase(int code);

// A complete response with Content-Length and Connection: close. With
// `head_only` (a HEAD request) the body is left out but its length kept.
// `extra_headers` are whole lines, each ending in "\r\n".
std::string response(int code, std::string_view content_type, std::string_view body, bool head_only = false,
                     std::string_view extra_headers = {});

}  // namespace hato::net::http
