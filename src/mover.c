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

#include "hugd/conn.h"
#include "hugd/log.h"
#include "hugd/worker.h"

static void futex_wait(_Atomic int *addr, int val)
{
    /* Returns at once if *addr is no longer val: no wake-up is missed. */
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *addr)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void drain_eventfd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) > 0)
        ;
}

/* Connections the master sent just before the worker went into the
 * application: they were meant for a free worker, so straight back. */
static void return_channel(struct worker *w)
{
    struct mover *mv = &w->mover;
    static char data[CHAN_MAX_DATA]; /* the mover's own: the main thread has another */
    while (mv->nstash < MOVER_STASH) {
        struct chan_msg m;
        int fd;
        if (channel_recv(w->channel, &m, &fd, data) <= 0)
            return;
        if (m.type != CHAN_CONN) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        atomic_fetch_add(&w->slot->received, 1);
        struct chan_msg back = m;
        back.type = CHAN_BACK;
        if (channel_send(w->channel, &back, data) == 0) {
            /* The master has its own descriptor of it. */
            atomic_fetch_add(&w->slot->closed, 1);
            if (fd >= 0)
                close(fd);
            atomic_fetch_add(&mv->moves, 1);
            log_debug("returned a connection to the master: busy in a request");
            continue;
        }
        if (fd < 0)
            continue; /* nothing to serve it with; the master's copy waits for our death */
        /* The channel is full: the main thread serves it when it is back. */
        mv->stash[mv->nstash].fd = fd;
        mv->stash[mv->nstash].msg = m;
        mv->stash[mv->nstash].msg.datalen = 0;
        mv->nstash++;
    }
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
static int plan(struct worker *w, struct watchlist *wl)
{
    struct mover *mv = &w->mover;
    int retry = 0;
    wl->n = 0;
    watch_add(wl, mv->efd, POLLIN, NULL);
    if (!w->draining)
        watch_add(wl, w->channel, POLLIN, NULL);
    for (struct conn *c = w->conns; c; c = c->next) {
        if (c == mv->current)
            continue;
        enum conn_move m = conn_move_plan(c);
        if (m == MOVE_WRITE) {
            int r = conn_move_write(c);
            if (r == 0 && watch_add(wl, c->fd, POLLOUT, c) < 0)
                retry = 1;
            if (r <= 0)
                continue;
            m = conn_move_plan(c); /* written out: idle now, or pipelined input */
        }
        if (m == MOVE_NOW && give_away(mv, c) < 0)
            retry = 1; /* the channel is full: try again shortly */
        else if (m == MOVE_ON_INPUT && watch_add(wl, c->fd, POLLIN, c) < 0)
            retry = 1;
    }
    return retry ? 2 : -1;
}

/* Engaged: the main thread is inside the application and we hold the
 * lock.  Returns when the main thread wants it back. */
static void watch(struct worker *w)
{
    struct mover *mv = &w->mover;
    struct watchlist wl = {0};
    int timeout = plan(w, &wl);
    return_channel(w);
    for (;;) {
        int n = poll(wl.pfd, (nfds_t)wl.n, timeout);
        if (n < 0 && errno != EINTR) {
            log_err(errno, "poll in the mover");
            break;
        }
        if (n > 0 && (wl.pfd[0].revents & POLLIN))
            break;
        int again = n == 0;
        for (int i = 1; i < wl.n && n > 0; i++) {
            if (!wl.pfd[i].revents)
                continue;
            struct conn *c = wl.who[i];
            if (!c) {
                return_channel(w);
            } else if (wl.pfd[i].events & POLLOUT) {
                again = 1; /* more of a finished response can go out */
            } else if (give_away(mv, c) < 0) {
                again = 1;
            } else {
                wl.pfd[i].fd = -1; /* gone: poll ignores negative fds */
            }
        }
        if (again)
            timeout = plan(w, &wl);
    }
    drain_eventfd(mv->efd);
    free(wl.pfd);
    free(wl.who);
}

static void engage(struct worker *w, unsigned seq)
{
    struct mover *mv = &w->mover;
    if (pthread_mutex_trylock(&mv->lock) != 0)
        return; /* the main thread has it: it left the application */
    atomic_store(&mv->engaged, 1);
    /* A wake-up left over from a call that ended while we were engaging. */
    drain_eventfd(mv->efd);
    /* Engaged is published before this check, and the main thread stores
     * the sequence before reading engaged: either it sees us and wakes us
     * through the eventfd, or we see that it left. */
    if (atomic_load(&mv->app_seq) == seq)
        watch(w);
    atomic_store(&mv->engaged, 0);
    pthread_mutex_unlock(&mv->lock);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct mover *mv = &w->mover;
    struct timespec tick = {.tv_sec = mv->after_ns / 1000000000L,
                            .tv_nsec = mv->after_ns % 1000000000L};
    unsigned seen = 0;
    for (;;) {
        int ph = atomic_load(&mv->phase);
        if (ph != MOVER_RUNNING) {
            /* The main thread waits in its loop: nothing runs, sleep until
             * it wakes. */
            if (ph == MOVER_ASLEEP || atomic_compare_exchange_strong(&mv->phase, &ph, MOVER_ASLEEP))
                futex_wait(&mv->phase, MOVER_ASLEEP);
            seen = 0;
            continue;
        }
        unsigned seq = atomic_load(&mv->app_seq);
        if ((seq & 1) && seq == seen)
            engage(w, seq); /* the same call as a tick ago */
        seen = seq;
        clock_nanosleep(CLOCK_MONOTONIC, 0, &tick, NULL);
    }
    return NULL;
}

int mover_start(struct worker *w, double after)
{
    struct mover *mv = &w->mover;
    memset(mv, 0, sizeof(*mv));
    mv->efd = -1;
    if (after <= 0)
        return 0;
    mv->after_ns = (long)(after * 1e9);
    if (mv->after_ns < 100000)
        mv->after_ns = 100000;
    mv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mv->efd < 0)
        return -1;
    pthread_mutex_init(&mv->lock, NULL);
    pthread_mutex_lock(&mv->lock);
    /* Every signal stays with the main thread, as in a worker without one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&mv->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        pthread_mutex_unlock(&mv->lock);
        close(mv->efd);
        mv->efd = -1;
        errno = e;
        return -1;
    }
    mv->running = 1;
    return 0;
}

void mover_enter(struct mover *mv, struct conn *current)
{
    if (!mv->running)
        return;
    mv->current = current;
    atomic_store(&mv->app_seq, atomic_load_explicit(&mv->app_seq, memory_order_relaxed) + 1);
    pthread_mutex_unlock(&mv->lock);
}

void mover_leave(struct mover *mv)
{
    if (!mv->running)
        return;
    atomic_store(&mv->app_seq, atomic_load_explicit(&mv->app_seq, memory_order_relaxed) + 1);
    if (atomic_load(&mv->engaged)) {
        uint64_t one = 1;
        ssize_t n = write(mv->efd, &one, sizeof(one));
        (void)n; /* an eventfd write only fails at a count of 2^64 - 2 */
    }
    pthread_mutex_lock(&mv->lock);
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
