/* The health check's request and response; see include/hugd/health.h.
 *
 * The master reads raw bytes here, without llhttp: it must answer only
 * what a worker would answer the same way, so the grammar is a small,
 * strict subset of what a worker accepts, and everything else is left to
 * a worker. */
#include "hugd/health.h"

#include <stdio.h>
#include <string.h>

#include "hugd/ascii.h"
#include "hugd/http_rules.h"

/* The characters of an origin-form query (RFC 3986 3.4: pchar, "/", "?";
 * percent-encoding is left as it is). */
static int query_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ascii_is_digit(ch) ||
           (ch && strchr("-._~!$&'()*+,;=:@/?%", ch));
}

static int query_ok(const char *q, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!query_char((unsigned char)q[i]))
            return 0;
    return 1;
}

int health_target_is(const char *target, size_t len, const char *path)
{
    size_t plen = strlen(path);
    if (len < plen || memcmp(target, path, plen) != 0)
        return 0;
    return len == plen || (target[plen] == '?' && query_ok(target + plen + 1, len - plen - 1));
}

/* May target[0..len) still grow into the health path? */
static int target_prefix(const char *target, size_t len, const char *path)
{
    size_t plen = strlen(path);
    if (len <= plen)
        return memcmp(target, path, len) == 0;
    return health_target_is(target, len, path);
}

static int prefix_of(const char *p, size_t n, const char *word)
{
    return n <= strlen(word) && memcmp(p, word, n) == 0;
}

/* The request line without its CRLF.  complete = 0: only as much of it as
 * has arrived.  Returns HEALTH_GET or HEALTH_HEAD when it is (or may still
 * become) a health check's, else HEALTH_NO. */
static enum health_match request_line(const char *p, size_t n, const char *path, int complete,
                                      int *http11)
{
    enum health_match m;
    size_t off;
    if (n >= 4 && memcmp(p, "GET ", 4) == 0) {
        m = HEALTH_GET;
        off = 4;
    } else if (n >= 5 && memcmp(p, "HEAD ", 5) == 0) {
        m = HEALTH_HEAD;
        off = 5;
    } else {
        return !complete && (prefix_of(p, n, "GET ") || prefix_of(p, n, "HEAD ")) ? HEALTH_GET
                                                                                  : HEALTH_NO;
    }
    const char *sp = memchr(p + off, ' ', n - off);
    if (!sp)
        return !complete && target_prefix(p + off, n - off, path) ? m : HEALTH_NO;
    if (!health_target_is(p + off, (size_t)(sp - p) - off, path))
        return HEALTH_NO;
    const char *v = sp + 1;
    size_t vn = n - (size_t)(v - p);
    if (complete) {
        *http11 = vn == 8 && memcmp(v, "HTTP/1.1", 8) == 0;
        return *http11 || (vn == 8 && memcmp(v, "HTTP/1.0", 8) == 0) ? m : HEALTH_NO;
    }
    return prefix_of(v, vn, "HTTP/1.1") || prefix_of(v, vn, "HTTP/1.0") ? m : HEALTH_NO;
}

/* Visible ASCII, space and tab: a worker refuses obs-text (bytes of 0x80
 * and up) in a field value, so the master must not answer one either
 * (found by tests/fuzz/fuzz_health.c). */
static int field_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= ' ' && ch < 0x7f);
}

