/* The connections the master holds.
 *
 * The master keeps its own descriptor of every connection it hands to a
 * worker, until that worker says it is done with it (CHAN_CLOSED).  A
 * worker never sends a connection back: it names it by the master's
 * descriptor number (CHAN_BACK).  When a worker dies, the connections it
 * had that were idle between requests, or still in its channel, go to
 * other workers; only those in the middle of a request are closed.  The
 * scoreboard's connection records (one per descriptor number) say whose
 * each one is and what state it is in; the owner writes the state as it
 * works, with plain stores. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd/log.h"
#include "master_int.h"

static void held_set(struct master *m, int fd, int on)
{
    if (!m->held) {
        m->held = calloc((size_t)m->sb->nconns / 8 + 1, 1);
        if (!m->held)
            return;
    }
    if (on)
        m->held[fd >> 3] |= (uint8_t)(1u << (fd & 7));
    else
        m->held[fd >> 3] &= (uint8_t) ~(1u << (fd & 7));
}

int conns_hold(struct master *m, int fd, int listener)
{
    struct sb_conn *rec = sb_conn(m->sb, fd);
    if (!rec) {
        /* Only past the descriptor limit the table was sized for at start
         * (someone raised it since). */
        log_errx("connection on descriptor %d: beyond the %d the master can track; closed", fd,
                 m->sb->nconns);
        close(fd);
        return -1;
    }
    atomic_store(&rec->owner, -1);
    rec->listener = (uint8_t)listener;
    atomic_store(&rec->state, SBC_MASTER);
    held_set(m, fd, 1);
    if (fd >= m->conn_hi)
        m->conn_hi = fd + 1;
    return 0;
}

static void forget_bytes(struct master *m, int fd)
{
    if (m->sent_bytes && m->sent_bytes[fd].p) {
        free(m->sent_bytes[fd].p);
        m->sent_bytes[fd].p = NULL;
        m->sent_bytes[fd].len = 0;
    }
}

/* A connection sent with bytes already read from it (moved off a busy
 * worker) has those bytes only in the message: if the worker dies before
 * it reads its channel, they would be gone.  Keep a copy until the
 * connection closes or moves again. */
static void keep_bytes(struct master *m, int fd, const char *data, uint32_t len)
{
    forget_bytes(m, fd);
    if (!len)
        return;
    if (!m->sent_bytes && !(m->sent_bytes = calloc((size_t)m->sb->nconns, sizeof(*m->sent_bytes))))
        return; /* without memory the worker's death costs this request */
    char *p = malloc(len);
    if (!p)
        return;
    memcpy(p, data, len);
    m->sent_bytes[fd].p = p;
    m->sent_bytes[fd].len = len;
}

void conns_sending(struct master *m, int fd, int slot, const char *data, uint32_t len)
{
    struct sb_conn *rec = sb_conn(m->sb, fd);
    keep_bytes(m, fd, data, len);
    /* Before the message goes: the worker may take it and record its own
     * state at once. */
    atomic_store(&rec->owner, (int16_t)slot);
    atomic_store(&rec->state, len ? SBC_SENT_DATA : SBC_SENT);
}

void conns_unsent(struct master *m, int fd)
{
    struct sb_conn *rec = sb_conn(m->sb, fd);
    forget_bytes(m, fd);
    atomic_store(&rec->owner, -1);
    atomic_store(&rec->state, SBC_MASTER);
}

void conns_close(struct master *m, int fd)
{
    struct sb_conn *rec = sb_conn(m->sb, fd);
    if (rec) {
        forget_bytes(m, fd);
        atomic_store(&rec->owner, -1);
        atomic_store(&rec->state, SBC_FREE);
        held_set(m, fd, 0);
    }
    close(fd);
}

static struct sb_conn *owned_by(struct master *m, int id, int slot)
{
    struct sb_conn *rec = sb_conn(m->sb, id);
    if (!rec || atomic_load(&rec->state) == SBC_FREE || atomic_load(&rec->owner) != slot)
        return NULL;
    return rec;
}

int conns_given_back(struct master *m, int slot, const struct chan_msg *given)
{
    int fd = (int)given->id;
    if (!owned_by(m, fd, slot)) {
        log_warnx("worker %d gave back connection %d, which is not its own", slot, fd);
        return -1;
    }
    conns_unsent(m, fd);
    return fd;
}

