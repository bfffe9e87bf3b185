/* Unit tests for src/config.c: defaults, the INI file, the command line and
 * the round trip through config_print.
 *
 * gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude \
 *     src/config.c tests/unit/test_config.c -linih */
#include "hugd/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where conf/hugd.ini is; meson passes the source root. */
#ifndef HUGD_SOURCE_DIR
#define HUGD_SOURCE_DIR "."
#endif

static int passed, failed;

static void expect_int(long long a, long long b, const char *ea, const char *eb, int line)
{
    if (a == b) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, line, ea, a, eb, b);
}

static void expect_dbl(double a, double b, const char *ea, const char *eb, int line)
{
    if (a == b) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s == %.17g, expected %s == %.17g\n", __FILE__, line, ea, a, eb, b);
}

static void expect_str(const char *a, const char *b, const char *ea, const char *eb, int line)
{
    if ((!a && !b) || (a && b && strcmp(a, b) == 0)) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s == %s%s%s\n    expected %s == %s%s%s\n", __FILE__, line, ea,
            a ? "\"" : "", a ? a : "NULL", a ? "\"" : "", eb, b ? "\"" : "", b ? b : "NULL",
            b ? "\"" : "");
}

static void expect_has(const char *hay, const char *needle, const char *eh, int line)
{
    if (hay && strstr(hay, needle)) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s does not contain \"%s\"; it begins:\n%.300s\n", __FILE__, line, eh,
            needle, hay ? hay : "NULL");
}

#define EXPECT_INT(a, b) expect_int((long long)(a), (long long)(b), #a, #b, __LINE__)
#define EXPECT_DBL(a, b) expect_dbl((a), (b), #a, #b, __LINE__)
#define EXPECT_STR(a, b) expect_str((a), (b), #a, #b, __LINE__)
#define EXPECT_HAS(hay, needle) expect_has((hay), (needle), #hay, __LINE__)

/* Temporary files, removed at exit. */
static char tmp_paths[64][32];
static int ntmp;

static const char *write_tmp(const char *text)
{
    char *path = tmp_paths[ntmp++];
    strcpy(path, "/tmp/hugd-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror("test_config: temp file");
        exit(2);
    }
    close(fd);
    return path;
}

static char *slurp(FILE *f)
{
    static char bufs[4][16384];
    static int next;
    char *buf = bufs[next++ % 4];
    rewind(f);
    size_t n = fread(buf, 1, sizeof bufs[0] - 1, f);
    buf[n] = '\0';
    return buf;
}

/* Loads text as a config file onto a fresh default config. */
static int load_text(struct hugd_config *c, const char *text, const char **path, char *err,
                     size_t errlen)
{
    const char *p = write_tmp(text);
    if (path)
        *path = p;
    config_defaults(c);
    err[0] = '\0';
    return config_load_file(c, p, err, errlen);
}

/* The file's error message, with %s standing for the file's path. */
static void expect_load_error(const char *text, const char *fmt, int line)
{
    struct hugd_config c;
    char err[512], want[512];
    const char *path;
    int rc = load_text(&c, text, &path, err, sizeof err);
    snprintf(want, sizeof want, fmt, path);
    expect_int(rc, -1, "config_load_file()", "-1", line);
    expect_str(err, want, "err", want, line);
    config_free(&c);
}
#define EXPECT_LOAD_ERROR(text, fmt) expect_load_error((text), (fmt), __LINE__)

/* Runs config_from_args on fresh defaults, capturing stdout and stderr. */
static char *out_text, *err_text;

static int run(struct hugd_config *c, ...)
{
    char *argv[32] = {"hugd"};
    int argc = 1;
    va_list ap;
    va_start(ap, c);
    while ((argv[argc] = va_arg(ap, char *)))
        argc++;
    va_end(ap);

    config_defaults(c);
    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = config_from_args(c, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    out_text = slurp(fo);
    err_text = slurp(fe);
    fclose(fo);
    fclose(fe);
    return rc;
}

static void expect_same(const struct hugd_config *a, const struct hugd_config *b, int line)
{
#define SAME_INT(f) expect_int(a->f, b->f, "a->" #f, "b->" #f, line)
#define SAME_DBL(f) expect_dbl(a->f, b->f, "a->" #f, "b->" #f, line)
#define SAME_STR(f) expect_str(a->f, b->f, "a->" #f, "b->" #f, line)
    SAME_STR(target);
    SAME_STR(chdir);
    SAME_STR(pythonpath);
    SAME_STR(virtualenv);
    SAME_INT(nbinds);
    for (int i = 0; i < a->nbinds && i < b->nbinds; i++)
        SAME_STR(binds[i]);
    SAME_INT(backlog);
    SAME_INT(accept_queue);
    SAME_STR(health_path);
    SAME_INT(workers);
    SAME_DBL(shutdown_delay);
    SAME_DBL(timeout);
    SAME_DBL(graceful_timeout);
    SAME_DBL(keepalive);
    SAME_DBL(header_timeout);
    SAME_INT(limit_request_line);
    SAME_INT(limit_request_fields);
    SAME_INT(limit_request_field_size);
    SAME_INT(max_body_size);
    SAME_INT(body_buffer_size);
    SAME_STR(access_logfile);
    SAME_STR(access_logformat);
    SAME_STR(error_logfile);
    SAME_INT(log_level);
}

/* config_print, then config_load_file onto fresh defaults: same config. */
static void expect_round_trip(const struct hugd_config *c, int line)
{
    struct hugd_config back;
    char err[512] = "";
    FILE *f = tmpfile();
    config_print(c, f);
    const char *path = write_tmp(slurp(f));
    fclose(f);
    config_defaults(&back);
    int rc = config_load_file(&back, path, err, sizeof err);
    expect_int(rc, 0, "config_load_file(printed)", "0", line);
    expect_str(err, "", "err", "\"\"", line);
    expect_same(c, &back, line);
    config_free(&back);
}

static int cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > HUGD_MAX_WORKERS ? HUGD_MAX_WORKERS : (int)n;
}

