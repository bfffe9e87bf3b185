/* Request parsing and the HTTP glue, without sockets: bytes go into a
 * connection's input buffer and http_feed() is checked. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "hugd/http.h"
#include "hugd/worker.h"

static struct worker w;

static struct conn *fresh(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    c->w = &w;
    http_conn_init(c);
    return c;
}

static void drop(struct conn *c)
{
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
}

static enum http_feed_result feed(struct conn *c, const char *s)
{
    buf_append_str(&c->in, s);
    return http_feed(c);
}

static const char *hdr(struct conn *c, const char *name, size_t *len)
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
    CHECK_INT(feed(c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: "
                      "h\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
              FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/1");
    CHECK_INT(c->in.off, 28); /* stopped right after the first request */
    http_next(c);
    CHECK_INT(http_feed(c), FEED_REQUEST);
    CHECK_MEM(c->req.arena.p + c->req.url, c->req.url_len, "/2");
    CHECK_MEM(c->req.body.p, c->req.body.len, "abc");
    http_next(c);
    CHECK_INT(http_feed(c), FEED_REQUEST);
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
        struct conn *c = fresh();
        CHECK_INT(feed(c, bad[i]), FEED_ERROR);
        CHECK_INT(c->req.error_status >= 400 && c->req.error_status < 500, 1);
        drop(c);
    }
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
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
    struct conn *c = fresh();
    CHECK_INT(feed(c, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
                      "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
              FEED_REQUEST);
    http_next(c);
    CHECK_INT(http_feed(c), FEED_REQUEST);
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

int main(void)
{
    w.loop = ev_default_loop(0);
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
    return CHECK_DONE();
}
