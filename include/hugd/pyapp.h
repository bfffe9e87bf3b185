/* The embedded interpreter: start-up, loading the application, and the
 * fork protocol.  Only the master calls these, before it starts serving. */
#ifndef HUGD_PYAPP_H
#define HUGD_PYAPP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hugd/config.h"

/* Choose the virtualenv (c->virtualenv, else $VIRTUAL_ENV, else none)
 * before pyapp_init and before any chdir (a relative path is taken from the
 * folder hugd started in).  Refuses one that has no pyvenv.cfg or was made
 * for another Python version than the one embedded.  Returns 0, or -1 with
 * one line in err. */
int pyapp_use_virtualenv(const struct hugd_config *c, char *err, size_t errlen);
/* Its absolute path, or NULL. */
const char *pyapp_virtualenv(void);

/* Start CPython (no Python signal handlers: hugd owns signals) and set up
 * sys.path.  Returns 0, or -1 after printing why. */
int pyapp_init(const struct hugd_config *c);

/* Import the target and return the WSGI callable (a new reference).  On
 * failure prints the traceback (or, for a target that names no callable,
 * one line) to stderr and returns NULL. */
PyObject *pyapp_load(const char *target);

/* gc.freeze(): objects that exist now are never touched by the collector,
 * so the pages holding them stay shared with the workers after fork. */
int pyapp_freeze(void);

/* --reload: the application's own source files (hugd.loader.source_files),
 * as a NULL-terminated array of malloc'd paths; NULL if Python could not
 * say (the error printed). */
char **pyapp_source_files(void);

/* In a new worker: dump the Python stack on SIGABRT (a hung worker is sent
 * SIGABRT before SIGKILL) and on crashes. */
int pyapp_worker_init(void);

/* `hugd NAME ARGS...` for a tool of the hugd package (hugd.NAME.main):
 * run it in this interpreter, isolated from the environment's Python
 * settings, and return its exit status. */
int pyapp_run_tool(const char *name, int argc, char **argv);

#endif
