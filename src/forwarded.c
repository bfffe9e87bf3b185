/* Forwarded headers; see include/hugd/forwarded.h. */
#include "hugd/forwarded.h"

#include <string.h>

#include "hugd/ascii.h"

/* One hop of a list: what a proxy said the connection came from. */
struct hop {
    int ok; /* an IP address (else garbage, "unknown", an obfuscated name, nothing) */
    struct addr16 addr;
    int v4;
    int port;   /* -1: none */
    int scheme; /* Forwarded's proto= of the same element */
};

/* The right-most untrusted hop in one left-to-right pass: everything to
 * the right of the last untrusted one is trusted, by definition. */
struct walk {
    const struct addrmatch *trusted;
    int seen;
    struct hop first;
    int untrusted;
    struct hop last_untrusted;
};

static void take(struct walk *w, const struct hop *h)
{
    if (!w->seen) {
        w->first = *h;
        w->seen = 1;
    }
    if (!h->ok || !addrmatch_has(w->trusted, &h->addr)) {
        w->last_untrusted = *h;
        w->untrusted = 1;
    }
}

static const struct hop *chosen(const struct walk *w)
{
    if (!w->seen)
        return NULL;
    return w->untrusted ? &w->last_untrusted : &w->first;
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80";
 * a port may be obfuscated ("_abc", RFC 7239 6.3), and is then none. */
static void parse_node(const char *s, size_t n, struct hop *h)
{
    const char *port = NULL;
    size_t plen = 0;
    h->ok = 0;
    h->port = -1;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return;
        size_t rest = n - (size_t)(rb - s) - 1;
        if (rest && rb[1] != ':')
            return;
        if (rest) {
            port = rb + 2;
            plen = rest - 1;
        }
        if (addr16_parse(s + 1, (size_t)(rb - s) - 1, &h->addr, &h->v4) < 0 || h->v4)
            return;
    } else {
        const char *colon = memchr(s, ':', n);
        size_t alen = n;
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
            alen = (size_t)(colon - s); /* one colon: IPv4 and a port */
            port = colon + 1;
            plen = n - alen - 1;
        }
        if (addr16_parse(s, alen, &h->addr, &h->v4) < 0 || (port && !h->v4))
            return;
    }
    if (port && !(plen >= 2 && port[0] == '_')) { /* "_..." is obfuscated: no port */
        unsigned v = 0;
        if (plen == 0 || plen > 5)
            return;
        for (size_t i = 0; i < plen; i++) {
            if (!ascii_is_digit((unsigned char)port[i]))
                return;
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v > 65535)
            return;
        h->port = (int)v;
    }
    h->ok = 1;
}

static int scheme_of(const char *s, size_t n)
{
    if (n == 4 && ascii_case_eq(s, "http", 4))
        return FWD_SCHEME_HTTP;
    if (n == 5 && ascii_case_eq(s, "https", 5))
        return FWD_SCHEME_HTTPS;
    return FWD_SCHEME_NONE;
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_ows(**s))
        (*s)++, (*n)--;
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* X-Forwarded-For: addresses separated by commas. */
static void walk_xff(struct walk *w, const char *v, size_t n)
{
    while (n) {
        const char *comma = memchr(v, ',', n);
        size_t len = comma ? (size_t)(comma - v) : n;
        const char *e = v;
        size_t elen = len;
        trim(&e, &elen);
        if (elen) { /* empty list elements don't count (RFC 9110 5.6.1) */
            struct hop h = {.scheme = FWD_SCHEME_NONE};
            parse_node(e, elen, &h);
            take(w, &h);
        }
        if (!comma)
            break;
        v += len + 1;
        n -= len + 1;
    }
}

enum { P_FOR = 1, P_PROTO = 2, P_BY = 4, P_HOST = 8 };

/* Forwarded (RFC 7239 4): elements separated by commas, each pairs
 * separated by semicolons, each pair token=token or token="quoted".
 * Blanks around the separators are allowed.  Returns -1 at a syntax error
 * (or a parameter given twice in one element): the whole field is then not
 * believed, since where its elements begin is unknown. */
