/* Request syntax rules beyond llhttp; see include/hugd/http_rules.h. */
#include "hugd/http_rules.h"

#include <arpa/inet.h>
#include <string.h>

#include "hugd/ascii.h"

static int is_digit(char c)
{
    return ascii_is_digit((unsigned char)c);
}

static int is_alpha(char c)
{
    return ascii_lower((unsigned char)c) >= 'a' && ascii_lower((unsigned char)c) <= 'z';
}

static int is_hex(char c)
{
    return ascii_hex_value((unsigned char)c) >= 0;
}

static int is_tchar(char c)
{
    return ascii_is_tchar((unsigned char)c);
}

int http_field_is(const char *name, size_t n, const char *lower_name)
{
    return strlen(lower_name) == n && ascii_case_eq(name, lower_name, n);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 3986 reg-name bytes other than pct-encoded: unreserved and
 * sub-delims. */
static int is_regname(char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=", c));
}

/* The host part of a host[:port]: its length, or 0 when it is not valid. */
static size_t host_len(const char *p, size_t n)
{
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        char text[INET6_ADDRSTRLEN];
        size_t len = close ? (size_t)(close - p) - 1 : 0;
        struct in6_addr a;
        if (len == 0 || len >= sizeof(text))
            return 0;
        memcpy(text, p + 1, len);
        text[len] = 0;
        return inet_pton(AF_INET6, text, &a) == 1 ? len + 2 : 0;
    }
    size_t i = 0;
    while (i < n && p[i] != ':') {
        if (p[i] == '%') {
            if (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
                return 0;
            i += 3;
        } else if (is_regname(p[i])) {
            i++;
        } else {
            return 0;
        }
    }
    return i;
}

/* The port after the host, or -1 when it is not 1 to 5 digits up to
 * 65535; none at all is default_port. */
static long port_of(const char *p, size_t n, size_t host, unsigned default_port)
{
    if (host == n)
        return default_port;
    if (p[host] != ':' || n - host < 2 || n - host > 6)
        return -1;
    long port = 0;
    for (size_t i = host + 1; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        port = port * 10 + (p[i] - '0');
    }
    return port <= 65535 ? port : -1;
}

int http_valid_authority(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    size_t h = host_len(p, n);
    return h > 0 && port_of(p, n, h, 0) >= 0;
}

int http_same_authority(const char *a, size_t an, const char *b, size_t bn, unsigned default_port)
{
    size_t ah = host_len(a, an), bh = host_len(b, bn);
    return ah == bh && ascii_case_eq(a, b, ah) &&
           port_of(a, an, ah, default_port) == port_of(b, bn, bh, default_port);
}

void http_parse_target(const char *u, size_t n, struct http_target *t)
{
    memset(t, 0, sizeof(*t));
    if (n == 1 && u[0] == '*') {
        t->form = TARGET_ASTERISK;
        return;
    }
    if (n && u[0] == '/') {
        t->form = TARGET_ORIGIN;
        return;
    }
    /* absolute-form: only the schemes hugd serves, with an authority. */
    size_t s = 0;
    while (s < n && u[s] != ':')
        s++;
    if (s == 4 && ascii_case_eq(u, "http", 4))
        t->default_port = 80;
    else if (s == 5 && ascii_case_eq(u, "https", 5))
        t->default_port = 443;
    else
        return;
    if (n - s < 3 || u[s + 1] != '/' || u[s + 2] != '/')
        return;
    size_t a = s + 3, e = a;
    while (e < n && u[e] != '/' && u[e] != '?' && u[e] != '#')
        e++;
    /* A userinfo ("user@") has no place in a request (RFC 9110 4.2.4);
     * '@' is not a reg-name byte, so it fails here too. */
    if (e == a || !http_valid_authority(u + a, e - a))
        return;
    t->form = TARGET_ABSOLUTE;
    t->auth = a;
    t->auth_len = e - a;
    t->path = e;
}

int http_check_transfer_encoding(const char *v, size_t n)
{
    if (n == 7 && ascii_case_eq(v, "chunked", 7))
        return 0;
    /* A list of codings, each a token with optional parameters; chunked
     * once, last and bare.  Empty elements are refused rather than
     * skipped: llhttp decided the framing without skipping them. */
    int chunked = 0, last_chunked = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows(v[i]))
            i++;
        size_t t = i;
        while (i < n && is_tchar(v[i]))
            i++;
        if (i == t)
            return 400;
        last_chunked = i - t == 7 && ascii_case_eq(v + t, "chunked", 7);
        chunked += last_chunked;
        while (i < n && is_ows(v[i]))
            i++;
        if (i < n && v[i] == ';') {
            if (last_chunked)
                return 400;
            while (i < n && v[i] != ',') /* parameters of a coding refused anyway */
                i++;
        }
        if (i == n)
            break;
        if (v[i] != ',')
            return 400;
        i++;
    }
    return chunked == 1 && last_chunked ? 501 : 400;
}

