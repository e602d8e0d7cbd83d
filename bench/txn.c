/*
 * Transaction-layer benchmark: the cost of client and server transactions
 * through a loop-back network on one core, and the memory a live transaction
 * holds.
 *
 * Two layers (the UAC at 10.0.0.1:5060 and the UAS at 10.0.0.2:5060, UDP) in
 * one thread: each layer's send callback copies the bytes into a FIFO, and the
 * loop hands them to the other layer's csip_txn_layer_recv(). The clock is
 * virtual: before each exchange it moves on by one step and both layers fire
 * what is due, so transactions end on their own timers (J, K, L, M) and a
 * steady state holds about --live transactions of each long-lived kind
 * (a step of 64*T1 / live milliseconds).
 *
 * Exchanges (everything the TUs do is counted: branches, building requests
 * and responses, the ACK of the 2xx):
 *   MESSAGE   MESSAGE (short text body) -> 200: one client and one server
 *             transaction;
 *   call      INVITE (SDP) -> 180 -> 200 (SDP) -> ACK, then BYE -> 200: two
 *             client and two server transactions, six messages.
 *
 * Wall time: the median of --runs runs of N exchanges each, N chosen so that
 * a run lasts about --ms milliseconds, after a warm-up that reaches the
 * steady state. Instructions: the program runs itself under callgrind, which
 * counts lo and hi exchanges in the steady state, each in a dump of its own;
 * (I(hi) - I(lo)) / (hi - lo) cancels the per-run constant costs.
 *
 * Memory: a counting csip_mem under both layers and both TUs; N exchanges
 * are started at one instant (nothing expires), and the bytes each layer
 * holds beyond an empty layer, divided by N, is the cost of one live
 * transaction in that state (message, printed bytes, the transaction, its
 * share of the hash table and timer heap).
 *
 * Options: --runs N (7), --ms MS (100), --instr-ms MS (50), --no-instr,
 * --live N (1000), --mem-n N (10000).
 */
#define _POSIX_C_SOURCE 200809L

#include "csip/csip.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif

extern char **environ;

