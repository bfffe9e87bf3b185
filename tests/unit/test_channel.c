/* Message framing on a real channel (src/channel.c): what is sent arrives
 * whole, with its descriptor; what is not a well-formed message is dropped,
 * descriptor and all. */
#include "hugd/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"

static char sent[CHAN_MAX_DATA + 16], got[CHAN_MAX_DATA + 16];

static struct chan_msg conn_msg(uint32_t datalen)
{
    struct chan_msg m;
    memset(&m, 0, sizeof(m));
    m.type = CHAN_CONN;
    m.listener = 3;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&m.peer;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(54321);
    for (int i = 0; i < 16; i++)
        a->sin6_addr.s6_addr[i] = (uint8_t)(0xf0 + i);
    m.peerlen = sizeof(*a);
    m.datalen = datalen;
    return m;
}

/* fd is open and refers to the other end of `peer`'s socketpair: bytes
 * written to it come out of peer. */
static int works(int fd, int peer)
{
    if (fd < 0 || write(fd, "ping", 4) != 4)
        return 0;
    char b[8];
    return read(peer, b, sizeof(b)) == 4 && memcmp(b, "ping", 4) == 0;
}

/* Every reference to the end we sent is gone: the other end reads EOF. */
static int closed_everywhere(int peer)
{
    char b[8];
    return recv(peer, b, sizeof(b), MSG_DONTWAIT) == 0;
}

static int conn_pair(int sp[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
}

/* A CHAN_CONN with n bytes of data arrives with the same header, the same
 * bytes, and a working close-on-exec descriptor. */
static void conn_round_trip(int ch[2], uint32_t n)
{
    int sp[2];
    CHECK_INT(conn_pair(sp), 0);
    struct chan_msg m = conn_msg(n), r;
    for (uint32_t i = 0; i < n; i++)
        sent[i] = (char)(i * 7 + n);
    CHECK_INT(channel_send_conn(ch[0], sp[0], &m, n ? sent : NULL), 0);
    close(sp[0]); /* the message holds the only reference now */
    memset(&r, 0xa5, sizeof(r));
    memset(got, 0x5a, sizeof(got));
    int fd = -2;
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), 1);
    CHECK_INT(memcmp(&r, &m, sizeof(m)), 0);
    CHECK_INT(r.datalen, n);
    CHECK_INT(memcmp(got, sent, n), 0);
    CHECK_INT(got[n], 0x5a); /* nothing written past the data */
    CHECK_INT(works(fd, sp[1]), 1);
    CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    close(fd);
    CHECK_INT(closed_everywhere(sp[1]), 1);
    close(sp[1]);
}

/* Send raw bytes (a header and data that may not agree) with the
 * descriptor, as a broken or hostile sender could. */
static int send_raw(int ch, int fd, const void *p, size_t n, const void *p2, size_t n2)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov[2] = {{(void *)p, n}, {(void *)p2, n2}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n2 ? 2 : 1};
    if (fd >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    return sendmsg(ch, &mh, 0) < 0 ? -1 : 0;
}

/* The message is dropped: type 0, no descriptor, and the one it carried is
 * closed.  data may be NULL (a reader with no room for data). */
static void dropped(int ch[2], const char *what, const void *p, size_t n, const void *p2, size_t n2,
                    void *data)
{
    int sp[2];
    CHECK_INT(conn_pair(sp), 0);
    if (send_raw(ch[0], sp[0], p, n, p2, n2) < 0) {
        fprintf(stderr, "%s: sendmsg: %s\n", what, strerror(errno));
        check_failed++;
    }
    close(sp[0]);
    struct chan_msg r;
    int fd = -2;
    int rc = channel_recv(ch[1], &r, &fd, data);
    if (rc != 1 || r.type != 0 || fd != -1 || !closed_everywhere(sp[1])) {
        fprintf(stderr, "%s: not dropped (rc %d, type %d, fd %d)\n", what, rc, r.type, fd);
        check_failed++;
        if (fd >= 0)
            close(fd);
    } else {
        check_passed++;
    }
    close(sp[1]);
}

