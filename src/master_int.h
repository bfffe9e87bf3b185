/* The master's state and its files' interfaces.  There is one master
 * (master.c's), and every function here gets it as its first parameter.
 * The files call down only:
 *
 *   master.c (loop, mode changes on signals, stopping, start-up)
 *     -> master_watch.c (--reload) -> master_reload.c (HUP, USR2)
 *     -> master_dispatch.c (accept, queue, hand over, worker channels)
 *     -> master_scale.c -> master_workers.c (fork, reap, retire, timeouts)
 *     -> master_checks.c, master_shed.c -> master_conns.c
 *     -> master_mode.c, master_signals.c, master_exec.c, master_stats*.c
 *
 * Where a lower file needs something of a higher one it gets it passed:
 * dispatch_take for a dead worker's connections (conns_take_fn), and
 * dispatch_on_channel for each worker channel's watcher (on_channel). */
#ifndef HUGD_MASTER_INT_H
#define HUGD_MASTER_INT_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "hugd/addrmatch.h"
#include "hugd/channel.h"
#include "hugd/master.h"
#include "hugd/pyapp.h"
#include "hugd/scoreboard.h"

#define KILL_GRACE_MS 1000 /* SIGABRT (stack dump) or a quick stop, to SIGKILL */

struct wproc {
    pid_t pid;
    int ch; /* master end of the channel */
    ev_io ch_w;
    int64_t kill_at_ms; /* SIGKILL due (after SIGABRT or a missed drain) */
    int retiring;
    int replaced_by; /* slot + 1 of the worker starting in its place */
    int old_gen;     /* runs the code from before a HUP */
    int aborted;     /* timed out: SIGABRT sent, SIGKILL follows */
    int recycled;    /* replaced on purpose: the stats_reason, + 1 (0: not) */
    /* Reaped after a failed start (back off): how long it lived, at least
     * 1; 0 otherwise.  From workers_reaped to workers_gone. */
    int64_t failed_young_ms;
};

/* What the master is doing.  TERM with a shutdown_delay changes no mode:
 * the master serves on with its health check failing (stop_delay) until
 * the delay's timer stops it.  The pids of a probe and of a new master
 * are kept as data (probe_pid, upgrade_pid) for reaping and signalling;
 * the mode alone says what is under way.  Transitions (master_mode.c):
 *
 *   SERVING -> RELOADING   HUP: the probe was forked
 *   RELOADING -> SERVING   the probe failed (or the exec did: the in-place
 *                          exec itself leaves no mode behind)
 *   SERVING -> UPGRADING   USR2: the new master was forked
 *   UPGRADING -> SERVING   it died before it was ready
 *   UPGRADING, STOPPING*  -> HANDOVER   it said READY
 *   SERVING, RELOADING, UPGRADING -> STOPPING (TERM) or STOPPING_NOW
 *                          (INT, QUIT); STOPPING -> STOPPING_NOW
 *   HANDOVER is the last: a stop after it acts on the workers only, and
 *   master_stopping says that it came. */
enum master_mode {
    MODE_SERVING,      /* accepting, handing connections to workers */
    MODE_RELOADING,    /* HUP: a probe (probe_pid) loads the new config and code */
    MODE_UPGRADING,    /* USR2: the new master (upgrade_pid) is starting */
    MODE_HANDOVER,     /* it is ready: it has our listeners, gets all we hold */
    MODE_STOPPING,     /* TERM: listeners closed, in-flight requests finish */
    MODE_STOPPING_NOW, /* INT, QUIT: the queue closed, workers quit */
};

/* Whether the accept watchers run, while the master serves (once it
 * leaves, the listeners are closed whatever this says). */
enum accept_state {
    ACCEPT_ON,      /* the accept watchers run */
    ACCEPT_FULL,    /* the queue is full: the kernel's backlog holds the rest */
    ACCEPT_BACKOFF, /* accept4 failed: the next tick tries again */
};

struct queued {
    int fd;
    struct chan_msg msg;
    char *data;  /* msg.datalen bytes already read from it (malloc'd), or NULL */
    ev_io *peek; /* watching for a health check (master_checks.c), or NULL */
};

