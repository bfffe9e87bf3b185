/* The stats snapshot as JSON and as Prometheus text (stats.h).  Pure: the
 * snapshot in, bytes appended to a buffer out. */
#include "hugd/stats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

const double stats_bucket_le[STATS_NBUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                    0.5,   1,    2.5,   5,    10};
const char *const stats_reason_names[STATS_NREASONS] = {"exit",         "signal",     "timeout",
                                                        "max_requests", "scale_down", "memory"};
const char *const stats_state_names[STATS_NSTATES] = {"starting", "idle", "busy", "queued",
                                                      "draining"};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= (b->p ? b->cap - b->len : 0)) {
        buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* A JSON string.  The bytes are whatever a client sent: anything outside
 * printable ASCII is escaped (as Latin-1), so the document is always valid. */
static void json_str(struct buf *b, const char *s)
{
    buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            put(b, "\\u%04x", *p);
        else
            buf_append(b, p, 1);
    }
    buf_append(b, "\"", 1);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void prom_label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(b, "\\%c", *s);
        else if (*s == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append(b, s, 1);
    }
}

static uint64_t hist_count(const struct stats_snapshot *s)
{
    uint64_t n = 0;
    for (int k = 0; k < STATS_NBUCKETS; k++)
        n += s->hist[k];
    return n;
}

static void json_worker(struct buf *b, const struct stats_worker *w)
{
    put(b,
        "{\"id\":%d,\"pid\":%ld,\"state\":\"%s\",\"requests\":%" PRIu64 ",\"connections\":%" PRIu64
        ",\"request\":",
        w->slot, w->pid, stats_state_names[w->state], w->requests, w->conns);
    if (w->request[0]) {
        buf_append_str(b, "{\"line\":");
        json_str(b, w->request);
        put(b, ",\"age\":%.3f}", w->request_age);
    } else {
        buf_append_str(b, "null");
    }
    if (w->rss >= 0)
        put(b, ",\"rss\":%lld,\"uss\":%lld", w->rss, w->uss);
    else
        buf_append_str(b, ",\"rss\":null,\"uss\":null");
    put(b, ",\"started_at\":%.3f,\"response_time_avg\":%.6f,\"response_time_max\":%.6f}",
        w->started, w->resp_avg, w->resp_max);
}

