/* Load-driven pool size: a pure function from what the master sees now
 * (a snapshot of the scoreboard and its queue) and a short history it keeps
 * here, to a decision.  No clock, no processes: the master samples, asks,
 * and acts; the unit tests feed it synthetic traces.
 *
 * Up, as soon as work waits (a connection held for lack of a free worker)
 * or fewer than `spare` workers are free: start workers, one at the first
 * step and twice as many at each step after while the shortage lasts
 * (1, 2, 4 ...), never more than the shortage nor past the maximum.
 * Workers still starting count as capacity on its way.
 *
 * Down, one worker at a time, only once for a whole `idle` period nothing
 * waited, no worker was started, and the pool was clearly too big: at no
 * sample did the workers but one (and the spares) all have work, and on
 * average they would have been at most half busy.  The gap between "work
 * waits" (up) and "half of one fewer would do" (down) is the hysteresis: a
 * steady load between the two moves nothing.  After a retirement the next
 * may follow a quarter period later, so an idle pool shrinks in steps
 * without waiting a whole period for each. */
#ifndef HUGD_SCALER_H
#define HUGD_SCALER_H

#include <stdint.h>

#define SCALER_SAMPLES 128

struct scaler_config {
    int min, max; /* the pool's bounds */
    int spare;    /* free workers to keep while below max */
    int64_t idle_ms;
    int64_t step_ms; /* between two steps up */
};

struct scaler_snapshot {
    int64_t now_ms;
    int serving;  /* workers up, of the current generation, not retiring */
    int starting; /* forked, not yet serving */
    int busy;     /* serving ones inside a request (or with one read) */
    int waiting;  /* connections held for lack of a free worker */
};

/* The history the decisions need; zero it to begin. */
struct scaler_state {
    struct scaler_sample {
        int64_t t;   /* when its first reading was taken */
        int peak;    /* most busy workers at one reading */
        int64_t sum; /* busy workers summed over its readings */
        int readings;
    } s[SCALER_SAMPLES];
    int head, n;
    int64_t last_short_ms; /* work waited, or spares were short */
    int64_t last_up_ms, last_down_ms;
    int step; /* workers the next step up starts */
};

/* > 0: start that many workers; -1: retire one; 0: nothing. */
int scaler_decide(const struct scaler_config *cfg, struct scaler_state *st,
                  const struct scaler_snapshot *now);

/* max_worker_memory: of the workers' sizes (bytes, or any one unit), the
 * index of the one to replace now (the biggest over cap), else -1; cap 0
 * is no cap. */
int scaler_over_memory(const int64_t *rss, int n, int64_t cap);

#endif
