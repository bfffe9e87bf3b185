/* PROXY protocol header parsing; see include/hugd/proxy_proto.h.  The
 * format is HAProxy's proxy-protocol.txt: version 1 is one text line,
 * "PROXY TCP4|TCP6|UNKNOWN ...\r\n"; version 2 is a 12-byte signature, a
 * version and command byte, a family and transport byte, a 16-bit length
 * and that many bytes of addresses and TLVs. */
#include "hugd/proxy_proto.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

enum { V2_LOCAL = 0, V2_PROXY = 1 };
enum { FAM_UNSPEC = 0, FAM_INET = 1, FAM_INET6 = 2, FAM_UNIX = 3 };
enum { TR_UNSPEC = 0, TR_STREAM = 1, TR_DGRAM = 2 };
#define V2_INET_LEN 12
#define V2_INET6_LEN 36
#define V2_UNIX_LEN 216

static enum proxy_verdict bad(const char **why, const char *what)
{
    *why = what;
    return PROXY_BAD;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* A port: 1 to 5 digits, no leading zero, at most 65535. */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int v1_addr(int family, const char *s, size_t n, uint8_t out[16])
{
    char text[48];
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(family, text, out) == 1 ? 0 : -1;
}

/* The whole line is there, CRLF at line[len - 2]. */
static enum proxy_verdict v1_line(const char *line, size_t len, struct proxy_header *h,
                                  const char **why)
{
    const char *end = line + len - 2;
    const char *tok[6];
    size_t tlen[6];
    int ntok = 0;
    for (const char *p = line; p <= end && ntok < 6;) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *stop = sp ? sp : end;
        tok[ntok] = p;
        tlen[ntok++] = (size_t)(stop - p);
        if (!sp)
            break;
        p = sp + 1;
    }
    h->version = 1;
    h->len = len;
    if (ntok >= 2 && tlen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0) {
        /* The rest of the line is to be ignored. */
        h->local = 1;
        return PROXY_OK;
    }
    if (ntok < 2 || tlen[1] != 4 || (memcmp(tok[1], "TCP4", 4) && memcmp(tok[1], "TCP6", 4)))
        return bad(why, "PROXY v1: the protocol is not TCP4, TCP6 or UNKNOWN");
    if (ntok != 6 || tok[5] + tlen[5] != end)
        return bad(why, "PROXY v1: not PROXY proto src dst sport dport, one space apart");
    for (int i = 2; i < 6; i++)
        if (tlen[i] == 0)
            return bad(why, "PROXY v1: an empty field (two spaces)");
    h->family = tok[1][3] == '4' ? AF_INET : AF_INET6;
    if (v1_addr(h->family, tok[2], tlen[2], h->src) < 0 ||
        v1_addr(h->family, tok[3], tlen[3], h->dst) < 0)
        return bad(why, "PROXY v1: an address is not one of the protocol's family");
    if (v1_port(tok[4], tlen[4], &h->src_port) < 0 || v1_port(tok[5], tlen[5], &h->dst_port) < 0)
        return bad(why, "PROXY v1: a port is not a number 0..65535");
    h->local = 0;
    return PROXY_OK;
}

static enum proxy_verdict v1(const char *p, size_t n, struct proxy_header *h, const char **why)
{
    size_t look = min_size(n, PROXY_V1_MAX);
    for (size_t i = sizeof(v1_sig); i < look; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r') {
            if (i + 1 == look)
                return look == PROXY_V1_MAX ? bad(why, "PROXY v1: line longer than 107 bytes")
                                            : PROXY_MORE;
            if (p[i + 1] != '\n')
                return bad(why, "PROXY v1: a CR not followed by LF");
            return v1_line(p, i + 2, h, why);
        }
        if (ch == '\n')
            return bad(why, "PROXY v1: a LF without a CR before it");
        if (ch < 0x20 || ch > 0x7e)
            return bad(why, "PROXY v1: a byte that is not printable ASCII");
    }
    return look == PROXY_V1_MAX ? bad(why, "PROXY v1: line longer than 107 bytes") : PROXY_MORE;
}

/* Type, 16-bit length, value, until the header's end exactly. */
static int v2_tlvs_fit(const uint8_t *p, size_t n)
{
    while (n) {
        if (n < 3)
            return 0;
        size_t len = (size_t)p[1] << 8 | p[2];
        if (len > n - 3)
            return 0;
        p += 3 + len;
        n -= 3 + len;
    }
    return 1;
}

