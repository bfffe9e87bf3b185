/* A growable byte buffer.  Allocation failure is fatal for the process
 * (a worker out of memory is better replaced than limping). */
#ifndef HUGD_BUF_H
#define HUGD_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *p;
    size_t len; /* bytes held */
    size_t off; /* bytes already consumed from the front */
    size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_free(struct buf *b);

static inline void buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0)
        return; /* memcpy(NULL, ..., 0) is undefined, and b->p may be NULL */
    if (b->cap - b->len < n)
        buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static inline size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

static inline void buf_clear(struct buf *b)
{
    b->len = b->off = 0;
}

#endif
