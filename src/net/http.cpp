#include "net/http.hpp"

#include <cstring>

namespace hato::net::http {

namespace {

bool is_tchar(uint8_t c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(uint8_t(c))) return false;
    return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

ParseResult fail(int code, std::string why) {
    ParseResult r;
    r.status = ParseStatus::Error;
    r.error_code = code;
    r.error = std::move(why);
    return r;
}

// Origin-form as is; absolute-form ("http://host/path") reduced to its path.
bool normalise_target(std::string_view t, std::string& out) {
    if (!t.empty() && t[0] == '/') {
        out.assign(t);
        return true;
    }
    for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
        if (!istarts_with(t, scheme)) continue;
        std::string_view rest = t.substr(scheme.size());
        size_t slash = rest.find_first_of("/?");
        if (slash == std::string_view::npos) out = "/";
        else if (rest[slash] == '?') out = "/" + std::string(rest.substr(slash));
        else out.assign(rest.substr(slash));
        return true;
    }
    return false;
}

ParseResult parse_request_line(std::string_view line, Request& out, const RequestRules& rules) {
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return fail(400, "malformed request line");
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return fail(400, "malformed method");
    if (target.empty()) return fail(400, "empty request target");
    for (char c : target)
        if (uint8_t(c) <= 0x20 || uint8_t(c) >= 0x7f) return fail(400, "invalid character in request target");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
        version[5] > '9' || version[7] < '0' || version[7] > '9')
        return fail(400, "malformed HTTP version");
    if (rules.http11_only && version != "HTTP/1.1") return fail(400, "HTTP/1.1 required");
    if (version[5] != '1') return fail(505, "only HTTP/1.x is served");
    if (method != "GET" && (method != "HEAD" || !rules.head)) return fail(405, "method not allowed");
    if (rules.origin_form_only && target[0] != '/') return fail(400, "malformed request target");
    if (!normalise_target(target, out.target)) return fail(400, "unsupported request target form");
    out.method.assign(method);
    out.minor_version = version[7] - '0';
    return {};
}

ParseResult parse_header_line(std::string_view line, Request& out) {
    if (line[0] == ' ' || line[0] == '\t') return fail(400, "obsolete header line folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without a colon");
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return fail(400, "malformed header name");
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char c : value) {
        uint8_t b = uint8_t(c);
        if ((b < 0x20 && b != '\t') || b == 0x7f) return fail(400, "control character in header value");
    }
    out.headers.emplace_back(std::string(name), std::string(value));
    return {};
}

// What the head says about a body, and the Host rule of HTTP/1.1.
ParseResult check_head(const Request& r) {
    size_t hosts = 0;
    for (const auto& [name, value] : r.headers) {
        if (iequals(name, "host")) ++hosts;
        else if (iequals(name, "transfer-encoding")) return fail(400, "request bodies are not accepted");
        else if (iequals(name, "content-length") && value != "0") return fail(400, "request bodies are not accepted");
    }
    if (r.minor_version >= 1 && hosts != 1) return fail(400, hosts ? "more than one Host header" : "no Host header");
    if (hosts > 1) return fail(400, "more than one Host header");
    return {};
}

}  // namespace

std::string_view Request::path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
}

const std::string* Request::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (iequals(n, name)) return &v;
    return nullptr;
}

ParseResult parse_request(std::span<const uint8_t> in, Request& out, size_t max_head, const RequestRules& rules) {
    std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
    out = Request{};
    size_t pos = 0;
    bool request_line = true;
    for (;;) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) {
            if (text.size() > max_head) return fail(431, "request head larger than 8 KiB");
            // Binary input (a TLS or MQTT client on the wrong port) is
            // refused now rather than after the timeout.
            for (char c : text.substr(pos)) {
                uint8_t b = uint8_t(c);
                if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f || (request_line && b >= 0x80))
                    return fail(400, "not an HTTP request");
            }
            return {};
        }
        if (nl + 1 > max_head) return fail(431, "request head larger than 8 KiB");
        std::string_view line = text.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos)
            return fail(400, "stray CR or NUL in the request head");
        pos = nl + 1;
        if (request_line) {
            if (line.empty()) continue;  // empty lines before a request are ignored
            ParseResult r = parse_request_line(line, out, rules);
            if (r.status == ParseStatus::Error) return r;
            request_line = false;
            continue;
        }
        if (line.empty()) break;
        ParseResult r = parse_header_line(line, out);
        if (r.status == ParseStatus::Error) return r;
    }
    ParseResult r = check_head(out);
    if (r.status == ParseStatus::Error) return r;
    r.status = ParseStatus::Complete;
    r.consumed = pos;
    return r;
}

const char* reason_phrase(int code) {
    switch (code) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

std::string response(int code, std::string_view content_type, std::string_view body, bool head_only,
                     std::string_view extra_headers) {
    std::string out;
    out.reserve(160 + extra_headers.size() + (head_only ? 0 : body.size()));
    out += "HTTP/1.1 ";
    out += std::to_string(code);
    out += ' ';
    out += reason_phrase(code);
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
    if (code == 405) out += "Allow: GET, HEAD\r\n";
    out += extra_headers;
    out += "\r\n";
    if (!head_only) out += body;
    return out;
}

}  // namespace hato::net::http
