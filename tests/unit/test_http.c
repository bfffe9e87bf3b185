/* Request parsing and the HTTP glue, without sockets: bytes go into a
 * connection's input buffer and http_feed() is checked. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "hugd/http.h"
#include "hugd/http_rules.h"
#include "hugd/log.h"

/* What a connection gives the parser: its llhttp state, the request it
 * fills and the input it reads. */
struct reader {
    llhttp_t parser;
    struct http_request req;
    struct buf in;
};

static struct reader *fresh(void)
{
    struct reader *c = calloc(1, sizeof(*c));
    http_reader_init(&c->parser, &c->req);
    return c;
}

static void drop(struct reader *c)
{
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
}

static enum http_feed_result feed(struct reader *c, const char *s)
{
    buf_append_str(&c->in, s);
    return http_feed(&c->parser, &c->in);
}

static const char *hdr(struct reader *c, const char *name, size_t *len)
{
    return http_header(&c->req, name, len);
}

static void limits(uint32_t line, uint32_t fields, uint32_t size, uint64_t body, uint64_t mem)
{
    struct http_limits l = {line, fields, size, body, mem};
    http_set_limits(&l);
}

static void test_simple_get(void)
{
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing: one\r\n\r\n"), FEED_REQUEST);
    CHECK_INT(c->req.method, HTTP_GET);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/a/b?x=1");
    CHECK_INT(c->req.nhdrs, 2);
    size_t n = 0;
    const char *v = hdr(c, "x-thing", &n);
    CHECK_MEM(v, n, "one");
    CHECK_INT(c->req.keepalive, 1);
    CHECK_INT(c->req.major * 10 + c->req.minor, 11);
    CHECK_INT(c->in.off, c->in.len);
    drop(c);
}

static void test_http10_keepalive(void)
{
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.0\r\n\r\n"), FEED_REQUEST);
    CHECK_INT(c->req.keepalive, 0);
    drop(c);
    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), FEED_REQUEST);
    CHECK_INT(c->req.keepalive, 1);
    drop(c);
    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), FEED_REQUEST);
    CHECK_INT(c->req.keepalive, 0);
    drop(c);
}

static void test_pipelined(void)
{
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: "
                      "h\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
              FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/1");
    CHECK_INT(c->in.off, 28); /* stopped right after the first request */
    http_next(&c->parser);
    CHECK_INT(http_feed(&c->parser, &c->in), FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/2");
    CHECK_MEM(c->req.body.p, c->req.body.len, "abc");
    http_next(&c->parser);
    CHECK_INT(http_feed(&c->parser, &c->in), FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/3");
    CHECK_INT(c->req.body.len, 0);
    CHECK_INT(c->in.off, c->in.len);
    drop(c);
}

static void test_byte_by_byte(void)
{
    /* Every callback split at every byte: names and values must come out
     * whole anyway. */
    const char *req =
        "PUT /split HTTP/1.1\r\nHost: h\r\nContent-Type: text/x\r\nContent-Length: 5\r\n\r\nhello";
    struct reader *c = fresh();
    size_t n = strlen(req);
    for (size_t i = 0; i < n - 1; i++) {
        char one[2] = {req[i], 0};
        CHECK_INT(feed(c, one), FEED_NEED_MORE);
    }
    CHECK_INT(feed(c, req + n - 1), FEED_REQUEST);
    size_t len = 0;
    const char *v = hdr(c, "content-type", &len);
    CHECK_MEM(v, len, "text/x");
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/split");
    CHECK_MEM(c->req.body.p, c->req.body.len, "hello");
    drop(c);
}

static void test_chunked_body(void)
{
    struct reader *c = fresh();
    CHECK_INT(
        feed(c, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        FEED_NEED_MORE);
    CHECK_INT(feed(c, "6\r\n world\r\n0\r\n\r\n"), FEED_REQUEST);
    CHECK_MEM(c->req.body.p, c->req.body.len, "hello world");
    CHECK_INT(c->req.has_length, 0);
    CHECK_INT(c->req.body_size, 11);
    drop(c);
}

static void test_spool(void)
{
    limits(8190, 100, 8190, 0, 4); /* more than 4 body bytes go to a file */
    struct reader *c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"),
              FEED_REQUEST);
    CHECK_INT(c->req.body_fd >= 0, 1);
    char back[16] = {0};
    CHECK_INT(pread(c->req.body_fd, back, sizeof(back), 0), 10);
    CHECK_MEM(back, 10, "0123456789");
    drop(c);
    limits(8190, 100, 8190, 0, 1 << 20);
}

static void test_limits(void)
{
    limits(16, 3, 32, 10, 1 << 20);
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET /0123456789abcdef HTTP/1.1\r\nHost: h\r\n\r\n"), FEED_ERROR);
    CHECK_INT(c->req.error_status, 414);
    drop(c);

    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 431);
    drop(c);

    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.1\r\nHost: h\r\nA: 0123456789012345678901234567890123\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 431);
    drop(c);

    c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"), FEED_ERROR);
    CHECK_INT(c->req.error_status, 413);
    drop(c);

    c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 413);
    drop(c);
    limits(8190, 100, 8190, 0, 1 << 20);
}

