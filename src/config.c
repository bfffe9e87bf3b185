/* Table-driven configuration, in the manner of nginx directives: one row per
 * setting gives its INI section and key, its command-line spelling (gunicorn's
 * where gunicorn has the setting), its type, where it lives in struct
 * hugd_config and its default.  Defaults are strings run through the same
 * parsers as user input, so --help, --check-config and conf/hugd.ini cannot
 * drift from what the code does.
 *
 * Lists (bind, pythonpath) accumulate within one source and replace what an
 * earlier source gave: the file's binds replace the default, and the first -b
 * on the command line replaces the file's.  c->list_restart holds, per table
 * row, "the next value starts a new list". */
#include "hugd/config.h"
#include "config_int.h"
#include "hugd/accesslog.h"
#include "hugd/addrmatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "hugd/ascii.h"

/* Timers elsewhere may turn seconds into int milliseconds; this cannot overflow. */
#define MAX_SECONDS 2147483

#define OFF(f) offsetof(struct hugd_config, f)
#define NORANGE 0, 0

/* Rows of one section stay together: config_print walks the table in order. */
const struct setting config_table[] = {
    {"app", "target", NULL, 0, T_STRING, OFF(target), NORANGE, NULL, "TARGET",
     "the application: app.py, a module, or module:attr"},
    {"app", "chdir", "chdir", 0, T_STRING, OFF(chdir), NORANGE, NULL, "DIR",
     "change to DIR before loading the application"},
    {"app", "pythonpath", "pythonpath", 0, T_LIST, OFF(pythonpath), NORANGE, NULL, "DIRS",
     "comma-separated folders put first on sys.path"},
    {"app", "reload", "reload", 0, T_BOOL, OFF(reload), NORANGE, "no", NULL,
     "for development: when a source file of the application changes, reload (as HUP does)"},
    {"app", "reload_extra_files", "reload-extra-file", 0, T_LIST, OFF(reload_extra_files), NORANGE,
     NULL, "FILES", "with reload, also watch these files (comma-separated; repeat the option)"},
    {"app", "virtualenv", "virtualenv", 0, T_STRING, OFF(virtualenv), NORANGE, NULL, "DIR",
     "use the packages of the virtualenv DIR (default: $VIRTUAL_ENV when set)"},
    {"server", "bind", "bind", 'b', T_BIND, OFF(binds), NORANGE, "127.0.0.1:8000", "ADDRESS",
     "host:port, [v6]:port or unix:PATH; repeat to listen on several"},
    {"server", "backlog", "backlog", 0, T_INT, OFF(backlog), 1, 65535, "2048", "N",
     "listen(2) backlog of each listening socket"},
    {"server", "pidfile", "pid", 'p', T_STRING, OFF(pidfile), NORANGE, NULL, "FILE",
     "write the master's pid to FILE (removed at exit)"},
    {"server", "user", "user", 'u', T_STRING, OFF(user), NORANGE, NULL, "USER",
     "switch to USER (name or uid) after binding"},
    {"server", "group", "group", 'g', T_STRING, OFF(group), NORANGE, NULL, "GROUP",
     "switch to GROUP (name or gid) after binding"},
    {"server", "allow_root", "allow-root", 0, T_BOOL, OFF(allow_root), NORANGE, "no", NULL,
     "let the application run as root"},
    {"server", "umask", "umask", 0, T_MODE, OFF(umask), 0, 0777, "022", "MODE",
     "file mode creation mask (octal), e.g. for unix sockets and logs"},
    {"server", "accept_queue", "accept-queue", 0, T_INT, OFF(accept_queue), 1, 1000000, "1024", "N",
     "connections the master holds while no worker is free"},
    {"server", "health_path", "health-path", 0, T_URLPATH, OFF(health_path), NORANGE, NULL, "PATH",
     "answer GET and HEAD of PATH in hugd itself, without the application: 200 while "
     "serving, 503 while stopping or unable to serve; off by default"},
    {"server", "stats_bind", "stats-bind", 0, T_STRING, OFF(stats_bind), NORANGE, NULL, "ADDRESS",
     "serve GET /stats (JSON) and /metrics (Prometheus) from the master at host:port or "
     "unix:PATH; off by default; loopback only unless stats_allow_remote"},
    {"server", "stats_allow_remote", "stats-allow-remote", 0, T_BOOL, OFF(stats_allow_remote),
     NORANGE, "no", NULL, "let stats_bind be an address other hosts can reach"},
    {"server", "stats_timeout", "stats-timeout", 0, T_SECONDS, OFF(stats_timeout), 0, MAX_SECONDS,
     "5", "SECONDS", "time a stats client has to send its request and take the answer"},
    {"server", "stats_max_connections", "stats-max-connections", 0, T_INT,
     OFF(stats_max_connections), 1, 1024, "16", "N",
     "stats connections served at once; more wait in the kernel's backlog"},
    {"workers", "workers", "workers", 'w', T_INT, OFF(workers), 1, HUGD_MAX_WORKERS, "auto", "N",
     "worker processes; auto = one per online CPU"},
    {"workers", "min_workers", "min-workers", 0, T_INT, OFF(min_workers), 0, HUGD_MAX_WORKERS, "0",
     "N", "fewest workers load-driven scaling keeps; 0 = as workers"},
    {"workers", "max_workers", "max-workers", 0, T_INT, OFF(max_workers), 0, HUGD_MAX_WORKERS, "0",
     "N",
     "most workers it starts while work waits; 0 = as workers (above min_workers: scaling is on, "
     "and workers is the count it starts with)"},
    {"workers", "spare_workers", "spare-workers", 0, T_INT, OFF(spare_workers), 0, HUGD_MAX_WORKERS,
     "0", "N", "with scaling on, keep at least N workers free while below max_workers"},
    {"workers", "idle_timeout", "idle-timeout", 0, T_SECONDS, OFF(idle_timeout), 0, MAX_SECONDS,
     "15", "SECONDS",
     "with scaling on, one worker retires (down to min_workers) once the pool has been too big "
     "for this long: nothing waited, and one fewer would have been at most half busy"},
    {"workers", "max_worker_memory", "max-worker-memory", 0, T_SIZE, OFF(max_worker_memory), 0,
     LLONG_MAX, "0", "SIZE",
     "a worker whose resident memory passes SIZE is replaced after its current request, its "
     "replacement started first; 0 = no limit"},
    {"workers", "slow_request_log", "slow-request-log", 0, T_SECONDS, OFF(slow_request_log), 0,
     MAX_SECONDS, "0", "SECONDS",
     "write the Python stack of a request running longer than this to the error log, once, "
     "and let it go on; 0 = off"},
    {"workers", "timeout", "timeout", 't', T_SECONDS, OFF(timeout), 0, MAX_SECONDS, "30", "SECONDS",
     "kill a worker whose request runs longer; 0 = no limit"},
    {"workers", "max_requests", "max-requests", 0, T_INT, OFF(max_requests), 0, INT_MAX, "0", "N",
     "replace a worker after N requests; 0 = never"},
    {"workers", "max_requests_jitter", "max-requests-jitter", 0, T_INT, OFF(max_requests_jitter), 0,
     INT_MAX, "0", "N", "add a random 0..N to each worker's max_requests"},
    {"workers", "rebalance_after", "rebalance-after", 0, T_SECONDS, OFF(rebalance_after), 0,
     MAX_SECONDS, "0.005", "SECONDS",
     "once one request has kept a worker busy this long, its other connections move to free "
     "workers as soon as they have a request to run; 0 = never"},
    {"workers", "rebalance_busy_after", "rebalance-busy-after", 0, T_SECONDS,
     OFF(rebalance_busy_after), 0, MAX_SECONDS, "0.005", "SECONDS",
     "while no worker is free, a connection waiting on a busy worker moves only once the "
     "request keeping that worker has run this long (then the master gives it to the first "
     "worker that frees up)"},
    {"workers", "graceful_timeout", "graceful-timeout", 0, T_SECONDS, OFF(graceful_timeout), 0,
     MAX_SECONDS, "30", "SECONDS", "time in-flight requests get on stop or reload"},
    {"workers", "shutdown_delay", "shutdown-delay", 0, T_SECONDS, OFF(shutdown_delay), 0,
     MAX_SECONDS, "0", "SECONDS",
     "after TERM, go on serving this long while the health path answers 503, so that a load "
     "balancer takes the host out before it stops accepting"},
    {"http", "keepalive", "keep-alive", 0, T_SECONDS, OFF(keepalive), 0, MAX_SECONDS, "5",
     "SECONDS", "close idle keep-alive connections after this; 0 = no keep-alive"},
    {"http", "header_timeout", "header-timeout", 0, T_SECONDS, OFF(header_timeout), 0, MAX_SECONDS,
     "30", "SECONDS", "time a client has to send a request head; 0 = no limit"},
    {"http", "write_timeout", "write-timeout", 0, T_SECONDS, OFF(write_timeout), 0, MAX_SECONDS,
     "10", "SECONDS",
     "close a connection whose client takes nothing of its response this long; "
     "0 = no limit"},
    {"http", "limit_request_line", "limit-request-line", 0, T_INT, OFF(limit_request_line), 1,
     1048576, "8190", "BYTES", "longest request line (method, target, version)"},
    {"http", "limit_request_fields", "limit-request-fields", 0, T_INT, OFF(limit_request_fields), 1,
     32768, "100", "N", "most header fields in one request"},
    {"http", "limit_request_field_size", "limit-request-field-size", 0, T_INT,
     OFF(limit_request_field_size), 1, 1048576, "8190", "BYTES", "longest header field"},
    {"http", "max_body_size", "max-body-size", 0, T_SIZE, OFF(max_body_size), 0, LLONG_MAX, "100M",
     "SIZE", "larger request bodies get 413; 0 = no limit"},
    {"http", "body_buffer_size", "body-buffer-size", 0, T_SIZE, OFF(body_buffer_size), 0, 1LL << 30,
     "1M", "SIZE", "body bytes kept in memory; the rest goes to a temp file"},
    {"http", "max_pending_output", "max-pending-output", 0, T_SIZE, OFF(max_pending_output), 0,
     LLONG_MAX, "64M", "SIZE",
     "response bytes one worker holds for clients slow to read them; past it the worker takes "
     "no new connection; 0 = no limit"},
    {"proxy", "proxy_protocol", "proxy-protocol", 0, T_BOOL, OFF(proxy_protocol), NORANGE, "no",
     NULL,
     "every connection starts with a PROXY protocol header (v1 or v2) naming the client; "
     "one missing or from a peer not in proxy_allow_ips gets 400"},
    {"proxy", "proxy_allow_ips", "proxy-allow-ips", 0, T_ADDRS, OFF(proxy_allow_ips), NORANGE,
     "127.0.0.1,::1", "ADDRS",
     "peers that may send a PROXY header: addresses, CIDR ranges, * for any"},
    {"proxy", "forwarded_allow_ips", "forwarded-allow-ips", 0, T_ADDRS, OFF(forwarded_allow_ips),
     NORANGE, "127.0.0.1,::1", "ADDRS",
     "peers whose X-Forwarded-For, X-Forwarded-Proto and Forwarded set REMOTE_ADDR and "
     "wsgi.url_scheme: addresses, CIDR ranges, * for any"},
    {"log", "access_logfile", "access-logfile", 0, T_STRING, OFF(access_logfile), NORANGE, NULL,
     "FILE", "write an access log line per request to FILE; - = stdout"},
    {"log", "access_logformat", "access-logformat", 0, T_LOGFORMAT, OFF(access_logformat), NORANGE,
     ACCESSLOG_DEFAULT, "FORMAT",
     "access log line: gunicorn's atoms (%(h)s %(r)s %(s)s %({header}i)s ...), or json for one "
     "JSON object per line"},
    {"log", "error_logfile", "error-logfile", 0, T_STRING, OFF(error_logfile), NORANGE, "-", "FILE",
     "error log; - = stderr"},
    {"log", "log_level", "log-level", 0, T_LEVEL, OFF(log_level), NORANGE, "info", "LEVEL",
     "debug, info, warning, error or critical"},
    {NULL, "config", "config", 'c', T_STRING, OFF(config_file), NORANGE, NULL, "FILE",
     "read settings from FILE; options given here win over it"},
    {NULL, "check-config", "check-config", 0, T_BOOL, OFF(check_config), NORANGE, "no", NULL,
     "check the configuration, print it and exit"},
    {NULL, "version", "version", 0, T_ACTION, 0, NORANGE, NULL, NULL, "print the version and exit"},
    {NULL, "help", "help", 'h', T_ACTION, 0, NORANGE, NULL, NULL, "print this help and exit"},
};

