/* A worker process: takes connections from its channel and serves them in
 * one libev loop.  The GIL is released while the loop waits, so threads the
 * application started can run. */
#include "hugd/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "hugd/balancer.h"
#include "hugd/channel.h"
#include "hugd/conn.h"
#include "hugd/http.h"
#include "hugd/log.h"
#include "hugd/pyapp.h"
#include "hugd/slowlog.h"

static struct worker *self;
static volatile sig_atomic_t got_term, got_quit, got_usr1;

static void on_signal(int sig)
{
    if (sig == SIGTERM)
        got_term = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_quit = 1;
    if (self && self->loop)
        ev_async_send(self->loop, &self->signal_w);
}

/* Around the loop's wait: the GIL goes, so threads the application
 * started can run, and the mover sleeps with us. */
static void release_gil(struct ev_loop *loop)
{
    (void)loop;
    mover_loop_wait(&self->mover);
    self->py_thread = PyEval_SaveThread();
}

static void acquire_gil(struct ev_loop *loop)
{
    (void)loop;
    mover_loop_wake(&self->mover);
    PyEval_RestoreThread((PyThreadState *)self->py_thread);
}

static void finish(struct worker *w) __attribute__((noreturn));
static void finish(struct worker *w)
{
    worker_flush_closed(w);
    atomic_store(&w->slot->state, SB_DRAINING);
    log_info("exiting after %llu requests", (unsigned long long)atomic_load(&w->slot->requests));
    /* atexit handlers the application registered run here, as they would
     * under any Python server. */
    if (Py_FinalizeEx() < 0)
        _exit(1);
    exit(0);
}

static void start_drain(struct worker *w);

static void on_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)io;
    (void)revents;
    struct worker *w = self;
    for (;;) {
        struct chan_msg m;
        int fd;
        static char data[CHAN_MAX_DATA];
        int r = channel_recv(w->channel, &m, &fd, data);
        if (r < 0) {
            if (errno != EAGAIN)
                log_err(errno, "recvmsg on the master channel");
            return;
        }
        if (r == 0) {
            /* The master is gone: nobody will hand us work or reap us.  The
             * kernel's parent-death signal usually got here first. */
            log_warnx("master went away; exiting");
            _exit(0);
        }
        if (m.type == CHAN_CONN && fd < 0) {
            /* The kernel dropped the descriptor (our descriptor limit): the
             * master still has it, and gives it to another worker. */
            atomic_fetch_add(&w->slot->received, 1);
            atomic_fetch_add(&w->slot->closed, 1);
            m.type = CHAN_BACK;
            if (channel_send(w->channel, &m, data) < 0)
                log_err(errno, "giving back a connection we could not take");
            /* Not free until one of ours closes (worker_conn_closed) or
             * the master lets us try again; said once in a while, not
             * once per connection. */
            atomic_store(&w->slot->full, 1);
            int64_t now = monotonic_ms();
            if (now - w->full_logged_ms >= 10000) {
                w->full_logged_ms = now;
                log_errx("at the descriptor limit with %d connection(s): taking no new one "
                         "until descriptors are free",
                         w->nconns);
            }
        } else if (m.type == CHAN_CONN) {
            atomic_fetch_add(&w->slot->received, 1);
            w->told_free = 0;
            /* Work arrived: not free until it has been run (conn_run_ready). */
            if (!w->draining)
                atomic_store(&w->slot->state, SB_QUEUED);
            conn_start(w, fd, &m, data);
        } else if (fd >= 0) {
            close(fd);
        }
    }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)p;
    (void)revents;
    struct worker *w = self;
    worker_flush_closed(w);
    /* About to wait: if the master holds connections for lack of a free
     * worker, tell it we are one.  One wake-up per free spell. */
    if (!w->told_free && !w->draining && atomic_load(&w->sb->waiting) &&
        balancer_is_free(w->slot)) {
        if (channel_send_type(w->channel, CHAN_FREE) == 0 || errno == EAGAIN)
            w->told_free = 1;
    }
}

static void on_check(struct ev_loop *loop, ev_check *ck, int revents)
{
    (void)loop;
    (void)ck;
    (void)revents;
    struct worker *w = self;
    struct mover *mv = &w->mover;
    conn_run_ready(w);
    /* Here no list of connections is being walked: let go of what the
     * mover gave away, and start what it took from the channel but could
     * not send back. */
    while (mv->moved || mv->nstash) {
        mv->moved = 0;
        conn_sweep(w);
        int n = mv->nstash;
        mv->nstash = 0;
        for (int i = 0; i < n; i++) {
            conn_start(w, mv->stash[i].fd, &mv->stash[i].msg, mv->stash[i].data);
            free(mv->stash[i].data);
            mv->stash[i].data = NULL;
        }
        conn_run_ready(w);
    }
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    log_warnx("graceful timeout: closing %d connection(s) still open", self->nconns);
    while (self->conns)
        conn_close(self->conns);
    finish(self);
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    atomic_store(&w->slot->state, SB_DRAINING);
    /* Connections the master sent before telling us to stop are ours to
     * serve: take them all in first. */
    on_channel(w->loop, &w->channel_w, EV_READ);
    ev_io_stop(w->loop, &w->channel_w);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        conn_drain(c);
    }
    if (w->nconns == 0) {
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&w->drain_w, on_drain_timeout, w->cfg->graceful_timeout, 0.);
    ev_timer_start(w->loop, &w->drain_w);
}

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)a;
    (void)revents;
    if (got_quit)
        _exit(0);
    if (got_usr1) {
        got_usr1 = 0;
        if (log_reopen() < 0)
            log_err(errno, "reopening the log files");
    }
    if (got_term)
        start_drain(self);
}

