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

int workers_alive(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        n += M.w[i].pid > 0;
    return n;
}

int workers_all_full(void)
{
    int full = 0;
    for (int k = 0; k < M.nlive; k++) {
        const struct sb_slot *s = &M.sb->slot[M.live[k]];
        if (!atomic_load(&s->accepting))
            continue;
        if (!atomic_load(&s->full))
            return 0;
        full++;
    }
    return full > 0;
}

/* Workers of the current generation that are not on their way out. */
static int serving_count(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        n += M.w[i].pid > 0 && !M.w[i].retiring && !M.w[i].old_gen;
    return n;
}

struct from_worker {
    struct wproc *wp;
    int said_free;
};

static int on_worker_msg(void *ctx, const struct chan_msg *m, int fd, const char *data)
{
    struct from_worker *fw = ctx;
    struct wproc *wp = fw->wp;
    int slot = (int)(wp - M.w);
    fw->said_free |= m->type == CHAN_FREE;
    if (fd >= 0)
        close(fd); /* workers send none */
    if (m->type == CHAN_BACK)
        conns_given_back(slot, m, data);
    else if (m->type == CHAN_CLOSED)
        conns_closed(slot, data, m->datalen);
    if (m->type == CHAN_RETIRE) {
        workers_replace(slot, "reached max_requests");
        if (wp->replaced_by)
            wp->recycled = STATS_MAX_REQUESTS + 1;
    }
    return CHAN_NEXT;
}

/* Read everything the worker sent.  Also called for a worker that has
 * exited: connections it handed back just before are still in the channel,
 * and closing it unread would reset them. */
static int read_channel(struct wproc *wp)
{
    static char data[CHAN_MAX_DATA];
    struct from_worker fw = {.wp = wp};
    if (channel_drain(wp->ch, data, on_worker_msg, &fw) == CHAN_EOF)
        ev_io_stop(M.loop, &wp->ch_w); /* the worker died: SIGCHLD tells the rest */
    return fw.said_free;
}

void workers_on_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct wproc *wp = (struct wproc *)((char *)io - offsetof(struct wproc, ch_w));
    int said_free = read_channel(wp);
    /* Some worker turned free or became ready: the queue can move, a
     * worker waiting for its replacement may go, a generation may be up. */
    workers_check_ready();
    master_dispatch_queue();
    if (said_free)
        master_dispatch_to((int)(wp - M.w));
}

/* M.live stays sorted so that the balancer's rotation goes in slot order;
 * it changes only when a worker starts or is reaped. */
static void live_add(int i)
{
    int p = 0;
    while (p < M.nlive && M.live[p] < i)
        p++;
    if (p < M.nlive && M.live[p] == i)
        return;
    memmove(&M.live[p + 1], &M.live[p], (size_t)(M.nlive - p) * sizeof(M.live[0]));
    M.live[p] = i;
    M.nlive++;
}

static void live_remove(int i)
{
    for (int p = 0; p < M.nlive; p++) {
        if (M.live[p] == i) {
            memmove(&M.live[p], &M.live[p + 1], (size_t)(M.nlive - p - 1) * sizeof(M.live[0]));
            M.nlive--;
            return;
        }
    }
}

/* A slot whose channel is watched has a process (just forked, or adopted
 * from the previous generation): from now on the balancer considers it. */
void workers_watch(int i)
{
    struct wproc *wp = &M.w[i];
    ev_io_init(&wp->ch_w, workers_on_channel, wp->ch, EV_READ);
    ev_io_start(M.loop, &wp->ch_w);
    live_add(i);
}

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
            if (M.ls[k].fd >= 0)
                close(M.ls[k].fd);
        if (M.upgrade_fd >= 0)
            close(M.upgrade_fd);
        close(M.sb_fd);
        conns_close_inherited();
        stats_close_in_child();
        static struct worker w;
        memset(&w, 0, sizeof(w));
        w.cfg = M.cfg;
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
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sigprocmask(SIG_SETMASK, &was, NULL);
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
    atomic_store(&s->accepting, 1);
    workers_watch(i);
    log_info("worker %d started (pid %d; the fork held the master %.2f ms)", i, (int)pid,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

static int free_slot(void)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.w[i].pid == 0)
            return i;
    return -1;
}

void workers_spawn_missing(void)
{
    if (M.stopping || M.handover || !M.app_ok)
        return;
    if (monotonic_ms() < M.next_spawn_ms)
        return;
    while (serving_count() < M.target) {
        int i = free_slot();
        if (i < 0)
            return;
        spawn(i);
        if (M.w[i].pid <= 0)
            return; /* fork failed: the next tick tries again */
    }
}

/* Take a worker out of service: it finishes what it has, hands its idle
 * keep-alive connections back, and exits. */
void workers_retire(int i)
{
    struct wproc *wp = &M.w[i];
    if (wp->pid <= 0 || wp->retiring)
        return;
    wp->retiring = 1;
    atomic_store(&M.sb->slot[i].accepting, 0);
    kill(wp->pid, SIGTERM);
    /* Its own drain timer ends it at graceful_timeout; this is for one
     * stuck in the application. */
    wp->kill_at_ms = monotonic_ms() + (int64_t)(M.cfg->graceful_timeout * 1000);
}

/* max_requests or max_worker_memory: start the replacement now; the old
 * worker keeps serving until the new one is ready (workers_check_ready),
 * so capacity never dips. */
