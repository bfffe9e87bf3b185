/* The access log formatter, without sockets: requests are parsed from
 * bytes (so they are exactly as a worker would have them, also when parsing
 * stopped early) and rendered with compiled formats. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "hugd/accesslog.h"
#include "hugd/http.h"

/* What a connection gives the parser: its llhttp state, the request it
 * fills and the input it reads. */
struct reader {
    llhttp_t parser;
    struct http_request req;
    struct buf in;
};

/* 2001-09-09 01:46:40 UTC, and a quarter of a second. */
#define NOW 1000000000.25

#define CHECK_STR(a, b) CHECK_MEM((a), strlen(a), (b))

static struct reader *parse(const char *bytes, enum http_feed_result want)
{
    struct reader *c = calloc(1, sizeof(*c));
    http_reader_init(&c->parser, &c->req);
    buf_append_str(&c->in, bytes);
    CHECK_INT(http_feed(&c->parser, &c->in), want);
    return c;
}

static void drop(struct reader *c)
{
    http_request_free(&c->req);
    buf_free(&c->in);
    free(c);
}

/* The line for c with format spec (NULL-terminated in a static buffer). */
static const char *line(const char *spec, const struct reader *c, int status, const char *head)
{
    static char text[8192];
    char err[256] = "";
    struct accesslog_format *f = accesslog_compile(spec, err, sizeof err);
    CHECK_STR(err, "");
    if (!f)
        return "";
    struct accesslog_entry e = {
        .req = &c->req,
        .status = status,
        .bytes = 1234,
        .now = NOW,
        .duration = 1.5,
        .peer = "192.0.2.7",
        .resp_head = head,
        .resp_head_len = head ? strlen(head) : 0,
    };
    struct buf out = {0};
    accesslog_render(f, &e, &out);
    accesslog_free(f);
    snprintf(text, sizeof text, "%.*s", (int)out.len, out.p);
    buf_free(&out);
    return text;
}

static const char full[] = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\n"
                           "User-Agent: agent/1\r\nX-Id: abc\r\n"
                           "Authorization: Basic dXNlcjE6c2VjcmV0\r\n\r\n";

static void test_default_is_combined_plus_time(void)
{
    struct reader *c = parse(full, FEED_REQUEST);
    CHECK_STR(line(ACCESSLOG_DEFAULT, c, 200, NULL),
              "192.0.2.7 - user1 [09/Sep/2001:01:46:40 +0000] \"GET /a/b?x=1&y=2 HTTP/1.1\" 200 "
              "1234 \"http://r/\" \"agent/1\" 1.500000\n");
    drop(c);
}

