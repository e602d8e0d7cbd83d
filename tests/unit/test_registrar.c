/*
 * Registrar (RFC 3261 §10.3, RFC 3327): a table of REGISTER steps run against
 * an in-test location store, and the RFC 4475 registrar messages.
 */
#include "check.h"
#include "csip/registrar.h"

/* ---- an in-test location store ---------------------------------------- */

#define TS_MAX 64

typedef struct ts_store {
    csip_binding b[TS_MAX];
    size_t n;
    csip_binding view[TS_MAX]; /* get() result */
    int fail_put;              /* put fails from the n-th call on (1 = first) */
    int puts;
    int begins, commits, rollbacks;
    csip_binding saved[TS_MAX]; /* snapshot at begin, for rollback */
    size_t nsaved;
} ts_store;

static csip_str ts_dup(csip_str s)
{
    if (!s.p)
        return CSIP_STR_NULL;
    char *p = malloc(s.len + 1);
    memcpy(p, s.p, s.len);
    return (csip_str){p, s.len};
}

static void ts_free_b(csip_binding *b)
{
    free((void *)b->aor.p);
    free((void *)b->contact.p);
    free((void *)b->params.p);
    free((void *)b->path.p);
    free((void *)b->call_id.p);
}

static csip_binding ts_copy(const csip_binding *b)
{
    csip_binding c = *b;
    c.aor = ts_dup(b->aor);
    c.contact = ts_dup(b->contact);
    c.params = ts_dup(b->params);
    c.path = ts_dup(b->path);
    c.call_id = ts_dup(b->call_id);
    return c;
}

static void ts_clear(ts_store *s)
{
    for (size_t i = 0; i < s->n; i++)
        ts_free_b(&s->b[i]);
    for (size_t i = 0; i < s->nsaved; i++)
        ts_free_b(&s->saved[i]);
    memset(s, 0, sizeof *s);
}

static int ts_get(void *ud, csip_str aor, const csip_binding **out, size_t *n)
{
    ts_store *s = ud;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (csip_str_eq(s->b[i].aor, aor))
            s->view[k++] = s->b[i];
    *out = s->view;
    *n = k;
    return 0;
}

static int ts_remove(void *ud, csip_str aor, csip_str contact)
{
    ts_store *s = ud;
    for (size_t i = 0; i < s->n; i++) {
        if (csip_str_eq(s->b[i].aor, aor) && csip_str_eq(s->b[i].contact, contact)) {
            ts_free_b(&s->b[i]);
            s->b[i] = s->b[--s->n];
            return 0;
        }
    }
    return 0;
}

static int ts_put(void *ud, const csip_binding *b)
{
    ts_store *s = ud;
    if (s->fail_put && ++s->puts >= s->fail_put)
        return CSIP_ERR_CALLBACK_FAILURE;
    ts_remove(ud, b->aor, b->contact);
    if (s->n == TS_MAX)
        return CSIP_ERR_NOMEM;
    s->b[s->n++] = ts_copy(b);
    return 0;
}

static int ts_remove_all(void *ud, csip_str aor)
{
    ts_store *s = ud;
    for (size_t i = s->n; i-- > 0;)
        if (csip_str_eq(s->b[i].aor, aor)) {
            ts_free_b(&s->b[i]);
            s->b[i] = s->b[--s->n];
        }
    return 0;
}

static int ts_begin(void *ud, csip_str aor)
{
    ts_store *s = ud;
    (void)aor;
    s->begins++;
    for (size_t i = 0; i < s->n; i++)
        s->saved[i] = ts_copy(&s->b[i]);
    s->nsaved = s->n;
    return 0;
}

static int ts_commit(void *ud)
{
    ts_store *s = ud;
    s->commits++;
    for (size_t i = 0; i < s->nsaved; i++)
        ts_free_b(&s->saved[i]);
    s->nsaved = 0;
    return 0;
}

static void ts_rollback(void *ud)
{
    ts_store *s = ud;
    s->rollbacks++;
    for (size_t i = 0; i < s->n; i++)
        ts_free_b(&s->b[i]);
    memcpy(s->b, s->saved, s->nsaved * sizeof s->b[0]);
    s->n = s->nsaved;
    s->nsaved = 0;
}

static ts_store store;

