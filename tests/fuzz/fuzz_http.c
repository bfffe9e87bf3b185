/* libFuzzer harness for the HTTP request parser (src/http.c on llhttp).
 *
 * Every input is plain client bytes (so request files work as seeds) and is
 * run three times through a fresh connection, exactly as conn.c drives it
 * (buf_append into c->in, http_feed until NEED_MORE/ERROR, http_next after
 * every REQUEST, compaction of c->in between reads like read_some()):
 *
 *   A: all bytes in one read;
 *   B: two reads, split at a point chosen by the fuzzer;
 *   C: one byte per read (inputs up to 2 KiB).
 *
 * The last byte of the input also picks the limits profile (ctl & 3) and,
 * with the second-to-last, the split point, so the fuzzer controls both by
 * mutating the tail.  Every complete request's URL, headers (each looked up
 * by its own name through http_header, and some common names) and body are
 * read back so ASan checks every offset into the arena, and the three runs
 * must agree (a digest of every request, and whether it ended in an error):
 * a parser whose result depends on how the bytes were split is a bug too.
 * Which error status is answered may differ (a limit checked in a span
 * callback fires before llhttp sees a bad byte later in the same span when
 * the span arrives in pieces): both are 4xx and the connection closes.
 *
 * See tests/fuzz/README.md for how to build and run it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/http.h"

/* What a connection gives the parser: its llhttp state, the request it
 * fills and the input it reads. */
struct reader {
    llhttp_t parser;
    struct http_request req;
    struct buf in;
};

static volatile size_t sink;

static void touch(const char *p, size_t n)
{
    /* Read every byte: ASan checks each access. */
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (unsigned char)p[i];
    sink += s;
}

static void check_request(struct reader *c)
{
    struct http_request *r = &c->req;
    if (r->url_len) {
        if ((size_t)r->url + r->url_len > r->arena.len)
            abort();
        touch(r->arena.p + r->url, r->url_len);
    }
    if (r->nhdrs < 0 || r->nhdrs > r->hcap)
        abort();
    for (int i = 0; i < r->nhdrs; i++) {
        struct http_header *h = &r->hdrs[i];
        if ((size_t)h->name + h->name_len > r->arena.len)
            abort();
        if (h->value_len && (size_t)h->value + h->value_len > r->arena.len)
            abort();
        touch(r->arena.p + h->name, h->name_len);
        /* Look each header up by its own name, NUL-terminated copy. */
        char name[256];
        if (h->name_len < sizeof(name)) {
            memcpy(name, r->arena.p + h->name, h->name_len);
            name[h->name_len] = 0;
            size_t len = 0;
            const char *v = http_header(r, name, &len);
            if (!v)
                abort(); /* a header that is there must be found */
            touch(v, len);
        }
    }
    static const char *const common[] = {"host",
                                         "content-length",
                                         "transfer-encoding",
                                         "connection",
                                         "expect",
                                         "content-type",
                                         "x-forwarded-for",
                                         "user-agent",
                                         "referer",
                                         "upgrade",
                                         ""};
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        size_t len = 0;
        const char *v = http_header(r, common[i], &len);
        if (v)
            touch(v, len);
    }
    if (r->body_fd < 0)
        touch(r->body.p, r->body.len);
    if (r->has_length && r->body_fd < 0 && r->body.len != r->content_length)
        abort(); /* a complete request with Content-Length has all of it */
    (void)http_reason(r->error_status);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

struct outcome {
    uint64_t digest; /* over every complete request */
    int requests;
    int error_status; /* 0: ended wanting more input or closed cleanly */
};

static void record(struct reader *c, struct outcome *o)
{
    struct http_request *r = &c->req;
    uint64_t h = o->digest;
    uint32_t v[4] = {r->method, r->major, r->minor, (uint32_t)r->keepalive};
    h = fnv(h, v, sizeof(v));
    h = fnv(h, r->arena.p + r->url, r->url_len);
    for (int i = 0; i < r->nhdrs; i++) {
        struct http_header *hd = &r->hdrs[i];
        h = fnv(h, r->arena.p + hd->name, hd->name_len);
        h = fnv(h, ":", 1);
        if (hd->value_len)
            h = fnv(h, r->arena.p + hd->value, hd->value_len);
        h = fnv(h, "\n", 1);
    }
    h = fnv(h, &r->body_size, sizeof(r->body_size));
    h = fnv(h, &r->expect_continue, sizeof(r->expect_continue));
    o->digest = h;
}