static void test_defaults(void)
{
    struct hugd_config c;
    config_defaults(&c);
    EXPECT_STR(c.config_file, NULL);
    EXPECT_STR(c.target, NULL);
    EXPECT_STR(c.chdir, NULL);
    EXPECT_STR(c.pythonpath, NULL);
    EXPECT_INT(c.nbinds, 1);
    EXPECT_STR(c.binds[0], "127.0.0.1:8000");
    EXPECT_INT(c.backlog, 2048);
    EXPECT_INT(c.accept_queue, 1024);
    EXPECT_STR(c.health_path, NULL);
    EXPECT_DBL(c.shutdown_delay, 0);
    EXPECT_INT(c.workers, cpus());
    EXPECT_DBL(c.timeout, 30);
    EXPECT_DBL(c.graceful_timeout, 30);
    EXPECT_DBL(c.keepalive, 5);
    EXPECT_DBL(c.header_timeout, 30);
    EXPECT_INT(c.limit_request_line, 8190);
    EXPECT_INT(c.limit_request_fields, 100);
    EXPECT_INT(c.limit_request_field_size, 8190);
    EXPECT_INT(c.max_body_size, 100LL << 20);
    EXPECT_INT(c.body_buffer_size, 1LL << 20);
    EXPECT_STR(c.access_logfile, NULL);
    EXPECT_STR(c.error_logfile, "-");
    EXPECT_INT(c.log_level, LOG_LVL_INFO);
    EXPECT_INT(c.check_config, 0);
    config_free(&c);
}

static void test_every_type(void)
{
    struct hugd_config c;
    char err[512];
    int rc = load_text(&c,
                       "; a comment\n"
                       "# another\n"
                       "[app]\n"
                       "target = app:api\n"
                       "chdir = /srv/app\n"
                       "pythonpath = /a, /b ,,\n"
                       "[server]\n"
                       "bind = 0.0.0.0:9000\n"
                       "backlog = 100\n"
                       "accept_queue = 50\n"
                       "health_path = /_health/check-1\n"
                       "[workers]\n"
                       "workers = 7\n"
                       "shutdown_delay = 2.5\n"
                       "timeout = 0.5\n"
                       "graceful_timeout = 0\n"
                       "[http]\n"
                       "keepalive = 0\n"
                       "header_timeout = 12.25\n"
                       "limit_request_line = 4096\n"
                       "limit_request_fields = 50\n"
                       "limit_request_field_size = 1024\n"
                       "max_body_size = 10k\n"
                       "body_buffer_size = 0\n"
                       "[log]\n"
                       "access_logfile = -\n"
                       "error_logfile = /var/log/hugd.err\n"
                       "log_level = WARNING\n",
                       NULL, err, sizeof err);
    EXPECT_INT(rc, 0);
    EXPECT_STR(err, "");
    EXPECT_STR(c.target, "app:api");
    EXPECT_STR(c.chdir, "/srv/app");
    EXPECT_STR(c.pythonpath, "/a,/b");
    EXPECT_INT(c.nbinds, 1);
    EXPECT_STR(c.binds[0], "0.0.0.0:9000");
    EXPECT_INT(c.backlog, 100);
    EXPECT_INT(c.accept_queue, 50);
    EXPECT_STR(c.health_path, "/_health/check-1");
    EXPECT_INT(c.workers, 7);
    EXPECT_DBL(c.shutdown_delay, 2.5);
    EXPECT_DBL(c.timeout, 0.5);
    EXPECT_DBL(c.graceful_timeout, 0);
    EXPECT_DBL(c.keepalive, 0);
    EXPECT_DBL(c.header_timeout, 12.25);
    EXPECT_INT(c.limit_request_line, 4096);
    EXPECT_INT(c.limit_request_fields, 50);
    EXPECT_INT(c.limit_request_field_size, 1024);
    EXPECT_INT(c.max_body_size, 10240);
    EXPECT_INT(c.body_buffer_size, 0);
    EXPECT_STR(c.access_logfile, "-");
    EXPECT_STR(c.error_logfile, "/var/log/hugd.err");
    EXPECT_INT(c.log_level, LOG_LVL_WARNING);
    expect_round_trip(&c, __LINE__);
    config_free(&c);

    /* "auto", every level name, empty strings unset, name: value. */
    rc = load_text(&c,
                   "[workers]\nworkers = auto\n[log]\nlog_level: critical\n"
                   "error_logfile =\n[app]\nchdir = /x\nchdir =\n",
                   NULL, err, sizeof err);
    EXPECT_INT(rc, 0);
    EXPECT_INT(c.workers, cpus());
    EXPECT_INT(c.log_level, LOG_LVL_CRITICAL);
    EXPECT_STR(c.error_logfile, NULL);
    EXPECT_STR(c.chdir, NULL);
    const char *levels[] = {"debug", "info", "warning", "error", "critical"};
    for (int i = 0; i < 5; i++) {
        EXPECT_INT(config_set(&c, "log", "log_level", levels[i], err, sizeof err), 0);
        EXPECT_INT(c.log_level, i);
        EXPECT_STR(log_level_name(c.log_level), levels[i]);
    }
    config_free(&c);
}

