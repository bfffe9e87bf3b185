/* Listening sockets.  Errors go into the caller's buffer; nothing here logs
 * or exits, the caller decides. */
#ifndef HUGD_SOCK_H
#define HUGD_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

struct listener {
    int fd;
    int family;            /* AF_INET, AF_INET6 or AF_UNIX */
    char *bind;            /* as configured */
    char *unix_path;       /* AF_UNIX only: unlinked at exit */
    char server_name[256]; /* SERVER_NAME for requests arriving here */
    char server_port[8];   /* SERVER_PORT */
    int inherited;         /* taken over: another master may still use its path */
};

/* Parse "host:port", "[v6]:port" or "unix:PATH" and bind + listen.  The
 * socket is non-blocking and close-on-exec.  Returns 0 or -1. */
int sock_listen(const char *bind, int backlog, struct listener *out, char *err, size_t errlen);

/* Take over a socket that is already listening (systemd, or the master
 * before an exec).  Returns 0 or -1. */
int sock_adopt(int fd, const char *bind, struct listener *out, char *err, size_t errlen);

void sock_close(struct listener *l, int unlink_path);

/* Render a peer address as text: addr gets the numeric host, port the port
 * (both empty for AF_UNIX). */
void sock_peer_text(const struct sockaddr *sa, char *addr, size_t alen, char *port, size_t plen);

#endif