static void die(const char *what, int rc)
{
    fprintf(stderr, "txn: %s failed: %s\n", what, rc ? csip_err_name(rc) : "unexpected outcome");
    exit(1);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------- */
/* A counting allocator: every block carries its size in a 16-byte header.   */

typedef struct counter {
    size_t live, blocks;
} counter;

#define CM_HDR 16u

static void *cm_malloc(size_t n, void *ud)
{
    counter *c = ud;
    unsigned char *p = malloc(n + CM_HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    c->live += n;
    c->blocks++;
    return p + CM_HDR;
}

static void cm_free(void *ptr, void *ud)
{
    counter *c = ud;
    if (!ptr)
        return;
    unsigned char *p = (unsigned char *)ptr - CM_HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    c->live -= n;
    c->blocks--;
    free(p);
}

static void *cm_realloc(void *ptr, size_t n, void *ud)
{
    counter *c = ud;
    if (!ptr)
        return cm_malloc(n, ud);
    unsigned char *p = (unsigned char *)ptr - CM_HDR;
    size_t old;
    memcpy(&old, p, sizeof old);
    unsigned char *q = realloc(p, n + CM_HDR);
    if (!q)
        return NULL;
    memcpy(q, &n, sizeof n);
    c->live = c->live - old + n;
    return q + CM_HDR;
}

/* ------------------------------------------------------------------------- */
/* The loop-back network                                                      */

enum { UAC = 0, UAS = 1 };
enum { QCAP = 64, PKT_MAX = 4096 };

typedef enum workload { WL_MESSAGE = 0, WL_CALL } workload;

/* What the UAS TU does with a new request. */
typedef enum uas_mode {
    UAS_ANSWER = 0, /* INVITE: 180 then 200 with SDP; others: 200 */
    UAS_RING,       /* INVITE: 180 only; others: nothing */
    UAS_SILENT,     /* nothing */
} uas_mode;

typedef struct pkt {
    int to;
    csip_addr src;
    size_t len;
    char data[PKT_MAX];
} pkt;

typedef struct net {
    csip_txn_layer *l[2];
    csip_addr addr[2];
    const csip_mem *mem[2]; /* each side's TU builds its messages with its layer's mem */
    pkt q[QCAP];
    unsigned head, tail;
    uint64_t now;
    uint32_t step;
    uas_mode uas;
    uint32_t seq;
    char call_id[64];
    char to_tag[64]; /* To tag of the call's 2xx (for the ACK and BYE) */
    bool got_2xx;
    /* outcomes, checked after each run */
    unsigned long finals_2xx, provisionals, acks, other;
} net;

static int net_send(csip_txn_layer *layer, const csip_addr *dst, const void *data, size_t len,
                    void *ud)
{
    net *n = ud;
    int from = layer == n->l[UAC] ? UAC : UAS;
    if (!csip_addr_equal(dst, &n->addr[1 - from]) || len > PKT_MAX || n->tail - n->head == QCAP) {
        n->other++;
        return 0; /* lost */
    }
    pkt *p = &n->q[n->tail++ % QCAP];
    p->to = 1 - from;
    p->src = n->addr[from];
    p->len = len;
    memcpy(p->data, data, len);
    return 0;
}

static void pump(net *n)
{
    while (n->head != n->tail) {
        pkt *p = &n->q[n->head++ % QCAP];
        int rc = csip_txn_layer_recv(n->l[p->to], p->data, p->len, &p->src, n->now);
        if (rc != 0)
            die("csip_txn_layer_recv", rc);
    }
}

/* Moves the clock on by one step and fires the timers that are due. */
static void tick(net *n)
{
    n->now += n->step;
    for (int i = 0; i < 2; i++)
        if (csip_txn_layer_next_expiry(n->l[i]) <= n->now)
            csip_txn_layer_handle_expiry(n->l[i], n->now);
    pump(n);
}

static const char SDP_OFFER[] = "v=0\r\n"
                                "o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n"
                                "s=-\r\n"
                                "c=IN IP4 10.0.0.1\r\n"
                                "t=0 0\r\n"
                                "m=audio 49170 RTP/AVP 0 8 101\r\n"
                                "a=rtpmap:0 PCMU/8000\r\n"
                                "a=rtpmap:8 PCMA/8000\r\n"
                                "a=rtpmap:101 telephone-event/8000\r\n"
                                "a=fmtp:101 0-16\r\n"
                                "a=sendrecv\r\n";
static const char SDP_ANSWER[] = "v=0\r\n"
                                 "o=bob 2808844564 2808844564 IN IP4 10.0.0.2\r\n"
                                 "s=-\r\n"
                                 "c=IN IP4 10.0.0.2\r\n"
                                 "t=0 0\r\n"
                                 "m=audio 3456 RTP/AVP 0 101\r\n"
                                 "a=rtpmap:0 PCMU/8000\r\n"
                                 "a=rtpmap:101 telephone-event/8000\r\n"
                                 "a=sendrecv\r\n";
static const char TEXT[] = "Hello, Bob. This is a short instant message, as most of them are.";

/* A request of the UAC, with a new branch. */
static csip_msg *uac_request(net *n, const char *method, uint32_t cseq, bool with_tag)
{
    char branch[32], via[96], to[128];
    int rc = csip_txn_new_branch(branch, sizeof branch);
    if (rc < 0)
        die("csip_txn_new_branch", rc);
    snprintf(via, sizeof via, "SIP/2.0/UDP 10.0.0.1:5060;branch=%s;rport", branch);
    snprintf(to, sizeof to, "<sip:bob@example.com>%s%s", with_tag ? ";tag=" : "",
             with_tag ? n->to_tag : "");
    bool invite = strcmp(method, "INVITE") == 0;
    bool message = strcmp(method, "MESSAGE") == 0;
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = csip_str_c(method);
    spec.ruri = CSIP_STR("sip:bob@10.0.0.2:5060");
    spec.via = csip_str_c(via);
    spec.from = CSIP_STR("\"Alice\" <sip:alice@example.com>;tag=9fxced76sl");
    spec.to = csip_str_c(to);
    spec.call_id = csip_str_c(n->call_id);
    spec.cseq = cseq;
    if (invite)
        spec.contact = CSIP_STR("<sip:alice@10.0.0.1:5060>");
    if (invite || message) {
        spec.content_type = invite ? CSIP_STR("application/sdp") : CSIP_STR("text/plain");
        spec.body = invite ? CSIP_STR(SDP_OFFER) : CSIP_STR(TEXT);
    }
    csip_msg *m = NULL;
    rc = csip_request_new(&spec, n->mem[UAC], &m);
    if (rc != 0)
        die("csip_request_new", rc);
    return m;
}

static void uas_respond(net *n, csip_txn *st, const csip_msg *req, int code)
{
    csip_msg *resp = NULL;
    int rc = csip_response_for(req, code, NULL, CSIP_STR("a6c85cf"), n->mem[UAS], &resp);
    if (rc == 0 && code == 200 && csip_msg_method(req) == CSIP_METHOD_INVITE) {
        rc = csip_msg_hdr_add(resp, CSIP_HDR_CONTACT, CSIP_STR("<sip:bob@10.0.0.2:5060>"), false);
        if (rc == 0)
            rc = csip_msg_set_body(resp, CSIP_STR("application/sdp"), CSIP_STR(SDP_ANSWER));
    }
    if (rc != 0)
        die("building a response", rc);
    rc = csip_txn_respond(st, resp, n->now);
    if (rc != 0)
        die("csip_txn_respond", rc);
}

static void uas_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                        void *ud)
{
    (void)l;
    (void)src;
    net *n = ud;
    if (!st) {
        if (csip_msg_method(req) == CSIP_METHOD_ACK)
            n->acks++;
        else
            n->other++;
        return;
    }
    bool invite = csip_msg_method(req) == CSIP_METHOD_INVITE;
    if (n->uas == UAS_SILENT || (n->uas == UAS_RING && !invite))
        return;
    if (invite)
        uas_respond(n, st, req, 180);
    if (n->uas == UAS_ANSWER)
        uas_respond(n, st, req, 200);
}

static void uac_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status,
                         void *ud)
{
    net *n = ud;
    if (status < 200) {
        n->provisionals++;
        return;
    }
    if (status >= 300 || !resp) {
        n->other++;
        return;
    }
    n->finals_2xx++;
    if (csip_txn_kind_of(ct) != CSIP_TXN_INVITE_CLIENT)
        return;
    /* The TU's ACK of the 2xx (RFC 3261 §13.2.2.4), outside the transaction. */
    const csip_nameaddr *to;
    if (csip_msg_to(resp, &to) != 0 || !to->tag.p || to->tag.len >= sizeof n->to_tag)
        die("reading the To tag of the 2xx", 0);
    memcpy(n->to_tag, to->tag.p, to->tag.len);
    n->to_tag[to->tag.len] = 0;
    n->got_2xx = true;
    csip_msg *ack = uac_request(n, "ACK", 1, true);
    int rc = csip_txn_layer_send_stateless(l, ack, &n->addr[UAS], n->now);
    csip_msg_free(ack);
    if (rc != 0)
        die("csip_txn_layer_send_stateless", rc);
}