static void test_lists(void)
{
    struct hugd_config c;
    char err[512];
    /* Repeated lines, several per line, and an indented continuation line;
     * the file's binds replace the default. */
    int rc = load_text(&c,
                       "[server]\n"
                       "bind = 127.0.0.1:8001\n"
                       "bind = [::1]:8002, unix:/run/hugd.sock\n"
                       "bind = localhost:8003\n"
                       "  [fe80::1%eth0]:8004 0.0.0.0:8005\n"
                       "[app]\n"
                       "pythonpath = /one\n"
                       "pythonpath = /two,/three\n",
                       NULL, err, sizeof err);
    EXPECT_INT(rc, 0);
    EXPECT_STR(err, "");
    EXPECT_INT(c.nbinds, 6);
    EXPECT_STR(c.binds[0], "127.0.0.1:8001");
    EXPECT_STR(c.binds[1], "[::1]:8002");
    EXPECT_STR(c.binds[2], "unix:/run/hugd.sock");
    EXPECT_STR(c.binds[3], "localhost:8003");
    EXPECT_STR(c.binds[4], "[fe80::1%eth0]:8004");
    EXPECT_STR(c.binds[5], "0.0.0.0:8005");
    EXPECT_STR(c.pythonpath, "/one,/two,/three");
    expect_round_trip(&c, __LINE__);

    /* A second file replaces the lists it names and keeps the others. */
    const char *p = write_tmp("[server]\nbind = 10.0.0.1:1\n");
    EXPECT_INT(config_load_file(&c, p, err, sizeof err), 0);
    EXPECT_INT(c.nbinds, 1);
    EXPECT_STR(c.binds[0], "10.0.0.1:1");
    EXPECT_STR(c.pythonpath, "/one,/two,/three");

    /* A bad value leaves the list as it was, even when its first part is good. */
    EXPECT_INT(config_set(&c, "server", "bind", "10.0.0.2:2 10.0.0.3:0", err, sizeof err), -1);
    EXPECT_STR(err, "bind: '10.0.0.3:0': port 0 is out of range (1..65535)");
    EXPECT_INT(c.nbinds, 1);
    EXPECT_INT(config_set(&c, "server", "bind", " , ", err, sizeof err), -1);
    EXPECT_STR(err, "bind: no address given");
    config_free(&c);

    /* Items lose every blank inih strips from a value (found by fuzzing:
     * "a \f, b" printed "pythonpath = a \f", which reads back as "a"). */
    rc = load_text(&c, "[app]\npythonpath = a \f, \vb\r ,\f\n", NULL, err, sizeof err);
    EXPECT_INT(rc, 0);
    EXPECT_STR(c.pythonpath, "a,b");
    expect_round_trip(&c, __LINE__);
    config_free(&c);
    /* A value or an item that begins with ';' is printed so that inih does
     * not take it for a comment (found by fuzzing). */
    rc = load_text(&c, "[app]\npythonpath = a,;b\ntarget =;x\n[server]\nbind = unix:/a\f,\vb:1\n",
                   NULL, err, sizeof err);
    EXPECT_INT(rc, 0);
    EXPECT_STR(c.pythonpath, "a,;b");
    EXPECT_STR(c.target, ";x");
    EXPECT_INT(c.nbinds, 2);
    EXPECT_STR(c.binds[0], "unix:/a");
    EXPECT_STR(c.binds[1], "b:1");
    expect_round_trip(&c, __LINE__);
    config_free(&c);
    /* A continuation line keeps "a ;b", which printed would read back as
     * "a": refused (found by fuzzing). */
    rc = load_text(&c, "[app]\npythonpath = a\n  b \f;c\n", NULL, err, sizeof err);
    EXPECT_INT(rc, -1);
    EXPECT_HAS(err, ":3: pythonpath: 'b \f;c': a ';' after a blank reads back as a comment");
    config_free(&c);
    /* An item as long as a line: printed after "pythonpath = " it would not
     * fit (found by fuzzing). */
    char text[512] = "[app]\npythonpath = a\n  ";
    memset(text + strlen(text), 'x', 190);
    strcat(text, "\n");
    rc = load_text(&c, text, NULL, err, sizeof err);
    EXPECT_INT(rc, -1);
    EXPECT_HAS(err, ":3: pythonpath: 'xxxx");
    EXPECT_HAS(err, "is too long for one line of a configuration file");
    config_free(&c);
}