static csip_registrar *new_registrar(void)
{
    static const char *const domains[] = {"example.com", "Example.ORG", NULL};
    static const char *const aliases[] = {"192.0.2.7", "Registrar.example.net", NULL};
    csip_registrar_opts o = {.domains = domains,
                             .aliases = aliases,
                             .min_expires = 60,
                             .default_expires = 3600,
                             .max_expires = 7200,
                             .max_bindings = 3,
                             .retry_after = 7};
    csip_location_store ls = {ts_get,   ts_put,    ts_remove,   ts_remove_all,
                              ts_begin, ts_commit, ts_rollback, &store};
    csip_registrar *r = NULL;
    if (csip_registrar_new(&o, &ls, NULL, &r) != 0)
        return NULL;
    return r;
}

/* ---- the table -------------------------------------------------------- */

typedef struct reg_step {
    const char *name;
    bool reset;          /* start from an empty store */
    const char *ruri;    /* NULL: sip:example.com */
    const char *to;      /* NULL: <sip:alice@example.com> */
    const char *call_id; /* NULL: "c1" */
    uint32_t cseq;
    const char *extra; /* header lines, each ending in CRLF */
    int64_t now;
    int status;
    int contacts;       /* Contact values in the 200 (-1: not checked) */
    const char *has[3]; /* substrings the printed response must hold */
    const char *hasnt;  /* a substring it must not hold */
} reg_step;

/* Rows leave their trailing fields out (zero: not checked). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define T0 1000000000 /* 2001-09-09T01:46:40Z */

