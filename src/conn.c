/* Connection lifecycle in a worker: read, parse, write, keep alive or
 * close; see include/hugd/conn.h.  Nothing here calls the application:
 * conn_advance stops where a connection needs it and says so.  A
 * connection that fails inside conn_advance is marked dead (drop) and
 * closed by it before it returns, so no caller is left holding a freed
 * one; a watcher's callback closes at once what holds nothing of the
 * application's (drop_now), and marks dead, for the batch, what does. */
#include "hugd/conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hugd/accesslog.h"
#include "hugd/health.h"
#include "hugd/http.h"
#include "hugd/log.h"
#include "hugd/sock.h"
#include "hugd/stats.h"

#define READ_CHUNK 16384
#define LINGER_SECONDS 2.0
/* An output buffer bigger than this is freed once its response is out, so
 * that an idle keep-alive connection does not keep a large response's
 * memory. */
#define OUT_KEEP (64 << 10)
/* Ids per CHAN_CLOSED message: small enough that one fits in the channel's
 * buffer while the master reads. */
#define CLOSED_PER_MSG 1024

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static int flush_blocking(void *ctx);

/* What the master is to do with this connection if this worker dies:
 * SBC_IDLE, it goes to another worker; SBC_ACTIVE, it is closed. */
static void share_state(struct conn *c, int st)
{
    if (c->shared != st && c->rec) {
        c->shared = st;
        atomic_store_explicit(&c->rec->state, (uint8_t)st, memory_order_release);
    }
}

/* Nothing read since the last response: nothing of it lives only here
 * (but for the client's address from a PROXY header). */
static void share_if_idle(struct conn *c)
{
    if (c->state == CONN_READING && !c->req.started && c->in.off == c->in.len)
        share_state(c, c->proxy_state == CONN_PROXY_DONE ? SBC_IDLE_PROXIED : SBC_IDLE);
}

/* Something to do: after this loop iteration's callbacks the worker's
 * batch advances it (conn_next_ready), one connection at a time.  Pushed
 * at the head because libev calls an iteration's callbacks in the reverse
 * of epoll's order, and epoll reports descriptors in the order they became
 * readable: so connections that became readable while the worker was busy
 * run in the order their requests arrived (tests/test_move.py, arrival
 * order).  Those the channel brings (conn_start) keep no such order. */
static void mark_ready(struct conn *c)
{
    struct conn_pool *p = c->pool;
    if (c->in_ready)
        return;
    c->in_ready = 1;
    c->ready_next = p->ready;
    p->ready = c;
    if (!p->draining)
        atomic_store(&p->slot->state, SB_QUEUED);
}

struct conn *conn_next_ready(struct conn_pool *p)
{
    struct conn *c = p->ready;
    if (c) {
        p->ready = c->ready_next;
        c->in_ready = 0;
    }
    return c;
}

/* The first byte of `in` that still has to reach a worker's parser: the
 * start of a request head not yet complete, or the unparsed rest. */
static size_t unrun_from(const struct conn *c)
{
    return c->state == CONN_READING && c->req.started && !c->req.head_done ? c->head_mark
                                                                           : c->in.off;
}

/* Recount the response bytes c holds in memory (written or not: they are
 * held until the whole buffer or tail is out) into the pool's total, for
 * max_pending_output.  Called where writing ends, so that it costs two
 * compares per write. */
static void count_output(struct conn *c)
{
    const struct http_response *rp = &c->resp;
    size_t held = rp->out.len + (rp->tail_off < rp->tail_len ? rp->tail_len : 0);
    if (held != c->out_held) {
        c->pool->output_held = c->pool->output_held - c->out_held + held;
        c->out_held = held;
    }
}

static void set_deadline(struct conn *c, double seconds)
{
    struct ev_loop *loop = c->pool->loop;
    if (seconds <= 0) {
        /* 0 means no limit. */
        ev_timer_stop(loop, &c->timer);
        c->deadline = 0;
        return;
    }
    c->deadline = ev_now(loop) + seconds;
    if (!ev_is_active(&c->timer) || ev_timer_remaining(loop, &c->timer) > seconds + 0.01) {
        ev_timer_stop(loop, &c->timer);
        ev_timer_set(&c->timer, seconds, 0.);
        ev_timer_start(loop, &c->timer);
    }
    /* A later deadline leaves the timer alone: when it fires early it
     * re-arms itself for the rest (see on_timer), so the common case of
     * pushing a deadline back costs no heap update. */
}