static enum proxy_verdict v2(const uint8_t *p, size_t n, struct proxy_header *h, const char **why)
{
    if (n > 12 && (p[12] >> 4) != 2)
        return bad(why, "PROXY v2: version is not 2");
    if (n > 12 && (p[12] & 0x0f) > V2_PROXY)
        return bad(why, "PROXY v2: the command is neither LOCAL nor PROXY");
    if (n > 13 && ((p[13] >> 4) > FAM_UNIX || (p[13] & 0x0f) > TR_DGRAM))
        return bad(why, "PROXY v2: unknown address family or transport");
    if (n < 16)
        return PROXY_MORE;
    size_t body = (size_t)p[14] << 8 | p[15];
    if (n < 16 + body)
        return PROXY_MORE;
    h->version = 2;
    h->len = 16 + body;
    int family = p[13] >> 4, transport = p[13] & 0x0f;
    if ((p[12] & 0x0f) == V2_LOCAL || family == FAM_UNSPEC) {
        /* Addresses, if any, are to be ignored: the connection's own are
         * the ones to use. */
        h->local = 1;
        return PROXY_OK;
    }
    if (transport != TR_STREAM)
        return bad(why, "PROXY v2: the transport is not a stream (TCP)");
    size_t addrs = family == FAM_INET    ? V2_INET_LEN
                   : family == FAM_INET6 ? V2_INET6_LEN
                                         : V2_UNIX_LEN;
    if (body < addrs)
        return bad(why, "PROXY v2: shorter than its addresses");
    if (!v2_tlvs_fit(p + 16 + addrs, body - addrs))
        return bad(why, "PROXY v2: TLVs do not fill the header exactly");
    if (family == FAM_UNIX) {
        h->local = 1; /* a path is no address for REMOTE_ADDR */
        return PROXY_OK;
    }
    const uint8_t *a = p + 16;
    size_t alen = family == FAM_INET ? 4 : 16;
    h->local = 0;
    h->family = family == FAM_INET ? AF_INET : AF_INET6;
    memcpy(h->src, a, alen);
    memcpy(h->dst, a + alen, alen);
    h->src_port = (uint16_t)(a[2 * alen] << 8 | a[2 * alen + 1]);
    h->dst_port = (uint16_t)(a[2 * alen + 2] << 8 | a[2 * alen + 3]);
    return PROXY_OK;
}

enum proxy_verdict proxy_parse(const void *data, size_t n, struct proxy_header *h, const char **why)
{
    const uint8_t *p = data;
    memset(h, 0, sizeof(*h));
    *why = NULL;
    if (n == 0)
        return PROXY_MORE;
    /* The two signatures differ in their first byte: as soon as what is
     * there matches neither, it is no header (an HTTP request sent to a
     * port that expects one fails here at once). */
    if (memcmp(p, v1_sig, min_size(n, sizeof(v1_sig))) == 0)
        return n < sizeof(v1_sig) ? PROXY_MORE : v1(data, n, h, why);
    if (memcmp(p, v2_sig, min_size(n, sizeof(v2_sig))) == 0)
        return n < sizeof(v2_sig) ? PROXY_MORE : v2(p, n, h, why);
    return bad(why, "not a PROXY protocol header");
}

size_t proxy_encode(const struct proxy_header *h, uint8_t out[PROXY_ENCODED_MAX])
{
    memcpy(out, v2_sig, sizeof(v2_sig));
    if (h->local || (h->family != AF_INET && h->family != AF_INET6)) {
        out[12] = 0x20 | V2_LOCAL;
        out[13] = 0;
        out[14] = out[15] = 0;
        return 16;
    }
    size_t alen = h->family == AF_INET ? 4 : 16;
    size_t body = 2 * alen + 4;
    out[12] = 0x20 | V2_PROXY;
    out[13] = (uint8_t)((h->family == AF_INET ? FAM_INET : FAM_INET6) << 4 | TR_STREAM);
    out[14] = 0;
    out[15] = (uint8_t)body;
    uint8_t *a = out + 16;
    memcpy(a, h->src, alen);
    memcpy(a + alen, h->dst, alen);
    a[2 * alen] = (uint8_t)(h->src_port >> 8);
    a[2 * alen + 1] = (uint8_t)h->src_port;
    a[2 * alen + 2] = (uint8_t)(h->dst_port >> 8);
    a[2 * alen + 3] = (uint8_t)h->dst_port;
    return 16 + body;
}
