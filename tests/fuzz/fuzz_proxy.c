/* libFuzzer harness for the PROXY protocol header (src/proxy_proto.c) and
 * the other readers of who a client is: the forwarded headers
 * (src/forwarded.c) and the trusted-address lists (src/addrmatch.c).
 *
 * Each input is the first bytes of a connection (any seed is a header,
 * valid or not, perhaps followed by a request) and is checked for:
 *
 *   - prefixes: conn.c parses the header again each time more of it has
 *     come, so the verdict on every prefix must agree with the whole: a
 *     header found in the whole is "more" on every shorter prefix and the
 *     same header on every longer one; a refusal, once given, stays;
 *   - bounds: a header is no longer than the input, than 107 bytes in
 *     version 1, than 16 + 65535 in version 2;
 *   - the carry: proxy_encode's header (what a moving connection takes
 *     along) reads back as the same client;
 *   - the same bytes as the value of an X-Forwarded-For, an
 *     X-Forwarded-Proto and a Forwarded field, and as an address list:
 *     whatever address is believed prints and reads back as itself, and a
 *     list that parses holds only valid prefix lengths.
 *
 * See tests/fuzz/README.md for how to build and run it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hugd/addrmatch.h"
#include "hugd/forwarded.h"
#include "hugd/proxy_proto.h"

/* Prefix lengths checked one by one; beyond, a sample. */
#define PREFIX_ALL 512

static struct addrmatch trusted;

static int same(const struct proxy_header *a, const struct proxy_header *b)
{
    if (a->version != b->version || a->local != b->local || a->len != b->len)
        return 0;
    if (a->local)
        return 1;
    return a->family == b->family && !memcmp(a->src, b->src, 16) && !memcmp(a->dst, b->dst, 16) &&
           a->src_port == b->src_port && a->dst_port == b->dst_port;
}

static int verdict(const uint8_t *d, size_t n, struct proxy_header *h)
{
    const char *why = NULL;
    int v = proxy_parse(d, n, h, &why);
    if (v < PROXY_BAD || v > PROXY_OK || (v == PROXY_BAD && (!why || !*why)))
        abort();
    return v;
}

/* The verdict on the first i bytes, checked against the whole's.  last:
 * the verdict on a shorter prefix (PROXY_MORE if none). */
static int check_prefix(const uint8_t *d, size_t i, int whole, const struct proxy_header *h,
                        int last)
{
    struct proxy_header p;
    int v = verdict(d, i, &p);
    if (whole == PROXY_OK) {
        if (i < h->len ? v != PROXY_MORE : v != PROXY_OK || !same(&p, h))
            abort();
    } else if (v == PROXY_OK || (whole == PROXY_MORE && v != PROXY_MORE) ||
               (last == PROXY_BAD && v != PROXY_BAD)) {
        abort(); /* a refusal stays one; nothing is decided before the whole is */
    }
    return v;
}

static void check_header(const uint8_t *d, size_t n)
{
    struct proxy_header h;
    int whole = verdict(d, n, &h);
    if (whole == PROXY_OK) {
        if (h.len == 0 || h.len > n || (h.version == 1 && h.len > PROXY_V1_MAX) ||
            (h.version == 2 && h.len > PROXY_V2_MAX) || (h.version != 1 && h.version != 2))
            abort();
        if (!h.local && h.family != AF_INET && h.family != AF_INET6)
            abort();
        uint8_t out[PROXY_ENCODED_MAX];
        size_t len = proxy_encode(&h, out);
        struct proxy_header back;
        if (len > PROXY_ENCODED_MAX || verdict(out, len, &back) != PROXY_OK || back.len != len ||
            back.local != h.local)
            abort();
        size_t alen = h.family == AF_INET ? 4 : 16;
        if (!h.local && (back.family != h.family || memcmp(back.src, h.src, alen) ||
                         back.src_port != h.src_port))
            abort();
    }
    size_t all = n < PREFIX_ALL ? n : PREFIX_ALL;
    int last = PROXY_MORE;
    for (size_t i = 0; i < all; i++)
        last = check_prefix(d, i, whole, &h, last);
    /* Past that, a sample, and around the header's end. */
    for (size_t i = all; i < n; i += 1 + (n - all) / 16)
        last = check_prefix(d, i, whole, &h, last);
    if (whole == PROXY_OK)
        for (size_t i = h.len > 2 ? h.len - 2 : 0; i <= h.len + 2 && i <= n; i++)
            check_prefix(d, i, whole, &h, PROXY_MORE);
    /* A refusal stays a refusal with more bytes after it. */
    if (whole == PROXY_BAD) {
        uint8_t *more = malloc(n + 64);
        memcpy(more, d, n);
        memset(more + n, '\n', 64);
        struct proxy_header p;
        if (verdict(more, n + 64, &p) != PROXY_BAD)
            abort();
        free(more);
    }
}

static void check_field(const char *name, const uint8_t *d, size_t n)
{
    struct http_request r;
    memset(&r, 0, sizeof(r));
    struct http_header hd[2];
    r.hdrs = hd;
    r.hcap = 2;
    /* The field twice: several fields of a name are one list. */
    buf_append_str(&r.arena, name);
    buf_append(&r.arena, d, n);
    for (int i = 0; i < 2; i++) {
        hd[i].name = 0;
        hd[i].name_len = (uint32_t)strlen(name);
        hd[i].value = hd[i].name_len;
        hd[i].value_len = (uint32_t)n;
    }
    r.nhdrs = n % 2 ? 2 : 1;
    struct fwd_result res;
    forwarded_resolve(&r, &trusted, &res);
    if (res.scheme < FWD_SCHEME_NONE || res.scheme > FWD_SCHEME_HTTPS || res.port < -1 ||
        res.port > 65535)
        abort();
    if (res.has_addr) {
        char text[ADDR_TEXT_MAX];
        struct addr16 back;
        int v4;
        addr16_text(&res.addr, res.v4, text);
        if (addr16_parse(text, strlen(text), &back, &v4) < 0 || memcmp(&back, &res.addr, 16) ||
            v4 != res.v4)
            abort();
    }
    buf_free(&r.arena);
}

static void check_list(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, d, n);
    s[n] = '\0';
    struct addrmatch m;
    char err[256];
    if (addrmatch_parse(&m, s, err, sizeof(err)) == 0) {
        for (int i = 0; i < m.n; i++)
            if (m.nets[i].bits > 128 || !addrmatch_has(&m, &m.nets[i].addr))
                abort();
        addrmatch_free(&m);
    } else if (!err[0] || m.n || m.any || m.nets) {
        abort();
    }
    free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    if (addrmatch_parse(&trusted, "127.0.0.1,::1,10.0.0.0/8,2001:db8::/32", err, sizeof(err)) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_header(data, size);
    check_field("X-Forwarded-For", data, size);
    check_field("X-Forwarded-Proto", data, size);
    check_field("Forwarded", data, size);
    check_list(data, size);
    return 0;
}
