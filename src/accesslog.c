/* Access log lines; see include/hugd/accesslog.h.
 *
 * The format is compiled once into a list of atoms, so a request costs a
 * walk over that list and no format parsing.  Everything that comes from the
 * client is escaped: a request cannot forge a second log line or break the
 * quoting of the fields around it. */
#include "hugd/accesslog.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hugd/http.h"
#include "hugd/log.h"

/* Longest part of a client-supplied value that is logged: keeps a line
 * within what one write to a pipe keeps whole. */
#define MAX_URL 2000
#define MAX_VALUE 500

enum atom_kind {
    A_TEXT,     /* literal text */
    A_HOST,     /* h: client address */
    A_DASH,     /* l: ident, never known */
    A_USER,     /* u: user of HTTP Basic authentication */
    A_TIME,     /* t: [10/Oct/2000:13:55:36 -0700] */
    A_REQUEST,  /* r: request line */
    A_METHOD,   /* m */
    A_PATH,     /* U: target without the query */
    A_QUERY,    /* q: query without the '?' */
    A_PROTOCOL, /* H: HTTP/1.1 */
    A_STATUS,   /* s */
    A_BYTES,    /* b, B: body bytes */
    A_REFERER,  /* f */
    A_AGENT,    /* a */
    A_SECONDS,  /* T: whole seconds */
    A_MILLIS,   /* M */
    A_MICROS,   /* D */
    A_DECIMAL,  /* L: seconds with six decimals */
    A_PID,      /* p: <pid>, as gunicorn writes it */
    A_REQ_HDR,  /* {name}i */
    A_RESP_HDR, /* {name}o */
};

struct atom {
    enum atom_kind kind;
    const char *text; /* A_TEXT: the text; A_*_HDR: the header name */
    size_t len;
};

struct accesslog_format {
    int json;
    int natoms;
    char *spec; /* atoms point into this copy */
    struct atom atoms[];
};

static const struct {
    char name;
    enum atom_kind kind;
} letters[] = {
    {'h', A_HOST},   {'l', A_DASH},   {'u', A_USER},    {'t', A_TIME},     {'r', A_REQUEST},
    {'m', A_METHOD}, {'U', A_PATH},   {'q', A_QUERY},   {'H', A_PROTOCOL}, {'s', A_STATUS},
    {'b', A_BYTES},  {'B', A_BYTES},  {'f', A_REFERER}, {'a', A_AGENT},    {'T', A_SECONDS},
    {'M', A_MILLIS}, {'D', A_MICROS}, {'L', A_DECIMAL}, {'p', A_PID},
};

/* One "%(...)s" whose inside is name[0..n): the atom, or -1 with a message. */
static int atom_of(const char *name, size_t n, struct atom *a, char *err, size_t errlen)
{
    if (n == 1) {
        for (size_t i = 0; i < sizeof letters / sizeof *letters; i++) {
            if (letters[i].name == name[0]) {
                a->kind = letters[i].kind;
                return 0;
            }
        }
    }
    if (n >= 4 && name[0] == '{' && name[n - 2] == '}' &&
        (name[n - 1] == 'i' || name[n - 1] == 'o')) {
        for (size_t i = 1; i < n - 2; i++) {
            if (!isgraph((unsigned char)name[i])) {
                snprintf(err, errlen, "%%(%.*s)s: '%.*s' is not a header name", (int)n, name,
                         (int)(n - 3), name + 1);
                return -1;
            }
        }
        a->kind = name[n - 1] == 'i' ? A_REQ_HDR : A_RESP_HDR;
        a->text = name + 1;
        a->len = n - 3;
        return 0;
    }
    snprintf(err, errlen,
             "unknown atom %%(%.*s)s (known: h l u t r m U q H s b B f a T M D L p, "
             "{header}i, {header}o, %%%%)",
             (int)n, name);
    return -1;
}

