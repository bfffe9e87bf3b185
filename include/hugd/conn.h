/* The connections of a worker: each one's state machine and all of their
 * socket I/O (reading, writing with one rule for EINTR and EAGAIN,
 * sendfile, 100-continue, lingering, the blocking flush behind write()),
 * keep-alive, pipelining, timeouts, and giving a connection back to the
 * master.  conn.c never calls the application: conn_advance takes a
 * connection as far as it goes without it and says what it needs next;
 * the worker (worker.c) makes that call (wsgi.h) and advances it again.
 * http.c parses for it. */
#ifndef HUGD_CONN_H
#define HUGD_CONN_H

#include <ev.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "hugd/addrmatch.h"
#include "hugd/buf.h"
#include "hugd/channel.h"
#include "hugd/config.h"
#include "hugd/http.h"
#include "hugd/proxy_proto.h"
#include "hugd/scoreboard.h"

struct conn;

/* How long a response may wait corked for the rest of its batch (cork()
 * in conn.c): the worker pushes the batch out once its first cork is this
 * old when it leaves an application call, the mover while one lasts. */
#define CONN_CORK_HOLD_NS 1000000

/* What the connections of one worker share, and what conn.c needs of the
 * worker, as plain data the worker fills in and reads back. */
struct conn_pool {
    struct ev_loop *loop;
    const struct hugd_config *cfg;
    struct scoreboard *sb;
    struct sb_slot *slot; /* this worker's: its counters and state */
    int channel;          /* to the master: where a connection given back goes */
    int nlisteners;
    int epoll_fd;                 /* libev's, when it could be found (conn_close); else -1 */
    int draining;                 /* set by the worker: each connection's response is its last */
    int may_cork;                 /* something bounds how long a cork holds (the mover): cork() */
    struct addrmatch proxy_allow; /* cfg->proxy_allow_ips, parsed */
    struct addrmatch forwarded_allow; /* cfg->forwarded_allow_ips, parsed */
    struct conn *conns;               /* every open connection */
    int nconns;
    struct conn *ready;              /* something to do in this loop iteration (conn_next_ready) */
    struct conn *corked;             /* responses held in the kernel until the batch ends */
    _Atomic int64_t corked_since_ns; /* the first of them (monotonic_ns), 0: none */
    uint32_t *closed_ids;            /* connections done with, not yet told (CHAN_CLOSED): */
    int nclosed, capclosed;          /* grows while the master is behind, so none is forgotten */
    size_t output_held;              /* response bytes held for clients slow to read them */
};

enum conn_state {
    CONN_READING,
    CONN_RESPONDING,
    CONN_CLOSING, /* the response is out; reading what the client still sends */
    CONN_DEAD,    /* to be closed once the application's objects are let go */
};

/* The PROXY protocol header in front of a connection (proxy_protocol). */
enum conn_proxy {
    CONN_PROXY_OFF,     /* none expected */
    CONN_PROXY_WANTED,  /* expected, not read yet */
    CONN_PROXY_REFUSED, /* from a peer proxy_allow_ips does not list: 400 at its first byte */
    CONN_PROXY_DONE,    /* read: its address is the client's */
};

struct conn {
    struct conn_pool *pool;
    int fd;
    int listener;
    uint32_t id;         /* the master's name for it (its descriptor there) */
    struct sb_conn *rec; /* its record on the scoreboard */
    int shared;          /* the state last written there */
    enum conn_state state;
    ev_io io;
    ev_timer timer;
    ev_tstamp deadline;
    llhttp_t parser;
    struct buf in; /* unparsed input lives at in.p[in.off .. in.len) */
    int readable;  /* the socket may have input: read it when it is this one's turn */
    struct http_request req;
    struct http_response resp;
    size_t out_held;              /* the response's bytes in memory, as counted in the pool */
    int peer_eof;                 /* the client closed its side */
    struct sockaddr_storage peer; /* as accept4 gave it, for a hand-back */
    socklen_t peerlen;
    /* The client: the peer's address, or the one a PROXY header gave. */
    char peer_addr[INET6_ADDRSTRLEN];
    char peer_port[8];
    int proxy_state;           /* enum conn_proxy */
    struct proxy_header proxy; /* CONN_PROXY_DONE: what it said */
    uint64_t requests;
    struct conn *prev, *next; /* the pool's list */
    struct conn *ready_next;  /* on the pool's ready list */
    int in_ready;
    int fresh; /* the application has just answered: its first write may be corked */
    /* Where the bytes of a request head not yet complete begin in `in`:
     * they are kept raw, so that the connection can move to another worker
     * with them, to be parsed again there. */
    size_t head_mark;
    /* Set by the mover (under the worker's lock) once it gave the
     * connection to the master; the main thread then only lets go of its
     * copy (conn_sweep). */
    int given_away;
    int move_input; /* the mover saw input arrive (mover-owned) */
    int tcp;        /* TCP: its responses may go out corked */
    int corked;     /* on the pool's corked list (conn_uncork_all) */
    struct conn *corked_next;
};