static const reg_step steps[] = {
    /* clang-format off */
    /* §10.3 step 5: the To URI */
    {"to not sip", true, NULL, "<tel:+15551234>", NULL, 1, "Contact: <sip:a@h>\r\n", T0, 400},
    {"to other scheme", true, NULL, "<http://example.com/x>", NULL, 1, "", T0, 400},
    /* step 3: the domain */
    {"to domain not served", true, NULL, "<sip:alice@example.net>", NULL, 1,
     "Contact: <sip:a@h>\r\n", T0, 404},
    {"ruri domain not served", true, "sip:example.net", NULL, NULL, 1, "Contact: <sip:a@h>\r\n", T0,
     404},
    /* step 1: the server's own names in the Request-URI, never as an AOR domain */
    {"ruri alias ip", true, "sip:192.0.2.7:5060", NULL, NULL, 1, "Contact: <sip:a@h>\r\n", T0,
     200, 1},
    {"ruri alias name", true, "sip:registrar.EXAMPLE.net", NULL, NULL, 1,
     "Contact: <sip:a@h>\r\n", T0, 200, 1},
    {"to alias refused", true, "sip:192.0.2.7", "<sip:alice@192.0.2.7>", NULL, 1,
     "Contact: <sip:a@h>\r\n", T0, 404},
    {"domain case-insensitive", true, "sip:EXAMPLE.org", "<sip:bob@EXAMPLE.ORG>", NULL, 1,
     "Contact: <sip:b@h>\r\n", T0, 200, 1, {"<sip:b@h>;expires=3600"}},
    /* step 6: expiry, default, header, parameter, maximum */
    {"default expires", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>\r\n", T0, 200, 1,
     {"Contact: <sip:a@h>;expires=3600\r\n", "Date: Sun, 09 Sep 2001 01:46:40 GMT\r\n",
      "To: <sip:alice@example.com>;tag="}},
    {"expires header", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>\r\nExpires: 600\r\n", T0, 200,
     1, {"<sip:a@h>;expires=600"}},
    {"param over header", true, NULL, NULL, NULL, 1,
     "Contact: <sip:a@h>;expires=120\r\nExpires: 600\r\n", T0, 200, 1, {"<sip:a@h>;expires=120"}},
    {"shortened to max", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>;expires=99999\r\n", T0, 200,
     1, {"<sip:a@h>;expires=7200"}},
    {"remaining time", false, NULL, NULL, NULL, 2, "", T0 + 200, 200, 1,
     {"<sip:a@h>;expires=7000"}},
    /* 423 Interval Too Brief with Min-Expires */
    {"423 param", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>;expires=30\r\n", T0, 423, -1,
     {"Min-Expires: 60\r\n"}},
    {"423 header", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>\r\nExpires: 59\r\n", T0, 423, -1,
     {"Min-Expires: 60\r\n"}},
    {"423 one of two", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>, <sip:b@h>;expires=1\r\n", T0,
     423},
    {"423 changed nothing", false, NULL, NULL, NULL, 2, "", T0, 200, 0},
    {"min accepted", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>;expires=60\r\n", T0, 200, 1},
    /* q-values kept, other parameters kept, expires replaced */
    {"q kept", true, NULL, NULL, NULL, 1,
     "Contact: <sip:a@h>;q=0.5;expires=300, \"B\" <sip:b@h>;q=1;+sip.instance=\"<urn:x>\"\r\n", T0,
     200, 2, {"<sip:a@h>;q=0.5;expires=300", "<sip:b@h>;q=1;+sip.instance=\"<urn:x>\";"}},
    /* refresh, §19.1.4 comparison, removal */
    {"add first", true, NULL, NULL, NULL, 1, "Contact: <sip:a@Host:5060;transport=udp>\r\n", T0,
     200, 1},
    {"add second", false, NULL, NULL, NULL, 2, "Contact: <sip:b@h>\r\n", T0, 200, 2},
    {"refresh equal uri", false, NULL, NULL, NULL, 3,
     "Contact: <sip:a@host:5060;TRANSPORT=UDP>;expires=100\r\n", T0 + 10, 200, 2,
     {"<sip:a@host:5060;TRANSPORT=UDP>;expires=100"}, "Host:5060"},
    {"fetch", false, NULL, NULL, "other", 1, "", T0 + 20, 200, 2,
     {"<sip:a@host:5060;TRANSPORT=UDP>;expires=90", "<sip:b@h>;expires=3580"}},
    {"remove one", false, NULL, NULL, NULL, 4, "Contact: <sip:b@h>;expires=0\r\n", T0 + 20, 200, 1,
     {"<sip:a@host"}, "<sip:b@h>"},
    {"remove absent", false, NULL, NULL, NULL, 5, "Contact: <sip:zz@h>\r\nExpires: 0\r\n", T0 + 20,
     200, 1},
    {"expired not listed", false, NULL, NULL, NULL, 6, "", T0 + 200, 200, 0},
    /* Call-ID and CSeq ordering */
    {"order: add", true, NULL, NULL, "cid", 10, "Contact: <sip:a@h>\r\n", T0, 200, 1},
    {"order: same cseq", false, NULL, NULL, "cid", 10, "Contact: <sip:a@h>;expires=0\r\n", T0, 500,
     -1, {"Retry-After: 7\r\n"}},
    {"order: lower cseq", false, NULL, NULL, "cid", 9, "Contact: <sip:a@h>;expires=0\r\n", T0, 500,
     -1, {"Retry-After: 7\r\n"}},
    {"order: untouched", false, NULL, NULL, "x", 1, "", T0, 200, 1},
    {"order: other call-id", false, NULL, NULL, "cid2", 1, "Contact: <sip:a@h>;expires=200\r\n", T0,
     200, 1, {"expires=200"}},
    {"order: higher cseq", false, NULL, NULL, "cid2", 2, "Contact: <sip:a@h>;expires=300\r\n", T0,
     200, 1, {"expires=300"}},
    /* '*' */
    {"star: setup", true, NULL, NULL, "s", 5, "Contact: <sip:a@h>, <sip:b@h>\r\n", T0, 200, 2},
    {"star without expires", false, NULL, NULL, "s", 6, "Contact: *\r\n", T0, 400},
    {"star expires 1", false, NULL, NULL, "s", 6, "Contact: *\r\nExpires: 1\r\n", T0, 400},
    {"star not alone", false, NULL, NULL, "s", 6, "Contact: *, <sip:c@h>\r\nExpires: 0\r\n", T0,
     400},
    {"star out of order", false, NULL, NULL, "s", 5, "Contact: *\r\nExpires: 0\r\n", T0, 500, -1,
     {"Retry-After: 7\r\n"}},
    {"star still there", false, NULL, NULL, "x", 1, "", T0, 200, 2},
    {"star", false, NULL, NULL, "s", 6, "Contact: *\r\nExpires: 0\r\n", T0, 200, 0},
    {"star empty", false, NULL, NULL, "x", 2, "", T0, 200, 0},
    /* bindings per AOR */
    {"max bindings", true, NULL, NULL, NULL, 1,
     "Contact: <sip:a@h>, <sip:b@h>, <sip:c@h>, <sip:d@h>\r\n", T0, 403},
    {"max bindings ok", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>, <sip:b@h>, <sip:c@h>\r\n",
     T0, 200, 3},
    {"max with removal", false, NULL, NULL, NULL, 2, "Contact: <sip:a@h>;expires=0, <sip:d@h>\r\n",
     T0, 200, 3},
    /* the AOR is canonical: scheme, user unescaped, host lowercased, no parameters */
    {"aor: register", true, NULL, "<sip:%61lice@EXAMPLE.com;user=phone>", NULL, 1,
     "Contact: <sip:a@h>\r\n", T0, 200, 1},
    {"aor: same", false, NULL, "\"Alice\" <sip:alice@example.com>", NULL, 2, "", T0, 200, 1},
    {"aor: sips differs", false, NULL, "<sips:alice@example.com>", NULL, 3, "", T0, 200, 0},
    /* Path (RFC 3327) */
    {"path stored", true, NULL, NULL, NULL, 1,
     "Path: <sip:p1.example.com;lr>\r\nPath: <sip:p2.example.com;lr>\r\nSupported: path\r\n"
     "Contact: <sip:a@h>\r\n",
     T0, 200, 1, {"Path: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"}},
    {"path not echoed", true, NULL, NULL, NULL, 1,
     "Path: <sip:p1.example.com;lr>\r\nContact: <sip:a@h>\r\n", T0, 200, 1, {""}, "Path:"},
    /* malformed headers */
    {"bad contact", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h\r\n", T0, 400},
    {"bad expires", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>\r\nExpires: soon\r\n", T0, 400},
    /* clang-format on */
};

static int send_register(csip_registrar *r, const reg_step *st, char *out, size_t cap)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "REGISTER %s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%u\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:alice@example.com>;tag=f1\r\n"
                     "To: %s\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u REGISTER\r\n"
                     "%s"
                     "Content-Length: 0\r\n\r\n",
                     st->ruri ? st->ruri : "sip:example.com", (unsigned)st->cseq,
                     st->to ? st->to : "<sip:alice@example.com>", st->call_id ? st->call_id : "c1",
                     (unsigned)st->cseq, st->extra);
    csip_msg *req = NULL, *resp = NULL;
    csip_parse_error perr;
    if (csip_msg_parse(buf, (size_t)n, NULL, &req, &perr) != 0) {
        csip_msg_free(req);
        return -1;
    }
    int rc = csip_registrar_handle(r, req, st->now, &resp);
    csip_msg_free(req);
    if (rc != 0)
        return rc;
    int len = csip_msg_print(resp, out, cap - 1);
    int status = csip_msg_status(resp);
    csip_msg_free(resp);
    if (len < 0)
        return len;
    out[len] = 0;
    return status;
}

static int count_contacts(const char *text)
{
    csip_msg *m = NULL;
    csip_parse_error perr;
    if (csip_msg_parse(text, strlen(text), NULL, &m, &perr) != 0) {
        csip_msg_free(m);
        return -1;
    }
    const csip_nameaddr *c;
    size_t n = 0;
    int rc = csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n);
    csip_msg_free(m);
    return rc ? -1 : (int)n;
}

