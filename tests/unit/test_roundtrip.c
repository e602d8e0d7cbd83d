/*
 * For every valid message of the suite (the .sip files of tests/data/msg and the valid
 * RFC 4475 messages):
 *  - parse → print → parse gives the same typed values, and an unedited
 *    message prints byte for byte as received;
 *  - the stream framer, fed one byte at a time, frames exactly the message;
 *  - every truncation is "need more" on a stream, never an error or a crash,
 *    and a truncated datagram never crashes the parser.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>

#include "check.h"

typedef struct sbuf {
    char b[65536];
    size_t n;
} sbuf;

static void addf(sbuf *s, const char *tag, csip_str v)
{
    int n = snprintf(s->b + s->n, sizeof s->b - s->n, "%s=[%.*s]\n", tag, (int)v.len,
                     v.p ? v.p : "");
    if (n > 0 && (size_t)n < sizeof s->b - s->n)
        s->n += (size_t)n;
}

static void addu(sbuf *s, const char *tag, unsigned long long v)
{
    int n = snprintf(s->b + s->n, sizeof s->b - s->n, "%s=%llu\n", tag, v);
    if (n > 0 && (size_t)n < sizeof s->b - s->n)
        s->n += (size_t)n;
}

static void add_uri(sbuf *s, const csip_uri *u)
{
    addf(s, "uri", u->raw);
    addu(s, "kind", u->kind);
    addf(s, "user", u->user);
    addf(s, "host", u->host);
    addu(s, "port", u->port);
    addf(s, "params", u->params);
    addf(s, "headers", u->headers);
}

static void add_na(sbuf *s, const csip_nameaddr *na)
{
    addf(s, "display", na->display);
    add_uri(s, &na->uri);
    addf(s, "tag", na->tag);
    addf(s, "hparams", na->params);
    addu(s, "exp", na->has_expires ? na->expires + 1ull : 0);
    addu(s, "q", na->has_q ? na->q + 1ull : 0);
    addu(s, "star", na->star);
}

/* A text snapshot of every typed value of the message. */
static void snapshot(const csip_msg *m, sbuf *s)
{
    s->n = 0;
    addu(s, "req", csip_msg_is_request(m));
    addf(s, "method", csip_msg_method_name(m));
    addf(s, "ruri", csip_msg_ruri_raw(m));
    addu(s, "status", (unsigned)csip_msg_status(m));
    addf(s, "reason", csip_msg_reason(m));
    for (size_t i = 0; i < csip_msg_hdr_count(m); i++) {
        const csip_hdr *h = csip_msg_hdr_at(m, i);
        if (h->id == CSIP_HDR_CONTENT_LENGTH)
            continue; /* added by the printer when absent */
        addu(s, "hid", h->id);
        addf(s, "hval", h->value);
    }
    const csip_via *v;
    for (size_t i = 0; csip_msg_via(m, i, &v) == 0; i++) {
        addf(s, "via.transport", v->transport);
        addf(s, "via.host", v->host);
        addu(s, "via.port", v->port);
        addf(s, "via.branch", v->branch);
        addf(s, "via.received", v->received);
        addu(s, "via.rport", v->has_rport ? v->rport + 1ull : 0);
    }
    const csip_nameaddr *na;
    if (csip_msg_from(m, &na) == 0)
        add_na(s, na);
    if (csip_msg_to(m, &na) == 0)
        add_na(s, na);
    csip_str cid;
    if (csip_msg_call_id(m, &cid) == 0)
        addf(s, "callid", cid);
    const csip_cseq *cs;
    if (csip_msg_cseq(m, &cs) == 0) {
        addu(s, "cseq", cs->number);
        addf(s, "cseq.method", cs->method);
    }
    uint32_t u;
    if (csip_msg_max_forwards(m, &u) == 0)
        addu(s, "mf", u);
    if (csip_msg_expires(m, &u) == 0)
        addu(s, "expires", u);
    static const csip_hdr_id lists[] = {CSIP_HDR_CONTACT, CSIP_HDR_ROUTE, CSIP_HDR_RECORD_ROUTE};
    for (size_t k = 0; k < 3; k++) {
        size_t n;
        if (csip_msg_nameaddrs(m, lists[k], &na, &n) == 0)
            for (size_t i = 0; i < n; i++)
                add_na(s, &na[i]);
    }
    static const csip_hdr_id toks[] = {CSIP_HDR_REQUIRE, CSIP_HDR_SUPPORTED, CSIP_HDR_ALLOW};
    for (size_t k = 0; k < 3; k++) {
        const csip_str *t;
        size_t n;
        if (csip_msg_tokens(m, toks[k], &t, &n) == 0)
            for (size_t i = 0; i < n; i++)
                addf(s, "tok", t[i]);
    }
    const csip_auth *a;
    for (size_t i = 0; csip_msg_auth(m, CSIP_HDR_AUTHORIZATION, i, &a) == 0; i++) {
        addf(s, "auth.user", a->username);
        addf(s, "auth.response", a->response);
    }
    for (size_t i = 0; csip_msg_auth(m, CSIP_HDR_WWW_AUTHENTICATE, i, &a) == 0; i++)
        addf(s, "auth.nonce", a->nonce);
    const csip_media_type *mt;
    if (csip_msg_content_type(m, &mt) == 0) {
        addf(s, "ct.type", mt->type);
        addf(s, "ct.sub", mt->subtype);
    }
    addf(s, "body", csip_msg_body(m));
}