struct master {
    struct ev_loop *loop;
    struct hugd_config *cfg;
    const struct launch *launch;
    struct listener *ls;
    int nls;
    ev_io *accept_w;
    enum master_mode mode; /* change it with master_set_mode */
    enum accept_state accepting;
    struct scoreboard *sb;
    int sb_fd;
    struct addrmatch proxy_allow; /* cfg->proxy_allow_ips, for the health checks it reads */
    struct wproc *w;
    int nslots;
    /* Each worker channel's watcher: dispatch_on_channel, given here by
     * master_setup, since workers sit below dispatch. */
    void (*on_channel)(struct ev_loop *loop, ev_io *io, int revents);
    /* The slots that have a worker process, ascending: all the balancer
     * looks at (workers_watch adds a slot, workers_reaped removes it). */
    int live[HUGD_MAX_WORKERS];
    int nlive;
    int target; /* workers wanted */
    /* Scaling's bounds (master_scale.c): the configuration's, moved by
     * TTIN and TTOU; equal, scaling is off. */
    int min_workers, max_workers;
    int app_ok;
    struct queued *q;
    int qhead, qlen, qcap;
    int rr;
    int conn_hi;   /* connection records in use are below this */
    uint8_t *held; /* bit per descriptor: ours is a connection (private: exact in a fork) */
    struct sent_bytes {
        char *p; /* request bytes sent with a connection: its worker may die unread */
        uint32_t len;
    } * sent_bytes; /* per descriptor, allocated on first use */
    int stop_delay; /* TERM came: serving on for shutdown_delay, the health check failing */
    ev_timer delay_w;
    int workers_told;
    int fail_streak;
    int64_t next_spawn_ms;
    int ready; /* the current generation has come up */
    PyThreadState *py;
    /* reload and upgrade */
    pid_t probe_pid;   /* HUP: checking the new config and code; 0 when reaped */
    pid_t upgrade_pid; /* USR2: the new master we started; 0 when reaped */
    int upgrade_fd;    /* channel to the other master (either side) */
    ev_io upgrade_w;
    /* A HUP or USR2 came while a reload or upgrade was under way: it runs
     * once that one has finished (or, across an exec, in the new image). */
    int hup_waiting, usr2_waiting;
    int importing;   /* a reload's new image imports its code; the old workers serve */
    int reaped_late; /* children may have ended before reaping started */
    ev_child child_w;
    ev_async sig_w; /* a signal came: see on_signal */
    ev_timer tick_w;
    ev_timer deadline_w; /* stopping: kill what still runs (workers_kill_at) */
};

/* master_mode.c */
void master_set_mode(struct master *m, enum master_mode to, const char *why);

/* No new connection goes to our workers any more: the listeners are closed
 * (or the new master's) and no worker is started. */
static inline int master_leaving(const struct master *m)
{
    return m->mode >= MODE_HANDOVER;
}

/* A stop has begun (TERM after any shutdown_delay, INT, QUIT), also during
 * a handover, where the mode stays HANDOVER.  The scoreboard says so to
 * the workers, and only stop() writes it. */
static inline int master_stopping(const struct master *m)
{
    return atomic_load(&m->sb->stopping) != SB_STOP_NONE;
}

/* master_signals.c: the handler counts, the loop acts (master_block_signals
 * is in master.h) */
void signals_install(struct ev_loop *loop, ev_async *wake);
/* act(ctx, sig, times) for each signal that came since the last call. */
void signals_take(void (*act)(void *ctx, int sig, unsigned times), void *ctx);

/* master_dispatch.c: accepting, the queue, handing connections over */
/* A connection to serve: newly accepted, handed back by a worker, or passed
 * on by the master we replace.  data: msg->datalen bytes already read from
 * the connection (copied). */
void dispatch_take(struct master *m, int fd, const struct chan_msg *msg, const char *data);
void dispatch_queue(struct master *m); /* as far as workers are free */
/* The queue's oldest to a worker that said it is free. */
void dispatch_to(struct master *m, int slot);
void dispatch_close_queue(struct master *m);
void dispatch_tick(struct master *m);
/* A worker's channel is readable (the watcher workers_watch starts). */
void dispatch_on_channel(struct ev_loop *loop, ev_io *io, int revents);
/* Everything a worker that has just died still wrote. */
void dispatch_read_channel(struct master *m, int slot);
void dispatch_on_accept(struct ev_loop *loop, ev_io *io, int revents);
void dispatch_close_listeners(struct master *m, int unlink_paths);

/* master_conns.c: the connections the master holds (see there) */
int conns_hold(struct master *m, int fd, int listener); /* a new one of ours; -1: closed */

