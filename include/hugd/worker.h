/* A worker process: one libev loop serving many connections. */
#ifndef HUGD_WORKER_H
#define HUGD_WORKER_H

#include <ev.h>
#include <signal.h>
#include <stdint.h>

#include "hugd/conn.h"
#include "hugd/config.h"
#include "hugd/mover.h"
#include "hugd/scoreboard.h"
#include "hugd/sock.h"

struct worker {
    /* Filled in by the master before it forks the worker. */
    const struct hugd_config *cfg;
    int nlisteners;
    struct sb_slot *slot;
    struct scoreboard *sb;
    int index;
    int channel; /* our end of the channel to the master */

    struct ev_loop *loop;
    ev_io channel_w;
    ev_async signal_w;
    ev_prepare prepare_w;
    ev_check check_w;
    ev_timer drain_w;
    ev_timer closed_w;     /* tells the master of closed connections (tell_closed) */
    struct conn_pool pool; /* the connections (conn.h) */
    int draining;
    int told_free;          /* a "free" wake-up was sent and nothing changed since */
    int64_t full_logged_ms; /* when the descriptor limit was last logged */
    uint64_t max_requests;  /* this worker's own limit, jitter included; 0 = none */
    int retire_asked;
    void *py_thread; /* PyThreadState* while the loop waits in poll */
    int output_full; /* past max_pending_output: the scoreboard says so */
    int64_t output_warned_ms;
    double shed_at; /* ev_now of the last look for a worker owning fewer (shed_one) */
    struct mover mover;
};

/* Never returns: serves until told to stop, then exits. */
void worker_main(struct worker *w) __attribute__((noreturn));

#endif
