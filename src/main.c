/* hugd: serve a Python WSGI (Hug) application.
 *
 * Start-up order matters: configuration, logs, the application import (a
 * broken app stops here, before any socket or worker exists), the
 * listening sockets, then the master loop that forks the workers. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/config.h"
#include "hugd/log.h"
#include "hugd/master.h"
#include "hugd/pyapp.h"
#include "hugd/sock.h"
#include "hugd/wsgi.h"

int main(int argc, char **argv)
{
    static struct hugd_config cfg;
    config_defaults(&cfg);
    int rc = config_from_args(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc > 1)
        return rc;

    signal(SIGPIPE, SIG_IGN);
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
        return HUGD_EX_CONFIG;
    }

    if (pyapp_init(&cfg) < 0)
        return HUGD_EX_SOFTWARE;
    PyObject *app = pyapp_load(cfg.target);
    if (!app)
        return HUGD_EX_SOFTWARE;

    struct listener ls[HUGD_MAX_BINDS];
    for (int i = 0; i < cfg.nbinds; i++) {
        char err[512];
        if (sock_listen(cfg.binds[i], cfg.backlog, &ls[i], err, sizeof(err)) < 0) {
            log_crit(0, "cannot listen: %s", err);
            for (int k = 0; k < i; k++)
                sock_close(&ls[k], 1);
            return HUGD_EX_OSERR;
        }
    }
    if (wsgi_setup(app, ls, cfg.nbinds) < 0 || pyapp_freeze() < 0) {
        for (int k = 0; k < cfg.nbinds; k++)
            sock_close(&ls[k], 1);
        return HUGD_EX_SOFTWARE;
    }
    for (int i = 0; i < cfg.nbinds; i++)
        log_info("listening at %s%s", strncmp(cfg.binds[i], "unix:", 5) ? "http://" : "",
                 cfg.binds[i]);
    log_info("hugd %s serving %s with %d worker(s) (master pid %d)", HUGD_VERSION, cfg.target,
             cfg.workers, (int)getpid());
    return master_run(&cfg, ls, cfg.nbinds);
}
