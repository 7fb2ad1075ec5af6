// The HTTP/1.1 request codec: complete, incomplete and every error answer.
#include <doctest/doctest.h>

#include <string>

#include "net/http.hpp"

using namespace hato::net::http;
using namespace std::string_literals;

namespace {

ParseResult parse(const std::string& s, Request& r, size_t max_head = kMaxHeadBytes) {
    return parse_request({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, r, max_head);
}

int error_of(const std::string& s) {
    Request r;
    ParseResult p = parse(s, r);
    return p.status == ParseStatus::Error ? p.error_code : 0;
}

}  // namespace

TEST_CASE("http: a GET head is complete, with its path, query and headers") {
    Request r;
    std::string s = "GET /metrics?x=1 HTTP/1.1\r\nHost: gw\r\nAccept:  text/plain \r\n\r\n";
    ParseResult p = parse(s, r);
    REQUIRE(p.status == ParseStatus::Complete);
    CHECK(p.consumed == s.size());
    CHECK(r.method == "GET");
    CHECK(r.target == "/metrics?x=1");
    CHECK(r.path() == "/metrics");
    CHECK(r.minor_version == 1);
    REQUIRE(r.header("accept") != nullptr);
    CHECK(*r.header("ACCEPT") == "text/plain");
    CHECK(r.header("x-missing") == nullptr);
}

TEST_CASE("http: bytes after the head are not consumed (pipelined input stays for the caller)") {
    Request r;
    std::string head = "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    ParseResult p = parse(head + "garbage\r\n", r);
    REQUIRE(p.status == ParseStatus::Complete);
    CHECK(p.consumed == head.size());
    CHECK(r.method == "HEAD");
}

TEST_CASE("http: bare LF line ends, leading empty lines, HTTP/1.0 without Host, absolute-form") {
    Request r;
    CHECK(parse("\r\n\nGET /healthz HTTP/1.0\n\n", r).status == ParseStatus::Complete);
    CHECK(r.path() == "/healthz");
    CHECK(r.minor_version == 0);
    CHECK(parse("GET http://gw:9883/status.json?a HTTP/1.1\r\nHost: gw\r\n\r\n", r).status ==
          ParseStatus::Complete);
    CHECK(r.target == "/status.json?a");
    CHECK(parse("GET http://gw HTTP/1.1\r\nHost: gw\r\n\r\n", r).status == ParseStatus::Complete);
    CHECK(r.target == "/");
}

TEST_CASE("http: every prefix of a valid head is incomplete") {
    std::string s = "GET /metrics HTTP/1.1\r\nHost: gw\r\nUser-Agent: t\r\n\r\n";
    for (size_t n = 0; n < s.size(); ++n) {
        Request r;
        ParseResult p = parse(s.substr(0, n), r);
        CHECK_MESSAGE(p.status == ParseStatus::Incomplete, "prefix of ", n, " bytes");
    }
}

TEST_CASE("http: methods other than GET and HEAD are 405 from the request line alone") {
    CHECK(error_of("POST /metrics HTTP/1.1\r\n") == 405);
    CHECK(error_of("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n") == 405);
    CHECK(error_of("BREW /pot HTTP/1.1\r\n") == 405);
    CHECK(error_of("get / HTTP/1.1\r\n") == 405);  // methods are case-sensitive
    std::string s = response(405, "text/plain", "no\n");
    CHECK(s.find("Allow: GET, HEAD\r\n") != std::string::npos);
}

TEST_CASE("http: malformed request lines and headers are 400") {
    CHECK(error_of("GET\r\n") == 400);
    CHECK(error_of("GET /\r\n") == 400);
    CHECK(error_of("GET  / HTTP/1.1\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1 x\r\n") == 400);
    CHECK(error_of("G(T / HTTP/1.1\r\n") == 400);
    CHECK(error_of("GET / HTTX/1.1\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.x\r\n") == 400);
    CHECK(error_of("GET foo HTTP/1.1\r\n") == 400);
    CHECK(error_of(std::string("GET /\x01 HTTP/1.1\r\n")) == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n") == 400);
    CHECK(error_of(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n")) == 400);
    CHECK(error_of("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"s) == 400);  // TLS hello
    CHECK(error_of("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\n"s) == 400);  // MQTT CONNECT
    // ... and at once, without waiting for a line end
    CHECK(error_of("\x16\x03\x01\x02\x00"s) == 400);
    CHECK(error_of("\x10\x0c\x00\x04MQTT"s) == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nX: \x01"s) == 400);
}

TEST_CASE("http: Host is required once in HTTP/1.1; bodies are refused") {
    CHECK(error_of("GET / HTTP/1.1\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") == 0);
}

TEST_CASE("http: other HTTP versions are 505") {
    CHECK(error_of("GET / HTTP/2.0\r\n") == 505);
    CHECK(error_of("GET / HTTP/0.9\r\n") == 505);
}

TEST_CASE("http: a head over the bound is 431, complete or not") {
    std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(kMaxHeadBytes, 'a');
    CHECK(error_of(big) == 431);                   // still no end of head in sight
    CHECK(error_of(big + "\r\n\r\n") == 431);       // ends, but too late
    CHECK(error_of("GET /" + std::string(kMaxHeadBytes, 'p')) == 431);  // one endless request line
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    while (many.size() <= kMaxHeadBytes) many += "X-Pad: 1\r\n";
    CHECK(error_of(many) == 431);
    Request r;
    std::string small = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK(parse(small, r, small.size()).status == ParseStatus::Complete);
    CHECK(parse(small, r, small.size() - 1).error_code == 431);
}

TEST_CASE("http: responses carry length and close; HEAD leaves the body out") {
    std::string get = response(200, "text/plain; charset=utf-8", "ok\n");
    CHECK(get.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(get.find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(get.find("Connection: close\r\n") != std::string::npos);
    CHECK(get.substr(get.size() - 7) == "\r\n\r\nok\n");
    std::string head = response(200, "text/plain", "ok\n", true, "X-A: b\r\n");
    CHECK(head.find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(head.find("X-A: b\r\n") != std::string::npos);
    CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
    CHECK(std::string(reason_phrase(431)) == "Request Header Fields Too Large");
}

// Every split of a request whose head ends in CRLF or bare LF: the end is
// seen by the check that arrives with the bytes that complete it.
TEST_CASE("http: head_may_end finds the head's end however the bytes arrive") {
    for (const std::string& req : {std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                                  std::string("GET / HTTP/1.1\nHost: a\n\n"),
                                  std::string("GET / HTTP/1.1\nHost: a\n\r\n")}) {
        CAPTURE(req);
        for (size_t cut = 1; cut < req.size(); ++cut) {
            CHECK_FALSE(head_may_end(req.substr(0, cut - 1), 0));   // never before the end
            CHECK(head_may_end(req, cut));   // the bytes from `cut` on complete it
        }
    }
    CHECK_FALSE(head_may_end("GET / HTTP/1.1\r\nHost: a\r\n", 3));
}
