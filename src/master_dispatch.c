/* Where each connection goes: accepted (accept4 in batches), kept in the
 * master's queue while no worker is free, handed to the worker the
 * balancer picks, or, during a handover, passed to the new master.  The
 * queue is bounded: full, accepting pauses and the kernel's backlog holds
 * the rest. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/balancer.h"
#include "hugd/log.h"
#include "hugd/stats.h"
#include "master_int.h"

#define ACCEPT_BATCH 64

/* During a handover: to the new master, over the upgrade channel; our
 * descriptor closes either way. */
static void forward(struct master *m, int fd, const struct chan_msg *msg, const char *data)
{
    int rc = -1;
    for (int tries = 0; m->upgrade_fd >= 0 && tries < 10; tries++) {
        rc = channel_send_conn(m->upgrade_fd, fd, msg, data);
        if (rc == 0 || errno != EAGAIN)
            break;
        /* The new master reads its end promptly; a full buffer clears in
         * moments, and this only happens during a hand-over. */
        struct pollfd pfd = {.fd = m->upgrade_fd, .events = POLLOUT};
        poll(&pfd, 1, 100);
    }
    if (rc < 0)
        log_warn(errno, "passing a connection to the new master");
    conns_close(m, fd);
}

/* 0: sent to worker i; -1: its channel is full; -2: it is broken. */
static int send_to(struct master *m, int i, int fd, const struct chan_msg *msg, const char *data)
{
    struct chan_msg cm = *msg;
    cm.type = CHAN_CONN;
    cm.id = (uint32_t)fd;
    struct sb_slot *s = &m->sb->slot[i];
    /* Count it before sending, so that a scoreboard read in between never
     * sees this worker as emptier than it is. */
    atomic_fetch_add(&s->sent, 1);
    conns_sending(m, fd, i, data, cm.datalen);
    /* Our descriptor stays open: see master_conns.c. */
    if (channel_send_conn(m->w[i].ch, fd, &cm, data) == 0)
        return 0;
    int e = errno;
    conns_unsent(m, fd);
    atomic_fetch_sub(&s->sent, 1);
    if (e == EAGAIN || e == ENOBUFS)
        return -1;
    log_warn(e, "handing a connection to worker %d", i);
    atomic_store(&s->accepting, 0);
    return -2;
}

/* A call this long keeps a worker from taking queued connections. */
static int64_t long_call_ms(const struct master *m)
{
    int64_t ms = (int64_t)(m->cfg->rebalance_busy_after * 1000);
    return ms > 0 ? ms : 1;
}

/* 0: handed over; -1: keep it (nobody free or the send failed). */
static int hand_over(struct master *m, int fd, const struct chan_msg *msg, const char *data)
{
    int tries = m->nlive;
    while (tries-- > 0) {
        int i = balancer_pick(m->sb, m->live, m->nlive, m->rr);
        if (i < 0)
            return -1;
        int r = send_to(m, i, fd, msg, data);
        if (r == 0) {
            m->rr = (i + 1) % m->nslots;
            return 0;
        }
        if (r == -1)
            return -1;
    }
    return -1;
}

static void pause_accepting(struct master *m, int pause)
{
    enum accept_state to = pause ? ACCEPT_FULL : ACCEPT_ON;
    if (to == m->accepting || master_leaving(m))
        return;
    m->accepting = to;
    for (int i = 0; i < m->nls; i++) {
        if (m->ls[i].fd < 0)
            continue;
        if (pause)
            ev_io_stop(m->loop, &m->accept_w[i]);
        else
            ev_io_start(m->loop, &m->accept_w[i]);
    }
}

static void pop_queue(struct master *m)
{
    checks_unwatch(m, &m->q[m->qhead]);
    free(m->q[m->qhead].data);
    m->q[m->qhead].data = NULL;
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
    checks_update(m);
}