static void test_table(void)
{
    csip_registrar *r = new_registrar();
    ASSERT_TRUE(r != NULL);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const reg_step *st = &steps[i];
        check_current = st->name;
        if (st->reset)
            ts_clear(&store);
        char out[4096];
        int status = send_register(r, st, out, sizeof out);
        EXPECT_EQ(status, st->status);
        if (status != st->status) {
            fprintf(stderr, "%s\n", status > 0 ? out : "");
            continue;
        }
        if (st->status == 200 && st->contacts >= 0)
            EXPECT_EQ(count_contacts(out), st->contacts);
        for (size_t k = 0; k < 3 && st->has[k]; k++)
            if (!strstr(out, st->has[k]))
                CHECK_FAIL_("response lacks \"%s\":\n%s", st->has[k], out);
        if (st->hasnt && strstr(out, st->hasnt))
            CHECK_FAIL_("response holds \"%s\":\n%s", st->hasnt, out);
    }
    check_current = "test_table";
    csip_registrar_free(r);
    ts_clear(&store);
}

/* What is stored: q, params, Path, Call-ID and CSeq, canonical AOR, absolute expiry. */
static void test_stored(void)
{
    ts_clear(&store);
    csip_registrar *r = new_registrar();
    ASSERT_TRUE(r != NULL);
    reg_step st = {"stored",
                   true,
                   NULL,
                   "<sip:Al%69ce@EXAMPLE.com>",
                   "abc@h",
                   42,
                   "Path: <sip:p1;lr>\r\nContact: <sip:a@h;ob>;q=0.25;reg-id=1;expires=100\r\n",
                   T0,
                   200};
    char out[4096];
    ASSERT_EQ(send_register(r, &st, out, sizeof out), 200);
    ASSERT_EQ(store.n, 1);
    const csip_binding *b = &store.b[0];
    EXPECT_STR(b->aor, "sip:Alice@example.com");
    EXPECT_STR(b->contact, "sip:a@h;ob");
    EXPECT_STR(b->params, "q=0.25;reg-id=1");
    EXPECT_STR(b->path, "<sip:p1;lr>");
    EXPECT_STR(b->call_id, "abc@h");
    EXPECT_EQ(b->cseq, 42);
    EXPECT_TRUE(b->has_q);
    EXPECT_EQ(b->q, 250);
    EXPECT_EQ(b->expires_at, T0 + 100);
    EXPECT_EQ(store.begins, 1);
    EXPECT_EQ(store.commits, 1);
    csip_registrar_free(r);
    ts_clear(&store);
}

