/* The master: its loop, its mode, what it does on a signal, and stopping.
 * It calls down into the rest: connections are master_dispatch.c's, worker
 * processes master_workers.c's, reload and upgrade master_reload.c's, and
 * the signal handler (master_signals.c) only counts and wakes the loop, so
 * every reaction runs here, never inside a handler. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hugd/log.h"
#include "hugd/notify.h"
#include "master_int.h"

#define TICK_SECONDS 0.25

/* The one master of this process.  Everything below master_setup gets it
 * as a parameter; master.h's entry points, which cannot, reach it here.
 * The loop's watchers carry it as their data. */
static struct master the_master;
static struct master *const self = &the_master;

/* ---- stopping ---------------------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)loop;
    (void)revents;
    int64_t now = monotonic_ms();
    shed_tick(m, now);
    if (master_leaving(m)) {
        int graceful = m->mode == MODE_STOPPING;
        if (graceful && !m->workers_told && (m->qlen == 0 || workers_alive(m) == 0))
            workers_tell(m, SIGTERM);
        if (m->mode == MODE_HANDOVER || (graceful && !m->workers_told))
            dispatch_queue(m);
        if (workers_alive(m) == 0)
            ev_break(m->loop, EVBREAK_ALL);
        return;
    }
    workers_tick(m, now);
    scale_tick(m, now);
    dispatch_tick(m);
}

/* how: 1 graceful (TERM), 2 at once (INT, QUIT). */
static void stop(struct master *m, int how)
{
    enum master_mode to = how == 2 ? MODE_STOPPING_NOW : MODE_STOPPING;
    /* Once each, a quick one after a graceful one.  A handover keeps its
     * mode: there a graceful stop is done once it has begun; a quick one
     * signals the workers again. */
    if (m->mode == MODE_HANDOVER ? how == 1 && master_stopping(m) : m->mode >= to)
        return;
    if (!master_leaving(m)) {
        if (!m->stop_delay)
            notify_send("STOPPING=1");
        /* A connection the kernel completed but nobody accepted would be
         * reset by the close, after its client sent a request: take what
         * waits in the backlogs first (as far as the queue has room). */
        for (int i = 0; i < m->nls; i++)
            for (int k = 0; k < 16 && m->ls[i].fd >= 0 && m->qlen < m->qcap; k++)
                dispatch_on_accept(m->loop, &m->accept_w[i], EV_READ);
        dispatch_close_listeners(m, 1);
    }
    /* Before any worker hears of it: from here on every response closes
     * its connection.  After a shutdown delay a balancer may still hold
     * idle connections to us (nginx, whose checks are passive): those stay
     * until their keep-alive timeout, which the balancer's own idle
     * timeout is to undercut.  Without one, a stop is not held up by idle
     * connections. */
    int linger = how == 1 && m->stop_delay;
    atomic_store(&m->sb->stopping, linger ? SB_STOP_LINGER : SB_STOP_CLOSE);
    ev_timer_stop(m->loop, &m->delay_w);
    m->stop_delay = 0;
    if (m->mode != MODE_HANDOVER)
        master_set_mode(m, to, how == 2 ? "INT or QUIT" : "TERM");
    checks_update(m);
    if (how == 1) {
        log_info("graceful stop: finishing requests in flight (up to %g s)",
                 m->cfg->graceful_timeout);
        /* gunicorn's meaning: whatever still runs at graceful_timeout is
         * killed then, and we exit right after. */
        workers_kill_at(m, m->cfg->graceful_timeout);
        if (m->qlen == 0)
            workers_tell(m, SIGTERM);
    } else {
        log_info("stopping now");
        dispatch_close_queue(m);
        workers_kill_at(m, KILL_GRACE_MS / 1000.0);
        workers_tell(m, SIGQUIT);
    }
    if (workers_alive(m) == 0)
        ev_break(m->loop, EVBREAK_ALL);
}

static void on_delay_over(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)loop;
    (void)revents;
    stop(m, 1);
}

/* TERM with a shutdown_delay: serve on as usual while the health path
 * fails, so that the balancer stops sending here before anything closes;
 * then the graceful stop.  A second TERM stops at once. */
