/* Privilege dropping; see include/hugd/privs.h. */
#include "hugd/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int number(const char *s, long *out)
{
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return *s && !*end && !errno && *out >= 0;
}

static const char root_refusal[] =
    "refusing to run the application as root: give --user and --group, or "
    "--allow-root (allow_root = yes) to run it as root anyway";

/* The user hugd will run as: user (a name or a number) or, when NULL, the
 * one it runs as now.  uname is NULL for a number with no passwd entry. */
static int resolve_user(const char *user, uid_t *uid, gid_t *gid, const char **uname, char *err,
                        size_t errlen)
{
    long n;
    *uid = geteuid();
    *gid = getegid();
    *uname = NULL;
    if (!user || !*user)
        return 0;
    struct passwd *pw = number(user, &n) ? getpwuid((uid_t)n) : getpwnam(user);
    if (pw) {
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
        *uname = pw->pw_name;
    } else if (number(user, &n)) {
        *uid = (uid_t)n;
    } else {
        snprintf(err, errlen, "user '%s': no such user", user);
        return -1;
    }
    return 0;
}

int privs_check(const char *user, int allow_root, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;
    const char *uname;
    if (resolve_user(user, &uid, &gid, &uname, err, errlen) < 0)
        return -1;
    if (uid == 0 && !allow_root) {
        snprintf(err, errlen, "%s", root_refusal);
        return -1;
    }
    return 0;
}

int privs_drop(const char *user, const char *group, int allow_root, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;
    const char *uname;
    long n;
    if (resolve_user(user, &uid, &gid, &uname, err, errlen) < 0)
        return -1;
    if (group && *group) {
        struct group *gr = number(group, &n) ? getgrgid((gid_t)n) : getgrnam(group);
        if (gr) {
            gid = gr->gr_gid;
        } else if (number(group, &n)) {
            gid = (gid_t)n;
        } else {
            snprintf(err, errlen, "group '%s': no such group", group);
            return -1;
        }
    }
    if ((user && *user) || (group && *group)) {
        /* Group first: once the uid is gone we may no longer change it.
         * Each step must work; a half-dropped process must not serve. */
        int rc = uname ? initgroups(uname, gid) : setgroups(1, &gid);
        if (rc < 0 && geteuid() == 0) {
            snprintf(err, errlen, "setting supplementary groups: %s", strerror(errno));
            return -1;
        }
        if (setresgid(gid, gid, gid) < 0) {
            snprintf(err, errlen, "setresgid(%d): %s", (int)gid, strerror(errno));
            return -1;
        }
        if (setresuid(uid, uid, uid) < 0) {
            snprintf(err, errlen, "setresuid(%d): %s", (int)uid, strerror(errno));
            return -1;
        }
        if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
            snprintf(err, errlen, "could get root back after dropping it");
            return -1;
        }
    }
    if (geteuid() == 0 && !allow_root) {
        snprintf(err, errlen, "%s", root_refusal);
        return -1;
    }
    return 0;
}