struct accesslog_format *accesslog_compile(const char *spec, char *err, size_t errlen)
{
    size_t n = strlen(spec);
    /* At most one atom per byte; the array is trimmed by nothing, it is small. */
    struct accesslog_format *f = calloc(1, sizeof(*f) + (n + 1) * sizeof(struct atom));
    if (!f || !(f->spec = strdup(spec))) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strcmp(spec, ACCESSLOG_JSON) == 0) {
        f->json = 1;
        return f;
    }
    const char *s = f->spec;
    size_t i = 0;
    while (i < n) {
        struct atom *a = &f->atoms[f->natoms];
        if (s[i] != '%') {
            size_t run = strcspn(s + i, "%");
            *a = (struct atom){A_TEXT, s + i, run};
            f->natoms++;
            i += run;
            continue;
        }
        if (s[i + 1] == '%') {
            *a = (struct atom){A_TEXT, s + i + 1, 1};
            f->natoms++;
            i += 2;
            continue;
        }
        const char *close = s[i + 1] == '(' ? strchr(s + i + 2, ')') : NULL;
        if (!close || close[1] != 's') {
            snprintf(err, errlen, "'%.12s' at byte %zu: expected %%(NAME)s or %%%%", s + i, i + 1);
            accesslog_free(f);
            return NULL;
        }
        if (atom_of(s + i + 2, (size_t)(close - (s + i + 2)), a, err, errlen) < 0) {
            accesslog_free(f);
            return NULL;
        }
        f->natoms++;
        i = (size_t)(close + 2 - s);
    }
    return f;
}

void accesslog_free(struct accesslog_format *f)
{
    if (!f)
        return;
    free(f->spec);
    free(f);
}

/* ---- values ---------------------------------------------------------- */

static const char hex[] = "0123456789abcdef";

/* Append at most cap bytes of p[0..n), escaped: a quote or a backslash
 * gets a backslash, and a byte that is not printable ASCII becomes \xHH
 * (text, as Apache's log writes it) or \u00HH (JSON: bytes past ASCII are
 * taken as latin-1, as PEP 3333 decodes them, so every line is valid JSON
 * whatever the client sent). */
static void put_escaped(struct buf *out, const char *p, size_t n, size_t cap, int json)
{
    if (n > cap)
        n = cap;
    buf_reserve(out, n * 6);
    char *o = out->p + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(o, json ? "\\u00" : "\\x", json ? 4 : 2);
            o += json ? 4 : 2;
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    out->len = (size_t)(o - out->p);
}

static void put_fmt(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(struct buf *out, const char *fmt, ...)
{
    for (size_t want = 64;;) {
        buf_reserve(out, want);
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(out->p + out->len, out->cap - out->len, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if ((size_t)k < out->cap - out->len) {
            out->len += (size_t)k;
            return;
        }
        want = (size_t)k + 1;
    }
}

/* A value of the request or the response; p == NULL: not known. */
struct val {
    const char *p;
    size_t n;
};

static struct val url_of(const struct http_request *r)
{
    /* url_len == 0: the target was never parsed (and the arena may be empty). */
    if (!r->url_len || !r->arena.p)
        return (struct val){NULL, 0};
    return (struct val){r->arena.p + r->url, r->url_len};
}

static struct val path_of(const struct http_request *r)
{
    struct val u = url_of(r);
    const char *q = u.p ? memchr(u.p, '?', u.n) : NULL;
    if (q)
        u.n = (size_t)(q - u.p);
    return u;
}

static struct val query_of(const struct http_request *r)
{
    struct val u = url_of(r);
    const char *q = u.p ? memchr(u.p, '?', u.n) : NULL;
    if (!u.p)
        return u;
    if (!q)
        return (struct val){"", 0};
    return (struct val){q + 1, u.n - (size_t)(q + 1 - u.p)};
}

static struct val method_of(const struct http_request *r)
{
    if (!r->have_method)
        return (struct val){NULL, 0};
    const char *m = llhttp_method_name((llhttp_method_t)r->method);
    return (struct val){m, strlen(m)};
}

static struct val protocol_of(const struct http_request *r, char *buf, size_t len)
{
    if (!r->have_version)
        return (struct val){NULL, 0};
    int k = snprintf(buf, len, "HTTP/%d.%d", r->major, r->minor);
    return (struct val){buf, (size_t)k};
}

static struct val req_header(const struct http_request *r, const char *name, size_t n)
{
    char key[256];
    size_t len = 0;
    if (n >= sizeof key)
        return (struct val){NULL, 0};
    memcpy(key, name, n);
    key[n] = '\0';
    const char *v = r->arena.p ? http_header(r, key, &len) : NULL;
    return (struct val){v, len};
}

/* In the application's headers ("Name: value\r\n"...): the first called name. */
static struct val resp_header(const struct accesslog_entry *e, const char *name, size_t n)
{
    const char *p = e->resp_head, *end = p ? p + e->resp_head_len : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) >= n + 2 && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            const char *v = p + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            return (struct val){v, (size_t)(eol - v)};
        }
        p = eol + 2;
    }
    return (struct val){NULL, 0};
}

