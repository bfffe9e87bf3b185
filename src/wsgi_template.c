/* The environ template of one listening socket: what each request's
 * environ is copied from, and the values that stay in it from one request
 * to the next.  See wsgi_int.h.
 *
 * Most of a keep-alive client's requests carry the same Host, User-Agent
 * and Accept, come from the same address and often ask for the same path.
 * A value seen in two requests in a row moves into the template, so the
 * copy already holds it: no decode, no allocation and no dict insert
 * (about 150 instructions each) for it.  A value that changes every time
 * (a port, a request id) is put into the copy only, as before: it never
 * costs a second insert into the template.  A str is immutable, so the
 * app cannot tell a shared one from a new one.  Only the thread that
 * serves requests uses a template. */
#include "hugd/ascii.h"
#include "wsgi_int.h"

/* Header names most clients send, lower case, each with its slot. */
static const char *const common_names[] = {
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "authorization",
    "origin",
    "referer",
    "cache-control",
    "pragma",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "if-none-match",
    "if-modified-since",
    "forwarded",
    "upgrade-insecure-requests",
};
#define NCOMMON (sizeof(common_names) / sizeof(common_names[0]))

static PyObject *slot_key[TMPL_HEADER0 + NCOMMON];
static size_t common_len[NCOMMON];

int tmpl_nslots(void)
{
    return (int)(TMPL_HEADER0 + NCOMMON);
}

PyObject *tmpl_key(int slot)
{
    return slot_key[slot];
}

int tmpl_keys_init(PyObject *const *request_keys, PyObject *(*header_key)(const char *, size_t),
                   PyObject *content_type, PyObject *content_length)
{
    for (int i = 0; i < TMPL_HEADER0; i++)
        slot_key[i] = Py_NewRef(request_keys[i]);
    for (size_t i = 0; i < NCOMMON; i++) {
        const char *n = common_names[i];
        size_t len = strlen(n);
        PyObject *k;
        common_len[i] = len;
        if (strcmp(n, "content-type") == 0) {
            k = Py_NewRef(content_type);
        } else if (strcmp(n, "content-length") == 0) {
            k = Py_NewRef(content_length);
        } else {
            if (!(k = header_key(n, len)))
                return -1;
            PyUnicode_InternInPlace(&k);
        }
        slot_key[TMPL_HEADER0 + i] = k;
    }
    return 0;
}

int tmpl_header_slot(const char *name, size_t n)
{
    for (size_t i = 0; i < NCOMMON; i++)
        if (common_len[i] == n && ascii_case_eq(name, common_names[i], n))
            return TMPL_HEADER0 + (int)i;
    return -1;
}

int tmpl_init(struct env_template *t, PyObject *base)
{
    memset(t, 0, sizeof(*t));
    t->slots = calloc((size_t)tmpl_nslots(), sizeof(*t->slots));
    if (!t->slots)
        return PyErr_NoMemory(), -1;
    t->dict = base;
    return 0;
}

PyObject *tmpl_begin(struct env_template *t)
{
    t->gen++;
    t->seen_in_dict = 0;
    return PyDict_Copy(t->dict);
}

int tmpl_seen(const struct env_template *t, int slot)
{
    return t->slots[slot].gen == t->gen;
}

int tmpl_put(struct env_template *t, PyObject *env, int slot, PyObject *v)
{
    struct tmpl_slot *s = &t->slots[slot];
    int repeat = v == s->last;
    s->gen = t->gen;
    Py_INCREF(v);
    Py_XSETREF(s->last, v);
    if (s->in_dict)
        t->seen_in_dict++;
    if (v == s->in_dict)
        return 0; /* the copy holds it already */
    if (PyDict_SetItem(env, slot_key[slot], v) < 0)
        return -1;
    if (!repeat)
        return 0;
    if (PyDict_SetItem(t->dict, slot_key[slot], v) < 0)
        return -1;
    if (!s->in_dict) {
        t->n_in_dict++;
        t->seen_in_dict++;
    }
    Py_INCREF(v);
    Py_XSETREF(s->in_dict, v);
    return 0;
}

int tmpl_put_latin1(struct env_template *t, PyObject *env, int slot, const char *p, size_t n)
{
    PyObject *last = t->slots[slot].last, *v;
    /* A latin-1 str holds one byte a character: a memcmp tells. */
    if (last && (size_t)PyUnicode_GET_LENGTH(last) == n &&
        memcmp(PyUnicode_1BYTE_DATA(last), p, n) == 0)
        v = Py_NewRef(last);
    else if (!(v = PyUnicode_DecodeLatin1(p, (Py_ssize_t)n, NULL)))
        return -1;
    int rc = tmpl_put(t, env, slot, v);
    Py_DECREF(v);
    return rc;
}

int tmpl_end(struct env_template *t, PyObject *env)
{
    if (t->seen_in_dict == t->n_in_dict)
        return 0; /* the request set every key the template holds */
    for (int i = 0; i < tmpl_nslots(); i++) {
        struct tmpl_slot *s = &t->slots[i];
        if (!s->in_dict || s->gen == t->gen)
            continue;
        /* In the template but not in this request: out of its copy; out
         * of the template too once a second request in a row lacks it. */
        if (PyDict_DelItem(env, slot_key[i]) < 0)
            return -1;
        if (s->gen != t->gen - 1) {
            if (PyDict_DelItem(t->dict, slot_key[i]) < 0)
                return -1;
            Py_CLEAR(s->in_dict);
            t->n_in_dict--;
        }
    }
    return 0;
}
