/* The worker processes, from the master's side: forking, reaping and
 * respawning (with back-off), retiring, replacing (max_requests), and
 * killing hung ones. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hugd/log.h"
#include "hugd/notify.h"
#include "hugd/worker.h"
#include "master_int.h"

#define EARLY_DEATH_MS 5000

int workers_alive(struct master *m)
{
    int n = 0;
    for (int i = 0; i < m->nslots; i++)
        n += m->w[i].pid > 0;
    return n;
}

int workers_all_full(struct master *m)
{
    int full = 0;
    for (int k = 0; k < m->nlive; k++) {
        const struct sb_slot *s = &m->sb->slot[m->live[k]];
        if (!atomic_load(&s->accepting))
            continue;
        if (!atomic_load(&s->full))
            return 0;
        full++;
    }
    return full > 0;
}

/* Workers of the current generation that are not on their way out. */
static int serving_count(struct master *m)
{
    int n = 0;
    for (int i = 0; i < m->nslots; i++)
        n += m->w[i].pid > 0 && !m->w[i].retiring && !m->w[i].old_gen;
    return n;
}

/* m->live stays sorted so that the balancer's rotation goes in slot order;
 * it changes only when a worker starts or is reaped. */
static void live_add(struct master *m, int i)
{
    int p = 0;
    while (p < m->nlive && m->live[p] < i)
        p++;
    if (p < m->nlive && m->live[p] == i)
        return;
    memmove(&m->live[p + 1], &m->live[p], (size_t)(m->nlive - p) * sizeof(m->live[0]));
    m->live[p] = i;
    m->nlive++;
}

static void live_remove(struct master *m, int i)
{
    for (int p = 0; p < m->nlive; p++) {
        if (m->live[p] == i) {
            memmove(&m->live[p], &m->live[p + 1], (size_t)(m->nlive - p - 1) * sizeof(m->live[0]));
            m->nlive--;
            return;
        }
    }
}

/* A slot whose channel is watched has a process (just forked, or adopted
 * from the previous generation): from now on the balancer considers it. */
void workers_watch(struct master *m, int i)
{
    struct wproc *wp = &m->w[i];
    ev_io_init(&wp->ch_w, m->on_channel, wp->ch, EV_READ);
    wp->ch_w.data = m;
    ev_io_start(m->loop, &wp->ch_w);
    live_add(m, i);
}

