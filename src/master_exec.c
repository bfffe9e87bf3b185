/* The environment for executing hugd again (HUP in place, USR2 after a
 * fork), built before any fork.
 *
 * The master may run application threads (an app that started some at
 * import).  The child of a fork has only the forking thread, and any lock
 * another thread held at that moment (malloc's, stdio's, the log's) stays
 * held for ever: so between fork and exec the child does nothing that may
 * allocate or format (no setenv, no log call), only system calls.  Its
 * environment is a ready array handed to execve, which leaves the master's
 * own environment untouched: nothing to undo when the exec fails. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/notify.h"
#include "master_int.h"

static int named(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Append "name=value" at *p, return where it starts. */
static char *put(char **p, const char *name, const char *value)
{
    char *start = *p;
    size_t n = strlen(name), v = strlen(value);
    memcpy(*p, name, n);
    (*p)[n] = '=';
    memcpy(*p + n + 1, value, v + 1);
    *p += n + v + 2;
    return start;
}

char **exec_env(const char *inherit)
{
    const char *notify = notify_socket();
    size_t n = 0, bytes = 0;
    for (char **e = environ; *e; e++)
        n++;
    if (inherit)
        bytes += sizeof("HUGD_INHERIT=") + strlen(inherit);
    if (notify)
        bytes += sizeof("NOTIFY_SOCKET=") + strlen(notify);
    /* One block: the array, then the strings that are ours; the others
     * are environ's own, which the child shares. */
    char **envp = malloc((n + 3) * sizeof(char *) + bytes);
    if (!envp)
        return NULL;
    char *p = (char *)(envp + n + 3);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (!named(*e, "HUGD_INHERIT") && !named(*e, "NOTIFY_SOCKET"))
            envp[k++] = *e;
    if (inherit)
        envp[k++] = put(&p, "HUGD_INHERIT", inherit);
    if (notify)
        envp[k++] = put(&p, "NOTIFY_SOCKET", notify);
    envp[k] = NULL;
    return envp;
}

void exec_failed_note(const char *line)
{
    /* write(2) only: the child of a fork may not format a log line. */
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w; /* the exit status says it all the same */
}
