/* The worker's mover thread; see include/hugd/mover.h. */
#include "hugd/mover.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hugd/balancer.h"
#include "hugd/conn.h"
#include "hugd/log.h"
#include "hugd/scoreboard.h"
#include "hugd/threadclock.h"

static void futex_wait(_Atomic int *addr, int val)
{
    /* Returns at once if *addr is no longer val: no wake-up is missed. */
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *addr)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The mover ends a pass: the main thread may be waiting for that. */
static void end_pass(struct mover *mv, int to)
{
    atomic_store(&mv->own, to);
    futex_wake(&mv->own);
}

/* Back from poll: take the connections for a pass, unless the main thread
 * has taken them back (then they may have changed or gone). */
static int begin_pass(struct mover *mv)
{
    int x = OWN_POLL;
    return atomic_compare_exchange_strong(&mv->own, &x, OWN_MOVER);
}

static void drain_eventfd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) > 0)
        ;
}

/* One connection the master sent (channel_drain, from return_channel). */
static int return_one(void *ctx, const struct chan_msg *msg, int fd, const char *data)
{
    struct mover *mv = ctx;
    struct conn_pool *p = mv->pool;
    if (msg->type != CHAN_CONN) {
        if (fd >= 0)
            close(fd);
        return CHAN_NEXT;
    }
    atomic_fetch_add(&p->slot->received, 1);
    struct chan_msg back = *msg;
    back.type = CHAN_BACK;
    if (channel_send(p->channel, &back, data) == 0) {
        /* The master has its own descriptor of it. */
        atomic_fetch_add(&p->slot->closed, 1);
        if (fd >= 0)
            close(fd);
        atomic_fetch_add(&mv->moves, 1);
        log_debug("returned a connection to the master: busy in a request");
        return CHAN_NEXT;
    }
    if (fd < 0)
        return CHAN_NEXT; /* nothing to serve it with; the master's copy waits for our death */
    /* The channel is full: the main thread serves it when it is back, with
     * the request bytes that came with it (data is reused by the next
     * receive, so they get their own copy). */
    struct chan_msg m = *msg;
    char *copy = NULL;
    if (m.datalen > 0) {
        copy = malloc(m.datalen);
        if (copy)
            memcpy(copy, data, m.datalen);
        else
            m.datalen = 0; /* served as if nothing had been read: its client times out */
    }
    mv->stash[mv->nstash].fd = fd;
    mv->stash[mv->nstash].msg = m;
    mv->stash[mv->nstash].data = copy;
    mv->nstash++;
    return mv->nstash < MOVER_STASH ? CHAN_NEXT : CHAN_STOP;
}

/* Connections the master sent just before the worker went into the
 * application: they were meant for a free worker, so straight back.  The
 * end of the channel, or an error on it, is the main thread's to see. */
static void return_channel(struct mover *mv)
{
    static char data[CHAN_MAX_DATA]; /* the mover's own: the main thread has another */
    if (mv->nstash < MOVER_STASH)
        channel_drain(mv->pool->channel, data, return_one, mv);
}

struct watchlist {
    struct pollfd *pfd;
    struct conn **who;
    int n, cap;
};

static int watch_add(struct watchlist *wl, int fd, short events, struct conn *c)
{
    if (wl->n == wl->cap) {
        int cap = wl->cap ? wl->cap * 2 : 64;
        struct pollfd *p = realloc(wl->pfd, (size_t)cap * sizeof(*p));
        if (!p)
            return -1;
        wl->pfd = p;
        struct conn **q = realloc(wl->who, (size_t)cap * sizeof(*q));
        if (!q)
            return -1;
        wl->who = q;
        wl->cap = cap;
    }
    wl->pfd[wl->n] = (struct pollfd){.fd = fd, .events = events};
    wl->who[wl->n] = c;
    wl->n++;
    return 0;
}

/* How long the current call has run or slept, in ms (threadclock.h): a
 * call that is short but waited its turn for a CPU is not a slow one, and
 * moving its connections would only queue them in the master, behind
 * workers that are no freer. */