/* Feed what is in c->in; returns 0 to go on, -1 once the connection would
 * be closed (error, or a request that ends it). */
static int drive(struct reader *c, struct outcome *o)
{
    while (c->in.off < c->in.len) {
        enum http_feed_result res = http_feed(&c->parser, &c->in);
        if (c->in.off > c->in.len)
            abort();
        if (res == FEED_ERROR) {
            int st = c->req.error_status;
            if (st < 400 || st > 599)
                abort();
            struct buf out = {0};
            http_error_response(&out, st, 0.0);
            buf_free(&out);
            o->error_status = st;
            return -1;
        }
        if (res == FEED_NEED_MORE)
            return 0;
        if (!c->req.complete || !c->req.head_done)
            abort();
        check_request(c);
        record(c, o);
        o->requests++;
        if (!c->req.keepalive || o->requests >= 200)
            return -1; /* conn.c closes after this response */
        http_next(&c->parser);
    }
    return 0;
}

static void compact(struct reader *c)
{
    /* What read_some() does before reading more. */
    if (c->in.off == c->in.len) {
        buf_clear(&c->in);
    } else if (c->in.off) {
        memmove(c->in.p, c->in.p + c->in.off, c->in.len - c->in.off);
        c->in.len -= c->in.off;
        c->in.off = 0;
    }
}

/* step 0: everything at once; otherwise the first read is `cut` bytes and
 * the rest comes `step` bytes at a time. */
static void run(const uint8_t *data, size_t size, size_t cut, size_t step, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->digest = 14695981039346656037ull;
    struct reader *c = calloc(1, sizeof(*c));
    http_reader_init(&c->parser, &c->req);
    if (step == 0) {
        buf_append(&c->in, data, size);
        drive(c, o);
    } else {
        int r = 0;
        if (cut) /* conn.c never appends nothing (buf_append(NULL, 0) is UB) */
            buf_append(&c->in, data, cut);
        r = drive(c, o);
        for (size_t i = cut; r == 0 && i < size; i += step) {
            compact(c);
            size_t n = size - i < step ? size - i : step;
            buf_append(&c->in, data + i, n);
            r = drive(c, o);
        }
    }
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Spooled bodies (the tiny profile) need a directory for O_TMPFILE. */
    if (!getenv("TMPDIR"))
        setenv("TMPDIR", "/tmp", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const struct http_limits profiles[4] = {
        {8190, 100, 8190, 0, 1 << 20}, /* the defaults */
        {64, 8, 64, 128, 16},          /* tiny: every limit reachable, spooling */
        {8190, 100, 8190, 1 << 20, 1 << 20},
        {1, 1, 1, 1, 0}, /* degenerate */
    };
    uint8_t ctl = data[size - 1];
    uint8_t ctl2 = size > 1 ? data[size - 2] : 0;
    http_set_limits(&profiles[ctl & 3]);
    size_t cut = (((size_t)(ctl >> 2) << 8) | ctl2) % (size + 1);

    struct outcome a, b, cc;
    run(data, size, 0, 0, &a);
    run(data, size, cut, size, &b);
    if (a.digest != b.digest || a.requests != b.requests || !a.error_status != !b.error_status) {
        fprintf(stderr, "split at %zu changed the result: %d req / %d vs %d req / %d\n", cut,
                a.requests, a.error_status, b.requests, b.error_status);
        abort();
    }
    if (size <= 2048) {
        run(data, size, 0, 1, &cc);
        if (a.digest != cc.digest || a.requests != cc.requests ||
            !a.error_status != !cc.error_status) {
            fprintf(stderr, "byte-at-a-time changed the result: %d req / %d vs %d req / %d\n",
                    a.requests, a.error_status, cc.requests, cc.error_status);
            abort();
        }
    }
    return 0;
}
