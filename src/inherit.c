/* Passing state across exec(); see include/hugd/inherit.h. */
#include "hugd/inherit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/ascii.h"
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

/* Two hex digits at s as a byte, or -1 (also at the end of the string). */
static int hex_byte(const char *s)
{
    int hi = ascii_hex_value((unsigned char)s[0]);
    int lo = hi < 0 ? -1 : ascii_hex_value((unsigned char)s[1]);
    return lo < 0 ? -1 : hi * 16 + lo;
}

/* put_encoded's inverse; NULL for an escape that is not %XX, or is %00. */
static char *decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s != '%') {
            *o++ = *s;
            continue;
        }
        int v = hex_byte(s + 1);
        if (v <= 0) { /* a NUL would also cut the string short (found by fuzzing) */
            free(out);
            return NULL;
        }
        *o++ = (char)v;
        s += 2;
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

/* sscanf matched up to %n at `end`, and that is the end of the line. */
static int whole(const char *line, int end)
{
    return end >= 0 && line[end] == '\0';
}

static int bit(int v)
{
    return v == 0 || v == 1;
}

/* Every number is checked: a pid of 0 or -1 would make the master's kill()
 * hit its whole group or every process it may signal, a negative listener
 * index would pick a socket outside the table. */
static int parse_line(struct inherited *in, const char *line)
{
    int a, b, c, d, end = -1;
    char bind[1024];
    switch (line[0]) {
    case 'V':
        /* A binary that doesn't know this version must not guess: an
         * upgrade across formats fails cleanly and the old master stays. */
        return sscanf(line, "V %d%n", &a, &end) == 1 && whole(line, end) && a == INHERIT_VERSION
                   ? 0
                   : -1;
    case 'L': {
        if (in->nls >= HUGD_MAX_BINDS ||
            sscanf(line, "L %d %d %1023s%n", &a, &b, bind, &end) != 3 || !whole(line, end) ||
            a < 0 || !bit(b))
            return -1;
        char *s = decode(bind);
        if (!s)
            return -1;
        /* A bind (a unix path at most) is short: one that could not be
         * encoded again within an item (each byte as %XX) is not one
         * (found by fuzzing). */
        if (strlen(s) > (sizeof(bind) - 1) / 3) {
            free(s);
            return -1;
        }
        in->ls[in->nls].fd = a;
        in->ls[in->nls].systemd = b;
        in->ls[in->nls].bind = s;
        close_on_exec(a);
        in->nls++;
        return 0;
    }
    case 'S':
        if (sscanf(line, "S %d%n", &a, &end) != 1 || !whole(line, end) || a < 0)
            return -1;
        in->sb_fd = a;
        close_on_exec(a);
        return 0;
    case 'W':
        if (sscanf(line, "W %d %d %d %d%n", &a, &b, &c, &d, &end) != 4 || !whole(line, end) ||
            a < 0 || a >= HUGD_MAX_WORKERS || b <= 0 || c < 0 || !bit(d))
            return -1;
        for (int i = 0; i < in->nw; i++)
            if (in->w[i].slot == a)
                return -1;
        if (grow((void **)&in->w, in->nw, sizeof(*in->w)) < 0)
            return -1;
        in->w[in->nw++] = (struct inherit_worker){a, (pid_t)b, c, d};
        close_on_exec(c);
        return 0;
    case 'Q': {
        if (sscanf(line, "Q %d %d%n", &a, &b, &end) != 2 || end < 0 || a < 0 || b < 0)
            return -1;
        const char *hex = line + end + (line[end] == ' ');
        size_t n = strlen(hex);
        if (n % 2)
            return -1;
        n /= 2;
        struct inherit_conn q = {a, b, NULL, 0};
        if (n && !(q.data = malloc(n)))
            return -1;
        for (size_t i = 0; i < n; i++) {
            int v = hex_byte(hex + 2 * i);
            if (v < 0) {
                free(q.data);
                return -1;
            }
            q.data[i] = (char)v;
        }
        q.datalen = (unsigned)n;
        if (grow((void **)&in->q, in->nq, sizeof(*in->q)) < 0) {
            free(q.data);
            return -1;
        }
        in->q[in->nq++] = q;
        close_on_exec(a);
        return 0;
    }
    case 'U':
        if (sscanf(line, "U %d%n", &a, &end) != 1 || !whole(line, end) || a < 0)
            return -1;
        in->upgrade_fd = a;
        close_on_exec(a);
        return 0;
    case 'T':
        if (sscanf(line, "T %d %d%n", &a, &b, &end) != 2 || !whole(line, end) || a < 0 || b < 0)
            return -1;
        in->target = a;
        in->workers_setting = b;
        return 0;
    case 'P':
        if (sscanf(line, "P %d %d %d %d%n", &a, &b, &c, &d, &end) != 4 || !whole(line, end) ||
            a <= 0 || b < a || c <= 0 || d < c || b > HUGD_MAX_WORKERS || d > HUGD_MAX_WORKERS)
            return -1;
        in->min_workers = a;
        in->max_workers = b;
        in->min_setting = c;
        in->max_setting = d;
        return 0;
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
    int rc = 0;
    const char *env = getenv("HUGD_INHERIT");
    if (env) {
        char *copy = strdup(env), *save = NULL;
        if (!copy) {
            fprintf(stderr, "hugd: HUGD_INHERIT: out of memory\n");
            rc = -1;
        }
        for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            if (parse_line(in, line) < 0) {
                fprintf(stderr, "hugd: HUGD_INHERIT: bad item '%s'\n", line);
                inherit_free(in);
                rc = -1;
                break;
            }
        }
        free(copy);
    } else {
        from_systemd(in);
    }
    /* Also after a refusal: whatever runs next must not take it for its own. */
    unsetenv("HUGD_INHERIT");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}

