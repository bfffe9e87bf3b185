/* Configuration: defaults, the INI file (inih) and the command line.
 *
 * One table describes every setting: its INI section and key, its long (and
 * short) command-line option, its type and its default.  The INI file and
 * the command line go through the same value parsers, so a bad value is
 * reported the same way from both ("FILE:LINE: ..." or "--option: ...").
 * The command line wins over the file. */
#ifndef HUGD_CONFIG_H
#define HUGD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define HUGD_MAX_BINDS 16
#define HUGD_MAX_WORKERS 1024

/* Exit codes (sysexits.h meanings). */
#define HUGD_EX_USAGE 64
#define HUGD_EX_SOFTWARE 70 /* the application failed to load */
#define HUGD_EX_OSERR 71
#define HUGD_EX_CONFIG 78

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING, LOG_LVL_ERROR, LOG_LVL_CRITICAL };

struct hugd_config {
    char *config_file; /* -c; NULL when none */
    char *target;      /* app.py, module or module:attr */

    /* [server] */
    char *binds[HUGD_MAX_BINDS]; /* "host:port", "[v6]:port", "unix:PATH" */
    int nbinds;
    int backlog;       /* listen(2) backlog */
    int accept_queue;  /* connections the master holds while no worker is free */
    char *health_path; /* answered by hugd itself (health.h); NULL = off */
    char *pidfile;
    char *user, *group; /* privileges dropped to after binding */
    int allow_root;     /* run the application as root anyway */
    int umask;
    char *chdir;
    char *pythonpath;         /* comma-separated folders put first on sys.path */
    int reload;               /* development: a changed source file reloads */
    char *reload_extra_files; /* comma-separated, watched too with reload */
    char *virtualenv; /* a venv whose site-packages the interpreter uses; else $VIRTUAL_ENV */

    char *stats_bind;          /* the master's stats endpoint (master_stats.c); NULL = off */
    int stats_allow_remote;    /* stats_bind may be a non-loopback address */
    double stats_timeout;      /* seconds one stats connection may last */
    int stats_max_connections; /* stats connections at once */
    int stats_bind_line;       /* config.c's own: stats_bind's line in config_file, 0 = not there */

    /* [workers] */
    int workers;                  /* the pool's size, or where a scaling one starts */
    int min_workers, max_workers; /* bounds of load-driven scaling; equal: it is off */
    int spare_workers;            /* free workers scaling keeps while below the maximum */
    double idle_timeout;          /* seconds a pool too big waits before it shrinks by one */
    long long max_worker_memory;  /* bytes of RSS past which a worker is replaced; 0 = off */
    double timeout;               /* seconds one request may run; 0 = no limit */
    double slow_request_log;      /* seconds after which a request\'s stack is logged; 0 = off */
    double graceful_timeout;      /* seconds a drain may take */
    double shutdown_delay;        /* seconds TERM keeps serving with the health check failing */
    int max_requests;             /* recycle a worker after this many; 0 = never */
    double rebalance_busy_after;  /* the same while no worker is free */
    double rebalance_after;       /* seconds in one request before its worker's waiting
                                     connections move to free workers; 0 = never */
    int max_requests_jitter;

    /* [http] */
    double keepalive;      /* idle keep-alive timeout, seconds; 0 disables keep-alive */
    double header_timeout; /* seconds a client has to send a whole request head */
    double write_timeout;  /* seconds a response may wait for a client that reads nothing */
    int limit_request_line;
    int limit_request_fields;
    int limit_request_field_size;
    long long max_body_size;      /* bytes; larger bodies get 413; 0 = no limit */
    long long body_buffer_size;   /* body bytes held in memory; the rest goes to a temp file */
    long long max_pending_output; /* response bytes a worker holds for slow readers before it
                                     takes no new connection; 0 = no limit */

    /* [proxy] */
    int proxy_protocol;        /* every connection starts with a PROXY v1 or v2 header */
    char *proxy_allow_ips;     /* comma-joined: who may send one (addrmatch.h) */
    char *forwarded_allow_ips; /* comma-joined: whose X-Forwarded-* and Forwarded are believed */

    /* [log] */
    char *access_logfile;   /* NULL = off, "-" = stdout */
    char *access_logformat; /* gunicorn's atoms, or "json" (accesslog.h) */
    char *error_logfile;    /* NULL or "-" = stderr */
    enum log_level log_level;

    int check_config; /* --check-config: validate, print, exit */

    unsigned long long
        list_restart; /* config.c's own: per setting, whether the next value of a list
                       * (bind, pythonpath) replaces it rather than extends it */
};

/* Fill every field with its default. */
void config_defaults(struct hugd_config *c);

/* Parse argv (and the file named by -c/--config, and the command line on
 * top of it).  Returns 0 to go on, 1 when the program should exit 0 at once
 * (--help or --version printed), or an exit code > 1 (HUGD_EX_USAGE for a
 * bad option, HUGD_EX_CONFIG for a bad file) after printing the error to
 * stderr. */
int config_from_args(struct hugd_config *c, int argc, char **argv);

/* Load one INI file onto c.  On error writes "FILE:LINE: what is wrong" into
 * err and returns -1. */
int config_load_file(struct hugd_config *c, const char *path, char *err, size_t errlen);

/* Set one key by section and name, as the INI file would.  Returns 0, or -1
 * with a message (without file and line) in err. */
int config_set(struct hugd_config *c, const char *section, const char *key, const char *value,
               char *err, size_t errlen);

/* The checks across keys, once the file and the command line are read:
 * stats_bind off the loopback without stats_allow_remote.  0, or -1 with
 * a whole message ("FILE:LINE: ..." or "hugd: --option: ...") in err. */
int config_check_stats(const struct hugd_config *c, char *err, size_t len);

/* Print the effective configuration as a valid INI file. */
void config_print(const struct hugd_config *c, FILE *out);

/* After every source: settings that depend on others (the scaling bounds
 * default to workers).  -1 with a message in err if they contradict. */
int config_resolve(struct hugd_config *c, char *err, size_t errlen);

void config_free(struct hugd_config *c);

const char *log_level_name(enum log_level l);

#endif