void workers_replace(int i, const char *why)
{
    struct wproc *wp = &M.w[i];
    if (M.stopping || M.handover || !M.app_ok || wp->pid <= 0 || wp->retiring || wp->replaced_by)
        return;
    int j = free_slot();
    if (j < 0)
        return;
    spawn(j);
    if (M.w[j].pid > 0) {
        wp->replaced_by = j + 1;
        log_info("worker %d (pid %d) %s; worker %d replaces it", i, (int)wp->pid, why, j);
    }
}

/* Past its start-up and serving.  Any serving state counts: under load a
 * new worker is seldom idle at the moment the master looks, and one that
 * is queued or busy is up all the same. */
static int is_up(int j)
{
    int st = atomic_load(&M.sb->slot[j].state);
    return M.w[j].pid > 0 && (st == SB_IDLE || st == SB_BUSY || st == SB_QUEUED);
}

void workers_check_ready(void)
{
    if (M.stopping || M.handover)
        return;
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
        if (wp->pid <= 0 || !wp->replaced_by || wp->retiring)
            continue;
        int j = wp->replaced_by - 1;
        if (M.w[j].pid <= 0)
            wp->replaced_by = 0; /* the replacement died: ask again */
        else if (is_up(j))
            workers_retire(i);
    }
    if (M.ready || !M.app_ok)
        return;
    int up = 0;
    for (int i = 0; i < M.nslots; i++)
        up += !M.w[i].old_gen && !M.w[i].retiring && is_up(i);
    if (up < M.target)
        return;
    /* The generation is up: now, and only now, the previous one goes. */
    M.ready = 1;
    int old = 0;
    for (int i = 0; i < M.nslots; i++)
        if (M.w[i].pid > 0 && M.w[i].old_gen) {
            workers_retire(i);
            old++;
        }
    if (old)
        log_info("new workers ready; retiring %d of the previous generation", old);
    if (M.cfg->pidfile && pidfile_write(M.cfg->pidfile) < 0)
        log_err(errno, "writing the pid file %s", M.cfg->pidfile);
    upgrade_ready();
    notify_send("READY=1\nMAINPID=%d\nSTATUS=serving with %d workers", (int)getpid(), up);
}

/* TTOU: the worker with the least work goes. */
void workers_retire_one(void)
{
    int best = -1;
    uint64_t best_load = 0;
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
        if (wp->pid <= 0 || wp->retiring || wp->old_gen)
            continue;
        struct sb_slot *s = &M.sb->slot[i];
        uint64_t load = atomic_load(&s->sent) - atomic_load(&s->closed);
        load = load * 2 + (atomic_load(&s->state) == SB_BUSY);
        if (best < 0 || load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best >= 0 && serving_count() > M.target) {
        log_info("retiring worker %d (pid %d)", best, (int)M.w[best].pid);
        workers_retire(best);
    }
}

void workers_reaped(pid_t pid, int status)
{
    int i;
    for (i = 0; i < M.nslots; i++)
        if (M.w[i].pid == pid)
            break;
    if (i == M.nslots)
        return;
    struct wproc *wp = &M.w[i];
    struct sb_slot *s = &M.sb->slot[i];
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
    int expected = wp->retiring || M.stopping || M.handover;
    if (WIFEXITED(status))
        LOG_AT(clean ? LOG_LVL_INFO : LOG_LVL_ERROR, 0, "worker %d (pid %d) exited with %d", i,
               (int)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        LOG_AT(expected && WTERMSIG(status) != SIGABRT ? LOG_LVL_INFO : LOG_LVL_ERROR, 0,
               "worker %d (pid %d) killed by signal %d (%s)", i, (int)pid, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    stats_worker_gone(i, status);
    int was_expected = wp->retiring || wp->old_gen;
    ev_io_stop(M.loop, &wp->ch_w);
    wp->retiring = 1; /* a CHAN_RETIRE from the dead asks for nothing */
    /* Out of the balancer's sight first: what the dead worker gave back is
     * dispatched while its channel is read, and must not go to it again. */
    atomic_store(&s->accepting, 0);
    live_remove(i);
    read_channel(wp);
    close(wp->ch);
    memset(wp, 0, sizeof(*wp));
    scoreboard_reset_slot(s);
    conns_worker_gone(i);

    if (M.stopping || M.handover)
        return;
    if (!clean && !was_expected && young) {
        /* Dying young again and again means respawning can't fix it: slow
         * down instead of forking in a tight loop. */
        M.fail_streak++;
        int64_t delay = 100LL << (M.fail_streak < 9 ? M.fail_streak : 9);
        if (delay > 30000)
            delay = 30000;
        M.next_spawn_ms = monotonic_ms() + delay;
        log_crit(0, "worker %d died %.1f s after it started (%d in a row); next start in %.1f s", i,
                 lived / 1000.0, M.fail_streak, delay / 1000.0);
    } else {
        M.fail_streak = 0;
    }
    workers_spawn_missing();
    workers_check_ready();
    master_dispatch_queue();
}

static void check_timeouts(int64_t now)
{
    double limit = M.cfg->timeout;
    for (int i = 0; i < M.nslots; i++) {
        struct wproc *wp = &M.w[i];
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
        wp->aborted = 1;
        wp->retiring = 1; /* counted out: its replacement starts now */
    }
}

void workers_tick(int64_t now)
{
    check_timeouts(now);
    workers_check_ready();
    workers_spawn_missing();
}

void workers_tell(int sig)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.w[i].pid > 0) {
            if (sig != SIGUSR1)
                atomic_store(&M.sb->slot[i].accepting, 0);
            kill(M.w[i].pid, sig);
        }
    if (sig == SIGTERM || sig == SIGQUIT)
        M.workers_told = 1;
}
