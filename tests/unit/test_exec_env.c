/* exec_env (src/master_exec.c): the environment a reload or an upgrade
 * executes with is the master's, with HUGD_INHERIT and NOTIFY_SOCKET put
 * in place of any it had, each once, and the master's own environment is
 * left as it was. */
#include <stdlib.h>
#include <string.h>

#include "../../src/master_int.h"
#include "check.h"
#include "hugd/notify.h"

static int count(char **envp, const char *entry)
{
    int n = 0;
    for (char **e = envp; *e; e++)
        n += strcmp(*e, entry) == 0;
    return n;
}

static int count_named(char **envp, const char *name)
{
    size_t len = strlen(name);
    int n = 0;
    for (char **e = envp; *e; e++)
        n += strncmp(*e, name, len) == 0 && (*e)[len] == '=';
    return n;
}

int main(void)
{
    clearenv();
    setenv("PATH", "/usr/bin:/bin", 1);
    setenv("HUGD_INHERIT", "stale", 1); /* one the master never unset */
    setenv("NOTIFY_SOCKET", "@hugd-test", 1);
    setenv("LANG", "C.UTF-8", 1);
    notify_init(); /* takes NOTIFY_SOCKET out, as at start-up */
    CHECK_INT(getenv("NOTIFY_SOCKET") == NULL, 1);

    char **envp = exec_env("V 1\nT 2 2\n");
    CHECK_INT(envp != NULL, 1);
    CHECK_INT(count(envp, "PATH=/usr/bin:/bin"), 1);
    CHECK_INT(count(envp, "LANG=C.UTF-8"), 1);
    CHECK_INT(count(envp, "HUGD_INHERIT=V 1\nT 2 2\n"), 1);
    CHECK_INT(count_named(envp, "HUGD_INHERIT"), 1);
    CHECK_INT(count(envp, "NOTIFY_SOCKET=@hugd-test"), 1);
    CHECK_INT(count_named(envp, "NOTIFY_SOCKET"), 1);
    int n = 0;
    while (envp[n])
        n++;
    CHECK_INT(n, 4);
    free(envp);
    /* Ours is untouched. */
    CHECK_MEM(getenv("HUGD_INHERIT"), strlen("stale"), "stale");
    CHECK_INT(getenv("NOTIFY_SOCKET") == NULL, 1);

    /* The probe's kind: no inherit value; still the notify socket. */
    envp = exec_env(NULL);
    CHECK_INT(count_named(envp, "HUGD_INHERIT"), 0);
    CHECK_INT(count(envp, "NOTIFY_SOCKET=@hugd-test"), 1);
    free(envp);
    return CHECK_DONE();
}