static void want(struct conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->pool->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    if (events)
        ev_io_start(c->pool->loop, &c->io);
}

/* A response the application just produced while more connections of
 * this loop iteration wait their turn is written corked (TCP_CORK): it is
 * in the kernel, where it outlives this worker (the master holds a copy
 * of each descriptor), but the client is not woken for it yet.  The batch
 * goes out together at its end (conn_uncork_all), and no later than
 * CONN_CORK_HOLD_NS after its first cork: the worker checks after each
 * application call, the mover while a call lasts (mover.h).  Waking a
 * client on another CPU once per response instead cost a third of a
 * worker's throughput on loopback.  Without a mover nothing would bound
 * the wait during a long call: no cork then. */
static void cork(struct conn *c)
{
    struct conn_pool *p = c->pool;
    if (!c->tcp || c->corked || !p->ready || !p->may_cork)
        return;
    int one = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) < 0)
        return;
    if (!p->corked)
        atomic_store_explicit(&p->corked_since_ns, monotonic_ns(), memory_order_release);
    c->corked = 1;
    c->corked_next = p->corked;
    p->corked = c;
}

static void uncork(struct conn *c)
{
    int zero = 0;
    /* Fails only for a socket already gone: nothing to push. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
}

void conn_uncork_all(struct conn_pool *p)
{
    for (struct conn *c = p->corked; c; c = c->corked_next) {
        if (!c->given_away) /* conn_give_away pushed it: another worker's now */
            uncork(c);
        c->corked = 0;
    }
    p->corked = NULL;
    atomic_store_explicit(&p->corked_since_ns, 0, memory_order_relaxed);
}

void conn_start(struct conn_pool *p, int fd, const struct chan_msg *m, const char *data)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_err(ENOMEM, "cannot take a connection");
        close(fd);
        return;
    }
    c->pool = p;
    c->fd = fd;
    c->resp.flush = flush_blocking;
    c->resp.flush_ctx = c;
    c->resp.stopping = &p->sb->stopping;
    c->id = m->id;
    c->rec = sb_conn(p->sb, (int)m->id);
    c->listener = m->listener < p->nlisteners ? m->listener : 0;
    c->resp.file_fd = -1;
    c->resp.content_length = -1;
    c->peer = m->peer;
    c->peerlen = m->peerlen;
    const struct sockaddr *sa = (const struct sockaddr *)&m->peer;
    sock_peer_text(sa, c->peer_addr, sizeof(c->peer_addr), c->peer_port, sizeof(c->peer_port));
    conn_client_start(c);
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        int one = 1;
        c->tcp = 1;
        /* Responses go out in one write; don't let Nagle hold the tail. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    http_reader_init(&c->parser, &c->req);
    c->req.listener = c->listener;
    c->req.remote_addr = c->peer_addr;
    c->req.remote_port = c->peer_port;
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_init(&c->timer, on_timer);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    c->state = CONN_READING;
    ev_io_start(p->loop, &c->io);
    set_deadline(c, p->cfg->header_timeout);
    if (m->datalen) {
        /* Moved here with a request (or part of one) another worker had
         * read: it is to be run even if the socket has nothing more. */
        share_state(c, SBC_ACTIVE);
        buf_append(&c->in, data, m->datalen);
    } else {
        share_state(c, SBC_IDLE);
    }
    /* The request is usually there already: its turn comes in this loop
     * iteration, not after the next wait. */
    c->readable = 1;
    mark_ready(c);
}

/* The master is to close its copy too (not when the connection went back
 * to the master). */
static void note_closed(struct conn_pool *p, uint32_t id, int released)
{
    atomic_fetch_add(&p->slot->closed, 1);
    if (atomic_load(&p->slot->full))
        atomic_store(&p->slot->full, 0);
    if (!released)
        return;
    if (p->nclosed == p->capclosed)
        conn_flush_closed(p);
    if (p->nclosed == p->capclosed) {
        int cap = p->capclosed ? p->capclosed * 2 : CLOSED_PER_MSG;
        uint32_t *ids = realloc(p->closed_ids, (size_t)cap * sizeof(uint32_t));
        if (ids) {
            p->closed_ids = ids;
            p->capclosed = cap;
        } else {
            /* The master keeps its copy until this worker exits: a late
             * close, not a lost request. */
            log_err(ENOMEM, "cannot note a closed connection");
        }
    }
    if (p->nclosed < p->capclosed)
        p->closed_ids[p->nclosed++] = id;
}

