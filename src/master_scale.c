/* Load-driven scaling and the memory cap, from the master's side: read the
 * scoreboard into a snapshot, ask the scaler (include/hugd/scaler.h), act.
 * The master knows what waits (its own queue) and what each worker does
 * (the scoreboard), so it need not guess from the kernel's accept queue.
 *
 * With scaling on (min_workers < max_workers) the scaler owns m->target:
 * workers_spawn_missing starts up to it, and a step down retires one idle
 * worker gracefully, the way TTOU does, so its idle keep-alive connections
 * go to the others and nothing it runs is cut. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "hugd/log.h"
#include "hugd/scaler.h"
#include "hugd/stats.h"
#include "master_int.h"

#define MEMORY_CHECK_MS 1000

static struct scaler_state S;
static int64_t memory_checked_ms;

int scale_on(struct master *m)
{
    return m->min_workers < m->max_workers;
}

static int current(struct master *m, int i)
{
    return m->w[i].pid > 0 && !m->w[i].retiring && !m->w[i].old_gen;
}

static struct scaler_snapshot snapshot(struct master *m, int64_t now)
{
    struct scaler_snapshot s = {.now_ms = now, .waiting = m->qlen};
    for (int k = 0; k < m->nlive; k++) {
        int i = m->live[k];
        if (!current(m, i))
            continue;
        int st = atomic_load(&m->sb->slot[i].state);
        if (st == SB_BOOTING) {
            s.starting++;
            continue;
        }
        s.serving++;
        s.busy += st == SB_BUSY || st == SB_QUEUED;
    }
    return s;
}

/* The most idle worker: in its loop, holding the fewest connections. */
static int idlest(struct master *m)
{
    int best = -1;
    uint64_t best_held = 0;
    for (int k = 0; k < m->nlive; k++) {
        int i = m->live[k];
        const struct sb_slot *s = &m->sb->slot[i];
        if (!current(m, i) || m->w[i].replaced_by || atomic_load(&s->state) != SB_IDLE)
            continue;
        uint64_t held = sb_owned(s);
        if (best < 0 || held <= best_held) {
            best = i;
            best_held = held;
        }
    }
    return best;
}

static void decide(struct master *m, int64_t now)
{
    struct scaler_config cfg = {
        .min = m->min_workers,
        .max = m->max_workers,
        .spare = m->cfg->spare_workers,
        .idle_ms = (int64_t)(m->cfg->idle_timeout * 1000),
        .step_ms = SCALE_STEP_MS,
    };
    struct scaler_snapshot s = snapshot(m, now);
    int d = scaler_decide(&cfg, &S, &s);
    if (d > 0) {
        m->target = s.serving + s.starting + d;
        m->sb->totals.scale_up++;
        log_info("scaling up: %d connection(s) waiting, %d of %d workers busy; starting %d (%d "
                 "workers, at most %d)",
                 s.waiting, s.busy, s.serving, d, m->target, m->max_workers);
        workers_spawn_missing(m);
    } else if (d < 0) {
        int i = idlest(m);
        if (i < 0)
            return; /* none in its loop right now: the next tick asks again */
        m->target = s.serving - 1;
        m->sb->totals.scale_down++;
        m->w[i].recycled = STATS_SCALE_DOWN + 1;
        log_info("scaling down: retiring worker %d (pid %d), idle; %d workers, at least %d", i,
                 (int)m->w[i].pid, m->target, m->min_workers);
        workers_retire(m, i);
    }
}

/* Resident bytes of pid, from /proc/PID/statm; -1 if unknown. */
static int64_t rss_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long size, resident;
    int n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

static void check_memory(struct master *m, int64_t now)
{
    long long cap = m->cfg->max_worker_memory;
    if (cap <= 0 || now - memory_checked_ms < MEMORY_CHECK_MS)
        return;
    memory_checked_ms = now;
    int64_t rss[HUGD_MAX_WORKERS];
    int slot[HUGD_MAX_WORKERS], n = 0;
    for (int k = 0; k < m->nlive; k++) {
        int i = m->live[k];
        if (!current(m, i) || m->w[i].replaced_by)
            continue;
        slot[n] = i;
        rss[n++] = rss_of(m->w[i].pid);
    }
    int j = scaler_over_memory(rss, n, cap);
    if (j < 0)
        return;
    int i = slot[j];
    log_warnx("worker %d (pid %d) holds %lld MiB, above max_worker_memory (%lld MiB): replacing it",
              i, (int)m->w[i].pid, (long long)(rss[j] >> 20), cap >> 20);
    workers_replace(m, i, "passed max_worker_memory");
    if (m->w[i].replaced_by)
        m->w[i].recycled = STATS_MEMORY + 1;
}

void scale_tick(struct master *m, int64_t now)
{
    /* While a reload brings its generation up, the pool is the reload's. */
    if (master_leaving(m) || m->importing || !m->ready)
        return;
    check_memory(m, now);
    if (scale_on(m))
        decide(m, now);
}

void scale_now(struct master *m)
{
    if (scale_on(m) && !master_leaving(m) && !m->importing && m->ready)
        decide(m, monotonic_ms());
}

void scale_signal(struct master *m, int more)
{
    /* TTIN and TTOU move the floor; the scaler moves within it. */
    if (more) {
        if (m->min_workers < m->nslots)
            m->min_workers++;
        if (m->max_workers < m->min_workers)
            m->max_workers = m->min_workers;
        if (m->target < m->min_workers)
            m->target = m->min_workers;
        log_info("TTIN: at least %d workers, at most %d", m->min_workers, m->max_workers);
        workers_spawn_missing(m);
    } else {
        if (m->min_workers > 1)
            m->min_workers--;
        if (m->target > m->min_workers)
            m->target--;
        log_info("TTOU: at least %d workers, at most %d", m->min_workers, m->max_workers);
        workers_retire_one(m);
    }
}
