#include "check.h"

int check_failures;
const char *check_current = "";

int check_run(const check_test *tests, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                if (strcmp(argv[a], tests[i].name) == 0)
                    want = 1;
            if (!want)
                continue;
        }
        int before = check_failures;
        check_current = tests[i].name;
        tests[i].fn();
        if (check_failures == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

char *check_tail_copy(const void *p, size_t len)
{
    /* Exact-size allocation: ASan flags any read past the end. */
    char *b = malloc(len ? len : 1);
    if (!b)
        abort();
    if (len)
        memcpy(b, p, len);
    return b;
}

char *check_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *tmp = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            tmp = realloc(tmp, cap);
        }
        size_t r = fread(tmp + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    char *b = check_tail_copy(tmp, n);
    free(tmp);
    *len = n;
    return b;
}

const void *check_memmem(const void *hay, size_t hlen, const void *needle, size_t nlen)
{
    const char *h = hay;
    if (nlen == 0)
        return hay;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (h[i] == *(const char *)needle && memcmp(h + i, needle, nlen) == 0)
            return h + i;
    return NULL;
}

static void *failmem_malloc(size_t n, void *u)
{
    check_failmem *f = u;
    if (++f->count == f->fail_at)
        return NULL;
    f->live++;
    return malloc(n);
}

static void failmem_free(void *p, void *u)
{
    check_failmem *f = u;
    if (p)
        f->live--;
    free(p);
}

static void *failmem_realloc(void *p, size_t n, void *u)
{
    check_failmem *f = u;
    if (++f->count == f->fail_at)
        return NULL;
    if (!p)
        f->live++;
    return realloc(p, n);
}

void check_failmem_init(check_failmem *f, int fail_at)
{
    f->fail_at = fail_at;
    f->count = f->live = 0;
    f->mem.malloc = failmem_malloc;
    f->mem.free = failmem_free;
    f->mem.realloc = failmem_realloc;
    f->mem.user_data = f;
}
