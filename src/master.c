/* The master: accept, choose a worker, hand over; supervise the workers.
 * Signal handlers are libev watchers, so every reaction runs in the loop,
 * never inside a handler. */
#include "hugd/master.h"

#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hugd/balancer.h"
#include "hugd/channel.h"
#include "hugd/log.h"
#include "hugd/pyapp.h"
#include "hugd/scoreboard.h"
#include "hugd/worker.h"

#define ACCEPT_BATCH 64
#define TICK_SECONDS 0.25
#define KILL_GRACE_MS 1000 /* SIGABRT (stack dump) to SIGKILL */
#define EARLY_DEATH_MS 5000

struct wproc {
    pid_t pid;
    int ch; /* master end of the channel */
    ev_io ch_w;
    int64_t kill_at_ms; /* SIGKILL due (after SIGABRT or a missed drain) */
    int retiring;
    int replaced_by; /* slot + 1 of the worker starting in its place */
};

struct queued {
    int fd;
    struct chan_msg msg;
};

static struct {
    struct ev_loop *loop;
    struct hugd_config *cfg;
    struct listener *ls;
    int nls;
    ev_io *accept_w;
    int accept_paused;
    struct scoreboard *sb;
    struct wproc *w;
    int nslots;
    int target; /* workers wanted */
    struct queued *q;
    int qhead, qlen, qcap;
    int rr;
    int stopping; /* 0 serving, 1 graceful, 2 at once */
    int workers_told;
    int64_t stop_deadline_ms;
    int fail_streak;
    int64_t next_spawn_ms;
    PyThreadState *py;
    ev_child child_w;
    ev_signal sig_w[8];
    ev_timer tick_w;
} M;

static int alive_count(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        n += M.w[i].pid > 0;
    return n;
}

static int serving_count(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        n += M.w[i].pid > 0 && !M.w[i].retiring;
    return n;
}

/* ---- handing connections over ---------------------------------------- */

static void dispatch_queue(void);

static void take_conn(int fd, const struct chan_msg *msg);
static void replace(int i);
static void check_replacements(void);

static void on_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct wproc *wp = (struct wproc *)((char *)io - offsetof(struct wproc, ch_w));
    for (;;) {
        struct chan_msg m;
        int fd;
        int r = channel_recv(wp->ch, &m, &fd);
        if (r <= 0)
            break; /* EAGAIN, or the worker died: SIGCHLD tells the rest */
        if (m.type == CHAN_CONN && fd >= 0)
            take_conn(fd, &m); /* handed back by a draining worker */
        else if (fd >= 0)
            close(fd);
        if (m.type == CHAN_RETIRE)
            replace((int)(wp - M.w));
    }
    /* Some worker turned free or became ready: the queue can move, and a
     * worker waiting for its replacement may go. */
    check_replacements();
    dispatch_queue();
}

/* 0: handed over; -1: keep it (nobody free or the send failed). */
static int hand_over(int fd, const struct chan_msg *msg)
{
    int tries = M.nslots;
    while (tries-- > 0) {
        int i = balancer_pick(M.sb, M.rr);
        if (i < 0)
            return -1;
        struct sb_slot *s = &M.sb->slot[i];
        /* Count it before sending, so that a scoreboard read in between
         * never sees this worker as emptier than it is. */
        atomic_fetch_add(&s->sent, 1);
        if (channel_send_conn(M.w[i].ch, fd, msg) == 0) {
            close(fd);
            M.rr = (i + 1) % M.nslots;
            return 0;
        }
        int e = errno;
        atomic_fetch_sub(&s->sent, 1);
        if (e != EAGAIN && e != ENOBUFS) {
            log_warn(e, "handing a connection to worker %d", i);
            atomic_store(&s->accepting, 0);
        } else {
            return -1;
        }
    }
    return -1;
}

static void pause_accepting(int pause)
{
    if (pause == M.accept_paused || M.stopping)
        return;
    M.accept_paused = pause;
    for (int i = 0; i < M.nls; i++) {
        if (pause)
            ev_io_stop(M.loop, &M.accept_w[i]);
        else
            ev_io_start(M.loop, &M.accept_w[i]);
    }
}

static void dispatch_queue(void)
{
    while (M.qlen) {
        struct queued *e = &M.q[M.qhead];
        if (hand_over(e->fd, &e->msg) < 0) {
            /* Nobody free.  Ask workers to report when they turn free, then
             * look once more: a worker that went free just before the flag
             * was set would not report it. */
            atomic_store(&M.sb->waiting, 1);
            if (hand_over(e->fd, &e->msg) < 0)
                return;
        }
        M.qhead = (M.qhead + 1) % M.qcap;
        M.qlen--;
    }
    atomic_store(&M.sb->waiting, 0);
    pause_accepting(0);
}