void conn_flush_closed(struct conn_pool *p)
{
    int sent = 0;
    while (sent < p->nclosed) {
        int n = p->nclosed - sent < CLOSED_PER_MSG ? p->nclosed - sent : CLOSED_PER_MSG;
        struct chan_msg m;
        memset(&m, 0, sizeof(m));
        m.type = CHAN_CLOSED;
        m.datalen = (uint32_t)((size_t)n * sizeof(uint32_t));
        if (channel_send(p->channel, &m, p->closed_ids + sent) < 0)
            break; /* the master is behind: the rest next time (the states say CLOSED meanwhile) */
        sent += n;
    }
    if (sent > 0 && sent < p->nclosed)
        memmove(p->closed_ids, p->closed_ids + sent,
                (size_t)(p->nclosed - sent) * sizeof(uint32_t));
    p->nclosed -= sent;
}

static void unlink_from(struct conn **head, struct conn *c, size_t next_off)
{
    struct conn **pp = head;
    while (*pp != c)
        pp = (struct conn **)((char *)*pp + next_off);
    *pp = *(struct conn **)((char *)c + next_off);
}

void conn_close(struct conn *c)
{
    struct conn_pool *p = c->pool;
    if (c->in_ready)
        unlink_from(&p->ready, c, offsetof(struct conn, ready_next));
    if (c->corked) /* close() pushes what it holds */
        unlink_from(&p->corked, c, offsetof(struct conn, corked_next));
    p->output_held -= c->out_held;
    ev_io_stop(p->loop, &c->io);
    ev_timer_stop(p->loop, &c->timer);
    if (!c->given_away) {
        share_state(c, SBC_CLOSED);
        /* The master holds a copy until it hears of this: end the
         * connection now, not when that copy goes. */
        shutdown(c->fd, SHUT_RDWR);
    }
    if (p->epoll_fd >= 0) {
        /* The descriptor lives on elsewhere (the master's copy, another
         * worker): without this, its events would go on reaching our epoll
         * set after close(), and libev would rebuild the whole set. */
        epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    }
    close(c->fd);
    if (c->resp.file_fd >= 0)
        close(c->resp.file_fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->nconns--;
    http_request_free(&c->req);
    buf_free(&c->in);
    buf_free(&c->resp.out);
    buf_free(&c->resp.head);
    buf_free(&c->resp.status_line);
    uint32_t id = c->id;
    int released = !c->given_away;
    free(c);
    note_closed(p, id, released);
}

/* The connection is done for: the worker's batch closes it (conn_advance),
 * after letting go of the application's objects if it still holds them.
 * Returns -1, the connection's state is CONN_DEAD. */
static int drop(struct conn *c)
{
    c->state = CONN_DEAD;
    c->readable = 0;
    ev_io_stop(c->pool->loop, &c->io);
    ev_timer_stop(c->pool->loop, &c->timer);
    mark_ready(c);
    return -1;
}

/* Give an idle keep-alive connection back to the master, which passes it
 * to another worker: the client never sees it close.  0, or -1 (the
 * channel is full: it stays). */
int conn_give_away(struct conn *c)
{
    /* No Python, no loop: the mover calls it.  What was read and not yet
     * run travels with the connection. */
    size_t from = unrun_from(c);
    uint8_t carry[PROXY_ENCODED_MAX];
    size_t clen = conn_client_carry(c, carry);
    struct chan_msg m;
    memset(&m, 0, sizeof(m));
    m.type = CHAN_BACK;
    m.id = c->id;
    m.listener = (uint16_t)c->listener;
    m.peerlen = (uint32_t)c->peerlen;
    m.peer = c->peer;
    m.datalen = (uint32_t)(clen + c->in.len - from);
    if (clen + c->in.len - from > CHAN_MAX_DATA) {
        errno = EMSGSIZE;
        return -1;
    }
    if (c->corked)
        uncork(c); /* the next worker writes its own responses uncorked */
    if (channel_send2(c->pool->channel, &m, carry, clen, c->in.p ? c->in.p + from : NULL,
                      c->in.len - from) < 0)
        return -1;
    c->given_away = 1;
    return 0;
}

/* The same from a watcher's callback, where nobody else holds c: with
 * nothing of the application's left it closes now (its FIN must not wait
 * behind this iteration's batch). */
static void drop_now(struct conn *c)
{
    if (http_response_held(&c->resp))
        drop(c);
    else
        conn_close(c);
}

static int hand_back(struct conn *c)
{
    if (conn_give_away(c) < 0)
        log_debug("cannot hand a connection back: %s", strerror(errno));
    return drop(c);
}

/* Half-close and drain what the client still sends for a moment, so that
 * the response is not destroyed by a reset caused by unread input. */
static void start_closing(struct conn *c)
{
    c->state = CONN_CLOSING;
    if (shutdown(c->fd, SHUT_WR) < 0 || c->peer_eof) {
        drop(c);
        return;
    }
    want(c, EV_READ);
    set_deadline(c, LINGER_SECONDS);
}

static void linger_read(struct conn *c)
{
    char scratch[4096];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof(scratch));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        drop_now(c);
        return;
    }
}

