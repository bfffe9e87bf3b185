/* PEP 3333 responses: calling the application and turning what it returns
 * into response bytes.  See include/hugd/wsgi.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hugd/http.h"
#include "hugd/log.h"
#include "wsgi_int.h"

/* Body chunks at least this big are written from the bytes object itself
 * instead of being copied into the output buffer. */
#define ZERO_COPY_MIN (64 << 10)
/* write() blocks once this much is queued (PEP 3333: it must not buffer
 * without bound). */
#define WRITE_HIGH_WATER (1 << 20)

static void print_exception(struct conn *c, const char *what)
{
    const struct http_request *r = &c->req;
    log_errx("%s %s %.*s", what, llhttp_method_name((llhttp_method_t)r->method),
             (int)(r->url_len > 200 ? 200 : r->url_len), r->arena.p + r->url);
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t)
        return;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v)
        PyException_SetTraceback(v, tb);
    /* PyErr_Display, not PyErr_Print: an application's SystemExit must not
     * end the worker, and sys.last_traceback must not pin the frames. */
    PyErr_Display(t, v, tb);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    PyErr_Clear();
}

void wsgi_send_headers(struct conn *c)
{
    struct http_response *rp = &c->resp;
    struct http_request *r = &c->req;
    int s = rp->status;
    rp->no_body = r->method == HTTP_HEAD || s < 200 || s == 204 || s == 304;
    int length_known = rp->content_length >= 0 || rp->no_body;
    if (!length_known && r->minor >= 1 && r->major == 1)
        rp->chunked = 1;
    c->keepalive = http_keepalive(c->keepalive, rp->app_close, length_known || rp->chunked);
    /* A stop that began while the application ran: the client is told
     * now, not surprised by a close after a keep-alive response. */
    if (rp->stopping && atomic_load(rp->stopping))
        c->keepalive = 0;

    struct buf *o = &c->out;
    buf_append(o, rp->status_line.p, rp->status_line.len);
    if (!rp->has_server)
        buf_append(o, "Server: hugd\r\n", 14);
    if (!rp->has_date) {
        size_t dl;
        const char *d = http_date_header(c->resp.now, &dl);
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
    if (!c->keepalive)
        buf_append(o, "Connection: close\r\n", 19);
    else if (r->minor == 0)
        buf_append(o, "Connection: keep-alive\r\n", 24);
    buf_append(o, "\r\n", 2);
    rp->headers_sent = 1;
}

void wsgi_append_body(struct conn *c, PyObject *bytes)
{
    struct http_response *rp = &c->resp;
    size_t n = (size_t)PyBytes_GET_SIZE(bytes);
    if (n == 0 || rp->no_body)
        return;
    if (rp->content_length >= 0 && rp->body_sent + n > (uint64_t)rp->content_length) {
        /* More than promised: what goes past Content-Length would be read
         * as the next response.  Cut it, and close after. */
        log_warnx("application sent more than its Content-Length of %lld; truncated",
                  (long long)rp->content_length);
        n = (size_t)((uint64_t)rp->content_length - rp->body_sent);
        c->keepalive = 0;
        if (n == 0)
            return;
    }
    rp->body_sent += n;
    if (rp->pending) {
        /* flush() writes out before pending: a later chunk must not pass the
         * big one kept aside, so that one joins the buffer first. */
        PyObject *big = rp->pending;
        buf_append(&c->out, PyBytes_AS_STRING(big) + rp->pending_off,
                   (size_t)PyBytes_GET_SIZE(big) - rp->pending_off);
        wsgi_drop_pending(c);
    }
    const char *p = PyBytes_AS_STRING(bytes);
    if (rp->chunked) {
        char size[24];
        int k = snprintf(size, sizeof(size), "%zx\r\n", n);
        buf_append(&c->out, size, (size_t)k);
        buf_append(&c->out, p, n);
        buf_append(&c->out, "\r\n", 2);
    } else if (n >= ZERO_COPY_MIN && !rp->pending && n == (size_t)PyBytes_GET_SIZE(bytes)) {
        Py_INCREF(bytes);
        rp->pending = bytes;
        rp->pending_off = 0;
    } else {
        buf_append(&c->out, p, n);
    }
}

int wsgi_flush_blocking(struct conn *c)
{
    /* Below the mark write() just queues; past it (or with a big bytes
     * object kept aside, which write() may not hold past its return) the
     * connection writes it all out first. */
    if (buf_pending(&c->out) < WRITE_HIGH_WATER && !c->resp.pending)
        return 0;
    return c->resp.flush(c);
}

/* The end of the body: chunked terminator, length check. */
static void end_body(struct conn *c)
{
    struct http_response *rp = &c->resp;
    if (rp->chunked)
        buf_append(&c->out, "0\r\n\r\n", 5);
    else if (!rp->no_body && rp->content_length >= 0 &&
             rp->body_sent < (uint64_t)rp->content_length) {
        log_warnx("application sent %llu of its Content-Length of %lld; closing the connection",
                  (unsigned long long)rp->body_sent, (long long)rp->content_length);
        c->keepalive = 0;
    }
    rp->finished = 1;
}

/* Answer 500 if nothing went out yet; else the connection must close. */
static int fail_response(struct conn *c, const char *what)
{
    print_exception(c, what);
    struct http_response *rp = &c->resp;
    if (!rp->headers_sent) {
        buf_clear(&c->out);
        wsgi_drop_pending(c);
        rp->status = 500;
        rp->chunked = 0;
        c->keepalive = 0;
        http_error_response(&c->out, 500, c->resp.now);
        rp->finished = 1;
        wsgi_finish(c);
        return 0;
    }
    c->keepalive = 0;
    rp->finished = 1;
    wsgi_finish(c);
    return -1;
}

static int no_status(struct conn *c)
{
    if (c->resp.status)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response");
    return -1;
}

/* A list or tuple: everything is here, so the length is known and the
 * whole response goes out in one write. */
static int respond_sequence(struct conn *c, PyObject *seq)
{
    struct http_response *rp = &c->resp;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "the application's body must be bytes, not %.80s",
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        total += PyBytes_GET_SIZE(item);
    }
    if (no_status(c) < 0)
        return -1;
    if (!rp->headers_sent) {
        if (rp->content_length < 0)
            rp->content_length = total;
        wsgi_send_headers(c);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        wsgi_append_body(c, PySequence_Fast_GET_ITEM(seq, i));
    end_body(c);
    return 0;
}

/* wsgi.file_wrapper over a real file: sendfile(2) from its position. */
static int respond_file(struct conn *c, FileWrapper *fw)
{
    struct http_response *rp = &c->resp;
    if (rp->headers_sent)
        return 1; /* write() began the body: iterate the file into it */
    PyObject *fno = PyObject_CallMethod(fw->filelike, "fileno", NULL);
    if (!fno) {
        PyErr_Clear();
        return 1; /* not a real file: iterate it */
    }
    int fd = (int)PyLong_AsLong(fno);
    Py_DECREF(fno);
    if (fd < 0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    struct stat st;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0)
        return 1;
    /* Python's buffered reader may hold data it already read ahead. */
    PyObject *tell = PyObject_CallMethod(fw->filelike, "tell", NULL);
    if (tell) {
        long long t = PyLong_AsLongLong(tell);
        Py_DECREF(tell);
        if (t >= 0)
            pos = (off_t)t;
    }
    PyErr_Clear();
    if (no_status(c) < 0)
        return -1;
    uint64_t left = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
    if (rp->content_length < 0)
        rp->content_length = (int64_t)left;
    else if ((uint64_t)rp->content_length < left)
        left = (uint64_t)rp->content_length;
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return 1;
    wsgi_send_headers(c);
    if (rp->no_body) {
        close(dupfd);
        end_body(c);
        return 0;
    }
    rp->file_fd = dupfd;
    rp->file_off = pos;
    rp->file_left = left;
    rp->body_sent = left;
    if (left < (uint64_t)rp->content_length)
        c->keepalive = 0;
    rp->finished = 1;
    return 0;
}

/* Pull until a non-empty chunk (headers wait for it: PEP 3333) or the end. */
static int pull(struct conn *c)
{
    struct http_response *rp = &c->resp;
    for (;;) {
        PyObject *item = PyIter_Next(rp->iter);
        if (!item) {
            if (PyErr_Occurred())
                return -1;
            Py_CLEAR(rp->iter);
            if (no_status(c) < 0)
                return -1;
            if (!rp->headers_sent) {
                if (rp->content_length < 0)
                    rp->content_length = 0;
                wsgi_send_headers(c);
            }
            end_body(c);
            return 0;
        }
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "the application's body must be bytes, not %.80s",
                         Py_TYPE(item)->tp_name);
            Py_DECREF(item);
            return -1;
        }
        if (PyBytes_GET_SIZE(item) == 0) {
            Py_DECREF(item);
            continue;
        }
        if (no_status(c) < 0) {
            Py_DECREF(item);
            return -1;
        }
        if (!rp->headers_sent)
            wsgi_send_headers(c);
        wsgi_append_body(c, item);
        Py_DECREF(item);
        if (rp->no_body) {
            /* HEAD: the headers are all that is sent. */
            end_body(c);
        }
        return 0;
    }
}

