/* Trusted-peer lists (src/addrmatch.c), shared by proxy_allow_ips and
 * forwarded_allow_ips: addresses, ranges, "*", IPv4 seen through a
 * dual-stack socket, Unix-socket peers, and the errors a bad item gets. */
#include "hugd/addrmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "check.h"

static struct addrmatch list(const char *s)
{
    struct addrmatch m;
    char err[256] = "";
    int r = addrmatch_parse(&m, s, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "'%s': %s\n", s, err);
    CHECK_INT(r, 0);
    return m;
}

static int has(const struct addrmatch *m, const char *ip)
{
    struct addr16 a;
    int v4;
    if (addr16_parse(ip, strlen(ip), &a, &v4) < 0)
        return -1;
    return addrmatch_has(m, &a);
}

static void refused(const char *s, const char *msg)
{
    struct addrmatch m;
    char err[256] = "";
    CHECK_INT(addrmatch_parse(&m, s, err, sizeof(err)), -1);
    CHECK_MEM(err, strlen(err), msg);
    CHECK_INT(m.n, 0);
    CHECK_INT(m.any, 0);
}

static void test_default(void)
{
    struct addrmatch m = list("127.0.0.1,::1");
    CHECK_INT(has(&m, "127.0.0.1"), 1);
    CHECK_INT(has(&m, "::1"), 1);
    CHECK_INT(has(&m, "::ffff:127.0.0.1"), 1); /* a dual-stack socket's view of it */
    CHECK_INT(has(&m, "127.0.0.2"), 0);
    CHECK_INT(has(&m, "::2"), 0);
    CHECK_INT(has(&m, "0.0.0.1"), 0);
    addrmatch_free(&m);
}

static void test_ranges(void)
{
    struct addrmatch m = list(" 10.0.0.0/8 , , 192.168.1.7/24,fd00::/8,2001:db8::/127 ");
    CHECK_INT(m.n, 4);
    CHECK_INT(has(&m, "10.255.1.1"), 1);
    CHECK_INT(has(&m, "11.0.0.0"), 0);
    CHECK_INT(has(&m, "9.255.255.255"), 0);
    CHECK_INT(has(&m, "192.168.1.200"), 1); /* written from one of its addresses */
    CHECK_INT(has(&m, "192.168.2.1"), 0);
    CHECK_INT(has(&m, "fdab::1"), 1);
    CHECK_INT(has(&m, "fe00::1"), 0);
    CHECK_INT(has(&m, "2001:db8::1"), 1);
    CHECK_INT(has(&m, "2001:db8::2"), 0);
    CHECK_INT(has(&m, "::ffff:10.1.2.3"), 1);
    addrmatch_free(&m);
    m = list("0.0.0.0/0");
    CHECK_INT(has(&m, "203.0.113.1"), 1);
    CHECK_INT(has(&m, "2001:db8::1"), 0); /* every IPv4 address, no IPv6 one */
    addrmatch_free(&m);
    m = list("::/0");
    CHECK_INT(has(&m, "2001:db8::1"), 1);
    CHECK_INT(has(&m, "203.0.113.1"), 1);
    addrmatch_free(&m);
    m = list("172.16.0.0/12,10.1.2.3/32,10.9.0.0/15");
    CHECK_INT(has(&m, "172.31.255.255"), 1);
    CHECK_INT(has(&m, "172.32.0.0"), 0);
    CHECK_INT(has(&m, "10.1.2.3"), 1);
    CHECK_INT(has(&m, "10.1.2.4"), 0);
    CHECK_INT(has(&m, "10.9.255.1"), 1);
    CHECK_INT(has(&m, "10.8.0.1"), 1);
    CHECK_INT(has(&m, "10.10.0.1"), 0);
    addrmatch_free(&m);
}

static void test_any_and_empty(void)
{
    struct addrmatch m = list("*");
    CHECK_INT(m.any, 1);
    CHECK_INT(has(&m, "198.51.100.1"), 1);
    CHECK_INT(has(&m, "2001:db8::1"), 1);
    addrmatch_free(&m);
    m = list("");
    CHECK_INT(has(&m, "127.0.0.1"), 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&un), 0); /* nobody */
    addrmatch_free(&m);
    m = list(" , ");
    CHECK_INT(m.n + m.any, 0);
    addrmatch_free(&m);
}

static void test_peers(void)
{
    struct addrmatch m = list("127.0.0.1,2001:db8::/32");
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&in), 1);
    inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&in), 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&in6), 1);
    inet_pton(AF_INET6, "2001:db8:1::5", &in6.sin6_addr);
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&in6), 1);
    inet_pton(AF_INET6, "2001:db9::5", &in6.sin6_addr);
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&in6), 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_INT(addrmatch_peer(&m, (struct sockaddr *)&un), 1);
    struct sockaddr other = {.sa_family = AF_UNSPEC};
    CHECK_INT(addrmatch_peer(&m, &other), 0);
    addrmatch_free(&m);
}

static void test_errors(void)
{
    refused("127.0.0.1,foo", "'foo' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("10.0.0.0/33", "'10.0.0.0/33': the prefix length must be 0..32");
    refused("::1/129", "'::1/129': the prefix length must be 0..128");
    refused("10.0.0.0/", "'10.0.0.0/': the prefix length must be 0..32");
    refused("10.0.0.0/08", "'10.0.0.0/08': the prefix length must be 0..32");
    refused("10.0.0.0/-1", "'10.0.0.0/-1': the prefix length must be 0..32");
    refused("10.0.0.0/8x", "'10.0.0.0/8x': the prefix length must be 0..32");
    refused("[::1]", "'[::1]' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("1.2.3", "'1.2.3' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("localhost", "'localhost' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("fe80::1%eth0",
            "'fe80::1%eth0' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("**", "'**' is not an IP address or a CIDR range (e.g. 10.0.0.0/8)");
    refused("127.0.0.1 ::1", "'127.0.0.1 ::1' is not an IP address or a CIDR range (e.g. "
                             "10.0.0.0/8)");
}

static void test_text(void)
{
    struct addr16 a;
    int v4;
    char out[ADDR_TEXT_MAX];
    CHECK_INT(addr16_parse("192.0.2.1", 9, &a, &v4), 0);
    CHECK_INT(v4, 1);
    addr16_text(&a, v4, out);
    CHECK_MEM(out, strlen(out), "192.0.2.1");
    CHECK_INT(addr16_parse("2001:DB8:0:0::1", 15, &a, &v4), 0);
    CHECK_INT(v4, 0);
    addr16_text(&a, v4, out);
    CHECK_MEM(out, strlen(out), "2001:db8::1");
    CHECK_INT(addr16_parse("::ffff:192.0.2.1", 16, &a, &v4), 0);
    addr16_text(&a, v4, out);
    CHECK_MEM(out, strlen(out), "::ffff:192.0.2.1");
    CHECK_INT(addr16_parse("192.0.2.1\0", 10, &a, &v4), -1);
    CHECK_INT(addr16_parse("", 0, &a, &v4), -1);
    CHECK_INT(addr16_parse("1.2.3.4:80", 10, &a, &v4), -1);
    static const char longest[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    CHECK_INT(sizeof(longest), ADDR_TEXT_MAX);
    CHECK_INT(addr16_parse(longest, sizeof(longest) - 1, &a, &v4), 0);
    addr16_text(&a, v4, out);
    CHECK_MEM(out, strlen(out), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

int main(void)
{
    test_default();
    test_ranges();
    test_any_and_empty();
    test_peers();
    test_errors();
    test_text();
    return CHECK_DONE();
}