/* Write what is queued: the buffer, then the tail, then the file.  The
 * one write loop of a connection.  1: all out; 0: the socket is full; -1:
 * failed (errno; ENODATA: the file being sent shrank). */
static int write_out(struct conn *c)
{
    struct http_response *rp = &c->resp;
    for (;;) {
        size_t head = buf_pending(&rp->out);
        size_t tail = rp->tail_len - rp->tail_off;
        if (head + tail == 0)
            break;
        struct iovec iov[2];
        int n = 0;
        if (head)
            iov[n++] = (struct iovec){rp->out.p + rp->out.off, head};
        if (tail)
            iov[n++] = (struct iovec){(void *)(rp->tail + rp->tail_off), tail};
        ssize_t w = n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len) : writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        size_t done = (size_t)w;
        size_t from_head = done < head ? done : head;
        rp->out.off += from_head;
        done -= from_head;
        if (rp->out.off == rp->out.len)
            buf_clear(&rp->out);
        rp->tail_off += done;
    }
    while (rp->file_left) {
        size_t want_n = rp->file_left > (1u << 30) ? (1u << 30) : (size_t)rp->file_left;
        ssize_t w = sendfile(c->fd, rp->file_fd, &rp->file_off, want_n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (w == 0) {
            errno = ENODATA;
            return -1;
        }
        rp->file_left -= (uint64_t)w;
    }
    return 1;
}

/* Write what is queued.  1: all out; 0: the socket is full; -1: failed,
 * the connection is dead. */
static int flush(struct conn *c)
{
    struct http_response *rp = &c->resp;
    int r = write_out(c);
    if (r < 0) {
        if (errno == ENODATA) /* the promised length can't be met */
            log_warnx("file for %s ended early; closing the connection", c->peer_addr);
        else
            log_debug("write to %s: %s", c->peer_addr, strerror(errno));
        count_output(c);
        return drop(c);
    }
    if (r == 1 && rp->file_fd >= 0 && rp->finished) {
        close(rp->file_fd);
        rp->file_fd = -1;
    }
    count_output(c);
    return r;
}

/* For the application's write(): everything queued goes out now, waiting
 * for the client up to the timeout.  0, or -1 (the connection is to close;
 * it is closed later, not under the application). */
static int flush_blocking(void *ctx)
{
    struct conn *c = ctx;
    double limit = c->pool->cfg->write_timeout;
    int rc = 0;
    for (;;) {
        int r = write_out(c);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 1)
            break;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        int pr = poll(&pfd, 1, limit > 0 ? (int)(limit * 1000) : -1);
        if (pr < 0 && errno == EINTR)
            continue; /* a signal to the worker is no reason to give up */
        if (pr <= 0) {
            if (pr == 0)
                log_debug("write to %s timed out (write_timeout)", c->peer_addr);
            rc = -1;
            break;
        }
    }
    count_output(c);
    return rc;
}

