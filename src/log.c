/* Error and access logs; see include/hugd/log.h for the contract. */
#include "hugd/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_cur_level = LOG_LVL_INFO;

static char role[32] = "master";
static char *error_path; /* NULL: stderr as inherited */
static char *access_path;
static int access_fd = -1;

static const char *level_tag[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static int open_error(void)
{
    if (!error_path)
        return 0;
    int fd = open_append(error_path);
    if (fd < 0)
        return -1;
    /* dup2 keeps fd 2 (and everything that writes to it) pointing at the
     * new file without anybody having to know it changed. */
    if (fd != 2) {
        if (dup2(fd, 2) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    }
    return 0;
}

static int open_access(void)
{
    if (!access_path)
        return 0;
    if (strcmp(access_path, "-") == 0) {
        access_fd = 1;
        return 0;
    }
    int fd = open_append(access_path);
    if (fd < 0)
        return -1;
    if (access_fd > 2) {
        /* Same descriptor number after a reopen, for the same reason. */
        if (dup3(fd, access_fd, O_CLOEXEC) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    } else {
        access_fd = fd;
    }
    return 0;
}

int log_open(const char *err_path, const char *acc_path, enum log_level level)
{
    log_cur_level = level;
    error_path = (err_path && strcmp(err_path, "-") != 0) ? strdup(err_path) : NULL;
    access_path = acc_path ? strdup(acc_path) : NULL;
    if (open_error() < 0)
        return -1;
    return open_access();
}

int log_reopen(void)
{
    if (open_error() < 0)
        return -1;
    return open_access();
}

void log_set_role(const char *r)
{
    snprintf(role, sizeof(role), "%s", r);
}

static size_t stamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    return strftime(buf, len, "[%Y-%m-%d %H:%M:%S %z]", &tm);
}

void log_write(enum log_level lvl, int errnum, const char *fmt, ...)
{
    char buf[2048];
    size_t n = stamp(buf, sizeof(buf));
    int k =
        snprintf(buf + n, sizeof(buf) - n, " [%d] [%s] [%s] ", (int)getpid(), role, level_tag[lvl]);
    if (k > 0)
        n += (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k;
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    if (errnum) {
        k = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(errnum));
        if (k > 0)
            n += (size_t)k;
    }
    if (n >= sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    /* One write per line so that lines from several processes don't mix. */
    ssize_t w = write(2, buf, n);
    (void)w;
}

int log_access_enabled(void)
{
    return access_fd >= 0;
}

void log_access_write(const char *line, size_t len)
{
    if (access_fd < 0)
        return;
    ssize_t w = write(access_fd, line, len);
    (void)w;
}

void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
{
    if (lvl < log_cur_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (now < l->next) {
        l->suppressed++;
        return;
    }
    l->next = now + 1.0;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->suppressed)
        log_write(lvl, 0, "%s (and %lu more like it not logged)", msg, l->suppressed);
    else
        log_write(lvl, 0, "%s", msg);
    l->suppressed = 0;
}
