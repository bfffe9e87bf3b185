/* HTTP/1.x request parsing with llhttp; see include/hugd/http.h. */
#include "hugd/http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "hugd/ascii.h"
#include "hugd/http_rules.h"
#include "hugd/log.h"

static struct http_limits limits = {8190, 100, 8190, 0, 1 << 20};
static llhttp_settings_t settings;

void http_set_limits(const struct http_limits *l)
{
    limits = *l;
}

static struct http_request *req_of(llhttp_t *p)
{
    return (struct http_request *)p->data;
}

static int fail(llhttp_t *p, int status)
{
    req_of(p)->error_status = status;
    return -1;
}

static int refuse(llhttp_t *p, int status, const char *why)
{
    req_of(p)->error_why = why;
    return fail(p, status);
}

static int on_message_begin(llhttp_t *p)
{
    struct http_request *r = req_of(p);
    r->started = 1;
    r->started_at = r->now;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);
    if (r->url_len + len > limits.request_line)
        return fail(p, 414);
    if (r->url_len == 0)
        r->url = (uint32_t)r->arena.len;
    buf_append(&r->arena, at, len);
    r->url_len += (uint32_t)len;
    return 0;
}

/* Method and version are noted as soon as they are parsed, so that a
 * request refused before its head is complete is logged as far as it got. */
static int on_method_complete(llhttp_t *p)
{
    struct http_request *r = req_of(p);
    r->method = (uint8_t)llhttp_get_method(p);
    r->have_method = 1;
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    struct http_request *r = req_of(p);
    r->major = llhttp_get_http_major(p);
    r->minor = llhttp_get_http_minor(p);
    r->have_version = 1;
    return 0;
}

/* Trailer fields of a chunked body are not request headers (RFC 9110
 * 6.5.1): merging them would let a client add headers after the part a
 * proxy checked.  They are read, bounded and dropped. */
static int on_trailer(llhttp_t *p, size_t len)
{
    struct http_request *r = req_of(p);
    r->trailer_len += (uint32_t)len;
    return r->trailer_len > limits.field_size ? fail(p, 431) : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);
    if (r->head_done)
        return on_trailer(p, len);
    struct http_header *h;
    if (r->nhdrs == 0 || r->in_value) {
        /* A new header line begins. */
        if ((uint32_t)r->nhdrs >= limits.fields)
            return fail(p, 431);
        if (r->nhdrs == r->hcap) {
            int cap = r->hcap ? r->hcap * 2 : 16;
            void *n = realloc(r->hdrs, (size_t)cap * sizeof(*r->hdrs));
            if (!n)
                return fail(p, 500);
            r->hdrs = n;
            r->hcap = cap;
        }
        h = &r->hdrs[r->nhdrs++];
        h->name = (uint32_t)r->arena.len;
        h->name_len = h->value = h->value_len = 0;
        r->in_value = 0;
    }
    h = &r->hdrs[r->nhdrs - 1];
    if (h->name_len + len > limits.field_size)
        return fail(p, 431);
    buf_append(&r->arena, at, len);
    h->name_len += (uint32_t)len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);
    if (r->head_done)
        return on_trailer(p, len);
    if (r->nhdrs == 0)
        return fail(p, 400);
    struct http_header *h = &r->hdrs[r->nhdrs - 1];
    if (!r->in_value) {
        r->in_value = 1;
        h->value = (uint32_t)r->arena.len;
    }
    if (h->name_len + h->value_len + len > limits.field_size)
        return fail(p, 431);
    buf_append(&r->arena, at, len);
    h->value_len += (uint32_t)len;
    return 0;
}

/* What the checks of a front server need from the fields (RFC 9112 3.2,
 * 6.1, RFC 9110 5.1). */
struct field_notes {
    const struct http_header *host, *te;
    int hosts, tes, empty_name;
};

