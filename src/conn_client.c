/* Who the client of a connection is, decided in C before the application
 * runs: the PROXY protocol header a proxy sends first (proxy_protocol,
 * from peers in proxy_allow_ips), and the forwarded headers of each
 * request from a trusted peer (forwarded_allow_ips).  See conn.h.
 *
 * The peer whose forwarded headers are believed is the client the PROXY
 * header named, when there was one: the bytes of the request are that
 * client's.  (Behind HAProxy in TCP mode the client writes every header
 * itself; trusting the proxy's own address instead would let it choose its
 * X-Forwarded-For.)  A LOCAL or UNKNOWN header names nobody, and the
 * connection's own peer stays the client.
 *
 * A connection that moves to another process (the mover, a drain, a
 * reload) carries its client in a PROXY v2 header put in front of its
 * unrun bytes: the next worker reads it like the first, from the same
 * peer, and so knows the same client. */
#include <arpa/inet.h>
#include <stdio.h>

#include "hugd/conn.h"
#include "hugd/forwarded.h"
#include "hugd/log.h"

void conn_client_start(struct conn *c)
{
    c->proxy_state = CONN_PROXY_OFF;
    if (!c->pool->cfg->proxy_protocol)
        return;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    c->proxy_state =
        addrmatch_peer(&c->pool->proxy_allow, sa) ? CONN_PROXY_WANTED : CONN_PROXY_REFUSED;
}

static int refuse(struct conn *c, const char *why)
{
    static struct log_limit limit;
    log_limited(&limit, LOG_LVL_INFO, "refused a connection from %s: 400 Bad Request: %s",
                c->peer_addr, why);
    c->req.error_status = 400;
    c->in.off = c->in.len; /* nothing after it is read as a request */
    return -1;
}

static void proxy_addr(const struct proxy_header *h, struct addr16 *a)
{
    if (h->family == AF_INET)
        addr16_from_v4(a, h->src);
    else
        addr16_from_v6(a, h->src);
}

int conn_client_proxy(struct conn *c)
{
    if (c->proxy_state == CONN_PROXY_OFF || c->proxy_state == CONN_PROXY_DONE)
        return 1;
    if (c->proxy_state == CONN_PROXY_REFUSED)
        return refuse(c, "a PROXY header is required, and proxy_allow_ips does not list this "
                         "peer");
    struct proxy_header h;
    const char *why;
    enum proxy_verdict v = proxy_parse(c->in.p + c->in.off, c->in.len - c->in.off, &h, &why);
    if (v == PROXY_MORE)
        return 0;
    if (v == PROXY_BAD)
        return refuse(c, why);
    c->in.off += h.len;
    c->proxy = h;
    c->proxy_state = CONN_PROXY_DONE;
    if (!h.local) {
        struct addr16 a;
        proxy_addr(&h, &a);
        addr16_text(&a, h.family == AF_INET, c->peer_addr);
        snprintf(c->peer_port, sizeof(c->peer_port), "%u", h.src_port);
    }
    return 1;
}

int conn_client_pending(const struct conn *c)
{
    return c->proxy_state == CONN_PROXY_WANTED && c->in.off < c->in.len;
}

size_t conn_client_carry(const struct conn *c, uint8_t *out)
{
    return c->proxy_state == CONN_PROXY_DONE ? proxy_encode(&c->proxy, out) : 0;
}

void conn_client_forwarded(struct conn *c)
{
    struct http_request *r = &c->req;
    const struct addrmatch *trusted = &c->pool->forwarded_allow;
    if (!trusted->any && trusted->n == 0)
        return;
    int ok;
    if (c->proxy_state == CONN_PROXY_DONE && !c->proxy.local) {
        struct addr16 a;
        proxy_addr(&c->proxy, &a);
        ok = addrmatch_has(trusted, &a);
    } else {
        ok = addrmatch_peer(trusted, (const struct sockaddr *)&c->peer);
    }
    if (!ok)
        return; /* passed through to the application, not believed */
    struct fwd_result res;
    forwarded_resolve(r, trusted, &res);
    if (res.has_addr) {
        addr16_text(&res.addr, res.v4, r->fwd_addr);
        if (res.port >= 0)
            snprintf(r->fwd_port, sizeof(r->fwd_port), "%u", (unsigned)res.port & 0xffff);
    }
    r->fwd_scheme = res.scheme;
}