static int walk_forwarded(struct walk *w, const char *v, size_t n)
{
    struct hop h = {.port = -1};
    unsigned seen = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n || v[i] == ',') {
            if (seen)
                take(w, &h); /* an element without for= is an untrusted hop */
            memset(&h, 0, sizeof(h));
            h.port = -1;
            seen = 0;
            if (i == n)
                return 0;
            i++;
            continue;
        }
        if (v[i] == ';') {
            i++;
            continue;
        }
        size_t k = i;
        while (i < n && ascii_is_tchar((unsigned char)v[i]))
            i++;
        size_t klen = i - k;
        if (klen == 0 || i == n || v[i] != '=')
            return -1;
        i++;
        /* The value, unquoted into val (a longer one is no address). */
        char val[64];
        size_t vlen = 0, total = 0;
        if (i < n && v[i] == '"') {
            for (i++;; i++) {
                if (i == n)
                    return -1;
                unsigned char ch = (unsigned char)v[i];
                if (ch == '"')
                    break;
                if (ch == '\\' && ++i == n)
                    return -1;
                ch = (unsigned char)v[i];
                if (ch == 0x7f || (ch < 0x20 && ch != '\t'))
                    return -1;
                if (vlen < sizeof(val))
                    val[vlen++] = (char)ch;
                total++;
            }
            i++;
        } else {
            for (; i < n && ascii_is_tchar((unsigned char)v[i]); i++, total++)
                if (vlen < sizeof(val))
                    val[vlen++] = v[i];
            if (total == 0)
                return -1;
        }
        while (i < n && is_ows(v[i]))
            i++;
        if (i < n && v[i] != ';' && v[i] != ',')
            return -1;
        unsigned p = klen == 3 && ascii_case_eq(v + k, "for", 3)     ? P_FOR
                     : klen == 5 && ascii_case_eq(v + k, "proto", 5) ? P_PROTO
                     : klen == 2 && ascii_case_eq(v + k, "by", 2)    ? P_BY
                     : klen == 4 && ascii_case_eq(v + k, "host", 4)  ? P_HOST
                                                                     : 0;
        if (p & seen)
            return -1;
        seen |= p ? p : 0x100; /* an extension parameter still makes an element */
        if (p == P_FOR && total == vlen)
            parse_node(val, vlen, &h);
        else if (p == P_PROTO && total == vlen)
            h.scheme = scheme_of(val, vlen);
    }
}

/* The right-most element of an X-Forwarded-Proto list. */
static void last_element(const char *v, size_t n, const char **e, size_t *elen)
{
    for (;;) {
        const char *comma = memrchr(v, ',', n);
        *e = comma ? comma + 1 : v;
        *elen = n - (size_t)(*e - v);
        trim(e, elen);
        if (*elen || !comma)
            return;
        n = (size_t)(comma - v);
    }
}

static int named(const struct http_request *r, const struct http_header *h, const char *name,
                 size_t len)
{
    return h->name_len == len && ascii_case_eq(r->arena.p + h->name, name, len);
}

void forwarded_resolve(const struct http_request *r, const struct addrmatch *trusted,
                       struct fwd_result *out)
{
    struct walk xff = {.trusted = trusted}, fwd = {.trusted = trusted};
    int has_xff = 0, has_xfp = 0, fwd_bad = 0;
    const char *proto = NULL;
    size_t proto_len = 0;
    memset(out, 0, sizeof(*out));
    out->port = -1;
    for (int i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        const char *v = r->arena.p + h->value;
        if (named(r, h, "x-forwarded-for", 15)) {
            has_xff = 1;
            walk_xff(&xff, v, h->value_len);
        } else if (named(r, h, "x-forwarded-proto", 17)) {
            const char *e;
            size_t elen;
            has_xfp = 1;
            last_element(v, h->value_len, &e, &elen);
            if (elen || !proto)
                proto = e, proto_len = elen;
        } else if (named(r, h, "forwarded", 9) && !fwd_bad) {
            fwd_bad = walk_forwarded(&fwd, v, h->value_len) < 0;
        }
    }
    const struct hop *c;
    if (has_xff || has_xfp) {
        c = chosen(&xff);
        if (proto)
            out->scheme = scheme_of(proto, proto_len);
    } else {
        c = fwd_bad ? NULL : chosen(&fwd);
        if (c)
            out->scheme = c->scheme;
    }
    if (c && c->ok) {
        out->has_addr = 1;
        out->addr = c->addr;
        out->v4 = c->v4;
        out->port = c->port;
    }
}