/* master_shed.c: connections nobody has a descriptor for get 503. */
void shed_init(void); /* take the reserve descriptor */
/* At our limit: accept one and answer it; -1 (errno) if none. */
int shed_accept(struct master *m, int lfd);
void shed_held(struct master *m, int fd); /* one we hold, that no worker can take: answer it */
/* The count of what was shed, once per interval. */
void shed_tick(struct master *m, int64_t now_ms);
int workers_all_full(struct master *m); /* every live worker is at its descriptor limit */
void conns_sending(struct master *m, int fd, int slot, const char *data, uint32_t len);
void conns_unsent(struct master *m, int fd);
void conns_close(struct master *m, int fd);
/* A worker gave one back: ours again (its descriptor, to serve anew), or
 * -1 if it was not that worker's. */
int conns_given_back(struct master *m, int slot, const struct chan_msg *given);
void conns_closed(struct master *m, int slot, const char *data, size_t len);
/* A worker died: what it held idle, or had not taken yet, goes to take
 * (dispatch_take, given by the caller: conns sits below dispatch); the rest
 * is closed. */
typedef void conns_take_fn(struct master *m, int fd, const struct chan_msg *msg, const char *data);
void conns_worker_gone(struct master *m, int slot, conns_take_fn *take);
void conns_close_inherited(struct master *m);
void conns_keep_on_exec(struct master *m, int keep);
void conns_adopt(struct master *m);

/* master_checks.c: the health check (health.h), seen from the master */
void checks_update(struct master *m); /* the queue or the stop changed: tell the workers */
void checks_watch(struct master *m, struct queued *e);   /* just queued: is it a health check? */
void checks_unwatch(struct master *m, struct queued *e); /* leaving the queue */

/* master_scale.c: load-driven scaling and max_worker_memory */
#define SCALE_STEP_MS 250 /* between two steps up while work waits */
int scale_on(struct master *m);
void scale_tick(struct master *m, int64_t now);
void scale_now(struct master *m);              /* work just started waiting */
void scale_signal(struct master *m, int more); /* TTIN (1) or TTOU (0) while scaling is on */

/* master_watch.c: --reload (watch_files is in master.h) */
void watch_start(struct master *m);

/* master_workers.c */
void workers_spawn_missing(struct master *m);
void workers_watch(struct master *m, int slot); /* also makes the slot live */
void workers_retire(struct master *m, int slot);
void workers_retire_one(struct master *m);
/* Start another, then retire it. */
void workers_replace(struct master *m, int slot, const char *why);
void workers_tick(struct master *m, int64_t now);
void workers_check_ready(struct master *m);
/* A worker's death, in three steps that master.c's on_child runs: the
 * worker is logged and out of the balancer's sight (its slot, or -1 if pid
 * was none of ours); what it wrote before it died is read
 * (dispatch_read_channel); then its slot is freed, its connections go to
 * take (or are closed), and, unless the master is leaving, a new worker
 * starts (with back-off after failed starts). */
int workers_reaped(struct master *m, pid_t pid, int status);
void workers_gone(struct master *m, int slot, conns_take_fn *take);
void workers_tell(struct master *m, int sig);
int workers_alive(struct master *m);
/* Kill the workers still running in `seconds`, unless that is due sooner. */
void workers_kill_at(struct master *m, double seconds);

/* master_reload.c */
void reload_start(struct master *m);                        /* HUP */
void upgrade_start(struct master *m);                       /* USR2 */
int reload_reaped(struct master *m, pid_t pid, int status); /* 1 if pid was a probe or new master */
void upgrade_watch_old(struct master *m, int fd);
void reload_run_waiting(struct master *m); /* a HUP or USR2 that came while one was under way */

/* master_exec.c: an exec's environment, built before the fork */
/* environ with HUGD_INHERIT=inherit (if not NULL) and NOTIFY_SOCKET (if
 * notify_init took one) in place of any it had; one block (free it), NULL
 * without memory. */
char **exec_env(const char *inherit);
void exec_failed_note(const char *line); /* async-signal-safe: write(2) only */
extern char **environ;

/* master_stats.c: the stats endpoint (stats_bind), served by the loop */
struct inherited;
int stats_open(struct master *m, const struct inherited *inh); /* 0 or an exit code */
void stats_close(struct master *m);                            /* at exit */
void stats_close_in_child(struct master *m);                   /* a worker just forked */

/* master_stats_collect.c: the figures */
void stats_worker_gone(struct master *m, int slot, int status); /* before its slot is reset */
struct stats_snapshot;
/* Fill s from the master's tables; s->w and s->ls are malloc'd (free
 * both), NULL without memory. */
void stats_collect(struct master *m, struct stats_snapshot *s);

#endif
