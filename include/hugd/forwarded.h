/* Forwarded headers: the client's address and scheme that proxies in front
 * wrote into a request (X-Forwarded-For, X-Forwarded-Proto, RFC 7239
 * Forwarded).  Only worth reading in a request from a trusted peer: the
 * caller decides that (conn_client.c); this reads the fields.
 *
 * Each proxy appends the address it received the connection from, so the
 * list ends with the hops nearest to hugd.  The client is the right-most
 * address that is not trusted itself (everything to its right was written
 * by trusted proxies, everything to its left by the client or by proxies
 * nobody vouches for); when every address is trusted, the left-most.
 * When that hop is not an IP address (garbage, Forwarded's "unknown" or an
 * obfuscated name), no address is believed.
 *
 * X-Forwarded-For and X-Forwarded-Proto win over Forwarded: a request that
 * has either is read from those alone.  nginx and HAProxy write X-Forwarded-*
 * and pass a client's own Forwarded field through untouched, so believing
 * Forwarded over them would let any client behind them pick its address.
 * (A proxy that writes only Forwarded should remove X-Forwarded-* from what
 * it passes on.)  Several fields of one name are one list, in order.
 * Pure: no I/O, no Python. */
#ifndef HUGD_FORWARDED_H
#define HUGD_FORWARDED_H

#include "hugd/addrmatch.h"
#include "hugd/http.h"

enum fwd_scheme { FWD_SCHEME_NONE = 0, FWD_SCHEME_HTTP, FWD_SCHEME_HTTPS };

struct fwd_result {
    int has_addr;
    struct addr16 addr;
    int v4;     /* addr was written as IPv4 */
    int port;   /* -1: none given (X-Forwarded-For never gives one) */
    int scheme; /* enum fwd_scheme; NONE: nothing said (or not http/https) */
};

/* Read r's forwarded fields, skipping hops that trusted lists. */
void forwarded_resolve(const struct http_request *r, const struct addrmatch *trusted,
                       struct fwd_result *out);

#endif