static void test_file_errors(void)
{
    EXPECT_LOAD_ERROR("[workers]\nworkers = abc\n", "%s:2: workers: 'abc' is not a number");
    EXPECT_LOAD_ERROR("[workers]\n\nworkers = 0\n", "%s:3: workers: '0' is out of range (1..1024)");
    EXPECT_LOAD_ERROR("[workers]\nworkers = 1025\n",
                      "%s:2: workers: '1025' is out of range (1..1024)");
    EXPECT_LOAD_ERROR("[workers]\nworkers = 4x\n", "%s:2: workers: '4x' is not a number");
    EXPECT_LOAD_ERROR("[server]\nbacklog = 65536\n",
                      "%s:2: backlog: '65536' is out of range (1..65535)");
    EXPECT_LOAD_ERROR("[server]\naccept_queue = 0\n",
                      "%s:2: accept_queue: '0' is out of range (1..1000000)");
    EXPECT_LOAD_ERROR("[http]\nlimit_request_fields = 32769\n",
                      "%s:2: limit_request_fields: '32769' is out of range (1..32768)");
    EXPECT_LOAD_ERROR("[workers]\ntimeout = -1\n",
                      "%s:2: timeout: '-1' is out of range (0..2147483 seconds)");
    EXPECT_LOAD_ERROR("[workers]\ntimeout = soon\n",
                      "%s:2: timeout: 'soon' is not a number of seconds");
    EXPECT_LOAD_ERROR("[http]\nkeepalive = inf\n",
                      "%s:2: keepalive: 'inf' is not a number of seconds");
    EXPECT_LOAD_ERROR("[http]\nmax_body_size = 10x\n",
                      "%s:2: max_body_size: '10x' is not a size (bytes, or a number with k, M "
                      "or G)");
    EXPECT_LOAD_ERROR("[http]\nbody_buffer_size = 2G\n",
                      "%s:2: body_buffer_size: '2G' is out of range (0..1G)");
    EXPECT_LOAD_ERROR("[log]\nlog_level = loud\n",
                      "%s:2: log_level: 'loud' is not one of debug, info, warning, error, "
                      "critical");
    EXPECT_LOAD_ERROR("[log]\n\naccess_logformat = %(h)s %(zz)s\n",
                      "%s:3: access_logformat: unknown atom %%(zz)s (known: h l u t r m U q H s b "
                      "B f a T M D L p, {header}i, {header}o, %%%%)");
    EXPECT_LOAD_ERROR("[log]\naccess_logformat = 100% done\n",
                      "%s:2: access_logformat: '%% done' at byte 4: expected %%(NAME)s or %%%%");
    EXPECT_LOAD_ERROR("[wrkers]\nworkers = 2\n", "%s:2: unknown section [wrkers]");
    EXPECT_LOAD_ERROR("[workers]\nworker = 2\n", "%s:2: unknown key 'worker' in [workers]");
    EXPECT_LOAD_ERROR("[app]\nconfig = x.ini\n", "%s:2: unknown key 'config' in [app]");
    EXPECT_LOAD_ERROR("workers = 2\n", "%s:1: 'workers' is outside any section");
    EXPECT_LOAD_ERROR("[workers]\nthis is not ini\n",
                      "%s:2: syntax error (expected [section] or key = value)");
    EXPECT_LOAD_ERROR("[server\n", "%s:1: syntax error (expected [section] or key = value)");

    /* Binds. */
    EXPECT_LOAD_ERROR("[server]\nbind = 127.0.0.1:0\n",
                      "%s:2: bind: '127.0.0.1:0': port 0 is out of range (1..65535)");
    EXPECT_LOAD_ERROR("[server]\nbind = 127.0.0.1:65536\n",
                      "%s:2: bind: '127.0.0.1:65536': port 65536 is out of range (1..65535)");
    EXPECT_LOAD_ERROR("[server]\nbind = 127.0.0.1:http\n",
                      "%s:2: bind: '127.0.0.1:http': 'http' is not a port number");
    EXPECT_LOAD_ERROR("[server]\nbind = localhost\n",
                      "%s:2: bind: 'localhost' is not host:port, [v6]:port or unix:PATH");
    EXPECT_LOAD_ERROR("[server]\nbind = :8000\n",
                      "%s:2: bind: ':8000' has no host (0.0.0.0 listens on every interface)");
    EXPECT_LOAD_ERROR("[server]\nbind = ::1:8000\n",
                      "%s:2: bind: '::1:8000': put an IPv6 address in brackets, as in "
                      "[::1]:8000");
    EXPECT_LOAD_ERROR("[server]\nbind = [::g]:80\n",
                      "%s:2: bind: '[::g]:80': '::g' is not an IPv6 address");
    EXPECT_LOAD_ERROR("[server]\nbind = [::1]80\n",
                      "%s:2: bind: '[::1]80' is not host:port, [v6]:port or unix:PATH");
    EXPECT_LOAD_ERROR("[server]\nbind = unix:\n", "%s:2: bind: 'unix:' has no socket path");
    EXPECT_LOAD_ERROR("[server]\nbind = a:1\nbind = a:1\n", "%s:3: bind: 'a:1' is given twice");
    EXPECT_LOAD_ERROR("[server]\nbind = a:1 b:2 a:1\n", "%s:2: bind: 'a:1' is given twice");
    EXPECT_LOAD_ERROR("[server]\nbind = a:1 a:2 a:3 a:4 a:5 a:6 a:7 a:8\n"
                      "bind = a:9 a:10 a:11 a:12 a:13 a:14 a:15 a:16\n"
                      "bind = a:17\n",
                      "%s:4: bind: more than 16 addresses");
    char text[300], want[300]; /* a path too long for sockaddr_un */
    snprintf(text, sizeof text, "[server]\nbind = unix:/%0120d\n", 0);
    snprintf(want, sizeof want, "%%s:2: bind: 'unix:/%0120d': socket path is longer than 107 bytes",
             0);
    EXPECT_LOAD_ERROR(text, want);

    /* The first error is the one reported, and nothing after it applies. */
    struct hugd_config c;
    char err[512];
    const char *path;
    EXPECT_INT(load_text(&c, "[workers]\nworkers = x\nworkers = 0\n[server]\nbacklog = 9\n", &path,
                         err, sizeof err),
               -1);
    EXPECT_INT(c.backlog, 2048);
    config_free(&c);
    EXPECT_LOAD_ERROR("[workers]\nbad line\nworkers = x\n",
                      "%s:2: syntax error (expected [section] or key = value)");
    EXPECT_LOAD_ERROR("[workers]\nworkers = x\nbad line\n", "%s:2: workers: 'x' is not a number");

    /* inih's line buffer is fixed (200 bytes on Debian): longer lines are
     * refused, not cut in two. */
    char line[1200];
    memset(line, 'x', sizeof line);
    memcpy(line, "[app]\nchdir = /", 15);
    strcpy(line + 6 + 150, "\r\n");
    EXPECT_INT(load_text(&c, line, NULL, err, sizeof err), 0);
    EXPECT_INT(strlen(c.chdir), 150 - 8);
    config_free(&c);
    memset(line + 6 + 150, 'x', 3);
    strcpy(line + 6 + 1000, "\n[workers]\nworkers = 2\n");
    EXPECT_INT(load_text(&c, line, &path, err, sizeof err), -1);
    snprintf(text, sizeof text, "%s:2: line is longer than ", path);
    EXPECT_INT(strncmp(err, text, strlen(text)), 0);
    EXPECT_HAS(err, " bytes");
    config_free(&c);

    config_defaults(&c);
    EXPECT_INT(config_load_file(&c, "/nonexistent/hugd.ini", err, sizeof err), -1);
    EXPECT_STR(err, "/nonexistent/hugd.ini: cannot open: No such file or directory");
    EXPECT_INT(config_load_file(&c, "/tmp", err, sizeof err), -1);
    EXPECT_STR(err, "/tmp: cannot read: Is a directory");
    config_free(&c);
}

