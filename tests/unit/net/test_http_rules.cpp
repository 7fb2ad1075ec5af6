// The request-line rules a stricter server (the WebSocket upgrade) asks of
// the HTTP/1.1 request codec, and that the defaults (the pages) keep.
#include <doctest/doctest.h>

#include <string>

#include "net/http.hpp"

using namespace hato::net::http;

namespace {

int error_of(const std::string& s, const RequestRules& rules) {
    Request r;
    ParseResult p = parse_request({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, r, kMaxHeadBytes, rules);
    return p.status == ParseStatus::Error ? p.error_code : 0;
}

constexpr RequestRules kStrict{.head = false, .http11_only = true, .origin_form_only = true};

}  // namespace

TEST_CASE("http rules: the defaults serve GET and HEAD of any HTTP/1.x, absolute-form too") {
    CHECK(error_of("HEAD / HTTP/1.1\r\nHost: gw\r\n\r\n", {}) == 0);
    CHECK(error_of("GET / HTTP/1.0\r\n\r\n", {}) == 0);
    CHECK(error_of("GET http://gw/x HTTP/1.1\r\nHost: gw\r\n\r\n", {}) == 0);
    CHECK(error_of("GET / HTTP/2.0\r\nHost: gw\r\n\r\n", {}) == 505);
    CHECK(error_of("POST / HTTP/1.0\r\n\r\n", {}) == 405);
}

TEST_CASE("http rules: strict means GET, HTTP/1.1 only (checked before the method), origin-form") {
    CHECK(error_of("GET / HTTP/1.1\r\nHost: gw\r\n\r\n", kStrict) == 0);
    CHECK(error_of("HEAD / HTTP/1.1\r\nHost: gw\r\n\r\n", kStrict) == 405);
    CHECK(error_of("HEAD / HTTP/1.1\r\n", kStrict) == 405);  // as soon as the request line is read
    CHECK(error_of("GET / HTTP/1.0\r\n\r\n", kStrict) == 400);
    CHECK(error_of("GET / HTTP/2.0\r\nHost: gw\r\n\r\n", kStrict) == 400);
    CHECK(error_of("POST / HTTP/1.0\r\n\r\n", kStrict) == 400);
    CHECK(error_of("GET http://gw/x HTTP/1.1\r\nHost: gw\r\n\r\n", kStrict) == 400);
}
