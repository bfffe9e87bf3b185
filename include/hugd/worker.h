/* A worker process: one libev loop serving many connections. */
#ifndef HUGD_WORKER_H
#define HUGD_WORKER_H

#include <ev.h>
#include <signal.h>
#include <stdint.h>

#include "hugd/addrmatch.h"
#include "hugd/config.h"
#include "hugd/mover.h"
#include "hugd/scoreboard.h"
#include "hugd/sock.h"

struct conn;

struct worker {
    struct ev_loop *loop;
    const struct hugd_config *cfg;
    int nlisteners;
    struct sb_slot *slot;
    struct scoreboard *sb;
    int index;
    int channel; /* our end of the channel to the master */
    ev_io channel_w;
    ev_async signal_w;
    ev_prepare prepare_w;
    ev_timer drain_w;
    struct conn *conns;  /* every open connection */
    struct conn *ready;  /* connections with input waiting (conn_run_ready) */
    struct conn *corked; /* responses held in the kernel until the batch ends */
    ev_check check_w;
    int nconns;
    int draining;
    int told_free;          /* a "free" wake-up was sent and nothing changed since */
    int64_t full_logged_ms; /* when the descriptor limit was last logged */
    uint64_t max_requests;  /* this worker's own limit, jitter included; 0 = none */
    int retire_asked;
    void *py_thread;        /* PyThreadState* while the loop waits in poll */
    int epoll_fd;           /* libev's, when it could be found (conn_close); else -1 */
    uint32_t *closed_ids;   /* connections done with, not yet told (CHAN_CLOSED): */
    int nclosed, capclosed; /* grows while the master is behind, so none is forgotten */
    size_t output_held;     /* response bytes its connections hold (worker_count_output) */
    int output_full;        /* past max_pending_output: the scoreboard says so */
    int64_t output_warned_ms;
    struct mover mover;
    struct addrmatch proxy_allow;     /* cfg->proxy_allow_ips, parsed */
    struct addrmatch forwarded_allow; /* cfg->forwarded_allow_ips, parsed */
};

/* Never returns: serves until told to stop, then exits. */
void worker_main(struct worker *w) __attribute__((noreturn));

/* Called by conn.c around every call into the application, for c. */
void worker_enter_app(struct worker *w, struct conn *c, const char *method, const char *path,
                      size_t pathlen);
void worker_leave_app(struct worker *w);
/* c is closed; released: the master is to close its copy too (not when
 * it went back to the master). */
void worker_conn_closed(struct worker *w, uint32_t id, int released);
/* Tell the master which connections we are done with. */
void worker_flush_closed(struct worker *w);
void worker_request_done(struct worker *w);
/* The same response, for the stats: its status and how long it took from
 * the request's first byte (the loop's clock: no system call). */
void worker_count_response(struct worker *w, int status, double seconds);
/* A connection's response bytes held in memory went from `was` to `now`:
 * past max_pending_output the worker takes no new connection until slow
 * readers have taken enough of them. */
void worker_count_output(struct worker *w, size_t was, size_t now);

#endif
