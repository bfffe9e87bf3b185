/* The master's side of the health check (include/hugd/health.h).
 *
 * What the instance can do is the master's to say: it writes the part the
 * workers need (stopping, queue full) on the scoreboard, where a worker
 * that parses a health check reads it.  And while no worker is free, a
 * health check would wait in the master's queue behind everybody else's
 * requests: a saturated instance would look dead to its balancer, which
 * would take it out and push its load onto the others.  So every
 * connection the master holds is watched until its first bytes say what
 * it is.  Anything but a complete health check (health_match) is left in
 * the kernel for the worker that gets the connection, untouched; a health
 * check is read, answered here with "Connection: close", and the
 * connection is closed: a balancer opens a connection per check anyway,
 * and it leaves nothing behind in the queue.  Bytes of what may still
 * become a health check (a head split across packets) are read into the
 * queued entry, and travel to the worker with the connection if it turns
 * out to be something else.
 *
 * With proxy_protocol, a check comes after a PROXY header (HAProxy's
 * check-send-proxy), from a peer allowed to send one: the header is read
 * and skipped the same way.  A header the worker would refuse (or one
 * from a peer it would refuse) is the worker's to answer, with its 400. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hugd/health.h"
#include "hugd/http.h"
#include "hugd/log.h"
#include "hugd/proxy_proto.h"
#include "master_int.h"

/* A worker that is serving (not starting up, not on its way out). */
static int serving(struct master *m, int i)
{
    int st = atomic_load(&m->sb->slot[i].state);
    return atomic_load(&m->sb->slot[i].accepting) &&
           (st == SB_IDLE || st == SB_BUSY || st == SB_QUEUED);
}

static enum health_state state(struct master *m)
{
    if (m->stop_delay || master_stopping(m))
        return HEALTH_DRAINING;
    int any = 0;
    for (int k = 0; k < m->nlive && !any; k++)
        any = serving(m, m->live[k]);
    if (!any)
        return HEALTH_NO_WORKER;
    if (m->qlen >= m->qcap)
        return HEALTH_QUEUE_FULL;
    return HEALTH_OK;
}

void checks_update(struct master *m)
{
    /* The workers answer only while one of them is alive: what they need
     * is whether the instance stops, or the queue is full. */
    int st = m->stop_delay || master_stopping(m) ? HEALTH_DRAINING
             : m->qlen >= m->qcap                ? HEALTH_QUEUE_FULL
                                                 : HEALTH_OK;
    if (atomic_load(&m->sb->health) != st)
        atomic_store(&m->sb->health, st);
}

static struct queued *find(struct master *m, int fd)
{
    for (int k = 0; k < m->qlen; k++) {
        struct queued *e = &m->q[(m->qhead + k) % m->qcap];
        if (e->fd == fd)
            return e;
    }
    return NULL;
}

/* Out of the queue, from wherever it is in it. */
static void unqueue(struct master *m, struct queued *e)
{
    /* Rare (a health check answered from the queue): the entries behind
     * it move up one place; their watchers are pointers, and stay put. */
    int k = (int)(e - m->q);
    int pos = (k - m->qhead + m->qcap) % m->qcap;
    checks_unwatch(m, e);
    free(e->data);
    for (int p = pos; p + 1 < m->qlen; p++)
        m->q[(m->qhead + p) % m->qcap] = m->q[(m->qhead + p + 1) % m->qcap];
    m->q[(m->qhead + m->qlen - 1) % m->qcap] = (struct queued){.fd = -1};
    m->qlen--;
    checks_update(m);
}

/* 0: answered, closed and out of the queue; -1: left to a worker. */
static int answer(struct master *m, struct queued *e, enum health_match hm, size_t unread)
{
    char out[HEALTH_RESPONSE_MAX], drop[HEALTH_MAX_HEAD];
    /* The head is all there is: read it out, so that the close below
     * sends a FIN after the answer, not a reset. */
    if (unread && recv(e->fd, drop, unread, MSG_DONTWAIT) != (ssize_t)unread) {
        log_debug("reading a health check: %s", strerror(errno));
        return -1;
    }
    size_t dlen, blen;
    const char *date = http_date_header(ev_now(m->loop), &dlen);
    enum health_state st = state(m);
    size_t n = health_response(out, st, hm == HEALTH_HEAD, 0, date, dlen, &blen);
    ssize_t w = write(e->fd, out, n);
    if (w != (ssize_t)n)
        log_debug("answering a health check: %s", w < 0 ? strerror(errno) : "short write");
    log_debug("answered a health check with %d (no worker was free)", health_status(st));
    int fd = e->fd;
    unqueue(m, e);
    conns_close(m, fd);
    return 0;
}

