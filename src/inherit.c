/* Passing state across exec(); see include/hugd/inherit.h. */
#include "hugd/inherit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/buf.h"

#define SD_LISTEN_FDS_START 3
#define INHERIT_VERSION 1

/* Bind strings may hold anything a path can: encode what would break the
 * line format. */
static void put_encoded(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= ' ' || ch == '%' || ch == 0x7f) {
            char esc[4];
            snprintf(esc, sizeof(esc), "%%%02X", ch);
            buf_append(b, esc, 3);
        } else {
            buf_append(b, s, 1);
        }
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Two hex digits at s, or -1.  s[1] is only read when s[0] is a digit, so
 * a string ending in one digit is not read past its end. */
static int hex_byte(const char *s)
{
    int hi = hex_value(s[0]), lo = hi < 0 ? -1 : hex_value(s[1]);
    return lo < 0 ? -1 : hi * 16 + lo;
}

/* NULL for a "%00" or when out of memory. */
static char *decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        int v;
        if (*s == '%' && (v = hex_byte(s + 1)) >= 0) {
            if (v == 0) { /* a NUL would cut the string short of what was sent */
                free(out);
                return NULL;
            }
            *o++ = (char)v;
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static int keep_on_exec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

static int close_on_exec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int grow(void **arr, int n, size_t size)
{
    /* Arrays grow one item at a time: a few hundred items at most. */
    void *p = realloc(*arr, (size_t)(n + 1) * size);
    if (!p)
        return -1;
    *arr = p;
    return 0;
}

/* Descriptors and flags as the encoder writes them: anything else (a
 * negative number, one that overflowed) would not read back the same. */
static int is_fd(int fd)
{
    return fd >= 0;
}

static int is_flag(int v)
{
    return v == 0 || v == 1;
}

static int parse_line(struct inherited *in, const char *line)
{
    int a, b, c, d;
    char bind[1024];
    switch (line[0]) {
    case 'V':
        /* A binary that doesn't know this version must not guess: an
         * upgrade across formats fails cleanly and the old master stays. */
        return sscanf(line, "V %d", &a) == 1 && a == INHERIT_VERSION ? 0 : -1;
    case 'L':
        if (in->nls >= HUGD_MAX_BINDS || sscanf(line, "L %d %d %1023s", &a, &b, bind) != 3 ||
            !is_fd(a) || !is_flag(b))
            return -1;
        /* A bind (a unix path at most) is short: one so long that the
         * token may have been cut, or that could not be encoded again
         * within it (each byte as %XX), is not one (found by fuzzing). */
        if (strlen(bind) >= sizeof(bind) - 1 || !(in->ls[in->nls].bind = decode(bind)))
            return -1;
        if (strlen(in->ls[in->nls].bind) > (sizeof(bind) - 1) / 3) {
            free(in->ls[in->nls].bind);
            return -1;
        }
        in->ls[in->nls].fd = a;
        in->ls[in->nls].systemd = b;
        close_on_exec(a);
        in->nls++;
        return 0;
    case 'S':
        if (sscanf(line, "S %d", &in->sb_fd) != 1 || !is_fd(in->sb_fd))
            return -1;
        close_on_exec(in->sb_fd);
        return 0;
    case 'W':
        if (sscanf(line, "W %d %d %d %d", &a, &b, &c, &d) != 4 || a < 0 || a >= HUGD_MAX_WORKERS ||
            b <= 0 || !is_fd(c) || !is_flag(d) || grow((void **)&in->w, in->nw, sizeof(*in->w)) < 0)
            return -1;
        in->w[in->nw++] = (struct inherit_worker){a, (pid_t)b, c, d};
        close_on_exec(c);
        return 0;
    case 'Q': {
        int used = 0;
        if (sscanf(line, "Q %d %d%n", &a, &b, &used) != 2 || !is_fd(a) || b < 0 ||
            grow((void **)&in->q, in->nq, sizeof(*in->q)) < 0)
            return -1;
        struct inherit_conn q = {a, b, NULL, 0};
        const char *hex = line + used + (line[used] == ' ');
        size_t n = strlen(hex) / 2;
        if (strlen(hex) % 2)
            return -1;
        if (n && (q.data = malloc(n))) {
            for (size_t i = 0; i < n; i++) {
                int v = hex_byte(hex + 2 * i);
                if (v < 0) {
                    free(q.data);
                    return -1;
                }
                q.data[i] = (char)v;
            }
            q.datalen = (unsigned)n;
        }
        in->q[in->nq++] = q;
        close_on_exec(a);
        return 0;
    }
    case 'U':
        if (sscanf(line, "U %d", &in->upgrade_fd) != 1 || !is_fd(in->upgrade_fd))
            return -1;
        close_on_exec(in->upgrade_fd);
        return 0;
    case 'T':
        return sscanf(line, "T %d %d", &in->target, &in->workers_setting) == 2 && in->target > 0 &&
                       in->workers_setting >= 0
                   ? 0
                   : -1;
    }
    return -1;
}

static void from_systemd(struct inherited *in)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid())
        return;
    int n = atoi(fds);
    for (int i = 0; i < n && in->nls < HUGD_MAX_BINDS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "systemd:fd%d", SD_LISTEN_FDS_START + i);
        in->ls[in->nls].fd = SD_LISTEN_FDS_START + i;
        in->ls[in->nls].systemd = 1;
        in->ls[in->nls].bind = strdup(name);
        close_on_exec(SD_LISTEN_FDS_START + i);
        in->nls++;
    }
}

