/* Forwarded headers (src/forwarded.c): the right-most untrusted hop of
 * X-Forwarded-For and Forwarded, X-Forwarded-Proto, RFC 7239's forms, and
 * which of them wins. */
#include "hugd/forwarded.h"

#include <stdlib.h>

#include "check.h"

static struct http_request req;
static struct addrmatch trusted;

static void start(const char *trust)
{
    char err[256];
    buf_clear(&req.arena);
    req.nhdrs = 0;
    addrmatch_free(&trusted);
    if (addrmatch_parse(&trusted, trust, err, sizeof(err)) < 0)
        fprintf(stderr, "%s\n", err);
}

static void field(const char *name, const char *value)
{
    if (req.nhdrs == req.hcap) {
        req.hcap = req.hcap ? req.hcap * 2 : 8;
        req.hdrs = realloc(req.hdrs, (size_t)req.hcap * sizeof(*req.hdrs));
    }
    struct http_header *h = &req.hdrs[req.nhdrs++];
    h->name = (uint32_t)req.arena.len;
    h->name_len = (uint32_t)strlen(name);
    buf_append_str(&req.arena, name);
    h->value = (uint32_t)req.arena.len;
    h->value_len = (uint32_t)strlen(value);
    buf_append_str(&req.arena, value);
}

/* The address believed ("" for none), its port ("" for none) and scheme. */
static void expect(const char *addr, const char *port, int scheme, int line)
{
    struct fwd_result r;
    forwarded_resolve(&req, &trusted, &r);
    char got[ADDR_TEXT_MAX] = "", gport[16] = "";
    if (r.has_addr)
        addr16_text(&r.addr, r.v4, got);
    if (r.port >= 0)
        snprintf(gport, sizeof(gport), "%d", r.port);
    if (strcmp(got, addr) || strcmp(gport, port) || r.scheme != scheme) {
        check_failed++;
        fprintf(stderr, "%s:%d: got '%s' port '%s' scheme %d, expected '%s' '%s' %d\n", __FILE__,
                line, got, gport, r.scheme, addr, port, scheme);
    } else {
        check_passed++;
    }
}
#define EXPECT(addr, port, scheme) expect(addr, port, scheme, __LINE__)

enum { NONE = FWD_SCHEME_NONE, HTTP = FWD_SCHEME_HTTP, HTTPS = FWD_SCHEME_HTTPS };

static void test_xff(void)
{
    start("127.0.0.1,10.0.0.0/8");
    EXPECT("", "", NONE);
    field("Host", "example.com");
    field("X-Forwarded-For", "203.0.113.7");
    EXPECT("203.0.113.7", "", NONE);
    /* The client's own claim stays on the left: the proxy's entry wins. */
    start("127.0.0.1,10.0.0.0/8");
    field("x-forwarded-for", "6.6.6.6, 203.0.113.7");
    EXPECT("203.0.113.7", "", NONE);
    /* Trusted hops nearest to us are skipped. */
    start("127.0.0.1,10.0.0.0/8");
    field("X-Forwarded-For", "1.1.1.1,203.0.113.7,10.0.0.9 , 10.0.0.1");
    EXPECT("203.0.113.7", "", NONE);
    /* Every hop trusted: the left-most. */
    start("127.0.0.1,10.0.0.0/8");
    field("X-Forwarded-For", "10.0.0.2, 10.0.0.1");
    EXPECT("10.0.0.2", "", NONE);
    /* Several fields are one list, in order. */
    start("127.0.0.1,10.0.0.0/8");
    field("X-Forwarded-For", "1.1.1.1");
    field("X-Forwarded-For", "2.2.2.2, 10.0.0.3");
    EXPECT("2.2.2.2", "", NONE);
    /* The hop that decides is garbage: nothing is believed. */
    start("127.0.0.1");
    field("X-Forwarded-For", "1.1.1.1, garbage");
    EXPECT("", "", NONE);
    start("127.0.0.1");
    field("X-Forwarded-For", "garbage, 1.1.1.1");
    EXPECT("1.1.1.1", "", NONE);
    start("127.0.0.1");
    field("X-Forwarded-For", "");
    EXPECT("", "", NONE);
    start("127.0.0.1");
    field("X-Forwarded-For", " , ,");
    EXPECT("", "", NONE);
    /* IPv6, bracketed, and ports. */
    start("::1");
    field("X-Forwarded-For", "2001:DB8::1");
    EXPECT("2001:db8::1", "", NONE);
    start("::1");
    field("X-Forwarded-For", "[2001:db8::2]:443");
    EXPECT("2001:db8::2", "443", NONE);
    start("::1");
    field("X-Forwarded-For", "192.0.2.1:8080");
    EXPECT("192.0.2.1", "8080", NONE);
    start("::1");
    field("X-Forwarded-For", "192.0.2.1:65536");
    EXPECT("", "", NONE);
    start("::1");
    field("X-Forwarded-For", "[192.0.2.1]");
    EXPECT("", "", NONE);
    start("::1");
    field("X-Forwarded-For", "[2001:db8::2]x");
    EXPECT("", "", NONE);
    start("::1");
    field("X-Forwarded-For", "::ffff:192.0.2.1");
    EXPECT("::ffff:192.0.2.1", "", NONE);
    /* A look-alike name is not the field. */
    start("::1");
    field("X-Forwarded-For-Not", "192.0.2.1");
    field("X-Forwarded", "192.0.2.2");
    EXPECT("", "", NONE);
}