void worker_enter_app(struct worker *w, struct conn *c, const char *method, const char *path,
                      size_t pathlen)
{
    struct sb_slot *s = w->slot;
    /* Per call into the app (a streaming body may interleave with other
     * requests): plain copies, no formatting. */
    size_t ml = strlen(method);
    if (ml > 16)
        ml = 16;
    if (pathlen > sizeof(s->request) - ml - 2)
        pathlen = sizeof(s->request) - ml - 2;
    memcpy(s->request, method, ml);
    s->request[ml] = ' ';
    memcpy(s->request + ml + 1, path, pathlen);
    s->request[ml + 1 + pathlen] = '\0';
    atomic_store(&s->busy_since_ms, monotonic_ms());
    atomic_store(&s->state, SB_BUSY);
    w->told_free = 0;
    mover_enter(&w->mover, c);
}

void worker_leave_app(struct worker *w)
{
    mover_leave(&w->mover);
    /* Other connections have input waiting: not free yet. */
    int st = w->draining ? SB_DRAINING : w->ready ? SB_QUEUED : SB_IDLE;
    atomic_store(&w->slot->state, st);
    atomic_store(&w->slot->busy_since_ms, 0);
    /* The call may have been long: deadlines set from here on (keep-alive
     * after this response, say) count from now, not from before it. */
    ev_now_update(w->loop);
}

void worker_request_done(struct worker *w)
{
    uint64_t n = atomic_fetch_add(&w->slot->requests, 1) + 1;
    if (w->max_requests && n >= w->max_requests && !w->retire_asked) {
        /* The master starts the replacement first, then tells us to go. */
        log_info("served %llu requests (max_requests): asking to be replaced",
                 (unsigned long long)n);
        if (channel_send_type(w->channel, CHAN_RETIRE) == 0)
            w->retire_asked = 1;
    }
}

void worker_count_response(struct worker *w, int status, double seconds)
{
    struct sb_slot *s = w->slot;
    uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
    if (status >= 100 && status < 600)
        sb_add(&s->by_class[status / 100 - 1], 1);
    sb_add(&s->resp_hist[stats_bucket(seconds)], 1);
    sb_add(&s->resp_us_sum, us);
    if (us > atomic_load_explicit(&s->resp_us_max, memory_order_relaxed))
        atomic_store_explicit(&s->resp_us_max, us, memory_order_relaxed);
}

/* How often the "holding too much output" warning may repeat. */
#define OUTPUT_WARN_MS 60000

void worker_count_output(struct worker *w, size_t was, size_t now)
{
    w->output_held = w->output_held - was + now;
    long long cap = w->cfg->max_pending_output;
    int full = cap > 0 && w->output_held > (unsigned long long)cap;
    if (full == w->output_full)
        return;
    /* Refusing new connections, not dropping old ones: a client that does
     * read, however slowly, loses nothing; those that never read go at
     * write_timeout, and the master holds new connections meanwhile (or
     * gives them to a worker that has room). */
    w->output_full = full;
    atomic_store(&w->slot->output_full, full);
    if (!full) {
        w->told_free = 0; /* free again: on_prepare says so if work waits */
        return;
    }
    int64_t t = monotonic_ms();
    if (!w->output_warned_ms || t - w->output_warned_ms >= OUTPUT_WARN_MS) {
        w->output_warned_ms = t;
        log_warnx("%zu bytes of responses wait for clients slow to read them "
                  "(max_pending_output %lld): taking no new connection until they drain; "
                  "lower write_timeout or raise max_pending_output",
                  w->output_held, cap);
    }
}

/* Ids per CHAN_CLOSED message: small enough that one fits in the channel's
 * buffer while the master reads. */
#define CLOSED_PER_MSG 1024

void worker_flush_closed(struct worker *w)
{
    int sent = 0;
    while (sent < w->nclosed) {
        int n = w->nclosed - sent < CLOSED_PER_MSG ? w->nclosed - sent : CLOSED_PER_MSG;
        struct chan_msg m;
        memset(&m, 0, sizeof(m));
        m.type = CHAN_CLOSED;
        m.datalen = (uint32_t)((size_t)n * sizeof(uint32_t));
        if (channel_send(w->channel, &m, w->closed_ids + sent) < 0)
            break; /* the master is behind: the rest next time (the states say CLOSED meanwhile) */
        sent += n;
    }
    if (sent > 0 && sent < w->nclosed)
        memmove(w->closed_ids, w->closed_ids + sent,
                (size_t)(w->nclosed - sent) * sizeof(uint32_t));
    w->nclosed -= sent;
}

