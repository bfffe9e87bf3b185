/* The scoreboard: shared memory the master maps before the first fork, one
 * slot per worker.  A worker writes only its own slot's worker fields; the
 * master writes only the master fields.  Counters only grow, so the master
 * derives "handed over but not yet picked up" (sent - received) and
 * "connections owned" (sent - closed) without locks. */
#ifndef HUGD_SCOREBOARD_H
#define HUGD_SCOREBOARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hugd/stats.h"

enum sb_state {
    SB_EMPTY = 0, /* no process */
    SB_BOOTING,   /* forked, not yet serving */
    SB_IDLE,      /* in its event loop, not in the application */
    SB_BUSY,      /* inside the application */
    SB_QUEUED,    /* has requests read and waiting for the application */
    SB_DRAINING,  /* finishing what it has, takes nothing new */
};

struct sb_slot {
    /* worker-written */
    _Atomic int state;
    _Atomic uint64_t received;     /* connections taken from the channel */
    _Atomic uint64_t closed;       /* connections finished */
    _Atomic uint64_t requests;     /* requests answered */
    _Atomic int64_t busy_since_ms; /* CLOCK_MONOTONIC ms when it entered the app */
    char request[120];             /* "GET /path" being served, for the timeout log */

    /* master-written */
    _Atomic uint64_t sent; /* connections handed to this worker */
    _Atomic int accepting; /* the master may hand it connections */
    int64_t spawned_ms;

    /* worker-written, after the master's fields so that a board made by
     * an older binary (an upgrade) reads 0 here: the worker holds more
     * response bytes for slow readers than max_pending_output allows, and
     * takes no new connection until they drain. */
    _Atomic int output_full;
    /* Also after them: a connection came without its descriptor (the
     * worker's limit), and it takes no new one until one of its own
     * closes (the master clears it on its tick too, for another try). */
    _Atomic int full;

    /* Worker-written per response, for the stats (stats.h): appended here,
     * after every older field, so that those keep their offsets for code
     * that already reads them.  Only the slot's worker writes them, so an
     * increment is a plain load and store (sb_add), no locked instruction.
     * A replaced worker's counts go into the board's totals first
     * (master_stats_collect.c), so that no total ever goes down. */
    _Atomic uint64_t by_class[STATS_NCLASSES]; /* responses 1xx .. 5xx */
    _Atomic uint64_t resp_us_sum;              /* request start to response out, microseconds */
    _Atomic uint64_t resp_us_max;
    _Atomic uint64_t resp_hist[STATS_NBUCKETS]; /* per bucket of stats_bucket_le */

    /* Worker-written by its mover (mover.c), appended like the above:
     * whether a call is long is the mover's judgement (the time it ran or
     * slept, threadclock.h), which the master cannot make from wall time
     * on a machine with more workers than CPUs.  judges: the mover runs;
     * slow_call_ms: the busy_since_ms of the call it found slow, else 0. */
    _Atomic int judges;
    _Atomic int64_t slow_call_ms;
} __attribute__((aligned(64)));

/* An upgrade (USR2) hands the board to a binary that may be newer or
 * older: fields are only ever appended, within this size. */
_Static_assert(sizeof(struct sb_slot) == 384, "sb_slot changed size: the layout is shared");

/* The connections a worker holds: the master's count of those it sent
 * there, less the worker's of those it has let go of (closed or moved). */
static inline uint64_t sb_owned(const struct sb_slot *s)
{
    return atomic_load(&s->sent) - atomic_load(&s->closed);
}

/* Master-written, master-read: what the stats add up over workers that are
 * gone, and the master's own counts.  In the board so that they survive a
 * reload's exec (which keeps the board). */
struct sb_totals {
    uint64_t requests;
    uint64_t by_class[STATS_NCLASSES];
    uint64_t resp_us_sum;
    uint64_t resp_hist[STATS_NBUCKETS];
    uint64_t restarts[STATS_NREASONS];
    uint64_t scale_up, scale_down; /* the scaler's */
    uint64_t accepted;
    uint64_t generation; /* reloads (HUP) applied */
    int64_t started_ms;  /* monotonic, when this master (pid) started */
    int queued_max;      /* most connections held in the master's queue at once */
};

/* One worker adds n to one of its own counters. */
static inline void sb_add(_Atomic uint64_t *p, uint64_t n)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The master keeps its own descriptor of every connection it hands out, so
 * that one idle between requests outlives its worker.  One record per
 * descriptor number says whose it is and whether it could move now. */
enum sb_conn_state {
    SBC_FREE = 0,  /* no connection on this number */
    SBC_MASTER,    /* held by the master (its queue) */
    SBC_SENT,      /* in a worker's channel, not yet taken */
    SBC_SENT_DATA, /* the same, with request bytes only the message carries */
    SBC_IDLE,      /* its worker has it between requests: nothing read since the last response */
    SBC_ACTIVE,    /* its worker is in the middle of a request on it */
    SBC_CLOSED,    /* its worker is done with it; the master closes its copy */
    /* Idle between requests, but its client's address came in a PROXY
     * header only its worker read: if that worker dies, it is closed
     * (another worker would take the proxy for the client). */
    SBC_IDLE_PROXIED,
};

/* scoreboard.stopping.  From SB_STOP_CLOSE on every response says
 * "Connection: close".  SB_STOP_LINGER (a stop after a shutdown_delay, so
 * behind a load balancer): a draining worker keeps its idle keep-alive
 * connections until their keep-alive timeout, instead of giving them back
 * to a master that could only close them under a balancer about to send
 * on them; a request on one is answered, with "Connection: close". */
enum { SB_STOP_NONE = 0, SB_STOP_CLOSE, SB_STOP_LINGER };

struct sb_conn {
    _Atomic int16_t owner; /* worker slot, -1 none; master-written */
    _Atomic uint8_t state; /* the master writes MASTER/SENT*, the owner the rest */
    uint8_t listener;
};

struct scoreboard {
    /* Set by the master while connections wait in its queue: a worker that
     * turns free must then say so over its channel. */
    _Atomic int waiting;
    int nslots;
    int nconns;      /* connection records, one per descriptor number below it */
    size_t conn_off; /* where they start, from the board's first byte */
    /* Master-written (after the fields above, which a reload's new image
     * reads as they were).  health: what the health path answers (enum
     * health_state).  stopping: the instance stops (TERM, once any
     * shutdown_delay is over), SB_STOP_*. */
    _Atomic int health;
    _Atomic int stopping;
    struct sb_totals totals; /* after the fields above, for the same reason */
    struct sb_slot slot[];
};

/* A shared mapping of a new memfd (its descriptor in *fd) with nslots
 * worker slots and nconns connection records; NULL with errno on failure. */
struct scoreboard *scoreboard_create(int nslots, int nconns, int *fd);
/* Map an existing board, inherited across exec. */
struct scoreboard *scoreboard_attach(int fd);
void scoreboard_reset_slot(struct sb_slot *s);

/* The record for descriptor number id, or NULL past the table. */
static inline struct sb_conn *sb_conn(struct scoreboard *sb, int id)
{
    if (id < 0 || id >= sb->nconns)
        return NULL;
    return (struct sb_conn *)((char *)sb + sb->conn_off) + id;
}

int64_t monotonic_ms(void);
int64_t monotonic_ns(void);

#endif
