/* Listening sockets: TCP over IPv4/IPv6 and Unix sockets. */
#include "hugd/sock.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *spec, const char *what, int e)
{
    if (e)
        snprintf(err, errlen, "%s: %s: %s", spec, what, strerror(e));
    else
        snprintf(err, errlen, "%s: %s", spec, what);
    return -1;
}

/* ---- who holds an address (best effort, for the error message) ------- */

/* The inode of a socket in LISTEN state on port whose local address is
 * want_hex (as /proc/net/tcp{,6} print it) or the wildcard; 0 if none. */
static unsigned long tcp_inode(const char *table, unsigned port, const char *want_hex)
{
    FILE *f = fopen(table, "r");
    if (!f)
        return 0;
    char line[512], addr[64];
    unsigned lport, state;
    unsigned long inode, found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*d %*d %lu", addr, &lport,
                   &state, &inode) != 4)
            continue; /* the heading */
        if (lport == port && state == 0x0A /* TCP_LISTEN */ &&
            (strspn(addr, "0") == strlen(addr) || strcasecmp(addr, want_hex) == 0))
            found = inode;
    }
    fclose(f);
    return found;
}

static unsigned long unix_inode(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "r");
    if (!f)
        return 0;
    char line[4096];
    unsigned long inode, found = 0;
    int at;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %n", &inode, &at) == 1 &&
            strcmp(line + at, path) == 0)
            found = inode;
    }
    fclose(f);
    return found;
}

/* The pid with a descriptor on socket inode, or 0 (not found, or not ours
 * to look at). */
static long socket_owner(unsigned long inode)
{
    char want[64], path[600], link[64];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    long pid = 0;
    for (struct dirent *d; !pid && (d = readdir(proc));) {
        if (d->d_name[0] < '1' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/fd", d->d_name);
        DIR *fds = opendir(path);
        if (!fds)
            continue;
        for (struct dirent *fd; (fd = readdir(fds));) {
            if (fd->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "/proc/%s/fd/%s", d->d_name, fd->d_name);
            ssize_t n = readlink(path, link, sizeof(link) - 1);
            if (n > 0 && (size_t)n == strlen(want) && memcmp(link, want, (size_t)n) == 0) {
                pid = atol(d->d_name);
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return pid;
}

/* " (held by pid 123, nginx)", or "" when it cannot be told. */
static void describe_holder(unsigned long inode, char *out, size_t len)
{
    out[0] = '\0';
    if (!inode)
        return;
    long pid = socket_owner(inode);
    if (!pid) {
        snprintf(out, len, " (held by a process hugd cannot see)");
        return;
    }
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    snprintf(out, len, " (held by pid %ld%s%s)", pid, comm[0] ? ", " : "", comm);
}

static void tcp_holder(const struct sockaddr *sa, char *out, size_t len)
{
    char hex[40];
    unsigned port;
    const char *table;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        /* The kernel prints the address's 32-bit words in host order. */
        snprintf(hex, sizeof(hex), "%08X", (unsigned)in->sin_addr.s_addr);
        port = ntohs(in->sin_port);
        table = "/proc/net/tcp";
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uint32_t w[4];
        memcpy(w, &in6->sin6_addr, sizeof(w));
        snprintf(hex, sizeof(hex), "%08X%08X%08X%08X", (unsigned)w[0], (unsigned)w[1],
                 (unsigned)w[2], (unsigned)w[3]);
        port = ntohs(in6->sin6_port);
        table = "/proc/net/tcp6";
    }
    unsigned long inode = tcp_inode(table, port, hex);
    /* An IPv6 wildcard socket that is not v6-only holds the IPv4 port too. */
    if (!inode && sa->sa_family == AF_INET)
        inode = tcp_inode("/proc/net/tcp6", port, "");
    describe_holder(inode, out, len);
}

static int listen_unix(const char *spec, const char *path, int backlog, struct listener *out,
                       char *err, size_t errlen)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) == 0 || strlen(path) >= sizeof(sun.sun_path))
        return fail(err, errlen, spec, "socket path empty or too long", 0);
    strcpy(sun.sun_path, path);

    /* A socket file left by a previous run that nobody listens on any more
     * is removed; anything else at that path is an error. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail(err, errlen, spec, "exists and is not a socket", 0);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int live = connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0;
            close(probe);
            if (live) {
                char who[128], what[200];
                describe_holder(unix_inode(path), who, sizeof(who));
                snprintf(what, sizeof(what), "another server is listening there%s", who);
                return fail(err, errlen, spec, what, 0);
            }
        }
        unlink(path);
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, spec, "socket", errno);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, spec, "bind", e);
    }
    if (listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, spec, "listen", e);
    }
    out->fd = fd;
    out->family = AF_UNIX;
    out->unix_path = strdup(path);
    snprintf(out->server_name, sizeof(out->server_name), "localhost");
    snprintf(out->server_port, sizeof(out->server_port), "0");
    return 0;
}

int sock_listen(const char *spec, int backlog, struct listener *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->bind = strdup(spec);
    if (strncmp(spec, "unix:", 5) == 0)
        return listen_unix(spec, spec + 5, backlog, out, err, errlen);

    char host[256];
    const char *port;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
            return fail(err, errlen, spec, "expected [v6addr]:port", 0);
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host))
            return fail(err, errlen, spec, "expected host:port", 0);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(res);
        return fail(err, errlen, spec, "socket", e);
    }
    int one = 1;
    /* SO_REUSEADDR: a restart must not wait out TIME_WAIT.  V6ONLY: "[::]"
     * means IPv6 only, a separate IPv4 bind can sit beside it. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE) {
            char who[128];
            tcp_holder(res->ai_addr, who, sizeof(who));
            freeaddrinfo(res);
            snprintf(err, errlen, "%s: address already in use%s", spec, who);
            return -1;
        }
        freeaddrinfo(res);
        return fail(err, errlen, spec, "bind", e);
    }
    out->fd = fd;
    out->family = res->ai_family;
    freeaddrinfo(res);

    /* The port actually bound (port 0 picks one) goes into SERVER_PORT. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        sock_peer_text((struct sockaddr *)&ss, addr, sizeof(addr), out->server_port,
                       sizeof(out->server_port));
    snprintf(out->server_name, sizeof(out->server_name), "%s", host[0] ? host : "0.0.0.0");
    return 0;
}

int sock_adopt(int fd, const char *bind, struct listener *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->bind = strdup(bind);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int listening = 0;
    socklen_t ll = sizeof(listening);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 || !listening)
        return fail(err, errlen, bind, "inherited descriptor is not a listening socket", 0);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return fail(err, errlen, bind, "fcntl", errno);
    out->fd = fd;
    out->family = ss.ss_family;
    out->inherited = 1;
    char addr[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
        if (sl > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0])
            out->unix_path = strdup(sun->sun_path);
        snprintf(out->server_name, sizeof(out->server_name), "localhost");
        snprintf(out->server_port, sizeof(out->server_port), "0");
    } else {
        sock_peer_text((struct sockaddr *)&ss, addr, sizeof(addr), out->server_port,
                       sizeof(out->server_port));
        snprintf(out->server_name, sizeof(out->server_name), "%s", addr);
    }
    return 0;
}

void sock_close(struct listener *l, int unlink_path)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (unlink_path && l->unix_path)
        unlink(l->unix_path);
}

void sock_peer_text(const struct sockaddr *sa, char *addr, size_t alen, char *port, size_t plen)
{
    addr[0] = port[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)alen);
        snprintf(port, plen, "%u", ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)alen);
        snprintf(port, plen, "%u", ntohs(in6->sin6_port));
    }
}
