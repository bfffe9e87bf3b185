/* What a master hands to the program it executes: listening sockets (USR2
 * and HUP), and for an in-place reload (HUP) also the scoreboard, the
 * running workers and the connections waiting in its queue.  It travels in
 * the environment variable HUGD_INHERIT, one item per line:
 *
 *   V 1                            the format's version (first line)
 *   L <fd> <systemd 0|1> <bind>    a listening socket (bind %-encoded)
 *   S <fd>                         the scoreboard (memfd)
 *   W <slot> <pid> <channel fd> <retiring 0|1>
 *   Q <fd> <listener index> [hex]  an accepted connection not yet served,
 *                                  with the bytes already read from it
 *   U <fd>                         the channel to the old master (USR2)
 *   T <target> <workers setting>   worker count (TTIN/TTOU survive a HUP)
 *   P <min> <max> <min setting> <max setting>
 *                                  scaling's bounds, the same way (written
 *                                  only while scaling is on)
 *
 * systemd socket activation (LISTEN_FDS/LISTEN_PID) arrives the same way:
 * as L items with the systemd flag. */
#ifndef HUGD_INHERIT_H
#define HUGD_INHERIT_H

#include <sys/types.h>

#include "hugd/config.h"

struct inherit_listener {
    int fd;
    int systemd;
    char *bind;
};

struct inherit_worker {
    int slot;
    pid_t pid;
    int ch;
    int retiring;
};

struct inherit_conn {
    int fd;
    int listener;
    char *data; /* bytes already read from it (hex in the Q item), or NULL */
    unsigned datalen;
};

struct inherited {
    struct inherit_listener ls[HUGD_MAX_BINDS];
    int nls;
    int sb_fd;
    struct inherit_worker *w;
    int nw;
    struct inherit_conn *q;
    int nq;
    int upgrade_fd;
    int target, workers_setting;                            /* 0 when not inherited */
    int min_workers, max_workers, min_setting, max_setting; /* the same */
};

/* Read HUGD_INHERIT and LISTEN_FDS, then remove them from the environment
 * so that nothing started later sees them.  Returns 0, or -1 with a message
 * on stderr for a malformed value. */
int inherit_from_env(struct inherited *in);

/* The HUGD_INHERIT value for `in` (malloc'd), and clear close-on-exec on
 * every descriptor it names.  NULL on allocation failure. */
char *inherit_encode(const struct inherited *in);
/* The two halves of inherit_encode, for a fork and exec: the value is
 * formatted (malloc'd) before the fork, and the child, which may not
 * allocate (another thread may have held the allocator's lock at the
 * fork), only clears close-on-exec (fcntl alone: async-signal-safe). */
char *inherit_format(const struct inherited *in);
void inherit_keep_on_exec(const struct inherited *in);

/* Set close-on-exec again on every descriptor in, after an exec failed. */
void inherit_cloexec(const struct inherited *in);

void inherit_free(struct inherited *in);

#endif
