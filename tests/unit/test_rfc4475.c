/*
 * RFC 4475 torture tests: for each of the 49 messages, the outcome the RFC
 * asks for (tests/data/rfc4475/manifest.tsv). Where the RFC allows two
 * behaviours the choice is noted next to the entry.
 *
 * Columns: parse = expected return of csip_msg_parse (0 or an error code);
 * valid = expected csip_msg_validate() status (0 valid, else the response);
 * uas/proxy/registrar = expected csip_check_request() status (-1: not asserted).
 */
#include "check.h"

typedef struct tcase {
    const char *name;
    int parse;     /* expected csip_msg_parse() result */
    int valid;     /* expected status from validate: 0 = valid; -1 = response to drop */
    int uas, proxy, registrar;
} tcase;

#define NA (-1)

static const tcase cases[] = {
    /* 3.1.1 valid messages */
    {"wsinv", 0, 0, 0, 0, NA},
    {"intmeth", 0, 0, 501, 0, NA},      /* unknown method: UAS 501, proxy forwards */
    {"esc01", 0, 0, 0, 0, NA},
    {"escnull", 0, 0, NA, 0, 0},
    {"esc02", 0, 0, 501, 0, NA},        /* RE%47IST%45R is not REGISTER */
    {"lwsdisp", 0, 0, 0, 0, NA},
    {"longreq", 0, 0, 0, 0, NA},
    {"dblreq", 0, 0, NA, 0, 0},
    {"semiuri", 0, 0, 0, 0, NA},
    {"transports", 0, 0, 0, 0, NA},
    {"mpart01", 0, 0, 415, 0, NA},      /* multipart/signed is not a type we accept */
    {"unreason", 0, 0, NA, NA, NA},
    {"noreason", 0, 0, NA, NA, NA},
    /* 3.1.2 invalid messages */
    {"badinv01", 0, 400, 400, 400, NA},
    {"clerr", CSIP_ERR_PARSE_BODY_TRUNCATED, 400, 400, 400, NA},
    {"ncl", CSIP_ERR_PARSE_CONTENT_LENGTH, 400, 400, 400, NA},
    {"scalar02", 0, 400, NA, 400, 400},
    {"scalarlg", 0, -1, NA, NA, NA},     /* a response: discarded */
    {"quotbal", 0, 400, 400, 400, NA},
    {"ltgtruri", 0, 400, 400, 400, NA},
    {"lwsruri", CSIP_ERR_PARSE_START_LINE, 400, 400, 400, NA}, /* we reject, never guess */
    {"lwsstart", CSIP_ERR_PARSE_START_LINE, 400, 400, 400, NA},
    {"trws", CSIP_ERR_PARSE_START_LINE, 400, 400, 400, NA},
    {"escruri", 0, 400, 400, 400, NA},   /* chosen: 400 (headers in a Request-URI) */
    {"baddate", 0, 0, 0, 0, NA},         /* chosen: Date ignored, as the RFC prefers */
    {"regbadct", 0, 400, NA, 400, 400},
    {"badaspec", 0, 400, 400, 400, NA},
    {"baddn", 0, 400, 400, 400, NA},
    {"badvers", CSIP_ERR_PARSE_VERSION, 505, 505, 505, NA},
    {"mismatch01", 0, 400, 400, 400, NA},
    {"mismatch02", 0, 400, 501, 501, NA}, /* chosen: 501 in every role */
    {"bigcode", CSIP_ERR_PARSE_STATUS_CODE, -1, NA, NA, NA},
    /* 3.2 transaction layer */
    {"badbranch", 0, 0, 0, 0, NA},       /* chosen: accept; the transaction layer falls back */
    /* 3.3 application layer */
    {"insuf", 0, 400, 400, 400, NA},
    {"unkscm", 0, 0, 416, 416, NA},
    {"novelsc", 0, 0, 416, 416, NA},     /* chosen: 416 */
    {"unksm2", 0, 0, NA, 0, 400},
    {"bext01", 0, 0, 420, 420, NA},
    {"invut", 0, 0, 415, 0, NA},
    {"regaut01", 0, 0, 405, 0, 0},       /* registrar: the auth layer may ignore it or send 401 */
    {"multi01", 0, 400, 400, 400, NA},
    {"mcl01", CSIP_ERR_PARSE_CONTENT_LENGTH, 400, 400, 400, NA},
    {"bcast", 0, 0, NA, NA, NA},         /* syntax valid; discarding it is the UAC's job */
    {"zeromf", 0, 0, 0, 483, NA},
    {"cparam01", 0, 0, NA, 0, 0},
    {"cparam02", 0, 0, NA, 0, 0},
    {"regescrt", 0, 0, NA, 0, 0},
    {"sdp01", 0, 0, 406, 0, NA},         /* chosen: 406 (400 also allowed) */
    {"inv2543", 0, 0, 0, 0, NA},
};

