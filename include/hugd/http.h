/* HTTP/1.x: parsing requests with llhttp (strict mode) into struct
 * http_request, and the pieces of a response that do not depend on the
 * application: status lines, Date, error responses, the keep-alive rule. */
#ifndef HUGD_HTTP_H
#define HUGD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "hugd/conn.h"

struct http_limits {
    uint32_t request_line;   /* bytes in the request target */
    uint32_t fields;         /* header lines */
    uint32_t field_size;     /* bytes in one header line */
    uint64_t max_body;       /* 0: no limit */
    uint64_t body_in_memory; /* beyond this the body is spooled to a file */
};

void http_set_limits(const struct http_limits *l);

void http_conn_init(struct conn *c);
void http_request_reset(struct http_request *r);
void http_request_free(struct http_request *r);

enum http_feed_result {
    FEED_NEED_MORE, /* everything given was consumed */
    FEED_REQUEST,   /* a whole request is ready; input stopped right after it */
    FEED_ERROR,     /* bad request: answer req.error_status and close */
};

/* Parse c->in from c->in.off on.  Advances c->in.off past what was used. */
enum http_feed_result http_feed(struct conn *c);
/* After a request was answered: let the parser go on to the next one. */
void http_next(struct conn *c);

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
