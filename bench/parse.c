/*
 * Parse benchmark: csip against Sofia-SIP, oSIP2, libre and belle-sip on a
 * corpus of typical messages, in two modes:
 *   parse+read      parse, then read the top Via branch, From tag, To tag,
 *                   Call-ID, CSeq number and method, and the Contact URI host;
 *   parse+validate  parse and check the whole message (each peer's closest
 *                   equivalent is described in its peer_<name>.c).
 * A memchr pass counting '\n' over the same bytes is the floor.
 *
 * Before timing, every library parses every message and must read exactly the
 * values listed in CORPUS/expected.tsv; a library that fails is reported and
 * left out of the table, and the program exits with status 1.
 *
 * Wall time: the median of several runs of N passes over the corpus, N chosen
 * so that one run lasts about --ms milliseconds. Instructions: the program
 * runs itself under callgrind, which counts the instructions of 1 pass and
 * of 1 + d passes for each (library, mode), each in a dump of its own;
 * (I(1 + d) - I(1)) / (d * messages) cancels the one-time costs (first-use
 * initialisation, cold allocator). d is chosen from the wall time so that d
 * passes take about --instr-ms milliseconds natively (2 to 100 passes).
 *
 * Options: --runs N (7), --ms MS (100), --instr-ms MS (10), --no-instr
 * (skip callgrind), --only NAME,... (a subset of the libraries), --message FILE
 * (one message of the corpus).
 *
 * Usage: parse [options] CORPUS_DIR
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif

extern char **environ;

bench_view bench_view_c(const char *s)
{
    return s ? (bench_view){s, strlen(s)} : (bench_view){NULL, 0};
}

/* ------------------------------------------------------------------------- */
/* Corpus and expectations                                                    */

enum { MAX_MSGS = 64, MAX_FIELD = 256 };

typedef struct expect {
    char file[MAX_FIELD];
    char branch[MAX_FIELD], from_tag[MAX_FIELD], to_tag[MAX_FIELD], call_id[MAX_FIELD];
    unsigned long cseq;
    char cseq_method[MAX_FIELD], contact_host[MAX_FIELD];
} expect;

typedef struct message {
    char *data; /* heap copy of exactly len bytes (plus a NUL no parser is told about) */
    size_t len;
    expect exp;
} message;