static csip_msg *load(const char *name, int *rc, csip_parse_error *err, char **bufp,
                      size_t *lenp)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rfc4475/%s.dat", CSIP_TEST_DATA, name);
    size_t len;
    char *buf = check_read_file(path, &len);
    if (!buf) {
        fprintf(stderr, "cannot read %s\n", path);
        *rc = -9999;
        return NULL;
    }
    csip_msg *m = NULL;
    *rc = csip_msg_parse(buf, len, NULL, &m, err);
    if (bufp) {
        *bufp = buf;
        *lenp = len;
    } else {
        free(buf);
    }
    return m;
}

static void test_all_49(void)
{
    EXPECT_EQ(sizeof cases / sizeof cases[0], 49);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tcase *t = &cases[i];
        check_current = t->name;
        int rc;
        csip_parse_error err;
        csip_msg *m = load(t->name, &rc, &err, NULL, NULL);
        EXPECT_EQ(rc, t->parse);
        if (!m) {
            CHECK_FAIL_("%s: no message", t->name);
            continue;
        }
        csip_parse_error verr;
        int vrc = csip_msg_validate(m, &verr);
        if (t->valid == 0) {
            EXPECT_OK(vrc);
        } else if (t->valid == -1) {
            EXPECT_FALSE(csip_msg_is_request(m));
            EXPECT_TRUE(vrc < 0);
            EXPECT_EQ(verr.status, 0); /* never answered */
        } else {
            EXPECT_TRUE(vrc < 0);
            EXPECT_EQ(verr.status, t->valid);
            EXPECT_TRUE(verr.reason && *verr.reason);
        }
        const int want[3] = {t->uas, t->proxy, t->registrar};
        for (int role = 0; role < 3; role++) {
            if (want[role] == NA)
                continue;
            csip_check_result res;
            int st = csip_check_request(m, (csip_role)role, NULL, &res);
            if (st != want[role])
                CHECK_FAIL_("%s role %d: status %d (%s) want %d", t->name, role, st,
                            res.reason ? res.reason : "", want[role]);
        }
        csip_msg_free(m);
    }
    check_current = "test_all_49";
}

static const csip_hdr *find_other(const csip_msg *m, const char *name)
{
    return csip_msg_hdr_find_name(m, csip_str_c(name));
}