static void enqueue(int fd, const struct chan_msg *msg)
{
    int tail = (M.qhead + M.qlen) % M.qcap;
    M.q[tail].fd = fd;
    M.q[tail].msg = *msg;
    M.qlen++;
    if (M.qlen == M.qcap) {
        /* Full: the kernel's backlog holds the rest until a worker frees. */
        pause_accepting(1);
    }
}

/* A connection to serve: newly accepted or handed back. */
static void take_conn(int fd, const struct chan_msg *msg)
{
    if (M.stopping) {
        close(fd);
        return;
    }
    if (M.qlen == 0 && hand_over(fd, msg) == 0)
        return;
    if (M.qlen == M.qcap) {
        /* Only a hand-back can find the queue full (accepting pauses when
         * it fills); there is nowhere to keep it. */
        close(fd);
        return;
    }
    enqueue(fd, msg);
    dispatch_queue();
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    int li = (int)(io - M.accept_w);
    for (int n = 0; n < ACCEPT_BATCH && M.qlen < M.qcap; n++) {
        struct chan_msg msg;
        memset(&msg, 0, sizeof(msg));
        socklen_t sl = sizeof(msg.peer);
        int fd = accept4(io->fd, (struct sockaddr *)&msg.peer, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* EMFILE and friends: back off instead of spinning on a
             * readable socket we cannot accept from. */
            log_err(errno, "accept4");
            pause_accepting(1);
            M.accept_paused = 2;
            return;
        }
        msg.type = CHAN_CONN;
        msg.listener = (uint16_t)li;
        msg.peerlen = sl;
        take_conn(fd, &msg);
    }
}

/* ---- workers ----------------------------------------------------------- */

static void spawn(int i)
{
    int fds[2];
    if (channel_pair(fds) < 0) {
        log_err(errno, "socketpair for worker %d", i);
        return;
    }
    struct sb_slot *s = &M.sb->slot[i];
    scoreboard_reset_slot(s);
    atomic_store(&s->state, SB_BOOTING);
    s->spawned_ms = monotonic_ms();

    PyEval_RestoreThread(M.py);
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        close(fds[0]);
        for (int k = 0; k < M.nslots; k++)
            if (M.w[k].pid > 0)
                close(M.w[k].ch);
        for (int k = 0; k < M.nls; k++)
            close(M.ls[k].fd);
        static struct worker w;
        memset(&w, 0, sizeof(w));
        w.cfg = M.cfg;
        w.listeners = M.ls;
        w.nlisteners = M.nls;
        w.sb = M.sb;
        w.slot = s;
        w.index = i;
        w.channel = fds[1];
        worker_main(&w);
    }
    int e = errno;
    PyOS_AfterFork_Parent();
    M.py = PyEval_SaveThread();
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        scoreboard_reset_slot(s);
        log_err(e, "fork for worker %d", i);
        return;
    }
    struct wproc *wp = &M.w[i];
    memset(wp, 0, sizeof(*wp));
    wp->pid = pid;
    wp->ch = fds[0];
    atomic_store(&s->pid, pid);
    atomic_store(&s->accepting, 1);
    ev_io_init(&wp->ch_w, on_channel, wp->ch, EV_READ);
    ev_io_start(M.loop, &wp->ch_w);
    log_info("worker %d started (pid %d)", i, (int)pid);
}

static void spawn_missing(void)
{
    if (M.stopping)
        return;
    int64_t now = monotonic_ms();
    if (now < M.next_spawn_ms)
        return;
    for (int i = 0; i < M.nslots && serving_count() < M.target; i++)
        if (M.w[i].pid == 0)
            spawn(i);
}

/* Take a worker out of service; it finishes what it has and exits. */
static void retire(int i)
{
    struct wproc *wp = &M.w[i];
    if (wp->pid <= 0 || wp->retiring)
        return;
    wp->retiring = 1;
    atomic_store(&M.sb->slot[i].accepting, 0);
    kill(wp->pid, SIGTERM);
    wp->kill_at_ms = monotonic_ms() + (int64_t)(M.cfg->graceful_timeout * 1000) + KILL_GRACE_MS;
}

static int free_slot(void)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.w[i].pid == 0)
            return i;
    return -1;
}

/* max_requests: start the replacement now; the old worker keeps serving
 * until the new one is ready (check_replacements), so capacity never dips. */
static void replace(int i)
{
    struct wproc *wp = &M.w[i];
    if (M.stopping || wp->pid <= 0 || wp->retiring || wp->replaced_by)
        return;
    int j = free_slot();
    if (j < 0)
        return;
    spawn(j);
    if (M.w[j].pid > 0) {
        wp->replaced_by = j + 1;
        log_info("worker %d (pid %d) reached max_requests; worker %d replaces it", i,
                 (int)wp->pid, j);
    }
}

