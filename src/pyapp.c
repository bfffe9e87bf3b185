/* Embedded CPython: start-up and loading the application. */
#include "hugd/pyapp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hugd_build.h"

/* The hugd Python package: from the source tree when the binary runs from
 * its build folder, else from where meson installed it. */
static const char *python_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        if (strcmp(exe, HUGD_BUILD_DIR) == 0)
            return HUGD_SOURCE_PYDIR;
    }
    return HUGD_INSTALL_PYDIR;
}

/* ---- virtualenvs ------------------------------------------------------ */

static char *venv_dir; /* absolute; NULL: none */

/* The version a pyvenv.cfg names ("version = 3.11.2", or virtualenv's
 * "version_info = 3.11.2.final.0"), into out; 0 when it names none. */
static int venv_version(FILE *f, char *out, size_t len)
{
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        char *k = line, *v = eq + 1, *end = eq;
        while (*k == ' ' || *k == '\t')
            k++;
        while (end > k && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        v += strspn(v, " \t");
        v[strcspn(v, " \t\r\n")] = '\0';
        if ((strcmp(k, "version") == 0 || strcmp(k, "version_info") == 0) && *v) {
            snprintf(out, len, "%s", v);
            return 1;
        }
    }
    return 0;
}

/* "3.11.2..." -> 3, 11; -1 when it does not start like a version. */
static int major_minor(const char *v, int *major, int *minor)
{
    char *end;
    long a = strtol(v, &end, 10);
    if (end == v || *end != '.')
        return -1;
    const char *m = end + 1;
    long b = strtol(m, &end, 10);
    if (end == m)
        return -1;
    *major = (int)a;
    *minor = (int)b;
    return 0;
}

int pyapp_use_virtualenv(const struct hugd_config *c, char *err, size_t errlen)
{
    const char *dir = c->virtualenv, *from = "virtualenv";
    if (!dir || !*dir) {
        dir = getenv("VIRTUAL_ENV");
        from = "VIRTUAL_ENV";
    }
    free(venv_dir);
    venv_dir = NULL;
    if (!dir || !*dir)
        return 0;
    char *abs = realpath(dir, NULL);
    if (!abs) {
        snprintf(err, errlen, "%s %s: %s", from, dir, strerror(errno));
        return -1;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/pyvenv.cfg", abs);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s %s is not a virtualenv: %s: %s (make one with python3 -m venv)",
                 from, dir, path, strerror(errno));
        free(abs);
        return -1;
    }
    char version[64];
    int named = venv_version(f, version, sizeof(version));
    fclose(f);
    /* The interpreter hugd runs, not the headers it was built with: they
     * are the same on a sound install, and the library is what counts. */
    int want_major, want_minor, major, minor;
    if (major_minor(Py_GetVersion(), &want_major, &want_minor) < 0) {
        want_major = PY_MAJOR_VERSION;
        want_minor = PY_MINOR_VERSION;
    }
    if (named &&
        (major_minor(version, &major, &minor) < 0 || major != want_major || minor != want_minor)) {
        snprintf(err, errlen,
                 "%s %s is for Python %s, but hugd embeds Python %d.%d: make it with "
                 "python%d.%d -m venv",
                 from, dir, version, want_major, want_minor, want_major, want_minor);
        free(abs);
        return -1;
    }
    venv_dir = abs;
    return 0;
}

const char *pyapp_virtualenv(void)
{
    return venv_dir;
}

static int set_argv(PyConfig *pc, const char *target)
{
    wchar_t *argv[2];
    argv[0] = Py_DecodeLocale("hugd", NULL);
    argv[1] = target ? Py_DecodeLocale(target, NULL) : NULL;
    PyStatus st = PyConfig_SetArgv(pc, target ? 2 : 1, argv);
    PyMem_RawFree(argv[0]);
    PyMem_RawFree(argv[1]);
    return PyStatus_Exception(st) ? -1 : 0;
}