static void test_bad_requests(void)
{
    static const char *bad[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reader *c = fresh();
        CHECK_INT(feed(c, bad[i]), FEED_ERROR);
        CHECK_INT(c->req.error_status >= 400 && c->req.error_status < 500, 1);
        drop(c);
    }
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/4.2\r\n\r\n"), FEED_ERROR);
    CHECK_INT(c->req.error_status, 505);
    drop(c);
    /* HTTP/0.9: no version, no headers. */
    c = fresh();
    CHECK_INT(feed(c, "GET /\r\n\r\n"), FEED_ERROR);
    CHECK_INT(c->req.error_status, 400);
    drop(c);
    /* HTTP/1.1 without Host; HTTP/1.0 may leave it out. */
    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.1\r\nX: y\r\n\r\n"), FEED_ERROR);
    CHECK_INT(c->req.error_status, 400);
    drop(c);
    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.0\r\n\r\n"), FEED_REQUEST);
    drop(c);
}

static void test_expect(void)
{
    struct reader *c = fresh();
    CHECK_INT(
        feed(c, "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
        FEED_NEED_MORE);
    CHECK_INT(c->req.expect_continue, 1);
    CHECK_INT(feed(c, "abc"), FEED_REQUEST);
    drop(c);

    /* Nothing to continue with: no interim response owed. */
    c = fresh();
    CHECK_INT(feed(c, "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"), FEED_REQUEST);
    CHECK_INT(c->req.expect_continue, 0);
    drop(c);

    c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 3\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 417);
    drop(c);
}

static void test_trailers_dropped(void)
{
    struct reader *c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil\r\n\r\n"),
              FEED_REQUEST);
    size_t n = 0;
    const char *v = hdr(c, "host", &n);
    CHECK_MEM(v, n, "h");
    CHECK_INT(hdr(c, "x-forwarded-for", &n) == NULL, 1);
    CHECK_INT(c->req.nhdrs, 2);
    CHECK_MEM(c->req.body.p, c->req.body.len, "abc");
    drop(c);
    /* Bounded like a header field. */
    limits(8190, 100, 32, 0, 1 << 20);
    c = fresh();
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0\r\nX: 0123456789012345678901234567890123456789\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 431);
    drop(c);
    limits(8190, 100, 8190, 0, 1 << 20);
}