/* §10.3 step 7: all binding updates or none; a store failure is a 500. */
static void test_store_failure(void)
{
    ts_clear(&store);
    csip_registrar *r = new_registrar();
    ASSERT_TRUE(r != NULL);
    reg_step st = {"fail", true, NULL, NULL, NULL, 1, "Contact: <sip:a@h>, <sip:b@h>\r\n", T0, 500};
    store.fail_put = 2;
    char out[4096];
    EXPECT_EQ(send_register(r, &st, out, sizeof out), 500);
    EXPECT_EQ(store.rollbacks, 1);
    EXPECT_EQ(store.n, 0);
    EXPECT_TRUE(strstr(out, "Retry-After") == NULL);
    csip_registrar_free(r);
    ts_clear(&store);
}

static void test_args(void)
{
    csip_location_store ls = {0};
    csip_registrar *r = NULL;
    EXPECT_EQ(csip_registrar_new(NULL, &ls, NULL, &r), CSIP_ERR_INVALID_ARG);
    csip_location_store ok = {ts_get, ts_put, ts_remove, ts_remove_all, NULL, NULL, NULL, &store};
    csip_registrar_opts o = {.min_expires = 100, .max_expires = 50};
    EXPECT_EQ(csip_registrar_new(&o, &ok, NULL, &r), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_registrar_new(NULL, &ok, NULL, &r));
    /* not a REGISTER */
    static const char inv[] =
        "INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1"
        "\r\nFrom: <sip:b@h>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x"
        "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    csip_msg *m = NULL, *resp = NULL;
    csip_parse_error perr;
    ASSERT_OK(csip_msg_parse(inv, sizeof inv - 1, NULL, &m, &perr));
    EXPECT_EQ(csip_registrar_handle(r, m, T0, &resp), CSIP_ERR_INVALID_ARG);
    csip_msg_free(m);
    csip_registrar_free(r);

    char aor[64];
    csip_uri u;
    ASSERT_OK(csip_uri_parse("sip:a%00b@[2001:DB8::1]:5070;lr?x=y", 35, 0, &u));
    int n = csip_registrar_aor(&u, aor, sizeof aor);
    ASSERT_EQ(n, 26);
    EXPECT_EQ(memcmp(aor, "sip:a\0b@[2001:db8::1]:5070", 26), 0);
    EXPECT_EQ(csip_registrar_aor(&u, aor, 4), CSIP_ERR_BUFFER_TOO_SMALL);
    ASSERT_OK(csip_uri_parse("tel:+1555", 9, 0, &u));
    EXPECT_EQ(csip_registrar_aor(&u, aor, sizeof aor), CSIP_ERR_INVALID_ARG);
}


/* Every allocation failure gives CSIP_ERR_NOMEM (or a response), never a
 * leak or a crash. */
