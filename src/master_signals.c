/* The master's signals.  A plain handler counts every delivery and wakes
 * the loop, which acts on the counts (signals_take).  libev's own signal
 * watchers would fold two deliveries that land between two passes of the
 * loop into one: two TTOUs sent back to back would retire one worker. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "master_int.h"

static const int master_sigs[] = {SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                  SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
#define NSIGS (sizeof(master_sigs) / sizeof(master_sigs[0]))

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal counters must be lock-free");
static atomic_uint sig_got[NSIGS]; /* written by the handler only */
static unsigned sig_done[NSIGS];   /* how many of them the loop has acted on */

/* What the handler wakes: the one place a handler reaches the loop. */
static struct ev_loop *wake_loop;
static ev_async *wake_w;

static void on_signal(int sig)
{
    int e = errno;
    for (size_t k = 0; k < NSIGS; k++)
        if (master_sigs[k] == sig)
            atomic_fetch_add(&sig_got[k], 1);
    ev_async_send(wake_loop, wake_w); /* async-signal-safe */
    errno = e;
}

void signals_install(struct ev_loop *loop, ev_async *w)
{
    wake_loop = loop;
    wake_w = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t k = 0; k < NSIGS; k++)
        sigaction(master_sigs[k], &sa, NULL);
}

void signals_take(void (*act)(void *ctx, int sig, unsigned times), void *ctx)
{
    /* In the table's order: a stop that came with a TTIN spawns nothing. */
    for (size_t k = 0; k < NSIGS; k++) {
        unsigned got = atomic_load(&sig_got[k]);
        unsigned n = got - sig_done[k];
        sig_done[k] = got;
        if (n)
            act(ctx, master_sigs[k], n);
    }
}

void master_block_signals(int block)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t k = 0; k < NSIGS; k++)
        sigaddset(&set, master_sigs[k]);
    if (block == -1)
        sigemptyset(&set);
    sigprocmask(block == 1 ? SIG_BLOCK : block == 0 ? SIG_UNBLOCK : SIG_SETMASK, &set, NULL);
    if (block != 1)
        return;
    /* Before an exec: what came but was not acted on yet goes back to the
     * kernel as pending (blocked, it survives the exec), so the image we
     * execute acts on it once its loop runs.  Counted deliveries fold into
     * one here; this only covers the moment since the last loop pass. */
    for (size_t k = 0; k < NSIGS; k++) {
        unsigned got = atomic_load(&sig_got[k]);
        int sig = master_sigs[k];
        if (got != sig_done[k])
            kill(getpid(), sig);
        sig_done[k] = got;
    }
}