static void test_upgrade_and_connect(void)
{
    /* An Upgrade request is answered as HTTP/1.1 and the next request on the
     * connection parses normally. */
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
                      "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
              FEED_REQUEST);
    http_next(&c->parser);
    CHECK_INT(http_feed(&c->parser, &c->in), FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/b");
    drop(c);
    c = fresh();
    CHECK_INT(feed(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 501);
    drop(c);
}

static void test_keepalive_table(void)
{
    /* client allows, app asked to close, length known -> keep? */
    CHECK_INT(http_keepalive(1, 0, 1), 1);
    CHECK_INT(http_keepalive(1, 0, 0), 0); /* close-delimited body */
    CHECK_INT(http_keepalive(1, 1, 1), 0); /* app said Connection: close */
    CHECK_INT(http_keepalive(0, 0, 1), 0); /* client said close / HTTP/1.0 */
    CHECK_INT(http_keepalive(0, 1, 0), 0);
}

static void test_error_response(void)
{
    struct buf out = {0};
    http_error_response(&out, 431, 0);
    CHECK_INT(strncmp(out.p, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46), 0);
    CHECK_INT(memmem(out.p, out.len, "Connection: close\r\n", 19) != NULL, 1);
    CHECK_INT(memmem(out.p, out.len, "Content-Length: 32\r\n", 20) != NULL, 1);
    CHECK_INT(memmem(out.p, out.len, "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", 37) != NULL, 1);
    buf_free(&out);
}

/* Whole input at once, then one byte per read: the same verdict. */
static int status_of(const char *req, size_t n, int bytewise)
{
    struct reader *c = fresh();
    enum http_feed_result r = FEED_NEED_MORE;
    for (size_t i = 0; i < n && r == FEED_NEED_MORE; i += bytewise ? 1 : n) {
        size_t k = bytewise ? 1 : n;
        if (c->in.off == c->in.len)
            buf_clear(&c->in);
        buf_append(&c->in, req + i, k);
        r = http_feed(&c->parser, &c->in);
        while (r == FEED_REQUEST) {
            http_next(&c->parser);
            r = c->in.off < c->in.len ? http_feed(&c->parser, &c->in) : FEED_NEED_MORE;
            if (r == FEED_NEED_MORE && i + k == n) {
                drop(c);
                return 200;
            }
        }
    }
    int st = r == FEED_ERROR ? c->req.error_status : r == FEED_REQUEST ? 200 : 0;
    drop(c);
    return st;
}

static void check_status(const char *req, int want)
{
    size_t n = strlen(req);
    int whole = status_of(req, n, 0), bytes = status_of(req, n, 1);
    if (whole != want || bytes != want)
        fprintf(stderr, "for %s\n", req);
    CHECK_INT(whole, want);
    CHECK_INT(bytes, want);
}

static void test_authority(void)
{
    static const char *good[] = {"",      "localhost", "h:1",  "a.b-c_d~e:65535",  "127.0.0.1",
                                 "[::1]", "[::1]:80",  "%41b", "[::ffff:1.2.3.4]", "!$&'()*+,;="};
    static const char *bad[] = {"a b",    "u@h",  "h:",   "h:8x", "h:65536", "h:000080",
                                "[::g]",  "[::1", "[]",   "h/x",  ":80",     "%4",
                                "[v1.x]", "a\tb", "h:-1", "é",    "[::1]x",  "h::1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK_INT(http_valid_authority(good[i], strlen(good[i])), 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_valid_authority(bad[i], strlen(bad[i])))
            fprintf(stderr, "accepted authority \"%s\"\n", bad[i]);
        CHECK_INT(http_valid_authority(bad[i], strlen(bad[i])), 0);
    }
    CHECK_INT(http_same_authority("Example.COM", 11, "example.com:80", 14, 80), 1);
    CHECK_INT(http_same_authority("example.com:443", 15, "example.com", 11, 443), 1);
    CHECK_INT(http_same_authority("example.com:8080", 16, "example.com", 11, 80), 0);
    CHECK_INT(http_same_authority("example.com", 11, "example.org", 11, 80), 0);
    CHECK_INT(http_same_authority("[::1]:80", 8, "[::1]", 5, 80), 1);
}

static void test_target_forms(void)
{
    struct http_target t;
    http_parse_target("/a?b", 4, &t);
    CHECK_INT(t.form, TARGET_ORIGIN);
    CHECK_INT(t.path, 0);
    http_parse_target("*", 1, &t);
    CHECK_INT(t.form, TARGET_ASTERISK);
    const char *abs = "HTTP://example.com:8080/a?b";
    http_parse_target(abs, strlen(abs), &t);
    CHECK_INT(t.form, TARGET_ABSOLUTE);
    CHECK_MEM(abs + t.auth, t.auth_len, "example.com:8080");
    CHECK_MEM(abs + t.path, strlen(abs) - t.path, "/a?b");
    CHECK_INT(t.default_port, 80);
    http_parse_target("https://h?q", 11, &t);
    CHECK_INT(t.form, TARGET_ABSOLUTE);
    CHECK_INT(t.default_port, 443);
    CHECK_INT(t.path, 9);
    static const char *bad[] = {"s://]ufd/:", "http://u@h/", "ftp://h/", "http:/a",    "http:///a",
                                "a/b",        "**",          "",         "http://h:x/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_parse_target(bad[i], strlen(bad[i]), &t);
        CHECK_INT(t.form, TARGET_INVALID);
    }
}

static void test_transfer_encoding_rules(void)
{
    CHECK_INT(http_check_transfer_encoding("chunked", 7), 0);
    CHECK_INT(http_check_transfer_encoding("ChUnKeD", 7), 0);
    CHECK_INT(http_check_transfer_encoding("gzip, chunked", 13), 501);
    CHECK_INT(http_check_transfer_encoding("gzip;level=1 ,\tchunked", 22), 501);
    static const char *bad[] = {
        "chunked, gzip", "chunked, chunked", "chunked,", ", chunked",     "identity",
        "\"chunked\"",   "chunked;a=b",      "gzip",     "gzip,,chunked", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(http_check_transfer_encoding(bad[i], strlen(bad[i])), 400);
}

static void test_chunk_size_line(void)
{
    static const struct {
        const char *line;
        long size_len;
    } cases[] = {
        {"5", 1},
        {"05;a", 2},
        {"5 ; name=value", 1},
        {"5\t;\tn = \"v ;\" ; f", 1},
        {"5;a=b;c=d", 1},
        {"5;a=\"\\\"\"", 1},
        {"zz", 0},
        {" 5", 0},
        {"5 ", -1},
        {"5;", -1},
        {"5;a=", -1},
        {"5;a=b c", -1},
        {"5;a=\"b", -1},
        {"5;=b", -1},
        {"5;a\x01", -1},
        {"5;a ", -1},
        {"5x", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long got = http_chunk_size_len(cases[i].line, strlen(cases[i].line));
        if (got != cases[i].size_len)
            fprintf(stderr, "chunk line \"%s\"\n", cases[i].line);
        CHECK_INT(got, cases[i].size_len);
    }
}

static void test_front_server_rules(void)
{
    /* Served before, refused now. */
    check_status("GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    check_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
    check_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    check_status("PUT s://]ufd/: HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 400);
    check_status("GET http://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: one\r\n two\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX:\r\n two\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\n\n", 400);
    check_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                 501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\nX: y\r\n z\r\n\r\n",
                 400);
    /* Refused before, served now. */
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5 ; name=value\r\nhello\r\n0\r\n\r\n",
                 200);
    check_status("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    check_status("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    check_status("GET http://H:80/x HTTP/1.1\r\nHost: h\r\n\r\n", 200);
    /* 501 for a token method, however it arrives; 400 for anything else. */
    check_status("FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    check_status("get / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    check_status("GETX / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    check_status("GE@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    check_status("GARBAGE\r\n\r\n", 400);
    check_status("FOO", 0); /* not decided yet */
}

static void test_chunk_extensions_dropped(void)
{
    /* Body and pipelining are right after lines rewritten in the buffer. */
    const char *req = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5 ; a = \"x y\" ; b\r\nhello\r\n6;c=d;e=f\r\n world\r\n0 ; z\r\n\r\n"
                      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct reader *c = fresh();
        size_t n = strlen(req), step = bytewise ? 1 : n;
        int got = 0;
        for (size_t i = 0; i < n; i += step) {
            if (c->in.off == c->in.len)
                buf_clear(&c->in);
            buf_append(&c->in, req + i, step);
            enum http_feed_result r;
            while ((r = http_feed(&c->parser, &c->in)) == FEED_REQUEST) {
                if (got++ == 0)
                    CHECK_MEM(c->req.body.p, c->req.body.len, "hello world");
                else
                    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/next");
                http_next(&c->parser);
            }
            CHECK_INT(r, FEED_NEED_MORE);
        }
        CHECK_INT(got, 2);
        drop(c);
    }
}

static void test_chunk_declared_size_413(void)
{
    limits(8190, 100, 8190, 10, 1 << 20);
    struct reader *c = fresh();
    /* Refused at the size line, before any of the chunk has come. */
    CHECK_INT(feed(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\nb\r\n"),
              FEED_ERROR);
    CHECK_INT(c->req.error_status, 413);
    drop(c);
    limits(8190, 100, 8190, 0, 1 << 20);
}

static void test_absolute_path_offset(void)
{
    struct reader *c = fresh();
    CHECK_INT(feed(c, "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
              FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url + c->req.path_off, c->req.url_len - c->req.path_off,
              "/a?b");
    drop(c);
}

static void test_log_limited(void)
{
    /* Lines go to fd 2: count them through a pipe. */
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    struct log_limit l = {0};
    for (int i = 0; i < 5; i++)
        log_limited(&l, LOG_LVL_INFO, "event %d", i);
    CHECK_INT(l.suppressed, 4);
    l.next = 0; /* as if a second had passed */
    log_limited(&l, LOG_LVL_INFO, "event 5");
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char out[1024] = {0};
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    CHECK_INT(n > 0, 1);
    CHECK_INT(strstr(out, "event 0") != NULL, 1);
    CHECK_INT(strstr(out, "event 1") == NULL, 1);
    CHECK_INT(strstr(out, "event 5 (and 4 more like it not logged)") != NULL, 1);
    CHECK_INT(l.suppressed, 0);
}

int main(void)
{
    test_simple_get();
    test_http10_keepalive();
    test_pipelined();
    test_byte_by_byte();
    test_chunked_body();
    test_spool();
    test_limits();
    test_bad_requests();
    test_expect();
    test_trailers_dropped();
    test_upgrade_and_connect();
    test_keepalive_table();
    test_error_response();
    test_authority();
    test_target_forms();
    test_transfer_encoding_rules();
    test_chunk_size_line();
    test_front_server_rules();
    test_chunk_extensions_dropped();
    test_chunk_declared_size_413();
    test_absolute_path_offset();
    test_log_limited();
    return CHECK_DONE();
}