void wsgi_respond(struct conn *c)
{
    struct http_response *rp = &c->resp;
    memset(&rp->headers_sent, 0, sizeof(*rp) - offsetof(struct http_response, headers_sent));
    rp->file_fd = -1;
    rp->content_length = -1;
    rp->status = 0;
    buf_clear(&rp->head);
    buf_clear(&rp->status_line);

    PyObject *sr = start_response_new(c);
    PyObject *env = sr ? wsgi_build_environ(c) : NULL;
    if (!env) {
        Py_XDECREF(sr);
        rp->start_resp = NULL;
        fail_response(c, "Error building the environ for");
        return;
    }
    rp->start_resp = sr;
    PyObject *args[2] = {env, sr};
    PyObject *result = PyObject_Vectorcall(wsgi_app, args, 2, NULL);
    Py_DECREF(env);
    if (!result) {
        fail_response(c, "Error handling request");
        return;
    }
    rp->result = result;
    int rc;
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        rc = respond_sequence(c, result);
    } else {
        rc = 1;
        if (Py_IS_TYPE(result, &FileWrapper_Type))
            rc = respond_file(c, (FileWrapper *)result);
        if (rc > 0) {
            rp->iter = PyObject_GetIter(result);
            rc = rp->iter ? pull(c) : -1;
        }
    }
    if (rc < 0)
        fail_response(c, "Error handling request");
    else if (rp->finished)
        wsgi_finish(c);
}