static int b64(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* The user name of "Authorization: Basic ..." (decoded into buf), else unknown. */
static struct val user_of(const struct http_request *r, char *buf, size_t len)
{
    struct val a = req_header(r, "authorization", 13);
    if (!a.p || a.n < 6 || strncasecmp(a.p, "basic ", 6) != 0)
        return (struct val){NULL, 0};
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 6; i < a.n && o < len; i++) {
        int v = b64((unsigned char)a.p[i]);
        if (v < 0)
            break; /* padding or the end */
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    const char *colon = memchr(buf, ':', o);
    if (!colon)
        return (struct val){NULL, 0};
    return (struct val){buf, (size_t)(colon - buf)};
}

/* Local time, formatted once per second. */
struct stamp {
    time_t sec;
    char clf[40];     /* [10/Oct/2000:13:55:36 -0700] */
    char iso[32];     /* 2000-10-10T13:55:36 */
    char iso_zone[8]; /* -07:00 */
};

static const struct stamp *stamp_of(double now)
{
    static struct stamp s = {.sec = -1};
    time_t t = (time_t)now;
    if (t != s.sec) {
        struct tm tm;
        char z[8] = "+0000";
        localtime_r(&t, &tm);
        strftime(s.clf, sizeof s.clf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
        strftime(s.iso, sizeof s.iso, "%Y-%m-%dT%H:%M:%S", &tm);
        strftime(z, sizeof z, "%z", &tm);
        snprintf(s.iso_zone, sizeof s.iso_zone, "%.3s:%.2s", z, z + 3);
        s.sec = t;
    }
    return &s;
}

/* getpid() is a system call; the log asks once per process.  Reset in the
 * child of every fork (pthread_atfork, registered at setup). */
static pid_t own_pid;

static void forget_pid(void)
{
    own_pid = 0;
}

static int pid_now(void)
{
    if (!own_pid)
        own_pid = getpid();
    return (int)own_pid;
}

/* ---- the two forms ----------------------------------------------------- */

static void put_val(struct buf *out, struct val v, size_t cap)
{
    if (v.p)
        put_escaped(out, v.p, v.n, cap, 0);
    else
        buf_append(out, "-", 1);
}

static void render_text(const struct accesslog_format *f, const struct accesslog_entry *e,
                        struct buf *out)
{
    const struct http_request *r = e->req;
    char tmp[256];
    for (int i = 0; i < f->natoms; i++) {
        const struct atom *a = &f->atoms[i];
        switch (a->kind) {
        case A_TEXT:
            buf_append(out, a->text, a->len);
            break;
        case A_HOST:
            put_val(
                out,
                (struct val){e->peer && *e->peer ? e->peer : NULL, e->peer ? strlen(e->peer) : 0},
                MAX_VALUE);
            break;
        case A_DASH:
            buf_append(out, "-", 1);
            break;
        case A_USER:
            put_val(out, user_of(r, tmp, sizeof tmp), MAX_VALUE);
            break;
        case A_TIME:
            buf_append_str(out, stamp_of(e->now)->clf);
            break;
        case A_REQUEST:
            put_val(out, method_of(r), MAX_VALUE);
            buf_append(out, " ", 1);
            put_val(out, url_of(r), MAX_URL);
            buf_append(out, " ", 1);
            put_val(out, protocol_of(r, tmp, sizeof tmp), MAX_VALUE);
            break;
        case A_METHOD:
            put_val(out, method_of(r), MAX_VALUE);
            break;
        case A_PATH:
            put_val(out, path_of(r), MAX_URL);
            break;
        case A_QUERY:
            put_val(out, query_of(r), MAX_URL);
            break;
        case A_PROTOCOL:
            put_val(out, protocol_of(r, tmp, sizeof tmp), MAX_VALUE);
            break;
        case A_STATUS:
            put_fmt(out, "%d", e->status);
            break;
        case A_BYTES:
            put_fmt(out, "%llu", (unsigned long long)e->bytes);
            break;
        case A_REFERER:
            put_val(out, req_header(r, "referer", 7), MAX_VALUE);
            break;
        case A_AGENT:
            put_val(out, req_header(r, "user-agent", 10), MAX_VALUE);
            break;
        case A_SECONDS:
            put_fmt(out, "%lld", (long long)e->duration);
            break;
        case A_MILLIS:
            put_fmt(out, "%lld", (long long)(e->duration * 1e3));
            break;
        case A_MICROS:
            put_fmt(out, "%lld", (long long)(e->duration * 1e6));
            break;
        case A_DECIMAL:
            put_fmt(out, "%.6f", e->duration);
            break;
        case A_PID:
            put_fmt(out, "<%d>", pid_now());
            break;
        case A_REQ_HDR:
            put_val(out, req_header(r, a->text, a->len), MAX_VALUE);
            break;
        case A_RESP_HDR:
            put_val(out, resp_header(e, a->text, a->len), MAX_VALUE);
            break;
        }
    }
    buf_append(out, "\n", 1);
}

static void json_str(struct buf *out, const char *key, struct val v, size_t cap)
{
    buf_append(out, ",\"", 2);
    buf_append_str(out, key);
    buf_append(out, "\":", 2);
    if (!v.p) {
        buf_append(out, "null", 4);
        return;
    }
    buf_append(out, "\"", 1);
    put_escaped(out, v.p, v.n, cap, 1);
    buf_append(out, "\"", 1);
}

static void render_json(const struct accesslog_entry *e, struct buf *out)
{
    const struct http_request *r = e->req;
    const struct stamp *st = stamp_of(e->now);
    char tmp[256], proto[16];
    int ms = (int)((e->now - (double)st->sec) * 1e3);
    put_fmt(out, "{\"time\":\"%s.%03d%s\"", st->iso,
            ms < 0     ? 0
            : ms > 999 ? 999
                       : ms,
            st->iso_zone);
    json_str(out, "remote_addr",
             (struct val){e->peer && *e->peer ? e->peer : NULL, e->peer ? strlen(e->peer) : 0},
             MAX_VALUE);
    json_str(out, "user", user_of(r, tmp, sizeof tmp), MAX_VALUE);
    json_str(out, "method", method_of(r), MAX_VALUE);
    json_str(out, "url", url_of(r), MAX_URL);
    json_str(out, "path", path_of(r), MAX_URL);
    json_str(out, "query", query_of(r), MAX_URL);
    json_str(out, "protocol", protocol_of(r, proto, sizeof proto), MAX_VALUE);
    put_fmt(out, ",\"status\":%d,\"bytes\":%llu,\"duration\":%.6f", e->status,
            (unsigned long long)e->bytes, e->duration);
    json_str(out, "referer", req_header(r, "referer", 7), MAX_VALUE);
    json_str(out, "user_agent", req_header(r, "user-agent", 10), MAX_VALUE);
    put_fmt(out, ",\"pid\":%d}\n", pid_now());
}

void accesslog_render(const struct accesslog_format *f, const struct accesslog_entry *e,
                      struct buf *out)
{
    if (f->json)
        render_json(e, out);
    else
        render_text(f, e, out);
}

/* ---- the process's log ------------------------------------------------- */

static struct accesslog_format *active;

int accesslog_setup(const char *spec, char *err, size_t errlen)
{
    static int registered;
    if (!registered && pthread_atfork(NULL, NULL, forget_pid) == 0)
        registered = 1;
    struct accesslog_format *f =
        accesslog_compile(spec && *spec ? spec : ACCESSLOG_DEFAULT, err, errlen);
    if (!f)
        return -1;
    accesslog_free(active);
    active = f;
    return 0;
}

void accesslog_write(const struct accesslog_entry *e)
{
    /* One buffer, reused: after the first requests a line costs no
     * allocation.  Lines are written whole, one write each. */
    static struct buf line;
    char err[256];
    if (!log_access_enabled())
        return;
    if (!active && accesslog_setup(NULL, err, sizeof err) < 0)
        return;
    buf_clear(&line);
    accesslog_render(active, e, &line);
    log_access_write(line.p, line.len);
}
