/* libFuzzer harness for the state handed across exec (src/inherit.c).
 *
 * Each input is a HUGD_INHERIT value (cut at its first NUL, as the
 * environment would).  Reading it must either fail cleanly or give a state
 * that, encoded again (what a master passes to the binary it executes),
 * reads back as the same state.  Descriptor numbers in the input are only
 * flagged close-on-exec or not: nothing is executed here.
 * See tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hugd/inherit.h"

static int same(const struct inherited *a, const struct inherited *b)
{
    if (a->nls != b->nls || a->sb_fd != b->sb_fd || a->nw != b->nw || a->nq != b->nq ||
        a->upgrade_fd != b->upgrade_fd || a->target != b->target ||
        (a->target && a->workers_setting != b->workers_setting))
        return 0;
    for (int i = 0; i < a->nls; i++)
        if (a->ls[i].fd != b->ls[i].fd || a->ls[i].systemd != b->ls[i].systemd ||
            !a->ls[i].bind != !b->ls[i].bind ||
            (a->ls[i].bind && strcmp(a->ls[i].bind, b->ls[i].bind) != 0))
            return 0;
    for (int i = 0; i < a->nw; i++)
        if (memcmp(&a->w[i], &b->w[i], sizeof(a->w[i])) != 0)
            return 0;
    for (int i = 0; i < a->nq; i++)
        if (a->q[i].fd != b->q[i].fd || a->q[i].listener != b->q[i].listener ||
            a->q[i].datalen != b->q[i].datalen ||
            (a->q[i].datalen && memcmp(a->q[i].data, b->q[i].data, a->q[i].datalen) != 0))
            return 0;
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    if (!value)
        return 0;
    memcpy(value, data, size);
    value[size] = 0;
    if (setenv("HUGD_INHERIT", value, 1) < 0) {
        free(value);
        return 0;
    }
    free(value);
    struct inherited a, b;
    if (inherit_from_env(&a) < 0) {
        inherit_free(&a);
        return 0;
    }
    char *encoded = inherit_encode(&a);
    if (!encoded)
        abort();
    setenv("HUGD_INHERIT", encoded, 1);
    if (inherit_from_env(&b) < 0) {
        fprintf(stderr, "an encoded state does not read back:\n%s\n", encoded);
        abort();
    }
    if (!same(&a, &b)) {
        fprintf(stderr, "an encoded state reads back different:\n%s\n", encoded);
        abort();
    }
    free(encoded);
    inherit_free(&a);
    inherit_free(&b);
    return 0;
}
