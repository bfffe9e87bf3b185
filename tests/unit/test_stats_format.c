/* The stats renderings (stats.h) from a snapshot made by hand: JSON that
 * escapes what a client sent, and Prometheus text with cumulative buckets. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "hugd/stats.h"

static int has(const struct buf *b, const char *s)
{
    /* The buffer is not NUL-terminated: search a copy that is. */
    static char tmp[16384];
    size_t n = b->len < sizeof(tmp) - 1 ? b->len : sizeof(tmp) - 1;
    memcpy(tmp, b->p, n);
    tmp[n] = '\0';
    return strstr(tmp, s) != NULL;
}

static struct stats_snapshot sample(struct stats_worker *w, struct stats_listener *l)
{
    memset(w, 0, 2 * sizeof(*w));
    w[0] = (struct stats_worker){.slot = 0,
                                 .pid = 101,
                                 .state = STATS_BUSY,
                                 .requests = 7,
                                 .conns = 2,
                                 .request_age = 1.5,
                                 .rss = 4096,
                                 .uss = 1024,
                                 .started = 1000.25,
                                 .resp_avg = 0.002,
                                 .resp_max = 0.5};
    snprintf(w[0].request, sizeof(w[0].request), "GET /a\"b\\c\x01\xe9");
    w[1] = (struct stats_worker){.slot = 3, .pid = 102, .state = STATS_IDLE, .rss = -1, .uss = -1};
    l[0] = (struct stats_listener){
        .bind = "127.0.0.1:8000", .has_queue = 1, .queue = 3, .backlog = 2048};
    l[1] = (struct stats_listener){.bind = "unix:/tmp/\"x"};
    struct stats_snapshot s = {.pid = 100,
                               .version = "9.9",
                               .uptime = 12.5,
                               .generation = 2,
                               .target = 2,
                               .min_workers = 1,
                               .max_workers = 4,
                               .queued = 1,
                               .queued_max = 5,
                               .queue_cap = 1024,
                               .accepted = 40,
                               .duration_sum = 1.25,
                               .ls = l,
                               .nls = 2,
                               .w = w,
                               .nw = 2};
    s.by_class[1] = 10;
    s.by_class[3] = 2;
    s.restarts[STATS_SIGNAL] = 1;
    s.hist[0] = 8;
    s.hist[7] = 3;
    s.hist[STATS_NBUCKETS - 1] = 1;
    return s;
}

/* Each of want[] must be in the rendering (wanted = 1) or not (0). */
static void expect(const struct buf *b, const char *const *want, int wanted)
{
    for (; *want; want++)
        CHECK_INT(has(b, *want), wanted);
}

static void test_json(void)
{
    static const char *const want[] = {
        "{\"master\":{\"pid\":100,\"version\":\"9.9\",\"uptime\":12.500,\"generation\":2,"
        "\"workers\":{\"target\":2,\"min\":1,\"max\":4},"
        "\"queue\":{\"now\":1,\"max\":5,\"capacity\":1024}",
        "{\"bind\":\"127.0.0.1:8000\",\"accept_queue\":3,\"backlog\":2048}",
        "{\"bind\":\"unix:/tmp/\\\"x\",\"accept_queue\":null,\"backlog\":null}",
        "\"totals\":{\"accepted\":40,\"requests\":12,\"status\":{\"1xx\":0,"
        "\"2xx\":10,\"3xx\":0,\"4xx\":2,\"5xx\":0}",
        "\"restarts\":{\"exit\":0,\"signal\":1,\"timeout\":0,\"max_requests\":0,"
        "\"scale_down\":0,\"memory\":0}",
        /* What a client sent, escaped: quote, backslash, control, Latin-1. */
        "\"request\":{\"line\":\"GET /a\\\"b\\\\c\\u0001\\u00e9\",\"age\":1.500}",
        "{\"id\":3,\"pid\":102,\"state\":\"idle\",\"requests\":0,\"connections\":0,"
        "\"request\":null,\"rss\":null,\"uss\":null",
        NULL};
    struct stats_worker w[2];
    struct stats_listener l[2];
    struct stats_snapshot s = sample(w, l);
    struct buf b = {0};
    stats_json(&s, &b);
    expect(&b, want, 1);
    CHECK_INT(b.len > 0 && b.p[b.len - 1] == '\n', 1);
    buf_free(&b);
}

static void test_prometheus(void)
{
    static const char *const want[] = {
        "# HELP hugd_requests_total ", "# TYPE hugd_requests_total counter\n",
        "hugd_requests_total{class=\"2xx\"} 10\n",
        "hugd_workers{state=\"busy\"} 1\nhugd_workers{state=\"queued\"} 0\n",
        "hugd_listen_queue{listener=\"127.0.0.1:8000\"} 3\n",
        "hugd_listen_backlog{listener=\"127.0.0.1:8000\"} 2048\n",
        "hugd_worker_restarts_total{reason=\"signal\"} 1\n",
        "hugd_scale_events_total{direction=\"down\"} 0\n",
        /* Cumulative buckets, +Inf last, the count equal to it. */
        "hugd_request_duration_seconds_bucket{le=\"0.005\"} 8\n"
        "hugd_request_duration_seconds_bucket{le=\"0.01\"} 8\n",
        "hugd_request_duration_seconds_bucket{le=\"1\"} 11\n",
        "hugd_request_duration_seconds_bucket{le=\"+Inf\"} 12\n"
        "hugd_request_duration_seconds_sum 1.250000\n"
        "hugd_request_duration_seconds_count 12\n",
        NULL};
    static const char *const unwanted[] = {"unix:/tmp", NULL}; /* no accept queue figure */
    struct stats_worker w[2];
    struct stats_listener l[2];
    struct stats_snapshot s = sample(w, l);
    struct buf b = {0};
    stats_prometheus(&s, &b);
    expect(&b, want, 1);
    expect(&b, unwanted, 0);
    buf_free(&b);
}

static void test_buckets(void)
{
    CHECK_INT(stats_bucket(0), 0);
    CHECK_INT(stats_bucket(0.005), 0); /* le: an upper bound is inside its bucket */
    CHECK_INT(stats_bucket(0.0051), 1);
    CHECK_INT(stats_bucket(1), 7);
    CHECK_INT(stats_bucket(10), 10);
    CHECK_INT(stats_bucket(10.5), STATS_NBUCKETS - 1);
    CHECK_INT(stats_bucket(-1), 0);
}

int main(void)
{
    test_json();
    test_prometheus();
    test_buckets();
    return CHECK_DONE();
}