/* quoted-string (RFC 9110 5.6.4) from p[i], which is '"': the offset
 * after it, or 0 when it does not end well. */
static size_t quoted_end(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i == n)
                return 0;
            c = (unsigned char)p[i];
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return 0;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return 0;
        }
    }
    return 0;
}

static size_t skip_ows(const char *p, size_t n, size_t i)
{
    while (i < n && is_ows(p[i]))
        i++;
    return i;
}

static size_t skip_token(const char *p, size_t n, size_t i)
{
    while (i < n && is_tchar(p[i]))
        i++;
    return i;
}

long http_chunk_size_len(const char *line, size_t n)
{
    size_t i = 0;
    while (i < n && is_hex(line[i]))
        i++;
    if (i == 0)
        return 0;
    size_t size = i;
    /* *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) */
    while (i < n) {
        i = skip_ows(line, n, i);
        if (i == n || line[i] != ';')
            return -1;
        i = skip_ows(line, n, i + 1);
        size_t name = i;
        if ((i = skip_token(line, n, i)) == name)
            return -1;
        size_t eq = skip_ows(line, n, i);
        if (eq < n && line[eq] == '=') {
            i = skip_ows(line, n, eq + 1);
            size_t value = i;
            if (i < n && line[i] == '"')
                i = quoted_end(line, n, i);
            else
                i = skip_token(line, n, i);
            if (i == value || i == 0)
                return -1;
        }
    }
    return (long)size;
}

enum {
    SCAN_START,      /* before the request line (only empty lines so far) */
    SCAN_MID,        /* inside a line */
    SCAN_SP,         /* right after a space of the request line */
    SCAN_CR,         /* after the CR ending a line */
    SCAN_CR_EMPTY,   /* after the CR of an empty line */
    SCAN_LINE_START, /* at the start of a field line */
};

void http_scan_trailers(struct http_scan *s)
{
    memset(s, 0, sizeof(*s));
    s->line = 1;
    s->prev = SCAN_LINE_START;
}

static void method_byte(struct http_scan *s, char c)
{
    if (s->method != METHOD_SCANNING)
        return;
    if (c == ' ')
        s->method = METHOD_TOKEN;
    else if (!is_tchar(c))
        s->method = METHOD_NOT_TOKEN;
    else if (s->method_len < UINT32_MAX)
        s->method_len++;
}

size_t http_scan_method(struct http_scan *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && s->method == METHOD_SCANNING)
        method_byte(s, p[i++]);
    return i;
}

size_t http_scan(struct http_scan *s, const char *p, size_t n, int *bad, const char **why)
{
    *bad = 0;
    for (size_t i = 0; i < n && !s->done; i++) {
        char c = p[i];
        const char *err = NULL;
        switch (s->prev) {
        case SCAN_CR:
        case SCAN_CR_EMPTY:
            if (c != '\n')
                err = "CR without LF";
            else if (s->prev == SCAN_CR) {
                s->prev = SCAN_LINE_START;
                s->line = 1;
            } else if (s->line == 0)
                s->prev = SCAN_START; /* an empty line before the request (RFC 9112 2.2) */
            else
                s->done = 1; /* the empty line that ends the section */
            break;
        case SCAN_START:
        case SCAN_LINE_START:
            if (c == '\r')
                s->prev = SCAN_CR_EMPTY;
            else if (c == '\n')
                err = "LF without CR";
            else if (is_ows(c))
                err = s->line ? "obsolete line folding (or a field line starting with whitespace)"
                              : "whitespace before the request line";
            else
                s->prev = SCAN_MID;
            if (s->prev == SCAN_MID && s->line == 0)
                method_byte(s, c);
            break;
        default:
            if (s->line == 0 && s->spaces == 0)
                method_byte(s, c); /* the method ends at the first byte that is not a tchar */
            if (c == '\r') {
                s->prev = SCAN_CR;
            } else if (c == '\n') {
                err = "LF without CR";
            } else if (s->line == 0 && c == ' ') {
                if (s->prev == SCAN_SP || ++s->spaces > 2)
                    err = "more than one space between the parts of the request line";
                s->prev = SCAN_SP;
            } else {
                s->prev = SCAN_MID;
            }
            break;
        }
        if (err) {
            *bad = 400;
            *why = err;
            return i;
        }
        if (s->done)
            return i + 1;
    }
    return n;
}
