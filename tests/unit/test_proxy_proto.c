/* The PROXY protocol parser (src/proxy_proto.c): every form HAProxy and
 * nginx send, every prefix of a good header asks for more, bad ones are
 * refused as soon as they can be, and proxy_encode reads back the same. */
#include "hugd/proxy_proto.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <sys/socket.h>

#include "check.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int parse(const void *p, size_t n, struct proxy_header *h)
{
    const char *why = NULL;
    int r = proxy_parse(p, n, h, &why);
    if (r == PROXY_BAD && !why)
        return 99; /* a refusal always says why */
    return r;
}

/* Every strict prefix of a good header asks for more. */
static void check_prefixes(const void *p, size_t len)
{
    struct proxy_header h;
    int more = 1;
    for (size_t i = 0; i < len; i++)
        more &= parse(p, i, &h) == PROXY_MORE;
    CHECK_INT(more, 1);
}

static void v1(const char *line, int expect)
{
    struct proxy_header h;
    CHECK_INT(parse(line, strlen(line), &h), expect);
}

static void test_v1_tcp4(void)
{
    static const char s[] = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
    struct proxy_header h;
    CHECK_INT(parse(s, sizeof(s) - 1, &h), PROXY_OK);
    CHECK_INT(h.version, 1);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.family, AF_INET);
    CHECK_INT(h.len, strlen("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"));
    char text[64];
    inet_ntop(AF_INET, h.src, text, sizeof(text));
    CHECK_MEM(text, strlen(text), "192.0.2.7");
    inet_ntop(AF_INET, h.dst, text, sizeof(text));
    CHECK_MEM(text, strlen(text), "198.51.100.1");
    CHECK_INT(h.src_port, 56324);
    CHECK_INT(h.dst_port, 443);
    check_prefixes(s, h.len);
}

static void test_v1_tcp6_and_unknown(void)
{
    static const char s[] = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    struct proxy_header h;
    CHECK_INT(parse(s, sizeof(s) - 1, &h), PROXY_OK);
    CHECK_INT(h.family, AF_INET6);
    CHECK_INT(h.src[0], 0x20);
    CHECK_INT(h.src[15], 1);
    CHECK_INT(h.dst[15], 1);
    CHECK_INT(h.src_port, 65535);
    CHECK_INT(h.dst_port, 0);
    /* The longest line the protocol allows. */
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_INT(sizeof(longest) - 1, PROXY_V1_MAX - 3);
    v1(longest, PROXY_OK);
    check_prefixes(longest, sizeof(longest) - 1);
    CHECK_INT(parse("PROXY UNKNOWN\r\n", 15, &h), PROXY_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.len, 15);
    /* What follows UNKNOWN is ignored. */
    v1("PROXY UNKNOWN ffff:: ffff:: 1 2\r\n", PROXY_OK);
    v1("PROXY UNKNOWN \r\n", PROXY_OK);
}

static void test_v1_refused(void)
{
    v1("GET / HTTP/1.1\r\n", PROXY_BAD);
    v1("G", PROXY_BAD); /* at the first byte */
    v1("PROXX", PROXY_BAD);
    v1("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_BAD);
    v1("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_BAD);
    v1("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PROXY_BAD); /* not the family it says */
    v1("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_BAD); /* a bare LF */
    v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", PROXY_BAD);
    v1("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", PROXY_BAD);
    v1("PROXY \r\n", PROXY_BAD);
    v1("PROXY UNKNOWN\x01\r\n", PROXY_BAD);
    v1("PROXY UNKNOWNX\r\n", PROXY_BAD);
    /* No CRLF within 107 bytes: refused at the 107th, not waited on. */
    char line[200];
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    struct proxy_header h;
    CHECK_INT(parse(line, PROXY_V1_MAX - 1, &h), PROXY_MORE);
    CHECK_INT(parse(line, PROXY_V1_MAX, &h), PROXY_BAD);
    CHECK_INT(parse(line, sizeof(line), &h), PROXY_BAD);
    line[PROXY_V1_MAX - 2] = '\r';
    line[PROXY_V1_MAX - 1] = '\n';
    CHECK_INT(parse(line, sizeof(line), &h), PROXY_OK);
    CHECK_INT(h.len, PROXY_V1_MAX);
    line[PROXY_V1_MAX - 2] = 'a';
    line[PROXY_V1_MAX - 1] = '\r';
    line[PROXY_V1_MAX] = '\n';
    CHECK_INT(parse(line, sizeof(line), &h), PROXY_BAD); /* 108 bytes */
}

/* A version 2 header: ver_cmd, fam, then body bytes. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

static void test_v2_inet(void)
{
    uint8_t body[12 + 64], buf[16 + sizeof(body)];
    uint8_t a[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0x12, 0x34, 0x01, 0xbb};
    memcpy(body, a, 12);
    size_t n = v2(buf, 0x21, 0x11, body, 12);
    struct proxy_header h;
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.version, 2);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.family, AF_INET);
    CHECK_INT(h.src[0], 192);
    CHECK_INT(h.src[3], 7);
    CHECK_INT(h.dst[3], 1);
    CHECK_INT(h.src_port, 0x1234);
    CHECK_INT(h.dst_port, 443);
    CHECK_INT(h.len, 28);
    check_prefixes(buf, n);
    /* With TLVs (ALPN "h2", an authority, a NOOP of padding): skipped. */
    uint8_t tlvs[] = {0x01, 0, 2, 'h', '2', 0x02, 0, 3, 'a', '.', 'b', 0x04, 0, 0};
    memcpy(body + 12, tlvs, sizeof(tlvs));
    n = v2(buf, 0x21, 0x11, body, 12 + sizeof(tlvs));
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.len, 16 + 12 + sizeof(tlvs));
    CHECK_INT(h.src_port, 0x1234);
    check_prefixes(buf, n);
    /* A TLV running past the end, or cut short. */
    body[12 + 2] = 3;
    n = v2(buf, 0x21, 0x11, body, 12 + 5);
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x11, body, 12 + 2);
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    /* Shorter than its addresses. */
    n = v2(buf, 0x21, 0x11, body, 11);
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
}

static void test_v2_inet6_local_unspec_unix(void)
{
    uint8_t body[216], buf[16 + sizeof(body)];
    memset(body, 0, sizeof(body));
    body[0] = 0x20;
    body[1] = 0x01;
    body[15] = 9;
    body[31] = 1;
    body[32] = 0xff;
    body[33] = 0xfe;
    size_t n = v2(buf, 0x21, 0x21, body, 36);
    struct proxy_header h;
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.family, AF_INET6);
    CHECK_INT(h.src[1], 0x01);
    CHECK_INT(h.src[15], 9);
    CHECK_INT(h.dst[15], 1);
    CHECK_INT(h.src_port, 0xfffe);
    check_prefixes(buf, n);
    /* LOCAL (HAProxy's own health checks): no address, whatever follows. */
    n = v2(buf, 0x20, 0x00, body, 0);
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.len, 16);
    n = v2(buf, 0x20, 0x11, body, 12);
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.len, 28);
    /* PROXY with an unspecified family: the connection's own addresses. */
    n = v2(buf, 0x21, 0x00, body, 0);
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.local, 1);
    /* A Unix socket path is no REMOTE_ADDR: the same. */
    n = v2(buf, 0x21, 0x31, body, 216);
    CHECK_INT(parse(buf, n, &h), PROXY_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.len, 16 + 216);
    n = v2(buf, 0x21, 0x31, body, 215);
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
}