static void term(struct master *m)
{
    if (m->cfg->shutdown_delay <= 0 || m->stop_delay || master_leaving(m)) {
        stop(m, 1);
        return;
    }
    m->stop_delay = 1;
    notify_send("STOPPING=1");
    checks_update(m);
    log_info("TERM: the health check fails from now on; serving for %g s more "
             "(shutdown_delay), then stopping",
             m->cfg->shutdown_delay);
    ev_timer_init(&m->delay_w, on_delay_over, m->cfg->shutdown_delay, 0.);
    ev_timer_start(m->loop, &m->delay_w);
}

/* One signal, `times` deliveries of it since the last pass. */
static void act(struct master *m, int sig, unsigned times)
{
    switch (sig) {
    case SIGTERM:
        while (times--)
            term(m);
        break;
    case SIGINT:
    case SIGQUIT:
        stop(m, 2);
        break;
    case SIGTTIN:
        if (scale_on(m)) {
            while (times-- && !master_leaving(m))
                scale_signal(m, 1);
            break;
        }
        while (times-- && !master_leaving(m) && m->target < m->nslots) {
            m->target++;
            log_info("TTIN: %d workers", m->target);
            workers_spawn_missing(m);
        }
        break;
    case SIGTTOU:
        if (scale_on(m)) {
            while (times-- && !master_leaving(m))
                scale_signal(m, 0);
            break;
        }
        while (times-- && !master_leaving(m) && m->target > 1) {
            m->target--;
            log_info("TTOU: %d workers", m->target);
            workers_retire_one(m);
        }
        break;
    case SIGUSR1:
        if (log_reopen() < 0)
            log_err(errno, "reopening the log files");
        workers_tell(m, SIGUSR1);
        break;
    case SIGHUP:
        reload_start(m); /* several at once: one reload, of the newest files */
        break;
    case SIGUSR2:
        upgrade_start(m);
        break;
    }
}

static void act_on(void *ctx, int sig, unsigned times)
{
    act(ctx, sig, times);
}

static void on_signals(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    signals_take(act_on, a->data);
}

static void on_child(struct ev_loop *loop, ev_child *cw, int revents)
{
    struct master *m = cw->data;
    (void)loop;
    (void)revents;
    int slot = -1;
    if (!reload_reaped(m, cw->rpid, cw->rstatus))
        slot = workers_reaped(m, cw->rpid, cw->rstatus);
    if (slot >= 0) {
        /* Connections it handed back just before it died are still in
         * its channel, and closing it unread would reset them. */
        dispatch_read_channel(m, slot);
        workers_gone(m, slot, dispatch_take);
        if (!master_leaving(m))
            dispatch_queue(m);
    }
    if (master_leaving(m) && workers_alive(m) == 0)
        ev_break(m->loop, EVBREAK_ALL);
}

/* One connection record per descriptor the master may hold: raise the
 * soft limit to the hard one (every connection costs the master a
 * descriptor now), and size the table to it. */
static int conn_records(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    rlim_t cap = 1 << 20;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > cap ? cap : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn(errno, "raising the descriptor limit to %llu", (unsigned long long)want);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > cap)
        return (int)cap;
    return (int)rl.rlim_cur;
}