static void note_field(struct field_notes *n, const struct http_header *h, const char *name)
{
    if (h->name_len == 0) {
        n->empty_name = 1;
    } else if (http_field_is(name, h->name_len, "host")) {
        n->host = h;
        n->hosts++;
    } else if (http_field_is(name, h->name_len, "transfer-encoding")) {
        n->te = h;
        n->tes++;
    }
}

/* After the fields: the request smuggling and routing rules that llhttp
 * does not enforce.  0, or fail()'s -1. */
static int check_head(llhttp_t *p, const struct field_notes *n)
{
    struct http_request *r = req_of(p);
    const char *a = r->arena.p;
    if (n->empty_name)
        return refuse(p, 400, "a field with an empty name");
    if (n->hosts > 1)
        return refuse(p, 400, "more than one Host field");
    if (n->host && !http_valid_authority(a + n->host->value, n->host->value_len))
        return refuse(p, 400, "Host is not a valid host[:port]");
    if (n->tes) {
        /* RFC 9112 6.1: framing by Transfer-Encoding in a 1.0 message is
         * faulty; the connection can't be trusted past it. */
        if (r->minor == 0)
            return refuse(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (n->tes > 1)
            return refuse(p, 400, "more than one Transfer-Encoding field");
        int st = http_check_transfer_encoding(a + n->te->value, n->te->value_len);
        if (st)
            return refuse(p, st,
                          st == 501
                              ? "a transfer coding other than chunked"
                              : "Transfer-Encoding is not a list of codings ending in chunked");
    }
    struct http_target t;
    http_parse_target(a + r->url, r->url_len, &t);
    if (t.form == TARGET_INVALID)
        return refuse(p, 400, "request target is neither origin-form nor http(s) absolute-form");
    if (t.form == TARGET_ASTERISK && r->method != HTTP_OPTIONS)
        return refuse(p, 400, "asterisk-form target on a method other than OPTIONS");
    /* RFC 9112 3.2.2 lets the target's authority override Host; hugd
     * checks instead that both name the same host, so that the
     * application (which reads Host) and anything in front that read
     * either one agree. */
    if (t.form == TARGET_ABSOLUTE && n->host &&
        !http_same_authority(a + r->url + t.auth, t.auth_len, a + n->host->value,
                             n->host->value_len, t.default_port))
        return refuse(p, 400, "Host differs from the authority of the absolute-form target");
    r->path_off = (uint32_t)t.path;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_request *r = req_of(p);
    r->head_done = 1;
    /* One pass over the headers: trim each value (llhttp drops the
     * whitespace before a value, not after; RFC 9110 5.5: neither belongs to
     * it) and note the two the parser itself needs. */
    const char *expect = NULL;
    size_t expect_len = 0;
    int has_host = 0;
    struct field_notes notes = {0};
    for (int i = 0; i < r->nhdrs; i++) {
        struct http_header *h = &r->hdrs[i];
        const char *name = r->arena.p + h->name;
        note_field(&notes, h, name);
        while (h->value_len && (r->arena.p[h->value + h->value_len - 1] == ' ' ||
                                r->arena.p[h->value + h->value_len - 1] == '\t'))
            h->value_len--;
        if (h->name_len == 4 && ascii_case_eq(name, "host", 4))
            has_host = 1;
        else if (!expect && h->name_len == 6 && ascii_case_eq(name, "expect", 6)) {
            expect = r->arena.p + h->value;
            expect_len = h->value_len;
        }
    }
    r->method = (uint8_t)llhttp_get_method(p);
    r->major = llhttp_get_http_major(p);
    r->minor = llhttp_get_http_minor(p);
    r->keepalive = llhttp_should_keep_alive(p);
    /* hugd never switches protocols: an Upgrade request is an ordinary
     * request (the app may answer it), and the connection goes on as
     * HTTP/1.1.  llhttp lets on_headers_complete clear the flag. */
    p->upgrade = 0;
    if (r->method == HTTP_CONNECT)
        return fail(p, 501);
    if (r->major != 1)
        return fail(p, r->major == 0 ? 400 : 505); /* HTTP/0.9 has no headers to go on */
    if (r->minor >= 1 && !has_host)
        return fail(p, 400); /* RFC 9112 3.2: a 1.1 request without Host is invalid */
    if (check_head(p, &notes) < 0)
        return -1;
    int has_body = 0;
    if (p->flags & F_CONTENT_LENGTH) {
        r->has_length = 1;
        r->content_length = p->content_length;
        has_body = p->content_length > 0;
        if (limits.max_body && p->content_length > limits.max_body)
            return fail(p, 413);
    } else if (p->flags & F_CHUNKED) {
        has_body = 1;
    }
    if (expect) {
        if (expect_len != 12 || !ascii_case_eq(expect, "100-continue", 12))
            return fail(p, 417);
        r->expect_continue = has_body && r->major == 1 && r->minor >= 1;
    }
    if (p->flags & F_CHUNKED) {
        /* Stop before the first chunk-size line (see chunk_line). */
        r->chunk_line = 1;
        return HPE_PAUSED;
    }
    return 0;
}

static int spool(struct http_request *r)
{
    /* O_TMPFILE: never visible in the file system, gone with the fd. */
    const char *dir = getenv("TMPDIR");
    int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_err(errno, "cannot spool a request body to a temporary file");
        return -1;
    }
    size_t done = 0;
    while (done < r->body.len) {
        ssize_t n = write(fd, r->body.p + done, r->body.len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err(errno, "write to spooled request body");
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    buf_clear(&r->body);
    r->body_fd = fd;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);
    r->body_size += len;
    if (limits.max_body && r->body_size > limits.max_body)
        return fail(p, 413);
    if (r->body_fd < 0 && r->body.len + len > limits.body_in_memory && spool(r) < 0)
        return fail(p, 500);
    if (r->body_fd >= 0) {
        while (len) {
            ssize_t n = write(r->body_fd, at, len);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                log_err(errno, "write to spooled request body");
                return fail(p, 500);
            }
            at += n;
            len -= (size_t)n;
        }
        return 0;
    }
    buf_append(&r->body, at, len);
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    struct http_request *r = req_of(p);
    if (p->content_length == 0) {
        /* The last chunk: trailer fields follow, scanned like the head. */
        http_scan_trailers(&r->scan);
        return HPE_PAUSED;
    }
    /* 413 as soon as the declared size passes the limit. */
    if (limits.max_body && p->content_length > limits.max_body - r->body_size)
        return fail(p, 413);
    return 0;
}

