/* Telling a service manager about ourselves: systemd's notification
 * protocol (a datagram to $NOTIFY_SOCKET, as sd_notify(3) documents) and
 * the pid file.  Both are no-ops when not configured. */
#ifndef HUGD_NOTIFY_H
#define HUGD_NOTIFY_H

/* Read NOTIFY_SOCKET and remove it from the environment (workers and the
 * application must not talk to systemd in our name). */
void notify_init(void);
/* Put it back, for a program we execute that takes over (USR2, HUP). */
void notify_export(void);
/* The socket notify_init took away, or NULL: for an environment built for
 * execve instead of put back with notify_export. */
const char *notify_socket(void);
/* Send "READY=1", "RELOADING=1", "STOPPING=1", "MAINPID=n"...; returns 0
 * or -1 with errno. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write our pid to path atomically (a temp file renamed over it). */
int pidfile_write(const char *path);
/* Remove path if it still holds our pid: after an upgrade it holds the new
 * master's, which must stay. */
void pidfile_remove(const char *path);

#endif