static void test_wsinv_values(void)
{
    int rc;
    csip_msg *m = load("wsinv", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    uint32_t mf;
    ASSERT_OK(csip_msg_max_forwards(m, &mf));
    EXPECT_EQ(mf, 68);
    const csip_cseq *cs;
    ASSERT_OK(csip_msg_cseq(m, &cs));
    EXPECT_EQ(cs->number, 9);
    EXPECT_STR(cs->method, "INVITE");
    EXPECT_EQ(cs->method_id, CSIP_METHOD_INVITE);
    const csip_nameaddr *to, *from;
    ASSERT_OK(csip_msg_to(m, &to));
    EXPECT_STR(to->tag, "1918181833n");
    EXPECT_STR(to->uri.user, "vivekg");
    ASSERT_OK(csip_msg_from(m, &from));
    EXPECT_STR(from->tag, "98asjd8");
    EXPECT_STR(from->display, "\"J Rosenberg \\\\\\\"\"");
    csip_str cid;
    ASSERT_OK(csip_msg_call_id(m, &cid));
    EXPECT_STR(cid, "wsinv.ndaksdj@192.0.2.1");
    /* Via: one value on the first line, two on the compact line */
    size_t nv;
    ASSERT_OK(csip_msg_via_count(m, &nv));
    EXPECT_EQ(nv, 3);
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_STR(v->transport, "UDP");
    EXPECT_STR(v->host, "192.0.2.2");
    EXPECT_STR(v->branch, "390skdjuw");
    ASSERT_OK(csip_msg_via(m, 1, &v));
    EXPECT_STR(v->transport, "TCP");
    EXPECT_STR(v->host, "spindle.example.com");
    EXPECT_STR(v->branch, "z9hG4bK9ikj8");
    ASSERT_OK(csip_msg_via(m, 2, &v));
    EXPECT_STR(v->host, "192.168.255.111");
    EXPECT_STR(v->branch, "z9hG4bK30239");
    EXPECT_EQ(csip_msg_via(m, 3, &v), CSIP_ERR_NOT_FOUND);
    /* unknown headers kept verbatim */
    const csip_hdr *h = find_other(m, "NewFangledHeader");
    ASSERT_TRUE(h);
    EXPECT_STR(h->value, "newfangled value\r\n continued newfangled value");
    h = find_other(m, "UnknownHeaderWithUnusualValue");
    ASSERT_TRUE(h);
    EXPECT_STR(h->value, ";;,,;;,;");
    EXPECT_EQ(h->id, CSIP_HDR_OTHER);
    /* s : (Subject, compact, empty) */
    h = csip_msg_hdr_find(m, CSIP_HDR_SUBJECT);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->value.len, 0);
    const csip_nameaddr *c;
    size_t nc;
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &nc));
    ASSERT_EQ(nc, 1);
    EXPECT_STR(c[0].display, "\"Quoted string \\\"\\\"\"");
    EXPECT_TRUE(c[0].has_q);
    EXPECT_EQ(c[0].q, 330);
    const csip_nameaddr *r;
    size_t nr;
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &r, &nr));
    ASSERT_EQ(nr, 1);
    EXPECT_TRUE(r[0].uri.lr);
    EXPECT_STR(r[0].uri.host, "services.example.com");
    EXPECT_EQ(csip_msg_body(m).len, 150);
    const csip_uri *u;
    ASSERT_OK(csip_msg_ruri(m, &u));
    EXPECT_STR(u->params, "unknownparam");
    csip_msg_free(m);
}

static void test_intmeth_values(void)
{
    int rc;
    csip_msg *m = load("intmeth", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    EXPECT_EQ(csip_msg_method(m), CSIP_METHOD_OTHER);
    EXPECT_STR(csip_msg_method_name(m), "!interesting-Method0123456789_*+`.%indeed'~");
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(m, &to));
    /* the display name holds a quoted-pair NUL (0x00) */
    EXPECT_TRUE(memchr(to->display.p, 0, to->display.len) != NULL);
    csip_check_result res;
    EXPECT_EQ(csip_check_request(m, CSIP_ROLE_UAS, NULL, &res), 501);
    csip_msg_free(m);
}