static int64_t call_age_ms(const struct mover *mv, int64_t since)
{
    int64_t age = monotonic_ms() - since;
    struct thread_times now;
    if (age < mv->busy_after_ms || !mv->base_valid || thread_clock_read(&mv->clock, &now) < 0)
        return age;
    int64_t before = since - mv->base_ms;
    return thread_clock_lasted_ms(age, before > 0 ? before : 0, &mv->base, &now,
                                  thread_clock_runnable(&mv->clock));
}

/* Is the current call slow?  Once it is, the worker's slot says so, for
 * the master (balancer_in_long_call), until the call ends: a later sample
 * (computing after a long sleep, say) does not take it back.  *age, if
 * asked for: how long the call has lasted so far (ms). */
static int call_is_slow(struct mover *mv, int64_t *age)
{
    struct sb_slot *slot = mv->pool->slot;
    int64_t since = atomic_load(&slot->busy_since_ms);
    int64_t a = 0;
    int slow = 0;
    if (since) { /* 0: the main thread is out of the application */
        slow = atomic_load(&slot->slow_call_ms) == since;
        if (!slow && (a = call_age_ms(mv, since)) >= mv->busy_after_ms) {
            atomic_store(&slot->slow_call_ms, since);
            slow = 1;
        }
    }
    if (age)
        *age = a;
    return slow;
}

/* Is moving worth it now?  For every connection once this call has run
 * for busy_after (then the first worker to free up is likely sooner than
 * this one).  Before that, only to a worker that is free: any, for a
 * connection that has had no response here yet; for a keep-alive client
 * of this worker, one that would still own fewer connections than this
 * one once it had it, and one at a time.  Keep-alive connections stay
 * where they land: one moved to a worker with as many would leave the two
 * unequal for good, and the clients of the fuller one waiting longer for
 * every request after; and this call is not slow yet, so waiting for it
 * costs little. */
struct chances {
    int all;      /* the call is slow */
    int to_free;  /* another worker is free */
    int to_fewer; /* ... and would still own fewer than this one */
    int retry_ms; /* when to ask again */
};

static void ask(struct mover *mv, struct chances *ch)
{
    struct conn_pool *p = mv->pool;
    memset(ch, 0, sizeof(*ch));
    int64_t age;
    if (call_is_slow(mv, &age)) {
        ch->all = 1;
        return;
    }
    int64_t left = mv->busy_after_ms - age;
    ch->retry_ms = left < 2 ? 2 : left > 5 ? 5 : (int)left;
    if (atomic_load(&p->sb->waiting))
        return; /* the master holds connections for lack of a free worker */
    uint64_t mine = sb_owned(p->slot);
    for (int i = 0; i < p->sb->nslots && !ch->to_fewer; i++) {
        const struct sb_slot *s = &p->sb->slot[i];
        if (s == p->slot || !balancer_is_free(s))
            continue;
        ch->to_free = 1;
        ch->to_fewer = sb_owned(s) + 1 < mine;
    }
}

static int give_away(struct mover *mv, struct conn *c)
{
    if (conn_give_away(c) < 0)
        return -1;
    mv->moved = 1;
    atomic_fetch_add(&mv->moves, 1);
    log_debug("moved a connection from %s: it has a request to run", c->peer_addr);
    return 0;
}

/* One pass over the worker's connections: act on what can be done now,
 * list what has to be waited for.  Returns the poll timeout (ms). */
static int plan(struct mover *mv, struct watchlist *wl)
{
    struct conn_pool *p = mv->pool;
    int retry = 0;
    int asked = 0, moved_one = 0;
    struct chances ch;
    /* Until this call is found slow, look again every 2 ms even if nothing
     * happens: the master reads the judgement from the slot. */
    int judged = call_is_slow(mv, NULL);
    wl->n = 0;
    watch_add(wl, mv->efd, POLLIN, NULL);
    if (!p->draining)
        watch_add(wl, p->channel, POLLIN, NULL);
    for (struct conn *c = p->conns; c; c = c->next) {
        if (c == mv->current)
            continue;
        enum conn_move m = conn_move_plan(c);
        if (m == MOVE_ON_INPUT && c->move_input)
            m = MOVE_NOW;
        if ((m == MOVE_NOW || m == MOVE_ON_INPUT) && atomic_load(&p->sb->stopping))
            continue; /* a stopping master could only close it: it waits for us */
        if (m == MOVE_NOW) {
            if (!asked++)
                ask(mv, &ch);
            int client = c->requests > 0;
            if (!ch.all && !(client ? ch.to_fewer && !moved_one : ch.to_free))
                retry = client && moved_one ? 2 : ch.retry_ms; /* not yet: look again then */
            else if (give_away(mv, c) < 0)
                retry = 2; /* the channel is full: try again shortly */
            else if (!ch.all && client)
                moved_one = 1;
        } else if (m == MOVE_ON_INPUT && watch_add(wl, c->fd, POLLIN, c) < 0) {
            retry = 2;
        }
    }
    if (!judged && (!retry || retry > 2))
        retry = 2;
    return retry ? retry : -1;
}

