/* Internals shared by wsgi.c and wsgi_types.c. */
#ifndef HUGD_WSGI_INT_H
#define HUGD_WSGI_INT_H

#include "hugd/wsgi.h"

typedef struct {
    PyObject_HEAD vectorcallfunc vectorcall;
    struct conn *c; /* NULL once the response is over: late calls fail cleanly */
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
/* A new environ for c's request (a new reference), or NULL with an
 * exception set. */
PyObject *wsgi_build_environ(struct conn *c);
PyObject *start_response_new(struct conn *c);

/* Status line and headers into the output, framing decided (wsgi.c). */
void wsgi_send_headers(struct conn *c);
/* One body chunk into the output with the framing in force (wsgi.c). */
void wsgi_append_body(struct conn *c, PyObject *bytes);
/* Write the output now, waiting for the socket (the write() callable). */
int wsgi_flush_blocking(struct conn *c);

#endif