static int on_chunk_complete(llhttp_t *p)
{
    if (p->flags & F_TRAILING)
        return 0; /* the last chunk, after its trailers */
    req_of(p)->chunk_line = 1;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    req_of(p)->complete = 1;
    /* Stop right after this request: a pipelined next one waits in the
     * input until this one has been answered. */
    return HPE_PAUSED;
}

void http_reader_init(llhttp_t *p, struct http_request *r)
{
    if (!settings.on_message_complete) {
        llhttp_settings_init(&settings);
        settings.on_message_begin = on_message_begin;
        settings.on_url = on_url;
        settings.on_method_complete = on_method_complete;
        settings.on_version_complete = on_version_complete;
        settings.on_header_field = on_header_field;
        settings.on_header_value = on_header_value;
        settings.on_headers_complete = on_headers_complete;
        settings.on_body = on_body;
        settings.on_chunk_header = on_chunk_header;
        settings.on_chunk_complete = on_chunk_complete;
        settings.on_message_complete = on_message_complete;
    }
    llhttp_init(p, HTTP_REQUEST, &settings);
    p->data = r;
    r->body_fd = -1;
}

void http_request_reset(struct http_request *r)
{
    buf_clear(&r->arena);
    r->url = r->url_len = 0;
    r->nhdrs = 0;
    r->in_value = r->started = r->head_done = r->complete = r->timed = 0;
    r->keepalive = r->expect_continue = r->has_length = 0;
    r->have_method = r->have_version = 0;
    r->content_length = 0;
    /* Large buffers are not kept between requests on an idle connection. */
    if (r->body.cap > (64 << 10))
        buf_free(&r->body);
    buf_clear(&r->body);
    if (r->body_fd >= 0)
        close(r->body_fd);
    r->body_fd = -1;
    r->body_size = 0;
    r->trailer_len = 0;
    r->error_status = 0;
    r->error_why = NULL;
    r->path_off = 0;
    memset(&r->scan, 0, sizeof(r->scan));
    r->chunk_line = r->method_pending = 0;
    r->fwd_addr[0] = r->fwd_port[0] = '\0';
    r->fwd_scheme = 0;
}

