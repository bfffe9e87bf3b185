/* A worker process: takes connections from its channel and serves them in
 * one libev loop.  Each loop iteration's callbacks only note what is to be
 * done; then the batch (on_check) advances every connection that has
 * something to do, one at a time, and makes every call into the
 * application here: conn.c, http.c and wsgi*.c never call back up.  The
 * GIL is released while the loop waits, so threads the application
 * started can run. */
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
#include "hugd/wsgi.h"
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
    conn_flush_closed(&w->pool);
    atomic_store(&w->slot->state, SB_DRAINING);
    log_info("exiting after %llu requests", (unsigned long long)atomic_load(&w->slot->requests));
    /* atexit handlers the application registered run here, as they would
     * under any Python server. */
    if (Py_FinalizeEx() < 0)
        _exit(1);
    exit(0);
}

static void start_drain(struct worker *w);

/* One message from the master (channel_drain). */
static int on_message(void *ctx, const struct chan_msg *msg, int fd, const char *data)
{
    struct worker *w = ctx;
    if (msg->type == CHAN_CONN && fd < 0) {
        /* The kernel dropped the descriptor (our descriptor limit): the
         * master still has it, and gives it to another worker. */
        atomic_fetch_add(&w->slot->received, 1);
        atomic_fetch_add(&w->slot->closed, 1);
        struct chan_msg back = *msg;
        back.type = CHAN_BACK;
        if (channel_send(w->channel, &back, data) < 0)
            log_err(errno, "giving back a connection we could not take");
        /* Not free until one of ours closes (conn.c resets full) or the
         * master lets us try again; said once in a while, not once per
         * connection. */
        atomic_store(&w->slot->full, 1);
        int64_t now = monotonic_ms();
        if (now - w->full_logged_ms >= 10000) {
            w->full_logged_ms = now;
            log_errx("at the descriptor limit with %d connection(s): taking no new one "
                     "until descriptors are free",
                     w->pool.nconns);
        }
    } else if (msg->type == CHAN_CONN) {
        atomic_fetch_add(&w->slot->received, 1);
        w->told_free = 0;
        /* Work arrived: not free until it has been run (run_ready). */
        if (!w->draining)
            atomic_store(&w->slot->state, SB_QUEUED);
        conn_start(&w->pool, fd, msg, data);
    } else if (fd >= 0) {
        close(fd);
    }
    return CHAN_NEXT;
}

static void on_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)io;
    (void)revents;
    static char data[CHAN_MAX_DATA]; /* the main thread's; the mover has its own */
    int r = channel_drain(self->channel, data, on_message, self);
    if (r == CHAN_EOF) {
        /* The master is gone: nobody will hand us work or reap us.  The
         * kernel's parent-death signal usually got here first. */
        log_warnx("master went away; exiting");
        _exit(0);
    }
    if (r < 0)
        log_err(errno, "recvmsg on the master channel");
}

/* The application, around each call into it (the iterable's close()
 * included): the scoreboard shows the request, the timeout sees it, and the
 * mover may move the other connections. */
static void enter_app(struct worker *w, struct conn *c)
{
    struct sb_slot *s = w->slot;
    const struct http_request *r = &c->req;
    const char *method = llhttp_method_name((llhttp_method_t)r->method);
    size_t pathlen = r->url_len;
    /* Per call into the app (a streaming body may interleave with other
     * requests): plain copies, no formatting. */
    size_t ml = strlen(method);
    if (ml > 16)
        ml = 16;
    if (pathlen > sizeof(s->request) - ml - 2)
        pathlen = sizeof(s->request) - ml - 2;
    memcpy(s->request, method, ml);
    s->request[ml] = ' ';
    memcpy(s->request + ml + 1, r->arena.p + r->url, pathlen);
    s->request[ml + 1 + pathlen] = '\0';
    c->resp.now = ev_now(w->loop);
    atomic_store(&s->busy_since_ms, monotonic_ms());
    atomic_store(&s->state, SB_BUSY);
    w->told_free = 0;
    mover_enter(&w->mover, c);
}

static void leave_app(struct worker *w)
{
    mover_leave(&w->mover);
    /* Responses corked earlier in this batch have waited long enough. */
    int64_t since = atomic_load_explicit(&w->pool.corked_since_ns, memory_order_relaxed);
    if (since && monotonic_ns() - since >= CONN_CORK_HOLD_NS)
        conn_uncork_all(&w->pool);
    /* Other connections have something to do: not free yet. */
    int st = w->draining ? SB_DRAINING : w->pool.ready ? SB_QUEUED : SB_IDLE;
    atomic_store(&w->slot->state, st);
    atomic_store(&w->slot->busy_since_ms, 0);
    /* The call may have been long: deadlines set from here on (keep-alive
     * after this response, say) count from now, not from before it. */
    ev_now_update(w->loop);
}

