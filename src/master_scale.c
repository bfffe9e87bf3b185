/* Load-driven scaling and the memory cap, from the master's side: read the
 * scoreboard into a snapshot, ask the scaler (include/hugd/scaler.h), act.
 * The master knows what waits (its own queue) and what each worker does
 * (the scoreboard), so it need not guess from the kernel's accept queue.
 *
 * With scaling on (min_workers < max_workers) the scaler owns M.target:
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

int scale_on(void)
{
    return M.min_workers < M.max_workers;
}

static int current(int i)
{
    return M.w[i].pid > 0 && !M.w[i].retiring && !M.w[i].old_gen;
}

static struct scaler_snapshot snapshot(int64_t now)
{
    struct scaler_snapshot s = {.now_ms = now, .waiting = M.qlen};
    for (int k = 0; k < M.nlive; k++) {
        int i = M.live[k];
        if (!current(i))
            continue;
        int st = atomic_load(&M.sb->slot[i].state);
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
static int idlest(void)
{
    int best = -1;
    uint64_t best_held = 0;
    for (int k = 0; k < M.nlive; k++) {
        int i = M.live[k];
        const struct sb_slot *s = &M.sb->slot[i];
        if (!current(i) || M.w[i].replaced_by || atomic_load(&s->state) != SB_IDLE)
            continue;
        uint64_t held = atomic_load(&s->sent) - atomic_load(&s->closed);
        if (best < 0 || held <= best_held) {
            best = i;
            best_held = held;
        }
    }
    return best;
}

static void decide(int64_t now)
{
    struct scaler_config cfg = {
        .min = M.min_workers,
        .max = M.max_workers,
        .spare = M.cfg->spare_workers,
        .idle_ms = (int64_t)(M.cfg->idle_timeout * 1000),
        .step_ms = SCALE_STEP_MS,
    };
    struct scaler_snapshot s = snapshot(now);
    int d = scaler_decide(&cfg, &S, &s);
    if (d > 0) {
        M.target = s.serving + s.starting + d;
        M.sb->totals.scale_up++;
        log_info("scaling up: %d connection(s) waiting, %d of %d workers busy; starting %d (%d "
                 "workers, at most %d)",
                 s.waiting, s.busy, s.serving, d, M.target, M.max_workers);
        workers_spawn_missing();
    } else if (d < 0) {
        int i = idlest();
        if (i < 0)
            return; /* none in its loop right now: the next tick asks again */
        M.target = s.serving - 1;
        M.sb->totals.scale_down++;
        M.w[i].recycled = STATS_SCALE_DOWN + 1;
        log_info("scaling down: retiring worker %d (pid %d), idle; %d workers, at least %d", i,
                 (int)M.w[i].pid, M.target, M.min_workers);
        workers_retire(i);
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

static void check_memory(int64_t now)
{
    long long cap = M.cfg->max_worker_memory;
    if (cap <= 0 || now - memory_checked_ms < MEMORY_CHECK_MS)
        return;
    memory_checked_ms = now;
    int64_t rss[HUGD_MAX_WORKERS];
    int slot[HUGD_MAX_WORKERS], n = 0;
    for (int k = 0; k < M.nlive; k++) {
        int i = M.live[k];
        if (!current(i) || M.w[i].replaced_by)
            continue;
        slot[n] = i;
        rss[n++] = rss_of(M.w[i].pid);
    }
    int j = scaler_over_memory(rss, n, cap);
    if (j < 0)
        return;
    int i = slot[j];
    log_warnx("worker %d (pid %d) holds %lld MiB, above max_worker_memory (%lld MiB): replacing it",
              i, (int)M.w[i].pid, (long long)(rss[j] >> 20), cap >> 20);
    workers_replace(i, "passed max_worker_memory");
    if (M.w[i].replaced_by)
        M.w[i].recycled = STATS_MEMORY + 1;
}

void scale_tick(int64_t now)
{
    /* While a reload brings its generation up, the pool is the reload's. */
    if (M.stopping || M.handover || M.importing || !M.ready)
        return;
    check_memory(now);
    if (scale_on())
        decide(now);
}

void scale_now(void)
{
    if (scale_on() && !M.stopping && !M.handover && !M.importing && M.ready)
        decide(monotonic_ms());
}

void scale_signal(int more)
{
    /* TTIN and TTOU move the floor; the scaler moves within it. */
    if (more) {
        if (M.min_workers < M.nslots)
            M.min_workers++;
        if (M.max_workers < M.min_workers)
            M.max_workers = M.min_workers;
        if (M.target < M.min_workers)
            M.target = M.min_workers;
        log_info("TTIN: at least %d workers, at most %d", M.min_workers, M.max_workers);
        workers_spawn_missing();
    } else {
        if (M.min_workers > 1)
            M.min_workers--;
        if (M.target > M.min_workers)
            M.target--;
        log_info("TTOU: at least %d workers, at most %d", M.min_workers, M.max_workers);
        workers_retire_one();
    }
}