static void net_init(net *n, uint32_t live, const csip_mem *uac_mem, const csip_mem *uas_mem)
{
    memset(n, 0, sizeof *n);
    n->step = live ? 32000u / live : 0;
    if (live && !n->step)
        n->step = 1;
    n->now = 1;
    n->mem[UAC] = uac_mem;
    n->mem[UAS] = uas_mem;
    static const char *ips[2] = {"10.0.0.1", "10.0.0.2"};
    for (int i = 0; i < 2; i++) {
        memset(&n->addr[i], 0, sizeof n->addr[i]);
        if (csip_addr_set_ip(&n->addr[i], csip_str_c(ips[i])) != 0)
            die("csip_addr_set_ip", 0);
        n->addr[i].port = 5060;
        n->addr[i].transport = CSIP_TP_UDP;
        csip_txn_opts opts;
        memset(&opts, 0, sizeof opts);
        opts.mem = n->mem[i];
        opts.max_txns = 1u << 20;
        csip_txn_callbacks cb = {net_send, i == UAS ? uas_request : NULL,
                                 i == UAC ? uac_response : NULL, NULL, NULL};
        int rc = csip_txn_layer_new(&opts, &cb, n, &n->l[i]);
        if (rc != 0)
            die("csip_txn_layer_new", rc);
    }
}

static void net_free(net *n)
{
    for (int i = 0; i < 2; i++)
        csip_txn_layer_free(n->l[i]);
}

static void start(net *n, const char *method)
{
    snprintf(n->call_id, sizeof n->call_id, "%08x-4b1e-bench@10.0.0.1", ++n->seq);
    csip_msg *req = uac_request(n, method, 1, false);
    csip_txn *ct = NULL;
    int rc = csip_txn_client_new(n->l[UAC], req, &n->addr[UAS], NULL, n->now, &ct);
    if (rc != 0)
        die("csip_txn_client_new", rc);
    pump(n);
}

