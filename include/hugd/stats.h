/* What the master's stats endpoint reports (master_stats.c), as plain data:
 * a snapshot the master fills from its tables and the scoreboard, and the
 * two renderings of it, JSON (/stats) and the Prometheus text exposition
 * format 0.0.4 (/metrics).  The renderers are pure functions of the
 * snapshot, tested without processes (tests/unit/test_stats_format.c). */
#ifndef HUGD_STATS_H
#define HUGD_STATS_H

#include <stdint.h>

#include "hugd/buf.h"

/* Request-duration histogram: upper bounds in seconds, the last bucket is
 * +Inf.  Fixed, so that a worker files a request with a few compares. */
#define STATS_NBUCKETS 12
extern const double stats_bucket_le[STATS_NBUCKETS - 1];

/* Responses by status class: 1xx .. 5xx. */
#define STATS_NCLASSES 5

/* Why a worker was replaced. */
enum stats_reason {
    STATS_EXIT,         /* exited on its own, unasked */
    STATS_SIGNAL,       /* killed by a signal nobody in hugd sent */
    STATS_TIMEOUT,      /* a request ran past timeout */
    STATS_MAX_REQUESTS, /* served max_requests */
    STATS_SCALE_DOWN,   /* retired by the scaler */
    STATS_MEMORY,       /* passed max_worker_memory */
    STATS_NREASONS
};
extern const char *const stats_reason_names[STATS_NREASONS];

/* Worker states as reported (the scoreboard's, by name). */
enum stats_state {
    STATS_STARTING,
    STATS_IDLE,
    STATS_BUSY,
    STATS_QUEUED,
    STATS_DRAINING,
    STATS_NSTATES
};
extern const char *const stats_state_names[STATS_NSTATES];

struct stats_worker {
    int slot;
    long pid;
    enum stats_state state;
    uint64_t requests;
    uint64_t conns;            /* connections it holds */
    char request[128];         /* "GET /path" in the application, or "" */
    double request_age;        /* seconds in it */
    long long rss, uss;        /* bytes; -1 unknown */
    double started;            /* unix time */
    double resp_avg, resp_max; /* seconds */
};

struct stats_listener {
    const char *bind;
    int has_queue; /* a TCP listener: the kernel reports its accept queue */
    unsigned queue, backlog;
};

struct stats_snapshot {
    long pid;
    const char *version;
    double uptime;       /* seconds */
    uint64_t generation; /* reloads (HUP) since this master started */
    int target, min_workers, max_workers;
    int queued, queued_max, queue_cap; /* connections held in the master's queue */
    uint64_t accepted;
    uint64_t by_class[STATS_NCLASSES];
    uint64_t restarts[STATS_NREASONS];
    uint64_t scale_up, scale_down;
    uint64_t hist[STATS_NBUCKETS]; /* per bucket, not cumulative */
    double duration_sum;           /* seconds */
    const struct stats_listener *ls;
    int nls;
    const struct stats_worker *w;
    int nw;
};

/* The bucket a request of `seconds` falls in. */
static inline int stats_bucket(double seconds)
{
    int i = 0;
    while (i < STATS_NBUCKETS - 1 && seconds > stats_bucket_le[i])
        i++;
    return i;
}

/* Append the rendering to out. */
void stats_json(const struct stats_snapshot *s, struct buf *out);
void stats_prometheus(const struct stats_snapshot *s, struct buf *out);

#endif