void worker_conn_closed(struct worker *w, uint32_t id, int released)
{
    atomic_fetch_add(&w->slot->closed, 1);
    if (atomic_load(&w->slot->full))
        atomic_store(&w->slot->full, 0);
    if (released) {
        if (w->nclosed == w->capclosed)
            worker_flush_closed(w);
        if (w->nclosed == w->capclosed) {
            int cap = w->capclosed ? w->capclosed * 2 : CLOSED_PER_MSG;
            uint32_t *p = realloc(w->closed_ids, (size_t)cap * sizeof(uint32_t));
            if (p) {
                w->closed_ids = p;
                w->capclosed = cap;
            } else {
                /* The master keeps its copy until this worker exits: a
                 * late close, not a lost request. */
                log_err(ENOMEM, "cannot note a closed connection");
            }
        }
        if (w->nclosed < w->capclosed)
            w->closed_ids[w->nclosed++] = id;
    }
    if (w->draining && w->nconns == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

/* libev keeps its epoll descriptor to itself, and conn_close needs it to
 * drop a descriptor that lives on in another process.  Creating the loop
 * opens it as the lowest free descriptor: look there, and make sure. */
static int find_epoll_fd(struct ev_loop *loop, int lowest)
{
    if (lowest < 0 || ev_backend(loop) != EVBACKEND_EPOLL)
        return -1;
    char path[64], target[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", lowest);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventpoll]") == 0 ? lowest : -1;
}

static void setup_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    /* SA_RESTART: a signal must not break a system call under the app. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTTIN, &sa, NULL);
    sigaction(SIGTTOU, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

void worker_main(struct worker *w)
{
    char role[32];
    snprintf(role, sizeof(role), "worker %d", w->index);
    log_set_role(role);
    self = w;
    pid_t master = getppid();
    /* No worker outlives the master, even one stuck inside the app. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master)
        _exit(0);
    setup_signals();
    if (pyapp_worker_init() < 0)
        _exit(3);

    const struct hugd_config *cfg = w->cfg;
    struct http_limits lim = {
        .request_line = (uint32_t)cfg->limit_request_line,
        .fields = (uint32_t)cfg->limit_request_fields,
        .field_size = (uint32_t)cfg->limit_request_field_size,
        .max_body = (uint64_t)cfg->max_body_size,
        .body_in_memory = (uint64_t)cfg->body_buffer_size,
    };
    http_set_limits(&lim);
    char err[256];
    /* Both were checked when the configuration was read. */
    if (addrmatch_parse(&w->proxy_allow, cfg->proxy_allow_ips ? cfg->proxy_allow_ips : "", err,
                        sizeof(err)) < 0)
        log_errx("proxy_allow_ips: %s; no peer may send a PROXY header", err);
    if (addrmatch_parse(&w->forwarded_allow,
                        cfg->forwarded_allow_ips ? cfg->forwarded_allow_ips : "", err,
                        sizeof(err)) < 0)
        log_errx("forwarded_allow_ips: %s; no forwarded header is believed", err);
    if (cfg->max_requests > 0) {
        /* Jitter keeps workers started together from retiring together. */
        srandom((unsigned)(getpid() ^ monotonic_ms()));
        uint64_t j = cfg->max_requests_jitter > 0
                         ? (uint64_t)(random() % ((long)cfg->max_requests_jitter + 1))
                         : 0;
        w->max_requests = (uint64_t)cfg->max_requests + j;
    }

    int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (lowest >= 0)
        close(lowest);
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (!w->loop) {
        log_crit(errno, "cannot create the event loop");
        _exit(3);
    }
    w->epoll_fd = find_epoll_fd(w->loop, lowest);
    if (slowlog_start(w->slot, cfg->slow_request_log) < 0)
        log_err(errno, "cannot start the thread of the slow request log; it is off");
    if (mover_start(w, cfg->rebalance_after, cfg->rebalance_busy_after) < 0)
        log_err(errno, "cannot start the thread that moves connections; they stay put");
    ev_set_loop_release_cb(w->loop, release_gil, acquire_gil);
    ev_io_init(&w->channel_w, on_channel, w->channel, EV_READ);
    ev_io_start(w->loop, &w->channel_w);
    ev_async_init(&w->signal_w, on_async);
    ev_async_start(w->loop, &w->signal_w);
    /* Lowest priority: after every read callback of this iteration. */
    ev_check_init(&w->check_w, on_check);
    ev_set_priority(&w->check_w, EV_MINPRI);
    ev_check_start(w->loop, &w->check_w);
    ev_prepare_init(&w->prepare_w, on_prepare);
    ev_prepare_start(w->loop, &w->prepare_w);
    if (got_term || got_quit)
        ev_async_send(w->loop, &w->signal_w);

    atomic_store(&w->slot->state, SB_IDLE);
    /* Ready: the master may be waiting for us to retire a worker we replace. */
    channel_send_type(w->channel, CHAN_FREE);
    log_debug("serving");
    ev_run(w->loop, 0);
    finish(w);
}
