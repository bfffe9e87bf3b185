/* libFuzzer harness for the master's reading of a health check
 * (src/health.c), against the worker's parser (src/http.c on llhttp).
 *
 * Each input is client bytes.  The master answers a request itself only
 * when health_match says it is a complete health check; it must then be
 * one the worker reads the same way:
 *   - the worker's parser takes exactly those head_len bytes as one
 *     complete request, with no error, a GET or HEAD whose target is the
 *     health path;
 *   - every shorter prefix of it is HEALTH_MORE (the master waits for the
 *     rest, never answers early or gives up on a prefix);
 *   - the answer health_response builds fits its buffer.
 * The health path is "/health", or, when the input's first byte is '!',
 * the path the input's first line spells (so the fuzzer tries odd ones).
 * See tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hugd/health.h"
#include "hugd/http.h"

/* What a connection gives the parser: its llhttp state, the request it
 * fills and the input it reads. */
struct reader {
    llhttp_t parser;
    struct http_request req;
    struct buf in;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const struct http_limits defaults = {8190, 100, 8190, 0, 1 << 20};
    http_set_limits(&defaults);
    return 0;
}

/* The worker's reading of the first head_len bytes: 1 if it agrees. */
static int worker_agrees(const char *buf, size_t head_len, const char *path, int head)
{
    struct reader *c = calloc(1, sizeof(*c));
    http_reader_init(&c->parser, &c->req);
    buf_append(&c->in, buf, head_len);
    enum http_feed_result r = http_feed(&c->parser, &c->in);
    const struct http_request *q = &c->req;
    int ok = r == FEED_REQUEST && c->in.off == head_len && q->complete &&
             q->method == (head ? HTTP_HEAD : HTTP_GET) &&
             health_target_is(q->arena.p + q->url, q->url_len, path);
    if (!ok)
        fprintf(stderr, "worker: result %d, %zu of %zu bytes, method %d, url %.*s\n", (int)r,
                c->in.off, head_len, q->method, (int)q->url_len, q->arena.p + q->url);
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256] = "/health";
    const char *buf = (const char *)data;
    if (size && data[0] == '!') {
        size_t n = 1;
        while (n < size && n < sizeof(path) && data[n] != '\n')
            n++;
        if (n - 1 < sizeof(path) && n > 1 && data[1] == '/') {
            memcpy(path, data + 1, n - 1);
            path[n - 1] = '\0';
            /* What the configuration accepts for health_path. */
            for (char *p = path; *p; p++)
                if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#' || *p == '%')
                    return 0;
        }
        buf += n < size ? n + 1 : size;
        size -= (size_t)(buf - (const char *)data);
    }
    size_t head = 0;
    enum health_match m = health_match(buf, size, path, &head);
    if (m == HEALTH_NO || m == HEALTH_MORE) {
        if (head != 0)
            abort();
        return 0;
    }
    if (head < 4 || head > size || head > HEALTH_MAX_HEAD || memcmp(buf + head - 4, "\r\n\r\n", 4))
        abort();
    if (!worker_agrees(buf, head, path, m == HEALTH_HEAD))
        abort();
    for (size_t k = 0; k < head; k += 1 + k / 8) {
        size_t h2;
        if (health_match(buf, k, path, &h2) != HEALTH_MORE) {
            fprintf(stderr, "prefix of %zu of %zu bytes is not HEALTH_MORE\n", k, head);
            abort();
        }
    }
    char out[HEALTH_RESPONSE_MAX];
    size_t blen;
    const char date[] = "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n";
    size_t n = health_response(out, HEALTH_NO_WORKER, 0, 1, date, sizeof(date) - 1, &blen);
    if (n == 0 || n >= sizeof(out) || memcmp(out + n - blen, "no worker\n", blen))
        abort();
    return 0;
}