static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t'))
        (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

struct fields {
    int hosts, lengths;
    int n;
};

/* One header line without its CRLF; 1 if a health check may carry it. */
static int header_line(const char *p, size_t n, struct fields *f)
{
    size_t name = 0;
    while (name < n && ascii_is_tchar((unsigned char)p[name]))
        name++;
    if (name == 0 || name == n || p[name] != ':' || ++f->n > HEALTH_MAX_FIELDS)
        return 0;
    const char *v = p + name + 1;
    size_t vn = n - name - 1;
    for (size_t i = 0; i < vn; i++)
        if (!field_value_char((unsigned char)v[i]))
            return 0;
    if (http_field_is(p, name, "content-length")) {
        /* Exactly "0" after the blanks llhttp skips: it refuses a tab, or
         * anything, after the digits (found by tests/fuzz/fuzz_health.c). */
        while (vn && *v == ' ')
            v++, vn--;
        return ++f->lengths == 1 && vn == 1 && v[0] == '0';
    }
    trim(&v, &vn);
    if (http_field_is(p, name, "host")) {
        if (++f->hosts > 1 || !http_valid_authority(v, vn))
            return 0;
    } else if (http_field_is(p, name, "transfer-encoding") || http_field_is(p, name, "expect")) {
        return 0;
    }
    return 1;
}

/* What has arrived of a header line: only characters such a line can hold. */
static int partial_header_line(const char *p, size_t n)
{
    size_t name = 0;
    while (name < n && ascii_is_tchar((unsigned char)p[name]))
        name++;
    if (name == n)
        return 1;
    if (name == 0 || p[name] != ':')
        return 0;
    for (size_t i = name + 1; i < n; i++)
        if (!field_value_char((unsigned char)p[i]))
            return 0;
    return 1;
}

enum health_match health_match(const char *buf, size_t len, const char *path, size_t *head_len)
{
    struct fields f = {0};
    enum health_match m = HEALTH_NO;
    int http11 = 0;
    size_t n = len < HEALTH_MAX_HEAD ? len : HEALTH_MAX_HEAD;
    size_t line = 0; /* where the current line starts */
    *head_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n')
            return HEALTH_NO; /* a bare LF */
        if (buf[i] != '\r')
            continue;
        if (i + 1 == n)
            break; /* the LF may follow */
        if (buf[i + 1] != '\n')
            return HEALTH_NO; /* a bare CR */
        const char *p = buf + line;
        size_t ln = i - line;
        if (line == 0) {
            m = request_line(p, ln, path, 1, &http11);
            if (m == HEALTH_NO)
                return HEALTH_NO;
        } else if (ln == 0) {
            if (http11 && f.hosts == 0)
                return HEALTH_NO; /* a worker refuses HTTP/1.1 without Host */
            *head_len = i + 2;
            return m;
        } else if (!header_line(p, ln, &f)) {
            return HEALTH_NO;
        }
        line = i + 2;
        i++;
    }
    if (len >= HEALTH_MAX_HEAD)
        return HEALTH_NO; /* no end within the bound */
    /* Out of bytes: is what came so far the start of a health check? */
    size_t rest = n - line;
    if (rest && buf[n - 1] == '\r')
        rest--;
    if (line == 0)
        return request_line(buf, rest, path, 0, &http11) == HEALTH_NO ? HEALTH_NO : HEALTH_MORE;
    return partial_header_line(buf + line, rest) ? HEALTH_MORE : HEALTH_NO;
}

int health_status(enum health_state st)
{
    return st == HEALTH_OK ? 200 : 503;
}

static const char *body_for(enum health_state st)
{
    switch (st) {
    case HEALTH_OK:
        return "ok\n";
    case HEALTH_DRAINING:
        return "draining\n";
    case HEALTH_QUEUE_FULL:
        return "queue full\n";
    case HEALTH_NO_WORKER:
        return "no worker\n";
    }
    return "unavailable\n";
}

size_t health_response(char *out, enum health_state st, int head_only, int keepalive,
                       const char *date_line, size_t date_len, size_t *body_len)
{
    const char *body = body_for(st);
    size_t blen = strlen(body);
    int status = health_status(st);
    if (!date_line || date_len > 64)
        date_len = 0;
    int n = snprintf(out, HEALTH_RESPONSE_MAX,
                     "HTTP/1.1 %d %s\r\nServer: hugd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: %s\r\n"
                     "%.*s\r\n%s",
                     status, status == 200 ? "OK" : "Service Unavailable", blen,
                     keepalive ? "keep-alive" : "close", (int)date_len, date_len ? date_line : "",
                     head_only ? "" : body);
    *body_len = head_only ? 0 : blen;
    return n < 0 ? 0 : (size_t)n < HEALTH_RESPONSE_MAX ? (size_t)n : HEALTH_RESPONSE_MAX - 1;
}