/* The request limits a worker enforces, conservatively: a head a worker
 * would refuse with 414 or 431 is left to it. */
static int within_limits(struct master *m, const char *head, size_t len)
{
    const struct hugd_config *cfg = m->cfg;
    int lines = 0;
    for (size_t i = 0; i + 1 < len; i++)
        lines += head[i] == '\r';
    return len <= (size_t)cfg->limit_request_line && len <= (size_t)cfg->limit_request_field_size &&
           lines - 2 <= cfg->limit_request_fields;
}

enum { DONE, WATCH, GONE };

/* WATCH: look again when more comes; DONE: a worker will serve it; GONE:
 * answered, and out of the queue (e is another entry's now). */
static int look(struct master *m, struct queued *e)
{
    char buf[HEALTH_MAX_HEAD + 1];
    size_t have = e->msg.datalen;
    if (have > HEALTH_MAX_HEAD)
        return DONE;
    if (have)
        memcpy(buf, e->data, have);
    ssize_t n = recv(e->fd, buf + have, sizeof(buf) - have, MSG_PEEK | MSG_DONTWAIT);
    int eof = n == 0;
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return DONE; /* the worker will see the error */
        n = 0;
    }
    if (have + (size_t)n == 0)
        return eof ? DONE : WATCH;
    size_t head, skip = 0, total = have + (size_t)n;
    enum health_match hm = HEALTH_MORE;
    if (m->cfg->proxy_protocol) {
        struct proxy_header h;
        const char *why;
        enum proxy_verdict v = proxy_parse(buf, total, &h, &why);
        if (v == PROXY_BAD ||
            !addrmatch_peer(&m->proxy_allow, (const struct sockaddr *)&e->msg.peer))
            return DONE;
        if (v == PROXY_OK)
            skip = h.len;
    }
    if (!m->cfg->proxy_protocol || skip)
        hm = health_match(buf + skip, total - skip, m->cfg->health_path, &head);
    if ((hm == HEALTH_GET || hm == HEALTH_HEAD) && skip + head == total &&
        within_limits(m, buf + skip, head)) {
        return answer(m, e, hm, (size_t)n) == 0 ? GONE : DONE;
    }
    if (hm != HEALTH_MORE || eof)
        return DONE;
    if (n == 0)
        return WATCH;
    /* Part of what may be a health check: take it out of the kernel, or
     * the readable socket would wake us again and again for it. */
    char *d = realloc(e->data, have + (size_t)n);
    if (!d)
        return DONE;
    e->data = d;
    ssize_t r = recv(e->fd, d + have, (size_t)n, MSG_DONTWAIT);
    if (r > 0)
        e->msg.datalen += (uint32_t)r;
    return r > 0 ? WATCH : DONE;
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct master *m = io->data;
    struct queued *e = find(m, io->fd);
    if (!e || e->peek != io) {
        ev_io_stop(m->loop, io); /* cannot happen: unwatch stops it */
        return;
    }
    if (look(m, e) == DONE)
        checks_unwatch(m, e);
}

void checks_watch(struct master *m, struct queued *e)
{
    e->peek = NULL;
    if (!m->cfg->health_path || m->mode == MODE_HANDOVER)
        return;
    if (look(m, e) != WATCH)
        return;
    ev_io *io = malloc(sizeof(*io));
    if (!io)
        return; /* a worker answers it, later */
    ev_io_init(io, on_readable, e->fd, EV_READ);
    io->data = m;
    ev_io_start(m->loop, io);
    e->peek = io;
}

void checks_unwatch(struct master *m, struct queued *e)
{
    if (!e->peek)
        return;
    ev_io_stop(m->loop, e->peek);
    free(e->peek);
    e->peek = NULL;
}
