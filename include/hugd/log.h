/* Error log and access log.
 *
 * The error log is file descriptor 2: a configured error log file is
 * dup2()'d onto it, so Python's tracebacks, wsgi.errors (sys.stderr) and
 * hugd's own lines land in one place, and USR1 can reopen it under the same
 * descriptor.  The level is checked before anything is formatted. */
#ifndef HUGD_LOG_H
#define HUGD_LOG_H

#include <stddef.h>

#include "hugd/config.h"

extern enum log_level log_cur_level;

/* Open the logs named in the config.  Returns 0, or -1 with errno set. */
int log_open(const char *error_path, const char *access_path, enum log_level level);
/* Reopen both files after logrotate moved them (USR1). */
int log_reopen(void);
/* Name shown in each line: "master" or "worker 3". */
void log_set_role(const char *role);

/* errnum != 0 appends ": strerror(errnum)". */
void log_write(enum log_level lvl, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, errnum, ...)                                                                   \
    do {                                                                                           \
        if ((lvl) >= log_cur_level)                                                                \
            log_write((lvl), (errnum), __VA_ARGS__);                                               \
    } while (0)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_warnx(...) LOG_AT(LOG_LVL_WARNING, 0, __VA_ARGS__)
#define log_errx(...) LOG_AT(LOG_LVL_ERROR, 0, __VA_ARGS__)
/* The errno variants take it explicitly so that formatting cannot clobber it. */
#define log_warn(err, ...) LOG_AT(LOG_LVL_WARNING, (err), __VA_ARGS__)
#define log_err(err, ...) LOG_AT(LOG_LVL_ERROR, (err), __VA_ARGS__)
#define log_crit(err, ...) LOG_AT(LOG_LVL_CRITICAL, (err), __VA_ARGS__)

/* Events of one kind that a client can cause at will (refused requests)
 * are logged at most once a second: the lines in between are counted, and
 * the next line logged says how many were left out. */
struct log_limit {
    double next;              /* CLOCK_MONOTONIC seconds */
    unsigned long suppressed; /* since the last line */
};
void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Is the access log on? */
int log_access_enabled(void);
/* Write one finished access line (ending in '\n'). */
void log_access_write(const char *line, size_t len);

#endif
