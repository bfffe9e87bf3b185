/* Moving connections off a worker that is inside the application.
 *
 * A worker runs one request at a time.  While it is inside the application
 * for one connection, its other connections cannot be served by it: a
 * keep-alive client that sends its next request, a connection whose input
 * came in the same loop iteration and waits its turn, a connection the
 * master sent just before the worker went busy.  Each of them goes back
 * to the master, which hands it to a free worker, as soon as it has a
 * request to run.
 *
 * The mover is a thread of the worker.  It never runs Python and never
 * sends a signal.  Who may touch the worker's connections is one atomic
 * word (`own`): the main thread, except while it is inside the application
 * (and then it touches only `current`); the mover, only while it has taken
 * the word for a pass over them.  While the mover waits in poll(2) it
 * touches nothing, and the main thread takes the word back without waiting
 * for it to be scheduled: it waits only if it leaves the application
 * during one of the mover's short passes.  The main thread pays two stores
 * and one compare-and-swap per application call.  The mover wakes only
 * while the main thread is working (not while it waits in its event loop),
 * every `after` seconds, and engages once one application call has lasted
 * that long.  Then it watches the other connections with poll(2) and gives
 * each away the moment it has something to run; a connection with nothing
 * to run stays where it is.
 *
 * What moves, and what stays (conn_move_plan decides):
 *   - an idle keep-alive connection, or one waiting its turn (its input
 *     is still in the kernel: a worker reads a request only to run it):
 *     moves when the client has sent;
 *   - pipelined requests, a request head half sent, a request moved here
 *     with its bytes: move at once, with the bytes already read (the next
 *     worker parses them again from the start);
 *   - a request whose body is arriving, a response being written to a slow
 *     reader or produced by a generator, a closing connection: stay, and
 *     go on once the application returns (they hold state only this worker
 *     has);
 *   - connections still in the channel from the master: straight back.
 *
 * Responses the main thread finished earlier in the same batch wait
 * corked in the kernel until the batch ends (conn.c, cork()), or until
 * the first of them has waited CONN_CORK_HOLD_NS: then the mover pushes
 * them out while a call runs (its tick is never longer than that), and so
 * does an engagement; between calls the main thread does. */
#ifndef HUGD_MOVER_H
#define HUGD_MOVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hugd/channel.h"
#include "hugd/threadclock.h"

struct conn;
struct conn_pool;

/* Connections the mover took from the channel but could not send back
 * (the channel was full): the main thread starts them itself. */
#define MOVER_STASH 64

struct mover {
    struct conn_pool *pool; /* the worker's connections, which it moves */
    pthread_t thread;
    int running;
    _Atomic int own;          /* OWN_*: who may touch the connections */
    _Atomic unsigned app_seq; /* odd while the main thread is inside the application */
    _Atomic int phase;        /* MOVER_RUNNING, MOVER_LOOP_WAIT, MOVER_ASLEEP */
    int efd;                  /* eventfd: the main thread took the connections back */
    struct conn *current;     /* the connection the application runs for */
    long after_ns;
    int64_t busy_after_ms;     /* while no worker is free: see mover_start */
    struct thread_clock clock; /* the main thread's, for how long a call has lasted */
    unsigned tick_seq;         /* app_seq at the mover's last tick */
    int tick_valid, base_valid;
    struct thread_times tick;         /* the main thread's times at the last tick */
    struct thread_times base;         /* the same, before the current call began */
    int64_t tick_ms, base_ms;         /* when they were read (monotonic_ms) */
    int moved;                        /* connections were given away: the main thread sweeps */
    _Atomic unsigned long long moves; /* how many, ever (for the log) */
    int nstash;
    struct {
        int fd;
        struct chan_msg msg;
        char *data; /* msg.datalen bytes read off the client before the move, or NULL */
    } stash[MOVER_STASH];
};

enum { MOVER_RUNNING = 0, MOVER_LOOP_WAIT = 1, MOVER_ASLEEP = 2 };
enum {
    OWN_MAIN = 0,  /* the main thread, outside the application */
    OWN_NONE = 1,  /* nobody: the main thread is inside the application */
    OWN_MOVER = 2, /* the mover, in a pass over them */
    OWN_POLL = 3,  /* nobody: the mover waits in poll(2), and leaves them on waking */
};

/* Start the thread (after = seconds one application call must last before
 * the mover engages; <= 0: no mover).  While no other worker is free, a
 * connection moves only once the call keeping this worker has run or
 * slept busy_after seconds (time spent waiting for a CPU not counted): in
 * the master's queue it goes to the first worker that frees up, which a
 * call that long is unlikely to be first to do.
 * The calling thread owns the connections.  Returns 0 or -1 with errno. */
int mover_start(struct mover *mv, struct conn_pool *pool, double after, double busy_after);

/* Around each application call, on the main thread. */
void mover_enter(struct mover *mv, struct conn *current);
void mover_leave(struct mover *mv);

/* Around the main thread's wait in its event loop: the mover sleeps while
 * the main thread sleeps, and is woken (one futex call) when it wakes. */
void mover_loop_wait(struct mover *mv);
void mover_loop_wake(struct mover *mv);

#endif