/* One exchange of the workload, at the current time. */
static void exchange(net *n, workload wl)
{
    if (wl == WL_MESSAGE) {
        start(n, "MESSAGE");
        return;
    }
    n->got_2xx = false;
    start(n, "INVITE");
    if (!n->got_2xx)
        return;
    csip_msg *bye = uac_request(n, "BYE", 2, true);
    csip_txn *ct = NULL;
    int rc = csip_txn_client_new(n->l[UAC], bye, &n->addr[UAS], NULL, n->now, &ct);
    if (rc != 0)
        die("csip_txn_client_new", rc);
    pump(n);
}

static void run(net *n, workload wl, unsigned long count)
{
    unsigned long f0 = n->finals_2xx, p0 = n->provisionals, a0 = n->acks;
    for (unsigned long i = 0; i < count; i++) {
        tick(n);
        exchange(n, wl);
    }
    /* Every exchange went through, nothing else happened. */
    unsigned long per = wl == WL_MESSAGE ? 1 : 2;
    if (n->finals_2xx - f0 != per * count || n->other ||
        (wl == WL_CALL && (n->provisionals - p0 != count || n->acks - a0 != count)))
        die("an exchange", 0);
}

/* ------------------------------------------------------------------------- */
/* Rows                                                                       */

typedef struct row {
    const char *name, *label;
    workload wl;
    int txns, msgs; /* per exchange, client and server together */
    double ns;      /* wall time per exchange (median) */
    double instr;   /* instructions per exchange */
    unsigned long lo, hi;
} row;