int wsgi_produce(struct conn *c)
{
    struct http_response *rp = &c->resp;
    if (rp->finished || !rp->iter) {
        if (!rp->finished)
            end_body(c);
        return 0;
    }
    int rc = pull(c);
    if (rc < 0)
        rc = fail_response(c, "Error while sending the response to");
    else if (rp->finished)
        wsgi_finish(c);
    return rc;
}

void wsgi_finish(struct conn *c)
{
    struct http_response *rp = &c->resp;
    if (rp->start_resp) {
        ((StartResponse *)rp->start_resp)->c = NULL;
        Py_CLEAR(rp->start_resp);
    }
    Py_CLEAR(rp->iter);
    PyObject *result = rp->result;
    if (!result)
        return;
    rp->result = NULL;
    if (!PyList_CheckExact(result) && !PyTuple_CheckExact(result)) {
        PyObject *close = PyObject_GetAttrString(result, "close");
        if (!close) {
            PyErr_Clear();
        } else {
            PyObject *r = PyObject_CallNoArgs(close);
            Py_DECREF(close);
            if (!r)
                print_exception(c, "Error closing the response of");
            Py_XDECREF(r);
        }
    }
    Py_DECREF(result);
}

void wsgi_drop_pending(struct conn *c)
{
    Py_CLEAR(c->resp.pending);
    c->resp.pending_off = 0;
}