/* The valid RFC 4475 messages (see test_rfc4475.c). */
static const char *const valid4475[] = {
    "wsinv",     "intmeth", "esc01",    "escnull",  "esc02",  "lwsdisp",  "longreq",
    "dblreq",    "semiuri", "transports", "mpart01", "unreason", "noreason", "badbranch",
    "unkscm",    "novelsc", "unksm2",   "bext01",   "invut",  "regaut01", "bcast",
    "zeromf",    "cparam01", "cparam02", "regescrt", "sdp01", "inv2543", "baddate",
};

typedef void (*file_fn)(const char *name, const char *buf, size_t len);

static size_t for_each_valid(file_fn fn)
{
    char path[1024];
    size_t count = 0;
    for (size_t i = 0; i < sizeof valid4475 / sizeof valid4475[0]; i++) {
        snprintf(path, sizeof path, "%s/rfc4475/%s.dat", CSIP_TEST_DATA, valid4475[i]);
        size_t len;
        char *b = check_read_file(path, &len);
        if (!b) {
            CHECK_FAIL_("cannot read %s", path);
            continue;
        }
        check_current = valid4475[i];
        fn(valid4475[i], b, len);
        free(b);
        count++;
    }
    snprintf(path, sizeof path, "%s/msg", CSIP_TEST_DATA);
    DIR *d = opendir(path);
    if (!d) {
        CHECK_FAIL_("cannot open %s", path);
        return count;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".sip") != 0)
            continue;
        snprintf(path, sizeof path, "%s/msg/%s", CSIP_TEST_DATA, e->d_name);
        size_t len;
        char *b = check_read_file(path, &len);
        if (!b)
            continue;
        check_current = e->d_name;
        fn(e->d_name, b, len);
        free(b);
        count++;
    }
    closedir(d);
    return count;
}

static void roundtrip_one(const char *name, const char *buf, size_t len)
{
    csip_msg *m = NULL;
    csip_parse_error err;
    int rc = csip_msg_parse(buf, len, NULL, &m, &err);
    if (rc != 0 || !m) {
        CHECK_FAIL_("%s: parse %s", name, csip_err_name(rc));
        csip_msg_free(m);
        return;
    }
    static sbuf a, b;
    snapshot(m, &a);
    int n = csip_msg_print(m, NULL, 0);
    if (n <= 0) {
        CHECK_FAIL_("%s: print size %d", name, n);
        csip_msg_free(m);
        return;
    }
    char *out = malloc((size_t)n);
    EXPECT_EQ(csip_msg_print(m, out, (size_t)n), n);
    EXPECT_EQ(csip_msg_print(m, out, (size_t)n - 1), CSIP_ERR_BUFFER_TOO_SMALL);
    /* byte for byte, but for a missing Content-Length (RFC 2543 inv2543), which is added */
    csip_str raw = csip_msg_raw(m);
    uint32_t cl;
    if (csip_msg_content_length(m, &cl) == 0) {
        EXPECT_EQ((size_t)n, raw.len);
        EXPECT_TRUE((size_t)n == raw.len && memcmp(out, raw.p, raw.len) == 0);
    } else {
        EXPECT_TRUE(check_memmem(out, (size_t)n, "Content-Length: ", 16) != NULL);
    }
    csip_msg *m2 = NULL;
    rc = csip_msg_parse(out, (size_t)n, NULL, &m2, &err);
    EXPECT_OK(rc);
    if (m2) {
        snapshot(m2, &b);
        if (a.n != b.n || memcmp(a.b, b.b, a.n) != 0)
            CHECK_FAIL_("%s: typed values differ after print:\n%.*s\n---\n%.*s", name, (int)a.n,
                        a.b, (int)b.n, b.b);
    }
    csip_msg_free(m2);
    free(out);
    csip_msg_free(m);
}