void dispatch_queue(struct master *m)
{
    while (m->qlen) {
        struct queued *e = &m->q[m->qhead];
        if (m->mode == MODE_HANDOVER) {
            forward(m, e->fd, &e->msg, e->data);
        } else if (hand_over(m, e->fd, &e->msg, e->data) < 0) {
            /* Nobody free.  Ask workers to report when they turn free, then
             * look once more: a worker that went free just before the flag
             * was set would not report it. */
            atomic_store(&m->sb->waiting, 1);
            if (hand_over(m, e->fd, &e->msg, e->data) < 0)
                return;
        }
        pop_queue(m);
    }
    atomic_store(&m->sb->waiting, 0);
    pause_accepting(m, 0);
}

void dispatch_to(struct master *m, int i)
{
    /* Worker i said it was free when it was about to wait.  Under load it
     * is rarely still free by the time the master looks (a keep-alive
     * client of its own has sent again), and a connection queued for a
     * worker that stays free could wait for as long as the slowest request
     * runs.  The one that asked gets the oldest: it serves it after the
     * requests already waiting in it, a few milliseconds at most; unless
     * another worker, not in a long call, would own fewer even after
     * taking it (balancer_rather). */
    if (!m->qlen || master_leaving(m) || m->w[i].pid <= 0 ||
        !atomic_load(&m->sb->slot[i].accepting))
        return;
    int j = balancer_rather(m->sb, m->live, m->nlive, i, monotonic_ms(), long_call_ms(m));
    struct queued *e = &m->q[m->qhead];
    if ((j != i && m->w[j].pid > 0 && send_to(m, j, e->fd, &e->msg, e->data) == 0) ||
        send_to(m, i, e->fd, &e->msg, e->data) == 0)
        pop_queue(m);
}

/* Once per tick while serving: accepting again after a failed accept4,
 * and whatever can move in the queue. */
void dispatch_tick(struct master *m)
{
    if (m->accepting == ACCEPT_BACKOFF) {
        m->accepting = ACCEPT_FULL;
        pause_accepting(m, 0);
    }
    if (m->qlen)
        dispatch_queue(m);
}

/* INT or QUIT: what waits is closed. */
void dispatch_close_queue(struct master *m)
{
    while (m->qlen) {
        conns_close(m, m->q[m->qhead].fd);
        pop_queue(m);
    }
}

static void enqueue(struct master *m, int fd, const struct chan_msg *msg, const char *data)
{
    int tail = (m->qhead + m->qlen) % m->qcap;
    m->q[tail].fd = fd;
    m->q[tail].msg = *msg;
    m->q[tail].data = NULL;
    m->q[tail].peek = NULL;
    if (msg->datalen && !(m->q[tail].data = malloc(msg->datalen))) {
        log_err(ENOMEM, "queueing a connection");
        conns_close(m, fd);
        return;
    }
    if (msg->datalen)
        memcpy(m->q[tail].data, data, msg->datalen);
    m->qlen++;
    if (m->qlen > m->sb->totals.queued_max)
        m->sb->totals.queued_max = m->qlen;
    if (m->qlen == m->qcap) {
        /* Full: the kernel's backlog holds the rest until a worker frees. */
        pause_accepting(m, 1);
    }
    checks_update(m);
    checks_watch(m, &m->q[tail]); /* last: it may answer and drop the entry */
}

/* A connection to serve: newly accepted, handed back by a draining worker,
 * or passed on by the master we replace. */
void dispatch_take(struct master *m, int fd, const struct chan_msg *msg, const char *data)
{
    if (master_stopping(m)) {
        conns_close(m, fd);
        return;
    }
    if (m->mode == MODE_HANDOVER) {
        forward(m, fd, msg, data);
        return;
    }
    if (m->qlen == 0 && hand_over(m, fd, msg, data) == 0)
        return;
    if (workers_all_full(m)) {
        shed_held(m, fd); /* it would wait until a worker closes one of its own */
        return;
    }
    if (m->qlen == m->qcap) {
        /* Only a hand-back can find the queue full (accepting pauses when
         * it fills); there is nowhere to keep it. */
        conns_close(m, fd);
        return;
    }
    enqueue(m, fd, msg, data);
    dispatch_queue(m);
    if (m->qlen)
        scale_now(m); /* it waits: a worker more, if scaling may */
}