#define NSETTINGS CONFIG_NSETTINGS
_Static_assert(sizeof config_table / sizeof *config_table == CONFIG_NSETTINGS,
               "CONFIG_NSETTINGS (config_int.h) counts the rows of the table");
_Static_assert(NSETTINGS <= sizeof(unsigned long long) * CHAR_BIT,
               "list_restart has a bit per row");

static const char *const level_names[] = {"debug", "info", "warning", "error", "critical"};

const char *log_level_name(enum log_level l)
{
    return (unsigned)l < sizeof level_names / sizeof *level_names ? level_names[l] : "unknown";
}

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static void *field(const void *c, const struct setting *e)
{
    return (char *)c + e->off;
}

unsigned long long config_list_rows(void)
{
    unsigned long long bits = 0;
    for (size_t i = 0; i < NSETTINGS; i++)
        if (config_table[i].type == T_LIST || config_table[i].type == T_ADDRS ||
            config_table[i].type == T_BIND)
            bits |= 1ull << i;
    return bits;
}

/* True at the first value of a list in a new source; clears the mark. */
static int restart_list(struct hugd_config *c, const struct setting *e)
{
    unsigned long long bit = 1ull << (e - config_table);
    int r = (c->list_restart & bit) != 0;
    c->list_restart &= ~bit;
    return r;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > HUGD_MAX_WORKERS ? HUGD_MAX_WORKERS : (int)n;
}