static message msgs[MAX_MSGS];
static size_t n_msgs;
static char listed[MAX_MSGS][MAX_FIELD]; /* every file named in expected.tsv */
static size_t n_listed;
static size_t corpus_bytes;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Splits line at tabs into at most max fields (in place). */
static size_t split_tabs(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static int copy_field(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= MAX_FIELD)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Loads the messages listed in DIR/expected.tsv (only `only_file` when not NULL). */
static int load_corpus(const char *dir, const char *only_file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.tsv", dir);
    size_t len;
    char *text = read_file(path, &len);
    if (text == NULL) {
        fprintf(stderr, "parse: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[ll - 1] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *f[9];
        if (split_tabs(line, f, 9) != 8 || n_listed == MAX_MSGS) {
            fprintf(stderr, "parse: %s: bad line (8 tab-separated fields expected)\n", path);
            free(text);
            return -1;
        }
        message *m = &msgs[n_msgs];
        expect *e = &m->exp;
        char *end;
        e->cseq = strtoul(f[5], &end, 10);
        if (*end != '\0' || copy_field(e->file, f[0]) || copy_field(e->branch, f[1]) ||
            copy_field(e->from_tag, f[2]) || copy_field(e->to_tag, f[3]) ||
            copy_field(e->call_id, f[4]) || copy_field(e->cseq_method, f[6]) ||
            copy_field(e->contact_host, f[7])) {
            fprintf(stderr, "parse: %s: bad field in the line of %s\n", path, f[0]);
            free(text);
            return -1;
        }
        memcpy(listed[n_listed++], e->file, sizeof e->file);
        if (only_file != NULL && strcmp(only_file, e->file) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->file);
        m->data = read_file(path, &m->len);
        if (m->data == NULL) {
            fprintf(stderr, "parse: cannot read %s: %s\n", path, strerror(errno));
            free(text);
            return -1;
        }
        corpus_bytes += m->len;
        n_msgs++;
        snprintf(path, sizeof path, "%s/expected.tsv", dir);
    }
    free(text);

    /* Every message of the corpus must have its expectations. */
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "parse: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (!ends_with(de->d_name, ".sip"))
            continue;
        size_t i = 0;
        while (i < n_listed && strcmp(listed[i], de->d_name) != 0)
            i++;
        if (i == n_listed) {
            fprintf(stderr, "parse: %s/%s has no line in expected.tsv\n", dir, de->d_name);
            rc = -1;
        }
    }
    closedir(d);
    if (rc == 0 && n_msgs == 0) {
        fprintf(stderr, "parse: no message to parse in %s%s%s\n", dir,
                only_file ? " named " : "", only_file ? only_file : "");
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Libraries and modes                                                        */

static const bench_peer *const all_peers[] = {
#ifdef BENCH_WITH_CSIP
    &bench_peer_csip,
#endif
#ifdef BENCH_WITH_SOFIA
    &bench_peer_sofia,
#endif
#ifdef BENCH_WITH_OSIP
    &bench_peer_osip,
#endif
#ifdef BENCH_WITH_RE
    &bench_peer_re,
#endif
#ifdef BENCH_WITH_BELLE
    &bench_peer_belle,
#endif
};
enum { N_ALL = sizeof all_peers / sizeof all_peers[0] };

enum mode { MODE_READ, MODE_VALIDATE, MODE_SCAN };
static const char *const mode_names[] = {"parse+read", "parse+validate", "'\\n' count"};

/* One row of the table. peer == NULL is the memchr floor. */
typedef struct row {
    const bench_peer *peer;
    enum mode mode;
    double ns;            /* per message, median; < 0 when not measured */
    double instr;         /* per message; < 0 when not measured */
    unsigned long lo, hi; /* passes of the two callgrind runs */
} row;

static row rows[2 * N_ALL + 1];
static size_t n_rows;

/* Keeps results alive so that no work is optimised away. */
static volatile uint64_t sink;

static uint64_t consume(const bench_fields *f)
{
    uint64_t s = f->cseq;
    const bench_view *v[] = {&f->branch,      &f->from_tag,    &f->to_tag,      &f->call_id,
                             &f->call_id_host, &f->cseq_method, &f->contact_host};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        s += v[i]->len + (v[i]->len ? (unsigned char)v[i]->p[0] : 0u);
    return s;
}

static size_t count_lines(const char *p, size_t len)
{
    size_t n = 0;
    const char *end = p + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* Runs `passes` passes over the corpus. @return 0, or -1 when a parse failed. */
static int run_passes(const row *r, uint64_t passes)
{
    uint64_t s = 0;
    for (uint64_t it = 0; it < passes; it++) {
        for (size_t i = 0; i < n_msgs; i++) {
            const message *m = &msgs[i];
            void *h;
            switch (r->mode) {
            case MODE_SCAN:
                s += count_lines(m->data, m->len);
                continue;
            case MODE_READ: {
                bench_fields f;
                h = r->peer->parse_read(m->data, m->len, &f);
                if (h == NULL)
                    return -1;
                s += consume(&f);
                break;
            }
            case MODE_VALIDATE:
            default:
                h = r->peer->parse_validate(m->data, m->len);
                if (h == NULL)
                    return -1;
                s += (uintptr_t)h & 0xff;
                break;
            }
            r->peer->release(h);
        }
    }
    sink += s;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Verification                                                               */

static int view_is(bench_view v, const char *want)
{
    if (strcmp(want, "-") == 0)
        return v.p == NULL || v.len == 0;
    return v.p != NULL && v.len == strlen(want) && memcmp(v.p, want, v.len) == 0;
}

static int call_id_is(const bench_fields *f, const char *want)
{
    if (f->call_id_host.p == NULL)
        return view_is(f->call_id, want);
    const char *at = strchr(want, '@');
    if (at == NULL)
        return 0;
    return f->call_id.len == (size_t)(at - want) &&
           memcmp(f->call_id.p, want, f->call_id.len) == 0 && view_is(f->call_id_host, at + 1);
}

static void report_field(const char *peer, const char *file, const char *what, bench_view got,
                         const char *want)
{
    fprintf(stderr, "parse: %s read %s = \"%.*s\" from %s, expected \"%s\"\n", peer, what,
            got.p ? (int)got.len : 6, got.p ? got.p : "(none)", file, want);
}

/* Every message through both modes, twice (state left by a first parse must not matter). */
static int verify(const bench_peer *p)
{
    int bad = 0;
    for (int round = 0; round < 2 && !bad; round++) {
        for (size_t i = 0; i < n_msgs; i++) {
            const message *m = &msgs[i];
            const expect *e = &m->exp;
            bench_fields f;
            memset(&f, 0, sizeof f);
            void *h = p->parse_read(m->data, m->len, &f);
            if (h == NULL) {
                fprintf(stderr, "parse: %s failed to parse and read %s\n", p->name, e->file);
                bad = 1;
                continue;
            }
            if (!view_is(f.branch, e->branch))
                report_field(p->name, e->file, "the Via branch", f.branch, e->branch), bad = 1;
            if (!view_is(f.from_tag, e->from_tag))
                report_field(p->name, e->file, "the From tag", f.from_tag, e->from_tag), bad = 1;
            if (!view_is(f.to_tag, e->to_tag))
                report_field(p->name, e->file, "the To tag", f.to_tag, e->to_tag), bad = 1;
            if (!call_id_is(&f, e->call_id)) {
                char joined[2 * MAX_FIELD];
                bench_view got = f.call_id;
                if (f.call_id_host.p != NULL && got.p != NULL) {
                    int n = snprintf(joined, sizeof joined, "%.*s@%.*s", (int)got.len, got.p,
                                     (int)f.call_id_host.len, f.call_id_host.p);
                    got = (bench_view){joined, n < 0 ? 0 : strlen(joined)};
                }
                report_field(p->name, e->file, "the Call-ID", got, e->call_id);
                bad = 1;
            }
            if (f.cseq != e->cseq) {
                fprintf(stderr, "parse: %s read CSeq %lu from %s, expected %lu\n", p->name,
                        (unsigned long)f.cseq, e->file, e->cseq);
                bad = 1;
            }
            if (!view_is(f.cseq_method, e->cseq_method))
                report_field(p->name, e->file, "the CSeq method", f.cseq_method, e->cseq_method),
                    bad = 1;
            if (!view_is(f.contact_host, e->contact_host))
                report_field(p->name, e->file, "the Contact host", f.contact_host,
                             e->contact_host),
                    bad = 1;
            p->release(h);

            h = p->parse_validate(m->data, m->len);
            if (h == NULL) {
                fprintf(stderr, "parse: %s rejected %s in parse+validate\n", p->name, e->file);
                bad = 1;
                continue;
            }
            p->release(h);
        }
    }
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------------------- */
/* Wall time                                                                  */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* @return ns per message (median of `runs` runs of about target_ms each), or -1. */
static double time_row(const row *r, int runs, double target_ms)
{
    /* Warm up, then find how many passes take about target_ms. */
    uint64_t passes = 1;
    double t;
    for (;;) {
        double t0 = now_ns();
        if (run_passes(r, passes) != 0)
            return -1;
        t = now_ns() - t0;
        if (t >= target_ms * 1e6 / 8 || passes >= (UINT64_C(1) << 40))
            break;
        passes *= 2;
    }
    double want = target_ms * 1e6 / (t > 0 ? t : 1) * (double)passes;
    passes = want < 1 ? 1 : (uint64_t)want;

    double samples[64];
    if (runs > 64)
        runs = 64;
    for (int i = 0; i < runs; i++) {
        double t0 = now_ns();
        if (run_passes(r, passes) != 0)
            return -1;
        samples[i] = (now_ns() - t0) / ((double)passes * (double)n_msgs);
    }
    qsort(samples, (size_t)runs, sizeof samples[0], cmp_double);
    return runs % 2 ? samples[runs / 2] : (samples[runs / 2 - 1] + samples[runs / 2]) / 2;
}

/* ------------------------------------------------------------------------- */
/* Instructions (callgrind)                                                   */

static const char *row_label(const row *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%d", r->peer ? r->peer->name : "memchr", (int)r->mode);
    return buf;
}

/* The child, under callgrind: lo then hi passes of each row, each dumped apart.
 * plan is "lo:hi,lo:hi,…", one pair per row (0:0 skips the row). */
static int callgrind_child(const char *plan)
{
#ifdef BENCH_HAVE_CALLGRIND
    for (size_t i = 0; i < n_rows; i++) {
        int used = 0;
        if (sscanf(plan, "%lu:%lu%n", &rows[i].lo, &rows[i].hi, &used) != 2)
            return 2;
        plan += used + (plan[used] == ',');
    }
    char label[128], pos[160];
    CALLGRIND_ZERO_STATS;
    for (size_t i = 0; i < n_rows; i++) {
        if (rows[i].hi == 0)
            continue;
        const unsigned long counts[2] = {rows[i].lo, rows[i].hi};
        for (int k = 0; k < 2; k++) {
            int rc = run_passes(&rows[i], counts[k]);
            snprintf(pos, sizeof pos, "bench %s %lu", row_label(&rows[i], label, sizeof label),
                     counts[k]);
            CALLGRIND_DUMP_STATS_AT(pos);
            if (rc != 0)
                return 1;
        }
    }
    return 0;
#else
    (void)plan;
    return 1;
#endif
}

static int find_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return 0;
    char buf[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Reads the dump files DIR/cg.out.N and fills rows[].instr. */
static int read_dumps(const char *dir)
{
    double cost[2 * N_ALL + 1][2];
    for (size_t i = 0; i < n_rows; i++)
        cost[i][0] = cost[i][1] = -1;
    char path[4200];
    for (unsigned n = 1;; n++) {
        snprintf(path, sizeof path, "%s/cg.out.%u", dir, n);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            break;
        char line[1024], label[128] = "";
        unsigned long count = 0;
        double total = -1;
        while (fgets(line, sizeof line, f)) {
            static const char trigger[] = "Client Request: bench ";
            const char *trig = strstr(line, trigger);
            if (strncmp(line, "desc:", 5) == 0 && trig != NULL) {
                if (sscanf(trig + strlen(trigger), "%127s %lu", label, &count) != 2)
                    label[0] = '\0';
            } else if (strncmp(line, "summary:", 8) == 0 || strncmp(line, "totals:", 7) == 0) {
                total = strtod(strchr(line, ':') + 1, NULL);
            }
        }
        fclose(f);
        unlink(path);
        for (size_t i = 0; i < n_rows && label[0] && total >= 0; i++) {
            char want[128];
            if (strcmp(label, row_label(&rows[i], want, sizeof want)) == 0)
                cost[i][count == rows[i].hi] = total;
        }
    }
    int got = 0;
    for (size_t i = 0; i < n_rows; i++) {
        if (cost[i][0] >= 0 && cost[i][1] >= 0) {
            rows[i].instr = (cost[i][1] - cost[i][0]) /
                            ((double)(rows[i].hi - rows[i].lo) * (double)n_msgs);
            got++;
        }
    }
    return got ? 0 : -1;
}

/*
 * Runs this program under callgrind. Each row gets 1 and 1 + d passes, d
 * chosen from its wall time so that the d passes take about budget_ms
 * natively (between 2 and 100 passes), which keeps the slowest stacks from
 * taking minutes under callgrind.
 */
static int measure_instructions(const char *corpus, const char *only, const char *only_file,
                                double budget_ms)
{
    char plan[64 * (2 * N_ALL + 1)];
    size_t used = 0;
    for (size_t i = 0; i < n_rows; i++) {
        row *r = &rows[i];
        double d = r->ns > 0 ? budget_ms * 1e6 / (r->ns * (double)n_msgs) : 0;
        r->lo = r->ns > 0 ? 1 : 0;
        r->hi = r->ns > 0 ? 1 + (d < 2 ? 2 : d > 100 ? 100 : (unsigned long)d) : 0;
        used += (size_t)snprintf(plan + used, sizeof plan - used, "%s%lu:%lu", i ? "," : "",
                                 r->lo, r->hi);
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char dir[] = "/tmp/csip-bench-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return -1;
    char out_opt[4200], log_path[4200];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.out", dir);
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    char *argv[16];
    int a = 0;
    argv[a++] = "valgrind";
    argv[a++] = "--tool=callgrind";
    argv[a++] = out_opt;
    argv[a++] = "--dump-line=no";
    argv[a++] = "--compress-strings=no";
    argv[a++] = self;
    argv[a++] = "--callgrind-child";
    argv[a++] = plan;
    if (only) {
        argv[a++] = "--only";
        argv[a++] = (char *)only;
    }
    if (only_file) {
        argv[a++] = "--message";
        argv[a++] = (char *)only_file;
    }
    argv[a++] = (char *)corpus;
    argv[a] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, "valgrind", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 1;
    if (rc == 0 && waitpid(pid, &status, 0) < 0)
        status = 1;
    if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "parse: the callgrind run failed; its log is in %s\n", log_path);
        return -1;
    }
    rc = read_dumps(dir);
    snprintf(out_opt, sizeof out_opt, "%s/cg.out", dir);
    unlink(out_opt);
    unlink(log_path);
    rmdir(dir);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Output                                                                     */

static const row *find_row(const char *peer, enum mode mode)
{
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i].peer && strcmp(rows[i].peer->name, peer) == 0 && rows[i].mode == mode)
            return &rows[i];
    return NULL;
}

static void print_ratio(double v, double ref)
{
    if (v >= 0 && ref > 0)
        printf(" %8.2fx", v / ref);
    else
        printf(" %9s", "-");
}

static void print_table(int runs, double target_ms, int have_instr)
{
#ifndef BENCH_WITH_CSIP
    printf("built without csip (CSIP_BENCH_CSIP=OFF): no ratios\n");
#endif
    if (n_msgs == 1)
        printf("corpus: %s alone, %zu bytes\n", msgs[0].exp.file, corpus_bytes);
    else
        printf("corpus: %zu messages, %zu bytes (%.0f bytes/message)\n", n_msgs, corpus_bytes,
               (double)corpus_bytes / (double)n_msgs);
    printf("ns/msg: median of %d runs of ~%.0f ms", runs, target_ms);
    if (have_instr)
        printf("; instr: callgrind, 1 + d passes minus 1 pass");
    printf("; ratios are to csip in the same mode\n\n");
    printf("%-10s %-15s %9s %9s %11s %10s %9s\n", "library", "mode", "ns/msg", "ratio",
           "instr/msg", "instr/byte", "ratio");
    double bytes_per_msg = (double)corpus_bytes / (double)n_msgs;
    for (size_t i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        const row *ref = find_row("csip", r->mode == MODE_SCAN ? MODE_READ : r->mode);
        printf("%-10s %-15s", r->peer ? r->peer->name : "memchr", mode_names[r->mode]);
        if (r->ns >= 0)
            printf(" %9.1f", r->ns);
        else
            printf(" %9s", "-");
        print_ratio(r->ns, ref ? ref->ns : -1);
        if (r->instr >= 0)
            printf(" %11.0f %10.2f", r->instr, r->instr / bytes_per_msg);
        else
            printf(" %11s %10s", "-", "-");
        print_ratio(r->instr, ref ? ref->instr : -1);
        printf("\n");
    }

    const row *c = find_row("csip", MODE_READ);
    if (c && c->instr >= 0) {
        const row *best = NULL;
        for (size_t i = 0; i < n_rows; i++)
            if (rows[i].peer && rows[i].peer != c->peer && rows[i].mode == MODE_READ &&
                rows[i].instr >= 0 && (best == NULL || rows[i].instr < best->instr))
                best = &rows[i];
        printf("\ncsip parse+read: %.2f instructions/byte (goal <= 8)", c->instr / bytes_per_msg);
        if (best)
            printf(", %.2f of the fastest peer, %s (goal <= 0.25)", c->instr / best->instr,
                   best->peer->name);
        printf("\n");
    }
    printf("\nparse+validate is, for each library:\n");
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i].peer && rows[i].mode == MODE_VALIDATE)
            printf("  %-10s %s\n", rows[i].peer->name, rows[i].peer->validate_note);
}

/* ------------------------------------------------------------------------- */

static int selected(const char *only, const char *name)
{
    if (only == NULL)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: parse [--runs N] [--ms MS] [--instr-ms MS] [--no-instr] "
                    "[--only NAME,...] [--message FILE] CORPUS_DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    int runs = 7, no_instr = 0;
    double target_ms = 100, instr_ms = 10;
    const char *only = NULL, *corpus = NULL, *child = NULL, *only_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--runs") == 0 && i + 1 < argc) {
            runs = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--ms") == 0 && i + 1 < argc) {
            target_ms = strtod(argv[++i], NULL);
        } else if (strcmp(a, "--instr-ms") == 0 && i + 1 < argc) {
            instr_ms = strtod(argv[++i], NULL);
        } else if (strcmp(a, "--callgrind-child") == 0 && i + 1 < argc) {
            child = argv[++i];
        } else if (strcmp(a, "--no-instr") == 0) {
            no_instr = 1;
        } else if (strcmp(a, "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(a, "--message") == 0 && i + 1 < argc) {
            only_file = argv[++i];
        } else if (a[0] == '-' || corpus != NULL) {
            return usage();
        } else {
            corpus = a;
        }
    }
    if (corpus == NULL || runs < 1 || target_ms <= 0 || instr_ms <= 0)
        return usage();
    if (load_corpus(corpus, only_file) != 0)
        return 1;

    int failed = 0;
    for (size_t i = 0; i < N_ALL; i++) {
        const bench_peer *p = all_peers[i];
        if (!selected(only, p->name))
            continue;
        if (p->init() != 0) {
            fprintf(stderr, "parse: %s failed to initialise\n", p->name);
            failed = 1;
            continue;
        }
        if (verify(p) != 0) {
            fprintf(stderr, "parse: %s left out: it did not parse the corpus as expected\n",
                    p->name);
            failed = 1;
            continue;
        }
        rows[n_rows++] = (row){.peer = p, .mode = MODE_READ, .ns = -1, .instr = -1};
        rows[n_rows++] = (row){.peer = p, .mode = MODE_VALIDATE, .ns = -1, .instr = -1};
    }
    rows[n_rows++] = (row){.peer = NULL, .mode = MODE_SCAN, .ns = -1, .instr = -1};

    if (child)
        return callgrind_child(child);

    for (size_t i = 0; i < n_rows; i++) {
        rows[i].ns = time_row(&rows[i], runs, target_ms);
        if (rows[i].ns < 0) {
            fprintf(stderr, "parse: a timed parse failed (%s)\n",
                    rows[i].peer ? rows[i].peer->name : "memchr");
            failed = 1;
        }
    }

    int have_instr = 0;
#ifdef BENCH_HAVE_CALLGRIND
    if (!no_instr) {
        if (!find_in_path("valgrind"))
            fprintf(stderr, "parse: valgrind not found: no instruction counts\n");
        else
            have_instr = measure_instructions(corpus, only, only_file, instr_ms) == 0;
    }
#else
    (void)no_instr;
    (void)find_in_path;
    (void)measure_instructions;
#endif
    print_table(runs, target_ms, have_instr);
    return failed;
}
