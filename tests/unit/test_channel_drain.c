/* channel_drain (src/channel.c) on a real channel: every waiting message
 * reaches the handler in order with its descriptor and data; a handler
 * that stops leaves the rest for the next drain; malformed messages are
 * skipped; EAGAIN, end of file and errors end it as the header says. */
#include "hugd/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static char data[CHAN_MAX_DATA];

struct seen {
    int n;
    int stop_after; /* CHAN_STOP after this many; 0: never */
    int type[8];
    int fd[8];
    char bytes[8][16];
    uint32_t len[8];
};

static int record(void *ctx, const struct chan_msg *msg, int fd, const char *d)
{
    struct seen *s = ctx;
    if (s->n < 8) {
        s->type[s->n] = msg->type;
        s->fd[s->n] = fd;
        s->len[s->n] = msg->datalen;
        if (d && msg->datalen && msg->datalen <= sizeof(s->bytes[0]))
            memcpy(s->bytes[s->n], d, msg->datalen);
    } else if (fd >= 0) {
        close(fd);
    }
    s->n++;
    return s->stop_after && s->n == s->stop_after ? CHAN_STOP : CHAN_NEXT;
}

static struct chan_msg msg_of(int type, uint32_t datalen)
{
    struct chan_msg m;
    memset(&m, 0, sizeof(m));
    m.type = (uint16_t)type;
    m.datalen = datalen;
    return m;
}

/* The descriptor the handler got is a working copy of sp[0]. */
static int works(int fd, int peer)
{
    char b[8];
    return fd >= 0 && write(fd, "ping", 4) == 4 && read(peer, b, sizeof(b)) == 4 &&
           memcmp(b, "ping", 4) == 0;
}

int main(void)
{
    int ch[2], sp[2];
    CHECK_INT(channel_pair(ch), 0);
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);

    /* An empty channel: nothing handled. */
    struct seen s = {0};
    CHECK_INT(channel_drain(ch[1], data, record, &s), CHAN_EMPTY);
    CHECK_INT(s.n, 0);

    /* Three messages, one with a descriptor and data, one malformed
     * between them (shorter than any header): all three, in order. */
    struct chan_msg m = msg_of(CHAN_FREE, 0);
    CHECK_INT(channel_send_type(ch[0], CHAN_FREE), 0);
    m = msg_of(CHAN_CONN, 5);
    CHECK_INT(channel_send_conn(ch[0], sp[0], &m, "hello"), 0);
    CHECK_INT(send(ch[0], "x", 1, MSG_DONTWAIT), 1);
    uint32_t ids[2] = {7, 9};
    m = msg_of(CHAN_CLOSED, sizeof(ids));
    CHECK_INT(channel_send(ch[0], &m, ids), 0);
    CHECK_INT(channel_drain(ch[1], data, record, &s), CHAN_EMPTY);
    CHECK_INT(s.n, 3);
    CHECK_INT(s.type[0], CHAN_FREE);
    CHECK_INT(s.fd[0], -1);
    CHECK_INT(s.type[1], CHAN_CONN);
    CHECK_INT(works(s.fd[1], sp[1]), 1);
    CHECK_MEM(s.bytes[1], s.len[1], "hello");
    CHECK_INT(s.type[2], CHAN_CLOSED);
    CHECK_INT(s.len[2], sizeof(ids));
    CHECK_INT(memcmp(s.bytes[2], ids, sizeof(ids)), 0);
    close(s.fd[1]);

    /* A handler that stops after two leaves the third in the channel; the
     * next drain starts with it. */
    for (int i = 0; i < 3; i++)
        CHECK_INT(channel_send_type(ch[0], i == 2 ? CHAN_RETIRE : CHAN_FREE), 0);
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    CHECK_INT(channel_drain(ch[1], data, record, &s), CHAN_STOPPED);
    CHECK_INT(s.n, 2);
    memset(&s, 0, sizeof(s));
    CHECK_INT(channel_drain(ch[1], data, record, &s), CHAN_EMPTY);
    CHECK_INT(s.n, 1);
    CHECK_INT(s.type[0], CHAN_RETIRE);

    /* A reader without a data buffer gets what has none. */
    memset(&s, 0, sizeof(s));
    CHECK_INT(channel_send_type(ch[0], CHAN_FREE), 0);
    CHECK_INT(channel_drain(ch[1], NULL, record, &s), CHAN_EMPTY);
    CHECK_INT(s.n, 1);

    /* The other side gone: what it sent first, then end of file. */
    memset(&s, 0, sizeof(s));
    CHECK_INT(channel_send_type(ch[0], CHAN_FREE), 0);
    close(ch[0]);
    CHECK_INT(channel_drain(ch[1], data, record, &s), CHAN_EOF);
    CHECK_INT(s.n, 1);
    close(ch[1]);

    /* Not a socket at all: an error, with errno, and nothing handled. */
    int p[2];
    CHECK_INT(pipe(p), 0);
    memset(&s, 0, sizeof(s));
    CHECK_INT(channel_drain(p[0], data, record, &s), -1);
    CHECK_INT(errno, ENOTSOCK);
    CHECK_INT(s.n, 0);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    return CHECK_DONE();
}
