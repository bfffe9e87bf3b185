/* PEP 3333 environ: the constant parts built once in the master before
 * fork (interned keys, a base dict per listening socket), and the copy of
 * the base filled in for each request.  See include/hugd/wsgi.h. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "hugd/ascii.h"
#include "hugd/forwarded.h"
#include "hugd/http.h"
#include "wsgi_int.h"

PyObject *wsgi_app;
static PyObject **base_environ; /* one per listening socket */
static int nbase;
static PyObject *bytes_io, *io_open, *empty_bytes, *empty_input;
static PyObject *k_method, *k_path, *k_query, *k_protocol, *k_remote_addr, *k_remote_port,
    *k_content_type, *k_content_length, *k_input, *k_request_uri, *k_raw_uri, *k_url_scheme;
static PyObject *scheme_https;
static PyObject *proto10, *proto11;
static PyObject *methods[64];

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

static int set_str(PyObject *d, const char *key, const char *value)
{
    PyObject *v = PyUnicode_DecodeLatin1(value, (Py_ssize_t)strlen(value), NULL);
    if (!v)
        return -1;
    int r = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return r;
}

static PyObject *make_base(const struct listener *l)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    PyObject *version = Py_BuildValue("(ii)", 1, 0);
    PyObject *err = PySys_GetObject("stderr"); /* borrowed */
    if (!version || !err || PyDict_SetItemString(d, "wsgi.version", version) < 0 ||
        set_str(d, "wsgi.url_scheme", "http") < 0 ||
        PyDict_SetItemString(d, "wsgi.multithread", Py_False) < 0 ||
        PyDict_SetItemString(d, "wsgi.multiprocess", Py_True) < 0 ||
        PyDict_SetItemString(d, "wsgi.run_once", Py_False) < 0 ||
        PyDict_SetItemString(d, "wsgi.input_terminated", Py_True) < 0 ||
        PyDict_SetItemString(d, "wsgi.errors", err) < 0 ||
        PyDict_SetItemString(d, "wsgi.file_wrapper", (PyObject *)&FileWrapper_Type) < 0 ||
        PyDict_SetItemString(d, "wsgi.input", empty_input) < 0 ||
        set_str(d, "SCRIPT_NAME", "") < 0 || set_str(d, "SERVER_NAME", l->server_name) < 0 ||
        set_str(d, "SERVER_PORT", l->server_port) < 0 ||
        set_str(d, "SERVER_SOFTWARE", "hugd/" HUGD_VERSION) < 0) {
        Py_XDECREF(version);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(version);
    return d;
}

int wsgi_setup(PyObject *application, const struct listener *ls, int nls)
{
    if (wsgi_types_ready() < 0)
        goto fail;
    wsgi_app = application;
    Py_INCREF(wsgi_app);
    PyObject *io = PyImport_ImportModule("io");
    if (!io)
        goto fail;
    bytes_io = PyObject_GetAttrString(io, "BytesIO");
    io_open = PyObject_GetAttrString(io, "open");
    Py_DECREF(io);
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    empty_input = PyObject_New(PyObject, &EmptyInput_Type);
    k_method = intern("REQUEST_METHOD");
    k_path = intern("PATH_INFO");
    k_query = intern("QUERY_STRING");
    k_protocol = intern("SERVER_PROTOCOL");
    k_remote_addr = intern("REMOTE_ADDR");
    k_remote_port = intern("REMOTE_PORT");
    k_content_type = intern("CONTENT_TYPE");
    k_content_length = intern("CONTENT_LENGTH");
    k_input = intern("wsgi.input");
    k_request_uri = intern("REQUEST_URI");
    k_raw_uri = intern("RAW_URI");
    k_url_scheme = intern("wsgi.url_scheme");
    scheme_https = intern("https");
    proto10 = intern("HTTP/1.0");
    proto11 = intern("HTTP/1.1");
    if (!bytes_io || !io_open || !empty_bytes || !empty_input || !k_method || !k_path || !k_query ||
        !k_protocol || !k_remote_addr || !k_remote_port || !k_content_type || !k_content_length ||
        !k_input || !k_request_uri || !k_raw_uri || !k_url_scheme || !scheme_https || !proto10 ||
        !proto11)
        goto fail;
    base_environ = calloc((size_t)nls, sizeof(*base_environ));
    if (!base_environ)
        return PyErr_NoMemory(), -1;
    for (int i = 0; i < nls; i++)
        if (!(base_environ[i] = make_base(&ls[i])))
            goto fail;
    nbase = nls;
    return 0;
fail:
    PyErr_Print();
    return -1;
}