static void test_roundtrip(void)
{
    EXPECT_GE(for_each_valid(roundtrip_one), 40);
}

/* Frames `len` bytes fed in chunks of `step` (0 = everything at once). */
static int frame_fed(const char *buf, size_t len, size_t step, size_t *framed)
{
    csip_stream st;
    csip_stream_init(&st);
    size_t have = step ? 0 : len, off = 0;
    for (;;) {
        size_t skip, ml;
        csip_parse_error err;
        int rc = csip_stream_frame(&st, buf + off, have - off, NULL, &skip, &ml, &err);
        off += skip;
        if (rc == 0) {
            *framed = ml;
            return 0;
        }
        if (rc != CSIP_ERR_INCOMPLETE)
            return rc;
        if (have == len)
            return rc;
        have += step;
        if (have > len)
            have = len;
    }
}

static void stream_one(const char *name, const char *buf, size_t len)
{
    csip_msg *m = NULL;
    csip_parse_error err;
    if (csip_msg_parse(buf, len, NULL, &m, &err) != 0 || !m) {
        CHECK_FAIL_("%s: parse", name);
        csip_msg_free(m);
        return;
    }
    uint32_t cl;
    csip_str raw = csip_msg_raw(m);
    if (csip_msg_content_length(m, &cl) != 0) {
        /* Content-Length is mandatory on streams (RFC 3261 §18.3): inv2543 cannot be framed */
        size_t framed;
        EXPECT_EQ(frame_fed(raw.p, raw.len, 0, &framed), CSIP_ERR_PARSE_NO_CONTENT_LENGTH);
        csip_msg_free(m);
        return;
    }
    char *copy = check_tail_copy(raw.p, raw.len);
    size_t framed = 0;
    EXPECT_OK(frame_fed(copy, raw.len, 1, &framed));
    EXPECT_EQ(framed, raw.len);
    EXPECT_OK(frame_fed(copy, raw.len, 7, &framed));
    EXPECT_EQ(framed, raw.len);
    /* every truncation is INCOMPLETE on a stream; as a datagram it must not crash */
    for (size_t cut = 0; cut < raw.len; cut++) {
        char *t = check_tail_copy(raw.p, cut);
        csip_stream st;
        csip_stream_init(&st);
        size_t skip, ml;
        int rc = csip_stream_frame(&st, t, cut, NULL, &skip, &ml, &err);
        if (rc != CSIP_ERR_INCOMPLETE) {
            CHECK_FAIL_("%s: truncation at %zu gives %s", name, cut, csip_err_name(rc));
            free(t);
            break;
        }
        csip_msg *tm = NULL;
        (void)csip_msg_parse(t, cut, NULL, &tm, &err);
        if (tm) {
            (void)csip_msg_validate(tm, &err);
        }
        csip_msg_free(tm);
        free(t);
    }
    /* the framed message parses as a stream message */
    csip_msg *sm = NULL;
    EXPECT_OK(csip_msg_parse_stream(copy, framed, NULL, &sm, &err));
    csip_msg_free(sm);
    free(copy);
    csip_msg_free(m);
}

static void test_stream_byte_by_byte(void)
{
    EXPECT_GE(for_each_valid(stream_one), 40);
}