/* Whole-string decimal integer; strtoll alone accepts "12abc" and "". */
static int parse_ll(const char *v, long long *out, char **end)
{
    errno = 0;
    *out = strtoll(v, end, 10);
    return *end == v || errno ? -1 : 0;
}

/* "100M" rather than "104857600" where the value allows it. */
static const char *format_size(char *buf, size_t len, long long v)
{
    static const char units[] = "GMk";
    for (int i = 0; i < 3; i++) {
        long long unit = 1LL << (10 * (3 - i));
        if (v && v % unit == 0) {
            snprintf(buf, len, "%lld%c", v / unit, units[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%lld", v);
    return buf;
}

/* The shortest text that reads back as the same double, without exponents:
 * "30", "0.5". */
static const char *format_seconds(char *buf, size_t len, double d)
{
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(buf, len, "%.*f", prec, d);
        if (strtod(buf, NULL) == d)
            return buf;
    }
    snprintf(buf, len, "%.17g", d);
    return buf;
}

static int parse_size(const struct setting *e, const char *v, long long *out, char *err, size_t len)
{
    long long n, unit = 1;
    char *end, a[32], b[32];
    if (*v < '0' || *v > '9' || parse_ll(v, &n, &end) < 0)
        goto bad;
    const char *units = "kKmMgG", *u = *end ? strchr(units, *end) : NULL;
    if (u) {
        unit = 1LL << (10 * (1 + (u - units) / 2));
        end++;
    }
    if (*end)
        goto bad;
    if (n > LLONG_MAX / unit || n * unit < e->min || n * unit > e->max)
        return fail(err, len, "'%s' is out of range (%s..%s)", v, format_size(a, sizeof a, e->min),
                    format_size(b, sizeof b, e->max));
    *out = n * unit;
    return 0;
bad:
    return fail(err, len, "'%s' is not a size (bytes, or a number with k, M or G)", v);
}

static int set_string(char **p, const char *v, char *err, size_t len)
{
    char *s = NULL;
    if (*v && !(s = strdup(v)))
        return fail(err, len, "out of memory");
    free(*p);
    *p = s; /* an empty value unsets */
    return 0;
}

/* Lists (pythonpath, the address lists): kept comma-joined, as the header
 * promises; blanks around commas and empty items are dropped so
 * config_print can write one per line. */
static int add_list(struct hugd_config *c, const struct setting *e, const char *v, char *err,
                    size_t len)
{
    char **p = field(c, e);
    if (restart_list(c, e)) {
        free(*p);
        *p = NULL;
    }
    while (*v) {
        size_t n = strcspn(v, ","), skip = n + (v[n] == ',');
        /* All that inih strips from a value: an item printed with it at
         * an end of its line would not read back the same. */
        while (n && strchr(" \t\n\v\f\r", *v))
            v++, n--, skip--;
        while (n && strchr(" \t\n\v\f\r", v[n - 1]))
            n--;
        if (n) {
            size_t old = *p ? strlen(*p) : 0;
            char *s = realloc(*p, old + n + 2);
            if (!s)
                return fail(err, len, "out of memory");
            if (old)
                s[old++] = ',';
            memcpy(s + old, v, n);
            s[old + n] = '\0';
            *p = s;
        }
        v += skip;
    }
    return 0;
}

static int check_bind(const char *a, char *err, size_t len)
{
    static const char form[] = "'%s' is not host:port, [v6]:port or unix:PATH";
    const char *colon = strrchr(a, ':');
    char host[64];
    long long port;
    char *end;

    if (strncmp(a, "unix:", 5) == 0) {
        size_t n = strlen(a + 5), max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
        if (n == 0)
            return fail(err, len, "'%s' has no socket path", a);
        if (n > max)
            return fail(err, len, "'%s': socket path is longer than %zu bytes", a, max);
        return 0;
    }
    if (!colon)
        return fail(err, len, form, a);
    if (a[0] == '[') {
        size_t n = (size_t)(colon - a) - 2;
        if (colon[-1] != ']' || n == 0 || n >= sizeof host)
            return fail(err, len, form, a);
        memcpy(host, a + 1, n);
        host[n] = '\0';
        host[strcspn(host, "%")] = '\0'; /* a zone (%eth0) is the kernel's business */
        struct in6_addr in6;
        if (inet_pton(AF_INET6, host, &in6) != 1)
            return fail(err, len, "'%s': '%s' is not an IPv6 address", a, host);
    } else if (colon == a) {
        return fail(err, len, "'%s' has no host (0.0.0.0 listens on every interface)", a);
    } else if (memchr(a, ':', (size_t)(colon - a))) {
        return fail(err, len, "'%s': put an IPv6 address in brackets, as in [::1]:8000", a);
    } else if (strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
               (size_t)(colon - a)) {
        return fail(err, len, form, a);
    }
    if (colon[1] < '0' || colon[1] > '9' || parse_ll(colon + 1, &port, &end) < 0 || *end)
        return fail(err, len, "'%s': '%s' is not a port number", a, colon + 1);
    if (port < 1 || port > 65535)
        return fail(err, len, "'%s': port %lld is out of range (1..65535)", a, port);
    return 0;
}

/* health_path: what a request line's target must be, byte for byte, to be
 * the health check; an empty value turns it off.  No query, no escapes:
 * the master compares raw bytes and must agree with the worker. */
static int check_url_path(const char *v, char *err, size_t len)
{
    if (!*v)
        return 0;
    if (*v != '/')
        return fail(err, len, "'%s' does not start with '/'", v);
    for (const char *p = v; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#' || *p == '%')
            return fail(err, len, "'%s': only printable ASCII without blanks, '?', '#' or '%%'", v);
    if (strlen(v) > 255)
        return fail(err, len, "'%.40s...' is longer than 255 bytes", v);
    return 0;
}

/* One value may hold several addresses ("a:1, b:2"); all are checked before
 * any is kept, so a bad value leaves the list as it was. */
static int add_binds(struct hugd_config *c, const struct setting *e, const char *v, char *err,
                     size_t len)
{
    char *copy = strdup(v), *tok[HUGD_MAX_BINDS], *save = NULL, *t;
    int n = 0, restart = (c->list_restart >> (e - config_table)) & 1;
    int base = restart ? 0 : c->nbinds, r = -1;

    if (!copy)
        return fail(err, len, "out of memory");
    /* Blanks as inih strips them (see add_list). */
    for (t = strtok_r(copy, ", \t\n\v\f\r", &save); t; t = strtok_r(NULL, ", \t\n\v\f\r", &save)) {
        if (check_bind(t, err, len) < 0)
            goto out;
        for (int i = 0; i < base + n; i++) {
            if (strcmp(i < base ? c->binds[i] : tok[i - base], t) == 0) {
                fail(err, len, "'%s' is given twice", t);
                goto out;
            }
        }
        if (base + n == HUGD_MAX_BINDS) {
            fail(err, len, "more than %d addresses", HUGD_MAX_BINDS);
            goto out;
        }
        tok[n++] = t;
    }
    if (n == 0) {
        fail(err, len, "no address given");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!(tok[i] = strdup(tok[i]))) {
            while (i--)
                free(tok[i]);
            fail(err, len, "out of memory");
            goto out;
        }
    }
    if (restart_list(c, e)) {
        for (int i = 0; i < c->nbinds; i++)
            free(c->binds[i]);
        c->nbinds = 0;
    }
    for (int i = 0; i < n; i++)
        c->binds[c->nbinds++] = tok[i];
    r = 0;
out:
    free(copy);
    return r;
}

/* inih ends a "key = value" line's value at a ';' after a blank (but not
 * a continuation line's, nor a command-line value): such a value could not
 * be printed back as it is (found by fuzzing). */
static int comment_inside(const char *v)
{
    for (; *v; v++)
        if (v[1] == ';' && strchr(" \t\n\v\f\r", v[0]))
            return 1;
    return 0;
}

/* config_print writes "key = value" (a list: one item a line), and inih
 * reads lines of at most INI_MAX_LINE - 2 bytes before the newline: a value
 * longer than that (from continuation lines or the command line) would
 * not read back (found by fuzzing). */
static int fits_a_line(const struct setting *e, const char *v)
{
    size_t room = INI_MAX_LINE - 2 - strlen(e->key) - 3;
    if (e->type != T_LIST && e->type != T_ADDRS)
        return strlen(v) <= room;
    for (; *v; v += strcspn(v, ",") + (v[strcspn(v, ",")] == ','))
        if (strcspn(v, ",") > room)
            return 0;
    return 1;
}

/* Parse v into the row's field.  The message names the value, not the key:
 * the caller adds "key: " or "--option: ". */
int config_set_value(struct hugd_config *c, const struct setting *e, const char *v, char *err,
                     size_t len)
{
    long long n;
    char *end;

    switch (e->type) {
    case T_INT:
        if (e->off == OFF(workers) && strcmp(v, "auto") == 0)
            n = online_cpus();
        else if (parse_ll(v, &n, &end) < 0 || *end)
            return fail(err, len, "'%s' is not a number", v);
        if (n < e->min || n > e->max)
            return fail(err, len, "'%s' is out of range (%lld..%lld)", v, e->min, e->max);
        *(int *)field(c, e) = (int)n;
        return 0;
    case T_MODE:
        errno = 0;
        n = strtoll(v, &end, 8);
        if (end == v || *end || errno)
            return fail(err, len, "'%s' is not an octal mode", v);
        if (n < e->min || n > e->max)
            return fail(err, len, "'%s' is out of range (0..0777)", v);
        *(int *)field(c, e) = (int)n;
        return 0;
    case T_SECONDS: {
        double d = strtod(v, &end);
        if (end == v || *end || !isfinite(d))
            return fail(err, len, "'%s' is not a number of seconds", v);
        if (d < (double)e->min || d > (double)e->max)
            return fail(err, len, "'%s' is out of range (%lld..%lld seconds)", v, e->min, e->max);
        *(double *)field(c, e) = d;
        return 0;
    }
    case T_SIZE:
        return parse_size(e, v, field(c, e), err, len);
    case T_STRING:
    case T_LIST:
        if (comment_inside(v))
            return fail(err, len, "'%s': a ';' after a blank reads back as a comment", v);
        if (!fits_a_line(e, v))
            return fail(err, len, "'%.40s...' is too long for one line of a configuration file", v);
        if (e->off == OFF(stats_bind)) {
            /* Where it was set, for config_check_stats: not in a file (yet). */
            c->stats_bind_line = 0;
            if (*v && check_bind(v, err, len) < 0)
                return -1;
        }
        return e->type == T_STRING ? set_string(field(c, e), v, err, len)
                                   : add_list(c, e, v, err, len);
    case T_ADDRS: {
        if (comment_inside(v))
            return fail(err, len, "'%s': a ';' after a blank reads back as a comment", v);
        if (!fits_a_line(e, v))
            return fail(err, len, "'%.40s...' is too long for one line of a configuration file", v);
        /* Checked here, while the file's line is known; the workers parse
         * the list again for themselves. */
        struct addrmatch m;
        if (addrmatch_parse(&m, v, err, len) < 0)
            return -1;
        addrmatch_free(&m);
        return add_list(c, e, v, err, len);
    }
    case T_LOGFORMAT: {
        if (comment_inside(v))
            return fail(err, len, "'%s': a ';' after a blank reads back as a comment", v);
        if (!fits_a_line(e, v))
            return fail(err, len, "'%.40s...' is too long for one line of a configuration file", v);
        /* Compiled here only to find errors while the file's line is known;
         * the log compiles it again at start-up. */
        struct accesslog_format *f = accesslog_compile(v, err, len);
        if (!f)
            return -1;
        accesslog_free(f);
        return set_string(field(c, e), v, err, len);
    }
    case T_URLPATH:
        if (check_url_path(v, err, len) < 0)
            return -1;
        return set_string(field(c, e), v, err, len);
    case T_BIND:
        return add_binds(c, e, v, err, len);
    case T_LEVEL:
        for (size_t i = 0; i < sizeof level_names / sizeof *level_names; i++) {
            if (ascii_case_streq(v, level_names[i])) {
                *(enum log_level *)field(c, e) = (enum log_level)i;
                return 0;
            }
        }
        return fail(err, len, "'%s' is not one of debug, info, warning, error, critical", v);
    case T_BOOL:
        if (!strcmp(v, "1") || ascii_case_streq(v, "yes") || ascii_case_streq(v, "true") ||
            ascii_case_streq(v, "on"))
            *(int *)field(c, e) = 1;
        else if (!strcmp(v, "0") || ascii_case_streq(v, "no") || ascii_case_streq(v, "false") ||
                 ascii_case_streq(v, "off"))
            *(int *)field(c, e) = 0;
        else
            return fail(err, len, "'%s' is not yes or no", v);
        return 0;
    case T_ACTION:
        break;
    }
    return fail(err, len, "cannot be set");
}

void config_defaults(struct hugd_config *c)
{
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (config_table[i].def &&
            config_set_value(c, &config_table[i], config_table[i].def, err, sizeof err) < 0) {
            /* A bad default is a bug in this table, caught by the unit test. */
            fprintf(stderr, "hugd: default of %s: %s\n", config_table[i].key, err);
            abort();
        }
    }
    c->list_restart = config_list_rows();
}

int config_set(struct hugd_config *c, const char *section, const char *key, const char *value,
               char *err, size_t errlen)
{
    int known_section = 0;
    if (!section || !*section)
        return fail(err, errlen, "'%s' is outside any section", key);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *e = &config_table[i];
        if (!e->section || strcmp(e->section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(e->key, key) != 0)
            continue;
        char msg[256];
        if (!value)
            return fail(err, errlen, "%s: no value", key);
        if (config_set_value(c, e, value, msg, sizeof msg) < 0)
            return fail(err, errlen, "%s: %s", key, msg);
        return 0;
    }
    if (!known_section)
        return fail(err, errlen, "unknown section [%s]", section);
    return fail(err, errlen, "unknown key '%s' in [%s]", key, section);
}

/* inih gives the handler no line number; reading the lines ourselves does,
 * and lets a handler error stop the parse (return NULL = end of file). */
struct load {
    struct hugd_config *c;
    FILE *f;
    int line;     /* lines read */
    int err_line; /* line of msg; 0 while all is well */
    int read_errno;
    char msg[256];
};

static char *read_line(char *buf, int size, void *stream)
{
    struct load *ld = stream;
    if (ld->err_line)
        return NULL;
    if (!fgets(buf, size, ld->f)) {
        if (ferror(ld->f))
            ld->read_errno = errno ? errno : EIO;
        return NULL;
    }
    ld->line++;
    size_t n = strlen(buf);
    /* inih would silently take the rest of an over-long line as a new line. */
    if (n == (size_t)size - 1 && buf[n - 1] != '\n') {
        int ch = getc(ld->f);
        if (ch == '\r')
            ch = getc(ld->f);
        if (ch != EOF && ch != '\n') {
            snprintf(ld->msg, sizeof ld->msg, "line is longer than %d bytes", size - 1);
            ld->err_line = ld->line;
            return NULL;
        }
    }
    return buf;
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
    struct load *ld = user;
    if (config_set(ld->c, section, key, value, ld->msg, sizeof ld->msg) == 0) {
        if (strcmp(section, "server") == 0 && strcmp(key, "stats_bind") == 0)
            ld->c->stats_bind_line = ld->line;
        return 1;
    }
    ld->err_line = ld->line;
    return 0;
}

int config_load_file(struct hugd_config *c, const char *path, char *err, size_t errlen)
{
    struct load ld = {.c = c};
    if (!(ld.f = fopen(path, "r")))
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    c->list_restart = config_list_rows();
    int r = ini_parse_stream(read_line, &ld, on_key, &ld);
    fclose(ld.f);
    /* inih reports lines it cannot parse itself only through r. */
    if (r > 0 && (!ld.err_line || r < ld.err_line))
        return fail(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
                    r);
    if (ld.err_line)
        return fail(err, errlen, "%s:%d: %s", path, ld.err_line, ld.msg);
    if (ld.read_errno)
        return fail(err, errlen, "%s: cannot read: %s", path, strerror(ld.read_errno));
    if (r < 0)
        return fail(err, errlen, "%s: out of memory", path);
    return 0;
}

static void put(FILE *out, const char *key, const char *value)
{
    /* inih takes a ';' after a blank as the start of a comment: a value
     * that begins with one follows the '=' directly (found by fuzzing). */
    int space = value && *value && *value != ';';
    fprintf(out, "%s =%s%s\n", key, space ? " " : "", value ? value : "");
}

void config_print(const struct hugd_config *c, FILE *out)
{
    const char *section = NULL;
    char buf[64];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *e = &config_table[i];
        const void *p = field(c, e);
        if (!e->section)
            continue;
        if (!section || strcmp(section, e->section) != 0)
            fprintf(out, "%s[%s]\n", section ? "\n" : "", e->section);
        section = e->section;
        switch (e->type) {
        case T_INT:
            snprintf(buf, sizeof buf, "%d", *(const int *)p);
            put(out, e->key, buf);
            break;
        case T_MODE:
            snprintf(buf, sizeof buf, "%03o", (unsigned)*(const int *)p);
            put(out, e->key, buf);
            break;
        case T_SECONDS:
            put(out, e->key, format_seconds(buf, sizeof buf, *(const double *)p));
            break;
        case T_SIZE:
            put(out, e->key, format_size(buf, sizeof buf, *(const long long *)p));
            break;
        case T_STRING:
        case T_URLPATH:
        case T_LOGFORMAT:
            put(out, e->key, *(char *const *)p);
            break;
        case T_LIST:
        case T_ADDRS: {
            /* One line per item keeps each line short enough for inih. */
            const char *s = *(char *const *)p;
            if (!s)
                put(out, e->key, NULL);
            for (; s && *s; s += strcspn(s, ",") + (s[strcspn(s, ",")] == ','))
                fprintf(out, "%s =%s%.*s\n", e->key, *s == ';' ? "" : " ", (int)strcspn(s, ","), s);
            break;
        }
        case T_BIND:
            for (int j = 0; j < c->nbinds; j++)
                put(out, e->key, c->binds[j]);
            break;
        case T_LEVEL:
            put(out, e->key, log_level_name(*(const enum log_level *)p));
            break;
        case T_BOOL:
            put(out, e->key, *(const int *)p ? "yes" : "no");
            break;
        case T_ACTION:
            break;
        }
    }
}

int config_resolve(struct hugd_config *c, char *err, size_t len)
{
    /* Unset bounds follow workers, so that scaling is off unless asked for. */
    if (!c->max_workers)
        c->max_workers = c->min_workers > c->workers ? c->min_workers : c->workers;
    if (!c->min_workers)
        c->min_workers = c->max_workers < c->workers ? c->max_workers : c->workers;
    if (c->min_workers > c->max_workers)
        return fail(err, len, "min_workers (%d) is above max_workers (%d)", c->min_workers,
                    c->max_workers);
    /* workers is where a scaling pool starts: within its bounds. */
    if (c->workers < c->min_workers)
        c->workers = c->min_workers;
    if (c->workers > c->max_workers)
        c->workers = c->max_workers;
    return 0;
}

void config_free(struct hugd_config *c)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (config_table[i].type == T_STRING || config_table[i].type == T_LIST ||
            config_table[i].type == T_URLPATH || config_table[i].type == T_LOGFORMAT ||
            config_table[i].type == T_ADDRS) {
            char **p = field(c, &config_table[i]);
            free(*p);
            *p = NULL;
        }
    }
    for (int i = 0; i < c->nbinds; i++)
        free(c->binds[i]);
    c->nbinds = 0;
}

