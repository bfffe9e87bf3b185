/* Growable byte buffer; see include/hugd/buf.h. */
#include "hugd/buf.h"

#include <stdio.h>
#include <unistd.h>

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->off && b->off == b->len) {
        /* Everything was consumed: start over instead of growing. */
        b->off = b->len = 0;
    }
    if (b->cap - b->len >= extra)
        return;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        static const char msg[] = "hugd: out of memory\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->off = b->cap = 0;
}
