/* The Python types hugd hands to applications: start_response (with its
 * write() callable) and wsgi.file_wrapper. */
#include "hugd/ascii.h"
#include "wsgi_int.h"

/* ---- start_response ------------------------------------------------- */

static int bad(PyObject *exc, const char *msg)
{
    PyErr_SetString(exc, msg);
    return -1;
}

/* The bytes of a str that is entirely latin-1, or NULL. */
static const char *latin1(PyObject *s, Py_ssize_t *len)
{
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) < 0 || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *len = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

static int set_status(struct http_response *rp, PyObject *status)
{
    Py_ssize_t n;
    const char *s = latin1(status, &n);
    if (!PyUnicode_Check(status))
        return bad(PyExc_TypeError, "status must be a str");
    if (!s)
        return bad(PyExc_ValueError, "status must be latin-1 text");
    if (n < 4 || !ascii_is_digit((unsigned char)s[0]) || !ascii_is_digit((unsigned char)s[1]) ||
        !ascii_is_digit((unsigned char)s[2]) || s[3] != ' ' || s[0] == '0')
        return bad(PyExc_ValueError, "status must look like '200 OK'");
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return bad(PyExc_ValueError, "status contains a control character");
    }
    rp->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    buf_clear(&rp->status_line);
    buf_append(&rp->status_line, "HTTP/1.1 ", 9);
    buf_append(&rp->status_line, s, (size_t)n);
    buf_append(&rp->status_line, "\r\n", 2);
    return 0;
}

/* The length first: most names the app sends are none of those checked
 * for, and a different length rules them out without a comparison. */
#define name_is(name, n, lit)                                                                      \
    ((size_t)(n) == sizeof(lit) - 1 && ascii_case_eq(name, lit, sizeof(lit) - 1))

static int add_header(struct http_response *rp, PyObject *item)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        return bad(PyExc_TypeError, "each header must be a (name, value) tuple");
    PyObject *nameo = PyTuple_GET_ITEM(item, 0), *valueo = PyTuple_GET_ITEM(item, 1);
    if (!PyUnicode_Check(nameo) || !PyUnicode_Check(valueo))
        return bad(PyExc_TypeError, "header names and values must be str");
    Py_ssize_t nl, vl;
    const char *name = latin1(nameo, &nl), *value = latin1(valueo, &vl);
    if (!name || !value)
        return bad(PyExc_ValueError, "header names and values must be latin-1 text");
    if (nl == 0)
        return bad(PyExc_ValueError, "empty header name");
    for (Py_ssize_t i = 0; i < nl; i++)
        if (!ascii_is_tchar((unsigned char)name[i]))
            return bad(PyExc_ValueError, "header name contains a character not allowed");
    for (Py_ssize_t i = 0; i < vl; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return bad(PyExc_ValueError, "header value contains a control character (CR, LF...)");
    }
    if (name_is(name, nl, "content-length")) {
        if (vl == 0 || vl > 18)
            return bad(PyExc_ValueError, "bad Content-Length");
        int64_t v = 0;
        for (Py_ssize_t i = 0; i < vl; i++) {
            if (!ascii_is_digit((unsigned char)value[i]))
                return bad(PyExc_ValueError, "bad Content-Length");
            v = v * 10 + (value[i] - '0');
        }
        rp->content_length = v;
        rp->length_from_app = 1;
    } else if (name_is(name, nl, "connection")) {
        /* hugd manages the connection; the app can only ask to close it. */
        for (Py_ssize_t i = 0; i + 5 <= vl; i++)
            if (ascii_case_eq(value + i, "close", 5))
                rp->app_close = 1;
        return 0;
    } else if (name_is(name, nl, "transfer-encoding") || name_is(name, nl, "keep-alive") ||
               name_is(name, nl, "te") || name_is(name, nl, "trailer") ||
               name_is(name, nl, "upgrade") || name_is(name, nl, "proxy-authenticate") ||
               name_is(name, nl, "proxy-authorization")) {
        PyErr_Format(PyExc_ValueError, "hop-by-hop header %R is not allowed (PEP 3333)", nameo);
        return -1;
    } else if (name_is(name, nl, "date")) {
        rp->has_date = 1;
    } else if (name_is(name, nl, "server")) {
        rp->has_server = 1;
    }
    buf_append(&rp->head, name, (size_t)nl);
    buf_append(&rp->head, ": ", 2);
    buf_append(&rp->head, value, (size_t)vl);
    buf_append(&rp->head, "\r\n", 2);
    return 0;
}

static void reset_headers(struct http_response *rp)
{
    rp->status = 0;
    buf_clear(&rp->head);
    buf_clear(&rp->status_line);
    rp->content_length = -1;
    rp->length_from_app = rp->app_close = rp->has_date = rp->has_server = 0;
}

static PyObject *sr_write(PyObject *self, PyObject *data);
static PyMethodDef write_def = {"write", sr_write, METH_O, "Write body bytes (PEP 3333)."};