static void check_replacements(void)
{
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
        if (wp->pid <= 0 || !wp->replaced_by || wp->retiring)
            continue;
        int j = wp->replaced_by - 1;
        int st = atomic_load(&M.sb->slot[j].state);
        if (M.w[j].pid <= 0)
            wp->replaced_by = 0; /* the replacement died: ask again */
        else if (st == SB_IDLE || st == SB_BUSY)
            retire(i);
    }
}

/* TTOU: the worker with the least work goes. */
static void retire_one(void)
{
    if (serving_count() <= 1)
        return;
    int best = -1;
    uint64_t best_load = 0;
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
        if (wp->pid <= 0 || wp->retiring)
            continue;
        struct sb_slot *s = &M.sb->slot[i];
        uint64_t load = atomic_load(&s->sent) - atomic_load(&s->closed);
        load = load * 2 + (atomic_load(&s->state) == SB_BUSY);
        if (best < 0 || load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best >= 0) {
        log_info("retiring worker %d (pid %d)", best, (int)M.w[best].pid);
        retire(best);
    }
}

static void on_child(struct ev_loop *loop, ev_child *cw, int revents)
{
    (void)loop;
    (void)revents;
    pid_t pid = cw->rpid;
    int status = cw->rstatus;
    int i;
    for (i = 0; i < M.nslots; i++)
        if (M.w[i].pid == pid)
            break;
    if (i == M.nslots)
        return;
    struct wproc *wp = &M.w[i];
    struct sb_slot *s = &M.sb->slot[i];
    int64_t lived = monotonic_ms() - s->spawned_ms;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFEXITED(status))
        LOG_AT(clean ? LOG_LVL_INFO : LOG_LVL_ERROR, 0, "worker %d (pid %d) exited with %d", i,
               (int)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        LOG_AT(wp->retiring || M.stopping ? LOG_LVL_INFO : LOG_LVL_ERROR, 0,
               "worker %d (pid %d) killed by signal %d (%s)", i, (int)pid, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    ev_io_stop(M.loop, &wp->ch_w);
    close(wp->ch);
    int was_retiring = wp->retiring;
    memset(wp, 0, sizeof(*wp));
    scoreboard_reset_slot(s);

    if (M.stopping) {
        if (alive_count() == 0)
            ev_break(M.loop, EVBREAK_ALL);
        return;
    }
    if (!clean && !was_retiring && lived < EARLY_DEATH_MS) {
        /* Dying young again and again means respawning can't fix it:
         * slow down instead of forking in a tight loop. */
        M.fail_streak++;
        int64_t delay = 100LL << (M.fail_streak < 9 ? M.fail_streak : 9);
        if (delay > 30000)
            delay = 30000;
        M.next_spawn_ms = monotonic_ms() + delay;
        log_crit(0, "worker %d died %.1f s after it started (%d in a row); next start in %.1f s",
                 i, lived / 1000.0, M.fail_streak, delay / 1000.0);
    } else if (lived >= EARLY_DEATH_MS) {
        M.fail_streak = 0;
    }
    spawn_missing();
    dispatch_queue();
}

static void check_timeouts(int64_t now)
{
    double limit = M.cfg->timeout;
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
        if (wp->pid <= 0)
            continue;
        if (wp->kill_at_ms && now >= wp->kill_at_ms) {
            log_errx("worker %d (pid %d) did not exit; sending SIGKILL", i, (int)wp->pid);
            kill(wp->pid, SIGKILL);
            wp->kill_at_ms = now + 60000; /* once; SIGKILL can't be ignored */
            continue;
        }
        if (limit <= 0 || wp->kill_at_ms)
            continue;
        struct sb_slot *s = &M.sb->slot[i];
        int64_t since = atomic_load(&s->busy_since_ms);
        if (atomic_load(&s->state) != SB_BUSY || since == 0 || now - since < limit * 1000)
            continue;
        char req[sizeof(s->request)];
        memcpy(req, s->request, sizeof(req));
        req[sizeof(req) - 1] = '\0';
        log_errx("worker %d (pid %d) timed out: \"%s\" running for %.1f s (timeout %g s); "
                 "sending SIGABRT for a stack dump",
                 i, (int)wp->pid, req, (now - since) / 1000.0, limit);
        atomic_store(&s->accepting, 0);
        kill(wp->pid, SIGABRT);
        wp->kill_at_ms = now + KILL_GRACE_MS;
    }
}

/* ---- stopping ---------------------------------------------------------- */

static void close_listeners(void)
{
    for (int i = 0; i < M.nls; i++) {
        ev_io_stop(M.loop, &M.accept_w[i]);
        sock_close(&M.ls[i], 1);
    }
}

