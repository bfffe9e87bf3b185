/* The master's mode: what it is doing, in one field (see master_int.h for
 * what each means).  Every change goes through master_set_mode, which
 * knows the transitions the master makes and logs each at debug level, so
 * that a log at that level tells the story of a reload, an upgrade or a
 * stop in order. */
#include "hugd/log.h"
#include "master_int.h"

static const char *const names[] = {
    [MODE_SERVING] = "serving",     [MODE_RELOADING] = "reloading",
    [MODE_UPGRADING] = "upgrading", [MODE_HANDOVER] = "handing over",
    [MODE_STOPPING] = "stopping",   [MODE_STOPPING_NOW] = "stopping now",
};

#define TO(x) (1u << (x))

/* The modes each mode may go to. */
static const unsigned allowed[] = {
    [MODE_SERVING] =
        TO(MODE_RELOADING) | TO(MODE_UPGRADING) | TO(MODE_STOPPING) | TO(MODE_STOPPING_NOW),
    /* The probe ended (failed, or TERM came during it); a stop. */
    [MODE_RELOADING] = TO(MODE_SERVING) | TO(MODE_STOPPING) | TO(MODE_STOPPING_NOW),
    /* The new master died before it was ready, or it is ready; a stop. */
    [MODE_UPGRADING] =
        TO(MODE_SERVING) | TO(MODE_HANDOVER) | TO(MODE_STOPPING) | TO(MODE_STOPPING_NOW),
    /* The new master of an upgrade that a stop overtook said it is ready:
     * it gets what we still hold. */
    [MODE_STOPPING] = TO(MODE_STOPPING_NOW) | TO(MODE_HANDOVER),
    [MODE_STOPPING_NOW] = TO(MODE_HANDOVER),
    /* The last one: our listening sockets are the new master's, whatever
     * comes after (a stop acts on our workers only). */
    [MODE_HANDOVER] = 0,
};

static const char *name_of(enum master_mode mode)
{
    return mode >= 0 && mode <= MODE_STOPPING_NOW ? names[mode] : "?";
}

void master_set_mode(struct master *m, enum master_mode to, const char *why)
{
    if (to == m->mode)
        return;
    if (!(allowed[m->mode] & TO(to)))
        log_errx("mode: %s -> %s (%s) is not a change the master makes; made all the same",
                 name_of(m->mode), name_of(to), why);
    else
        log_debug("mode: %s -> %s (%s)", name_of(m->mode), name_of(to), why);
    m->mode = to;
}
