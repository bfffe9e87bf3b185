/* Trusted-peer lists; see include/hugd/addrmatch.h. */
#include "hugd/addrmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void addr16_from_v4(struct addr16 *a, const void *in4)
{
    memcpy(a->b, v4_mapped_prefix, 12);
    memcpy(a->b + 12, in4, 4);
}

void addr16_from_v6(struct addr16 *a, const void *in6)
{
    memcpy(a->b, in6, 16);
}

int addr16_parse(const char *s, size_t n, struct addr16 *a, int *v4)
{
    char text[ADDR_TEXT_MAX];
    if (n == 0 || n >= sizeof(text) || memchr(s, '\0', n))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    /* inet_pton takes IPv4 in dotted decimal only (no "0x7f.1", no
     * "127.1"), which is all an address in a header or a list may be. */
    uint8_t raw[16];
    if (inet_pton(AF_INET, text, raw) == 1) {
        addr16_from_v4(a, raw);
        *v4 = 1;
        return 0;
    }
    if (inet_pton(AF_INET6, text, raw) == 1) {
        addr16_from_v6(a, raw);
        *v4 = 0;
        return 0;
    }
    return -1;
}

void addr16_text(const struct addr16 *a, int v4, char out[ADDR_TEXT_MAX])
{
    if (v4 && memcmp(a->b, v4_mapped_prefix, 12) == 0)
        inet_ntop(AF_INET, a->b + 12, out, ADDR_TEXT_MAX);
    else
        inet_ntop(AF_INET6, a->b, out, ADDR_TEXT_MAX);
}

static void clear_host_bits(struct addr16 *a, unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        if (bits >= 8 * (i + 1))
            continue;
        unsigned keep = bits > 8 * i ? bits - 8 * i : 0;
        a->b[i] &= (uint8_t)(0xff00u >> keep);
    }
}

/* One item: an address, or an address and a prefix length. */
static int parse_item(const char *s, size_t n, struct addrmatch_net *net, char *err, size_t len)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    int v4;
    if (addr16_parse(s, alen, &net->addr, &v4) < 0) {
        snprintf(err, len, "'%.*s' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)", (int)n,
                 s);
        return -1;
    }
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        const char *d = slash + 1, *end = s + n;
        if (d == end || end - d > 3)
            goto bad_bits;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                goto bad_bits;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max || (slash[1] == '0' && n - alen > 2))
            goto bad_bits;
    }
    /* A range written from one of its addresses (192.168.1.7/24) means
     * the range. */
    net->bits = (uint8_t)(v4 ? bits + 96 : bits);
    clear_host_bits(&net->addr, net->bits);
    return 0;
bad_bits:
    snprintf(err, len, "'%.*s': the prefix length must be 0..%u", (int)n, s, max);
    return -1;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

int addrmatch_parse(struct addrmatch *m, const char *list, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    size_t items = 1;
    for (const char *p = list; *p; p++)
        items += *p == ',';
    m->nets = calloc(items, sizeof(*m->nets));
    if (!m->nets) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ","), skip = n + (p[n] == ',');
        const char *s = p;
        while (n && is_blank(*s))
            s++, n--;
        while (n && is_blank(s[n - 1]))
            n--;
        p += skip;
        if (n == 0)
            continue;
        if (n == 1 && *s == '*') {
            m->any = 1;
            continue;
        }
        if (parse_item(s, n, &m->nets[m->n], err, errlen) < 0) {
            addrmatch_free(m);
            return -1;
        }
        m->n++;
    }
    return 0;
}

void addrmatch_free(struct addrmatch *m)
{
    free(m->nets);
    memset(m, 0, sizeof(*m));
}

static int in_net(const struct addrmatch_net *net, const struct addr16 *a)
{
    unsigned bits = net->bits, whole = bits / 8;
    if (memcmp(net->addr.b, a->b, whole) != 0)
        return 0;
    if (bits % 8 == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff00u >> (bits % 8));
    return (a->b[whole] & mask) == net->addr.b[whole];
}

int addrmatch_has(const struct addrmatch *m, const struct addr16 *a)
{
    if (m->any)
        return 1;
    for (int i = 0; i < m->n; i++)
        if (in_net(&m->nets[i], a))
            return 1;
    return 0;
}

int addrmatch_peer(const struct addrmatch *m, const struct sockaddr *sa)
{
    struct addr16 a;
    switch (sa->sa_family) {
    case AF_UNIX:
        return m->any || m->n > 0;
    case AF_INET:
        addr16_from_v4(&a, &((const struct sockaddr_in *)sa)->sin_addr);
        return addrmatch_has(m, &a);
    case AF_INET6:
        addr16_from_v6(&a, &((const struct sockaddr_in6 *)sa)->sin6_addr);
        return addrmatch_has(m, &a);
    default:
        return m->any;
    }
}
