/* PEP 3333: the environ, start_response, write(), wsgi.file_wrapper, and
 * turning what the application returns into response bytes.  Every
 * exception ends up in one place: a 500 (or, once headers are out, a
 * closed connection) with the traceback in the error log. */
#ifndef HUGD_WSGI_H
#define HUGD_WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hugd/http.h"
#include "hugd/sock.h"

/* Build the constant parts (interned keys, one base environ per listening
 * socket) in the master, before fork, so the workers share them.  Returns 0
 * or -1 with a Python error printed. */
int wsgi_setup(PyObject *app, const struct listener *ls, int nls);

/* wsgi never sees a socket, a loop or a worker: it reads the request and
 * answers into the response (include/hugd/http.h), whose out buffer,
 * tail and file the connection writes; write() reaches the socket only
 * through rp->flush. */

/* Call the application for r.  Afterwards the status line and headers
 * (or an error response) are in rp->out, unless the body is still to come
 * (then they follow with its first chunk). */
void wsgi_respond(struct http_request *r, struct http_response *rp);

/* Produce more of the body into rp->out (or its tail or file).  Sets
 * rp->finished when the body is complete.  Returns 0, or -1 when the
 * response cannot be completed (the connection must close). */
int wsgi_produce(struct http_request *r, struct http_response *rp);

/* The response is over (all out, or the connection is closing): close the
 * application's iterable (PEP 3333: always, also when the client went
 * away) and drop every reference, the tail's too.  Safe to call twice. */
void wsgi_finish(struct http_request *r, struct http_response *rp);

#endif
