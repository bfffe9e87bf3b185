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
} __attribute__((aligned(64)));

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

#endif
