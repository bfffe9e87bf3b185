/* hugd: serve a Python WSGI (Hug) application.
 *
 * Start-up order matters: configuration, logs, the listening sockets
 * (bound, inherited from a previous master, or from systemd), dropping
 * privileges, the application import (a broken app stops here, before any
 * worker exists), then the master loop that forks the workers. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hugd/accesslog.h"
#include "hugd/config.h"
#include "hugd/inherit.h"
#include "hugd/log.h"
#include "hugd/master.h"
#include "hugd/notify.h"
#include "hugd/privs.h"
#include "hugd/pyapp.h"
#include "hugd/sock.h"
#include "hugd/wsgi.h"

static int save_launch(struct launch *l, int argc, char **argv)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return -1;
    path[n] = '\0';
    l->exe = strdup(path);
    l->cwd = getcwd(NULL, 0);
    /* getopt permutes argv in place: keep our own copy. */
    l->argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!l->exe || !l->cwd || !l->argv)
        return -1;
    for (int i = 0; i < argc; i++)
        l->argv[i] = argv[i];
    return 0;
}

/* Listening sockets: systemd's if it passed any; otherwise each configured
 * bind, taken over from the previous master when it had it, else bound. */
static int open_listeners(struct hugd_config *cfg, struct inherited *inh, struct listener *ls,
                          int reload)
{
    char err[512];
    int n = 0, failed = 0;
    int systemd = inh->nls && inh->ls[0].systemd;
    if (systemd) {
        for (int i = 0; i < inh->nls; i++) {
            if (sock_adopt(inh->ls[i].fd, inh->ls[i].bind, &ls[n], err, sizeof(err)) < 0) {
                log_crit(0, "%s", err);
                return -1;
            }
            log_info("listening on a socket from systemd (%s)", ls[n].bind);
            n++;
        }
        return n;
    }
    for (int i = 0; i < cfg->nbinds; i++) {
        int k;
        for (k = 0; k < inh->nls; k++)
            if (inh->ls[k].fd >= 0 && strcmp(inh->ls[k].bind, cfg->binds[i]) == 0)
                break;
        int rc = k < inh->nls ? sock_adopt(inh->ls[k].fd, cfg->binds[i], &ls[n], err, sizeof(err))
                              : sock_listen(cfg->binds[i], cfg->backlog, &ls[n], err, sizeof(err));
        if (k < inh->nls)
            inh->ls[k].fd = -1;
        if (rc < 0) {
            log_crit(0, "cannot listen: %s", err);
            if (reload) {
                failed = 1; /* a reload must not take down what works */
                continue;
            }
            for (int j = 0; j < n; j++)
                sock_close(&ls[j], !ls[j].inherited);
            return -1;
        }
        log_info("listening at %s%s", strncmp(cfg->binds[i], "unix:", 5) ? "http://" : "",
                 cfg->binds[i]);
        n++;
    }
    /* Inherited sockets the new configuration no longer names: closed,
     * unless the new configuration failed in part, in which case a reload
     * keeps serving where it did rather than lose clients. */
    for (int k = 0; k < inh->nls; k++) {
        if (inh->ls[k].fd < 0)
            continue;
        if (failed && n < HUGD_MAX_BINDS &&
            sock_adopt(inh->ls[k].fd, inh->ls[k].bind, &ls[n], err, sizeof(err)) == 0) {
            log_crit(0, "still listening at %s, from before the reload", inh->ls[k].bind);
            n++;
        } else {
            close(inh->ls[k].fd);
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    static struct hugd_config cfg;
    static struct launch launch;
    static struct inherited inh;
    /* Tools that watch a running hugd rather than serve. */
    if (argc > 1 && strcmp(argv[1], "top") == 0)
        return pyapp_run_tool("top", argc - 1, argv + 1);
    if (save_launch(&launch, argc, argv) < 0) {
        perror("hugd: start-up");
        return HUGD_EX_OSERR;
    }
    config_defaults(&cfg);
    int rc = config_from_args(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc > 1)
        return rc;
    if (inherit_from_env(&inh) < 0)
        return HUGD_EX_USAGE;
    notify_init();
    int reload = inh.sb_fd >= 0;

    /* The master and workers must not stop on a dead client, and must not
     * keep a signal mask from whoever executed us; the master's own
     * signals wait until its loop can handle them. */
    signal(SIGPIPE, SIG_IGN);
    master_block_signals(cfg.check_config ? -1 : 2);
    umask((mode_t)cfg.umask);
    char err[512];
    if (pyapp_use_virtualenv(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "hugd: %s\n", err);
        return HUGD_EX_CONFIG;
    }
    if (cfg.chdir && chdir(cfg.chdir) < 0) {
        fprintf(stderr, "hugd: chdir %s: %s\n", cfg.chdir, strerror(errno));
        return HUGD_EX_CONFIG;
    }
    if (cfg.check_config) {
        config_print(&cfg, stdout);
        fflush(stdout);
        if (!cfg.target)
            return 0;
        /* As gunicorn does: the application must import too. */
        if (pyapp_init(&cfg) < 0)
            return HUGD_EX_SOFTWARE;
        PyObject *app = pyapp_load(cfg.target);
        if (!app)
            return HUGD_EX_SOFTWARE;
        fprintf(stderr, "hugd: %s: OK\n", cfg.target);
        return 0;
    }
    if (log_open(cfg.error_logfile, cfg.access_logfile, cfg.log_level) < 0) {
        fprintf(stderr, "hugd: cannot open the log files: %s\n", strerror(errno));
        /* After a reload's exec, exiting would take the workers with us:
         * log to where the previous image did. */
        if (!reload)
            return HUGD_EX_CONFIG;
    }

    if (pyapp_virtualenv())
        log_info("using the virtualenv %s", pyapp_virtualenv());
    if (accesslog_setup(cfg.access_logformat, err, sizeof(err)) < 0) {
        fprintf(stderr, "hugd: access_logformat: %s\n", err);
        return HUGD_EX_CONFIG;
    }

    /* Refused before any socket is bound: a port is never taken, nor a
     * "listening" line logged, by a server that will not run.  (A reload
     * keeps the previous workers instead; privs_drop decides there.) */
    if (!reload && privs_check(cfg.user, cfg.allow_root, err, sizeof(err)) < 0) {
        log_crit(0, "%s", err);
        return HUGD_EX_CONFIG;
    }

    int app_ok_possible = 1;
    struct listener ls[HUGD_MAX_BINDS];
    int nls = open_listeners(&cfg, &inh, ls, reload);
    if (nls <= 0)
        return HUGD_EX_OSERR;
    if (privs_drop(cfg.user, cfg.group, cfg.allow_root, err, sizeof(err)) < 0) {
        log_crit(0, "%s", err);
        if (!reload)
            return HUGD_EX_CONFIG;
        app_ok_possible = 0; /* keep the previous workers; start none as root */
    }

    if (reload) {
        /* The previous generation serves while we import (master.c). */
        int rc = master_setup(&cfg, ls, nls, &inh, &launch);
        if (rc)
            return rc;
        master_serve_while_importing();
    }
    int app_ok = 0;
    if (app_ok_possible && pyapp_init(&cfg) == 0) {
        PyObject *app = pyapp_load(cfg.target);
        app_ok = app && wsgi_setup(app, ls, nls) == 0 && pyapp_freeze() == 0;
    }
    if (cfg.reload) {
        /* Even when the import failed: the fix is a save away.  The files
         * it did import are watched, and the extra ones. */
        char **sources = pyapp_source_files();
        if (watch_files(sources, cfg.reload_extra_files) < 0)
            log_err(errno, "reload: inotify; files are not watched");
        for (char **p = sources; p && *p; p++)
            free(*p);
        free(sources);
    }
    if (!app_ok) {
        if (!reload) {
            /* An inherited socket's path belongs to the master that is
             * still serving (a failed USR2): leave it. */
            for (int k = 0; k < nls; k++)
                sock_close(&ls[k], !ls[k].inherited);
            return HUGD_EX_SOFTWARE;
        }
        /* The probe passed, yet the import failed here: keep the previous
         * generation serving rather than stop. */
        log_crit(0, "reload: the application failed to load (see above); the previous "
                    "workers go on serving; fix it and send HUP again");
    }
    log_info("hugd %s serving %s with %d worker(s) (master pid %d)", HUGD_VERSION, cfg.target,
             cfg.workers, (int)getpid());
    if (!reload) {
        int rc = master_setup(&cfg, ls, nls, &inh, &launch);
        if (rc)
            return rc;
    }
    return master_serve(app_ok);
}