/* Let go of the application's objects for c's response. */
static void finish_app(struct worker *w, struct conn *c)
{
    enter_app(w, c);
    wsgi_finish(&c->req, &c->resp);
    leave_app(w);
}

/* Take c as far as it goes: every call into the application it needs. */
static void serve(struct worker *w, struct conn *c)
{
    for (;;) {
        switch (conn_advance(c)) {
        case CONN_NEED_NOTHING:
            return;
        case CONN_NEED_RESPOND:
            enter_app(w, c);
            wsgi_respond(&c->req, &c->resp);
            leave_app(w);
            break;
        case CONN_NEED_PRODUCE: {
            enter_app(w, c);
            int rc = wsgi_produce(&c->req, &c->resp);
            leave_app(w);
            if (rc < 0)
                conn_broken_response(c);
            break;
        }
        case CONN_NEED_FINISH:
            finish_app(w, c);
            break;
        }
    }
}

/* Keep-alive connections stay where they are placed, and a slow call's
 * waiting connections went to other workers: its own may now own fewer
 * than the rest for good.  So, at most every SHED_EVERY seconds, a worker
 * with two or more connections ready gives the last of them that is a
 * keep-alive client back to the master if another worker, not in a long
 * call, owns three or more fewer.  The master gives it to a free worker
 * (the fewest-owning of them), or holds it for the first to report free
 * and then prefers one owning fewer (balancer_rather).  Not while the
 * master stops: it would close what comes back. */
#define SHED_EVERY 0.01

static void shed_one(struct worker *w)
{
    static int all[HUGD_MAX_WORKERS];
    struct conn_pool *p = &w->pool;
    if (!w->mover.running || w->draining || atomic_load(&w->sb->stopping) || !p->ready ||
        !p->ready->ready_next || ev_now(w->loop) - w->shed_at < SHED_EVERY)
        return;
    w->shed_at = ev_now(w->loop);
    int n = w->sb->nslots < HUGD_MAX_WORKERS ? w->sb->nslots : HUGD_MAX_WORKERS;
    if (!all[1])
        for (int i = 0; i < HUGD_MAX_WORKERS; i++)
            all[i] = i;
    int64_t slow = (int64_t)(w->cfg->rebalance_busy_after * 1000);
    int j = balancer_fewest(w->sb, all, n, w->index, monotonic_ms(), slow > 0 ? slow : 1);
    if (j < 0 || j == w->index)
        return;
    const struct sb_slot *t = &w->sb->slot[j];
    uint64_t theirs = sb_owned(t);
    uint64_t mine = sb_owned(w->slot);
    if (theirs + 2 >= mine)
        return; /* within two of each other: not worth a move */
    /* The last that has had a response here: a keep-alive client that
     * stays.  A new connection was placed by the master just now. */
    struct conn *last = NULL;
    for (struct conn *c = p->ready->ready_next; c; c = c->ready_next)
        if (c->requests)
            last = c;
    enum conn_move m = last ? conn_move_plan(last) : MOVE_STAY;
    if ((m == MOVE_NOW || m == MOVE_ON_INPUT) && conn_give_away(last) == 0) {
        w->mover.moved = 1; /* on_check lets go of it */
        log_debug("moved a connection from %s: worker %d owns fewer", last->peer_addr, j);
    }
}

static void run_ready(struct worker *w)
{
    struct conn_pool *p = &w->pool;
    if (!p->ready)
        return;
    shed_one(w);
    w->told_free = 0; /* busy now: free again later, and say so again */
    struct conn *c;
    while ((c = conn_next_ready(p)))
        serve(w, c);
    if (p->corked)
        conn_uncork_all(p);
    if (atomic_load(&w->slot->state) == SB_QUEUED)
        atomic_store(&w->slot->state, SB_IDLE);
}

static void retire_if_served_enough(struct worker *w)
{
    uint64_t n = atomic_load_explicit(&w->slot->requests, memory_order_relaxed);
    if (!w->max_requests || n < w->max_requests || w->retire_asked)
        return;
    /* The master starts the replacement first, then tells us to go. */
    log_info("served %llu requests (max_requests): asking to be replaced", (unsigned long long)n);
    if (channel_send_type(w->channel, CHAN_RETIRE) == 0)
        w->retire_asked = 1;
}

/* How often the "holding too much output" warning may repeat. */
#define OUTPUT_WARN_MS 60000

/* Past max_pending_output of response bytes held for slow readers, the
 * worker takes no new connection until they have taken enough of them. */
