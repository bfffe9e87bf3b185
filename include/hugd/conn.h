/* One client connection inside a worker: its parser, the request being
 * read, the response being written.  conn.c drives it (read, write,
 * timeouts, keep-alive, pipelining); http.c parses; wsgi.c produces the
 * response by calling the application. */
#ifndef HUGD_CONN_H
#define HUGD_CONN_H

#include <ev.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "hugd/addrmatch.h"
#include "hugd/buf.h"
#include "hugd/channel.h"
#include "hugd/http_rules.h"
#include "hugd/proxy_proto.h"

struct worker;

struct http_header {
    uint32_t name, name_len; /* offsets into the request arena */
    uint32_t value, value_len;
};

struct http_request {
    struct buf arena; /* URL and header bytes, copied as llhttp hands them over */
    uint32_t url, url_len;
    struct http_header *hdrs;
    int nhdrs, hcap;
    int in_value;  /* the last header callback was a value */
    int started;   /* the first byte of this request has arrived */
    int head_done; /* on_headers_complete has run */
    int complete;  /* on_message_complete has run */
    int timed;     /* the head's deadline is set */
    uint8_t method, major, minor;
    /* Each set when it is parsed: a bad request may stop before. */
    uint8_t have_method, have_version;
    int keepalive;           /* what the client's side allows */
    int expect_continue;     /* a "100 Continue" is owed before the body */
    uint64_t content_length; /* declared, when has_length */
    int has_length;
    /* body: in memory up to body_buffer_size, then spooled to a temp file */
    struct buf body;
    int body_fd;
    uint64_t body_size;
    uint32_t trailer_len;  /* bytes of chunked trailer fields, read and dropped */
    int error_status;      /* when parsing fails: the status to answer with */
    const char *error_why; /* and why, for the error log (NULL: said by the status) */
    uint32_t path_off;     /* where the path starts in the URL (after an absolute-form authority) */
    struct http_scan scan; /* line structure of the head and trailers, checked ahead of llhttp */
    int chunk_line;        /* llhttp stopped before a chunk-size line: its BWS is dropped first */
    int method_pending;    /* llhttp refused the method: is it a token?  (501 or 400) */
    ev_tstamp started_at;
    /* What forwarded headers from a trusted peer said (conn_client.c):
     * the client's address ("" = the connection's own), its port ("" =
     * none given), and the scheme (enum fwd_scheme). */
    char fwd_addr[ADDR_TEXT_MAX];
    char fwd_port[8];
    int fwd_scheme;
};

struct conn;

/* The response being produced for the current request. */
struct http_response {
    /* Set by conn.c, for wsgi: write out everything queued, waiting for the
     * client as long as the write timeout allows (write() must not buffer
     * without bound); 0, or -1 when the client is gone or too slow. */
    int (*flush)(struct conn *c);
    /* Set by conn.c: nonzero once the server stops (the scoreboard's
     * stopping): the response being sent is the connection's last. */
    const _Atomic int *stopping;
    double now;       /* the loop's clock at the last call into the application */
    void *result;     /* PyObject*: the application's iterable, for close() */
    void *iter;       /* PyObject*: iterator over it, NULL when exhausted */
    void *start_resp; /* PyObject*: the start_response object, unhooked at the end */
    struct buf head;  /* encoded app headers ("Name: value\r\n"...) */
    int status;       /* numeric status; 0 until start_response */
    struct buf status_line;
    int headers_sent; /* status line and headers are in the output */
    int chunked;      /* Transfer-Encoding: chunked framing */
    int no_body;      /* HEAD, 1xx, 204, 304 */
    int app_close;    /* the app asked for Connection: close */
    int has_date, has_server;
    int64_t content_length; /* declared by the app or computed, -1 if unknown */
    int length_from_app;    /* the app sent Content-Length itself */
    uint64_t body_sent;     /* body bytes produced (before framing) */
    void *pending;          /* PyObject* bytes too big to copy, written from here */
    size_t pending_off;
    int file_fd; /* wsgi.file_wrapper: sendfile from here */
    off_t file_off;
    uint64_t file_left;
    int finished; /* nothing more will be produced */
};

enum conn_state { CONN_READING, CONN_RESPONDING, CONN_CLOSING };

/* The PROXY protocol header in front of a connection (proxy_protocol). */
enum conn_proxy {
    CONN_PROXY_OFF,     /* none expected */
    CONN_PROXY_WANTED,  /* expected, not read yet */
    CONN_PROXY_REFUSED, /* from a peer proxy_allow_ips does not list: 400 at its first byte */
    CONN_PROXY_DONE,    /* read: its address is the client's */
};

struct conn {
    struct worker *w;
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
    struct http_request req;
    struct http_response resp;
    struct buf out;               /* bytes waiting to be written */
    size_t out_held;              /* out's bytes and the pending bytes object, as counted */
    int keepalive;                /* keep the connection after this response */
    int peer_eof;                 /* the client closed its side */
    struct sockaddr_storage peer; /* as accept4 gave it, for a hand-back */
    socklen_t peerlen;
    /* The client: the peer's address, or the one a PROXY header gave. */
    char peer_addr[INET6_ADDRSTRLEN];
    char peer_port[8];
    int proxy_state;           /* enum conn_proxy */
    struct proxy_header proxy; /* CONN_PROXY_DONE: what it said */
    uint64_t requests;
    struct conn *prev, *next; /* the worker's list, for draining */
    struct conn *ready_next;  /* input waiting, to be read and run this loop iteration */
    int in_ready;
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
    int corked;     /* on the worker's corked list (conn_uncork_all) */
    struct conn *corked_next;
};

/* Take over a connection handed over by the master. */
/* Take over a connection handed over by the master, with data: bytes
 * already read from it (m->datalen of them). */
void conn_start(struct worker *w, int fd, const struct chan_msg *m, const char *data);
/* Close it now, dropping whatever is unsent. */
void conn_close(struct conn *c);
/* Graceful stop: an idle connection goes back to the master now, a busy
 * one after its current response. */
void conn_drain(struct conn *c);
/* Parse and answer what the read phase of this loop iteration collected. */
void conn_run_ready(struct worker *w);

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
 * one call of the batch lasts.  No Python, no loop. */
void conn_uncork_all(struct worker *w);

/* Main thread, at a point where no list of connections is being walked:
 * let go of what the mover gave away. */
void conn_sweep(struct worker *w);

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