static void test_xfp(void)
{
    start("127.0.0.1");
    field("X-Forwarded-Proto", "https");
    EXPECT("", "", HTTPS);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "HTTP");
    EXPECT("", "", HTTP);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "http, https ");
    EXPECT("", "", HTTPS);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "https,");
    EXPECT("", "", HTTPS);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "https");
    field("X-Forwarded-Proto", "http");
    EXPECT("", "", HTTP);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "ftp");
    EXPECT("", "", NONE);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "https");
    field("X-Forwarded-For", "198.51.100.3");
    EXPECT("198.51.100.3", "", HTTPS);
}

static void test_forwarded(void)
{
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43");
    EXPECT("192.0.2.60", "", HTTPS);
    start("127.0.0.1");
    field("Forwarded", "for=\"[2001:db8:cafe::17]:4711\"");
    EXPECT("2001:db8:cafe::17", "4711", NONE);
    start("127.0.0.1");
    field("Forwarded", "for=\"[2001:db8:cafe::17]\";proto=http");
    EXPECT("2001:db8:cafe::17", "", HTTP);
    start("127.0.0.1");
    field("Forwarded", "for=\"192.0.2.43:47011\"");
    EXPECT("192.0.2.43", "47011", NONE);
    start("127.0.0.1");
    field("Forwarded", "for=\"192.0.2.43:_abc\"");
    EXPECT("192.0.2.43", "", NONE);
    start("127.0.0.1");
    field("Forwarded", "FOR=192.0.2.43;PROTO=HTTPS");
    EXPECT("192.0.2.43", "", HTTPS);
    start("127.0.0.1");
    field("Forwarded", " for=192.0.2.43 ; proto=https , for=127.0.0.1 ");
    EXPECT("192.0.2.43", "", HTTPS);
    start("127.0.0.1");
    field("Forwarded", "for=\"\\1\\9\\2.0.2.4\"");
    EXPECT("192.0.2.4", "", NONE);
    /* Hops, each with its own proto: the element that decides gives both. */
    start("127.0.0.1,198.51.100.0/24");
    field("Forwarded", "for=192.0.2.43;proto=http, for=198.51.100.17;proto=https");
    field("Forwarded", "for=198.51.100.18");
    EXPECT("192.0.2.43", "", HTTP);
    start("127.0.0.1,198.51.100.0/24");
    field("Forwarded", "for=198.51.100.17;proto=https");
    EXPECT("198.51.100.17", "", HTTPS);
    /* "unknown", an obfuscated node, or an element without for=: nobody. */
    start("127.0.0.1");
    field("Forwarded", "for=unknown;proto=https");
    EXPECT("", "", HTTPS);
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.1, for=_hidden");
    EXPECT("", "", NONE);
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.1, proto=https");
    EXPECT("", "", HTTPS);
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.1, , ;");
    EXPECT("192.0.2.1", "", NONE);
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.1;ext=\"a,b\";x=y");
    EXPECT("192.0.2.1", "", NONE);
}

static void test_forwarded_malformed(void)
{
    static const char *const bad[] = {
        "for=1.2.3.4;for=5.6.7.8", /* a parameter twice */
        "for=\"1.2.3.4",           /* unterminated */
        "for=[::1]",               /* IPv6 must be quoted */
        "for=1.2.3.4 proto=https", /* no separator */
        "for",
        "=1.2.3.4",
        "for=",
        "for=\"1.2.3.4\\",
        "for=\"1.2\x01.3.4\"",
        "for=1.2.3.4;proto=https;proto=http",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        start("127.0.0.1");
        field("Forwarded", bad[i]);
        EXPECT("", "", NONE);
    }
    /* One bad field spoils the list: where its elements start is unknown. */
    start("127.0.0.1");
    field("Forwarded", "for=192.0.2.1");
    field("Forwarded", "for=\"x");
    EXPECT("", "", NONE);
    /* A long value is no address, and no harm. */
    char big[600];
    memset(big, 'a', sizeof(big));
    memcpy(big, "for=", 4);
    big[sizeof(big) - 1] = '\0';
    start("127.0.0.1");
    field("Forwarded", big);
    EXPECT("", "", NONE);
}

static void test_which_wins(void)
{
    /* X-Forwarded-For over Forwarded: nginx and HAProxy write the former
     * and pass a client's Forwarded through. */
    start("127.0.0.1");
    field("Forwarded", "for=6.6.6.6;proto=https");
    field("X-Forwarded-For", "203.0.113.7");
    EXPECT("203.0.113.7", "", NONE);
    start("127.0.0.1");
    field("X-Forwarded-Proto", "http");
    field("Forwarded", "for=6.6.6.6;proto=https");
    EXPECT("", "", HTTP);
    start("127.0.0.1");
    field("X-Forwarded-For", "");
    field("Forwarded", "for=6.6.6.6");
    EXPECT("", "", NONE);
}

int main(void)
{
    test_xff();
    test_xfp();
    test_forwarded();
    test_forwarded_malformed();
    test_which_wins();
    free(req.hdrs);
    buf_free(&req.arena);
    addrmatch_free(&trusted);
    return CHECK_DONE();
}
