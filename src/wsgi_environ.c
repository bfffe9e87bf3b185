/* PEP 3333 environ: the constant parts built once in the master before
 * fork (interned keys, a template per listening socket), and the copy of
 * the template filled in for each request (wsgi_template.c keeps the
 * values that repeat).  See include/hugd/wsgi.h. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "hugd/ascii.h"
#include "hugd/forwarded.h"
#include "hugd/http.h"
#include "wsgi_int.h"

PyObject *wsgi_app;
static struct env_template *templates; /* one per listening socket */
static int ntemplates;
static PyObject *bytes_io, *io_open, *empty_bytes, *empty_input, *empty_str;
static PyObject *last_port; /* a port changes with each connection: the copy only */
static PyObject *k_method, *k_path, *k_query, *k_protocol, *k_remote_addr, *k_remote_port,
    *k_content_type, *k_content_length, *k_input, *k_request_uri, *k_raw_uri, *k_url_scheme;
static PyObject *scheme_https;
static PyObject *proto10, *proto11;
static PyObject *methods[64];

static PyObject *header_key(const char *name, size_t n);

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

/* PyDict_Copy clones a dict's table, its size included, when at least two
 * thirds of its entries are live (else it inserts key by key).  The base
 * holds 13 constants and placeholders for the 6 keys every request sets;
 * a few more keys put in and taken out again grow its table to 64 slots,
 * so that a request's own keys (its address, port and headers: up to 20
 * of them) go into the copy without growing and rehashing it.  (A dict
 * made presized would lose the faster table of str-only keys.) */
#define ENVIRON_ROOM 22

static int make_room(PyObject *d)
{
    Py_ssize_t had = PyDict_Size(d);
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t i = had; i < ENVIRON_ROOM; i++) {
            PyObject *k = PyUnicode_FromFormat("hugd.room.%zd", i);
            int rc = !k ? -1 : pass == 0 ? PyDict_SetItem(d, k, Py_None) : PyDict_DelItem(d, k);
            Py_XDECREF(k);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
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
        set_str(d, "SERVER_SOFTWARE", "hugd/" HUGD_VERSION) < 0 ||
        PyDict_SetItem(d, k_method, empty_str) < 0 ||
        PyDict_SetItem(d, k_protocol, empty_str) < 0 ||
        PyDict_SetItem(d, k_request_uri, empty_str) < 0 ||
        PyDict_SetItem(d, k_raw_uri, empty_str) < 0 || PyDict_SetItem(d, k_path, empty_str) < 0 ||
        PyDict_SetItem(d, k_query, empty_str) < 0 || make_room(d) < 0) {
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
    empty_str = PyUnicode_FromStringAndSize("", 0);
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
    if (!bytes_io || !io_open || !empty_bytes || !empty_input || !empty_str || !k_method ||
        !k_path || !k_query || !k_protocol || !k_remote_addr || !k_remote_port || !k_content_type ||
        !k_content_length || !k_input || !k_request_uri || !k_raw_uri || !k_url_scheme ||
        !scheme_https || !proto10 || !proto11)
        goto fail;
    PyObject *fixed[TMPL_HEADER0] = {
        [TMPL_METHOD] = k_method,    [TMPL_PROTOCOL] = k_protocol, [TMPL_URI] = k_request_uri,
        [TMPL_RAW_URI] = k_raw_uri,  [TMPL_PATH] = k_path,         [TMPL_QUERY] = k_query,
        [TMPL_ADDR] = k_remote_addr,
    };
    if (tmpl_keys_init(fixed, header_key, k_content_type, k_content_length) < 0)
        goto fail;
    templates = calloc((size_t)nls, sizeof(*templates));
    if (!templates)
        return PyErr_NoMemory(), -1;
    for (int i = 0; i < nls; i++) {
        PyObject *base = make_base(&ls[i]);
        if (!base || tmpl_init(&templates[i], base) < 0)
            goto fail;
    }
    ntemplates = nls;
    return 0;
fail:
    PyErr_Print();
    return -1;
}

/* PATH_INFO is the percent-decoded path, bytes taken as latin-1. */
static int put_path(struct env_template *t, PyObject *env, const char *p, size_t n)
{
    static char stackbuf[4096]; /* one thread serves requests */
    char *out = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (!out)
        return PyErr_NoMemory(), -1;
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
    int rc = tmpl_put_latin1(t, env, TMPL_PATH, out, o);
    if (out != stackbuf)
        free(out);
    return rc;
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

static int add_url(struct env_template *t, PyObject *env, const struct http_request *r)
{
    const char *u = r->arena.p + r->url;
    size_t n = r->url_len;
    if (tmpl_put_latin1(t, env, TMPL_URI, u, n) < 0 ||
        tmpl_put(t, env, TMPL_RAW_URI, t->slots[TMPL_URI].last) < 0)
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
    if (plen ? put_path(t, env, u, plen) < 0
             : tmpl_put_latin1(t, env, TMPL_PATH, n && u[0] != '?' ? "" : "/",
                               n && u[0] != '?' ? 0 : 1) < 0)
        return -1;
    return q ? tmpl_put_latin1(t, env, TMPL_QUERY, q + 1, n - plen - 1)
             : tmpl_put_latin1(t, env, TMPL_QUERY, "", 0);
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

static int add_headers(struct env_template *t, PyObject *env, const struct http_request *r)
{
    for (int i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        const char *name = r->arena.p + h->name;
        const char *val = r->arena.p + h->value;
        int slot = tmpl_header_slot(name, h->name_len);
        PyObject *key;
        if (slot >= 0 && !tmpl_seen(t, slot)) {
            if (tmpl_put_latin1(t, env, slot, val, h->value_len) < 0)
                return -1;
            continue;
        }
        if (slot >= 0) {
            key = Py_NewRef(tmpl_key(slot)); /* a repeated header: joined below */
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

/* REMOTE_PORT changes with every connection: it never goes into the
 * template, but the str of the last one is reused all the same. */
static int put_port(PyObject *env, const char *p, size_t n)
{
    PyObject *v = last_port;
    if (v && (size_t)PyUnicode_GET_LENGTH(v) == n && memcmp(PyUnicode_1BYTE_DATA(v), p, n) == 0)
        return PyDict_SetItem(env, k_remote_port, v);
    if (!(v = PyUnicode_DecodeLatin1(p, (Py_ssize_t)n, NULL)))
        return -1;
    Py_XSETREF(last_port, v);
    return PyDict_SetItem(env, k_remote_port, v);
}

PyObject *wsgi_build_environ(struct http_request *r)
{
    struct env_template *t = &templates[r->listener < ntemplates ? r->listener : 0];
    PyObject *env = tmpl_begin(t);
    if (!env)
        return NULL;
    PyObject *m = method_name(r->method);
    /* The client as conn_client.c found it: the socket's peer, a PROXY
     * header's, or a trusted proxy's forwarded headers'. */
    const char *addr = r->remote_addr ? r->remote_addr : "";
    const char *port = r->remote_port ? r->remote_port : "";
    if (!m || tmpl_put(t, env, TMPL_METHOD, m) < 0 ||
        tmpl_put(t, env, TMPL_PROTOCOL, r->minor == 0 ? proto10 : proto11) < 0 ||
        add_url(t, env, r) < 0 || add_headers(t, env, r) < 0 ||
        (addr[0] && tmpl_put_latin1(t, env, TMPL_ADDR, addr, strlen(addr)) < 0) ||
        tmpl_end(t, env) < 0 || (port[0] && put_port(env, port, strlen(port)) < 0))
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
