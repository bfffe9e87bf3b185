/* Connection lifecycle in a worker: read, parse, respond, keep alive or
 * close.  Functions that may close the connection return -1 when they did,
 * so callers never touch a freed conn. */
#include "hugd/conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hugd/accesslog.h"
#include "hugd/health.h"
#include "hugd/http.h"
#include "hugd/log.h"
#include "hugd/worker.h"
#include "hugd/wsgi.h"

#define READ_CHUNK 16384
#define LINGER_SECONDS 2.0
/* An output buffer bigger than this is freed once its response is out, so
 * that an idle keep-alive connection does not keep a large response's
 * memory. */
#define OUT_KEEP (64 << 10)

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static int process(struct conn *c);
static int flush_blocking(struct conn *c);

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

/* Input waits in the kernel: read, parse and run it after this loop
 * iteration's callbacks (conn_run_ready), one connection at a time. */
static void mark_ready(struct conn *c)
{
    if (c->in_ready)
        return;
    c->in_ready = 1;
    c->ready_next = c->w->ready;
    c->w->ready = c;
    if (!c->w->draining) {
        atomic_store(&c->w->slot->state, SB_QUEUED);
        c->w->told_free = 0; /* free again later: say so again */
    }
}

/* The first byte of `in` that still has to reach a worker's parser: the
 * start of a request head not yet complete, or the unparsed rest. */
static size_t unrun_from(const struct conn *c)
{
    return c->state == CONN_READING && c->req.started && !c->req.head_done ? c->head_mark
                                                                           : c->in.off;
}

/* The application, around each call into it (the iterable's close()
 * included): the scoreboard shows the request, the timeout sees it, and the
 * mover may move the other connections. */
static void app_enter(struct conn *c)
{
    const struct http_request *r = &c->req;
    c->resp.now = ev_now(c->w->loop);
    worker_enter_app(c->w, c, llhttp_method_name((llhttp_method_t)r->method), r->arena.p + r->url,
                     r->url_len);
}

/* Recount the response bytes c holds in memory (written or not: they are
 * held until the whole buffer or bytes object is out) into its worker's
 * total, for max_pending_output.  Called where writing ends, so that it
 * costs two compares per write. */
static void count_output(struct conn *c)
{
    size_t held = c->out.len;
    if (c->resp.pending)
        held += (size_t)PyBytes_GET_SIZE((PyObject *)c->resp.pending);
    if (held != c->out_held) {
        worker_count_output(c->w, c->out_held, held);
        c->out_held = held;
    }
}

static void set_deadline(struct conn *c, double seconds)
{
    struct ev_loop *loop = c->w->loop;
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

/* A response finished while more connections of this loop iteration wait
 * their turn is written corked (TCP_CORK): it is in the kernel, where it
 * outlives this worker (the master holds a copy of each descriptor), but
 * the client is not woken for it yet.  The batch goes out together at its
 * end (conn_run_ready), or from the mover once one call of the batch has
 * lasted (mover.h).  Waking a client on another CPU once per response
 * instead cost a third of a worker's throughput on loopback.  Without a
 * mover nothing would bound the wait: no cork then. */
static void cork(struct conn *c)
{
    struct worker *w = c->w;
    if (!c->tcp || c->corked || !w->ready || !w->mover.running)
        return;
    int one = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) < 0)
        return;
    c->corked = 1;
    c->corked_next = w->corked;
    w->corked = c;
    atomic_store_explicit(&w->mover.corked, 1, memory_order_release);
}

static void uncork(struct conn *c)
{
    int zero = 0;
    /* Fails only for a socket already gone: nothing to push. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
}

void conn_uncork_all(struct worker *w)
{
    for (struct conn *c = w->corked; c; c = c->corked_next) {
        if (!c->given_away) /* conn_give_away pushed it: another worker's now */
            uncork(c);
        c->corked = 0;
    }
    w->corked = NULL;
    atomic_store_explicit(&w->mover.corked, 0, memory_order_relaxed);
}

static void want(struct conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    if (events)
        ev_io_start(c->w->loop, &c->io);
}

void conn_start(struct worker *w, int fd, const struct chan_msg *m, const char *data)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_err(ENOMEM, "cannot take a connection");
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->resp.flush = flush_blocking;
    c->resp.stopping = &w->sb->stopping;
    c->id = m->id;
    c->rec = sb_conn(w->sb, (int)m->id);
    c->listener = m->listener < w->nlisteners ? m->listener : 0;
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
    http_conn_init(c);
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_init(&c->timer, on_timer);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    c->state = CONN_READING;
    ev_io_start(w->loop, &c->io);
    set_deadline(c, w->cfg->header_timeout);
    if (m->datalen) {
        /* Moved here with a request (or part of one) another worker had
         * read: it is to be run even if the socket has nothing more. */
        share_state(c, SBC_ACTIVE);
        buf_append(&c->in, data, m->datalen);
        mark_ready(c);
    } else {
        share_state(c, SBC_IDLE);
    }
    /* The request is usually there already: read it now, not after a loop
     * iteration. */
    on_io(w->loop, &c->io, EV_READ);
}