/* PATH_INFO is the percent-decoded path, bytes taken as latin-1. */
static PyObject *decode_path(const char *p, size_t n)
{
    static char stackbuf[4096]; /* one thread serves requests */
    char *out = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (!out)
        return PyErr_NoMemory();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = ascii_hex_value((unsigned char)p[i + 1])) >= 0 &&
            (lo = ascii_hex_value((unsigned char)p[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    PyObject *r = PyUnicode_DecodeLatin1(out, (Py_ssize_t)o, NULL);
    if (out != stackbuf)
        free(out);
    return r;
}

static int set_latin1(PyObject *env, PyObject *key, const char *p, size_t n)
{
    PyObject *v = PyUnicode_DecodeLatin1(p, (Py_ssize_t)n, NULL);
    if (!v)
        return -1;
    int r = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return r;
}

static int add_url(PyObject *env, const struct http_request *r)
{
    const char *u = r->arena.p + r->url;
    size_t n = r->url_len;
    if (set_latin1(env, k_request_uri, u, n) < 0 ||
        PyDict_SetItem(env, k_raw_uri, PyDict_GetItem(env, k_request_uri)) < 0)
        return -1;
    /* absolute-form ("GET http://host/path"): the parser checked the
     * authority and found where the path starts. */
    u += r->path_off;
    n -= r->path_off;
    const char *hash = memchr(u, '#', n);
    if (hash)
        n = (size_t)(hash - u);
    const char *q = memchr(u, '?', n);
    size_t plen = q ? (size_t)(q - u) : n;
    PyObject *path =
        plen ? decode_path(u, plen) : PyUnicode_FromString(n && u[0] != '?' ? "" : "/");
    if (!path)
        return -1;
    int rc = PyDict_SetItem(env, k_path, path);
    Py_DECREF(path);
    if (rc < 0)
        return -1;
    return q ? set_latin1(env, k_query, q + 1, n - plen - 1) : set_latin1(env, k_query, "", 0);
}

static PyObject *header_key(const char *name, size_t n)
{
    char key[256];
    if (n + 5 >= sizeof(key))
        return NULL;
    memcpy(key, "HTTP_", 5);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        key[5 + i] = ch == '-' ? '_' : (char)ascii_upper((unsigned char)ch);
    }
    return PyUnicode_DecodeLatin1(key, (Py_ssize_t)(n + 5), NULL);
}

static int add_headers(PyObject *env, const struct http_request *r)
{
    for (int i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        const char *name = r->arena.p + h->name;
        const char *val = r->arena.p + h->value;
        PyObject *key;
        if (h->name_len == 12 && ascii_case_eq(name, "content-type", 12)) {
            key = k_content_type;
            Py_INCREF(key);
        } else if (h->name_len == 14 && ascii_case_eq(name, "content-length", 14)) {
            key = k_content_length;
            Py_INCREF(key);
        } else if (memchr(name, '_', h->name_len)) {
            /* "X_Forwarded_For" would land on the same key as
             * "X-Forwarded-For" and could pass for a proxy's header. */
            continue;
        } else if (!(key = header_key(name, h->name_len))) {
            if (PyErr_Occurred())
                return -1;
            continue; /* too long a name for a key; llhttp limits apply anyway */
        }
        PyObject *v = PyUnicode_DecodeLatin1(val, (Py_ssize_t)h->value_len, NULL);
        if (!v) {
            Py_DECREF(key);
            return -1;
        }
        PyObject *old = PyDict_GetItemWithError(env, key); /* borrowed */
        if (old && key != k_content_type && key != k_content_length) {
            PyObject *joined = PyUnicode_FromFormat("%U, %U", old, v);
            Py_DECREF(v);
            v = joined;
            if (!v) {
                Py_DECREF(key);
                return -1;
            }
        } else if (!old && PyErr_Occurred()) {
            Py_DECREF(key);
            Py_DECREF(v);
            return -1;
        }
        int rc = PyDict_SetItem(env, key, v);
        Py_DECREF(key);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static PyObject *make_input(struct http_request *r)
{
    if (r->body_fd >= 0) {
        /* A spooled body: Python gets its own descriptor and closes it. */
        int fd = dup(r->body_fd);
        if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
            if (fd >= 0)
                close(fd);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        PyObject *f = PyObject_CallFunction(io_open, "is", fd, "rb");
        if (!f)
            close(fd);
        return f;
    }
    PyObject *b = PyBytes_FromStringAndSize(r->body.p, (Py_ssize_t)r->body.len);
    if (!b)
        return NULL;
    PyObject *f = PyObject_CallOneArg(bytes_io, b);
    Py_DECREF(b);
    return f;
}

static PyObject *method_name(uint8_t m)
{
    if (m < 64 && methods[m])
        return methods[m];
    PyObject *s = intern(llhttp_method_name((llhttp_method_t)m));
    if (s && m < 64)
        methods[m] = s;
    return s;
}

PyObject *wsgi_build_environ(struct http_request *r)
{
    PyObject *env = PyDict_Copy(base_environ[r->listener < nbase ? r->listener : 0]);
    if (!env)
        return NULL;
    PyObject *m = method_name(r->method);
    if (!m || PyDict_SetItem(env, k_method, m) < 0 ||
        PyDict_SetItem(env, k_protocol, r->minor == 0 ? proto10 : proto11) < 0 ||
        add_url(env, r) < 0 || add_headers(env, r) < 0)
        goto fail;
    /* The client as conn_client.c found it: the socket's peer, a PROXY
     * header's, or a trusted proxy's forwarded headers'. */
    const char *addr = r->remote_addr ? r->remote_addr : "";
    const char *port = r->remote_port ? r->remote_port : "";
    if ((addr[0] && set_latin1(env, k_remote_addr, addr, strlen(addr)) < 0) ||
        (port[0] && set_latin1(env, k_remote_port, port, strlen(port)) < 0))
        goto fail;
    if (r->fwd_scheme == FWD_SCHEME_HTTPS && PyDict_SetItem(env, k_url_scheme, scheme_https) < 0)
        goto fail;
    if (r->body_size && !r->has_length) {
        /* A chunked body: its length is known now that it has been read. */
        char len[24];
        int n = snprintf(len, sizeof(len), "%llu", (unsigned long long)r->body_size);
        if (set_latin1(env, k_content_length, len, (size_t)n) < 0)
            goto fail;
    }
    if (r->body.len == 0 && r->body_fd < 0)
        return env; /* the base environ's shared empty stream */
    PyObject *input = make_input(r);
    if (!input)
        goto fail;
    int rc = PyDict_SetItem(env, k_input, input);
    Py_DECREF(input);
    if (rc < 0)
        goto fail;
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}
