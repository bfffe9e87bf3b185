/* Internals of the configuration module, shared by config.c (the table,
 * the value parsers, the INI file) and config_cli.c (the command line). */
#ifndef HUGD_CONFIG_INT_H
#define HUGD_CONFIG_INT_H

#include <stddef.h>

#include "hugd/config.h"

#ifndef HUGD_VERSION
#define HUGD_VERSION "0.1.0"
#endif

enum type {
    T_INT,
    T_MODE,
    T_SECONDS,
    T_SIZE,
    T_STRING,
    T_LIST,
    T_BIND,
    T_LEVEL,
    T_BOOL,
    T_ACTION,
    T_LOGFORMAT,
    T_URLPATH,
    T_ADDRS /* a T_LIST of addresses and CIDR ranges (addrmatch.h) */
};

struct setting {
    const char *section; /* NULL: command line only */
    const char *key;
    const char *lopt; /* NULL: not an option (TARGET is positional) */
    int sopt;
    enum type type;
    size_t off;
    long long min, max; /* T_INT, T_SECONDS, T_SIZE */
    const char *def;    /* parsed like user input; NULL = unset */
    const char *arg;    /* what --help calls the value */
    const char *help;
};

/* Rows in config_table; a static assertion in config.c keeps it honest. */
#define CONFIG_NSETTINGS 53

extern const struct setting config_table[CONFIG_NSETTINGS];

/* Parse v into the row's field; the message names the value, not the key. */
int config_set_value(struct hugd_config *c, const struct setting *e, const char *v, char *err,
                     size_t len);
/* Per row, 1 for the lists: the next value starts a new list. */
unsigned long long config_list_rows(void);

#endif