static void access_log(struct conn *c)
{
    if (!log_access_enabled())
        return;
    ev_tstamp now = ev_time();
    const struct accesslog_entry e = {
        .req = &c->req,
        .status = c->resp.status,
        .bytes = c->resp.body_sent,
        .now = now,
        .duration = c->req.started_at > 0 ? now - c->req.started_at : 0,
        .peer = conn_client_addr(c),
        .resp_head = c->resp.head.p,
        .resp_head_len = c->resp.head.len,
    };
    accesslog_write(&e);
}

/* A response is all out: what every response is counted for (the
 * scoreboard's counters; the worker reads them for max_requests). */
static void account_response(struct conn *c)
{
    access_log(c);
    c->requests++;
    struct sb_slot *s = c->pool->slot;
    int status = c->resp.status;
    double seconds =
        c->req.started_at > 0 ? ev_now(c->pool->loop) - c->req.started_at : 0; /* no syscall */
    uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
    if (status >= 100 && status < 600)
        sb_add(&s->by_class[status / 100 - 1], 1);
    sb_add(&s->resp_hist[stats_bucket(seconds)], 1);
    sb_add(&s->resp_us_sum, us);
    if (us > atomic_load_explicit(&s->resp_us_max, memory_order_relaxed))
        atomic_store_explicit(&s->resp_us_max, us, memory_order_relaxed);
    atomic_fetch_add(&s->requests, 1);
}

/* The response is out and let go of: on to the next request, or close. */
static void finish_response(struct conn *c)
{
    struct conn_pool *p = c->pool;
    account_response(c);
    buf_clear(&c->resp.head);
    if (c->resp.out.cap > OUT_KEEP)
        buf_free(&c->resp.out);
    if (!c->resp.keepalive) {
        start_closing(c);
        return;
    }
    http_next(&c->parser);
    c->req.remote_addr = c->peer_addr;
    c->req.remote_port = c->peer_port;
    c->state = CONN_READING;
    if (p->draining && c->in.off == c->in.len && atomic_load(&p->sb->stopping) != SB_STOP_LINGER) {
        hand_back(c);
        return;
    }
    share_if_idle(c);
    want(c, EV_READ);
    set_deadline(c, p->cfg->keepalive);
}

/* A response hugd writes itself (an error, the health path): in the
 * output, the connection responding. */
static void answer_error(struct conn *c, int status)
{
    c->resp.status = status;
    /* What the access log counts: the reason line http_error_response sends,
     * not what a previous response on this connection sent. */
    c->resp.body_sent = strlen(http_reason(status)) + 1;
    c->resp.keepalive = 0;
    c->resp.finished = 1;
    http_error_response(&c->resp.out, status, ev_now(c->pool->loop));
    c->state = CONN_RESPONDING;
}

static int is_health_check(const struct conn *c)
{
    const struct http_request *r = &c->req;
    const char *path = c->pool->cfg->health_path;
    return path && (r->method == HTTP_GET || r->method == HTTP_HEAD) &&
           health_target_is(r->arena.p + r->url, r->url_len, path);
}

/* The health path, without the application: the state is the master's
 * (health.h), read from the scoreboard. */
static void answer_health(struct conn *c)
{
    enum health_state st = (enum health_state)atomic_load(&c->pool->sb->health);
    char out[HEALTH_RESPONSE_MAX];
    size_t dlen, blen;
    const char *date = http_date_header(ev_now(c->pool->loop), &dlen);
    size_t n =
        health_response(out, st, c->req.method == HTTP_HEAD, c->resp.keepalive, date, dlen, &blen);
    buf_append(&c->resp.out, out, n);
    c->resp.status = health_status(st);
    c->resp.body_sent = blen;
    c->resp.finished = 1;
}

static void send_continue(struct conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->req.expect_continue = 0;
    ssize_t n = write(c->fd, msg, sizeof(msg) - 1);
    /* A short write of 25 bytes to a fresh socket doesn't happen; if it did
     * the client just sends the body after its own timeout. */
    (void)n;
}

enum step {
    STEP_WAIT,  /* more input is needed */
    STEP_AGAIN, /* the state changed: advance again */
    STEP_RUN,   /* a request for the application */
};