/* A stats address is loopback when it names 127.0.0.0/8, ::1 (or ::1's
 * v4-mapped 127 form), localhost, or a Unix socket.  A host name other than
 * localhost counts as remote: what it resolves to can change. */
static int loopback_bind(const char *a)
{
    char host[256];
    if (strncmp(a, "unix:", 5) == 0)
        return 1;
    const char *colon = strrchr(a, ':');
    size_t n = colon ? (size_t)(colon - a) : strlen(a);
    if (a[0] == '[' && n >= 2) {
        a++;
        n -= 2;
    }
    if (n >= sizeof host)
        return 0;
    memcpy(host, a, n);
    host[n] = '\0';
    struct in_addr in4;
    struct in6_addr in6;
    if (ascii_case_streq(host, "localhost"))
        return 1;
    if (inet_pton(AF_INET, host, &in4) == 1)
        return (ntohl(in4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &in6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&in6) || (IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127);
    return 0;
}

int config_check_stats(const struct hugd_config *c, char *err, size_t len)
{
    if (!c->stats_bind || !*c->stats_bind || c->stats_allow_remote || loopback_bind(c->stats_bind))
        return 0;
    /* The stats name every request in flight (its path and query): not for
     * the network unless the operator says so. */
    if (c->stats_bind_line && c->config_file)
        return fail(err, len,
                    "%s:%d: stats_bind: '%s' is not a loopback address; the stats would be open "
                    "to other hosts: set stats_allow_remote = yes to allow it",
                    c->config_file, c->stats_bind_line, c->stats_bind);
    return fail(err, len,
                "hugd: --stats-bind: '%s' is not a loopback address; the stats would be open to "
                "other hosts: add --stats-allow-remote to allow it",
                c->stats_bind);
}