static void test_config_set(void)
{
    struct hugd_config c;
    char err[512];
    config_defaults(&c);
    EXPECT_INT(config_set(&c, "workers", "workers", "abc", err, sizeof err), -1);
    EXPECT_STR(err, "workers: 'abc' is not a number");
    EXPECT_INT(config_set(&c, "", "workers", "2", err, sizeof err), -1);
    EXPECT_STR(err, "'workers' is outside any section");
    EXPECT_INT(config_set(&c, "nope", "workers", "2", err, sizeof err), -1);
    EXPECT_STR(err, "unknown section [nope]");
    /* Setting a string twice frees the first (valgrind checks). */
    EXPECT_INT(config_set(&c, "app", "chdir", "/a", err, sizeof err), 0);
    EXPECT_INT(config_set(&c, "app", "chdir", "/b", err, sizeof err), 0);
    EXPECT_STR(c.chdir, "/b");
    EXPECT_INT(config_set(&c, "log", "error_logfile", "/tmp/e", err, sizeof err), 0);
    EXPECT_STR(c.error_logfile, "/tmp/e");
    /* After config_defaults the first bind replaces the default, the next adds. */
    EXPECT_INT(config_set(&c, "server", "bind", "a:1", err, sizeof err), 0);
    EXPECT_INT(config_set(&c, "server", "bind", "b:2", err, sizeof err), 0);
    EXPECT_INT(c.nbinds, 2);
    EXPECT_STR(c.binds[0], "a:1");
    config_free(&c);
    EXPECT_STR(c.chdir, NULL);
    EXPECT_INT(c.nbinds, 0);
}

/* health_path is compared byte for byte with request targets, in the
 * master and in the workers: only a plain path is taken. */
