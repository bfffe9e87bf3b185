/* The access log: one line per response, in a format compiled once at
 * start-up from gunicorn's atoms (%(h)s, %(r)s, %({name}i)s...) or as JSON
 * lines.  It works on plain data (the request as far as it was parsed, the
 * status, the sizes, the times, the application's response headers) and
 * never sees a connection or a loop. */
#ifndef HUGD_ACCESSLOG_H
#define HUGD_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "hugd/buf.h"
#include "hugd/http.h"

/* Combined log format plus the request time in seconds. */
#define ACCESSLOG_DEFAULT "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\" %(L)s"
/* The format that asks for one JSON object per line. */
#define ACCESSLOG_JSON "json"

struct accesslog_entry {
    const struct http_request *req; /* parsed as far as it got (a bad request stops early) */
    int status;
    uint64_t bytes;        /* body bytes sent */
    double now;            /* wall clock when the response ended, seconds since the epoch */
    double duration;       /* seconds from the request's first byte */
    const char *peer;      /* the client's numeric address; NULL or "" when there is none */
    const char *resp_head; /* the application's headers, "Name: value\r\n"... */
    size_t resp_head_len;
};

struct accesslog_format;

/* Compile a format.  Returns NULL with a message in err (naming the first
 * atom it does not know) when the format is not valid. */
struct accesslog_format *accesslog_compile(const char *spec, char *err, size_t errlen);
void accesslog_free(struct accesslog_format *f);

/* Append one line, ending in '\n', to out. */
void accesslog_render(const struct accesslog_format *f, const struct accesslog_entry *e,
                      struct buf *out);

/* The process's format: set once at start-up, before the workers fork (NULL
 * or "" = the default).  Returns 0, or -1 with a message in err. */
int accesslog_setup(const char *spec, char *err, size_t errlen);
/* Render e with the process's format and write it to the access log. */
void accesslog_write(const struct accesslog_entry *e);

#endif