static void spawn(struct master *m, int i)
{
    int fds[2];
    if (channel_pair(fds) < 0) {
        log_err(errno, "socketpair for worker %d", i);
        return;
    }
    struct sb_slot *s = &m->sb->slot[i];
    scoreboard_reset_slot(s);
    atomic_store(&s->state, SB_BOOTING);
    s->spawned_ms = monotonic_ms();

    /* Until the worker has its own handlers, a signal the master sends it
     * (TERM to retire it while it boots, say) would run the master's
     * handler there and be lost; held pending across fork, it reaches the
     * worker's once it installs them.  Only the ones a worker acts on: the
     * master's own go on being counted while it forks. */
    sigset_t hold, was;
    sigemptyset(&hold);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGQUIT);
    sigaddset(&hold, SIGUSR1);
    sigprocmask(SIG_BLOCK, &hold, &was);
    /* How long the master's loop stands still for a fork: it grows with
     * the application's memory (the page tables are copied). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PyEval_RestoreThread(m->py);
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        close(fds[0]);
        for (int k = 0; k < m->nslots; k++)
            if (m->w[k].pid > 0)
                close(m->w[k].ch);
        for (int k = 0; k < m->nls; k++)
            if (m->ls[k].fd >= 0)
                close(m->ls[k].fd);
        if (m->upgrade_fd >= 0)
            close(m->upgrade_fd);
        close(m->sb_fd);
        conns_close_inherited(m);
        stats_close_in_child(m);
        /* The master's loop: its epoll set is shared with the master
         * across fork, and a worker holding it keeps the master's
         * registrations alive after the master closed their descriptors.
         * Destroying it closes our copies and touches nothing of the
         * master's. */
        ev_loop_destroy(m->loop);
        static struct worker w;
        memset(&w, 0, sizeof(w));
        w.cfg = m->cfg;
        w.nlisteners = m->nls;
        w.sb = m->sb;
        w.slot = s;
        w.index = i;
        w.channel = fds[1];
        worker_main(&w);
    }
    int e = errno;
    PyOS_AfterFork_Parent();
    m->py = PyEval_SaveThread();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sigprocmask(SIG_SETMASK, &was, NULL);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        scoreboard_reset_slot(s);
        log_err(e, "fork for worker %d", i);
        return;
    }
    struct wproc *wp = &m->w[i];
    memset(wp, 0, sizeof(*wp));
    wp->pid = pid;
    wp->ch = fds[0];
    atomic_store(&s->accepting, 1);
    workers_watch(m, i);
    log_info("worker %d started (pid %d; the fork held the master %.2f ms)", i, (int)pid,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

static int free_slot(struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        if (m->w[i].pid == 0)
            return i;
    return -1;
}

void workers_spawn_missing(struct master *m)
{
    if (master_leaving(m) || !m->app_ok)
        return;
    if (monotonic_ms() < m->next_spawn_ms)
        return;
    while (serving_count(m) < m->target) {
        int i = free_slot(m);
        if (i < 0)
            return;
        spawn(m, i);
        if (m->w[i].pid <= 0)
            return; /* fork failed: the next tick tries again */
    }
}

/* Take a worker out of service: it finishes what it has, hands its idle
 * keep-alive connections back, and exits. */
void workers_retire(struct master *m, int i)
{
    struct wproc *wp = &m->w[i];
    if (wp->pid <= 0 || wp->retiring)
        return;
    wp->retiring = 1;
    atomic_store(&m->sb->slot[i].accepting, 0);
    kill(wp->pid, SIGTERM);
    /* Its own drain timer ends it at graceful_timeout; this is for one
     * stuck in the application. */
    wp->kill_at_ms = monotonic_ms() + (int64_t)(m->cfg->graceful_timeout * 1000);
}

/* max_requests or max_worker_memory: start the replacement now; the old
 * worker keeps serving until the new one is ready (workers_check_ready),
 * so capacity never dips. */
void workers_replace(struct master *m, int i, const char *why)
{
    struct wproc *wp = &m->w[i];
    if (master_leaving(m) || !m->app_ok || wp->pid <= 0 || wp->retiring || wp->replaced_by)
        return;
    int j = free_slot(m);
    if (j < 0)
        return;
    spawn(m, j);
    if (m->w[j].pid > 0) {
        wp->replaced_by = j + 1;
        log_info("worker %d (pid %d) %s; worker %d replaces it", i, (int)wp->pid, why, j);
    }
}

/* We are the new master of an upgrade: the old one hands over once our
 * generation is up. */
static void tell_old_master(struct master *m)
{
    if (m->upgrade_fd < 0 || m->upgrade_pid)
        return;
    if (channel_send_type(m->upgrade_fd, CHAN_READY) < 0)
        log_err(errno, "telling the old master we are ready");
    else
        log_info("ready: the old master (pid %d) hands over", (int)getppid());
}

/* Past its start-up and serving.  Any serving state counts: under load a
 * new worker is seldom idle at the moment the master looks, and one that
 * is queued or busy is up all the same. */
static int is_up(struct master *m, int j)
{
    int st = atomic_load(&m->sb->slot[j].state);
    return m->w[j].pid > 0 && (st == SB_IDLE || st == SB_BUSY || st == SB_QUEUED);
}

void workers_check_ready(struct master *m)
{
    if (master_leaving(m))
        return;
    /* Called on every message from a worker: only the live slots (a
     * replaced worker is one of them until it is gone). */
    for (int k = 0; k < m->nlive; k++) {
        int i = m->live[k];
        struct wproc *wp = &m->w[i];
        if (wp->pid <= 0 || !wp->replaced_by || wp->retiring)
            continue;
        int j = wp->replaced_by - 1;
        if (m->w[j].pid <= 0)
            wp->replaced_by = 0; /* the replacement died: ask again */
        else if (is_up(m, j))
            workers_retire(m, i);
    }
    if (m->ready || !m->app_ok)
        return;
    int up = 0;
    for (int i = 0; i < m->nslots; i++)
        up += !m->w[i].old_gen && !m->w[i].retiring && is_up(m, i);
    if (up < m->target)
        return;
    /* The generation is up: now, and only now, the previous one goes. */
    m->ready = 1;
    int old = 0;
    for (int i = 0; i < m->nslots; i++)
        if (m->w[i].pid > 0 && m->w[i].old_gen) {
            workers_retire(m, i);
            old++;
        }
    if (old)
        log_info("new workers ready; retiring %d of the previous generation", old);
    if (m->cfg->pidfile && pidfile_write(m->cfg->pidfile) < 0)
        log_err(errno, "writing the pid file %s", m->cfg->pidfile);
    tell_old_master(m);
    notify_send("READY=1\nMAINPID=%d\nSTATUS=serving with %d workers", (int)getpid(), up);
}

/* TTOU: the worker with the least work goes. */
void workers_retire_one(struct master *m)
{
    int best = -1;
    uint64_t best_load = 0;
    for (int i = 0; i < m->nslots; i++) {
        struct wproc *wp = &m->w[i];
        if (wp->pid <= 0 || wp->retiring || wp->old_gen)
            continue;
        struct sb_slot *s = &m->sb->slot[i];
        uint64_t load = sb_owned(s);
        load = load * 2 + (atomic_load(&s->state) == SB_BUSY);
        if (best < 0 || load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best >= 0 && serving_count(m) > m->target) {
        log_info("retiring worker %d (pid %d)", best, (int)m->w[best].pid);
        workers_retire(m, best);
    }
}

int workers_reaped(struct master *m, pid_t pid, int status)
{
    int i;
    for (i = 0; i < m->nslots; i++)
        if (m->w[i].pid == pid)
            break;
    if (i == m->nslots)
        return -1;
    struct wproc *wp = &m->w[i];
    struct sb_slot *s = &m->sb->slot[i];
    int64_t lived = monotonic_ms() - s->spawned_ms;
    /* Dying before it is ready, or idle soon after it started without
     * having served, is what a broken start-up looks like: back off.  A
     * worker that dies inside a request (a request that crashes it) or
     * after it served is replaced at once: backing off there would let a
     * crashing request empty the pool. */
    int st = atomic_load(&s->state);
    int young = st == SB_BOOTING ||
                (st == SB_IDLE && lived < EARLY_DEATH_MS && atomic_load(&s->requests) == 0);
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int expected = wp->retiring || master_leaving(m);
    if (WIFEXITED(status))
        LOG_AT(clean ? LOG_LVL_INFO : LOG_LVL_ERROR, 0, "worker %d (pid %d) exited with %d", i,
               (int)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        LOG_AT(expected && WTERMSIG(status) != SIGABRT ? LOG_LVL_INFO : LOG_LVL_ERROR, 0,
               "worker %d (pid %d) killed by signal %d (%s)", i, (int)pid, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    stats_worker_gone(m, i, status);
    int was_expected = wp->retiring || wp->old_gen;
    wp->failed_young_ms = !clean && !was_expected && young ? (lived > 0 ? lived : 1) : 0;
    ev_io_stop(m->loop, &wp->ch_w);
    wp->retiring = 1; /* a CHAN_RETIRE from the dead asks for nothing */
    /* Out of the balancer's sight first: what the dead worker gave back is
     * dispatched while its channel is read, and must not go to it again. */
    atomic_store(&s->accepting, 0);
    live_remove(m, i);
    return i;
}

void workers_gone(struct master *m, int i, conns_take_fn *take)
{
    struct wproc *wp = &m->w[i];
    int64_t failed_young_ms = wp->failed_young_ms;
    close(wp->ch);
    memset(wp, 0, sizeof(*wp));
    scoreboard_reset_slot(&m->sb->slot[i]);
    conns_worker_gone(m, i, take);

    if (master_leaving(m))
        return;
    if (failed_young_ms) {
        /* Dying young again and again means respawning can't fix it: slow
         * down instead of forking in a tight loop. */
        m->fail_streak++;
        int64_t delay = 100LL << (m->fail_streak < 9 ? m->fail_streak : 9);
        if (delay > 30000)
            delay = 30000;
        m->next_spawn_ms = monotonic_ms() + delay;
        log_crit(0, "worker %d died %.1f s after it started (%d in a row); next start in %.1f s", i,
                 failed_young_ms / 1000.0, m->fail_streak, delay / 1000.0);
    } else {
        m->fail_streak = 0;
    }
    workers_spawn_missing(m);
    workers_check_ready(m);
}

static void check_timeouts(struct master *m, int64_t now)
{
    double limit = m->cfg->timeout;
    for (int i = 0; i < m->nslots; i++) {
        struct wproc *wp = &m->w[i];
        if (wp->pid <= 0)
            continue;
        if (wp->kill_at_ms && now >= wp->kill_at_ms) {
            log_errx("worker %d (pid %d) did not exit in time; sending SIGKILL", i, (int)wp->pid);
            kill(wp->pid, SIGKILL);
            wp->kill_at_ms = now + 60000; /* once; SIGKILL can't be ignored */
            continue;
        }
        if (limit <= 0 || wp->aborted)
            continue;
        struct sb_slot *s = &m->sb->slot[i];
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
        wp->aborted = 1;
        wp->retiring = 1; /* counted out: its replacement starts now */
    }
}

void workers_tick(struct master *m, int64_t now)
{
    check_timeouts(m, now);
    workers_check_ready(m);
    workers_spawn_missing(m);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)loop;
    (void)revents;
    log_warnx("workers still running at the stop deadline; killing them");
    workers_tell(m, SIGKILL); /* reaped at once: then the loop ends (on_child) */
}

void workers_kill_at(struct master *m, double seconds)
{
    /* Its own timer, not the tick, so the deadline is kept to the
     * millisecond; a second stop can only bring it closer. */
    if (ev_is_active(&m->deadline_w) && ev_timer_remaining(m->loop, &m->deadline_w) <= seconds)
        return;
    ev_timer_stop(m->loop, &m->deadline_w);
    ev_timer_init(&m->deadline_w, on_deadline, seconds, 0.);
    ev_timer_start(m->loop, &m->deadline_w);
}

void workers_tell(struct master *m, int sig)
{
    for (int i = 0; i < m->nslots; i++)
        if (m->w[i].pid > 0) {
            if (sig != SIGUSR1)
                atomic_store(&m->sb->slot[i].accepting, 0);
            kill(m->w[i].pid, sig);
        }
    if (sig == SIGTERM || sig == SIGQUIT)
        m->workers_told = 1;
}
