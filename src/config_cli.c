/* The command line: gunicorn-style options generated from the settings
 * table, --help, and the two passes that put the command line on top of
 * the configuration file. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"

#define NSETTINGS CONFIG_NSETTINGS

/* --help: options in the first 30 columns, help wrapped before column 80. */
#define HELP_COL 30

static void put_word(FILE *out, int *col, const char *w, int len)
{
    if (*col > HELP_COL && *col + 1 + len > 79)
        *col = fprintf(out, "\n%*s", HELP_COL, "") - 1;
    else if (*col > HELP_COL)
        *col += fprintf(out, " ");
    *col += fprintf(out, "%.*s", len, w);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: hugd [OPTION]... TARGET\n"
                 "Serve the WSGI application TARGET (app.py, a module, or module:attr).\n\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *e = &config_table[i];
        char def[128];
        if (!e->lopt)
            continue;
        int col = fprintf(out, "  %c%c%c --%s%s%s", e->sopt ? '-' : ' ', e->sopt ? e->sopt : ' ',
                          e->sopt ? ',' : ' ', e->lopt, e->arg ? " " : "", e->arg ? e->arg : "");
        if (col > HELP_COL - 2) /* a long option gets its help on the next line */
            col = fprintf(out, "\n") - 1;
        col += fprintf(out, "%*s", HELP_COL - col, "");
        for (const char *w = e->help; *w; w += strspn(w, " ")) {
            int len = (int)strcspn(w, " ");
            put_word(out, &col, w, len);
            w += len;
        }
        if (e->def && e->arg) /* kept on one line */
            put_word(out, &col, def, snprintf(def, sizeof def, "(default: %s)", e->def));
        fputc('\n', out);
    }
    fprintf(out, "\nOptions given on the command line win over the file given with -c.\n");
}

static const struct setting *by_option(int val)
{
    if (val >= 256 && val < 256 + (int)NSETTINGS)
        return &config_table[val - 256];
    for (size_t i = 0; val > 0 && i < NSETTINGS; i++)
        if (config_table[i].sopt == val)
            return &config_table[i];
    return NULL;
}

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hugd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'hugd --help' for more information.\n", stderr);
    return HUGD_EX_USAGE;
}

int config_from_args(struct hugd_config *c, int argc, char **argv)
{
    struct option opts[NSETTINGS + 1] = {{0}};
    /* '-': positionals come back in order as 1, whatever POSIXLY_CORRECT says;
     * ':': we word the errors ourselves. */
    char shorts[3 + 2 * NSETTINGS] = "-:", *sp = shorts + 2, err[512];
    const char *target = NULL;
    int ch, n = 0, help = 0, version = 0;

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *e = &config_table[i];
        int has_arg = e->type == T_BOOL || e->type == T_ACTION ? no_argument : required_argument;
        if (!e->lopt)
            continue;
        opts[n++] = (struct option){e->lopt, has_arg, NULL, e->sopt ? e->sopt : 256 + (int)i};
        if (e->sopt) {
            *sp++ = (char)e->sopt;
            if (has_arg)
                *sp++ = ':';
        }
    }
    *sp = '\0';

    /* Pass 1: option syntax, -c, --help, --version.  The file must be loaded
     * before the other options so that they land on top of it. */
    for (optind = 0; (ch = getopt_long(argc, argv, shorts, opts, NULL)) != -1;) {
        const struct setting *e = by_option(ch == '?' || ch == ':' ? optopt : ch);
        if (ch == '?' && e)
            return usage_error("option '--%s' takes no value", e->lopt);
        if (ch == '?' && optopt)
            return usage_error("unknown option '-%c'", optopt);
        if (ch == '?')
            return usage_error("unknown or ambiguous option '%s'", argv[optind - 1]);
        if (ch == ':')
            return usage_error("option '--%s' needs a value", e ? e->lopt : "?");
        if (ch == 1)
            continue;
        if (strcmp(e->key, "config") == 0)
            config_set_value(c, e, optarg, err, sizeof err);
        help |= strcmp(e->key, "help") == 0;
        version |= strcmp(e->key, "version") == 0;
    }
    if (help) {
        usage(stdout);
        return 1;
    }
    if (version) {
        printf("hugd %s\n", HUGD_VERSION);
        return 1;
    }
    if (c->config_file && config_load_file(c, c->config_file, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return HUGD_EX_CONFIG;
    }

    /* Pass 2: everything else, on top of the file. */
    c->list_restart = config_list_rows();
    for (optind = 0; (ch = getopt_long(argc, argv, shorts, opts, NULL)) != -1;) {
        const struct setting *e = by_option(ch);
        if (ch == 1) {
            if (target)
                return usage_error("one TARGET expected, got '%s' and '%s'", target, optarg);
            target = optarg;
        } else if (e->type != T_ACTION && strcmp(e->key, "config") != 0 &&
                   config_set_value(c, e, optarg ? optarg : "yes", err, sizeof err) < 0) {
            if (e->type == T_LOGFORMAT) {
                /* The option is well formed; what it says is a bad configuration,
                 * the same error a file with this format gets. */
                fprintf(stderr, "hugd: --%s: %s\n", e->lopt, err);
                return HUGD_EX_CONFIG;
            }
            return usage_error("--%s: %s", e->lopt, err);
        }
    }
    for (; optind < argc; optind++) { /* after "--" */
        if (target)
            return usage_error("one TARGET expected, got '%s' and '%s'", target, argv[optind]);
        target = argv[optind];
    }
    for (size_t i = 0; target && i < NSETTINGS; i++)
        if (strcmp(config_table[i].key, "target") == 0 && config_table[i].type == T_STRING &&
            config_set_value(c, &config_table[i], target, err, sizeof err) < 0)
            return usage_error("%s", err);
    if (!c->target && !c->check_config)
        return usage_error("no TARGET given (app.py, a module, or module:attr)");
    if (config_resolve(c, err, sizeof err) < 0) {
        fprintf(stderr, "hugd: %s\n", err);
        return HUGD_EX_CONFIG;
    }
    if (config_check_stats(c, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return HUGD_EX_CONFIG;
    }
    return 0;
}
