/* --reload, for development: the master watches the application's source
 * files with inotify and reloads (as on HUP) when one changes.  A reload
 * probes the new code first, so a save with a syntax error logs the
 * traceback and leaves the running code serving; the next save retries.
 *
 * Editors save in place (IN_CLOSE_WRITE) or by writing a new file and
 * renaming it over the old one (IN_MOVED_TO, and the old inode is gone):
 * so the folders are watched, not the files, and an event counts when its
 * name is one of the files.  A burst of events (a save, a formatter after
 * it, a checkout of several files) makes one reload, a moment after the
 * last. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "hugd/log.h"
#include "master_int.h"

#define SETTLE_SECONDS 0.1
#define MAX_WATCHED 4096

struct watched {
    int wd;
    char *name; /* the file's name within its folder */
};

static int ifd = -1;
static struct watched files[MAX_WATCHED];
static int nfiles;
static ev_io io_w;
static ev_timer settle_w;
static char changed[NAME_MAX + 1];

static void add(const char *path)
{
    if (nfiles == MAX_WATCHED)
        return;
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 0;
    if (dl >= sizeof(dir))
        return;
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    /* The same folder gives the same descriptor back. */
    int wd = inotify_add_watch(ifd, dl ? dir : "/",
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR);
    if (wd < 0) {
        log_err(errno, "reload: cannot watch %s", dl ? dir : "/");
        return;
    }
    const char *name = slash ? slash + 1 : path;
    for (int i = 0; i < nfiles; i++)
        if (files[i].wd == wd && strcmp(files[i].name, name) == 0)
            return;
    if (!(files[nfiles].name = strdup(name)))
        return;
    files[nfiles++].wd = wd;
}

int watch_files(char **sources, const char *extra)
{
    ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd < 0)
        return -1;
    for (char **p = sources; p && *p; p++)
        add(*p);
    for (const char *s = extra; s && *s;) {
        size_t n = strcspn(s, ",");
        char rel[PATH_MAX], abs[PATH_MAX];
        if (n && n < sizeof(rel)) {
            memcpy(rel, s, n);
            rel[n] = '\0';
            /* A file that does not exist yet is watched where it will be. */
            if (realpath(rel, abs) ||
                (rel[0] == '/' && strlen(rel) < sizeof(abs) && strcpy(abs, rel)))
                add(abs);
            else
                log_warnx("reload: %s: %s; not watched", rel, strerror(errno));
        }
        s += n + (s[n] == ',');
    }
    log_info("reload: watching %d file(s) of the application", nfiles);
    return 0;
}

static void on_settled(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct master *m = t->data;
    log_info("reload: %s changed", changed);
    reload_start(m);
}

static void on_events(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof(*e) + e->len;
            if (!e->len)
                continue;
            for (int i = 0; i < nfiles; i++) {
                if (files[i].wd != e->wd || strcmp(files[i].name, e->name) != 0)
                    continue;
                snprintf(changed, sizeof(changed), "%s", e->name);
                /* Restarted by each event: one reload after the last. */
                ev_timer_stop(loop, &settle_w);
                ev_timer_set(&settle_w, SETTLE_SECONDS, 0.);
                ev_timer_start(loop, &settle_w);
            }
        }
    }
}

void watch_start(struct master *m)
{
    if (ifd < 0)
        return;
    ev_timer_init(&settle_w, on_settled, SETTLE_SECONDS, 0.);
    settle_w.data = m;
    ev_io_init(&io_w, on_events, ifd, EV_READ);
    ev_io_start(m->loop, &io_w);
}
