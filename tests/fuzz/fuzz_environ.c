/* libFuzzer harness for the request parser followed by the application
 * call: client bytes -> src/http.c -> the PEP 3333 environ
 * (src/wsgi_environ.c) -> a WSGI application run in an embedded
 * interpreter -> the response (src/wsgi*.c).
 *
 * The application (APP below, Python) checks what PEP 3333 promises of
 * every environ it gets: keys are str; every CGI value is a str of
 * latin-1 code points; an HTTP_ key is a field name (a token) in upper
 * case with "-" made "_" (hugd drops fields whose name has a "_"); no
 * HTTP_CONTENT_TYPE or HTTP_CONTENT_LENGTH; REQUEST_METHOD is set,
 * SERVER_PROTOCOL is HTTP/1.0 or HTTP/1.1, PATH_INFO is empty or starts
 * with "/" (or is "*" for OPTIONS *, as gunicorn and uWSGI pass it);
 * wsgi.input reads back exactly CONTENT_LENGTH bytes, and the same bytes
 * the parser kept for the body.  It echoes the body; the
 * harness checks that the application was called, answered 200 (an
 * assertion inside it is a 500 from wsgi.c, with the traceback on
 * stderr), and that the body it sent is the parser's.
 *
 * The last byte of the input picks the limits profile (ctl & 1: the
 * defaults, or a tiny one where bodies go to a temporary file), as in
 * fuzz_http.c; the bytes are parsed in one read.  Seeds: corpus/ (the
 * parser's) and environ_corpus/.  See tests/fuzz/README.md. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/http.h"
#include "hugd/sock.h"
#include "hugd/wsgi.h"

static const char APP[] =
    "import re\n"
    "_hdr = re.compile(r\"HTTP_[A-Z0-9!#$%&'*+.^_`|~]+\\Z\")\n"
    "def app(env, start_response):\n"
    "    for k, v in env.items():\n"
    "        assert type(k) is str, k\n"
    "        if not k.startswith('wsgi.'):\n"
    "            assert type(v) is str, (k, v)\n"
    "            v.encode('latin-1')\n"
    "        if k.startswith('HTTP_'):\n"
    "            assert _hdr.match(k), k\n"
    "    assert env['REQUEST_METHOD']\n"
    "    assert env['SERVER_PROTOCOL'] in ('HTTP/1.0', 'HTTP/1.1'), env['SERVER_PROTOCOL']\n"
    "    assert 'HTTP_CONTENT_LENGTH' not in env and 'HTTP_CONTENT_TYPE' not in env\n"
    "    p = env['PATH_INFO']\n"
    "    assert p == '' or p.startswith('/') or (p == '*' and env['REQUEST_METHOD'] == 'OPTIONS'), "
    "p\n"
    "    assert type(env['QUERY_STRING']) is str\n"
    "    body = env['wsgi.input'].read()\n"
    "    assert type(body) is bytes\n"
    "    n = env.get('CONTENT_LENGTH')\n"
    "    if n:\n"
    "        assert len(body) == int(n), (len(body), n)\n"
    "    else:\n"
    "        assert body == b'', body[:40]\n"
    "    start_response('200 OK', [('Content-Type', 'application/octet-stream')])\n"
    "    return [body]\n";

struct reader {
    llhttp_t parser;
    struct http_request req;
    struct buf in;
};

static _Atomic int not_stopping;

/* write() is not used by APP: nothing waits for a socket. */
static int no_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

/* What the parser kept of the body: in memory, or in its spool file. */
static int body_of(const struct http_request *r, struct buf *out)
{
    if (r->body_fd < 0) {
        buf_append(out, r->body.p, r->body.len);
        return 0;
    }
    char chunk[4096];
    for (off_t off = 0;;) {
        ssize_t n = pread(r->body_fd, chunk, sizeof(chunk), off);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        buf_append(out, chunk, (size_t)n);
        off += n;
    }
}

static void respond(struct http_request *r)
{
    struct http_response rp;
    memset(&rp, 0, sizeof(rp));
    rp.flush = no_flush;
    rp.stopping = &not_stopping;
    rp.now = 1000000000.0;
    rp.keepalive = r->keepalive;
    rp.file_fd = -1;
    rp.content_length = -1;
    r->listener = 0;
    r->remote_addr = "192.0.2.1";
    r->remote_port = "4321";
    wsgi_respond(r, &rp);
    if (rp.status != 200) {
        fprintf(stderr, "the application answered %d: an environ broke PEP 3333\n", rp.status);
        abort();
    }
    /* The body went out as one piece (a list of one bytes object): the
     * last body_size bytes of the output, or the tail. */
    struct buf want = {0};
    if (body_of(r, &want) < 0)
        abort();
    int ok = rp.finished;
    if (ok && r->method != HTTP_HEAD) { /* a HEAD response carries no body */
        if (rp.tail_obj)
            ok = rp.tail_len == want.len && memcmp(rp.tail, want.p, want.len) == 0;
        else
            ok = rp.out.len >= want.len &&
                 (want.len == 0 || memcmp(rp.out.p + rp.out.len - want.len, want.p, want.len) == 0);
    }
    if (!ok) {
        fprintf(stderr, "the body the application echoed is not the parser's (%zu bytes)\n",
                want.len);
        abort();
    }
    buf_free(&want);
    wsgi_finish(r, &rp);
    buf_free(&rp.out);
    buf_free(&rp.head);
    buf_free(&rp.status_line);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!getenv("TMPDIR"))
        setenv("TMPDIR", "/tmp", 1);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "cannot start the interpreter: %s\n", st.err_msg ? st.err_msg : "?");
        abort();
    }
    PyObject *g = PyDict_New();
    PyObject *r = g ? PyRun_String(APP, Py_file_input, g, g) : NULL;
    PyObject *app = r ? PyDict_GetItemString(g, "app") : NULL; /* borrowed */
    static struct listener l = {
        .fd = -1, .family = AF_INET, .server_name = "fuzz", .server_port = "80"};
    if (!app || wsgi_setup(app, &l, 1) < 0) {
        PyErr_Print();
        abort();
    }
    Py_XDECREF(r);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const struct http_limits profiles[2] = {
        {8190, 100, 8190, 0, 1 << 20}, /* the defaults */
        {64, 8, 64, 128, 16},          /* tiny: bodies spooled to a file */
    };
    http_set_limits(&profiles[data[size - 1] & 1]);
    struct reader *c = calloc(1, sizeof(*c));
    http_reader_init(&c->parser, &c->req);
    c->req.remote_addr = "192.0.2.1";
    buf_append(&c->in, data, size);
    for (int n = 0; n < 64; n++) {
        enum http_feed_result res = http_feed(&c->parser, &c->in);
        if (res != FEED_REQUEST)
            break;
        respond(&c->req);
        http_next(&c->parser);
    }
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
    return 0;
}
