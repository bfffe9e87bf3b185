/* The syntax rules hugd enforces on requests beyond what llhttp checks,
 * as pure functions over bytes (no parser, no connection): the authority
 * of Host and of absolute-form targets (RFC 3986 3.2 without userinfo),
 * request-target forms (RFC 9112 3.2), Transfer-Encoding lists (RFC 9112
 * 6.1), chunk extensions (RFC 9112 7.1.1), and a byte
 * scanner for the line structure of a request head and of chunked
 * trailers (bare LF, obs-fold, the spaces of the request line).
 *
 * Everything here is ASCII-only (hugd/ascii.h), independent of the locale. */
#ifndef HUGD_HTTP_RULES_H
#define HUGD_HTTP_RULES_H

#include <stddef.h>
#include <stdint.h>

/* Is the field name (n bytes, any case) lower_name? */
int http_field_is(const char *name, size_t n, const char *lower_name);

/* host [ ":" port ]: host a reg-name, an IPv4 address or "[" IPv6 "]"
 * (no IPvFuture, no zone), port 1 to 5 digits up to 65535.  An empty
 * string is valid (RFC 9112 3.2 allows an empty Host).  1 or 0. */
int http_valid_authority(const char *p, size_t n);

/* Do two valid authorities name the same host and port?  The host is
 * compared without case; a missing port is default_port. */
int http_same_authority(const char *a, size_t an, const char *b, size_t bn, unsigned default_port);

enum http_target_form {
    TARGET_INVALID,
    TARGET_ORIGIN,   /* "/path?query" */
    TARGET_ABSOLUTE, /* "http://authority/path?query" */
    TARGET_ASTERISK, /* "*" */
};

struct http_target {
    enum http_target_form form;
    size_t auth, auth_len; /* absolute-form: the authority, as offsets */
    size_t path;           /* where the path (or "?query") begins */
    unsigned default_port; /* absolute-form: 80 for http, 443 for https */
};

/* Classify a request target (CONNECT's authority-form is not handled:
 * hugd answers CONNECT with 501 before looking at its target).
 * Absolute-form needs the http or https scheme and a valid authority
 * with a host. */
void http_parse_target(const char *u, size_t n, struct http_target *t);

/* Transfer-Encoding, all fields' values joined with ", ": 0 when it is
 * exactly "chunked"; 501 when it is a valid list of codings that ends in
 * one "chunked" (hugd decodes no other coding); 400 otherwise. */
int http_check_transfer_encoding(const char *v, size_t n);

/* A chunk-size line without its CRLF: the length of its chunk-size (hex
 * digits) when the rest is a valid list of chunk extensions, with the bad
 * whitespace (BWS) RFC 9112 7.1.1 allows around ";" and "="; 0 when it
 * starts with no hex digit; -1 when the extensions are not valid.
 * Extensions mean nothing to hugd: the caller drops them. */
long http_chunk_size_len(const char *line, size_t n);

/* The line structure of a header section, checked byte by byte ahead of
 * llhttp, across reads.  The zero value starts a request head. */
struct http_scan {
    uint8_t done;        /* the section ended (at its empty line) */
    uint8_t line;        /* 0: the request line (or empty lines before it) */
    uint8_t prev;        /* SCAN_* class of the previous byte */
    uint8_t spaces;      /* in the request line */
    uint8_t method;      /* METHOD_* */
    uint32_t method_len; /* bytes of the method while METHOD_SCANNING */
};

enum { METHOD_SCANNING, METHOD_TOKEN, METHOD_NOT_TOKEN };

/* Start the trailer section of a chunked body. */
void http_scan_trailers(struct http_scan *s);

/* Scan p[0..n): returns how many bytes are fine (n, or fewer when the
 * section ended at its empty line: then s->done is set); *bad is 0, or a
 * status when the byte at the returned offset breaks a rule (bare LF,
 * bare CR, a line starting with whitespace, a request line that is not
 * three words with one space between each). */
size_t http_scan(struct http_scan *s, const char *p, size_t n, int *bad, const char **why);

/* Method bytes after llhttp refused the method: keeps s->method up to
 * date without the rest of the rules.  Returns bytes looked at. */
size_t http_scan_method(struct http_scan *s, const char *p, size_t n);

#endif