static PyObject *sr_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames)
{
    StartResponse *sr = (StartResponse *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *exc_info = nargs >= 3 ? args[2] : NULL;
    if (kwnames) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "exc_info") != 0) {
                PyErr_SetString(PyExc_TypeError, "start_response() got an unexpected keyword");
                return NULL;
            }
            exc_info = args[nargs + i];
        }
    }
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
        return NULL;
    }
    struct http_response *rp = sr->rp;
    if (!rp) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called after the response ended");
        return NULL;
    }
    if (exc_info && exc_info != Py_None) {
        if (rp->headers_sent) {
            /* Too late to change anything: re-raise, as PEP 3333 asks. */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple");
                return NULL;
            }
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0), *v = PyTuple_GET_ITEM(exc_info, 1),
                     *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(t);
            Py_INCREF(v);
            if (tb == Py_None)
                tb = NULL;
            Py_XINCREF(tb);
            PyErr_Restore(t, v, tb);
            return NULL;
        }
    } else if (rp->status) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without exc_info");
        return NULL;
    }
    reset_headers(rp);
    PyObject *headers = args[1];
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
        PyErr_SetString(PyExc_TypeError, "headers must be a list of (name, value) tuples");
        return NULL;
    }
    if (set_status(rp, args[0]) < 0)
        goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < n; i++)
        if (add_header(rp, PySequence_Fast_GET_ITEM(headers, i)) < 0)
            goto fail;
    return PyCFunction_New(&write_def, self);
fail:
    reset_headers(rp);
    return NULL;
}

static PyObject *sr_write(PyObject *self, PyObject *data)
{
    StartResponse *sr = (StartResponse *)self;
    struct http_response *rp = sr->rp;
    if (!rp) {
        PyErr_SetString(PyExc_RuntimeError, "write() called after the response ended");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "write() takes bytes");
        return NULL;
    }
    if (!rp->status) {
        PyErr_SetString(PyExc_AssertionError, "write() called before start_response");
        return NULL;
    }
    if (!rp->headers_sent)
        wsgi_send_headers(sr->req, rp);
    wsgi_append_body(rp, data);
    if (wsgi_flush_blocking(rp) < 0) {
        PyErr_SetString(PyExc_OSError, "client connection lost");
        return NULL;
    }
    Py_RETURN_NONE;
}

static void sr_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

PyTypeObject StartResponse_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hugd.StartResponse",
    .tp_basicsize = sizeof(StartResponse),
    .tp_dealloc = sr_dealloc,
    .tp_vectorcall_offset = offsetof(StartResponse, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "start_response(status, headers, exc_info=None)",
};

PyObject *start_response_new(struct http_request *r, struct http_response *rp)
{
    StartResponse *sr = PyObject_New(StartResponse, &StartResponse_Type);
    if (!sr)
        return NULL;
    sr->vectorcall = sr_vectorcall;
    sr->req = r;
    sr->rp = rp;
    return (PyObject *)sr;
}

/* ---- wsgi.file_wrapper ---------------------------------------------- */

static int fw_init(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", kwlist, &filelike, &blksize))
        return -1;
    if (blksize <= 0)
        blksize = 8192;
    Py_INCREF(filelike);
    Py_XSETREF(fw->filelike, filelike);
    fw->blksize = blksize;
    return 0;
}

static PyObject *fw_next(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    if (!fw->filelike)
        return NULL;
    PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (!data)
        return NULL;
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return NULL; /* end of file: StopIteration */
    }
    return data;
}

static PyObject *fw_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    FileWrapper *fw = (FileWrapper *)self;
    if (fw->filelike) {
        PyObject *close = PyObject_GetAttrString(fw->filelike, "close");
        if (!close) {
            PyErr_Clear(); /* a file-like without close() is fine */
        } else {
            PyObject *r = PyObject_CallNoArgs(close);
            Py_DECREF(close);
            if (!r)
                return NULL;
            Py_DECREF(r);
        }
    }
    Py_RETURN_NONE;
}

static void fw_dealloc(PyObject *self)
{
    Py_XDECREF(((FileWrapper *)self)->filelike);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef fw_methods[] = {
    {"close", fw_close, METH_NOARGS, "Close the wrapped file."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject FileWrapper_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hugd.FileWrapper",
    .tp_basicsize = sizeof(FileWrapper),
    .tp_dealloc = fw_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192): sent with sendfile when it can be",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = fw_next,
    .tp_methods = fw_methods,
    .tp_init = fw_init,
    .tp_new = PyType_GenericNew,
};

/* ---- wsgi.input for requests without a body ------------------------- */

/* Most requests have no body.  An empty stream has no state to keep, so
 * one shared object serves them all instead of a BytesIO per request. */

static PyObject *ei_read(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    (void)self;
    (void)args;
    if (n > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most one argument");
        return NULL;
    }
    return PyBytes_FromStringAndSize("", 0);
}

static PyObject *ei_readlines(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    (void)self;
    (void)args;
    if (n > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most one argument");
        return NULL;
    }
    return PyList_New(0);
}

static PyObject *ei_next(PyObject *self)
{
    (void)self;
    return NULL;
}

static PyMethodDef ei_methods[] = {
    {"read", (PyCFunction)(void (*)(void))ei_read, METH_FASTCALL, "b'': the body is empty."},
    {"readline", (PyCFunction)(void (*)(void))ei_read, METH_FASTCALL, "b''"},
    {"readlines", (PyCFunction)(void (*)(void))ei_readlines, METH_FASTCALL, "[]"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject EmptyInput_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hugd.EmptyInput",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input of a request without a body",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = ei_next,
    .tp_methods = ei_methods,
};

int wsgi_types_ready(void)
{
    if (PyType_Ready(&StartResponse_Type) < 0 || PyType_Ready(&FileWrapper_Type) < 0 ||
        PyType_Ready(&EmptyInput_Type) < 0)
        return -1;
    return 0;
}