char *inherit_format(const struct inherited *in)
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
    }
    if (in->sb_fd >= 0) {
        snprintf(line, sizeof(line), "S %d\n", in->sb_fd);
        buf_append_str(&b, line);
    }
    for (int i = 0; i < in->nw; i++) {
        snprintf(line, sizeof(line), "W %d %d %d %d\n", in->w[i].slot, (int)in->w[i].pid,
                 in->w[i].ch, in->w[i].retiring);
        buf_append_str(&b, line);
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
    }
    if (in->upgrade_fd >= 0) {
        snprintf(line, sizeof(line), "U %d\n", in->upgrade_fd);
        buf_append_str(&b, line);
    }
    if (in->target) {
        snprintf(line, sizeof(line), "T %d %d\n", in->target, in->workers_setting);
        buf_append_str(&b, line);
    }
    if (in->min_workers) {
        snprintf(line, sizeof(line), "P %d %d %d %d\n", in->min_workers, in->max_workers,
                 in->min_setting, in->max_setting);
        buf_append_str(&b, line);
    }
    buf_append(&b, "", 1);
    return b.p;
}

/* fn on every descriptor in names. */
static void each_fd(const struct inherited *in, int (*fn)(int fd))
{
    for (int i = 0; i < in->nls; i++)
        fn(in->ls[i].fd);
    if (in->sb_fd >= 0)
        fn(in->sb_fd);
    for (int i = 0; i < in->nw; i++)
        fn(in->w[i].ch);
    for (int i = 0; i < in->nq; i++)
        fn(in->q[i].fd);
    if (in->upgrade_fd >= 0)
        fn(in->upgrade_fd);
}

void inherit_keep_on_exec(const struct inherited *in)
{
    each_fd(in, keep_on_exec);
}

char *inherit_encode(const struct inherited *in)
{
    char *enc = inherit_format(in);
    if (enc)
        inherit_keep_on_exec(in);
    return enc;
}

void inherit_cloexec(const struct inherited *in)
{
    each_fd(in, close_on_exec);
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