int main(void)
{
    int ch[2];
    CHECK_INT(channel_pair(ch), 0);
    CHECK_INT(fcntl(ch[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_INT(fcntl(ch[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    /* Nothing there yet. */
    struct chan_msg r;
    int fd = -2;
    errno = 0;
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), -1);
    CHECK_INT(errno, EAGAIN);

    /* Connections, with none, one and the most bytes of data. */
    conn_round_trip(ch, 0);
    conn_round_trip(ch, 1);
    conn_round_trip(ch, 1000);
    conn_round_trip(ch, CHAN_MAX_DATA);

    /* Both directions work the same. */
    int rev[2] = {ch[1], ch[0]};
    conn_round_trip(rev, 17);

    /* Type-only messages: no descriptor, no data, whatever was in msg. */
    CHECK_INT(channel_send_type(ch[1], CHAN_FREE), 0);
    CHECK_INT(channel_send_type(ch[1], CHAN_RETIRE), 0);
    memset(&r, 0xa5, sizeof(r));
    fd = -2;
    CHECK_INT(channel_recv(ch[0], &r, &fd, got), 1);
    CHECK_INT(r.type, CHAN_FREE);
    CHECK_INT(fd, -1);
    CHECK_INT(r.datalen, 0);
    CHECK_INT(channel_recv(ch[0], &r, &fd, NULL), 1); /* a reader without a data buffer */
    CHECK_INT(r.type, CHAN_RETIRE);
    CHECK_INT(fd, -1);
    CHECK_INT(channel_recv(ch[0], &r, &fd, got), -1);
    CHECK_INT(errno, EAGAIN);

    /* A whole CHAN_CONN header without a descriptor: fd is -1. */
    struct chan_msg m = conn_msg(0);
    CHECK_INT(send_raw(ch[0], -1, &m, sizeof(m), NULL, 0), 0);
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), 1);
    CHECK_INT(r.type, CHAN_CONN);
    CHECK_INT(fd, -1);

    /* Malformed messages are dropped with their descriptor. */
    uint16_t type = CHAN_CONN;
    dropped(ch, "2 bytes", &type, sizeof(type), NULL, 0, got);
    m = conn_msg(0);
    dropped(ch, "a CHAN_CONN cut inside its header", &m, 12, NULL, 0, got);
    dropped(ch, "a CHAN_CONN one byte short of its header", &m, sizeof(m) - 1, NULL, 0, got);
    m = conn_msg(10);
    dropped(ch, "datalen 10, 5 bytes follow", &m, sizeof(m), sent, 5, got);
    dropped(ch, "datalen 10, none follow", &m, sizeof(m), NULL, 0, got);
    dropped(ch, "datalen 10, 11 bytes follow", &m, sizeof(m), sent, 11, got);
    dropped(ch, "datalen 10, a reader without room", &m, sizeof(m), sent, 10, NULL);
    m = conn_msg(0);
    dropped(ch, "datalen 0, 5 bytes follow", &m, sizeof(m), sent, 5, got);
    m = conn_msg(CHAN_MAX_DATA + 1);
    dropped(ch, "more than CHAN_MAX_DATA", &m, sizeof(m), sent, CHAN_MAX_DATA + 1, got);
    /* More bytes than fit, claiming just what fits: cut short, not whole. */
    m = conn_msg(CHAN_MAX_DATA);
    dropped(ch, "CHAN_MAX_DATA claimed, more sent", &m, sizeof(m), sent, CHAN_MAX_DATA + 8, got);

    /* After all that the channel still frames correctly. */
    conn_round_trip(ch, 3);
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), -1);
    CHECK_INT(errno, EAGAIN);

    /* The other side gone: end of file, after what it sent before. */
    CHECK_INT(channel_send_type(ch[0], CHAN_FREE), 0);
    close(ch[0]);
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), 1);
    CHECK_INT(r.type, CHAN_FREE);
    CHECK_INT(channel_recv(ch[1], &r, &fd, got), 0);
    CHECK_INT(fd, -1);
    close(ch[1]);

    /* Sending into a channel whose reader is gone fails, without SIGPIPE. */
    CHECK_INT(channel_pair(ch), 0);
    close(ch[1]);
    int sp[2];
    CHECK_INT(conn_pair(sp), 0);
    m = conn_msg(0);
    CHECK_INT(channel_send_conn(ch[0], sp[0], &m, NULL), -1);
    CHECK_INT(errno, EPIPE);
    CHECK_INT(channel_send_type(ch[0], CHAN_FREE), -1);
    close(ch[0]);
    close(sp[0]);
    close(sp[1]);
    return CHECK_DONE();
}
