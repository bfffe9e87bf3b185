/* Internals shared by wsgi.c and wsgi_types.c. */
#ifndef HUGD_WSGI_INT_H
#define HUGD_WSGI_INT_H

#include "hugd/wsgi.h"

typedef struct {
    PyObject_HEAD vectorcallfunc vectorcall;
    /* NULL once the response is over: late calls fail cleanly. */
    struct http_request *req;
    struct http_response *rp;
} StartResponse;

typedef struct {
    PyObject_HEAD PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapper;

extern PyTypeObject StartResponse_Type;
extern PyTypeObject FileWrapper_Type;
extern PyTypeObject EmptyInput_Type;

int wsgi_types_ready(void);

/* wsgi_environ.c */
extern PyObject *wsgi_app;
/* A new environ for r (a new reference), or NULL with an exception set. */
PyObject *wsgi_build_environ(struct http_request *r);
PyObject *start_response_new(struct http_request *r, struct http_response *rp);

/* wsgi_template.c: the dict a listening socket's requests' environs are
 * copied from, holding the constants and the values its recent requests
 * repeated.  A slot is one key a request sets: the first few fixed, then
 * one for each common header name (tmpl_header_slot). */
enum {
    TMPL_METHOD,
    TMPL_PROTOCOL,
    TMPL_URI,
    TMPL_RAW_URI,
    TMPL_PATH,
    TMPL_QUERY,
    TMPL_ADDR,
    TMPL_HEADER0
};
struct tmpl_slot {
    PyObject *last;    /* its value in the last request that had it */
    PyObject *in_dict; /* its value in the template's dict, or NULL */
    uint64_t gen;      /* the request that last set it */
};
struct env_template {
    PyObject *dict;
    struct tmpl_slot *slots; /* tmpl_nslots() */
    uint64_t gen;            /* counts requests */
    int n_in_dict;           /* slots whose key the dict holds */
    int seen_in_dict;        /* of those, the ones this request set */
};
/* The slots' keys: request_keys for the fixed ones (TMPL_HEADER0 of them),
 * header_key's for the headers (content-type and content-length get the
 * CGI names given).  Once, before any template. */
int tmpl_keys_init(PyObject *const *request_keys, PyObject *(*header_key)(const char *, size_t),
                   PyObject *content_type, PyObject *content_length);
int tmpl_nslots(void);
PyObject *tmpl_key(int slot); /* borrowed */
/* The slot of a header name (any case), or -1 for a name not common. */
int tmpl_header_slot(const char *name, size_t n);
/* t takes base, a dict holding the constant keys. */
int tmpl_init(struct env_template *t, PyObject *base);
/* A new request: its environ, a copy of the template (new reference). */
PyObject *tmpl_begin(struct env_template *t);
/* The slot was set in this request already (a repeated header). */
int tmpl_seen(const struct env_template *t, int slot);
/* Sets the slot's key to v (borrowed) in env, and in the template when
 * the last request had the same value. */
int tmpl_put(struct env_template *t, PyObject *env, int slot, PyObject *v);
/* The same with p[0..n) as latin-1, reusing the last value's str. */
int tmpl_put_latin1(struct env_template *t, PyObject *env, int slot, const char *p, size_t n);
/* The request set all it had: removes from env what the template holds
 * and the request did not set. */
int tmpl_end(struct env_template *t, PyObject *env);

/* wsgi_body.c */
/* Status line and headers into the output, framing decided. */
void wsgi_send_headers(struct http_request *r, struct http_response *rp);
/* One body chunk into the output with the framing in force. */
void wsgi_append_body(struct http_response *rp, PyObject *bytes);
/* Write the output now, waiting for the socket (the write() callable). */
int wsgi_flush_blocking(struct http_response *rp);
/* The body is complete: its terminator, and the check of its length. */
void wsgi_end_body(struct http_response *rp);
/* Let go of the tail (the bytes object it lies in). */
void wsgi_drop_tail(struct http_response *rp);

#endif
