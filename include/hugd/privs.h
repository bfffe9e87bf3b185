/* Dropping privileges after the sockets are bound, before the application
 * is imported. */
#ifndef HUGD_PRIVS_H
#define HUGD_PRIVS_H

#include <stddef.h>

/* Switch to user/group (names or numbers; either may be NULL; a user alone
 * brings its own primary group and supplementary groups).  Stops with an
 * error if any step fails, and refuses to leave the process running as root
 * unless allow_root.  Returns 0 or -1 with a message in err. */
/* Before anything is bound: would privs_drop() refuse to leave the process
 * as root, or not know the user?  Returns 0 or -1 with a message in err. */
int privs_check(const char *user, int allow_root, char *err, size_t errlen);

int privs_drop(const char *user, const char *group, int allow_root, char *err, size_t errlen);

#endif
