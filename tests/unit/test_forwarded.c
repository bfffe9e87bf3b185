/* Forwarded headers (src/forwarded.c): the right-most untrusted hop of
 * X-Forwarded-For and Forwarded, X-Forwarded-Proto, RFC 7239's forms, and
 * which of them wins. */
#include "hugd/forwarded.h"

#include <stdlib.h>

#include "check.h"
#include "request_fields.h"

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
    request_add_field(&req, name, value);
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

enum { NONE = FWD_SCHEME_NONE, HTTP = FWD_SCHEME_HTTP, HTTPS = FWD_SCHEME_HTTPS };

#define XFF "X-Forwarded-For"
#define XFP "X-Forwarded-Proto"
#define FWD "Forwarded"

/* A request's fields (name, value pairs, NULL-ended) from a peer that
 * trusts the list `trust`, and what is to be believed. */
struct row {
    int line;
    const char *trust;
    const char *fields[8];
    const char *addr, *port;
    int scheme;
};
#define ROW(...)                                                                                   \
    {                                                                                              \
        __LINE__, __VA_ARGS__                                                                      \
    }
#define T "127.0.0.1,10.0.0.0/8"

static const struct row rows[] = {
    ROW(T, {NULL}, "", "", NONE),
    ROW(T, {"Host", "example.com", XFF, "203.0.113.7"}, "203.0.113.7", "", NONE),
    /* The client's own claim stays on the left: the proxy's entry wins. */
    ROW(T, {"x-forwarded-for", "6.6.6.6, 203.0.113.7"}, "203.0.113.7", "", NONE),
    /* Trusted hops nearest to us are skipped. */
    ROW(T, {XFF, "1.1.1.1,203.0.113.7,10.0.0.9 , 10.0.0.1"}, "203.0.113.7", "", NONE),
    /* Every hop trusted: the left-most. */
    ROW(T, {XFF, "10.0.0.2, 10.0.0.1"}, "10.0.0.2", "", NONE),
    /* Several fields are one list, in order. */
    ROW(T, {XFF, "1.1.1.1", XFF, "2.2.2.2, 10.0.0.3"}, "2.2.2.2", "", NONE),
    /* The hop that decides is garbage: nothing is believed. */
    ROW(T, {XFF, "1.1.1.1, garbage"}, "", "", NONE),
    ROW(T, {XFF, "garbage, 1.1.1.1"}, "1.1.1.1", "", NONE),
    ROW(T, {XFF, ""}, "", "", NONE),
    ROW(T, {XFF, " , ,"}, "", "", NONE),
    /* IPv6, bracketed, and ports. */
    ROW(T, {XFF, "2001:DB8::1"}, "2001:db8::1", "", NONE),
    ROW(T, {XFF, "[2001:db8::2]:443"}, "2001:db8::2", "443", NONE),
    ROW(T, {XFF, "192.0.2.1:8080"}, "192.0.2.1", "8080", NONE),
    ROW(T, {XFF, "192.0.2.1:65536"}, "", "", NONE),
    ROW(T, {XFF, "[192.0.2.1]"}, "", "", NONE),
    ROW(T, {XFF, "[2001:db8::2]x"}, "", "", NONE),
    ROW(T, {XFF, "::ffff:192.0.2.1"}, "::ffff:192.0.2.1", "", NONE),
    /* Look-alike names are not the field. */
    ROW(T, {"X-Forwarded-For-Not", "192.0.2.1", "X-Forwarded", "192.0.2.2"}, "", "", NONE),

    /* X-Forwarded-Proto: its right-most element, http or https. */
    ROW(T, {XFP, "https"}, "", "", HTTPS),
    ROW(T, {XFP, "HTTP"}, "", "", HTTP),
    ROW(T, {XFP, "http, https "}, "", "", HTTPS),
    ROW(T, {XFP, "https,"}, "", "", HTTPS),
    ROW(T, {XFP, "https", XFP, "http"}, "", "", HTTP),
    ROW(T, {XFP, "ftp"}, "", "", NONE),
    ROW(T, {XFP, "https", XFF, "198.51.100.3"}, "198.51.100.3", "", HTTPS),

    /* Forwarded (RFC 7239 and its examples). */
    ROW(T, {FWD, "for=192.0.2.60;proto=https;by=203.0.113.43"}, "192.0.2.60", "", HTTPS),
    ROW(T, {FWD, "for=\"[2001:db8:cafe::17]:4711\""}, "2001:db8:cafe::17", "4711", NONE),
    ROW(T, {FWD, "for=\"[2001:db8:cafe::17]\";proto=http"}, "2001:db8:cafe::17", "", HTTP),
    ROW(T, {FWD, "for=\"192.0.2.43:47011\""}, "192.0.2.43", "47011", NONE),
    ROW(T, {FWD, "for=\"192.0.2.43:_abc\""}, "192.0.2.43", "", NONE),
    ROW(T, {FWD, "FOR=192.0.2.43;PROTO=HTTPS"}, "192.0.2.43", "", HTTPS),
    ROW(T, {FWD, " for=192.0.2.43 ; proto=https , for=127.0.0.1 "}, "192.0.2.43", "", HTTPS),
    ROW(T, {FWD, "for=\"\\1\\9\\2.0.2.4\""}, "192.0.2.4", "", NONE),
    /* Hops, each with its own proto: the element that decides gives both. */
    ROW("127.0.0.1,198.51.100.0/24",
        {FWD, "for=192.0.2.43;proto=http, for=198.51.100.17;proto=https", FWD, "for=198.51.100.18"},
        "192.0.2.43", "", HTTP),
    ROW("198.51.100.0/24", {FWD, "for=198.51.100.17;proto=https"}, "198.51.100.17", "", HTTPS),
    /* "unknown", an obfuscated node, or an element without for=: nobody. */
    ROW(T, {FWD, "for=unknown;proto=https"}, "", "", HTTPS),
    ROW(T, {FWD, "for=192.0.2.1, for=_hidden"}, "", "", NONE),
    ROW(T, {FWD, "for=192.0.2.1, proto=https"}, "", "", HTTPS),
    ROW(T, {FWD, "for=192.0.2.1, , ;"}, "192.0.2.1", "", NONE),
    ROW(T, {FWD, "for=192.0.2.1;ext=\"a,b\";x=y"}, "192.0.2.1", "", NONE),

    /* A malformed Forwarded is not believed at all: where its elements
     * start is unknown. */
    ROW(T, {FWD, "for=1.2.3.4;for=5.6.7.8"}, "", "", NONE), /* a parameter twice */
    ROW(T, {FWD, "for=1.2.3.4;proto=https;proto=http"}, "", "", NONE),
    ROW(T, {FWD, "for=\"1.2.3.4"}, "", "", NONE), /* unterminated */
    ROW(T, {FWD, "for=[::1]"}, "", "", NONE),     /* IPv6 must be quoted */
    ROW(T, {FWD, "for=1.2.3.4 proto=https"}, "", "", NONE),
    ROW(T, {FWD, "for"}, "", "", NONE),
    ROW(T, {FWD, "=1.2.3.4"}, "", "", NONE),
    ROW(T, {FWD, "for="}, "", "", NONE),
    ROW(T, {FWD, "for=\"1.2.3.4\\"}, "", "", NONE),
    ROW(T, {FWD, "for=\"1.2\x01.3.4\""}, "", "", NONE),
    ROW(T, {FWD, "for=192.0.2.1", FWD, "for=\"x"}, "", "", NONE), /* one bad field spoils all */

    /* X-Forwarded-* win over Forwarded: nginx and HAProxy write them and
     * pass a client's Forwarded through. */
    ROW(T, {FWD, "for=6.6.6.6;proto=https", XFF, "203.0.113.7"}, "203.0.113.7", "", NONE),
    ROW(T, {XFP, "http", FWD, "for=6.6.6.6;proto=https"}, "", "", HTTP),
    ROW(T, {XFF, "", FWD, "for=6.6.6.6"}, "", "", NONE),
};

static void run(const struct row *r)
{
    start(r->trust);
    for (int i = 0; r->fields[i]; i += 2)
        field(r->fields[i], r->fields[i + 1]);
    expect(r->addr, r->port, r->scheme, r->line);
}

/* A value too long to be an address is none, and no harm. */
static void test_long_value(void)
{
    char big[600];
    memset(big, 'a', sizeof(big));
    memcpy(big, "for=", 4);
    big[sizeof(big) - 1] = '\0';
    start("127.0.0.1");
    field(FWD, big);
    expect("", "", NONE, __LINE__);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run(&rows[i]);
    test_long_value();
    request_free_fields(&req);
    addrmatch_free(&trusted);
    return CHECK_DONE();
}
