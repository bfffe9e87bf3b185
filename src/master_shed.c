/* What the master does when a connection cannot be served for lack of
 * descriptors: its own (accept4 fails with EMFILE) or every worker's (each
 * said it could not take one).
 *
 * Leaving the connection in the listen queue is the worst answer: the
 * socket stays readable, the loop spins on it, and the client waits for a
 * timeout.  So the master answers it at once with 503 and closes it.  For
 * its own limit it keeps one descriptor in reserve (on /dev/null): closing
 * that one makes room to accept the connection and answer it; then the
 * reserve is taken again.  What was shed is logged once per interval,
 * with the count, not once per connection. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hugd/buf.h"
#include "hugd/http.h"
#include "hugd/log.h"
#include "hugd/scoreboard.h"
#include "master_int.h"

#define SHED_LOG_INTERVAL_MS 10000

static int reserve = -1;
static int64_t last_log_ms;    /* 0: not shedding */
static unsigned long unlogged; /* shed since the last line */
static const char *unlogged_whose;

void shed_init(void)
{
    if (reserve < 0)
        reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void note(const char *whose)
{
    if (!last_log_ms) {
        log_errx("at %s descriptor limit: new connections get 503 (counted here every %d s); "
                 "each open connection holds a descriptor in the master and one in a worker: "
                 "raise the limit (ulimit -n, systemd's LimitNOFILE)",
                 whose, SHED_LOG_INTERVAL_MS / 1000);
        last_log_ms = monotonic_ms();
        return;
    }
    unlogged++;
    unlogged_whose = whose;
}

void shed_tick(struct master *m, int64_t now_ms)
{
    /* A worker at its limit may have freed descriptors without closing a
     * connection (the application closed files): each tick it gets one
     * more try, and says so again if it still has none. */
    for (int k = 0; k < m->nlive; k++)
        atomic_store(&m->sb->slot[m->live[k]].full, 0);
    if (!last_log_ms || now_ms - last_log_ms < SHED_LOG_INTERVAL_MS)
        return;
    if (!unlogged) {
        log_info("no connection got 503 for lack of descriptors in the last %d s",
                 SHED_LOG_INTERVAL_MS / 1000);
        last_log_ms = 0;
        return;
    }
    log_errx("at %s descriptor limit: %lu more connection(s) got 503 in the last %d s",
             unlogged_whose, unlogged, SHED_LOG_INTERVAL_MS / 1000);
    unlogged = 0;
    last_log_ms = now_ms;
}

/* Answer and close a connection nobody can take.  The request, when it has
 * come, is read first: closing with unread input would reset the
 * connection and could destroy the answer before the client reads it. */
static void answer(struct master *m, int fd)
{
    char scratch[4096];
    while (read(fd, scratch, sizeof(scratch)) > 0)
        ;
    /* The same 503 a worker would send; its buffer is kept for the next. */
    static struct buf out;
    buf_clear(&out);
    http_error_response(&out, 503, ev_now(m->loop));
    ssize_t n = send(fd, out.p, out.len, MSG_NOSIGNAL);
    (void)n; /* a fresh socket takes 200 bytes; if not, the client sees a close */
    shutdown(fd, SHUT_WR);
}

int shed_accept(struct master *m, int lfd)
{
    if (reserve < 0) {
        shed_init(); /* a descriptor may have been freed since */
        return -1;
    }
    close(reserve);
    reserve = -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        answer(m, fd);
        close(fd);
        note("the master's");
    }
    int e = errno;
    shed_init();
    errno = e;
    return fd >= 0 ? 0 : -1;
}

void shed_held(struct master *m, int fd)
{
    answer(m, fd);
    conns_close(m, fd);
    note("every worker's");
}
