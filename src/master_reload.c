/* Reloading (HUP) and upgrading (USR2) by executing hugd again with the
 * listening sockets inherited, so that no connection is ever refused.
 *
 * HUP keeps the master's pid (a supervisor or a container's init must not
 * see it exit).  A probe process first checks that the new configuration
 * and code load (`hugd --check-config`); only then does the master execute
 * itself in place, handing over the scoreboard, its workers and its queue.
 * The new image imports the new code, starts a new generation of workers,
 * and retires the old one once the new one is up.  A broken reload stops at
 * the probe and leaves everything as it was.
 *
 * USR2 starts a new master as a child, which inherits the listening sockets
 * and a channel back to us.  When its workers are up it says READY; we stop
 * accepting, pass it whatever we hold (queued connections, and idle
 * keep-alive connections our draining workers hand back), and exit when our
 * workers are gone.  If it dies before READY we carry on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hugd/log.h"
#include "hugd/notify.h"
#include "hugd/inherit.h"
#include "master_int.h"

/* HUP runs the binary that is running now, even if a package upgrade
 * replaced the file: a reload changes configuration and code, and must not
 * meet a binary it cannot hand its state to.  USR2 is the binary upgrade. */
static const char self_exe[] = "/proc/self/exe";

static void unblock_all_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void describe(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, len, "ended (status %d)", status);
}

/* What both a reload and an upgrade pass on: the listening sockets, and
 * the worker count and scaling bounds that TTIN and TTOU moved. */
static void add_common(struct master *m, struct inherited *in)
{
    in->target = m->target;
    in->workers_setting = m->cfg->workers;
    if (scale_on(m)) {
        in->min_workers = m->min_workers;
        in->max_workers = m->max_workers;
        in->min_setting = m->cfg->min_workers;
        in->max_setting = m->cfg->max_workers;
    }
    for (int i = 0; i < m->nls; i++) {
        if (m->ls[i].fd < 0)
            continue;
        in->ls[in->nls].fd = m->ls[i].fd;
        in->ls[in->nls].systemd = strncmp(m->ls[i].bind, "systemd:", 8) == 0;
        in->ls[in->nls].bind = m->ls[i].bind;
        in->nls++;
    }
}

/* 1 if a HUP or USR2 (sig) must not start now.  One that comes while a
 * reload or upgrade is under way is remembered and runs once that one has
 * finished (run_waiting): a deploy that signals twice gets its newest
 * configuration and code, and several signals run once more, not N times. */
static int busy(struct master *m, int sig)
{
    const char *what = sig == SIGHUP ? "HUP" : "USR2";
    if (m->mode == MODE_HANDOVER && m->upgrade_pid > 0) {
        /* We are on our way out: the master that took over acts on it. */
        log_info("%s: passed on to the new master (pid %d)", what, (int)m->upgrade_pid);
        kill(m->upgrade_pid, sig);
        return 1;
    }
    if (master_leaving(m) || m->stop_delay) {
        log_warnx("%s ignored: stopping", what);
        return 1;
    }
    /* Besides our own reload or upgrade: the new master of an upgrade
     * while the old one still hands over (upgrade_fd), or a reload's new
     * image while it imports. */
    if (m->mode != MODE_SERVING || m->upgrade_fd >= 0 || m->importing) {
        int *waiting = sig == SIGHUP ? &m->hup_waiting : &m->usr2_waiting;
        if (!*waiting)
            log_info("%s: a reload or upgrade is under way; this one runs when it has finished",
                     what);
        *waiting = 1;
        return 1;
    }
    return 0;
}

/* The reload or upgrade under way has ended: start what came meanwhile.
 * (Across the exec of a reload, exec_in_place passes it on.) */
static void run_waiting(struct master *m)
{
    if (m->importing)
        return;
    if (m->hup_waiting) {
        m->hup_waiting = 0;
        reload_start(m);
    } else if (m->usr2_waiting) {
        m->usr2_waiting = 0;
        upgrade_start(m);
    }
}

/* ---- HUP ---------------------------------------------------------------- */

