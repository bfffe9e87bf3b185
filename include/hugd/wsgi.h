/* PEP 3333: the environ, start_response, write(), wsgi.file_wrapper, and
 * turning what the application returns into response bytes.  Every
 * exception ends up in one place: a 500 (or, once headers are out, a
 * closed connection) with the traceback in the error log. */
#ifndef HUGD_WSGI_H
#define HUGD_WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hugd/conn.h"
#include "hugd/sock.h"

/* Build the constant parts (interned keys, one base environ per listening
 * socket) in the master, before fork, so the workers share them.  Returns 0
 * or -1 with a Python error printed. */
int wsgi_setup(PyObject *app, const struct listener *ls, int nls);

/* Call the application for c->req.  Afterwards the status line and headers
 * (or an error response) are in c->out, unless the body is still to come
 * (then they follow with its first chunk). */
void wsgi_respond(struct conn *c);

/* Produce more of the body into c->out (or c->resp.pending / file).  Sets
 * c->resp.finished when the body is complete.  Returns 0, or -1 when the
 * response cannot be completed (the connection must close). */
int wsgi_produce(struct conn *c);

/* Close the application's iterable (PEP 3333: always, also when the client
 * went away) and drop every reference.  Safe to call twice. */
void wsgi_finish(struct conn *c);

/* Drop a pending bytes object (the connection is closing). */
void wsgi_drop_pending(struct conn *c);

#endif
