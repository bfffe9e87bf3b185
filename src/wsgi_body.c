/* The bytes of a PEP 3333 response: the status line and headers with
 * the framing decided, body chunks in that framing (large ones kept
 * aside as the response's tail instead of copied), its end, and write()'s
 * flush.  Used by the application call (wsgi.c) and by start_response's
 * write() (wsgi_types.c). */
#include <stdatomic.h>
#include <stdio.h>

#include "hugd/http.h"
#include "hugd/log.h"
#include "wsgi_int.h"

/* Body chunks at least this big are written from the bytes object itself
 * instead of being copied into the output buffer. */
#define ZERO_COPY_MIN (64 << 10)
/* write() blocks once this much is queued (PEP 3333: it must not buffer
 * without bound). */
#define WRITE_HIGH_WATER (1 << 20)

void wsgi_send_headers(struct http_request *r, struct http_response *rp)
{
    int s = rp->status;
    rp->no_body = r->method == HTTP_HEAD || s < 200 || s == 204 || s == 304;
    int length_known = rp->content_length >= 0 || rp->no_body;
    if (!length_known && r->minor >= 1 && r->major == 1)
        rp->chunked = 1;
    rp->keepalive = http_keepalive(rp->keepalive, rp->app_close, length_known || rp->chunked);
    /* A stop that began while the application ran: the client is told
     * now, not surprised by a close after a keep-alive response. */
    if (rp->stopping && atomic_load(rp->stopping))
        rp->keepalive = 0;

    struct buf *o = &rp->out;
    buf_append(o, rp->status_line.p, rp->status_line.len);
    if (!rp->has_server)
        buf_append(o, "Server: hugd\r\n", 14);
    if (!rp->has_date) {
        size_t dl;
        const char *d = http_date_header(rp->now, &dl);
        buf_append(o, d, dl);
    }
    buf_append(o, rp->head.p, rp->head.len);
    if (rp->content_length >= 0 && !rp->length_from_app && s >= 200 && s != 204 && s != 304) {
        char cl[48];
        int n = snprintf(cl, sizeof(cl), "Content-Length: %lld\r\n", (long long)rp->content_length);
        buf_append(o, cl, (size_t)n);
    }
    if (rp->chunked)
        buf_append(o, "Transfer-Encoding: chunked\r\n", 28);
    if (!rp->keepalive)
        buf_append(o, "Connection: close\r\n", 19);
    else if (r->minor == 0)
        buf_append(o, "Connection: keep-alive\r\n", 24);
    buf_append(o, "\r\n", 2);
    rp->headers_sent = 1;
}

void wsgi_drop_tail(struct http_response *rp)
{
    Py_CLEAR(rp->tail_obj);
    rp->tail = NULL;
    rp->tail_len = rp->tail_off = 0;
}

void wsgi_append_body(struct http_response *rp, PyObject *bytes)
{
    size_t n = (size_t)PyBytes_GET_SIZE(bytes);
    if (n == 0 || rp->no_body)
        return;
    if (rp->content_length >= 0 && rp->body_sent + n > (uint64_t)rp->content_length) {
        /* More than promised: what goes past Content-Length would be read
         * as the next response.  Cut it, and close after. */
        log_warnx("application sent more than its Content-Length of %lld; truncated",
                  (long long)rp->content_length);
        n = (size_t)((uint64_t)rp->content_length - rp->body_sent);
        rp->keepalive = 0;
        if (n == 0)
            return;
    }
    rp->body_sent += n;
    if (rp->tail_obj) {
        /* The writer sends out before tail: a later chunk must not pass the
         * big one kept aside, so what is left of that joins the buffer
         * first. */
        buf_append(&rp->out, rp->tail + rp->tail_off, rp->tail_len - rp->tail_off);
        wsgi_drop_tail(rp);
    }
    const char *p = PyBytes_AS_STRING(bytes);
    if (rp->chunked) {
        char size[24];
        int k = snprintf(size, sizeof(size), "%zx\r\n", n);
        buf_append(&rp->out, size, (size_t)k);
        buf_append(&rp->out, p, n);
        buf_append(&rp->out, "\r\n", 2);
    } else if (n >= ZERO_COPY_MIN && n == (size_t)PyBytes_GET_SIZE(bytes)) {
        Py_INCREF(bytes);
        rp->tail_obj = bytes;
        rp->tail = p;
        rp->tail_len = n;
        rp->tail_off = 0;
    } else {
        buf_append(&rp->out, p, n);
    }
}

int wsgi_flush_blocking(struct http_response *rp)
{
    /* Below the mark write() just queues; past it (or with a big bytes
     * object kept aside, which write() may not hold past its return) the
     * connection writes it all out first. */
    if (buf_pending(&rp->out) < WRITE_HIGH_WATER && !rp->tail_obj)
        return 0;
    return rp->flush(rp->flush_ctx);
}

/* The end of the body: chunked terminator, length check. */
void wsgi_end_body(struct http_response *rp)
{
    if (rp->chunked)
        buf_append(&rp->out, "0\r\n\r\n", 5);
    else if (!rp->no_body && rp->content_length >= 0 &&
             rp->body_sent < (uint64_t)rp->content_length) {
        log_warnx("application sent %llu of its Content-Length of %lld; closing the connection",
                  (unsigned long long)rp->body_sent, (long long)rp->content_length);
        rp->keepalive = 0;
    }
    rp->finished = 1;
}
