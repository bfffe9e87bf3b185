/* Master <-> worker channel; see include/hugd/channel.h. */
#include "hugd/channel.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int channel_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

int channel_send_conn(int ch, int fd, const struct chan_msg *msg, const void *data)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov[2] = {{.iov_base = (void *)msg, .iov_len = sizeof(*msg)},
                           {.iov_base = (void *)data, .iov_len = msg->datalen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = msg->datalen && data ? 2 : 1};
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(ch, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int channel_recv(int ch, struct chan_msg *msg, int *fd, void *data)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov[2] = {{.iov_base = msg, .iov_len = sizeof(*msg)},
                           {.iov_base = data, .iov_len = data ? CHAN_MAX_DATA : 0}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = data ? 2 : 1};
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    *fd = -1;
    msg->datalen = 0;
    ssize_t n;
    do
        n = recvmsg(ch, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(cm), sizeof(int));
    }
    /* Too short to be ours (a connection needs its whole header), data that
     * did not fit (a reader without room for it, or more than CHAN_MAX_DATA:
     * the kernel cut it, MSG_TRUNC), or not the length the header says: drop
     * the message, and the connection it carried, which can't be served
     * without its data. */
    int bad = (size_t)n < sizeof(uint32_t) || (mh.msg_flags & MSG_TRUNC) ||
              (msg->type == CHAN_CONN && (size_t)n < sizeof(*msg)) ||
              ((size_t)n >= sizeof(*msg) && (size_t)n - sizeof(*msg) != msg->datalen);
    if (bad) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        msg->type = 0;
    }
    return 1;
}

int channel_drain(int ch, char *data,
                  int (*on_msg)(void *ctx, const struct chan_msg *msg, int fd, const char *data),
                  void *ctx)
{
    for (;;) {
        struct chan_msg m;
        int fd;
        int r = channel_recv(ch, &m, &fd, data);
        if (r < 0)
            return errno == EAGAIN ? CHAN_EMPTY : -1;
        if (r == 0)
            return CHAN_EOF;
        if (m.type == 0)
            continue; /* dropped by channel_recv, descriptor and all */
        if (on_msg(ctx, &m, fd, data) == CHAN_STOP)
            return CHAN_STOPPED;
    }
}

int channel_send_type(int ch, int type)
{
    struct chan_msg m;
    memset(&m, 0, sizeof(m));
    m.type = (uint16_t)type;
    ssize_t n = send(ch, &m, sizeof(uint32_t) * 2, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n < 0 ? -1 : 0;
}

int channel_send(int ch, const struct chan_msg *msg, const void *data)
{
    return channel_send2(ch, msg, data, data ? msg->datalen : 0, NULL, 0);
}

int channel_send2(int ch, const struct chan_msg *msg, const void *a, size_t alen, const void *b,
                  size_t blen)
{
    struct iovec iov[3] = {{.iov_base = (void *)msg, .iov_len = sizeof(*msg)}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 1};
    if (alen)
        iov[mh.msg_iovlen++] = (struct iovec){.iov_base = (void *)a, .iov_len = alen};
    if (blen)
        iov[mh.msg_iovlen++] = (struct iovec){.iov_base = (void *)b, .iov_len = blen};
    ssize_t n;
    do
        n = sendmsg(ch, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}