/* Parse what is in c->in, up to one request. */
static enum step parse(struct conn *c)
{
    struct conn_pool *p = c->pool;
    while (c->in.off < c->in.len) {
        if (c->proxy_state == CONN_PROXY_WANTED || c->proxy_state == CONN_PROXY_REFUSED) {
            int r = conn_client_proxy(c);
            if (r < 0) {
                answer_error(c, c->req.error_status);
                return STEP_AGAIN;
            }
            if (r == 0) {
                if (!c->req.timed) {
                    /* The header and the request head after it share one
                     * deadline, from the header's first byte. */
                    c->req.timed = 1;
                    set_deadline(c, p->cfg->header_timeout);
                }
                return STEP_WAIT;
            }
            continue;
        }
        if (!c->req.started)
            c->head_mark = c->in.off;
        c->req.now = ev_now(p->loop);
        enum http_feed_result r = http_feed(&c->parser, &c->in);
        if (r == FEED_ERROR) {
            answer_error(c, c->req.error_status);
            return STEP_AGAIN;
        }
        if (r == FEED_NEED_MORE) {
            if (c->req.expect_continue)
                send_continue(c);
            /* The head must be complete header_timeout after its first
             * byte (a client dripping bytes can't stretch it); a body only
             * has to keep moving. */
            if (c->req.head_done || (c->req.started && !c->req.timed)) {
                c->req.timed = 1;
                set_deadline(c, p->cfg->header_timeout);
            }
            return STEP_WAIT;
        }
        /* A whole request.  The read watcher stays on: on_io only notes
         * input while responding, and most responses finish before the
         * loop runs again, so toggling it would cost two epoll_ctl calls
         * each. */
        c->state = CONN_RESPONDING;
        c->resp.keepalive =
            c->req.keepalive && p->cfg->keepalive > 0 && !atomic_load(&p->sb->stopping);
        conn_client_forwarded(c);
        c->req.remote_addr = conn_client_addr(c);
        c->req.remote_port = conn_client_port(c);
        if (is_health_check(c)) {
            answer_health(c);
            return STEP_AGAIN;
        }
        c->fresh = 1;
        return STEP_RUN;
    }
    return STEP_WAIT;
}

/* One read into c->in.  >0: bytes; 0: nothing there; -1: the connection
 * is dead.  Only here, right before a request runs, do its bytes leave the
 * kernel: a connection waiting its turn keeps them there, where the
 * master's copy of the descriptor still reaches them if this worker dies,
 * and where the mover can see them. */
static ssize_t read_in(struct conn *c)
{
    size_t keep = unrun_from(c);
    if (keep && c->in.cap - c->in.len < READ_CHUNK / 2) {
        memmove(c->in.p, c->in.p + keep, c->in.len - keep);
        c->in.len -= keep;
        c->in.off -= keep;
        c->head_mark -= c->head_mark >= keep ? keep : c->head_mark;
    }
    buf_reserve(&c->in, READ_CHUNK);
    size_t room = c->in.cap - c->in.len;
    /* Before the bytes leave the kernel: from here on they exist only in
     * this worker. */
    share_state(c, SBC_ACTIVE);
    ssize_t n;
    do
        n = read(c->fd, c->in.p + c->in.len, room);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN) {
            c->readable = 0;
            return 0;
        }
        log_debug("read from %s: %s", c->peer_addr, strerror(errno));
        return drop(c);
    }
    if (n == 0) {
        /* The client is done.  Mid-request, nothing can be answered. */
        c->peer_eof = 1;
        return drop(c);
    }
    c->in.len += (size_t)n;
    if ((size_t)n < room)
        c->readable = 0; /* the kernel had no more: the next comes with an event */
    return n;
}

static enum step read_step(struct conn *c)
{
    for (;;) {
        enum step s = parse(c);
        if (s != STEP_WAIT)
            return s;
        if (!c->readable)
            break;
        ssize_t n = read_in(c);
        if (n < 0)
            return STEP_AGAIN;
        if (n == 0)
            break;
    }
    if (unrun_from(c) == c->in.len)
        buf_clear(&c->in);
    share_if_idle(c);
    return STEP_WAIT;
}