static void tell_workers(int sig)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.w[i].pid > 0) {
            atomic_store(&M.sb->slot[i].accepting, 0);
            kill(M.w[i].pid, sig);
        }
    M.workers_told = 1;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    int64_t now = monotonic_ms();
    if (M.stopping) {
        if (M.stopping == 1 && !M.workers_told && (M.qlen == 0 || alive_count() == 0))
            tell_workers(SIGTERM);
        if (now >= M.stop_deadline_ms) {
            log_warnx("workers still running at the stop deadline; killing them");
            tell_workers(SIGKILL);
            M.stop_deadline_ms = now + 60000;
        }
        if (alive_count() == 0)
            ev_break(M.loop, EVBREAK_ALL);
        return;
    }
    check_timeouts(now);
    check_replacements();
    spawn_missing();
    if (M.accept_paused == 2) {
        M.accept_paused = 1;
        pause_accepting(0);
    }
    if (M.qlen)
        dispatch_queue();
}

static void stop(int how)
{
    if (M.stopping >= how)
        return;
    int64_t now = monotonic_ms();
    if (!M.stopping)
        close_listeners();
    M.stopping = how;
    if (how == 1) {
        log_info("graceful stop: finishing requests in flight (up to %g s)",
                 M.cfg->graceful_timeout);
        M.stop_deadline_ms = now + (int64_t)(M.cfg->graceful_timeout * 1000) + KILL_GRACE_MS;
        if (M.qlen == 0)
            tell_workers(SIGTERM);
    } else {
        log_info("stopping now");
        while (M.qlen) {
            close(M.q[M.qhead].fd);
            M.qhead = (M.qhead + 1) % M.qcap;
            M.qlen--;
        }
        M.stop_deadline_ms = now + KILL_GRACE_MS;
        tell_workers(SIGQUIT);
    }
    if (alive_count() == 0)
        ev_break(M.loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *sw, int revents)
{
    (void)loop;
    (void)revents;
    switch (sw->signum) {
    case SIGTERM:
        stop(1);
        break;
    case SIGINT:
    case SIGQUIT:
        stop(2);
        break;
    case SIGTTIN:
        if (!M.stopping && M.target < M.nslots) {
            M.target++;
            log_info("TTIN: %d workers", M.target);
            spawn_missing();
        }
        break;
    case SIGTTOU:
        if (!M.stopping && M.target > 1) {
            M.target--;
            log_info("TTOU: %d workers", M.target);
            retire_one();
        }
        break;
    case SIGUSR1:
        if (log_reopen() < 0)
            log_err(errno, "reopening the log files");
        for (int i = 0; i < M.nslots; i++)
            if (M.w[i].pid > 0)
                kill(M.w[i].pid, SIGUSR1);
        break;
    case SIGHUP:
        log_warnx("HUP: reloading is not supported yet; ignored");
        break;
    }
}

int master_run(struct hugd_config *cfg, struct listener *ls, int nls)
{
    memset(&M, 0, sizeof(M));
    M.cfg = cfg;
    M.ls = ls;
    M.nls = nls;
    M.target = cfg->workers;
    M.nslots = HUGD_MAX_WORKERS;
    M.sb = scoreboard_create(M.nslots);
    M.w = calloc((size_t)M.nslots, sizeof(*M.w));
    M.qcap = cfg->accept_queue;
    M.q = calloc((size_t)M.qcap, sizeof(*M.q));
    M.accept_w = calloc((size_t)nls, sizeof(*M.accept_w));
    if (!M.sb || !M.w || !M.q || !M.accept_w) {
        log_crit(errno ? errno : ENOMEM, "cannot allocate the master's tables");
        return HUGD_EX_OSERR;
    }
    M.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOENV);
    if (!M.loop) {
        log_crit(0, "cannot create the event loop");
        return HUGD_EX_OSERR;
    }
    /* The master keeps the GIL released: threads the app started at import
     * may run; the master itself takes it only around fork. */
    M.py = PyEval_SaveThread();

    for (int i = 0; i < nls; i++) {
        ev_io_init(&M.accept_w[i], on_accept, ls[i].fd, EV_READ);
        ev_io_start(M.loop, &M.accept_w[i]);
    }
    ev_child_init(&M.child_w, on_child, 0, 0);
    ev_child_start(M.loop, &M.child_w);
    static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1};
    for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) {
        ev_signal_init(&M.sig_w[k], on_signal, sigs[k]);
        ev_signal_start(M.loop, &M.sig_w[k]);
    }
    ev_timer_init(&M.tick_w, on_tick, TICK_SECONDS, TICK_SECONDS);
    ev_timer_start(M.loop, &M.tick_w);

    spawn_missing();
    ev_run(M.loop, 0);

    for (int i = 0; i < nls; i++)
        sock_close(&ls[i], 1);
    log_info("stopped");
    return 0;
}
