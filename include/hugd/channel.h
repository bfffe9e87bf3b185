/* The master <-> worker channel: one SOCK_SEQPACKET socketpair per worker.
 * Master -> worker: a connection (its fd as SCM_RIGHTS) with a small header.
 * Worker -> master: "I am free" wake-ups.  Message boundaries are kept by
 * SEQPACKET, so a header never arrives torn. */
#ifndef HUGD_CHANNEL_H
#define HUGD_CHANNEL_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The master keeps its own descriptor of each connection it hands out, and
 * names it by that descriptor's number (id), so a worker never sends one
 * back: CHAN_BACK gives a connection back (a draining worker's idle ones,
 * the mover's, or one the worker could not take), with the bytes not yet
 * run; CHAN_CLOSED lists, as data, the ids (uint32_t) the worker is done
 * with.  CHAN_CONN between two masters (USR2) carries the descriptor. */
enum chan_type {
    CHAN_CONN = 1,   /* master -> worker, old master -> new: fd, id, peer, data */
    CHAN_FREE = 2,   /* worker -> master: I am free */
    CHAN_RETIRE = 3, /* worker -> master: replace me (max_requests) */
    CHAN_READY = 4,  /* new master -> old (USR2): my workers are up, hand over */
    CHAN_BACK = 5,   /* worker -> master: id, peer, data */
    CHAN_CLOSED = 6, /* worker -> master: ids */
};

struct chan_msg {
    uint16_t type;
    uint16_t listener; /* index of the listening socket it came in on */
    uint32_t peerlen;
    uint32_t datalen;             /* bytes of the connection already read, following */
    uint32_t id;                  /* the master's descriptor number for it */
    struct sockaddr_storage peer; /* accept4's address, saves a getpeername */
};

/* A connection moved away from a worker stuck in a long request may carry
 * the bytes of its next request that the worker had read already. */
#define CHAN_MAX_DATA (64 << 10)

/* fds[0] for the master, fds[1] for the worker; both non-blocking and
 * close-on-exec.  Returns 0 or -1 with errno. */
int channel_pair(int fds[2]);

/* Send a connection and msg->datalen bytes of data (may be NULL when 0).
 * Async-signal-safe.  Returns 0, or -1 with errno (EAGAIN: the other side's
 * queue is full). */
int channel_send_conn(int ch, int fd, const struct chan_msg *msg, const void *data);

/* Receive one message; its data (msg->datalen bytes, at most CHAN_MAX_DATA)
 * goes to data, which may be NULL for a reader that never gets any.
 * Returns 1 with *fd set (-1 when none came), 0 at end of file (the other
 * side is gone), -1 with errno. */
int channel_recv(int ch, struct chan_msg *msg, int *fd, void *data);

/* What a drain's handler returns: take the next message, or stop and
 * leave the rest in the channel (a reader with nowhere to put more). */
enum { CHAN_NEXT = 0, CHAN_STOP = 1 };

/* How a drain ended. */
enum chan_drained {
    CHAN_EMPTY = 0,   /* nothing more waits (EAGAIN) */
    CHAN_STOPPED = 1, /* the handler said CHAN_STOP */
    CHAN_EOF = 2,     /* the other side is gone, after everything it sent */
};

/* Read every message waiting on ch and hand each to on_msg: fd is the
 * descriptor it carried (-1 if none), which the handler owns from then on;
 * data holds msg->datalen bytes until the handler returns.  data is the
 * caller's buffer of CHAN_MAX_DATA bytes (each thread that reads a channel
 * has its own), or NULL for a reader that never gets any.  A message that
 * channel_recv dropped as malformed is skipped.  The one rule for every
 * reader: EINTR is retried, EAGAIN ends the drain (CHAN_EMPTY), end of file
 * is CHAN_EOF; any other error returns -1 with errno, and the caller
 * treats the channel as broken. */
int channel_drain(int ch, char *data,
                  int (*on_msg)(void *ctx, const struct chan_msg *msg, int fd, const char *data),
                  void *ctx);

/* A message without a file descriptor (CHAN_FREE, CHAN_RETIRE). */
int channel_send_type(int ch, int type);

/* A message with a header and data but no descriptor (CHAN_BACK,
 * CHAN_CLOSED).  Returns 0 or -1 with errno. */
int channel_send(int ch, const struct chan_msg *msg, const void *data);
/* The same with the data in two pieces (msg->datalen is their sum). */
int channel_send2(int ch, const struct chan_msg *msg, const void *a, size_t alen, const void *b,
                  size_t blen);

#endif