int pyapp_init(const struct hugd_config *c)
{
    PyConfig pc;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0;
    pc.parse_argv = 0;
    PyStatus st = PyConfig_SetBytesString(&pc, &pc.program_name, "hugd");
    if (!PyStatus_Exception(st) && venv_dir) {
        /* The interpreter starts as the virtualenv's python would: CPython
         * finds pyvenv.cfg beside (or above) its executable, and site reads
         * include-system-site-packages from it, so sys.prefix, site-packages
         * and the system's packages are exactly as there. */
        char exe[PATH_MAX + 16];
        snprintf(exe, sizeof(exe), "%s/bin/python3", venv_dir);
        st = PyConfig_SetBytesString(&pc, &pc.executable, exe);
    }
    if (PyStatus_Exception(st) || set_argv(&pc, c->target) < 0) {
        PyConfig_Clear(&pc);
        fprintf(stderr, "hugd: cannot configure the Python interpreter\n");
        return -1;
    }
    st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "hugd: cannot start Python: %s\n", st.err_msg ? st.err_msg : "?");
        return -1;
    }

    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) {
        perror("hugd: getcwd");
        return -1;
    }
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    PyObject *dir = PyUnicode_DecodeFSDefault(python_dir());
    if (!sys_path || !dir || PyList_Append(sys_path, dir) < 0) {
        Py_XDECREF(dir);
        PyErr_Print();
        return -1;
    }
    Py_DECREF(dir);

    PyObject *loader = PyImport_ImportModule("hugd.loader");
    if (!loader) {
        PyErr_Print();
        fprintf(stderr, "hugd: cannot import hugd.loader from %s\n", python_dir());
        return -1;
    }
    PyObject *r = PyObject_CallMethod(loader, "setup_path", "zs", c->pythonpath, cwd);
    Py_DECREF(loader);
    if (!r) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

PyObject *pyapp_load(const char *target)
{
    PyObject *loader = PyImport_ImportModule("hugd.loader");
    if (!loader) {
        PyErr_Print();
        return NULL;
    }
    PyObject *app = PyObject_CallMethod(loader, "load", "s", target);
    if (!app) {
        /* Take the exception out before touching the loader again: a
         * lookup with an exception pending would lose it. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *terr = PyObject_GetAttrString(loader, "TargetError");
        if (terr && value && PyErr_GivenExceptionMatches(value, terr)) {
            PyObject *msg = PyObject_Str(value);
            const char *s = msg ? PyUnicode_AsUTF8(msg) : NULL;
            fprintf(stderr, "hugd: %s\n", s ? s : target);
            Py_XDECREF(msg);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            PyErr_Clear();
        } else {
            PyErr_Clear();
            fprintf(stderr, "hugd: cannot load the application %s:\n", target);
            if (tb && value)
                PyException_SetTraceback(value, tb);
            PyErr_Display(type, value, tb);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
        Py_XDECREF(terr);
    }
    Py_DECREF(loader);
    return app;
}

static int call_module_fn(const char *module, const char *fn)
{
    PyObject *m = PyImport_ImportModule(module);
    if (!m) {
        PyErr_Print();
        return -1;
    }
    PyObject *r = PyObject_CallMethod(m, fn, NULL);
    Py_DECREF(m);
    if (!r) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int pyapp_freeze(void)
{
    /* Collect first so garbage from the import isn't frozen forever. */
    if (call_module_fn("gc", "collect") < 0)
        return -1;
    return call_module_fn("gc", "freeze");
}

char **pyapp_source_files(void)
{
    PyObject *loader = PyImport_ImportModule("hugd.loader");
    PyObject *list = loader ? PyObject_CallMethod(loader, "source_files", NULL) : NULL;
    Py_XDECREF(loader);
    if (!list || !PyList_Check(list)) {
        if (PyErr_Occurred())
            PyErr_Print();
        Py_XDECREF(list);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    char **out = calloc((size_t)n + 1, sizeof(*out));
    for (Py_ssize_t i = 0; out && i < n; i++) {
        const char *s = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
        if (!s || !(out[i] = strdup(s))) {
            PyErr_Clear();
            break; /* the rest unwatched: still NULL-terminated */
        }
    }
    Py_DECREF(list);
    return out;
}

int pyapp_run_tool(const char *name, int argc, char **argv)
{
    static const char code[] = "import importlib, sys\n"
                               "sys.path.insert(0, sys.argv[1])\n"
                               "sys.exit(importlib.import_module('hugd.' + sys.argv[2])"
                               ".main(sys.argv[3:]))\n";
    char **args = calloc((size_t)argc + 6, sizeof(*args));
    if (!args)
        return HUGD_EX_OSERR;
    int n = 0;
    args[n++] = (char *)"hugd";
    args[n++] = (char *)"-I";
    args[n++] = (char *)"-c";
    args[n++] = (char *)code;
    args[n++] = (char *)python_dir();
    args[n++] = (char *)name;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    int rc = Py_BytesMain(n, args);
    free(args);
    return rc;
}

int pyapp_worker_init(void)
{
    /* faulthandler.enable(): writes to sys.stderr (the error log). */
    return call_module_fn("faulthandler", "enable");
}
