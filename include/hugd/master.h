/* The master process: owns the listening sockets, accepts every connection
 * and hands it to the least-busy worker; forks, reaps, respawns and kills
 * workers; acts on signals.  After the first fork it runs no Python. */
#ifndef HUGD_MASTER_H
#define HUGD_MASTER_H

#include "hugd/config.h"
#include "hugd/sock.h"

/* Serve until stopped.  Returns the process exit code. */
int master_run(struct hugd_config *cfg, struct listener *ls, int nls);

#endif
