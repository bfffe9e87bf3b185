/* Assertion macros for the unit tests: each failure prints the file, the
 * line and both values; main ends with CHECK_DONE(), which prints
 * "N passed, M failed" and gives the exit code. */
#ifndef HUGD_CHECK_H
#define HUGD_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ == vb_) {                                                                          \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s is %lld, expected %s = %lld\n", __FILE__, __LINE__, #a,     \
                    va_, #b, vb_);                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(p, n, s)                                                                         \
    do {                                                                                           \
        const char *vp_ = (const char *)(p);                                                       \
        size_t vn_ = (size_t)(n);                                                                  \
        const char *vs_ = (s);                                                                     \
        if (vp_ && vn_ == strlen(vs_) && memcmp(vp_, vs_, vn_) == 0) {                             \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s is \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, #p,    \
                    vp_ ? (int)vn_ : 4, vp_ ? vp_ : "NULL", vs_);                                  \
        }                                                                                          \
    } while (0)

#define CHECK_DONE()                                                                               \
    (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

#endif
