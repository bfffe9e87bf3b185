/* What finding the client costs a worker: forwarded_resolve on a request
 * of seven fields from a trusted peer, with and without X-Forwarded-For
 * (two hops) and X-Forwarded-Proto, and proxy_parse on a PROXY v1 header.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -I/usr/share/include/llhttp \
 *      tests/bench/client_cost.c -o /tmp/client_cost
 *   /tmp/client_cost [ITERATIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../src/addrmatch.c"
#include "../../src/buf.c"
#include "../../src/forwarded.c"
#include "../../src/proxy_proto.c"
#include "../unit/request_fields.h"

static struct http_request req;

static void add(const char *name, const char *value)
{
    request_add_field(&req, name, value);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static volatile int sink;

static double resolve_ns(const struct addrmatch *m, long n)
{
    struct fwd_result r;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        forwarded_resolve(&req, m, &r);
        sink += r.has_addr;
    }
    return (now() - t0) / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    struct addrmatch m;
    char err[128];
    if (n <= 0 || addrmatch_parse(&m, "127.0.0.1,::1", err, sizeof(err)) < 0)
        return 1;
    add("Host", "example.com");
    add("User-Agent", "curl/7.88.1");
    add("Accept", "*/*");
    add("Accept-Encoding", "gzip");
    add("Connection", "keep-alive");
    double plain = resolve_ns(&m, n);
    add("X-Forwarded-For", "198.51.100.6, 203.0.113.7");
    add("X-Forwarded-Proto", "https");
    double forwarded = resolve_ns(&m, n);
    static const char v1[] = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    struct proxy_header h;
    const char *why;
    double t0 = now();
    for (long i = 0; i < n; i++)
        sink += proxy_parse(v1, sizeof(v1) - 1, &h, &why);
    double proxy = (now() - t0) / (double)n * 1e9;
    printf("forwarded_resolve: %.0f ns without forwarded fields, %.0f ns with them; "
           "proxy_parse (v1 TCP4): %.0f ns\n",
           plain, forwarded, proxy);
    return 0;
}
