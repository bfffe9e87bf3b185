/* Lists of trusted peers, as proxy_allow_ips and forwarded_allow_ips take
 * them: comma-separated IPv4 and IPv6 addresses, CIDR ranges
 * ("10.0.0.0/8", "fd00::/8"), and "*" for anyone.  An empty list trusts
 * nobody.
 *
 * Addresses are kept in one 16-byte form, IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), so that 127.0.0.1 in a list also matches the
 * ::ffff:127.0.0.1 a dual-stack socket reports for the same client.
 * Pure: no I/O, no logging; errors go into the caller's buffer. */
#ifndef HUGD_ADDRMATCH_H
#define HUGD_ADDRMATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text of an address (an IPv6 address with an IPv4 tail), NUL
 * included: INET6_ADDRSTRLEN. */
#define ADDR_TEXT_MAX 46

struct addr16 {
    uint8_t b[16]; /* network order; IPv4 mapped into ::ffff:0:0/96 */
};

struct addrmatch_net {
    struct addr16 addr; /* host bits cleared */
    uint8_t bits;       /* prefix length over all 128 bits */
};

struct addrmatch {
    int any; /* "*" was given */
    int n;
    struct addrmatch_net *nets;
};

/* Parse list into m (which is then the caller's to addrmatch_free).
 * Blanks around items and empty items are ignored.  Returns 0, or -1 with
 * a message naming the bad item in err; m is left empty then. */
int addrmatch_parse(struct addrmatch *m, const char *list, char *err, size_t errlen);
void addrmatch_free(struct addrmatch *m);

/* Is a in the list? */
int addrmatch_has(const struct addrmatch *m, const struct addr16 *a);
/* Is this socket peer?  A Unix-socket peer is whenever the list is not
 * empty: only a process that may open the socket file reaches it, and it
 * has no address to list (gunicorn trusts it the same way).  Any other
 * family only with "*". */
int addrmatch_peer(const struct addrmatch *m, const struct sockaddr *sa);

/* The n bytes at s, a numeric IPv4 or IPv6 address and nothing else (no
 * brackets, port or zone), into *a; *v4 says which it was.  0, or -1. */
int addr16_parse(const char *s, size_t n, struct addr16 *a, int *v4);
/* An IPv4 address (4 bytes, network order) or an IPv6 one (16). */
void addr16_from_v4(struct addr16 *a, const void *in4);
void addr16_from_v6(struct addr16 *a, const void *in6);
/* Numeric text ("192.0.2.1", "2001:db8::1"): dotted IPv4 when v4, else
 * IPv6 text (which shows a mapped address as ::ffff:192.0.2.1). */
void addr16_text(const struct addr16 *a, int v4, char out[ADDR_TEXT_MAX]);

#endif
