/* The health check (health_path): a GET or HEAD of one configured path,
 * answered by hugd itself, never by the application.  A worker answers it
 * when it parses one; the master answers one it finds on a connection it
 * holds for lack of a free worker, so that a saturated instance still
 * answers within milliseconds.  Pure functions: no I/O, no state. */
#ifndef HUGD_HEALTH_H
#define HUGD_HEALTH_H

#include <stddef.h>

/* What the instance can do, as the master sees it (the scoreboard carries
 * it to the workers).  Anything but HEALTH_OK answers 503. */
enum health_state {
    HEALTH_OK = 0,
    HEALTH_DRAINING,   /* stopping: TERM came (shutdown_delay, then the drain) */
    HEALTH_QUEUE_FULL, /* the master holds accept_queue connections: it stopped accepting */
    HEALTH_NO_WORKER,  /* no worker process is alive */
};

/* The longest request head the master reads as a health check; a longer
 * one goes to a worker like any request. */
#define HEALTH_MAX_HEAD 4096
/* ... or with more header fields than this (a worker's default limit is
 * 100; the master also keeps to the configured limits). */
#define HEALTH_MAX_FIELDS 32

/* Room health_response needs. */
#define HEALTH_RESPONSE_MAX 320

enum health_match {
    HEALTH_NO,   /* not a health check (or not one the master answers): a worker serves it */
    HEALTH_MORE, /* a prefix of one: wait for more bytes */
    HEALTH_GET,  /* a complete health check head, of *head_len bytes */
    HEALTH_HEAD,
};

/* Is target[0..len) the health path: exactly path, or path and a query? */
int health_target_is(const char *target, size_t len, const char *path);

/* Read buf[0..len) as the start of a request, strictly: "GET" or "HEAD",
 * one space, an origin-form target that health_target_is, one space,
 * HTTP/1.0 or HTTP/1.1, CRLF; then header lines "name: value" CRLF with a
 * token name and a value of visible ASCII, spaces and tabs (no obs-fold,
 * no bare CR or LF, no obs-text); one valid Host (HTTP/1.1 needs it), no
 * Transfer-Encoding, no Expect, no Content-Length but 0; then CRLF, all
 * within HEALTH_MAX_HEAD bytes and HEALTH_MAX_FIELDS fields.  Anything a worker could read
 * differently, or would refuse, is HEALTH_NO (tests/fuzz/fuzz_health.c checks this against the
 * worker's parser). */
enum health_match health_match(const char *buf, size_t len, const char *path, size_t *head_len);

/* The answer: 200 "ok" or 503 with the reason, Content-Length, no-store,
 * "Connection: keep-alive" or "close", and date_line ("Date: ...\r\n",
 * may be NULL).  head_only: HEAD, no body.  Returns the bytes written
 * (out has HEALTH_RESPONSE_MAX of room); *body_len gets the body's size. */
size_t health_response(char *out, enum health_state st, int head_only, int keepalive,
                       const char *date_line, size_t date_len, size_t *body_len);

/* The status health_response sends for st. */
int health_status(enum health_state st);

#endif
