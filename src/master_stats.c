/* The stats endpoint (stats_bind): GET /stats (JSON) and GET /metrics
 * (Prometheus text), answered by the master in its own loop, never by a
 * worker's Python, so that it answers while every worker is busy.
 *
 * Deliberately small: one request per connection, the request line kept
 * (at most limit_request_line bytes) and the header fields only skipped
 * (at most limit_request_fields of limit_request_field_size bytes), the
 * answer written without blocking, then the connection closed.  Each
 * connection has stats_timeout to send its request and take the answer,
 * and at most stats_max_connections are open at once: a client that
 * sends nothing, or reads nothing, costs a descriptor for a few seconds
 * and never the master's time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hugd/log.h"
#include "hugd/stats.h"
#include "master_int.h"

#define RETRY_SECONDS 1.0 /* binding again (after an upgrade), or accepting after EMFILE */

struct sconn {
    int fd;
    ev_io io;
    ev_timer timer;
    char *line;     /* the request line, limit_request_line bytes at most */
    size_t linelen; /* bytes of it so far */
    size_t seen;    /* bytes of the request head read */
    int line_done;
    int at_bol; /* the last byte read ended a line */
    struct buf out;
};

static struct listener lst = {.fd = -1};
static struct stat lst_st; /* the Unix socket we made, to unlink only ours */
static ev_io accept_w;
static ev_timer retry_w;
static struct sconn **conns; /* stats_max_connections of them, NULL where free */

static void conn_end(struct master *m, struct sconn *c)
{
    ev_io_stop(m->loop, &c->io);
    ev_timer_stop(m->loop, &c->timer);
    close(c->fd);
    for (int i = 0; i < m->cfg->stats_max_connections; i++)
        if (conns[i] == c)
            conns[i] = NULL;
    free(c->line);
    buf_free(&c->out);
    free(c);
    if (lst.fd >= 0 && !ev_is_active(&accept_w) && !ev_is_active(&retry_w))
        ev_io_start(m->loop, &accept_w); /* a place is free again */
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)loop;
    (void)revents;
    conn_end(m, (struct sconn *)((char *)t - offsetof(struct sconn, timer)));
}

static void respond(struct sconn *c, int status, const char *ctype, const struct buf *body,
                    int head_only)
{
    static const char *const reason[] = {
        [0] = "OK", [1] = "Not Found", [2] = "Method Not Allowed", [3] = "Bad Request"};
    int r = status == 200 ? 0 : status == 404 ? 1 : status == 405 ? 2 : 3;
    size_t len = body ? body->len : strlen(reason[r]) + 1;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                     status, reason[r], ctype, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    buf_append(&c->out, head, (size_t)n);
    if (head_only)
        return;
    if (body) {
        buf_append(&c->out, body->p, body->len);
    } else {
        buf_append_str(&c->out, reason[r]);
        buf_append(&c->out, "\n", 1);
    }
}

/* The request line is in: what to answer. */
static void answer(struct master *m, struct sconn *c)
{
    char *line = c->line;
    line[c->linelen] = '\0';
    line[strcspn(line, "\r")] = '\0';
    char *sp = strchr(line, ' ');
    if (!sp) {
        respond(c, 400, "text/plain", NULL, 0);
        return;
    }
    *sp = '\0';
    char *target = sp + 1;
    target[strcspn(target, " ?")] = '\0';
    int head = strcmp(line, "HEAD") == 0;
    if (!head && strcmp(line, "GET") != 0) {
        respond(c, 405, "text/plain", NULL, 0);
        return;
    }
    int json = strcmp(target, "/stats") == 0, prom = strcmp(target, "/metrics") == 0;
    if (!json && !prom) {
        respond(c, 404, "text/plain", NULL, head);
        return;
    }
    struct stats_snapshot s;
    struct buf body = {0};
    stats_collect(m, &s);
    if (json)
        stats_json(&s, &body);
    else
        stats_prometheus(&s, &body);
    free((void *)s.w);
    free((void *)s.ls);
    respond(c, 200, json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8", &body,
            head);
    buf_free(&body);
}

/* Feed read bytes; 1 once the request head is complete (or refused). */
static int feed(struct master *m, struct sconn *c, const char *p, size_t n)
{
    const struct hugd_config *cfg = m->cfg;
    size_t cap = (size_t)cfg->limit_request_line +
                 (size_t)cfg->limit_request_fields * (size_t)cfg->limit_request_field_size;
    for (size_t k = 0; k < n; k++) {
        char ch = p[k];
        if (++c->seen > cap) {
            respond(c, 400, "text/plain", NULL, 0);
            return 1;
        }
        if (!c->line_done) {
            if (ch == '\n') {
                c->line_done = c->at_bol = 1;
            } else if (c->linelen == (size_t)cfg->limit_request_line) {
                respond(c, 400, "text/plain", NULL, 0);
                return 1;
            } else {
                c->line[c->linelen++] = ch;
            }
            continue;
        }
        if (ch == '\n' && c->at_bol) {
            answer(m, c);
            return 1;
        }
        if (ch != '\r')
            c->at_bol = ch == '\n';
    }
    return 0;
}