static void test_esc_values(void)
{
    int rc;
    csip_msg *m = load("esc02", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    const csip_nameaddr *c;
    size_t n;
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    EXPECT_EQ(n, 2); /* C%6Fntact is another header */
    EXPECT_TRUE(find_other(m, "C%6Fntact") != NULL);
    csip_msg_free(m);

    m = load("escnull", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    ASSERT_EQ(n, 2);
    EXPECT_FALSE(csip_uri_equal(&c[0].uri, &c[1].uri)); /* two distinct bindings */
    csip_msg_free(m);
}

static void test_dblreq_trailing(void)
{
    int rc;
    char *buf;
    size_t len;
    csip_msg *m = load("dblreq", &rc, NULL, &buf, &len);
    ASSERT_TRUE(m);
    EXPECT_EQ(csip_msg_method(m), CSIP_METHOD_REGISTER);
    EXPECT_EQ(csip_msg_body(m).len, 0);
    /* the trailing INVITE-looking octets are not part of the message */
    csip_str raw = csip_msg_raw(m);
    EXPECT_TRUE(raw.len < len);
    char out[4096];
    int n = csip_msg_print(m, out, sizeof out);
    ASSERT_GT(n, 0);
    EXPECT_TRUE(check_memmem(out, (size_t)n, "INVITE", 6) == NULL);
    EXPECT_EQ((size_t)n, raw.len);
    free(buf);
    csip_msg_free(m);
}

static void test_semiuri_values(void)
{
    int rc;
    csip_msg *m = load("semiuri", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    const csip_uri *u;
    ASSERT_OK(csip_msg_ruri(m, &u));
    EXPECT_STR(u->user, "user;par=u%40example.net");
    EXPECT_STR(u->host, "example.com");
    csip_msg_free(m);
}

static void test_transports_values(void)
{
    int rc;
    csip_msg *m = load("transports", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    size_t n;
    ASSERT_OK(csip_msg_via_count(m, &n));
    EXPECT_GE(n, 4);
    const csip_via *v;
    bool unknown = false;
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(csip_msg_via(m, i, &v));
        if (!csip_str_ieq_c(v->transport, "UDP") && !csip_str_ieq_c(v->transport, "TCP") &&
            !csip_str_ieq_c(v->transport, "TLS") && !csip_str_ieq_c(v->transport, "SCTP"))
            unknown = true;
    }
    EXPECT_TRUE(unknown);
    csip_msg_free(m);
}

static void test_bext01_unsupported(void)
{
    int rc;
    csip_msg *m = load("bext01", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    csip_check_result res;
    ASSERT_EQ(csip_check_request(m, CSIP_ROLE_UAS, NULL, &res), 420);
    ASSERT_EQ(res.n_unsupported, 2);
    EXPECT_STR(res.unsupported[0], "nothingSupportsThis");
    EXPECT_STR(res.unsupported[1], "nothingSupportsThisEither");
    EXPECT_STR(res.header, "Require");
    ASSERT_EQ(csip_check_request(m, CSIP_ROLE_PROXY, NULL, &res), 420);
    ASSERT_EQ(res.n_unsupported, 2);
    EXPECT_STR(res.unsupported[0], "noProxiesSupportThis");
    EXPECT_STR(res.unsupported[1], "norDoAnyProxiesSupportThis");
    /* a UAS that supports one of them still lists only the other */
    static const char *const exts[] = {"nothingSupportsThis", NULL};
    csip_check_opts o = {.extensions = exts};
    ASSERT_EQ(csip_check_request(m, CSIP_ROLE_UAS, &o, &res), 420);
    ASSERT_EQ(res.n_unsupported, 1);
    EXPECT_STR(res.unsupported[0], "nothingSupportsThisEither");
    csip_msg_free(m);
}

static void test_registrar_contacts(void)
{
    int rc;
    /* cparam01: unknownparam is a contact-param, not a url-parameter */
    csip_msg *m = load("cparam01", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    const csip_nameaddr *c;
    size_t n;
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    ASSERT_EQ(n, 1);
    csip_str v;
    EXPECT_EQ(csip_param_find(c[0].uri.params, "unknownparam", &v), 0);
    EXPECT_EQ(csip_param_find(c[0].params, "unknownparam", &v), 1);
    csip_msg_free(m);
    /* cparam02: it stays a url-parameter */
    m = load("cparam02", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    ASSERT_EQ(n, 1);
    EXPECT_EQ(csip_param_find(c[0].uri.params, "unknownparam", &v), 1);
    EXPECT_EQ(csip_param_find(c[0].params, "unknownparam", &v), 0);
    csip_msg_free(m);
    /* regescrt: the escaped Route stays in the Contact URI */
    m = load("regescrt", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    ASSERT_EQ(n, 1);
    ASSERT_TRUE(c[0].uri.headers.p != NULL);
    EXPECT_TRUE(check_memmem(c[0].uri.headers.p, c[0].uri.headers.len, "Route=", 6) != NULL);
    csip_msg_free(m);
}

static void test_errors_located(void)
{
    int rc;
    csip_parse_error err;
    csip_msg *m = load("scalar02", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_TRUE(csip_msg_validate(m, &err) < 0);
    EXPECT_EQ(err.code, CSIP_ERR_PARSE_NUMBER_RANGE);
    EXPECT_STR(err.header, "CSeq");
    EXPECT_EQ(err.line, 5);
    EXPECT_EQ(err.status, 400);
    csip_msg_free(m);

    m = load("badvers", &rc, &err, NULL, NULL);
    ASSERT_TRUE(m);
    EXPECT_EQ(err.status, 505);
    EXPECT_EQ(err.line, 1);
    csip_msg_free(m);

    m = load("insuf", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_TRUE(csip_msg_validate(m, &err) < 0);
    EXPECT_EQ(err.code, CSIP_ERR_PARSE_MISSING_HEADER);
    EXPECT_TRUE(strstr(err.reason, "Missing") != NULL);
    csip_msg_free(m);

    m = load("multi01", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    ASSERT_TRUE(csip_msg_validate(m, &err) < 0);
    EXPECT_EQ(err.code, CSIP_ERR_PARSE_DUPLICATE_HEADER);
    csip_msg_free(m);
}

static void test_baddate_ignored(void)
{
    int rc;
    csip_msg *m = load("baddate", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    const csip_date *d;
    EXPECT_EQ(csip_msg_date(m, &d), CSIP_ERR_PARSE_HEADER_VALUE); /* EST is not GMT */
    EXPECT_OK(csip_msg_validate(m, NULL));
    csip_msg_free(m);
}

static void test_inv2543_no_content_length(void)
{
    int rc;
    csip_msg *m = load("inv2543", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    uint32_t cl;
    EXPECT_EQ(csip_msg_content_length(m, &cl), CSIP_ERR_NOT_FOUND);
    EXPECT_GT(csip_msg_body(m).len, 0); /* the body is the rest of the datagram */
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_TRUE(v->branch.p == NULL);
    const csip_nameaddr *from;
    ASSERT_OK(csip_msg_from(m, &from));
    EXPECT_TRUE(from->tag.p == NULL);
    csip_msg_free(m);
}

static void test_responses(void)
{
    int rc;
    csip_msg *m = load("noreason", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    EXPECT_EQ(csip_msg_status(m), 100);
    EXPECT_EQ(csip_msg_reason(m).len, 0);
    csip_msg_free(m);
    m = load("unreason", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m);
    EXPECT_EQ(csip_msg_status(m), 200);
    EXPECT_GT(csip_msg_reason(m).len, 20);
    csip_msg_free(m);
    m = load("bigcode", &rc, NULL, NULL, NULL);
    ASSERT_TRUE(m); /* framed, but the code is invalid: dropped, never answered */
    EXPECT_EQ(rc, CSIP_ERR_PARSE_STATUS_CODE);
    csip_msg_free(m);
}

/* Every message but test.dat is in the table, and test.dat is rejected without a crash. */
static void test_corpus_complete(void)
{
    int rc;
    csip_parse_error err;
    csip_msg *m = load("test", &rc, &err, NULL, NULL);
    EXPECT_TRUE(rc < 0);
    csip_msg_free(m);
    char path[512];
    snprintf(path, sizeof path, "%s/rfc4475/manifest.tsv", CSIP_TEST_DATA);
    size_t len;
    char *man = check_read_file(path, &len);
    ASSERT_TRUE(man);
    size_t listed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "\n%s\t", cases[i].name);
        if (check_memmem(man, len, key, strlen(key)))
            listed++;
        else
            CHECK_FAIL_("%s not in the manifest", cases[i].name);
    }
    EXPECT_EQ(listed, 49);
    free(man);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_all_49),
        CHECK_TEST(test_wsinv_values),
        CHECK_TEST(test_intmeth_values),
        CHECK_TEST(test_esc_values),
        CHECK_TEST(test_dblreq_trailing),
        CHECK_TEST(test_semiuri_values),
        CHECK_TEST(test_transports_values),
        CHECK_TEST(test_bext01_unsupported),
        CHECK_TEST(test_registrar_contacts),
        CHECK_TEST(test_errors_located),
        CHECK_TEST(test_baddate_ignored),
        CHECK_TEST(test_inv2543_no_content_length),
        CHECK_TEST(test_responses),
        CHECK_TEST(test_corpus_complete),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