static void test_failing_allocator(void)
{
    static const char reg[] = "REGISTER sip:example.com SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK9\r\n"
                              "From: <sip:alice@example.com>;tag=1\r\n"
                              "To: <sip:alice@example.com>\r\nCall-ID: fm\r\nCSeq: 1 REGISTER\r\n"
                              "Path: <sip:p;lr>\r\nSupported: path\r\n"
                              "Contact: <sip:a@h>;q=0.1, <sip:b@h>;expires=100\r\n"
                              "Content-Length: 0\r\n\r\n";
    csip_msg *req = NULL;
    csip_parse_error perr;
    ASSERT_OK(csip_msg_parse(reg, sizeof reg - 1, NULL, &req, &perr));
    bool succeeded = false;
    for (int n = 1; n < 200 && !succeeded; n++) {
        ts_clear(&store);
        check_failmem f;
        check_failmem_init(&f, n);
        csip_mem mem = f.mem;
        csip_location_store ls = {ts_get,   ts_put,    ts_remove,   ts_remove_all,
                                  ts_begin, ts_commit, ts_rollback, &store};
        csip_registrar *r = NULL;
        int rc = csip_registrar_new(NULL, &ls, &mem, &r);
        if (rc == 0) {
            csip_msg *resp = NULL;
            rc = csip_registrar_handle(r, req, T0, &resp);
            if (rc == 0) {
                EXPECT_EQ(csip_msg_status(resp), 200);
                succeeded = csip_msg_status(resp) == 200;
            } else {
                EXPECT_EQ(rc, CSIP_ERR_NOMEM);
                EXPECT_TRUE(resp == NULL);
            }
            csip_msg_free(resp);
            csip_registrar_free(r);
        } else {
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
        }
        EXPECT_EQ(f.live, 0);
    }
    EXPECT_TRUE(succeeded);
    csip_msg_free(req);
    ts_clear(&store);
}

/* ---- RFC 4475 registrar cases ------------------------------------------ */

static int rfc4475(const char *name, char *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rfc4475/%s.dat", CSIP_TEST_DATA, name);
    size_t len;
    char *data = check_read_file(path, &len);
    if (!data)
        return -1;
    csip_msg *req = NULL, *resp = NULL;
    csip_parse_error perr;
    int rc = csip_msg_parse(data, len, NULL, &req, &perr);
    free(data);
    if (rc) {
        csip_msg_free(req);
        return -2;
    }
    /* what a registrar does: the role checks, then §10.3 */
    csip_check_result res;
    int status = csip_check_request(req, CSIP_ROLE_REGISTRAR, NULL, &res);
    if (status) {
        csip_msg_free(req);
        return status;
    }
    csip_registrar *r = new_registrar();
    rc = csip_registrar_handle(r, req, T0, &resp);
    csip_registrar_free(r);
    csip_msg_free(req);
    if (rc)
        return rc;
    int len2 = csip_msg_print(resp, out, cap - 1);
    status = csip_msg_status(resp);
    csip_msg_free(resp);
    if (len2 < 0)
        return len2;
    out[len2] = 0;
    return status;
}

static void test_rfc4475(void)
{
    char out[4096];
    /* cparam01: unknownparam is a Contact header parameter, not a URI parameter */
    ts_clear(&store);
    ASSERT_EQ(rfc4475("cparam01", out, sizeof out), 200);
    EXPECT_TRUE(strstr(out, "Contact: <sip:+19725552222@gw1.example.net>;unknownparam;expires=3600"
                            "\r\n") != NULL);
    ASSERT_EQ(store.n, 1);
    EXPECT_STR(store.b[0].contact, "sip:+19725552222@gw1.example.net");
    EXPECT_STR(store.b[0].aor, "sip:watson@example.com");
    /* cparam02: inside <>, it is a URI parameter and stays one */
    ts_clear(&store);
    ASSERT_EQ(rfc4475("cparam02", out, sizeof out), 200);
    EXPECT_TRUE(strstr(out, "Contact: <sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"
                            "\r\n") != NULL);
    /* regescrt: the escaped Route stays in the Contact URI */
    ts_clear(&store);
    ASSERT_EQ(rfc4475("regescrt", out, sizeof out), 200);
    EXPECT_TRUE(strstr(out, "Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>;"
                            "expires=3600\r\n") != NULL);
    /* unksm2: a To that is not a SIP URI is refused with 400, by the check and by the registrar */
    ts_clear(&store);
    EXPECT_EQ(rfc4475("unksm2", out, sizeof out), 400);
    EXPECT_EQ(store.n, 0);
    ts_clear(&store);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_table),
        CHECK_TEST(test_stored),
        CHECK_TEST(test_store_failure),
        CHECK_TEST(test_args),
        CHECK_TEST(test_failing_allocator),
        CHECK_TEST(test_rfc4475),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