int inherit_from_env(struct inherited *in)
{
    memset(in, 0, sizeof(*in));
    in->sb_fd = in->upgrade_fd = -1;
    const char *env = getenv("HUGD_INHERIT");
    if (env) {
        char *copy = strdup(env), *save = NULL;
        if (!copy)
            return -1;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (parse_line(in, line) < 0) {
                fprintf(stderr, "hugd: HUGD_INHERIT: bad item '%s'\n", line);
                free(copy);
                return -1;
            }
        }
        free(copy);
    } else {
        from_systemd(in);
    }
    unsetenv("HUGD_INHERIT");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    return 0;
}

char *inherit_encode(const struct inherited *in)
{
    struct buf b = {0};
    char line[128];
    snprintf(line, sizeof(line), "V %d\n", INHERIT_VERSION);
    buf_append_str(&b, line);
    for (int i = 0; i < in->nls; i++) {
        snprintf(line, sizeof(line), "L %d %d ", in->ls[i].fd, in->ls[i].systemd);
        buf_append_str(&b, line);
        put_encoded(&b, in->ls[i].bind);
        buf_append(&b, "\n", 1);
        keep_on_exec(in->ls[i].fd);
    }
    if (in->sb_fd >= 0) {
        snprintf(line, sizeof(line), "S %d\n", in->sb_fd);
        buf_append_str(&b, line);
        keep_on_exec(in->sb_fd);
    }
    for (int i = 0; i < in->nw; i++) {
        snprintf(line, sizeof(line), "W %d %d %d %d\n", in->w[i].slot, (int)in->w[i].pid,
                 in->w[i].ch, in->w[i].retiring);
        buf_append_str(&b, line);
        keep_on_exec(in->w[i].ch);
    }
    for (int i = 0; i < in->nq; i++) {
        snprintf(line, sizeof(line), "Q %d %d ", in->q[i].fd, in->q[i].listener);
        buf_append_str(&b, line);
        for (unsigned k = 0; k < in->q[i].datalen; k++) {
            char hex[3];
            snprintf(hex, sizeof(hex), "%02x", (unsigned char)in->q[i].data[k]);
            buf_append(&b, hex, 2);
        }
        buf_append(&b, "\n", 1);
        keep_on_exec(in->q[i].fd);
    }
    if (in->upgrade_fd >= 0) {
        snprintf(line, sizeof(line), "U %d\n", in->upgrade_fd);
        buf_append_str(&b, line);
        keep_on_exec(in->upgrade_fd);
    }
    if (in->target) {
        snprintf(line, sizeof(line), "T %d %d\n", in->target, in->workers_setting);
        buf_append_str(&b, line);
    }
    buf_append(&b, "", 1);
    return b.p;
}

void inherit_cloexec(const struct inherited *in)
{
    for (int i = 0; i < in->nls; i++)
        close_on_exec(in->ls[i].fd);
    if (in->sb_fd >= 0)
        close_on_exec(in->sb_fd);
    for (int i = 0; i < in->nw; i++)
        close_on_exec(in->w[i].ch);
    for (int i = 0; i < in->nq; i++)
        close_on_exec(in->q[i].fd);
    if (in->upgrade_fd >= 0)
        close_on_exec(in->upgrade_fd);
}

void inherit_free(struct inherited *in)
{
    for (int i = 0; i < in->nls; i++)
        free(in->ls[i].bind);
    free(in->w);
    for (int i = 0; i < in->nq; i++)
        free(in->q[i].data);
    free(in->q);
    in->w = NULL;
    in->q = NULL;
    in->nls = in->nw = in->nq = 0;
}
