/*
 * Replay driver for the fuzz targets in builds without libFuzzer (gcc, the dev
 * and asan presets): runs LLVMFuzzerTestOneInput() once on every file named on
 * the command line or found (recursively) in the directories named there, in
 * sorted order, and prints how many inputs ran. CTest uses it to replay the
 * seed corpora and the regression inputs on every build.
 *
 * Usage: fuzz_<name> [-v] PATH... [--optional PATH...]
 *   -v          print each input's path before running it
 *   --optional  the paths that follow may be missing (skipped with a note)
 * Exit status: 0 when at least one input ran and every path could be read.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;
static unsigned long inputs_run;
static int failures;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    int read_err = ferror(f);
    fclose(f);
    if (read_err) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so that AddressSanitizer sees any read past the input. */
    uint8_t *input = malloc(len ? len : 1);
    if (input == NULL) {
        free(buf);
        return -1;
    }
    if (len)
        memcpy(input, buf, len);
    free(buf);
    if (verbose)
        fprintf(stderr, "Running: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    inputs_run++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, int optional);

static int run_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and hidden files such as editor backups */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof(*names));
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        size_t plen = strlen(path), elen = strlen(e->d_name);
        char *full = malloc(plen + 1 + elen + 1);
        if (full == NULL) {
            rc = -1;
            break;
        }
        memcpy(full, path, plen);
        full[plen] = '/';
        memcpy(full + plen + 1, e->d_name, elen + 1);
        names[n++] = full;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && run_path(names[i], 0) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static int run_path(const char *path, int optional)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (optional && errno == ENOENT) {
            fprintf(stderr, "replay: %s: absent, skipped\n", path);
            return 0;
        }
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode))
        return run_dir(path);
    return run_file(path);
}

int main(int argc, char **argv)
{
    int optional = 0;
    const char *prog = argc > 0 ? argv[0] : "replay";
    const char *base = strrchr(prog, '/');
    base = base ? base + 1 : prog;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (strcmp(argv[i], "--optional") == 0) {
            optional = 1;
            continue;
        }
        if (run_path(argv[i], optional) != 0)
            failures++;
    }
    printf("%s: %lu inputs ran\n", base, inputs_run);
    if (failures) {
        fprintf(stderr, "%s: %d path(s) could not be read\n", base, failures);
        return 1;
    }
    if (inputs_run == 0) {
        fprintf(stderr, "%s: no input found\n", base);
        return 1;
    }
    return 0;
}