static row rows[] = {
    {"message", "MESSAGE -> 200", WL_MESSAGE, 2, 2, -1, -1, 0, 0},
    {"call", "INVITE/180/200/ACK, BYE/200", WL_CALL, 4, 6, -1, -1, 0, 0},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static unsigned long warmup_count(uint32_t live)
{
    return (unsigned long)live + live / 4 + 100; /* past 64*T1, then some */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double time_row(const row *r, int runs, double target_ms, uint32_t live)
{
    net *n = malloc(sizeof *n);
    if (!n)
        die("malloc", CSIP_ERR_NOMEM);
    net_init(n, live, NULL, NULL);
    unsigned long warm = warmup_count(live);
    double t0 = now_ns();
    run(n, r->wl, warm);
    double per = (now_ns() - t0) / (double)warm;
    unsigned long count = (unsigned long)(target_ms * 1e6 / (per > 1 ? per : 1));
    if (count < 100)
        count = 100;
    double samples[64];
    if (runs > 64)
        runs = 64;
    for (int i = 0; i < runs; i++) {
        t0 = now_ns();
        run(n, r->wl, count);
        samples[i] = (now_ns() - t0) / (double)count;
    }
    net_free(n);
    free(n);
    qsort(samples, (size_t)runs, sizeof samples[0], cmp_double);
    return runs % 2 ? samples[runs / 2] : (samples[runs / 2 - 1] + samples[runs / 2]) / 2;
}

/* ------------------------------------------------------------------------- */
/* Instructions (callgrind)                                                   */

/* The child, under callgrind: for each row, the warm-up, then lo and hi
 * exchanges, each dumped apart. plan is "lo:hi,lo:hi" (0:0 skips a row). */
static int callgrind_child(const char *plan, uint32_t live)
{
#ifdef BENCH_HAVE_CALLGRIND
    for (size_t i = 0; i < N_ROWS; i++) {
        int used = 0;
        if (sscanf(plan, "%lu:%lu%n", &rows[i].lo, &rows[i].hi, &used) != 2)
            return 2;
        plan += used + (plan[used] == ',');
    }
    for (size_t i = 0; i < N_ROWS; i++) {
        if (rows[i].hi == 0)
            continue;
        net *n = malloc(sizeof *n);
        if (!n)
            return 1;
        net_init(n, live, NULL, NULL);
        run(n, rows[i].wl, warmup_count(live));
        CALLGRIND_ZERO_STATS;
        const unsigned long counts[2] = {rows[i].lo, rows[i].hi};
        for (int k = 0; k < 2; k++) {
            char pos[96];
            run(n, rows[i].wl, counts[k]);
            snprintf(pos, sizeof pos, "bench %s %lu", rows[i].name, counts[k]);
            CALLGRIND_DUMP_STATS_AT(pos);
        }
        net_free(n);
        free(n);
    }
    return 0;
#else
    (void)plan;
    (void)live;
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
    double cost[N_ROWS][2];
    for (size_t i = 0; i < N_ROWS; i++)
        cost[i][0] = cost[i][1] = -1;
    char path[4200];
    for (unsigned k = 1;; k++) {
        snprintf(path, sizeof path, "%s/cg.out.%u", dir, k);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            break;
        char line[1024], label[64] = "";
        unsigned long count = 0;
        double total = -1;
        while (fgets(line, sizeof line, f)) {
            static const char trigger[] = "Client Request: bench ";
            const char *trig = strstr(line, trigger);
            if (strncmp(line, "desc:", 5) == 0 && trig != NULL) {
                if (sscanf(trig + strlen(trigger), "%63s %lu", label, &count) != 2)
                    label[0] = '\0';
            } else if (strncmp(line, "summary:", 8) == 0 || strncmp(line, "totals:", 7) == 0) {
                total = strtod(strchr(line, ':') + 1, NULL);
            }
        }
        fclose(f);
        unlink(path);
        for (size_t i = 0; i < N_ROWS && label[0] && total >= 0; i++)
            if (strcmp(label, rows[i].name) == 0)
                cost[i][count == rows[i].hi] = total;
    }
    int got = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        if (cost[i][0] >= 0 && cost[i][1] >= 0) {
            rows[i].instr = (cost[i][1] - cost[i][0]) / (double)(rows[i].hi - rows[i].lo);
            got++;
        }
    }
    return got ? 0 : -1;
}

/* Runs this program under callgrind: lo = 200 exchanges, hi = lo + d, d
 * chosen from the wall time so that d exchanges take about budget_ms
 * natively (200 to 20000). */
static int measure_instructions(double budget_ms, uint32_t live)
{
    char plan[128];
    size_t used = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        row *r = &rows[i];
        double d = r->ns > 0 ? budget_ms * 1e6 / r->ns : 0;
        r->lo = r->ns > 0 ? 200 : 0;
        r->hi = r->ns > 0 ? r->lo + (d < 200 ? 200 : d > 20000 ? 20000 : (unsigned long)d) : 0;
        used += (size_t)snprintf(plan + used, sizeof plan - used, "%s%lu:%lu", i ? "," : "", r->lo,
                                 r->hi);
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char dir[] = "/tmp/csip-bench-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return -1;
    char out_opt[4200], log_path[4200], live_arg[16];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.out", dir);
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    snprintf(live_arg, sizeof live_arg, "%u", live);
    char *argv[] = {
        "valgrind", "--tool=callgrind", out_opt,  "--dump-line=no",    "--compress-strings=no",
        self,       "--live",           live_arg, "--callgrind-child", plan,
        NULL};
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
        fprintf(stderr, "txn: the callgrind run failed; its log is in %s\n", log_path);
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
/* Memory                                                                     */

typedef struct mem_case {
    const char *method;
    uas_mode uas;
    const char *server_state, *client_state;
} mem_case;

static const mem_case mem_cases[] = {
    {"MESSAGE", UAS_SILENT, "Trying (no answer yet)", "Trying"},
    {"MESSAGE", UAS_ANSWER, "Completed (200 sent, Timer J)", "Completed (Timer K)"},
    {"INVITE", UAS_RING, "Proceeding (180 sent)", "Proceeding"},
    {"INVITE", UAS_ANSWER, "Accepted (200 sent, Timer L)", "Accepted (Timer M)"},
};
#define N_MEM_CASES (sizeof mem_cases / sizeof mem_cases[0])

typedef struct mem_result {
    double bytes[2], blocks[2]; /* per live transaction, UAC and UAS layers */
} mem_result;

/* N exchanges of one kind started at one instant: the bytes each layer holds
 * beyond an empty one, per transaction. Returns the empty layer's bytes. */
static size_t measure_memory(const mem_case *mc, unsigned long count, mem_result *out)
{
    counter c[2] = {{0, 0}, {0, 0}};
    csip_mem mem[2];
    for (int i = 0; i < 2; i++)
        mem[i] = (csip_mem){cm_malloc, cm_free, cm_realloc, &c[i]};
    net *n = malloc(sizeof *n);
    if (!n)
        die("malloc", CSIP_ERR_NOMEM);
    net_init(n, 0, &mem[UAC], &mem[UAS]);
    n->uas = mc->uas;
    counter base[2] = {c[0], c[1]};
    for (unsigned long i = 0; i < count; i++)
        start(n, mc->method);
    if (csip_txn_layer_count(n->l[UAC]) != count || csip_txn_layer_count(n->l[UAS]) != count)
        die("keeping the transactions alive", 0);
    for (int i = 0; i < 2; i++) {
        out->bytes[i] = (double)(c[i].live - base[i].live) / (double)count;
        out->blocks[i] = (double)(c[i].blocks - base[i].blocks) / (double)count;
    }
    net_free(n);
    free(n);
    if (c[0].live || c[1].live)
        die("freeing everything", 0);
    return base[UAS].live;
}

/* ------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: txn [--runs N] [--ms MS] [--instr-ms MS] [--no-instr] [--live N] "
                    "[--mem-n N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int runs = 7, no_instr = 0;
    double target_ms = 100, instr_ms = 50;
    long live = 1000, mem_n = 10000;
    const char *child = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--runs") == 0 && i + 1 < argc)
            runs = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--ms") == 0 && i + 1 < argc)
            target_ms = strtod(argv[++i], NULL);
        else if (strcmp(a, "--instr-ms") == 0 && i + 1 < argc)
            instr_ms = strtod(argv[++i], NULL);
        else if (strcmp(a, "--no-instr") == 0)
            no_instr = 1;
        else if (strcmp(a, "--live") == 0 && i + 1 < argc)
            live = strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--mem-n") == 0 && i + 1 < argc)
            mem_n = strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--callgrind-child") == 0 && i + 1 < argc)
            child = argv[++i];
        else
            return usage();
    }
    if (runs < 1 || target_ms <= 0 || instr_ms <= 0 || live < 1 || live > 32000 || mem_n < 1 ||
        mem_n > 1000000)
        return usage();
    if (child)
        return callgrind_child(child, (uint32_t)live);

    for (size_t i = 0; i < N_ROWS; i++)
        rows[i].ns = time_row(&rows[i], runs, target_ms, (uint32_t)live);
    int have_instr = 0;
#ifdef BENCH_HAVE_CALLGRIND
    if (!no_instr) {
        if (!find_in_path("valgrind"))
            fprintf(stderr, "txn: valgrind not found: no instruction counts\n");
        else
            have_instr = measure_instructions(instr_ms, (uint32_t)live) == 0;
    }
#else
    (void)no_instr;
    (void)find_in_path;
    (void)measure_instructions;
#endif

    printf("transaction layer: UAC and UAS layers in one thread over a loop-back queue (UDP),\n"
           "virtual clock %u ms a step (~%ld live transactions of each long-lived kind)\n",
           32000u / (uint32_t)live ? 32000u / (uint32_t)live : 1u, live);
    printf("ns: median of %d runs of ~%.0f ms", runs, target_ms);
    if (have_instr)
        printf("; instr: callgrind, hi minus lo exchanges");
    printf("; client and server work both counted\n\n");
    printf("%-28s %4s %4s %9s %9s %10s %10s %9s\n", "exchange", "txns", "msgs", "ns/exch", "exch/s",
           "txn/s", "instr/exch", "instr/txn");
    for (size_t i = 0; i < N_ROWS; i++) {
        const row *r = &rows[i];
        printf("%-28s %4d %4d %9.0f %9.0f %10.0f", r->label, r->txns, r->msgs, r->ns, 1e9 / r->ns,
               1e9 / r->ns * r->txns);
        if (r->instr >= 0)
            printf(" %10.0f %9.0f\n", r->instr, r->instr / r->txns);
        else
            printf(" %10s %9s\n", "-", "-");
    }

    printf("\nmemory per live transaction: %ld exchanges alive at once, counting csip_mem\n"
           "(bytes requested, blocks in parentheses; the message, printed bytes, the\n"
           "transaction and its share of the table and heap)\n\n",
           mem_n);
    printf("%-8s %-30s %14s   %-20s %14s\n", "request", "server state", "server", "client state",
           "client");
    size_t empty = 0;
    for (size_t i = 0; i < N_MEM_CASES; i++) {
        mem_result m;
        empty = measure_memory(&mem_cases[i], (unsigned long)mem_n, &m);
        printf("%-8s %-30s %7.0f (%4.1f)   %-20s %7.0f (%4.1f)\n", mem_cases[i].method,
               mem_cases[i].server_state, m.bytes[UAS], m.blocks[UAS], mem_cases[i].client_state,
               m.bytes[UAC], m.blocks[UAC]);
    }
    printf("\nan empty layer: %zu bytes\n", empty);
    return 0;
}