void conn_close(struct conn *c)
{
    struct worker *w = c->w;
    if (c->in_ready) {
        struct conn **pp = &w->ready;
        while (*pp != c)
            pp = &(*pp)->ready_next;
        *pp = c->ready_next;
    }
    if (c->corked) {
        /* close() pushes what it holds. */
        struct conn **pp = &w->corked;
        while (*pp != c)
            pp = &(*pp)->corked_next;
        *pp = c->corked_next;
    }
    if (c->resp.result) {
        app_enter(c);
        wsgi_finish(c);
        worker_leave_app(w);
    }
    wsgi_drop_pending(c);
    worker_count_output(w, c->out_held, 0);
    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->timer);
    if (!c->given_away) {
        share_state(c, SBC_CLOSED);
        /* The master holds a copy until it hears of this: end the
         * connection now, not when that copy goes. */
        shutdown(c->fd, SHUT_RDWR);
    }
    if (w->epoll_fd >= 0) {
        /* The descriptor lives on elsewhere (the master's copy, another
         * worker): without this, its events would go on reaching our epoll
         * set after close(), and libev would rebuild the whole set. */
        epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    }
    close(c->fd);
    if (c->resp.file_fd >= 0)
        close(c->resp.file_fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    http_request_free(&c->req);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->resp.head);
    buf_free(&c->resp.status_line);
    uint32_t id = c->id;
    int released = !c->given_away;
    free(c);
    worker_conn_closed(w, id, released);
}

/* Give an idle keep-alive connection back to the master, which passes it
 * to another worker: the client never sees it close.  Always returns -1:
 * the connection is no longer ours either way. */
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
    if (channel_send2(c->w->channel, &m, carry, clen, c->in.p ? c->in.p + from : NULL,
                      c->in.len - from) < 0)
        return -1;
    c->given_away = 1;
    return 0;
}

static int hand_back(struct conn *c)
{
    if (conn_give_away(c) < 0)
        log_debug("cannot hand a connection back: %s", strerror(errno));
    conn_close(c);
    return -1;
}

/* Half-close and drain what the client still sends for a moment, so that
 * the response is not destroyed by a reset caused by unread input. */
static int start_closing(struct conn *c)
{
    c->state = CONN_CLOSING;
    if (shutdown(c->fd, SHUT_WR) < 0 || c->peer_eof) {
        conn_close(c);
        return -1;
    }
    want(c, EV_READ);
    set_deadline(c, LINGER_SECONDS);
    return 0;
}

static int linger_read(struct conn *c)
{
    char scratch[4096];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof(scratch));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        conn_close(c);
        return -1;
    }
}

/* Write what is queued, with no Python and without closing.  1: all out;
 * 0: the socket is full; -1: failed (errno; ENODATA: the file being sent
 * shrank). */