static void test_v2_refused(void)
{
    uint8_t body[36] = {0}, buf[64];
    struct proxy_header h;
    size_t n = v2(buf, 0x11, 0x11, body, 12); /* version 1 in a v2 header */
    CHECK_INT(parse(buf, 13, &h), PROXY_BAD); /* known at its 13th byte */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x22, 0x11, body, 12); /* command 2 */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x12, body, 12); /* UDP */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x10, body, 12); /* no transport */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x41, body, 12); /* family 4 */
    CHECK_INT(parse(buf, 14, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x13, body, 12); /* transport 3 */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    n = v2(buf, 0x21, 0x21, body, 35); /* IPv6, one byte short */
    CHECK_INT(parse(buf, n, &h), PROXY_BAD);
    buf[5] = 0x0e; /* a broken signature */
    CHECK_INT(parse(buf, 6, &h), PROXY_BAD);
    /* A big length waits for all of it. */
    n = v2(buf, 0x21, 0x11, body, 12);
    buf[14] = 0xff;
    buf[15] = 0xff;
    CHECK_INT(parse(buf, n, &h), PROXY_MORE);
}

static void round_trip(const struct proxy_header *in, size_t expect_len)
{
    uint8_t out[PROXY_ENCODED_MAX + 8];
    memset(out, 0xaa, sizeof(out));
    size_t n = proxy_encode(in, out);
    CHECK_INT(n, expect_len);
    CHECK_INT(out[PROXY_ENCODED_MAX], 0xaa); /* nothing past the maximum */
    struct proxy_header back;
    CHECK_INT(parse(out, n, &back), PROXY_OK);
    CHECK_INT(back.len, n);
    CHECK_INT(back.local, in->local);
    if (!in->local) {
        size_t alen = in->family == AF_INET ? 4 : 16;
        CHECK_INT(back.family, in->family);
        CHECK_INT(memcmp(back.src, in->src, alen), 0);
        CHECK_INT(memcmp(back.dst, in->dst, alen), 0);
        CHECK_INT(back.src_port, in->src_port);
        CHECK_INT(back.dst_port, in->dst_port);
    }
}

static void test_encode(void)
{
    struct proxy_header h;
    static const char s4[] = "PROXY TCP4 203.0.113.9 192.0.2.1 40000 8000\r\n";
    CHECK_INT(parse(s4, sizeof(s4) - 1, &h), PROXY_OK);
    round_trip(&h, 28);
    static const char s6[] = "PROXY TCP6 2001:db8::77 2001:db8::1 1 65535\r\n";
    CHECK_INT(parse(s6, sizeof(s6) - 1, &h), PROXY_OK);
    round_trip(&h, 52);
    CHECK_INT(parse("PROXY UNKNOWN\r\n", 15, &h), PROXY_OK);
    round_trip(&h, 16);
}

int main(void)
{
    test_v1_tcp4();
    test_v1_tcp6_and_unknown();
    test_v1_refused();
    test_v2_inet();
    test_v2_inet6_local_unspec_unix();
    test_v2_refused();
    test_encode();
    return CHECK_DONE();
}