static void test_health_path(void)
{
    struct hugd_config c;
    char err[512];
    config_defaults(&c);
    EXPECT_INT(config_set(&c, "server", "health_path", "/healthz", err, sizeof err), 0);
    EXPECT_STR(c.health_path, "/healthz");
    EXPECT_INT(config_set(&c, "server", "health_path", "", err, sizeof err), 0);
    EXPECT_STR(c.health_path, NULL);
    EXPECT_INT(config_set(&c, "server", "health_path", "healthz", err, sizeof err), -1);
    EXPECT_STR(err, "health_path: 'healthz' does not start with '/'");
    EXPECT_INT(config_set(&c, "server", "health_path", "/a b", err, sizeof err), -1);
    EXPECT_STR(err, "health_path: '/a b': only printable ASCII without blanks, '?', '#' or '%'");
    EXPECT_INT(config_set(&c, "server", "health_path", "/a?x=1", err, sizeof err), -1);
    EXPECT_INT(config_set(&c, "server", "health_path", "/%41", err, sizeof err), -1);
    EXPECT_INT(config_set(&c, "server", "health_path", "/\xc3\xa9", err, sizeof err), -1);
    EXPECT_INT(config_set(&c, "workers", "shutdown_delay", "-1", err, sizeof err), -1);
    EXPECT_STR(err, "shutdown_delay: '-1' is out of range (0..2147483 seconds)");
    EXPECT_STR(c.health_path, NULL);
    config_free(&c);
    EXPECT_INT(run(&c, "--health-path", "/up", "--shutdown-delay", "10", "app", NULL), 0);
    EXPECT_STR(c.health_path, "/up");
    EXPECT_DBL(c.shutdown_delay, 10);
    expect_round_trip(&c, __LINE__);
    config_free(&c);
    EXPECT_INT(run(&c, "--health-path", "up", "app", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "--health-path: 'up' does not start with '/'");
    config_free(&c);
}

static void test_stats_bind(void)
{
    struct hugd_config c;
    static const char *const local[] = {"127.0.0.1:9100", "127.9.8.7:1",
                                        "[::1]:9100",     "[::ffff:127.0.0.1]:9",
                                        "localhost:9100", "unix:/tmp/s.sock"};
    static const char *const remote[] = {"0.0.0.0:9100", "10.0.0.1:9100", "[::]:9100",
                                         "example.com:9100"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        EXPECT_INT(run(&c, "--stats-bind", local[i], "app", NULL), 0);
        EXPECT_STR(c.stats_bind, local[i]);
        config_free(&c);
    }
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++) {
        EXPECT_INT(run(&c, "--stats-bind", remote[i], "app", NULL), HUGD_EX_CONFIG);
        EXPECT_HAS(err_text, "is not a loopback address");
        EXPECT_HAS(err_text, "--stats-allow-remote");
        config_free(&c);
        EXPECT_INT(run(&c, "--stats-bind", remote[i], "--stats-allow-remote", "app", NULL), 0);
        config_free(&c);
    }
    EXPECT_INT(run(&c, "--stats-bind", "nowhere", "app", NULL), HUGD_EX_USAGE);
    config_free(&c);
    EXPECT_INT(run(&c, "app", NULL), 0);
    EXPECT_STR(c.stats_bind, NULL);
    EXPECT_INT(c.stats_max_connections, 16);
    EXPECT_DBL(c.stats_timeout, 5);
    config_free(&c);
    /* From a file: its line; the command line may allow it after all. */
    const char *path = write_tmp("[server]\nstats_bind = 0.0.0.0:9100\n");
    EXPECT_INT(run(&c, "-c", path, "app", NULL), HUGD_EX_CONFIG);
    EXPECT_HAS(err_text, ":2: stats_bind: '0.0.0.0:9100' is not a loopback address");
    EXPECT_HAS(err_text, "stats_allow_remote = yes");
    config_free(&c);
    EXPECT_INT(run(&c, "-c", path, "--stats-allow-remote", "app", NULL), 0);
    config_free(&c);
    EXPECT_INT(run(&c, "-c", path, "--stats-bind", "127.0.0.1:1", "app", NULL), 0);
    config_free(&c);
}

static void test_sizes(void)
{
    static const struct {
        const char *text;
        long long bytes; /* -1: refused */
    } cases[] = {
        {"0", 0},
        {"1", 1},
        {"10k", 10240},
        {"2K", 2048},
        {"3m", 3LL << 20},
        {"3M", 3LL << 20},
        {"1g", 1LL << 30},
        {"5G", 5LL << 30},
        {"8589934591G", 8589934591LL << 30},
        {"8589934592G", -1}, /* 2^63: overflows */
        {"99999999999999999999", -1},
        {"k", -1},
        {"-1", -1},
        {"+1", -1},
        {"1.5M", -1},
        {"10MB", -1},
        {"1 M", -1},
        {"", -1},
    };
    struct hugd_config c;
    char err[512];
    config_defaults(&c);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        c.max_body_size = -7;
        int rc = config_set(&c, "http", "max_body_size", cases[i].text, err, sizeof err);
        EXPECT_INT(rc, cases[i].bytes < 0 ? -1 : 0);
        EXPECT_INT(c.max_body_size, cases[i].bytes < 0 ? -7 : cases[i].bytes);
    }
    EXPECT_INT(config_set(&c, "http", "max_body_size", "8589934592G", err, sizeof err), -1);
    EXPECT_STR(err, "max_body_size: '8589934592G' is out of range (0..9223372036854775807)");
    EXPECT_INT(config_set(&c, "http", "body_buffer_size", "1G", err, sizeof err), 0);
    EXPECT_INT(c.body_buffer_size, 1LL << 30);
    EXPECT_INT(config_set(&c, "http", "body_buffer_size", "1073741825", err, sizeof err), -1);
    EXPECT_STR(err, "body_buffer_size: '1073741825' is out of range (0..1G)");
    config_free(&c);
}