void http_request_free(struct http_request *r)
{
    http_request_reset(r);
    buf_free(&r->arena);
    buf_free(&r->body);
    free(r->hdrs);
    r->hdrs = NULL;
    r->hcap = 0;
}

static int status_for(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        return 505;
    default:
        return 400;
    }
}

/* Why a status was answered, when the code that failed said nothing. */
static const char *why_for(int status)
{
    switch (status) {
    case 413:
        return "body larger than max_body_size";
    case 414:
        return "request line too long";
    case 417:
        return "an expectation other than 100-continue";
    case 431:
        return "too many header fields, or one too large";
    case 501:
        return "CONNECT is not served";
    case 505:
        return "HTTP version not supported";
    default:
        return "malformed request";
    }
}

/* The end of every refused request: the status, the error log at info
 * level (at most a line a second for each status, see log_limited), and
 * the rest of the input dropped: the connection closes after the answer. */
static enum http_feed_result refused(llhttp_t *p, struct buf *in, llhttp_errno_t e)
{
    static const int kinds[] = {400, 408, 413, 414, 417, 431, 500, 501, 505};
    static struct log_limit limit[sizeof(kinds) / sizeof(kinds[0]) + 1];
    struct http_request *r = req_of(p);
    const char *why = r->error_why;
    if (!r->error_status) {
        r->error_status = status_for(e);
        why = llhttp_get_error_reason(p); /* llhttp's own finding */
    }
    if (!why)
        why = why_for(r->error_status);
    size_t k = 0;
    while (k < sizeof(kinds) / sizeof(kinds[0]) && kinds[k] != r->error_status)
        k++;
    log_limited(&limit[k], LOG_LVL_INFO, "refused a request from %s: %d %s: %s",
                r->remote_addr ? r->remote_addr : "?", r->error_status,
                http_reason(r->error_status), why);
    in->off = in->len;
    return FEED_ERROR;
}

/* llhttp knows no method it was not built with and refuses the rest as
 * malformed; a method that is a token followed by a space is a request
 * hugd cannot serve: 501 (RFC 9110 9.1).  Until that space, the method
 * is scanned on (method_pending) and the input dropped. */
static enum http_feed_result method_verdict(llhttp_t *p, struct buf *in)
{
    struct http_request *r = req_of(p);
    if (in->off < in->len)
        http_scan_method(&r->scan, in->p + in->off, in->len - in->off);
    in->off = in->len;
    r->method_pending = 0;
    if (r->scan.method == METHOD_TOKEN) {
        r->error_status = 501;
        r->error_why = "unknown method";
    } else if (r->scan.method == METHOD_NOT_TOKEN) {
        r->error_status = 400;
        r->error_why = "the method is not a token";
    } else if (r->scan.method_len > limits.request_line) {
        r->error_status = 414;
    } else {
        r->method_pending = 1;
        return FEED_NEED_MORE;
    }
    return refused(p, in, HPE_INVALID_METHOD);
}

/* Before a chunk-size line: once it is all in, its extensions are
 * checked here and dropped, so llhttp sees only the size.  llhttp 8 has
 * no leniency for the bad whitespace RFC 9112 7.1.1 allows around ";"
 * and "=" (later versions have one, for part of it), and it refuses a
 * token-valued extension followed by another ("a=b;c").  The line is
 * bounded like a field line.  1: go on; 0: wait for more; -1: refused. */