static int write_out(struct conn *c)
{
    struct http_response *rp = &c->resp;
    for (;;) {
        size_t head = buf_pending(&c->out);
        size_t tail = 0;
        const char *tailp = NULL;
        if (rp->pending) {
            tailp = PyBytes_AS_STRING((PyObject *)rp->pending) + rp->pending_off;
            tail = (size_t)PyBytes_GET_SIZE((PyObject *)rp->pending) - rp->pending_off;
        }
        if (head + tail == 0)
            break;
        struct iovec iov[2];
        int n = 0;
        if (head)
            iov[n++] = (struct iovec){c->out.p + c->out.off, head};
        if (tail)
            iov[n++] = (struct iovec){(void *)tailp, tail};
        ssize_t w = n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len) : writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        size_t done = (size_t)w;
        size_t from_head = done < head ? done : head;
        c->out.off += from_head;
        done -= from_head;
        if (c->out.off == c->out.len)
            buf_clear(&c->out);
        rp->pending_off += done;
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

/* Write what is queued.  1: all out; 0: the socket is full; -1: closed. */
static int flush(struct conn *c)
{
    struct http_response *rp = &c->resp;
    int r = write_out(c);
    if (rp->pending && rp->pending_off == (size_t)PyBytes_GET_SIZE((PyObject *)rp->pending))
        wsgi_drop_pending(c);
    if (r < 0) {
        if (errno == ENODATA) /* the promised length can't be met */
            log_warnx("file for %s ended early; closing the connection", c->peer_addr);
        else
            log_debug("write to %s: %s", c->peer_addr, strerror(errno));
        conn_close(c);
        return -1;
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
static int flush_blocking(struct conn *c)
{
    double limit = c->w->cfg->write_timeout;
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
    if (rc == 0 && c->resp.pending)
        wsgi_drop_pending(c); /* all out */
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

/* A response is all out: what every response is counted for. */
static void account_response(struct conn *c)
{
    if (c->resp.result) {
        app_enter(c);
        wsgi_finish(c);
        worker_leave_app(c->w);
    }
    access_log(c);
    c->requests++;
    worker_count_response(c->w, c->resp.status,
                          c->req.started_at > 0 ? ev_now(c->w->loop) - c->req.started_at : 0);
    worker_request_done(c->w);
}

/* The response is out.  Returns 0 when the connection goes on reading. */
static int finish_response(struct conn *c)
{
    account_response(c);
    buf_clear(&c->resp.head);
    if (c->out.cap > OUT_KEEP)
        buf_free(&c->out);
    if (!c->keepalive)
        return start_closing(c);
    http_next(c);
    c->state = CONN_READING;
    if (c->w->draining && c->in.off == c->in.len &&
        atomic_load(&c->w->sb->stopping) != SB_STOP_LINGER)
        return hand_back(c);
    share_if_idle(c);
    want(c, EV_READ);
    set_deadline(c, c->w->cfg->keepalive);
    return 0;
}

/* Push the response on as far as the socket takes it.  Returns -1 when the
 * connection was closed, 0 otherwise. */
static int continue_response(struct conn *c)
{
    for (;;) {
        int r = flush(c);
        if (r < 0)
            return -1;
        if (r == 0) {
            /* Pushed back at each write that gets somewhere: a client that
             * reads slowly is served, one that stops reading is not kept. */
            want(c, EV_WRITE);
            set_deadline(c, c->w->cfg->write_timeout);
            return 0;
        }
        if (c->resp.finished)
            return finish_response(c);
        app_enter(c);
        int rc = wsgi_produce(c);
        worker_leave_app(c->w);
        if (rc < 0) {
            /* Headers are out and the body cannot be completed: the only
             * honest signal left is closing the connection. */
            c->keepalive = 0;
            c->resp.finished = 1;
        }
    }
}

static int answer_error(struct conn *c, int status)
{
    c->resp.status = status;
    /* What the access log counts: the reason line http_error_response sends,
     * not what a previous response on this connection sent. */
    c->resp.body_sent = strlen(http_reason(status)) + 1;
    c->keepalive = 0;
    c->resp.finished = 1;
    http_error_response(&c->out, status, ev_now(c->w->loop));
    c->state = CONN_RESPONDING;
    return continue_response(c);
}

static int is_health_check(const struct conn *c)
{
    const struct http_request *r = &c->req;
    const char *path = c->w->cfg->health_path;
    return path && (r->method == HTTP_GET || r->method == HTTP_HEAD) &&
           health_target_is(r->arena.p + r->url, r->url_len, path);
}

/* The health path, without the application: the state is the master's
 * (health.h), read from the scoreboard. */
static int answer_health(struct conn *c)
{
    enum health_state st = (enum health_state)atomic_load(&c->w->sb->health);
    char out[HEALTH_RESPONSE_MAX];
    size_t dlen, blen;
    const char *date = http_date_header(ev_now(c->w->loop), &dlen);
    size_t n =
        health_response(out, st, c->req.method == HTTP_HEAD, c->keepalive, date, dlen, &blen);
    buf_append(&c->out, out, n);
    c->resp.status = health_status(st);
    c->resp.body_sent = blen;
    c->resp.finished = 1;
    return continue_response(c);
}

static int send_continue(struct conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->req.expect_continue = 0;
    ssize_t n = write(c->fd, msg, sizeof(msg) - 1);
    /* A short write of 25 bytes to a fresh socket doesn't happen; if it did
     * the client just sends the body after its own timeout. */
    (void)n;
    return 0;
}

static int process(struct conn *c)
{
    while (c->state == CONN_READING && c->in.off < c->in.len) {
        if (c->proxy_state == CONN_PROXY_WANTED || c->proxy_state == CONN_PROXY_REFUSED) {
            int r = conn_client_proxy(c);
            if (r < 0)
                return answer_error(c, c->req.error_status);
            if (r == 0) {
                if (!c->req.timed) {
                    /* The header and the request head after it share one
                     * deadline, from the header's first byte. */
                    c->req.timed = 1;
                    set_deadline(c, c->w->cfg->header_timeout);
                }
                break;
            }
            continue;
        }
        if (!c->req.started)
            c->head_mark = c->in.off;
        enum http_feed_result r = http_feed(c);
        if (r == FEED_ERROR)
            return answer_error(c, c->req.error_status);
        if (r == FEED_NEED_MORE) {
            if (c->req.expect_continue)
                send_continue(c);
            /* The head must be complete header_timeout after its first
             * byte (a client dripping bytes can't stretch it); a body only
             * has to keep moving. */
            if (c->req.head_done || (c->req.started && !c->req.timed)) {
                c->req.timed = 1;
                set_deadline(c, c->w->cfg->header_timeout);
            }
            break;
        }
        /* A whole request.  The read watcher stays on: on_io ignores input
         * while responding, and most responses finish before the loop runs
         * again, so toggling it would cost two epoll_ctl calls each. */
        c->state = CONN_RESPONDING;
        c->keepalive =
            c->req.keepalive && c->w->cfg->keepalive > 0 && !atomic_load(&c->w->sb->stopping);
        conn_client_forwarded(c);
        if (is_health_check(c)) {
            if (answer_health(c) < 0)
                return -1;
            continue;
        }
        app_enter(c);
        wsgi_respond(c);
        worker_leave_app(c->w);
        cork(c);
        if (continue_response(c) < 0)
            return -1;
    }
    if (c->state == CONN_READING && unrun_from(c) == c->in.len)
        buf_clear(&c->in);
    return 0;
}

/* Read what the client sent and run it.  Only here, right before the
 * request runs, do its bytes leave the kernel: a connection waiting its
 * turn keeps them there, where the master's copy of the descriptor still
 * reaches them if this worker dies, and where the mover can see them. */
static void read_some(struct conn *c)
{
    for (;;) {
        size_t keep = unrun_from(c);
        if (keep && c->in.cap - c->in.len < READ_CHUNK / 2) {
            memmove(c->in.p, c->in.p + keep, c->in.len - keep);
            c->in.len -= keep;
            c->in.off -= keep;
            c->head_mark -= c->head_mark >= keep ? keep : c->head_mark;
        }
        buf_reserve(&c->in, READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        /* Before the bytes leave the kernel: from here on they exist only
         * in this worker. */
        share_state(c, SBC_ACTIVE);
        ssize_t n = read(c->fd, c->in.p + c->in.len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                log_debug("read from %s: %s", c->peer_addr, strerror(errno));
                conn_close(c);
                return;
            }
            n = 0;
        } else if (n == 0) {
            /* The client is done.  Mid-request, nothing can be answered. */
            c->peer_eof = 1;
            conn_close(c);
            return;
        }
        c->in.len += (size_t)n;
        /* Bytes moved here with the connection are run even when the
         * socket had nothing more. */
        if (process(c) < 0)
            return;
        if ((size_t)n < room || c->state != CONN_READING) {
            share_if_idle(c);
            return;
        }
    }
}

void conn_run_ready(struct worker *w)
{
    while (w->ready) {
        struct conn *c = w->ready;
        w->ready = c->ready_next;
        c->in_ready = 0;
        if (c->state == CONN_READING && !c->given_away)
            read_some(c);
    }
    if (w->corked)
        conn_uncork_all(w);
    if (atomic_load(&w->slot->state) == SB_QUEUED)
        atomic_store(&w->slot->state, SB_IDLE);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    struct conn *c = (struct conn *)((char *)io - offsetof(struct conn, io));
    if (c->given_away)
        return; /* another worker's now: conn_sweep lets go of it */
    if (c->state == CONN_CLOSING) {
        linger_read(c);
        return;
    }
    if (c->state == CONN_RESPONDING && (revents & EV_WRITE)) {
        if (continue_response(c) < 0)
            return;
        if (c->state == CONN_READING)
            mark_ready(c); /* pipelined bytes, or new input: its turn comes */
        return;
    }
    if (c->state == CONN_READING && (revents & EV_READ))
        mark_ready(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    if (c->given_away)
        return;
    ev_tstamp left = c->deadline - ev_now(loop);
    if (left > 0.001) {
        ev_timer_set(t, left, 0.);
        ev_timer_start(loop, t);
        return;
    }
    if (c->state == CONN_READING && (c->req.started || conn_client_pending(c)) && !c->w->draining) {
        log_debug("request from %s timed out", c->peer_addr);
        answer_error(c, 408);
        return;
    }
    if (c->state == CONN_RESPONDING)
        log_debug("write to %s timed out (write_timeout); closing", c->peer_addr);
    conn_close(c);
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

void conn_sweep(struct worker *w)
{
    for (struct conn *c = w->conns, *next; c; c = next) {
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
    if (atomic_load(&c->w->sb->stopping) == SB_STOP_LINGER)
        return;
    if (c->state == CONN_READING && !c->req.started && c->in.off == c->in.len)
        hand_back(c);
    /* The others go after their response: finish_response sees draining. */
}
