/* The master's reading of a health check (health_match), case by case:
 * what it answers itself, what it waits for, and what it leaves to a
 * worker; and the response it sends. */
#include <stdlib.h>

#include "../../src/health.c"
#include "check.h"

static enum health_match match(const char *s, size_t *head)
{
    return health_match(s, strlen(s), "/health", head);
}

#define CHECK_MATCH(s, want)                                                                       \
    do {                                                                                           \
        size_t h_;                                                                                 \
        CHECK_INT(match((s), &h_), (want));                                                        \
    } while (0)

static void complete_heads(void)
{
    size_t head;
    const char *get = "GET /health HTTP/1.1\r\nHost: 10.0.0.1:8000\r\nUser-Agent: x\r\n\r\n";
    CHECK_INT(match(get, &head), HEALTH_GET);
    CHECK_INT(head, strlen(get));
    /* What HAProxy's option httpchk sends (HTTP/1.0, no Host). */
    CHECK_MATCH("GET /health HTTP/1.0\r\n\r\n", HEALTH_GET);
    CHECK_MATCH("HEAD /health HTTP/1.1\r\nhost: a\r\n\r\n", HEALTH_HEAD);
    CHECK_MATCH("GET /health?from=lb&x=%41 HTTP/1.1\r\nHost: h\r\n\r\n", HEALTH_GET);
    CHECK_MATCH("GET /health HTTP/1.1\r\nContent-Length: 0\r\nX:\r\nHost: h\r\n"
                "Y: \t a b \t\r\n\r\n",
                HEALTH_GET);

    /* What follows the head is the caller's business: head is its end. */
    const char *two = "GET /health HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(match(two, &head), HEALTH_GET);
    CHECK_INT(head, strlen("GET /health HTTP/1.0\r\n\r\n"));
}

static void not_health(void)
{
    CHECK_MATCH("GET / HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /healthz HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health/ HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /healt HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health# HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health?a b HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health?<x> HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET http://a/health HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("POST /health HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("get /health HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("OPTIONS /health HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET  /health HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health  HTTP/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1 \r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/2.0\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health http/1.1\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("\r\nGET /health HTTP/1.1\r\n\r\n", HEALTH_NO);
    /* Line structure a worker refuses, or could read differently. */
    CHECK_MATCH("GET /health HTTP/1.1\n\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: b\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: b\rc\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: b\r\n c\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\n A: b\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA b: c\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA : c\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\n: c\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nNoColon\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: b\x01\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: b\x7f\r\n\r\n", HEALTH_NO);
    /* obs-text: the worker refuses it (400), so the master leaves it to the worker. */
    CHECK_MATCH("GET /health HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n", HEALTH_NO);
    /* Framing or routing the worker checks: left to it. */
    CHECK_MATCH("GET /health HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\n\r\n", HEALTH_NO); /* 1.1 without Host */
    CHECK_MATCH("GET /health HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nHost: a b\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nContent-Length: 00\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.0\r\nContent-Length: 0\t\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.0\r\nContent-Length: 0 \r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.0\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", HEALTH_NO);
}

static void partial_heads(void)
{
    /* Every prefix of a health check waits for more; none is answered. */
    const char *full = "HEAD /health?x=1 HTTP/1.1\r\nHost: h:1\r\nAccept: */*\r\n\r\n";
    for (size_t n = 1; n < strlen(full); n++) {
        size_t head = 99;
        enum health_match m = health_match(full, n, "/health", &head);
        if (m != HEALTH_MORE)
            fprintf(stderr, "prefix of %zu bytes: %d\n", n, (int)m);
        CHECK_INT(m, HEALTH_MORE);
        CHECK_INT(head, 0);
    }
    CHECK_MATCH("", HEALTH_MORE);
    /* A prefix that cannot become one is answered by a worker at once. */
    CHECK_MATCH("GET /x", HEALTH_NO);
    CHECK_MATCH("GET /healthy", HEALTH_NO);
    CHECK_MATCH("PUT", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.2", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA b", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\r\nA: \x02", HEALTH_NO);
    CHECK_MATCH("GET /health HTTP/1.1\rX", HEALTH_NO);

    /* More fields than HEALTH_MAX_FIELDS: left to a worker. */
    char many[2048] = "GET /health HTTP/1.0\r\n";
    for (int i = 0; i < HEALTH_MAX_FIELDS; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    CHECK_MATCH(many, HEALTH_GET);
    strcpy(many + strlen(many) - 2, "A: b\r\n\r\n");
    CHECK_MATCH(many, HEALTH_NO);

    /* Longer than HEALTH_MAX_HEAD without an end: not one. */
    char big[HEALTH_MAX_HEAD + 64];
    strcpy(big, "GET /health HTTP/1.1\r\nX-Pad: ");
    size_t n = strlen(big);
    memset(big + n, 'a', sizeof(big) - n);
    size_t head;
    CHECK_INT(health_match(big, HEALTH_MAX_HEAD - 1, "/health", &head), HEALTH_MORE);
    CHECK_INT(health_match(big, HEALTH_MAX_HEAD, "/health", &head), HEALTH_NO);
    CHECK_INT(health_match(big, sizeof(big), "/health", &head), HEALTH_NO);
}

static void targets(void)
{
    CHECK_INT(health_target_is("/up", 3, "/up"), 1);
    CHECK_INT(health_target_is("/up?", 4, "/up"), 1);
    CHECK_INT(health_target_is("/up?a=b/c?d", 11, "/up"), 1);
    CHECK_INT(health_target_is("/up/", 4, "/up"), 0);
    CHECK_INT(health_target_is("/u", 2, "/up"), 0);
    CHECK_INT(health_target_is("/up?\"", 5, "/up"), 0);
    CHECK_INT(health_target_is("/_status/lb", 11, "/_status/lb"), 1);
}

static void responses(void)
{
    char out[HEALTH_RESPONSE_MAX];
    size_t body;
    const char date[] = "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n";
    size_t n = health_response(out, HEALTH_OK, 0, 1, date, strlen(date), &body);
    CHECK_MEM(out, n,
              "HTTP/1.1 200 OK\r\nServer: hugd\r\nContent-Type: text/plain\r\n"
              "Content-Length: 3\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n"
              "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\nok\n");
    CHECK_INT(body, 3);
    n = health_response(out, HEALTH_DRAINING, 1, 0, NULL, 0, &body);
    CHECK_MEM(out, n,
              "HTTP/1.1 503 Service Unavailable\r\nServer: hugd\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
    CHECK_INT(body, 0);
    n = health_response(out, HEALTH_QUEUE_FULL, 0, 0, NULL, 0, &body);
    CHECK_INT(memcmp(out + n - 11, "queue full\n", 11), 0);
    n = health_response(out, HEALTH_NO_WORKER, 0, 0, NULL, 0, &body);
    CHECK_INT(memcmp(out + n - 10, "no worker\n", 10), 0);
    CHECK_INT(health_status(HEALTH_OK), 200);
    CHECK_INT(health_status(HEALTH_NO_WORKER), 503);
}

int main(void)
{
    complete_heads();
    not_health();
    partial_heads();
    targets();
    responses();
    return CHECK_DONE();
}
