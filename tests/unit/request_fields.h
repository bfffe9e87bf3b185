/* Building a parsed request's header fields by hand, for the code that
 * reads them without the parser (forwarded.c): what on_header_field and
 * on_header_value leave in struct http_request. */
#ifndef HUGD_TEST_REQUEST_FIELDS_H
#define HUGD_TEST_REQUEST_FIELDS_H

#include <stdlib.h>
#include <string.h>

#include "hugd/conn.h"

static inline void request_add_field(struct http_request *r, const char *name, const char *value)
{
    if (r->nhdrs == r->hcap) {
        r->hcap = r->hcap ? r->hcap * 2 : 8;
        r->hdrs = realloc(r->hdrs, (size_t)r->hcap * sizeof(*r->hdrs));
        if (!r->hdrs)
            abort();
    }
    struct http_header *h = &r->hdrs[r->nhdrs++];
    h->name = (uint32_t)r->arena.len;
    h->name_len = (uint32_t)strlen(name);
    buf_append_str(&r->arena, name);
    h->value = (uint32_t)r->arena.len;
    h->value_len = (uint32_t)strlen(value);
    buf_append_str(&r->arena, value);
}

static inline void request_free_fields(struct http_request *r)
{
    free(r->hdrs);
    r->hdrs = NULL;
    r->nhdrs = r->hcap = 0;
    buf_free(&r->arena);
}

#endif