static void test_cli(void)
{
    struct hugd_config c;
    const char *file = write_tmp("[app]\ntarget = file:app\n"
                                 "[server]\nbind = 10.0.0.1:1\nbind = 10.0.0.2:2\nbacklog = 100\n"
                                 "[workers]\nworkers = 3\ntimeout = 7\n");

    /* The command line wins, wherever -c is, and TARGET may come anywhere. */
    EXPECT_INT(run(&c, "-w", "5", "-c", file, "app:api", "--backlog=200", NULL), 0);
    EXPECT_STR(err_text, "");
    EXPECT_STR(c.config_file, file);
    EXPECT_INT(c.workers, 5);
    EXPECT_INT(c.backlog, 200);
    EXPECT_DBL(c.timeout, 7);
    EXPECT_STR(c.target, "app:api");
    EXPECT_INT(c.nbinds, 2);
    EXPECT_STR(c.binds[1], "10.0.0.2:2");
    config_free(&c);

    /* Any -b replaces the file's binds; more -b add to it. */
    EXPECT_INT(run(&c, "--config", file, "-b", "127.0.0.1:1", "--bind", "[::1]:2", NULL), 0);
    EXPECT_INT(c.nbinds, 2);
    EXPECT_STR(c.binds[0], "127.0.0.1:1");
    EXPECT_STR(c.binds[1], "[::1]:2");
    EXPECT_STR(c.target, "file:app");
    config_free(&c);

    EXPECT_INT(run(&c, "--pythonpath", "/a", "--pythonpath=/b", "--chdir", "/srv", "-t", "0",
                   "--keep-alive", "2.5", "--log-level", "debug", "--max-body-size", "1k",
                   "--access-logfile", "-", "--", "app.py", NULL),
               0);
    EXPECT_STR(c.pythonpath, "/a,/b");
    EXPECT_STR(c.chdir, "/srv");
    EXPECT_DBL(c.timeout, 0);
    EXPECT_DBL(c.keepalive, 2.5);
    EXPECT_INT(c.log_level, LOG_LVL_DEBUG);
    EXPECT_INT(c.max_body_size, 1024);
    EXPECT_STR(c.access_logfile, "-");
    EXPECT_STR(c.target, "app.py");
    config_free(&c);

    /* A format the log cannot use is a configuration error (78), not a usage error. */
    EXPECT_INT(run(&c, "--access-logformat", "%(h)s %(Q)s", "app", NULL), HUGD_EX_CONFIG);
    EXPECT_HAS(err_text, "hugd: --access-logformat: unknown atom %(Q)s");
    config_free(&c);
    EXPECT_INT(run(&c, "--access-logformat", "json", "app", NULL), 0);
    EXPECT_STR(c.access_logformat, "json");
    config_free(&c);

    /* Usage errors. */
    EXPECT_INT(run(&c, "-w", "abc", "app", NULL), HUGD_EX_USAGE);
    EXPECT_STR(err_text, "hugd: --workers: 'abc' is not a number\n"
                         "Try 'hugd --help' for more information.\n");
    config_free(&c);
    EXPECT_INT(run(&c, "--workers=0", "app", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: --workers: '0' is out of range (1..1024)\n");
    config_free(&c);
    EXPECT_INT(run(&c, "-b", "nowhere", "app", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: --bind: 'nowhere' is not host:port, [v6]:port or unix:PATH\n");
    config_free(&c);
    EXPECT_INT(run(&c, "--nope", "app", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: unknown or ambiguous option '--nope'\n");
    config_free(&c);
    EXPECT_INT(run(&c, "-z", "app", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: unknown option '-z'\n");
    config_free(&c);
    EXPECT_INT(run(&c, "app", "-w", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: option '--workers' needs a value\n");
    config_free(&c);
    EXPECT_INT(run(&c, "app", "--timeout", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: option '--timeout' needs a value\n");
    config_free(&c);
    EXPECT_INT(run(&c, "--check-config=yes", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: option '--check-config' takes no value\n");
    config_free(&c);
    EXPECT_INT(run(&c, "a", "b", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: one TARGET expected, got 'a' and 'b'\n");
    config_free(&c);
    EXPECT_INT(run(&c, "a", "--", "b", NULL), HUGD_EX_USAGE);
    config_free(&c);
    EXPECT_INT(run(&c, "-w", "2", NULL), HUGD_EX_USAGE);
    EXPECT_HAS(err_text, "hugd: no TARGET given");
    config_free(&c);

    /* --check-config needs no TARGET. */
    EXPECT_INT(run(&c, "--check-config", NULL), 0);
    EXPECT_INT(c.check_config, 1);
    config_free(&c);

    /* A bad file is a config error, reported as FILE:LINE. */
    const char *bad = write_tmp("[workers]\nworkers = many\n");
    char want[512];
    snprintf(want, sizeof want, "%s:2: workers: 'many' is not a number\n", bad);
    EXPECT_INT(run(&c, "-c", bad, "app", NULL), HUGD_EX_CONFIG);
    EXPECT_STR(err_text, want);
    config_free(&c);
    EXPECT_INT(run(&c, "-c", "/nonexistent.ini", "app", NULL), HUGD_EX_CONFIG);
    EXPECT_STR(err_text, "/nonexistent.ini: cannot open: No such file or directory\n");
    config_free(&c);

    /* --help and --version print and ask to exit 0, even with a bad file. */
    EXPECT_INT(run(&c, "-c", bad, "--help", NULL), 1);
    EXPECT_STR(err_text, "");
    EXPECT_HAS(out_text, "usage: hugd [OPTION]... TARGET\n");
    EXPECT_HAS(out_text, "-b, --bind ADDRESS");
    EXPECT_HAS(out_text, "(default: 127.0.0.1:8000)");
    EXPECT_HAS(out_text, "-w, --workers N");
    EXPECT_HAS(out_text, "(default: auto)");
    EXPECT_HAS(out_text, "--max-body-size SIZE");
    EXPECT_HAS(out_text, "(default: 100M)");
    static const char *const longs[] = {"chdir",
                                        "pythonpath",
                                        "virtualenv",
                                        "bind",
                                        "backlog",
                                        "accept-queue",
                                        "workers",
                                        "timeout",
                                        "graceful-timeout",
                                        "shutdown-delay",
                                        "health-path",
                                        "keep-alive",
                                        "header-timeout",
                                        "limit-request-line",
                                        "limit-request-fields",
                                        "limit-request-field-size",
                                        "max-body-size",
                                        "body-buffer-size",
                                        "access-logfile",
                                        "access-logformat",
                                        "error-logfile",
                                        "log-level",
                                        "config",
                                        "check-config",
                                        "version",
                                        "help"};
    for (size_t i = 0; i < sizeof longs / sizeof *longs; i++) {
        char opt[64];
        snprintf(opt, sizeof opt, "--%s", longs[i]);
        EXPECT_HAS(out_text, opt);
    }
    config_free(&c);
    EXPECT_INT(run(&c, "--version", NULL), 1);
    EXPECT_INT(strncmp(out_text, "hugd ", 5), 0);
    EXPECT_INT(out_text[strlen(out_text) - 1], '\n');
    config_free(&c);
    EXPECT_INT(run(&c, "-h", NULL), 1);
    config_free(&c);
}

static void test_round_trip(void)
{
    struct hugd_config c;
    config_defaults(&c);
    expect_round_trip(&c, __LINE__);
    config_free(&c);

    /* --check-config with a file and options: what it prints reads back the same. */
    const char *file = write_tmp("[app]\npythonpath = /x\n  /y\n[log]\naccess_logfile = a.log\n"
                                 "[http]\nheader_timeout = 0.1\n");
    EXPECT_INT(run(&c, "--check-config", "-c", file, "-b", "unix:/tmp/h.sock", "-b", "[::]:8080",
                   "-w", "9", "--graceful-timeout", "2147483", "--body-buffer-size", "3000",
                   "--max-body-size", "0", "--log-level", "error", "--limit-request-line",
                   "1048576", "app:make_app()", NULL),
               0);
    EXPECT_STR(err_text, "");
    EXPECT_INT(c.check_config, 1);
    EXPECT_STR(c.pythonpath, "/x,/y");
    EXPECT_DBL(c.header_timeout, 0.1);
    EXPECT_DBL(c.graceful_timeout, 2147483);
    expect_round_trip(&c, __LINE__);

    /* Printing is stable: print, load, print gives the same text. */
    FILE *f = tmpfile();
    config_print(&c, f);
    char first[16384];
    strcpy(first, slurp(f));
    fclose(f);
    struct hugd_config back;
    char err[512];
    config_defaults(&back);
    EXPECT_INT(config_load_file(&back, write_tmp(first), err, sizeof err), 0);
    f = tmpfile();
    config_print(&back, f);
    EXPECT_STR(slurp(f), first);
    fclose(f);
    EXPECT_HAS(first, "[app]\ntarget = app:make_app()\n");
    EXPECT_HAS(first, "bind = unix:/tmp/h.sock\nbind = [::]:8080\n");
    EXPECT_HAS(first, "max_body_size = 0\n");
    EXPECT_HAS(first, "body_buffer_size = 3000\n");
    config_free(&back);
    config_free(&c);
}

/* conf/hugd.ini must load, change nothing, and show every key with the
 * default the code has. */
static void test_shipped_ini(void)
{
    const char *path = HUGD_SOURCE_DIR "/conf/hugd.ini";
    struct hugd_config c, d;
    char err[512] = "";
    FILE *f = fopen(path, "r");
    if (!f) {
        failed++;
        fprintf(stderr,
                "%s:%d: cannot open %s: run from the source root, or build with "
                "-DHUGD_SOURCE_DIR=...\n",
                __FILE__, __LINE__, path);
        return;
    }
    char *doc = slurp(f);
    fclose(f);

    config_defaults(&c);
    config_defaults(&d);
    EXPECT_INT(config_load_file(&c, path, err, sizeof err), 0);
    EXPECT_STR(err, "");
    expect_same(&c, &d, __LINE__);

    f = tmpfile();
    config_print(&d, f);
    char *printed = slurp(f);
    fclose(f);
    for (char *line = strtok(printed, "\n"); line; line = strtok(NULL, "\n")) {
        char want[256];
        if (line[0] == '[') {
            snprintf(want, sizeof want, "\n%s\n", line);
        } else if (strncmp(line, "workers = ", 10) == 0) {
            snprintf(want, sizeof want, "\n;workers = auto\n");
        } else {
            snprintf(want, sizeof want, "\n;%s\n", line);
        }
        EXPECT_HAS(doc, want);
    }
    config_free(&c);
    config_free(&d);
}

int main(void)
{
    test_defaults();
    test_every_type();
    test_lists();
    test_file_errors();
    test_config_set();
    test_health_path();
    test_stats_bind();
    test_sizes();
    test_cli();
    test_round_trip();
    test_shipped_ini();
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
