/* libFuzzer harness for the INI configuration (src/config.c on inih).
 *
 * Each input is the text of a configuration file.  Loading it must give
 * either a configuration or an error that says where: "FILE:LINE: ..."
 * (or "FILE: ..." for what has no line, such as a read error).  A
 * configuration that loaded is printed (config_print, what --check-config
 * shows), and the printed text must load again into the same
 * configuration: --check-config promises a valid file.
 *
 * The text goes through a memfd, named by its /proc/self/fd path, so that
 * config_load_file reads it as it reads any file.  See tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hugd/config.h"

static int fd_in = -1, fd_again = -1;
static char path_in[64], path_again[64];

static void put_file(int fd, const void *data, size_t n)
{
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, n, 0) != (ssize_t)n)
        abort();
}

/* The configuration as --check-config prints it (malloc'd). */
static char *printed(const struct hugd_config *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        abort();
    config_print(c, f);
    fclose(f);
    return text;
}

/* "PATH:LINE: what" or "PATH: what". */
static int says_where(const char *err, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(err, path, n) != 0 || err[n] != ':')
        return 0;
    const char *p = err + n + 1;
    if (*p == ' ')
        return p[1] != 0;
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > digits && digits[0] != '0' && p[0] == ':' && p[1] == ' ' && p[2] != 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd_in = memfd_create("fuzz-config", 0);
    fd_again = memfd_create("fuzz-config-printed", 0);
    if (fd_in < 0 || fd_again < 0)
        abort();
    snprintf(path_in, sizeof(path_in), "/proc/self/fd/%d", fd_in);
    snprintf(path_again, sizeof(path_again), "/proc/self/fd/%d", fd_again);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    put_file(fd_in, data, size);
    struct hugd_config c;
    char err[512] = "";
    config_defaults(&c);
    if (config_load_file(&c, path_in, err, sizeof(err)) < 0) {
        if (!says_where(err, path_in)) {
            fprintf(stderr, "error without FILE:LINE: \"%s\"\n", err);
            abort();
        }
        config_free(&c);
        return 0;
    }
    size_t len = 0, len2 = 0;
    char *text = printed(&c, &len);
    config_free(&c);

    put_file(fd_again, text, len);
    config_defaults(&c);
    if (config_load_file(&c, path_again, err, sizeof(err)) < 0) {
        fprintf(stderr, "the printed configuration does not load: %s\n%s", err, text);
        abort();
    }
    char *text2 = printed(&c, &len2);
    config_free(&c);
    if (len != len2 || memcmp(text, text2, len) != 0) {
        fprintf(stderr, "printed, loaded and printed again differs:\n%s---\n%s", text, text2);
        abort();
    }
    free(text);
    free(text2);
    return 0;
}