void stats_json(const struct stats_snapshot *s, struct buf *b)
{
    put(b, "{\"master\":{\"pid\":%ld,\"version\":", s->pid);
    json_str(b, s->version);
    put(b,
        ",\"uptime\":%.3f,\"generation\":%" PRIu64
        ",\"workers\":{\"target\":%d,\"min\":%d,\"max\":%d},"
        "\"queue\":{\"now\":%d,\"max\":%d,\"capacity\":%d},\"listeners\":[",
        s->uptime, s->generation, s->target, s->min_workers, s->max_workers, s->queued,
        s->queued_max, s->queue_cap);
    for (int i = 0; i < s->nls; i++) {
        buf_append_str(b, i ? ",{\"bind\":" : "{\"bind\":");
        json_str(b, s->ls[i].bind);
        if (s->ls[i].has_queue)
            put(b, ",\"accept_queue\":%u,\"backlog\":%u}", s->ls[i].queue, s->ls[i].backlog);
        else
            buf_append_str(b, ",\"accept_queue\":null,\"backlog\":null}");
    }
    put(b, "]},\"totals\":{\"accepted\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"status\":{",
        s->accepted, hist_count(s));
    for (int k = 0; k < STATS_NCLASSES; k++)
        put(b, "%s\"%dxx\":%" PRIu64, k ? "," : "", k + 1, s->by_class[k]);
    buf_append_str(b, "},\"restarts\":{");
    for (int k = 0; k < STATS_NREASONS; k++)
        put(b, "%s\"%s\":%" PRIu64, k ? "," : "", stats_reason_names[k], s->restarts[k]);
    put(b, "},\"scale_events\":{\"up\":%" PRIu64 ",\"down\":%" PRIu64 "}},\"workers\":[",
        s->scale_up, s->scale_down);
    for (int i = 0; i < s->nw; i++) {
        if (i)
            buf_append(b, ",", 1);
        json_worker(b, &s->w[i]);
    }
    buf_append_str(b, "]}\n");
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per TCP listener: its accept queue now, or its limit. */
static void prom_listeners(struct buf *b, const struct stats_snapshot *s, const char *name,
                           int backlog)
{
    for (int i = 0; i < s->nls; i++) {
        if (!s->ls[i].has_queue)
            continue;
        put(b, "%s{listener=\"", name);
        prom_label(b, s->ls[i].bind);
        put(b, "\"} %u\n", backlog ? s->ls[i].backlog : s->ls[i].queue);
    }
}

static void prom_histogram(struct buf *b, const struct stats_snapshot *s)
{
    family(b, "hugd_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response's last, by the worker's clock.");
    uint64_t cum = 0;
    for (int k = 0; k < STATS_NBUCKETS; k++) {
        cum += s->hist[k];
        if (k < STATS_NBUCKETS - 1)
            put(b, "hugd_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                stats_bucket_le[k], cum);
        else
            put(b, "hugd_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    put(b, "hugd_request_duration_seconds_sum %.6f\n", s->duration_sum);
    put(b, "hugd_request_duration_seconds_count %" PRIu64 "\n", cum);
}

void stats_prometheus(const struct stats_snapshot *s, struct buf *b)
{
    family(b, "hugd_uptime_seconds", "gauge", "Seconds since the master started.");
    put(b, "hugd_uptime_seconds %.3f\n", s->uptime);
    family(b, "hugd_reloads_total", "counter", "Reloads (HUP) applied since the master started.");
    put(b, "hugd_reloads_total %" PRIu64 "\n", s->generation);
    family(b, "hugd_workers_target", "gauge", "Worker processes wanted now.");
    put(b, "hugd_workers_target %d\n", s->target);
    family(b, "hugd_workers_min", "gauge", "Fewest worker processes the pool may have.");
    put(b, "hugd_workers_min %d\n", s->min_workers);
    family(b, "hugd_workers_max", "gauge", "Most worker processes the pool may have.");
    put(b, "hugd_workers_max %d\n", s->max_workers);
    int by_state[STATS_NSTATES] = {0};
    for (int i = 0; i < s->nw; i++)
        by_state[s->w[i].state]++;
    family(b, "hugd_workers", "gauge", "Worker processes by state.");
    for (int k = 0; k < STATS_NSTATES; k++)
        put(b, "hugd_workers{state=\"%s\"} %d\n", stats_state_names[k], by_state[k]);
    family(b, "hugd_queue_length", "gauge",
           "Connections held in the master's queue for a free worker.");
    put(b, "hugd_queue_length %d\n", s->queued);
    family(b, "hugd_queue_length_max", "gauge",
           "Most connections held in the master's queue at once.");
    put(b, "hugd_queue_length_max %d\n", s->queued_max);
    family(b, "hugd_listen_queue", "gauge",
           "Connections in a TCP listener's kernel accept queue, not yet accepted.");
    prom_listeners(b, s, "hugd_listen_queue", 0);
    family(b, "hugd_listen_backlog", "gauge", "A TCP listener's accept queue limit.");
    prom_listeners(b, s, "hugd_listen_backlog", 1);
    family(b, "hugd_connections_accepted_total", "counter", "Connections the master accepted.");
    put(b, "hugd_connections_accepted_total %" PRIu64 "\n", s->accepted);
    family(b, "hugd_requests_total", "counter", "Responses sent, by status class.");
    for (int k = 0; k < STATS_NCLASSES; k++)
        put(b, "hugd_requests_total{class=\"%dxx\"} %" PRIu64 "\n", k + 1, s->by_class[k]);
    family(b, "hugd_worker_restarts_total", "counter", "Workers replaced, by reason.");
    for (int k = 0; k < STATS_NREASONS; k++)
        put(b, "hugd_worker_restarts_total{reason=\"%s\"} %" PRIu64 "\n", stats_reason_names[k],
            s->restarts[k]);
    family(b, "hugd_scale_events_total", "counter", "Workers added or retired by the scaler.");
    put(b, "hugd_scale_events_total{direction=\"up\"} %" PRIu64 "\n", s->scale_up);
    put(b, "hugd_scale_events_total{direction=\"down\"} %" PRIu64 "\n", s->scale_down);
    prom_histogram(b, s);
}