void reload_start(struct master *m)
{
    if (busy(m, SIGHUP))
        return;
    log_info("HUP: checking the new configuration and application");
    notify_send("RELOADING=1");
    const struct launch *L = m->launch;
    int argc = 0;
    while (L->argv[argc])
        argc++;
    char **argv = calloc((size_t)argc + 2, sizeof(char *));
    if (!argv) {
        log_err(ENOMEM, "HUP");
        return;
    }
    argv[0] = L->exe;
    argv[1] = "--check-config";
    for (int i = 1; i < argc; i++)
        argv[i + 1] = L->argv[i];
    /* Everything the child needs is ready before the fork: it only makes
     * system calls (see master_exec.c). */
    char fail[96];
    snprintf(fail, sizeof(fail), "hugd: HUP: cannot execute %s\n", self_exe);
    pid_t pid = fork();
    if (pid == 0) {
        unblock_all_signals();
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        if (chdir(L->cwd) < 0)
            _exit(127);
        execve(self_exe, argv, environ);
        exec_failed_note(fail);
        _exit(127);
    }
    free(argv);
    if (pid < 0) {
        log_err(errno, "HUP: fork");
        return;
    }
    m->probe_pid = pid;
    master_set_mode(m, MODE_RELOADING, "HUP");
}

static void exec_in_place(struct master *m)
{
    struct inherited in;
    memset(&in, 0, sizeof(in));
    in.upgrade_fd = -1;
    add_common(m, &in);
    in.sb_fd = m->sb_fd;
    in.w = calloc((size_t)m->nslots, sizeof(*in.w));
    in.q = calloc((size_t)m->qlen + 1, sizeof(*in.q));
    if (!in.w || !in.q) {
        free(in.w);
        free(in.q);
        log_err(ENOMEM, "HUP");
        return;
    }
    for (int i = 0; i < m->nslots; i++)
        if (m->w[i].pid > 0)
            in.w[in.nw++] = (struct inherit_worker){i, m->w[i].pid, m->w[i].ch, m->w[i].retiring};
    for (int k = 0; k < m->qlen; k++) {
        struct queued *e = &m->q[(m->qhead + k) % m->qcap];
        in.q[in.nq++] = (struct inherit_conn){e->fd, e->msg.listener, e->data, e->msg.datalen};
    }
    /* The environment goes to execve as an array: ours stays as it is,
     * and a failed exec has nothing of it to undo. */
    char *enc = inherit_format(&in);
    char **envp = enc ? exec_env(enc) : NULL;
    free(enc);
    if (!envp) {
        free(in.w);
        free(in.q);
        log_err(ENOMEM, "HUP");
        return;
    }
    inherit_keep_on_exec(&in);
    conns_keep_on_exec(m, 1);
    log_info("HUP: the new configuration and application load; reloading");
    /* Blocked across exec: a signal in the gap stays pending for the new
     * image instead of killing the process. */
    master_block_signals(1);
    /* A HUP or USR2 that waited for this reload is the new image's. */
    if (m->hup_waiting)
        kill(getpid(), SIGHUP);
    if (m->usr2_waiting)
        kill(getpid(), SIGUSR2);
    m->hup_waiting = m->usr2_waiting = 0;
    if (chdir(m->launch->cwd) < 0)
        log_err(errno, "HUP: chdir %s", m->launch->cwd);
    execve(self_exe, m->launch->argv, envp);
    /* Still here (E2BIG, say): nothing changed.  The descriptors get their
     * close-on-exec flag back, or the next probe or upgrade inherits them. */
    log_err(errno, "HUP: executing %s; still serving the running generation", self_exe);
    free(envp);
    inherit_cloexec(&in);
    conns_keep_on_exec(m, 0);
    free(in.w);
    free(in.q);
    master_block_signals(0);
    notify_send("READY=1");
}

/* ---- USR2 --------------------------------------------------------------- */

/* A message from the other master of an upgrade. */
static int on_upgrade_msg(void *ctx, const struct chan_msg *msg, int fd, const char *data)
{
    struct master *m = ctx;
    if (msg->type == CHAN_CONN && fd >= 0) {
        /* Passed on by the master we replace. */
        if (conns_hold(m, fd, msg->listener) == 0)
            dispatch_take(m, fd, msg, data);
        return CHAN_NEXT;
    }
    if (fd >= 0)
        close(fd);
    if (msg->type == CHAN_READY && m->upgrade_pid && m->mode != MODE_HANDOVER) {
        /* The new master serves: hand everything over and go. */
        log_info("USR2: new master (pid %d) is ready; handing over and draining",
                 (int)m->upgrade_pid);
        master_set_mode(m, MODE_HANDOVER, "the new master is ready");
        dispatch_close_listeners(m, 0);
        dispatch_queue(m);
        workers_kill_at(m, m->cfg->graceful_timeout);
        workers_tell(m, SIGTERM);
        /* What came for us during the upgrade is the new master's
         * now; it runs it once we have gone. */
        if (m->hup_waiting)
            kill(m->upgrade_pid, SIGHUP);
        if (m->usr2_waiting)
            kill(m->upgrade_pid, SIGUSR2);
        m->hup_waiting = m->usr2_waiting = 0;
        if (workers_alive(m) == 0)
            ev_break(m->loop, EVBREAK_ALL);
    }
    return CHAN_NEXT;
}

