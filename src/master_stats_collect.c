/* The figures the stats endpoint reports (master_stats.c), gathered from the
 * master's tables, the scoreboard, the kernel (each TCP listener's accept
 * queue) and /proc (each worker's memory).  Counters of a worker's slot
 * start again at 0 when another worker takes the slot: what a worker
 * counted is added into the board's totals when it is reaped, and a total
 * reported is those plus what the live workers counted, so it never goes
 * down. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hugd/stats.h"
#include "master_int.h"

/* The pool's bounds: the configuration's, as TTIN and TTOU moved them. */
static void pool_bounds(struct master *m, int *min, int *max)
{
    *min = m->min_workers;
    *max = m->max_workers;
}

static void add_slot(struct sb_totals *t, const struct sb_slot *s)
{
    t->requests += atomic_load(&s->requests);
    for (int k = 0; k < STATS_NCLASSES; k++)
        t->by_class[k] += atomic_load(&s->by_class[k]);
    t->resp_us_sum += atomic_load(&s->resp_us_sum);
    for (int k = 0; k < STATS_NBUCKETS; k++)
        t->resp_hist[k] += atomic_load(&s->resp_hist[k]);
}

void stats_worker_gone(struct master *m, int i, int status)
{
    const struct wproc *wp = &m->w[i];
    struct sb_totals *t = &m->sb->totals;
    add_slot(t, &m->sb->slot[i]);
    /* A worker hugd retired on purpose (a reload, TTOU, a stop) was not
     * restarted; one the scaler retired counts as scale_down. */
    if (wp->aborted)
        t->restarts[STATS_TIMEOUT]++;
    else if (wp->recycled)
        t->restarts[wp->recycled - 1]++;
    else if (wp->retiring || wp->old_gen || master_leaving(m))
        return;
    else if (WIFSIGNALED(status))
        t->restarts[STATS_SIGNAL]++;
    else
        t->restarts[STATS_EXIT]++;
}

static enum stats_state state_of(int st)
{
    switch (st) {
    case SB_IDLE:
        return STATS_IDLE;
    case SB_BUSY:
        return STATS_BUSY;
    case SB_QUEUED:
        return STATS_QUEUED;
    case SB_DRAINING:
        return STATS_DRAINING;
    default:
        return STATS_STARTING;
    }
}

/* Rss, and Private_Clean + Private_Dirty (what the process alone holds),
 * from /proc/PID/smaps_rollup, in bytes; -1 when it cannot be read. */
static void memory_of(long pid, long long *rss, long long *uss)
{
    char path[64], line[256];
    *rss = *uss = -1;
    snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    long long r = -1, pc = 0, pd = 0, kb;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Rss: %lld kB", &kb) == 1)
            r = kb;
        else if (sscanf(line, "Private_Clean: %lld kB", &kb) == 1)
            pc = kb;
        else if (sscanf(line, "Private_Dirty: %lld kB", &kb) == 1)
            pd = kb;
    }
    fclose(f);
    if (r >= 0) {
        *rss = r * 1024;
        *uss = (pc + pd) * 1024;
    }
}

static void worker_of(struct master *m, struct stats_worker *w, int i, int64_t now_ms,
                      double now_unix)
{
    const struct sb_slot *s = &m->sb->slot[i];
    memset(w, 0, sizeof(*w));
    w->slot = i;
    w->pid = (long)m->w[i].pid;
    w->state = state_of(atomic_load(&s->state));
    w->requests = atomic_load(&s->requests);
    w->conns = sb_owned(s);
    int64_t since = atomic_load(&s->busy_since_ms);
    if (atomic_load(&s->state) == SB_BUSY && since > 0) {
        /* The worker may be writing it: a torn line is possible, an
         * unterminated one is not. */
        size_t n =
            sizeof(s->request) < sizeof(w->request) ? sizeof(s->request) : sizeof(w->request);
        memcpy(w->request, s->request, n);
        w->request[n - 1] = '\0';
        w->request_age = (double)(now_ms - since) / 1000.0;
        if (w->request_age < 0)
            w->request_age = 0;
    }
    memory_of(w->pid, &w->rss, &w->uss);
    w->started = now_unix - (double)(now_ms - s->spawned_ms) / 1000.0;
    uint64_t n = 0;
    for (int k = 0; k < STATS_NBUCKETS; k++)
        n += atomic_load(&s->resp_hist[k]);
    if (n)
        w->resp_avg = (double)atomic_load(&s->resp_us_sum) / 1e6 / (double)n;
    w->resp_max = (double)atomic_load(&s->resp_us_max) / 1e6;
}

static void listener_of(struct stats_listener *l, const struct listener *ls)
{
    memset(l, 0, sizeof(*l));
    l->bind = ls->bind ? ls->bind : "";
    if (ls->fd < 0 || (ls->family != AF_INET && ls->family != AF_INET6))
        return;
    /* On a listening socket the kernel reports the accept queue's length
     * in tcpi_unacked and its limit (the backlog) in tcpi_sacked. */
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(ls->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    l->has_queue = 1;
    l->queue = ti.tcpi_unacked;
    l->backlog = ti.tcpi_sacked;
}

void stats_collect(struct master *m, struct stats_snapshot *s)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    double now_unix = (double)rt.tv_sec + rt.tv_nsec / 1e9;
    int64_t now_ms = monotonic_ms();
    const struct sb_totals *t = &m->sb->totals;
    struct sb_totals sum = *t;

    memset(s, 0, sizeof(*s));
    s->pid = (long)getpid();
    s->version = HUGD_VERSION;
    s->uptime = (double)(now_ms - t->started_ms) / 1000.0;
    s->generation = t->generation;
    s->target = m->target;
    pool_bounds(m, &s->min_workers, &s->max_workers);
    s->queued = m->qlen;
    s->queued_max = t->queued_max;
    s->queue_cap = m->qcap;
    s->accepted = t->accepted;
    memcpy(s->restarts, t->restarts, sizeof(s->restarts));
    s->scale_up = t->scale_up;
    s->scale_down = t->scale_down;

    struct stats_worker *w = calloc((size_t)(m->nlive ? m->nlive : 1), sizeof(*w));
    struct stats_listener *l = calloc((size_t)(m->nls ? m->nls : 1), sizeof(*l));
    for (int k = 0; k < m->nlive; k++) {
        int i = m->live[k];
        if (m->w[i].pid <= 0)
            continue;
        add_slot(&sum, &m->sb->slot[i]); /* into the totals even without memory for the rest */
        if (w)
            worker_of(m, &w[s->nw++], i, now_ms, now_unix);
    }
    for (int k = 0; l && k < m->nls; k++)
        listener_of(&l[s->nls++], &m->ls[k]);
    s->w = w;
    s->ls = l;
    memcpy(s->by_class, sum.by_class, sizeof(s->by_class));
    memcpy(s->hist, sum.resp_hist, sizeof(s->hist));
    s->duration_sum = (double)sum.resp_us_sum / 1e6;
}
