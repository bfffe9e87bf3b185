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