static void on_upgrade_channel(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct master *m = io->data;
    static char data[CHAN_MAX_DATA];
    if (channel_drain(m->upgrade_fd, data, on_upgrade_msg, m) == CHAN_EMPTY)
        return;
    /* End of file or an error: the other master is gone. */
    ev_io_stop(m->loop, &m->upgrade_w);
    close(m->upgrade_fd);
    m->upgrade_fd = -1;
    if (!m->upgrade_pid)
        run_waiting(m); /* we took over and the old master has exited */
}

void upgrade_watch_old(struct master *m, int fd)
{
    m->upgrade_fd = fd;
    ev_io_init(&m->upgrade_w, on_upgrade_channel, fd, EV_READ);
    m->upgrade_w.data = m;
    ev_io_start(m->loop, &m->upgrade_w);
}

void upgrade_start(struct master *m)
{
    if (busy(m, SIGUSR2))
        return;
    int fds[2];
    if (channel_pair(fds) < 0) {
        log_err(errno, "USR2: socketpair");
        return;
    }
    /* What the new master inherits, its environment and the line for a
     * failed exec, all before the fork: the child only makes system calls
     * (see master_exec.c). */
    struct inherited in;
    memset(&in, 0, sizeof(in));
    in.sb_fd = -1;
    add_common(m, &in);
    in.upgrade_fd = fds[1];
    char *enc = inherit_format(&in);
    char **envp = enc ? exec_env(enc) : NULL;
    free(enc);
    if (!envp) {
        close(fds[0]);
        close(fds[1]);
        log_err(ENOMEM, "USR2");
        return;
    }
    char fail[PATH_MAX + 64];
    snprintf(fail, sizeof(fail), "hugd: USR2: cannot execute %s\n", m->launch->exe);
    log_info("USR2: starting a new master from %s", m->launch->exe);
    pid_t pid = fork();
    if (pid == 0) {
        /* The descriptors' close-on-exec flags are the child's own. */
        inherit_keep_on_exec(&in);
        master_block_signals(2); /* until the new master can handle them */
        if (chdir(m->launch->cwd) < 0)
            _exit(127);
        execve(m->launch->exe, m->launch->argv, envp);
        exec_failed_note(fail);
        _exit(127);
    }
    free(envp);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        log_err(errno, "USR2: fork");
        return;
    }
    m->upgrade_pid = pid;
    master_set_mode(m, MODE_UPGRADING, "USR2");
    upgrade_watch_old(m, fds[0]);
}

int reload_reaped(struct master *m, pid_t pid, int status)
{
    char how[64];
    if (pid && pid == m->probe_pid) {
        m->probe_pid = 0;
        /* Still reloading: no stop overtook the probe. */
        int ours = m->mode == MODE_RELOADING;
        if (ours)
            master_set_mode(m, MODE_SERVING, "the probe ended");
        if (m->stop_delay) {
            /* TERM came while the probe ran: the stop wins (a new image
             * would not know it had begun). */
            log_info("HUP: not applied: stopping");
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && ours) {
            exec_in_place(m);
        } else {
            describe(status, how, sizeof(how));
            log_errx("HUP: the new configuration or application does not load (check %s; see "
                     "above); still serving the running generation",
                     how);
            notify_send("READY=1");
            run_waiting(m);
        }
        return 1;
    }
    if (pid && pid == m->upgrade_pid) {
        m->upgrade_pid = 0;
        describe(status, how, sizeof(how));
        if (m->mode != MODE_HANDOVER) {
            if (m->mode == MODE_UPGRADING)
                master_set_mode(m, MODE_SERVING, "the new master ended before it was ready");
            log_errx("USR2: the new master (pid %d) %s before it was ready; still serving",
                     (int)pid, how);
            if (m->upgrade_fd >= 0) {
                ev_io_stop(m->loop, &m->upgrade_w);
                close(m->upgrade_fd);
                m->upgrade_fd = -1;
            }
            run_waiting(m);
        } else {
            log_warnx("the new master (pid %d) %s", (int)pid, how);
        }
        return 1;
    }
    return 0;
}

void reload_run_waiting(struct master *m)
{
    run_waiting(m);
}
