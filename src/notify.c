/* systemd notification and the pid file; see include/hugd/notify.h. */
#include "hugd/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char *socket_path;

void notify_init(void)
{
    const char *p = getenv("NOTIFY_SOCKET");
    if (p && *p)
        socket_path = strdup(p);
    unsetenv("NOTIFY_SOCKET");
}

const char *notify_socket(void)
{
    return socket_path;
}

void notify_export(void)
{
    if (socket_path)
        setenv("NOTIFY_SOCKET", socket_path, 1);
}

int notify_send(const char *fmt, ...)
{
    if (!socket_path)
        return 0;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t n = strlen(socket_path);
    if (n >= sizeof(sun.sun_path) || (socket_path[0] != '/' && socket_path[0] != '@')) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sun.sun_path, socket_path, n);
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(msg)) {
        errno = EMSGSIZE;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t w = sendto(fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&sun,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int e = errno;
    close(fd);
    errno = e;
    return w < 0 ? -1 : 0;
}

int pidfile_write(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char line[32];
    int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    if (write(fd, line, (size_t)n) != n || close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    /* rename(2) is atomic: a reader sees the old pid or the new one, never
     * an empty or half-written file. */
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

void pidfile_remove(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int pid = 0;
    int ok = fscanf(f, "%d", &pid) == 1;
    fclose(f);
    if (ok && pid == (int)getpid())
        unlink(path);
}
