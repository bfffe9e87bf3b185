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

static void close_result(struct http_request *r, struct http_response *rp);

static void print_exception(const struct http_request *r, const char *what)
{
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

/* Answer 500 if nothing went out yet; else the connection must close. */
static int fail_response(struct http_request *r, struct http_response *rp, const char *what)
{
    print_exception(r, what);
    if (!rp->headers_sent) {
        buf_clear(&rp->out);
        wsgi_drop_tail(rp);
        rp->status = 500;
        rp->chunked = 0;
        rp->keepalive = 0;
        http_error_response(&rp->out, 500, rp->now);
        rp->finished = 1;
        close_result(r, rp);
        return 0;
    }
    rp->keepalive = 0;
    rp->finished = 1;
    close_result(r, rp);
    return -1;
}

static int no_status(const struct http_response *rp)
{
    if (rp->status)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "the application returned without calling start_response");
    return -1;
}

/* A list or tuple: everything is here, so the length is known and the
 * whole response goes out in one write. */
static int respond_sequence(struct http_request *r, struct http_response *rp, PyObject *seq)
{
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
    if (no_status(rp) < 0)
        return -1;
    if (!rp->headers_sent) {
        if (rp->content_length < 0)
            rp->content_length = total;
        wsgi_send_headers(r, rp);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        wsgi_append_body(rp, PySequence_Fast_GET_ITEM(seq, i));
    wsgi_end_body(rp);
    return 0;
}

/* wsgi.file_wrapper over a real file: sendfile(2) from its position. */
static int respond_file(struct http_request *r, struct http_response *rp, FileWrapper *fw)
{
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
    if (no_status(rp) < 0)
        return -1;
    uint64_t left = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
    if (rp->content_length < 0)
        rp->content_length = (int64_t)left;
    else if ((uint64_t)rp->content_length < left)
        left = (uint64_t)rp->content_length;
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return 1;
    wsgi_send_headers(r, rp);
    if (rp->no_body) {
        close(dupfd);
        wsgi_end_body(rp);
        return 0;
    }
    rp->file_fd = dupfd;
    rp->file_off = pos;
    rp->file_left = left;
    rp->body_sent = left;
    if (left < (uint64_t)rp->content_length)
        rp->keepalive = 0;
    rp->finished = 1;
    return 0;
}

/* Pull until a non-empty chunk (headers wait for it: PEP 3333) or the end. */
static int pull(struct http_request *r, struct http_response *rp)
{
    for (;;) {
        PyObject *item = PyIter_Next(rp->iter);
        if (!item) {
            if (PyErr_Occurred())
                return -1;
            Py_CLEAR(rp->iter);
            if (no_status(rp) < 0)
                return -1;
            if (!rp->headers_sent) {
                if (rp->content_length < 0)
                    rp->content_length = 0;
                wsgi_send_headers(r, rp);
            }
            wsgi_end_body(rp);
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
        if (no_status(rp) < 0) {
            Py_DECREF(item);
            return -1;
        }
        if (!rp->headers_sent)
            wsgi_send_headers(r, rp);
        wsgi_append_body(rp, item);
        Py_DECREF(item);
        if (rp->no_body) {
            /* HEAD: the headers are all that is sent. */
            wsgi_end_body(rp);
        }
        return 0;
    }
}

void wsgi_respond(struct http_request *r, struct http_response *rp)
{
    wsgi_drop_tail(rp); /* none: the last response was finished (wsgi_finish) */
    memset(&rp->headers_sent, 0, sizeof(*rp) - offsetof(struct http_response, headers_sent));
    rp->file_fd = -1;
    rp->content_length = -1;
    rp->status = 0;
    buf_clear(&rp->head);
    buf_clear(&rp->status_line);

    PyObject *sr = start_response_new(r, rp);
    PyObject *env = sr ? wsgi_build_environ(r) : NULL;
    if (!env) {
        Py_XDECREF(sr);
        rp->start_resp = NULL;
        fail_response(r, rp, "Error building the environ for");
        return;
    }
    rp->start_resp = sr;
    PyObject *args[2] = {env, sr};
    PyObject *result = PyObject_Vectorcall(wsgi_app, args, 2, NULL);
    Py_DECREF(env);
    if (!result) {
        fail_response(r, rp, "Error handling request");
        return;
    }
    rp->result = result;
    int rc;
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        rc = respond_sequence(r, rp, result);
    } else {
        rc = 1;
        if (Py_IS_TYPE(result, &FileWrapper_Type))
            rc = respond_file(r, rp, (FileWrapper *)result);
        if (rc > 0) {
            rp->iter = PyObject_GetIter(result);
            rc = rp->iter ? pull(r, rp) : -1;
        }
    }
    if (rc < 0)
        fail_response(r, rp, "Error handling request");
    else if (rp->finished)
        close_result(r, rp);
}

int wsgi_produce(struct http_request *r, struct http_response *rp)
{
    if (rp->finished || !rp->iter) {
        if (!rp->finished)
            wsgi_end_body(rp);
        return 0;
    }
    int rc = pull(r, rp);
    if (rc < 0)
        rc = fail_response(r, rp, "Error while sending the response to");
    else if (rp->finished)
        close_result(r, rp);
    return rc;
}

/* The response is complete (or abandoned): close the iterable and let go
 * of the start_response object.  A tail still being written stays. */
static void close_result(struct http_request *r, struct http_response *rp)
{
    if (rp->start_resp) {
        ((StartResponse *)rp->start_resp)->req = NULL;
        ((StartResponse *)rp->start_resp)->rp = NULL;
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
            PyObject *ok = PyObject_CallNoArgs(close);
            Py_DECREF(close);
            if (!ok)
                print_exception(r, "Error closing the response of");
            Py_XDECREF(ok);
        }
    }
    Py_DECREF(result);
}

void wsgi_finish(struct http_request *r, struct http_response *rp)
{
    close_result(r, rp);
    wsgi_drop_tail(rp);
}