/* Take over a connection handed over by the master, with data: bytes
 * already read from it (m->datalen of them). */
void conn_start(struct conn_pool *p, int fd, const struct chan_msg *m, const char *data);

/* What a connection needs from the application next. */
enum conn_need {
    CONN_NEED_NOTHING, /* it waits for its client, or is gone */
    CONN_NEED_RESPOND, /* a request is ready: call the application (wsgi_respond) */
    CONN_NEED_PRODUCE, /* the body goes on: more from the iterable (wsgi_produce) */
    CONN_NEED_FINISH,  /* the response is over: let go of it (wsgi_finish) */
};
/* The next connection on the ready list (taken off it), or NULL. */
struct conn *conn_next_ready(struct conn_pool *p);
/* Take c as far as it goes without the application: read and parse its
 * input, write, finish a response, go on to a pipelined request, close.
 * After CONN_NEED_NOTHING, c may be gone. */
enum conn_need conn_advance(struct conn *c);
/* After wsgi_produce failed: the body cannot be completed, the
 * connection is to close once it is out. */
void conn_broken_response(struct conn *c);

/* Close it now, dropping whatever is unsent.  The application's objects
 * must have been let go of (wsgi_finish). */
void conn_close(struct conn *c);
/* Graceful stop: an idle connection goes back to the master now, a busy
 * one after its current response. */
void conn_drain(struct conn *c);
/* Tell the master which connections we are done with. */
void conn_flush_closed(struct conn_pool *p);

/* For the mover (include/hugd/mover.h), while the main thread is inside
 * the application for another connection.  None of these runs Python or
 * touches the event loop. */
enum conn_move {
    MOVE_STAY,     /* nothing to run, or state only this worker can finish */
    MOVE_NOW,      /* has a request to run (or part of one): give it away */
    MOVE_ON_INPUT, /* idle between requests: give it away once the client sends */
};
enum conn_move conn_move_plan(const struct conn *c);
/* Give it back to the master with the bytes not yet run.  0, or -1 (the
 * channel is full: it stays). */
int conn_give_away(struct conn *c);
/* Push out the responses held corked in the kernel (see cork() in
 * conn.c): at the end of a loop iteration's batch, or from the mover when
 * one call of the batch lasts. */
void conn_uncork_all(struct conn_pool *p);

/* Main thread, at a point where no list of connections is being walked:
 * let go of what the mover gave away. */
void conn_sweep(struct conn_pool *p);

/* conn_client.c: who the client is, read without the application: the
 * PROXY header that starts a connection from a proxy, and the forwarded
 * headers of each request from a trusted peer. */

/* A new connection: is a PROXY header expected, and may this peer send
 * one? */
void conn_client_start(struct conn *c);
/* Read the PROXY header from c->in when one is expected.  1: read (or
 * none expected): the request follows; 0: not all there yet; -1: refused,
 * the connection is to get c->req.error_status (400) and close. */
int conn_client_proxy(struct conn *c);
/* Part of a PROXY header has come: the request-head timeout runs for it. */
int conn_client_pending(const struct conn *c);
/* What a connection moving to another process sends ahead of its unrun
 * bytes, so that its client's address goes with it: a PROXY v2 header
 * when it had one, else nothing.  Returns the length (0..PROXY_ENCODED_MAX).
 * No Python, no loop: the mover calls it. */
size_t conn_client_carry(const struct conn *c, uint8_t *out);
/* A request head is complete: believe its forwarded headers when the peer
 * is trusted (forwarded_allow_ips). */
void conn_client_forwarded(struct conn *c);

/* REMOTE_ADDR and REMOTE_PORT of the current request ("" for none), as
 * the above left them: plain data, for wsgi and the access log.  A
 * forwarded address without a port has none (the connection's would be a
 * proxy's). */
static inline const char *conn_client_addr(const struct conn *c)
{
    return c->req.fwd_addr[0] ? c->req.fwd_addr : c->peer_addr;
}

static inline const char *conn_client_port(const struct conn *c)
{
    return c->req.fwd_addr[0] ? c->req.fwd_port : c->peer_port;
}

#endif
