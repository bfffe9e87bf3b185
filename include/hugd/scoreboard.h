/* The scoreboard: shared memory the master maps before the first fork, one
 * slot per worker.  A worker writes only its own slot's worker fields; the
 * master writes only the master fields.  Counters only grow, so the master
 * derives "handed over but not yet picked up" (sent - received) and
 * "connections owned" (sent - closed) without locks. */
#ifndef HUGD_SCOREBOARD_H
#define HUGD_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

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
} __attribute__((aligned(64)));

struct scoreboard {
    /* Set by the master while connections wait in its queue: a worker that
     * turns free must then say so over its channel. */
    _Atomic int waiting;
    int nslots;
    struct sb_slot slot[];
};

/* A shared mapping of a new memfd (its descriptor in *fd); NULL with errno
 * on failure. */
struct scoreboard *scoreboard_create(int nslots, int *fd);
/* Map an existing board, inherited across exec. */
struct scoreboard *scoreboard_attach(int fd, int nslots);
void scoreboard_reset_slot(struct sb_slot *s);

int64_t monotonic_ms(void);

#endif
