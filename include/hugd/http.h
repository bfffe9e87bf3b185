/* HTTP/1.x: parsing requests with llhttp (strict mode) into struct
 * http_request, and the pieces of a response that do not depend on the
 * application: status lines, Date, error responses, the keep-alive rule. */
#ifndef HUGD_HTTP_H
#define HUGD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <llhttp.h>
#include <sys/types.h>

#include "hugd/buf.h"
#include "hugd/http_rules.h"
#include "hugd/addrmatch.h"

struct http_header {
    uint32_t name, name_len; /* offsets into the request arena */
    uint32_t value, value_len;
};

struct http_request {
    struct buf arena; /* URL and header bytes, copied as llhttp hands them over */
    uint32_t url, url_len;
    struct http_header *hdrs;
    int nhdrs, hcap;
    int in_value;  /* the last header callback was a value */
    int started;   /* the first byte of this request has arrived */
    int head_done; /* on_headers_complete has run */
    int complete;  /* on_message_complete has run */
    int timed;     /* the head's deadline is set */
    uint8_t method, major, minor;
    /* Each set when it is parsed: a bad request may stop before. */
    uint8_t have_method, have_version;
    int keepalive;           /* what the client's side allows */
    int expect_continue;     /* a "100 Continue" is owed before the body */
    uint64_t content_length; /* declared, when has_length */
    int has_length;
    /* body: in memory up to body_buffer_size, then spooled to a temp file */
    struct buf body;
    int body_fd;
    uint64_t body_size;
    uint32_t trailer_len;  /* bytes of chunked trailer fields, read and dropped */
    int error_status;      /* when parsing fails: the status to answer with */
    const char *error_why; /* and why, for the error log (NULL: said by the status) */
    uint32_t path_off;     /* where the path starts in the URL (after an absolute-form authority) */
    struct http_scan scan; /* line structure of the head and trailers, checked ahead of llhttp */
    int chunk_line;        /* llhttp stopped before a chunk-size line: its BWS is dropped first */
    int method_pending;    /* llhttp refused the method: is it a token?  (501 or 400) */
    ev_tstamp started_at;
    /* What forwarded headers from a trusted peer said (conn_client.c):
     * the client's address ("" = the connection's own), its port ("" =
     * none given), and the scheme (enum fwd_scheme). */
    char fwd_addr[ADDR_TEXT_MAX];
    char fwd_port[8];
    int fwd_scheme;
    /* Set by the connection: who sent it (REMOTE_ADDR and REMOTE_PORT, ""
     * for none; the forwarded ones above when believed), through which
     * listening socket, and its clock when the bytes were read (for
     * started_at). */
    const char *remote_addr, *remote_port;
    int listener;
    double now;
};

/* The response being produced for the current request: the application's
 * side (wsgi*.c) fills it, the connection (conn.c) writes it out. */
struct http_response {
    struct buf out; /* bytes waiting to be written */
    int keepalive;  /* keep the connection after this response */
    /* Set by the connection, for write(): write out everything queued,
     * waiting for the client as long as the write timeout allows (write()
     * must not buffer without bound); 0, or -1 when the client is gone or
     * too slow. */
    int (*flush)(void *ctx);
    void *flush_ctx;
    /* Set by the connection: nonzero once the server stops (the
     * scoreboard's stopping): the response being sent is the last. */
    const _Atomic int *stopping;
    double now;       /* the clock at the last call into the application */
    void *result;     /* PyObject*: the application's iterable, for close() */
    void *iter;       /* PyObject*: iterator over it, NULL when exhausted */
    void *start_resp; /* PyObject*: the start_response object, unhooked at the end */
    struct buf head;  /* encoded app headers ("Name: value\r\n"...) */
    int status;       /* numeric status; 0 until start_response */
    struct buf status_line;
    int headers_sent; /* status line and headers are in the output */
    int chunked;      /* Transfer-Encoding: chunked framing */
    int no_body;      /* HEAD, 1xx, 204, 304 */
    int app_close;    /* the app asked for Connection: close */
    int has_date, has_server;
    int64_t content_length; /* declared by the app or computed, -1 if unknown */
    int length_from_app;    /* the app sent Content-Length itself */
    uint64_t body_sent;     /* body bytes produced (before framing) */
    /* A body piece too big to copy, written after `out` from where it
     * lies: tail[tail_off .. tail_len).  tail_obj (a PyObject*) owns the
     * bytes; the writer only moves tail_off, and only wsgi lets go of the
     * object (wsgi_finish). */
    const char *tail;
    size_t tail_len, tail_off;
    void *tail_obj;
    int file_fd; /* wsgi.file_wrapper: sendfile from here */
    off_t file_off;
    uint64_t file_left;
    int finished; /* nothing more will be produced */
};

/* The response still holds the application's objects: wsgi_finish is owed
 * before the connection lets go of it. */
static inline int http_response_held(const struct http_response *rp)
{
    return rp->result || rp->iter || rp->start_resp || rp->tail_obj;
}

struct http_limits {
    uint32_t request_line;   /* bytes in the request target */
    uint32_t fields;         /* header lines */
    uint32_t field_size;     /* bytes in one header line */
    uint64_t max_body;       /* 0: no limit */
    uint64_t body_in_memory; /* beyond this the body is spooled to a file */
};

void http_set_limits(const struct http_limits *l);

/* A parser for requests into r (which it keeps: p->data). */
void http_reader_init(llhttp_t *p, struct http_request *r);
void http_request_reset(struct http_request *r);
void http_request_free(struct http_request *r);

enum http_feed_result {
    FEED_NEED_MORE, /* everything given was consumed */
    FEED_REQUEST,   /* a whole request is ready; input stopped right after it */
    FEED_ERROR,     /* bad request: answer req.error_status and close */
};

/* Parse in from in->off on into p's request.  Advances in->off past what
 * was used.  A refusal is logged with the request's remote_addr. */
enum http_feed_result http_feed(llhttp_t *p, struct buf *in);
/* After a request was answered: let the parser go on to the next one. */
void http_next(llhttp_t *p);

/* The value of the first header called name (case-insensitive), or NULL;
 * *len gets its length. */
const char *http_header(const struct http_request *r, const char *name, size_t *len);

const char *http_reason(int status);

/* "Date: ...\r\n", refreshed at most once a second. */
const char *http_date_header(ev_tstamp now, size_t *len);

/* Keep the connection after this response?  The table, case by case:
 * the client must allow it (HTTP/1.1 unless "Connection: close"; HTTP/1.0
 * only with "Connection: keep-alive"), the application must not have asked
 * to close, and the end of the body must be known to the client without a
 * close (Content-Length, chunked, or no body at all). */
int http_keepalive(int client_allows, int app_close, int length_known);

/* A complete error response with "Connection: close" (bodies are short
 * plain-text reasons). */
void http_error_response(struct buf *out, int status, ev_tstamp now);

#endif