static void test_each_atom(void)
{
    struct reader *c = parse(full, FEED_REQUEST);
    static const struct {
        const char *spec, *want;
    } cases[] = {
        {"%(h)s", "192.0.2.7\n"},
        {"%(l)s", "-\n"},
        {"%(u)s", "user1\n"},
        {"%(t)s", "[09/Sep/2001:01:46:40 +0000]\n"},
        {"%(r)s", "GET /a/b?x=1&y=2 HTTP/1.1\n"},
        {"%(m)s", "GET\n"},
        {"%(U)s", "/a/b\n"},
        {"%(q)s", "x=1&y=2\n"},
        {"%(H)s", "HTTP/1.1\n"},
        {"%(s)s", "201\n"},
        {"%(b)s %(B)s", "1234 1234\n"},
        {"%(f)s", "http://r/\n"},
        {"%(a)s", "agent/1\n"},
        {"%(T)s %(M)s %(D)s %(L)s", "1 1500 1500000 1.500000\n"},
        {"%({x-id}i)s %({X-ID}i)s %({missing}i)s", "abc abc -\n"},
        {"%({content-type}o)s|%({X-Out}o)s|%({nope}o)s", "text/plain|two|-\n"},
        {"100%% %(s)s%%", "100% 201%\n"},
        {"", "\n"},
        {"no atoms", "no atoms\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_STR(line(cases[i].spec, c, 201, "Content-Type: text/plain\r\nX-Out: two\r\n"),
                  cases[i].want);
    char want[64];
    snprintf(want, sizeof want, "<%d>\n", (int)getpid());
    CHECK_STR(line("%(p)s", c, 200, NULL), want);
    drop(c);
}

static void test_no_query_no_user(void)
{
    struct reader *c = parse("POST /p HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n", FEED_REQUEST);
    CHECK_STR(line("[%(q)s] %(u)s %(U)s %(H)s %(f)s", c, 200, NULL), "[] - /p HTTP/1.0 -\n");
    drop(c);
}

/* A request refused while parsing: only what was parsed is logged, and the
 * rest is "-" (never a method or version that was not read). */
static void test_malformed(void)
{
    struct reader *c = parse("\x01\x02 garbage\r\n\r\n", FEED_ERROR);
    CHECK_STR(line("\"%(r)s\" %(s)s %(m)s %(U)s %(q)s %(H)s", c, 400, NULL),
              "\"- - -\" 400 - - - -\n");
    drop(c);

    /* A version llhttp refuses is not logged as one... */
    c = parse("GET /x HTTP/9.9\r\n\r\n", FEED_ERROR);
    CHECK_STR(line("\"%(r)s\" %(s)s", c, c->req.error_status, NULL), "\"GET /x -\" 505\n");
    drop(c);
    /* ...one it parsed and hugd refuses is. */
    c = parse("GET /x HTTP/2.0\r\nHost: h\r\n\r\n", FEED_ERROR);
    CHECK_STR(line("\"%(r)s\" %(s)s", c, c->req.error_status, NULL), "\"GET /x HTTP/2.0\" 505\n");
    drop(c);

    /* Version parsed, then too many header bytes. */
    struct http_limits l = {8190, 100, 16, 0, 1 << 20};
    http_set_limits(&l);
    c = parse("PUT /big HTTP/1.1\r\nX-Long: 0123456789abcdef\r\n\r\n", FEED_ERROR);
    CHECK_INT(c->req.error_status, 431);
    CHECK_STR(line("\"%(r)s\" %(s)s", c, 431, NULL), "\"PUT /big HTTP/1.1\" 431\n");
    drop(c);
    struct http_limits dflt = {8190, 100, 8190, 0, 1 << 20};
    http_set_limits(&dflt);

    /* Nothing at all arrived (the arena was never allocated). */
    struct reader *empty = calloc(1, sizeof(*empty));
    http_reader_init(&empty->parser, &empty->req);
    CHECK_STR(line("%(r)s %({host}i)s %(a)s %(u)s", empty, 408, NULL), "- - - - - -\n");
    drop(empty);
}

static void test_escaping(void)
{
    struct reader *c =
        parse("GET /q HTTP/1.1\r\nHost: h\r\nUser-Agent: a\"b\\c\xe9\r\n\r\n", FEED_REQUEST);
    CHECK_STR(line("\"%(a)s\"", c, 200, NULL), "\"a\\\"b\\\\c\\xe9\"\n");
    CHECK_STR(line("json", c, 200, NULL) + strlen(line("json", c, 200, NULL)) - 1, "\n");
    const char *j = line("json", c, 200, NULL);
    CHECK_INT(strstr(j, "\"user_agent\":\"a\\\"b\\\\c\\u00e9\"") != NULL, 1);
    drop(c);
}

static void test_json(void)
{
    struct reader *c = parse(full, FEED_REQUEST);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"time\":\"2001-09-09T01:46:40.250+00:00\",\"remote_addr\":\"192.0.2.7\","
             "\"user\":\"user1\",\"method\":\"GET\",\"url\":\"/a/b?x=1&y=2\",\"path\":\"/a/b\","
             "\"query\":\"x=1&y=2\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":1234,"
             "\"duration\":1.500000,\"referer\":\"http://r/\",\"user_agent\":\"agent/1\","
             "\"pid\":%d}\n",
             (int)getpid());
    CHECK_STR(line("json", c, 200, NULL), want);
    drop(c);

    c = parse("\x01 bad\r\n\r\n", FEED_ERROR);
    const char *j = line("json", c, 400, NULL);
    CHECK_INT(strstr(j, "\"method\":null,\"url\":null,\"path\":null,\"query\":null,"
                        "\"protocol\":null,\"status\":400") != NULL,
              1);
    drop(c);
}

static void test_compile_errors(void)
{
    static const struct {
        const char *spec, *err;
    } cases[] = {
        {"%(z)s", "unknown atom %(z)s"},
        {"%(host)s", "unknown atom %(host)s"},
        {"%({x}e)s", "unknown atom %({x}e)s"},
        {"%({a b}i)s", "%({a b}i)s: 'a b' is not a header name"},
        {"%(h)d", "'%(h)d' at byte 1: expected %(NAME)s or %%"},
        {"50% off", "'% off' at byte 3: expected %(NAME)s or %%"},
        {"%(h", "'%(h' at byte 1: expected %(NAME)s or %%"},
        {"trailing %", "'%' at byte 10: expected %(NAME)s or %%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        struct accesslog_format *f = accesslog_compile(cases[i].spec, err, sizeof err);
        CHECK_INT(f == NULL, 1);
        CHECK_MEM(err, strlen(cases[i].err) <= strlen(err) ? strlen(cases[i].err) : strlen(err),
                  cases[i].err);
        accesslog_free(f);
    }
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_default_is_combined_plus_time();
    test_each_atom();
    test_no_query_no_user();
    test_malformed();
    test_escaping();
    test_json();
    test_compile_errors();
    return CHECK_DONE();
}