static int adopt(struct master *m, struct inherited *inh)
{
    int64_t now = monotonic_ms();
    if (inh->nw || inh->nq)
        conns_adopt(m);
    for (int k = 0; k < inh->nw; k++) {
        struct inherit_worker *iw = &inh->w[k];
        struct wproc *wp = &m->w[iw->slot];
        wp->pid = iw->pid;
        wp->ch = iw->ch;
        wp->old_gen = 1;
        wp->retiring = iw->retiring;
        if (wp->retiring)
            wp->kill_at_ms = now + (int64_t)(m->cfg->graceful_timeout * 1000);
        workers_watch(m, iw->slot);
    }
    for (int k = 0; k < inh->nq; k++) {
        struct chan_msg msg;
        memset(&msg, 0, sizeof(msg));
        socklen_t sl = sizeof(msg.peer);
        msg.type = CHAN_CONN;
        msg.listener = (uint16_t)(inh->q[k].listener < m->nls ? inh->q[k].listener : 0);
        /* The peer address did not travel: ask the kernel again. */
        if (getpeername(inh->q[k].fd, (struct sockaddr *)&msg.peer, &sl) < 0) {
            close(inh->q[k].fd);
            continue;
        }
        msg.peerlen = sl;
        msg.datalen = inh->q[k].datalen;
        if (conns_hold(m, inh->q[k].fd, msg.listener) == 0)
            dispatch_take(m, inh->q[k].fd, &msg, inh->q[k].data);
    }
    if (inh->nw)
        log_info("reloaded: %d worker(s) of the previous generation serve until the new one "
                 "is ready",
                 inh->nw);
    /* Workers that died while we were executing: their connections. */
    for (int fd = 0; fd < m->conn_hi; fd++) {
        struct sb_conn *rec = sb_conn(m->sb, fd);
        int owner = atomic_load(&rec->owner);
        if (atomic_load(&rec->state) != SBC_FREE && owner >= 0 && m->w[owner].pid <= 0)
            conns_worker_gone(m, owner, dispatch_take);
    }
    return 0;
}

/* Reaping starts only once no application code runs in this process any
 * more (a reload imports after master_setup): libev's child watcher waits
 * for any child, and would take the exit status of a process the import
 * started. */
static void start_reaping(struct master *m)
{
    ev_child_start(m->loop, &m->child_w);
    /* A worker that died while a reload was executing us, or importing,
     * left a zombie and a SIGCHLD that went nowhere: look now. */
    if (m->reaped_late)
        ev_feed_signal_event(m->loop, SIGCHLD);
}

int master_setup(struct hugd_config *cfg, struct listener *ls, int nls, struct inherited *inh,
                 const struct launch *launch)
{
    struct master *m = self;
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->launch = launch;
    m->ls = ls;
    m->nls = nls;
    m->target = cfg->workers;
    if (inh->target && inh->workers_setting == cfg->workers)
        m->target = inh->target; /* TTIN/TTOU outlive a HUP unless the file changed */
    m->min_workers = cfg->min_workers;
    m->max_workers = cfg->max_workers;
    if (inh->min_workers && inh->min_setting == cfg->min_workers &&
        inh->max_setting == cfg->max_workers) {
        m->min_workers = inh->min_workers; /* the same for the scaling bounds */
        m->max_workers = inh->max_workers;
    }
    m->nslots = HUGD_MAX_WORKERS;
    m->upgrade_fd = -1;
    char err[256];
    /* Checked when the configuration was read; without memory, the master
     * leaves every PROXY-prefixed health check to a worker. */
    if (addrmatch_parse(&m->proxy_allow, cfg->proxy_allow_ips ? cfg->proxy_allow_ips : "", err,
                        sizeof(err)) < 0)
        log_errx("proxy_allow_ips: %s", err);
    if (inh->sb_fd >= 0) {
        m->sb_fd = inh->sb_fd;
        m->sb = scoreboard_attach(inh->sb_fd);
    } else {
        m->sb = scoreboard_create(m->nslots, conn_records(), &m->sb_fd);
    }
    m->w = calloc((size_t)m->nslots, sizeof(*m->w));
    m->qcap = cfg->accept_queue;
    m->q = calloc((size_t)m->qcap, sizeof(*m->q));
    m->accept_w = calloc((size_t)(nls ? nls : 1), sizeof(*m->accept_w));
    if (!m->sb || !m->w || !m->q || !m->accept_w) {
        log_crit(errno ? errno : ENOMEM, "cannot set up the master's tables");
        return HUGD_EX_OSERR;
    }
    m->loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOENV);
    if (!m->loop) {
        log_crit(0, "cannot create the event loop");
        return HUGD_EX_OSERR;
    }
    shed_init();
    /* Every watcher of the master's finds it through its data. */
    m->deadline_w.data = m->delay_w.data = m;
    m->on_channel = dispatch_on_channel;
    for (int i = 0; i < nls; i++) {
        ev_io_init(&m->accept_w[i], dispatch_on_accept, ls[i].fd, EV_READ);
        m->accept_w[i].data = m;
        ev_io_start(m->loop, &m->accept_w[i]);
    }
    ev_child_init(&m->child_w, on_child, 0, 0);
    m->child_w.data = m;
    m->reaped_late = inh->nw > 0;
    ev_async_init(&m->sig_w, on_signals);
    m->sig_w.data = m;
    ev_async_start(m->loop, &m->sig_w);
    signals_install(m->loop, &m->sig_w);
    master_block_signals(0); /* whatever came while starting is handled now */
    ev_timer_init(&m->tick_w, on_tick, TICK_SECONDS, TICK_SECONDS);
    m->tick_w.data = m;
    ev_timer_start(m->loop, &m->tick_w);

    int rc = stats_open(m, inh);
    if (rc)
        return rc;
    adopt(m, inh);
    if (inh->upgrade_fd >= 0)
        upgrade_watch_old(m, inh->upgrade_fd);
    inherit_free(inh); /* everything in it now lives in the master */
    return 0;
}