static void check_output(struct worker *w)
{
    size_t held = w->pool.output_held;
    long long cap = w->cfg->max_pending_output;
    int full = cap > 0 && held > (unsigned long long)cap;
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
                  held, cap);
    }
}

/* The master closes its copy of a connection once it hears that this
 * worker closed it; the client does not wait for that (conn_close shut
 * the connection down).  Told in batches, of up to CLOSED_BATCH or after
 * CLOSED_HOLD seconds: one message per connection cost the master a
 * wake-up for each under connection-per-request load.  A draining worker
 * tells at once: the master's stop waits for its connections. */
#define CLOSED_BATCH 32
#define CLOSED_HOLD 0.01

static void on_closed_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    conn_flush_closed(&self->pool);
}

static void tell_closed(struct worker *w)
{
    int n = w->pool.nclosed;
    if (n >= CLOSED_BATCH || (n && w->draining)) {
        conn_flush_closed(&w->pool);
        ev_timer_stop(w->loop, &w->closed_w);
    } else if (n && !ev_is_active(&w->closed_w)) {
        ev_timer_set(&w->closed_w, CLOSED_HOLD, 0.);
        ev_timer_start(w->loop, &w->closed_w);
    }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)p;
    (void)revents;
    struct worker *w = self;
    tell_closed(w);
    retire_if_served_enough(w);
    check_output(w);
    if (w->draining && w->pool.nconns == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
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
    run_ready(w);
    /* Here no list of connections is being walked: let go of what the
     * mover gave away, and start what it took from the channel but could
     * not send back. */
    while (mv->moved || mv->nstash) {
        mv->moved = 0;
        conn_sweep(&w->pool);
        int n = mv->nstash;
        mv->nstash = 0;
        for (int i = 0; i < n; i++) {
            conn_start(&w->pool, mv->stash[i].fd, &mv->stash[i].msg, mv->stash[i].data);
            free(mv->stash[i].data);
            mv->stash[i].data = NULL;
        }
        run_ready(w);
    }
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    struct worker *w = self;
    log_warnx("graceful timeout: closing %d connection(s) still open", w->pool.nconns);
    while (w->pool.conns) {
        struct conn *c = w->pool.conns;
        if (http_response_held(&c->resp))
            finish_app(w, c);
        conn_close(c);
    }
    finish(w);
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    w->pool.draining = 1;
    atomic_store(&w->slot->state, SB_DRAINING);
    /* Connections the master sent before telling us to stop are ours to
     * serve: take them all in first. */
    on_channel(w->loop, &w->channel_w, EV_READ);
    ev_io_stop(w->loop, &w->channel_w);
    for (struct conn *c = w->pool.conns; c; c = c->next)
        conn_drain(c);
    /* What that gave back is closed by the batch (on_check), and the loop
     * ends once nothing is left (on_prepare). */
    if (w->pool.nconns == 0) {
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
    struct conn_pool *pool = &w->pool;
    pool->cfg = cfg;
    pool->sb = w->sb;
    pool->slot = w->slot;
    pool->channel = w->channel;
    pool->nlisteners = w->nlisteners;
    char err[256];
    /* Both were checked when the configuration was read. */
    if (addrmatch_parse(&pool->proxy_allow, cfg->proxy_allow_ips ? cfg->proxy_allow_ips : "", err,
                        sizeof(err)) < 0)
        log_errx("proxy_allow_ips: %s; no peer may send a PROXY header", err);
    if (addrmatch_parse(&pool->forwarded_allow,
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
    pool->loop = w->loop;
    pool->epoll_fd = find_epoll_fd(w->loop, lowest);
    if (slowlog_start(w->slot, cfg->slow_request_log) < 0)
        log_err(errno, "cannot start the thread of the slow request log; it is off");
    if (mover_start(&w->mover, pool, cfg->rebalance_after, cfg->rebalance_busy_after) < 0)
        log_err(errno, "cannot start the thread that moves connections; they stay put");
    /* The mover bounds how long a corked response may wait (conn.c). */
    pool->may_cork = w->mover.running;
    ev_set_loop_release_cb(w->loop, release_gil, acquire_gil);
    ev_io_init(&w->channel_w, on_channel, w->channel, EV_READ);
    ev_io_start(w->loop, &w->channel_w);
    ev_async_init(&w->signal_w, on_async);
    ev_async_start(w->loop, &w->signal_w);
    /* Lowest priority: after every read callback of this iteration. */
    ev_check_init(&w->check_w, on_check);
    ev_set_priority(&w->check_w, EV_MINPRI);
    ev_check_start(w->loop, &w->check_w);
    ev_timer_init(&w->closed_w, on_closed_timer, CLOSED_HOLD, 0.);
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