static int chunk_line(struct http_request *r, struct buf *in)
{
    char *p = in->p + in->off;
    size_t len = in->len - in->off;
    char *lf = len ? memchr(p, '\n', len) : NULL;
    size_t n = lf ? (size_t)(lf - p) : len;
    if (n > limits.field_size) {
        r->error_status = 400;
        r->error_why = "chunk-size line too long";
        return -1;
    }
    if (!lf)
        return 0;
    r->chunk_line = 0;
    if (n == 0 || p[n - 1] != '\r')
        return 1; /* a bare LF is llhttp's to refuse */
    long size = http_chunk_size_len(p, --n);
    if (size < 0) {
        r->error_status = 400;
        r->error_why = "invalid chunk extension";
        return -1;
    }
    if (size > 0 && (size_t)size < n) {
        /* The digits move up to the CRLF; what was before is consumed. */
        memmove(p + n - (size_t)size, p, (size_t)size);
        in->off += n - (size_t)size;
    }
    return 1;
}

enum http_feed_result http_feed(llhttp_t *p, struct buf *in)
{
    struct http_request *r = req_of(p);
    if (r->method_pending)
        return method_verdict(p, in);
    for (;;) {
        if (r->chunk_line) {
            int rc = chunk_line(r, in);
            if (rc < 0)
                return refused(p, in, HPE_OK);
            if (rc == 0)
                return FEED_NEED_MORE;
        }
        const char *start = in->p + in->off;
        size_t len = in->len - in->off, feed = len;
        if (len == 0)
            return FEED_NEED_MORE;
        /* The head's line rules are checked ahead of llhttp, which only
         * gets the bytes before a broken rule: its own findings come
         * first, whatever the reads were. */
        int bad = 0;
        const char *why = NULL;
        if (!r->scan.done)
            feed = http_scan(&r->scan, start, len, &bad, &why);
        llhttp_errno_t e = feed ? llhttp_execute(p, start, feed) : HPE_OK;
        if (e == HPE_OK) {
            in->off += feed;
            if (bad) {
                r->error_status = bad;
                r->error_why = why;
                return refused(p, in, e);
            }
            continue; /* more after the end of the head, or nothing left */
        }
        if (e == HPE_PAUSED) {
            in->off += (size_t)(llhttp_get_error_pos(p) - start);
            if (r->complete)
                return FEED_REQUEST;
            llhttp_resume(p); /* one of ours: before a chunk line or trailers */
            continue;
        }
        if (e == HPE_INVALID_METHOD && !r->error_status) {
            in->off = in->len; /* the scan saw all there is of the method */
            return method_verdict(p, in);
        }
        return refused(p, in, e);
    }
}

void http_next(llhttp_t *p)
{
    http_request_reset(req_of(p));
    llhttp_resume(p);
}

const char *http_header(const struct http_request *r, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        if (h->name_len == n && ascii_case_eq(r->arena.p + h->name, name, n)) {
            *len = h->value_len;
            return r->arena.p + h->value;
        }
    }
    return NULL;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

const char *http_date_header(ev_tstamp now, size_t *len)
{
    static char line[64];
    static size_t line_len;
    static time_t last;
    time_t t = (time_t)now;
    if (t != last || !line_len) {
        struct tm tm;
        gmtime_r(&t, &tm);
        line_len = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        last = t;
    }
    *len = line_len;
    return line;
}

int http_keepalive(int client_allows, int app_close, int length_known)
{
    return client_allows && !app_close && length_known;
}

void http_error_response(struct buf *out, int status, ev_tstamp now)
{
    char head[256];
    const char *reason = http_reason(status);
    size_t dlen;
    const char *date = http_date_header(now, &dlen);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: hugd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n",
                     status, reason, strlen(reason) + 1);
    buf_append(out, head, (size_t)n);
    buf_append(out, date, dlen);
    buf_append(out, "\r\n", 2);
    buf_append_str(out, reason);
    buf_append(out, "\n", 1);
}