void dispatch_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = io->data;
    (void)loop;
    (void)revents;
    int li = (int)(io - m->accept_w);
    for (int n = 0; n < ACCEPT_BATCH && m->qlen < m->qcap; n++) {
        struct chan_msg msg;
        memset(&msg, 0, sizeof(msg));
        socklen_t sl = sizeof(msg.peer);
        int fd = accept4(io->fd, (struct sockaddr *)&msg.peer, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* Our descriptor limit: answer the connection with 503 from
             * the reserve (master_shed.c) rather than leave it waiting. */
            if ((errno == EMFILE || errno == ENFILE) && shed_accept(m, io->fd) == 0)
                continue;
            if (errno == EAGAIN)
                return;
            /* Anything else: back off instead of spinning on a readable
             * socket we cannot accept from. */
            log_err(errno, "accept4");
            pause_accepting(m, 1);
            m->accepting = ACCEPT_BACKOFF;
            return;
        }
        m->sb->totals.accepted++;
        msg.type = CHAN_CONN;
        msg.listener = (uint16_t)li;
        msg.peerlen = sl;
        if (conns_hold(m, fd, li) == 0)
            dispatch_take(m, fd, &msg, NULL);
    }
}

/* ---- what workers say ---------------------------------------------------- */

struct from_worker {
    struct master *m;
    struct wproc *wp;
    int said_free;
};

static int on_worker_msg(void *ctx, const struct chan_msg *msg, int fd, const char *data)
{
    struct from_worker *fw = ctx;
    struct master *m = fw->m;
    struct wproc *wp = fw->wp;
    int slot = (int)(wp - m->w);
    fw->said_free |= msg->type == CHAN_FREE;
    if (fd >= 0)
        close(fd); /* workers send none */
    if (msg->type == CHAN_BACK && conns_given_back(m, slot, msg) >= 0) {
        struct chan_msg conn = *msg;
        conn.type = CHAN_CONN;
        dispatch_take(m, (int)msg->id, &conn, data);
    } else if (msg->type == CHAN_CLOSED)
        conns_closed(m, slot, data, msg->datalen);
    if (msg->type == CHAN_RETIRE) {
        workers_replace(m, slot, "reached max_requests");
        if (wp->replaced_by)
            wp->recycled = STATS_MAX_REQUESTS + 1;
    }
    return CHAN_NEXT;
}

/* Read everything the worker sent.  Also called for a worker that has
 * exited: connections it handed back just before are still in the channel,
 * and closing it unread would reset them. */
static int read_channel(struct master *m, struct wproc *wp)
{
    static char data[CHAN_MAX_DATA];
    struct from_worker fw = {.m = m, .wp = wp};
    if (channel_drain(wp->ch, data, on_worker_msg, &fw) == CHAN_EOF)
        ev_io_stop(m->loop, &wp->ch_w); /* the worker died: SIGCHLD tells the rest */
    return fw.said_free;
}

void dispatch_on_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct master *m = io->data;
    struct wproc *wp = (struct wproc *)((char *)io - offsetof(struct wproc, ch_w));
    int said_free = read_channel(m, wp);
    /* Some worker turned free or became ready: the queue can move, a
     * worker waiting for its replacement may go, a generation may be up. */
    workers_check_ready(m);
    dispatch_queue(m);
    if (said_free)
        dispatch_to(m, (int)(wp - m->w));
}

void dispatch_read_channel(struct master *m, int slot)
{
    read_channel(m, &m->w[slot]);
}

void dispatch_close_listeners(struct master *m, int unlink_paths)
{
    for (int i = 0; i < m->nls; i++) {
        ev_io_stop(m->loop, &m->accept_w[i]);
        sock_close(&m->ls[i], unlink_paths);
    }
}