enum conn_need conn_advance(struct conn *c)
{
    for (;;) {
        switch (c->state) {
        case CONN_DEAD:
            if (http_response_held(&c->resp))
                return CONN_NEED_FINISH;
            conn_close(c);
            return CONN_NEED_NOTHING;
        case CONN_CLOSING:
            return CONN_NEED_NOTHING;
        case CONN_READING: {
            if (c->given_away)
                return CONN_NEED_NOTHING; /* another worker's now: conn_sweep lets go */
            enum step s = read_step(c);
            if (s == STEP_RUN)
                return CONN_NEED_RESPOND;
            if (s == STEP_WAIT)
                return CONN_NEED_NOTHING;
            continue;
        }
        case CONN_RESPONDING: {
            if (c->fresh) {
                c->fresh = 0;
                cork(c);
            }
            int r = flush(c);
            if (r < 0)
                continue;
            if (r == 0) {
                /* Pushed back at each write that gets somewhere: a client
                 * that reads slowly is served, one that stops reading is
                 * not kept. */
                want(c, EV_WRITE);
                set_deadline(c, c->pool->cfg->write_timeout);
                return CONN_NEED_NOTHING;
            }
            if (!c->resp.finished)
                return CONN_NEED_PRODUCE;
            if (http_response_held(&c->resp))
                return CONN_NEED_FINISH;
            finish_response(c);
            continue;
        }
        }
    }
}

void conn_broken_response(struct conn *c)
{
    /* Headers are out and the body cannot be completed: the only honest
     * signal left is closing the connection. */
    c->resp.keepalive = 0;
    c->resp.finished = 1;
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct conn *c = (struct conn *)((char *)io - offsetof(struct conn, io));
    if (c->given_away || c->state == CONN_DEAD)
        return; /* another worker's now, or about to close */
    if (c->state == CONN_CLOSING) {
        linger_read(c);
        return;
    }
    if (revents & EV_READ)
        c->readable = 1;
    if (c->state == CONN_RESPONDING ? (revents & EV_WRITE) != 0 : (revents & EV_READ) != 0)
        mark_ready(c); /* its turn comes in this loop iteration's batch */
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    if (c->given_away || c->state == CONN_DEAD)
        return;
    ev_tstamp left = c->deadline - ev_now(loop);
    if (left > 0.001) {
        ev_timer_set(t, left, 0.);
        ev_timer_start(loop, t);
        return;
    }
    if (c->state == CONN_READING && (c->req.started || conn_client_pending(c)) &&
        !c->pool->draining) {
        /* Said as every other refusal is (http.c's refused()): at info
         * level, at most a line a second, with the number left out. */
        static struct log_limit limit;
        log_limited(&limit, LOG_LVL_INFO, "refused a request from %s: 408 %s: %s", c->peer_addr,
                    http_reason(408),
                    c->req.head_done ? "the body stopped coming (header_timeout)"
                                     : "the request head did not arrive within header_timeout");
        answer_error(c, 408);
        mark_ready(c);
        return;
    }
    if (c->state == CONN_RESPONDING)
        log_debug("write to %s timed out (write_timeout); closing", c->peer_addr);
    drop_now(c);
}

enum conn_move conn_move_plan(const struct conn *c)
{
    if (c->given_away)
        return MOVE_STAY;
    if (c->state != CONN_READING || c->req.head_done) {
        /* A body arriving, a response to a slow reader or from a generator,
         * a closing connection: only this worker can go on with them. */
        return MOVE_STAY;
    }
    uint8_t carry[PROXY_ENCODED_MAX];
    size_t n = c->in.len - unrun_from(c);
    if (n + conn_client_carry(c, carry) > CHAN_MAX_DATA)
        return MOVE_STAY;
    return n ? MOVE_NOW : MOVE_ON_INPUT;
}

void conn_sweep(struct conn_pool *p)
{
    for (struct conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        if (c->given_away)
            conn_close(c);
    }
}

void conn_drain(struct conn *c)
{
    /* A stop behind a balancer (include/hugd/scoreboard.h): an idle
     * connection stays until its keep-alive timeout, as it would have
     * anyway, and a request on it is answered with "Connection: close".
     * Closing it now could cut it under a request on its way. */
    if (atomic_load(&c->pool->sb->stopping) == SB_STOP_LINGER)
        return;
    if (c->state == CONN_READING && !c->req.started && c->in.off == c->in.len)
        hand_back(c);
    /* The others go after their response: finish_response sees draining. */
}