/* ---- a reload's import ---------------------------------------------------
 *
 * After a reload's exec, the new image has to import the new code before
 * it can start workers: a second or more for a real application.  Meanwhile
 * the loop runs in a thread of its own, accepting and handing connections
 * to the previous generation, so that no new connection waits for the
 * import.  The thread never touches Python; the main thread imports and
 * touches nothing of the master's.  HUP and USR2 wait for the import. */

static pthread_t import_thread;
static ev_async import_done_w;

static void on_import_done(struct ev_loop *loop, ev_async *a, int revents)
{
    struct master *m = a->data;
    (void)revents;
    m->importing = 0;
    ev_break(loop, EVBREAK_ALL);
}

static void *serve_old_generation(void *arg)
{
    struct master *m = arg;
    ev_run(m->loop, 0);
    return NULL;
}

int master_serve_while_importing(void)
{
    struct master *m = self;
    ev_async_init(&import_done_w, on_import_done);
    import_done_w.data = m;
    ev_async_start(m->loop, &import_done_w);
    m->importing = 1;
    m->reaped_late = 1;
    /* libev's default loop reaps any child on SIGCHLD (waitpid(-1)): held
     * back while the import may start processes of its own, in both
     * threads (the new one inherits the mask); master_serve lets it go. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    int e = pthread_create(&import_thread, NULL, serve_old_generation, m);
    if (e) {
        m->importing = 0;
        ev_async_stop(m->loop, &import_done_w);
        log_err(e, "a thread to serve while the new code is imported; new connections wait");
        return -1;
    }
    return 0;
}

/* The import is over: the main thread takes the loop back.  Returns 1 if
 * the loop ended meanwhile (a stop). */
static int end_import(struct master *m)
{
    if (!m->importing && !ev_is_active(&import_done_w))
        return 0; /* there was no thread */
    ev_async_send(m->loop, &import_done_w);
    pthread_join(import_thread, NULL);
    ev_async_stop(m->loop, &import_done_w);
    int ended = m->importing;
    m->importing = 0;
    return ended;
}

int master_serve(int app_ok)
{
    struct master *m = self;
    int stopped = end_import(m);
    /* What the application installed while a reload imported it must not
     * take the master's signals. */
    signals_install(m->loop, &m->sig_w);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_UNBLOCK, &chld, NULL);
    start_reaping(m);
    m->app_ok = app_ok;
    /* The master keeps the GIL released: threads the app started at import
     * may run; the master itself takes it only around fork. */
    if (app_ok)
        m->py = PyEval_SaveThread();
    if (!stopped) {
        watch_start(m);
        reload_run_waiting(m);
        workers_spawn_missing(m);
        ev_run(m->loop, 0);
    }
    dispatch_close_listeners(m, m->mode != MODE_HANDOVER); /* else the paths are the new master's */
    stats_close(m);
    if (m->cfg->pidfile)
        pidfile_remove(m->cfg->pidfile);
    log_info("stopped");
    return 0;
}