void conns_closed(struct master *m, int slot, const char *data, size_t len)
{
    for (size_t off = 0; off + sizeof(uint32_t) <= len; off += sizeof(uint32_t)) {
        uint32_t id;
        memcpy(&id, data + off, sizeof(id));
        if (owned_by(m, (int)id, slot))
            conns_close(m, (int)id);
    }
}

void conns_worker_gone(struct master *m, int slot, conns_take_fn *take)
{
    int moved = 0, closed = 0, proxied = 0;
    for (int fd = 0; fd < m->conn_hi; fd++) {
        struct sb_conn *rec = owned_by(m, fd, slot);
        if (!rec)
            continue;
        int st = atomic_load(&rec->state);
        /* The dead worker may have left a response corked there (conn.c,
         * cork()): out with it now, before another worker writes after it
         * or a close with unread input resets the connection under it
         * (else it waits for the kernel's 200 ms limit).  Not TCP: a
         * harmless error. */
        int zero = 0;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
        struct chan_msg msg;
        memset(&msg, 0, sizeof(msg));
        socklen_t sl = sizeof(msg.peer);
        /* Idle between requests, or never taken: nothing of it was lost
         * with the worker, so another one serves it. */
        int with_bytes = st == SBC_SENT_DATA && m->sent_bytes && m->sent_bytes[fd].p;
        if ((st == SBC_IDLE || st == SBC_SENT || with_bytes) &&
            getpeername(fd, (struct sockaddr *)&msg.peer, &sl) == 0) {
            char *bytes = NULL;
            if (with_bytes) {
                /* Detached first: sending it on keeps a copy of its own. */
                bytes = m->sent_bytes[fd].p;
                msg.datalen = m->sent_bytes[fd].len;
                m->sent_bytes[fd].p = NULL;
                m->sent_bytes[fd].len = 0;
            }
            conns_unsent(m, fd);
            msg.type = CHAN_CONN;
            msg.listener = rec->listener;
            msg.peerlen = sl;
            take(m, fd, &msg, bytes);
            free(bytes);
            moved++;
        } else if (st == SBC_IDLE_PROXIED) {
            /* Its client's address died with the worker: served by
             * another, its requests would seem to come from the proxy. */
            conns_close(m, fd);
            proxied++;
        } else {
            conns_close(m, fd);
            closed += st != SBC_CLOSED;
        }
    }
    if (proxied)
        log_info("worker %d's connections: %d idle one(s) went to other workers, %d in a request "
                 "closed, %d idle after a PROXY header closed",
                 slot, moved, closed, proxied);
    else if (moved || closed)
        log_info("worker %d's connections: %d idle one(s) went to other workers, %d in a request "
                 "closed",
                 slot, moved, closed);
}

void conns_close_inherited(struct master *m)
{
    /* In a new worker: the copies it inherited are not its own, and would
     * keep connections open after their owners closed them.  The private
     * bitmap, not the shared records: those change under us (the master
     * goes on, and may already have given the number of the descriptor it
     * closed after the fork, our channel's, to a new connection). */
    if (!m->held)
        return;
    for (int fd = 0; fd < m->conn_hi; fd++)
        if (m->held[fd >> 3] & (1u << (fd & 7)))
            close(fd);
}

void conns_keep_on_exec(struct master *m, int keep)
{
    for (int fd = 0; fd < m->conn_hi; fd++) {
        struct sb_conn *rec = sb_conn(m->sb, fd);
        int st = atomic_load(&rec->state);
        if (st == SBC_FREE || st == SBC_MASTER)
            continue; /* the queue's travel in HUGD_INHERIT */
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0)
            fcntl(fd, F_SETFD, keep ? fl & ~FD_CLOEXEC : fl | FD_CLOEXEC);
    }
}

void conns_adopt(struct master *m)
{
    /* After an in-place reload: the records are the previous image's.
     * Held by the master then means queued, and those come back through
     * HUGD_INHERIT (conns_hold again); the rest are the workers'. */
    m->conn_hi = 0;
    for (int fd = 0; fd < m->sb->nconns; fd++) {
        struct sb_conn *rec = sb_conn(m->sb, fd);
        int st = atomic_load(&rec->state);
        if (st == SBC_FREE)
            continue;
        if (st == SBC_MASTER) {
            atomic_store(&rec->state, SBC_FREE);
            continue;
        }
        m->conn_hi = fd + 1;
        held_set(m, fd, 1);
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0)
            fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}
