/* The master process: owns the listening sockets, accepts every connection
 * and hands it to the least-busy worker; forks, reaps, respawns and kills
 * workers; acts on signals; reloads (HUP) and upgrades (USR2) by executing
 * itself with the sockets inherited.  After the first fork it runs no
 * Python. */
#ifndef HUGD_MASTER_H
#define HUGD_MASTER_H

#include "hugd/config.h"
#include "hugd/inherit.h"
#include "hugd/sock.h"

/* How this program was started: what HUP and USR2 execute again. */
struct launch {
    char *exe;   /* absolute path of the binary, resolved at start */
    char **argv; /* the original arguments */
    char *cwd;   /* the directory it was started in (before --chdir) */
};

/* Block (1) or unblock (0) the signals the master acts on; 2: block
 * exactly those and unblock every other, -1: unblock all (one atomic mask
 * change each, so that a pending signal is never let through between two
 * steps).  They stay blocked from start-up, and across the exec of a
 * reload, until the master loop has its handlers in place: a HUP or TERM
 * that comes early waits instead of killing the process.  1 is for just
 * before that exec: what came and was not acted on yet (a HUP waiting for
 * the reload to end among it) is made pending again, for the new image. */
void master_block_signals(int block);

/* The master's tables, its loop and its watchers, and what a reload
 * inherited (workers, connections).  0 or an exit code. */
int master_setup(struct hugd_config *cfg, struct listener *ls, int nls, struct inherited *inh,
                 const struct launch *launch);
/* Reload only, between master_setup and master_serve: serve with the
 * previous generation from a thread while the main thread imports the new
 * code.  0, or -1 (then connections wait for the import, as they would). */
int master_serve_while_importing(void);
/* Serve until stopped.  app_ok is 0 when a reload could not import the new
 * application: the inherited workers go on serving and none are started.
 * Returns the process exit code. */
int master_serve(int app_ok);

/* --reload: watch the application's sources (pyapp_source_files) and
 * reload_extra_files, and reload when one changes; -1 (errno) without
 * inotify. */
int watch_files(char **sources, const char *extra);

#endif