/* Engaged: the main thread is inside the application and we own the
 * connections.  Returns when the main thread has taken them back. */
static void watch(struct mover *mv)
{
    struct watchlist wl = {0};
    for (struct conn *c = mv->pool->conns; c; c = c->next)
        c->move_input = 0; /* what we saw last time, the main thread has read since */
    int timeout = plan(mv, &wl);
    return_channel(mv);
    for (;;) {
        end_pass(mv, OWN_POLL);
        int n = poll(wl.pfd, (nfds_t)wl.n, timeout);
        int e = errno;
        if (!begin_pass(mv))
            break; /* the main thread is back: wl is stale */
        if (n < 0 && e != EINTR) {
            log_err(e, "poll in the mover");
            end_pass(mv, OWN_NONE);
            break;
        }
        int again = n == 0;
        for (int i = 1; i < wl.n && n > 0; i++) {
            if (!wl.pfd[i].revents)
                continue;
            struct conn *c = wl.who[i];
            if (!c) {
                return_channel(mv);
            } else {
                /* The client sent: it has a request to run now.  plan()
                 * moves it, or waits a little if nobody could take it. */
                c->move_input = 1;
                again = 1;
            }
        }
        if (again)
            timeout = plan(mv, &wl);
    }
    drain_eventfd(mv->efd);
    free(wl.pfd);
    free(wl.who);
}

static void engage(struct mover *mv, unsigned seq)
{
    int x = OWN_NONE;
    if (!atomic_compare_exchange_strong(&mv->own, &x, OWN_MOVER))
        return; /* the main thread is not inside the application */
    if (atomic_load(&mv->app_seq) != seq) {
        end_pass(mv, OWN_NONE); /* another call, just begun: not yet */
        return;
    }
    if (!mv->base_valid) { /* not seen at a tick: count from now */
        mv->base_valid = thread_clock_read(&mv->clock, &mv->base) == 0;
        mv->base_ms = monotonic_ms();
    }
    drain_eventfd(mv->efd); /* left over from an earlier engagement */
    if (atomic_load(&mv->pool->corked_since_ns))
        conn_uncork_all(mv->pool); /* the call lasts: nothing waits corked behind it */
    watch(mv);
}

/* Responses finished earlier in the batch have waited corked for
 * CONN_CORK_HOLD_NS while this call runs: push them out (conn.c, cork()). */
static void push_corked(struct mover *mv, unsigned seq)
{
    int x = OWN_NONE;
    if (!atomic_compare_exchange_strong(&mv->own, &x, OWN_MOVER))
        return;
    if (atomic_load(&mv->app_seq) == seq)
        conn_uncork_all(mv->pool);
    end_pass(mv, OWN_NONE);
}