static void on_conn(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = io->data;
    (void)revents;
    struct sconn *c = (struct sconn *)((char *)io - offsetof(struct sconn, io));
    if (c->io.events & EV_READ) {
        char tmp[4096];
        for (;;) {
            ssize_t n = read(c->fd, tmp, sizeof(tmp));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            if (n <= 0) {
                conn_end(m, c);
                return;
            }
            if (feed(m, c, tmp, (size_t)n))
                break;
        }
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->fd, EV_WRITE);
        ev_io_start(loop, &c->io);
    }
    while (buf_pending(&c->out)) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            break;
        c->out.off += (size_t)n;
    }
    conn_end(m, c);
}

static int free_place(struct master *m)
{
    for (int i = 0; i < m->cfg->stats_max_connections; i++)
        if (!conns[i])
            return i;
    return -1;
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = io->data;
    (void)revents;
    for (;;) {
        int k = free_place(m);
        if (k < 0) {
            /* Full: the kernel's backlog holds the next until one ends. */
            ev_io_stop(loop, io);
            return;
        }
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* Out of descriptors, say: try again later, not in a loop. */
            log_err(errno, "stats: accept4");
            ev_io_stop(loop, io);
            ev_timer_set(&retry_w, RETRY_SECONDS, 0.);
            ev_timer_start(loop, &retry_w);
            return;
        }
        struct sconn *c = calloc(1, sizeof(*c));
        char *line = malloc((size_t)m->cfg->limit_request_line + 1);
        if (!c || !line) {
            free(c);
            free(line);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->line = line;
        conns[k] = c;
        ev_io_init(&c->io, on_conn, fd, EV_READ);
        c->io.data = m;
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->timer, on_timeout, m->cfg->stats_timeout, 0.);
        c->timer.data = m;
        ev_timer_start(loop, &c->timer);
    }
}

static int bind_stats(struct master *m, char *err, size_t len)
{
    if (sock_listen(m->cfg->stats_bind, m->cfg->stats_max_connections, &lst, err, len) < 0) {
        sock_close(&lst, 0);
        free(lst.bind);
        free(lst.unix_path);
        lst = (struct listener){.fd = -1};
        return -1;
    }
    if (lst.unix_path && stat(lst.unix_path, &lst_st) < 0)
        memset(&lst_st, 0, sizeof(lst_st));
    ev_io_init(&accept_w, on_accept, lst.fd, EV_READ);
    accept_w.data = m;
    ev_io_start(m->loop, &accept_w);
    if (lst.unix_path)
        log_info("stats at %s", m->cfg->stats_bind);
    else
        log_info("stats at http://%s/stats and /metrics", m->cfg->stats_bind);
    return 0;
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)revents;
    char err[512];
    if (lst.fd >= 0) {
        ev_io_start(loop, &accept_w);
        return;
    }
    if (bind_stats(m, err, sizeof(err)) < 0) {
        ev_timer_set(&retry_w, RETRY_SECONDS, 0.);
        ev_timer_start(loop, &retry_w);
    }
}

int stats_open(struct master *m, const struct inherited *inh)
{
    struct sb_totals *t = &m->sb->totals;
    if (inh->sb_fd >= 0)
        t->generation++; /* a reload: the board, and its totals, came with it */
    else
        t->started_ms = monotonic_ms();
    if (!m->cfg->stats_bind || !*m->cfg->stats_bind)
        return 0;
    conns = calloc((size_t)m->cfg->stats_max_connections, sizeof(*conns));
    if (!conns) {
        log_crit(ENOMEM, "stats");
        return HUGD_EX_OSERR;
    }
    ev_timer_init(&retry_w, on_retry, RETRY_SECONDS, 0.);
    retry_w.data = m;
    char err[512];
    if (bind_stats(m, err, sizeof(err)) == 0)
        return 0;
    if (inh->sb_fd < 0 && inh->upgrade_fd < 0) {
        log_crit(0, "stats_bind: %s", err);
        return HUGD_EX_OSERR;
    }
    /* After a reload or during an upgrade the previous master may still
     * hold the address: serve without stats until it lets go. */
    log_errx("stats_bind: %s; trying again every %g s", err, RETRY_SECONDS);
    ev_timer_start(m->loop, &retry_w);
    return 0;
}

void stats_close(struct master *m)
{
    if (!conns)
        return;
    for (int i = 0; i < m->cfg->stats_max_connections; i++)
        if (conns[i])
            conn_end(m, conns[i]);
    ev_timer_stop(m->loop, &retry_w);
    if (lst.fd < 0)
        return;
    ev_io_stop(m->loop, &accept_w);
    /* The path first, then the socket: a new master waiting for the path
     * finds it gone, and the path it then binds is not ours to remove. */
    struct stat st;
    if (lst.unix_path && stat(lst.unix_path, &st) == 0 && st.st_ino == lst_st.st_ino &&
        st.st_dev == lst_st.st_dev)
        unlink(lst.unix_path);
    close(lst.fd);
    lst.fd = -1;
}

void stats_close_in_child(struct master *m)
{
    if (!conns)
        return;
    if (lst.fd >= 0)
        close(lst.fd);
    for (int i = 0; i < m->cfg->stats_max_connections; i++)
        if (conns[i])
            close(conns[i]->fd);
}
