/* The PROXY protocol header, versions 1 (text) and 2 (binary), which a
 * proxy (HAProxy's send-proxy and send-proxy-v2, nginx's stream module
 * with proxy_protocol on) sends before the bytes it relays, to say whose
 * connection it is.
 *
 * Pure: bytes in, a verdict out.  It reads nothing and keeps no state: a
 * header that arrives over several reads is parsed again from its first
 * byte when more has come, which costs little (version 1 is at most 107
 * bytes; version 2 says its length in its first 16 and is only looked at
 * again once all of it is there).  Nothing of hugd's is called from here. */
#ifndef HUGD_PROXY_PROTO_H
#define HUGD_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_V1_MAX 107            /* the whole line, CRLF included */
#define PROXY_V2_MAX (16 + 65535)   /* the fixed part and the most its length can say */
#define PROXY_ENCODED_MAX (16 + 36) /* proxy_encode's longest: version 2, IPv6 */

enum proxy_verdict {
    PROXY_BAD = -1, /* not a PROXY header, or a malformed one */
    PROXY_MORE = 0, /* what is there is the start of one: wait for more */
    PROXY_OK = 1,   /* a whole header, h->len bytes long */
};

struct proxy_header {
    int version; /* 1 or 2 */
    /* No client address to use: a version 2 LOCAL header (a proxy's own
     * health check), version 1 UNKNOWN, or version 2 with an unspecified
     * or Unix-socket address.  The connection's own peer stands then. */
    int local;
    int family;               /* AF_INET or AF_INET6, when !local */
    uint8_t src[16], dst[16]; /* network order; the first 4 bytes for AF_INET */
    uint16_t src_port, dst_port;
    size_t len; /* bytes the header takes, including its TLVs */
};

/* Look at the first n bytes of a connection.  PROXY_OK fills *h (and the
 * request starts h->len bytes in); PROXY_BAD sets *why to a phrase for the
 * log ("not a PROXY protocol header"...); PROXY_MORE says nothing yet. */
enum proxy_verdict proxy_parse(const void *data, size_t n, struct proxy_header *h,
                               const char **why);

/* h as a version 2 header (LOCAL when h->local), which proxy_parse reads
 * back as the same address: how a connection that has to move to another
 * process takes its client's address along.  Returns its length. */
size_t proxy_encode(const struct proxy_header *h, uint8_t out[PROXY_ENCODED_MAX]);

#endif
