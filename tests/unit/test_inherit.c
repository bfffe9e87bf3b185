/* HUGD_INHERIT, read and written (src/inherit.c), without exec: the
 * variable is set, read back, encoded and read again. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hugd/inherit.h"

static int load(struct inherited *in, const char *value)
{
    setenv("HUGD_INHERIT", value, 1);
    return inherit_from_env(in);
}

static void test_round_trip(void)
{
    struct inherited in, back;
    CHECK_INT(load(&in, "V 1\nL 3 0 unix:/run/a%20b.sock\nL 4 1 [::1]:80\nS 5\nW 2 99 6 1\n"
                        "Q 7 1 474554\nQ 8 0\nU 9\nT 4 3\n"),
              0);
    CHECK_INT(in.nls, 2);
    CHECK_MEM(in.ls[0].bind, strlen(in.ls[0].bind), "unix:/run/a b.sock");
    CHECK_INT(in.ls[1].systemd, 1);
    CHECK_INT(in.sb_fd, 5);
    CHECK_INT(in.nw, 1);
    CHECK_INT(in.w[0].pid, 99);
    CHECK_INT(in.nq, 2);
    CHECK_MEM(in.q[0].data, in.q[0].datalen, "GET");
    CHECK_INT(in.q[1].datalen, 0);
    CHECK_INT(in.upgrade_fd, 9);
    CHECK_INT(in.target, 4);
    CHECK_INT(getenv("HUGD_INHERIT") == NULL, 1);
    char *enc = inherit_encode(&in);
    CHECK_INT(load(&back, enc), 0);
    CHECK_MEM(back.ls[0].bind, strlen(back.ls[0].bind), "unix:/run/a b.sock");
    CHECK_MEM(back.q[0].data, back.q[0].datalen, "GET");
    CHECK_INT(back.w[0].slot, 2);
    free(enc);
    inherit_free(&in);
    inherit_free(&back);
}

static void test_escapes_at_the_end(void)
{
    /* Found by fuzzing: "%2" at the end of a bind made decode() step over
     * the terminating NUL and read past the buffer.  A '%' without two hex
     * digits after it is taken as it is. */
    struct inherited in;
    CHECK_INT(load(&in, "V 1\nL 3 0 a%2\nL 4 0 b%\nL 5 0 c%g1\nL 6 0 d%41"), 0);
    CHECK_INT(in.nls, 4);
    CHECK_MEM(in.ls[0].bind, strlen(in.ls[0].bind), "a%2");
    CHECK_MEM(in.ls[1].bind, strlen(in.ls[1].bind), "b%");
    CHECK_MEM(in.ls[2].bind, strlen(in.ls[2].bind), "c%g1");
    CHECK_MEM(in.ls[3].bind, strlen(in.ls[3].bind), "dA");
    inherit_free(&in);
}

static void test_long_bind(void)
{
    /* Found by fuzzing: a bind that encodes to more than an item holds. */
    char item[1200] = "V 1\nL 3 0 ";
    for (int i = 0; i < 342; i++)
        strcat(item, "%25");
    struct inherited in;
    CHECK_INT(load(&in, item), -1);
    inherit_free(&in);
    char ok[600] = "V 1\nL 3 0 unix:/";
    for (int i = 0; i < 100; i++)
        strcat(ok, "%25");
    CHECK_INT(load(&in, ok), 0);
    char *enc = inherit_encode(&in);
    struct inherited back;
    CHECK_INT(load(&back, enc), 0);
    CHECK_INT(strcmp(in.ls[0].bind, back.ls[0].bind), 0);
    free(enc);
    inherit_free(&in);
    inherit_free(&back);
}

static void test_bad_items(void)
{
    static const char *bad[] = {"V 2\n", "Q 5 0 zz\n", "Q 5 0 123\n", "Q 5 0 +1\n",
                                "W 5000 1 2 0\n", "X\n", "L 3\n",
                                /* found by fuzzing: an empty bind once decoded, which
                                 * could not be encoded again */
                                "L 2 8 %00\n", "L 2 8 a%00b\n",
                                /* found by fuzzing: numbers the encoder would not write */
                                "U 166666666666\n", "U -2\n", "L -1 0 a\n", "L 3 2 a\n",
                                "W 1 0 3 0\n", "W 1 5 3 7\n", "Q -4 0\n", "T 0 3\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct inherited in;
        CHECK_INT(load(&in, bad[i]), -1);
        inherit_free(&in);
    }
}

int main(void)
{
    test_round_trip();
    test_escapes_at_the_end();
    test_long_bind();
    test_bad_items();
    return CHECK_DONE();
}