static void *run(void *arg)
{
    struct mover *mv = arg;
    struct conn_pool *p = mv->pool;
    /* A quarter of the threshold, so that a call is noticed soon after it
     * passes it, and no longer than a cork may hold (CONN_CORK_HOLD_NS). */
    long tick_ns = mv->after_ns / 4 < 500000 ? 500000 : mv->after_ns / 4;
    if (tick_ns > CONN_CORK_HOLD_NS)
        tick_ns = CONN_CORK_HOLD_NS;
    struct timespec tick = {.tv_sec = tick_ns / 1000000000L, .tv_nsec = tick_ns % 1000000000L};
    int64_t after_ms = (mv->after_ns + 999999) / 1000000;
    for (;;) {
        int ph = atomic_load(&mv->phase);
        if (ph != MOVER_RUNNING) {
            /* The main thread waits in its loop: nothing runs, sleep until
             * it wakes. */
            if (ph == MOVER_ASLEEP || atomic_compare_exchange_strong(&mv->phase, &ph, MOVER_ASLEEP))
                futex_wait(&mv->phase, MOVER_ASLEEP);
            mv->tick_valid = 0; /* from before the sleep: says nothing of calls since */
            continue;
        }
        unsigned seq = atomic_load(&mv->app_seq);
        /* The main thread's times at the last tick, before the call now
         * running began if it is a new one (a pread of a few hundred ns a
         * tick). */
        struct thread_times t;
        int valid = thread_clock_read(&mv->clock, &t) == 0;
        int64_t now = monotonic_ms();
        if (seq != mv->tick_seq) {
            mv->tick_seq = seq;
            mv->base = mv->tick_valid ? mv->tick : t;
            mv->base_ms = mv->tick_valid ? mv->tick_ms : now;
            mv->base_valid = mv->tick_valid || valid;
        }
        mv->tick = t;
        mv->tick_ms = now;
        mv->tick_valid = valid;
        if (seq & 1)
            call_is_slow(mv, NULL); /* past busy_after of wall time: two more preads */
        int64_t since = atomic_load(&p->corked_since_ns);
        if ((seq & 1) && since && monotonic_ns() - since >= CONN_CORK_HOLD_NS)
            push_corked(mv, seq);
        if ((seq & 1) && monotonic_ms() - atomic_load(&p->slot->busy_since_ms) >= after_ms)
            engage(mv, seq);
        clock_nanosleep(CLOCK_MONOTONIC, 0, &tick, NULL);
    }
    return NULL;
}

int mover_start(struct mover *mv, struct conn_pool *pool, double after, double busy_after)
{
    memset(mv, 0, sizeof(*mv));
    mv->pool = pool;
    mv->efd = -1;
    mv->clock.sched_fd = mv->clock.stat_fd = -1;
    if (after <= 0)
        return 0;
    mv->after_ns = (long)(after * 1e9);
    mv->busy_after_ms = (int64_t)(busy_after * 1000);
    if (mv->after_ns < 100000)
        mv->after_ns = 100000;
    mv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mv->efd < 0)
        return -1;
    /* This thread's times, read by the mover (call_age_ms). */
    thread_clock_open(&mv->clock, (long)syscall(SYS_gettid));
    atomic_store(&pool->slot->slow_call_ms, 0);
    atomic_store(&mv->own, OWN_MAIN);
    /* Every signal stays with the main thread, as in a worker without one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&mv->thread, NULL, run, mv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        close(mv->efd);
        mv->efd = -1;
        thread_clock_close(&mv->clock);
        errno = e;
        return -1;
    }
    mv->running = 1;
    atomic_store(&pool->slot->judges, 1);
    return 0;
}

void mover_enter(struct mover *mv, struct conn *current)
{
    if (!mv->running)
        return;
    mv->current = current;
    atomic_store(&mv->app_seq, atomic_load_explicit(&mv->app_seq, memory_order_relaxed) + 1);
    atomic_store(&mv->own, OWN_NONE);
}

void mover_leave(struct mover *mv)
{
    if (!mv->running)
        return;
    atomic_store(&mv->app_seq, atomic_load_explicit(&mv->app_seq, memory_order_relaxed) + 1);
    for (;;) {
        int x = OWN_NONE;
        if (atomic_compare_exchange_strong(&mv->own, &x, OWN_MAIN))
            break;
        if (x == OWN_POLL && atomic_compare_exchange_strong(&mv->own, &x, OWN_MAIN)) {
            /* It waits in poll: wake it, so that it lets go of its list. */
            uint64_t one = 1;
            ssize_t n = write(mv->efd, &one, sizeof(one));
            (void)n; /* an eventfd write only fails at a count of 2^64 - 2 */
            break;
        }
        if (x == OWN_MOVER)
            futex_wait(&mv->own, OWN_MOVER); /* in a pass: a few system calls */
    }
    mv->current = NULL;
}

void mover_loop_wait(struct mover *mv)
{
    if (mv->running)
        atomic_store(&mv->phase, MOVER_LOOP_WAIT);
}

void mover_loop_wake(struct mover *mv)
{
    if (mv->running && atomic_exchange(&mv->phase, MOVER_RUNNING) == MOVER_ASLEEP)
        futex_wake(&mv->phase);
}