/* Several messages back to back with keep-alives between them, fed in small chunks. */
static void test_stream_pipeline(void)
{
    static const char one[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
                              "l: 5\r\n\r\nhello";
    static const char two[] = "SIP/2.0 200 OK\r\nContent-Length   :\r\n 0\r\n\r\n";
    char buf[512];
    size_t n = 0;
    memcpy(buf + n, "\r\n\r\n", 4), n += 4; /* RFC 5626 ping */
    memcpy(buf + n, one, sizeof one - 1), n += sizeof one - 1;
    memcpy(buf + n, "\r\n", 2), n += 2; /* pong */
    memcpy(buf + n, two, sizeof two - 1), n += sizeof two - 1;
    memcpy(buf + n, one, sizeof one - 1), n += sizeof one - 1;
    for (size_t step = 1; step <= n; step++) {
        csip_stream st;
        csip_stream_init(&st);
        size_t start = 0, have = 0, msgs = 0;
        size_t lens[3] = {0};
        while (start < n && msgs < 3) {
            size_t skip, ml;
            csip_parse_error err;
            int rc = csip_stream_frame(&st, buf + start, have - start, NULL, &skip, &ml, &err);
            start += skip;
            if (rc == 0) {
                lens[msgs++] = ml;
                start += ml;
                if (have < start)
                    have = start;
                continue;
            }
            ASSERT_EQ(rc, CSIP_ERR_INCOMPLETE);
            if (have >= n)
                break;
            have = have + step > n ? n : have + step;
        }
        ASSERT_EQ(msgs, 3);
        EXPECT_EQ(lens[0], sizeof one - 1);
        EXPECT_EQ(lens[1], sizeof two - 1);
        EXPECT_EQ(lens[2], sizeof one - 1);
    }
}

static void test_stream_errors(void)
{
    struct {
        const char *in;
        int rc;
    } cases[] = {
        /* RFC 4475 ncl and mcl01 over TCP: framing error, close the connection */
        {"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n", CSIP_ERR_PARSE_CONTENT_LENGTH},
        {"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\nabc", CSIP_ERR_PARSE_CONTENT_LENGTH},
        {"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", CSIP_ERR_PARSE_NO_CONTENT_LENGTH},
        {"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n", CSIP_ERR_LIMIT_MESSAGE_SIZE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        csip_stream st;
        csip_stream_init(&st);
        size_t skip, ml;
        csip_parse_error err;
        int rc = csip_stream_frame(&st, cases[i].in, strlen(cases[i].in), NULL, &skip, &ml, &err);
        EXPECT_EQ(rc, cases[i].rc);
        EXPECT_NE(err.status, 0);
    }
    /* a header section that never ends is cut off by the size limit, not buffered forever */
    static char big[70000];
    memcpy(big, "OPTIONS sip:a@b SIP/2.0\r\n", 25);
    for (size_t i = 25; i < sizeof big; i++)
        big[i] = (i % 50 == 49) ? '\n' : 'x';
    for (size_t i = 25; i < sizeof big; i += 50)
        memcpy(big + i, "X-A: ", 5);
    csip_stream st;
    csip_stream_init(&st);
    size_t skip, ml;
    csip_parse_error err;
    csip_limits lim = {.max_headers = 10000};
    int rc = csip_stream_frame(&st, big, sizeof big, &lim, &skip, &ml, &err);
    if (rc != CSIP_ERR_LIMIT_MESSAGE_SIZE)
        CHECK_FAIL_("endless header section: %s", csip_err_name(rc));
    csip_stream_init(&st);
    rc = csip_stream_frame(&st, big, sizeof big, NULL, &skip, &ml, &err);
    EXPECT_EQ(rc, CSIP_ERR_LIMIT_HEADERS);
    /* one endless line */
    memset(big + 25, 'y', sizeof big - 25);
    csip_stream_init(&st);
    rc = csip_stream_frame(&st, big, 9000, NULL, &skip, &ml, &err);
    EXPECT_EQ(rc, CSIP_ERR_LIMIT_LINE);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_roundtrip),
        CHECK_TEST(test_stream_byte_by_byte),
        CHECK_TEST(test_stream_pipeline),
        CHECK_TEST(test_stream_errors),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
