#include "check.h"
#include "csip/auth.h"

#include <ctype.h>

/* ---- RFC test vectors ---- */

/* RFC 7616 §3.9.1 */
#define V_USER "Mufasa"
#define V_REALM "http-auth@example.org"
#define V_PASS "Circle of Life"
#define V_NONCE "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
#define V_CNONCE "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
#define V_OPAQUE "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"

static const csip_auth_request v_req = {CSIP_STR("GET"), CSIP_STR("/dir/index.html"),
                                        CSIP_STR_NULL};

static void vector(csip_auth_alg alg, const char *expect)
{
    char ha1[CSIP_AUTH_HEX_MAX], resp[CSIP_AUTH_HEX_MAX];
    ASSERT_OK(csip_auth_ha1(alg, CSIP_STR(V_USER), CSIP_STR(V_REALM), CSIP_STR(V_PASS), ha1));
    csip_auth_digest d = {alg,
                          csip_str_c(ha1),
                          CSIP_STR(V_NONCE),
                          CSIP_STR(V_CNONCE),
                          CSIP_STR("00000001"),
                          CSIP_STR("auth")};
    ASSERT_OK(csip_auth_compute_response(&d, &v_req, resp));
    EXPECT_CSTR(resp, expect);
}

static void test_rfc7616_vectors(void)
{
    vector(CSIP_AUTH_ALG_MD5, "8ca523f5e9506fed4657c9700eebdbec");
    vector(CSIP_AUTH_ALG_SHA256,
           "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    /* SHA-512/256 (RFC 8760) on the same inputs, computed independently */
    vector(CSIP_AUTH_ALG_SHA512_256,
           "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0");

    /* the full header of §3.9.1, parsed, and answered by the client side */
    csip_auth ch;
    ASSERT_OK(csip_auth_parse(CSIP_STR("Digest realm=\"" V_REALM "\", qop=\"auth, auth-int\", "
                                       "algorithm=SHA-256, nonce=\"" V_NONCE
                                       "\", opaque=\"" V_OPAQUE "\""),
                              &ch));
    char buf[1024];
    int n = csip_auth_client_answer(&ch, CSIP_STR(V_USER), CSIP_STR(V_PASS), &v_req, 1,
                                    CSIP_STR(V_CNONCE), buf, sizeof buf);
    ASSERT_GT(n, 0);
    EXPECT_CSTR(buf, "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"" V_NONCE
                     "\", uri=\"/dir/index.html\", response=\"753927fa0e85d155564e2e272a28d1802ca10"
                     "daf4496794697cf8db5856cb6c1\", algorithm=SHA-256, cnonce=\"" V_CNONCE
                     "\", opaque=\"" V_OPAQUE "\", qop=auth, nc=00000001");
}

static void test_rfc2617_md5(void)
{
    /* RFC 2617 §3.5 */
    char ha1[CSIP_AUTH_HEX_MAX], resp[CSIP_AUTH_HEX_MAX];
    ASSERT_OK(csip_auth_ha1(CSIP_AUTH_ALG_MD5, CSIP_STR("Mufasa"), CSIP_STR("testrealm@host.com"),
                            CSIP_STR("Circle Of Life"), ha1));
    EXPECT_CSTR(ha1, "939e7578ed9e3c518a452acee763bce9");
    csip_auth_digest d = {
        CSIP_AUTH_ALG_MD5,    csip_str_c(ha1),      CSIP_STR("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
        CSIP_STR("0a4f113b"), CSIP_STR("00000001"), CSIP_STR("auth")};
    ASSERT_OK(csip_auth_compute_response(&d, &v_req, resp));
    EXPECT_CSTR(resp, "6629fae49393a05397450978507c4ef1");
    /* the client side on the RFC 2617 challenge (no algorithm: MD5, not echoed) */
    csip_auth ch;
    ASSERT_OK(
        csip_auth_parse(CSIP_STR("Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
                                 "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
                                 "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
                        &ch));
    char buf[512];
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("Mufasa"), CSIP_STR("Circle Of Life"), &v_req,
                                      1, CSIP_STR("0a4f113b"), buf, sizeof buf),
              0);
    EXPECT_TRUE(strstr(buf, "response=\"6629fae49393a05397450978507c4ef1\"") != NULL);
    EXPECT_TRUE(strstr(buf, "algorithm") == NULL);
    /* uppercase stored HA1 gives the same response */
    for (char *p = ha1; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    ASSERT_OK(csip_auth_compute_response(&d, &v_req, resp));
    EXPECT_CSTR(resp, "6629fae49393a05397450978507c4ef1");
}

static void test_variants(void)
{
    /* RFC 2069: no qop; -sess; auth-int; against independently computed values */
    char resp[CSIP_AUTH_HEX_MAX];
    const char *ha1 = "939e7578ed9e3c518a452acee763bce9";
    csip_auth_digest d = {
        CSIP_AUTH_ALG_MD5, csip_str_c(ha1), CSIP_STR("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
        CSIP_STR_NULL,     CSIP_STR_NULL,   CSIP_STR_NULL};
    ASSERT_OK(csip_auth_compute_response(&d, &v_req, resp));
    EXPECT_CSTR(resp, "670fd8c2df070c60b045671b8b24ff02");
    d.alg = CSIP_AUTH_ALG_MD5_SESS;
    d.cnonce = CSIP_STR("0a4f113b");
    d.nc = CSIP_STR("00000001");
    d.qop = CSIP_STR("auth");
    ASSERT_OK(csip_auth_compute_response(&d, &v_req, resp));
    EXPECT_CSTR(resp, "8e3825c57e897f5a0dec6c2d4e5059d0");
    d.alg = CSIP_AUTH_ALG_MD5;
    d.qop = CSIP_STR("auth-int");
    csip_auth_request r = v_req;
    r.body = CSIP_STR("v=0\r\n");
    ASSERT_OK(csip_auth_compute_response(&d, &r, resp));
    EXPECT_CSTR(resp, "151b6cabb7e59e0ac757207a039ff3d0");
    /* errors */
    d.qop = CSIP_STR("bogus");
    EXPECT_EQ(csip_auth_compute_response(&d, &r, resp), CSIP_ERR_INVALID_ARG);
    d.qop = CSIP_STR("auth");
    d.ha1 = CSIP_STR("abc");
    EXPECT_EQ(csip_auth_compute_response(&d, &r, resp), CSIP_ERR_INVALID_ARG);
    /* names */
    csip_auth_alg a;
    EXPECT_OK(csip_auth_alg_parse(CSIP_STR("sha-512-256-SESS"), &a));
    EXPECT_EQ(a, CSIP_AUTH_ALG_SHA512_256_SESS);
    EXPECT_OK(csip_auth_alg_parse(CSIP_STR_NULL, &a));
    EXPECT_EQ(a, CSIP_AUTH_ALG_MD5);
    EXPECT_EQ(csip_auth_alg_parse(CSIP_STR("SHA-1"), &a), CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_auth_alg_base(CSIP_AUTH_ALG_SHA256_SESS), CSIP_AUTH_ALG_SHA256);
    EXPECT_EQ(csip_auth_alg_hex_len(CSIP_AUTH_ALG_SHA512_256), 64);
    EXPECT_CSTR(csip_auth_alg_name(CSIP_AUTH_ALG_SHA512_256), "SHA-512-256");
    EXPECT_TRUE(csip_auth_alg_name((csip_auth_alg)99) == NULL);
}

/* ---- server ---- */

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
#define REALM "example.com"
#define T0 1700000000000ull /* ms */

typedef struct lookup_state {
    int calls;
    bool last_userhash;
} lookup_state;

/* Users: alice/secret, "bob \"the\" builder"/pw. HA1 computed as a store would hold it. */
static int lookup(void *ud, csip_str user, bool userhash, csip_str realm, csip_auth_alg alg,
                  char *ha1, size_t cap)
{
    lookup_state *st = ud;
    static const char *const users[][2] = {{"alice", "secret"}, {"bob \"the\" builder", "pw"}};
    if (st) {
        st->calls++;
        st->last_userhash = userhash;
    }
    if (cap < CSIP_AUTH_HEX_MAX)
        return CSIP_ERR_INVALID_ARG;
    for (size_t i = 0; i < 2; i++) {
        csip_str name = csip_str_c(users[i][0]);
        if (userhash) {
            char uh[CSIP_AUTH_HEX_MAX];
            if (csip_auth_userhash(alg, name, realm, uh) != 0)
                return CSIP_ERR_NOMEM;
            if (!csip_str_eq_c(user, uh))
                continue;
        } else if (!csip_str_eq(user, name)) {
            continue;
        }
        return csip_auth_ha1(alg, name, realm, csip_str_c(users[i][1]), ha1);
    }
    return CSIP_ERR_NOT_FOUND;
}

static csip_auth_server *server_with(const csip_auth_alg *algs, size_t n, size_t slots)
{
    csip_auth_server_opts *o = NULL;
    csip_auth_server *s = NULL;
    if (csip_auth_server_opts_new(NULL, &o) != 0)
        return NULL;
    if (csip_auth_server_opts_set_realm(o, CSIP_STR(REALM)) == 0 &&
        (!algs || csip_auth_server_opts_set_algorithms(o, algs, n) == 0) &&
        (!slots || csip_auth_server_opts_set_replay_slots(o, slots) == 0) &&
        csip_auth_server_opts_set_auth_int(o, true) == 0)
        (void)csip_auth_server_new(NULL, key, sizeof key, o, &s);
    csip_auth_server_opts_free(o);
    return s;
}

static const csip_auth_request reg = {CSIP_STR("REGISTER"), CSIP_STR("sip:example.com"),
                                      CSIP_STR_NULL};

/* Challenge i at time t, answered by the client; returns the verifier's result. */
static csip_auth_result answer(csip_auth_server *s, size_t i, uint64_t t_challenge,
                               uint64_t t_verify, const char *user, const char *pass, uint32_t nc,
                               char *cred_out)
{
    char chbuf[512], crbuf[1024];
    csip_auth ch, cr;
    if (csip_auth_server_challenge(s, i, false, t_challenge, chbuf, sizeof chbuf) <= 0 ||
        csip_auth_parse(csip_str_c(chbuf), &ch) != 0 ||
        csip_auth_client_answer(&ch, csip_str_c(user), csip_str_c(pass), &reg, nc, CSIP_STR_NULL,
                                crbuf, sizeof crbuf) <= 0 ||
        csip_auth_parse(csip_str_c(crbuf), &cr) != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    if (cred_out)
        memcpy(cred_out, crbuf, strlen(crbuf) + 1);
    return csip_auth_server_verify(s, &cr, &reg, t_verify, lookup, NULL);
}

static csip_auth_result verify_str(csip_auth_server *s, const char *cred, uint64_t now)
{
    csip_auth cr;
    if (csip_auth_parse(csip_str_c(cred), &cr) != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    return csip_auth_server_verify(s, &cr, &reg, now, lookup, NULL);
}

static void test_challenge_format(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(csip_auth_server_challenge_count(s), 2);
    char a[512], b[512];
    ASSERT_GT(csip_auth_server_challenge(s, 0, false, T0, a, sizeof a), 0);
    ASSERT_GT(csip_auth_server_challenge(s, 1, true, T0, b, sizeof b), 0);
    EXPECT_EQ(csip_auth_server_challenge(s, 2, false, T0, b, sizeof b), CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_auth_server_challenge(s, 0, false, T0, b, 40), CSIP_ERR_BUFFER_TOO_SMALL);
    csip_auth ca, cb;
    ASSERT_OK(csip_auth_parse(csip_str_c(a), &ca));
    ASSERT_OK(csip_auth_parse(csip_str_c(b), &cb));
    EXPECT_STR(ca.scheme, "Digest");
    EXPECT_STR(ca.realm, REALM);
    EXPECT_STR(ca.algorithm, "SHA-256");
    EXPECT_STR(ca.qop, "auth,auth-int");
    EXPECT_EQ(ca.nonce.len, 43);
    EXPECT_TRUE(ca.opaque.len > 0);
    EXPECT_TRUE(ca.stale.p == NULL);
    EXPECT_STR(cb.algorithm, "MD5");
    EXPECT_STR(cb.stale, "true");
    EXPECT_TRUE(csip_str_eq(ca.opaque, cb.opaque));
    EXPECT_FALSE(csip_str_eq(ca.nonce, cb.nonce)); /* same second, distinct nonces */
    /* the client picks the first supported offer, in order */
    csip_auth list[3];
    ASSERT_OK(
        csip_auth_parse(CSIP_STR("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-1"), &list[0]));
    ASSERT_OK(csip_auth_parse(CSIP_STR("Basic realm=\"x\""), &list[1]));
    list[2] = cb;
    size_t idx = 9;
    ASSERT_OK(csip_auth_client_choose(list, 3, &idx));
    EXPECT_EQ(idx, 2);
    EXPECT_EQ(csip_auth_client_choose(list, 2, &idx), CSIP_ERR_NOT_FOUND);
    csip_auth_server_free(s);
}

static void test_choose_msg(void)
{
    static const char m[] =
        "SIP/2.0 401 Unauthorized\r\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 1 REGISTER\r\n"
        "WWW-Authenticate: Digest realm=\"h\", nonce=\"1\", algorithm=SHA-999\r\n"
        "WWW-Authenticate: Digest realm=\"h\", nonce=\"2\", algorithm=MD5\r\n"
        "WWW-Authenticate: Digest realm=\"h\", nonce=\"3\", algorithm=SHA-256\r\n"
        "Content-Length: 0\r\n\r\n";
    csip_msg *msg = NULL;
    csip_parse_error perr;
    ASSERT_OK(csip_msg_parse(m, sizeof m - 1, NULL, &msg, &perr));
    const csip_auth *a = NULL;
    ASSERT_OK(csip_auth_client_choose_msg(msg, CSIP_HDR_WWW_AUTHENTICATE, &a));
    EXPECT_STR(a->nonce, "2");
    EXPECT_EQ(csip_auth_client_choose_msg(msg, CSIP_HDR_PROXY_AUTHENTICATE, &a),
              CSIP_ERR_NOT_FOUND);
    csip_msg_free(msg);
}

static void test_round_trips(void)
{
    static const csip_auth_alg all[] = {CSIP_AUTH_ALG_SHA256,     CSIP_AUTH_ALG_MD5,
                                        CSIP_AUTH_ALG_SHA512_256, CSIP_AUTH_ALG_SHA256_SESS,
                                        CSIP_AUTH_ALG_MD5_SESS,   CSIP_AUTH_ALG_SHA512_256_SESS};
    csip_auth_server *s = server_with(all, 6, 0);
    ASSERT_TRUE(s != NULL);
    for (size_t i = 0; i < 6; i++) {
        char cred[1024];
        EXPECT_EQ(answer(s, i, T0, T0 + 500, "alice", "secret", 1, cred), CSIP_AUTH_OK);
        csip_auth cr;
        ASSERT_OK(csip_auth_parse(csip_str_c(cred), &cr));
        csip_auth_alg a;
        ASSERT_OK(csip_auth_alg_parse(cr.algorithm, &a));
        EXPECT_EQ(a, all[i]);
        /* a user name with quotes survives escaping */
        EXPECT_EQ(answer(s, i, T0, T0, "bob \"the\" builder", "pw", 1, NULL), CSIP_AUTH_OK);
    }
    EXPECT_EQ(csip_auth_server_replay_count(s), 12);
    csip_auth_server_free(s);
}

static void test_failures(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    /* wrong password, unknown user */
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "wrong", 1, NULL), CSIP_AUTH_BAD_RESPONSE);
    EXPECT_EQ(answer(s, 1, T0, T0, "alice", "wrong", 1, NULL), CSIP_AUTH_BAD_RESPONSE);
    EXPECT_EQ(answer(s, 0, T0, T0, "mallory", "x", 1, NULL), CSIP_AUTH_UNKNOWN_USER);
    EXPECT_EQ(csip_auth_server_replay_count(s), 0); /* failures leave no trace */

    /* stale: expired nonce with a correct response; just before expiry is fine */
    EXPECT_EQ(answer(s, 0, T0, T0 + 299999, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    EXPECT_EQ(answer(s, 0, T0, T0 + 300000, "alice", "secret", 1, NULL), CSIP_AUTH_STALE);
    EXPECT_EQ(answer(s, 0, T0, T0 + 300000, "alice", "wrong", 1, NULL), CSIP_AUTH_BAD_RESPONSE);
    EXPECT_EQ(answer(s, 0, T0 + 5000, T0, "alice", "secret", 1, NULL),
              CSIP_AUTH_STALE); /* future */

    /* tampered nonce: one character changed, then the MAC no longer matches */
    char cred[1024];
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    char *n = strstr(cred, "nonce=\"");
    ASSERT_TRUE(n != NULL);
    n[7 + 10] = n[7 + 10] == 'A' ? 'B' : 'A';
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_BAD_NONCE);
    n[7 + 10] = '!';
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_BAD_NONCE);
    n[7 + 10] = (char)0xc3; /* not in the alphabet, nor ASCII */
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_BAD_NONCE);

    /* A nonce is checked by another server with the same key (no state):
     * first as sent, then spelled otherwise. */
    csip_auth_server *s3 = server_with(NULL, 0, 0);
    ASSERT_TRUE(s3 != NULL);
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    n = strstr(cred, "nonce=\"") + 7;
    ASSERT_TRUE(strchr(n, '"') - n == 43);
    /* the last character carries 2 spare bits: another value of them is
     * another spelling of the same octets, refused (one spelling a nonce) */
    char last = n[42];
    size_t v = (size_t)(strchr(alpha, last) - alpha);
    n[42] = alpha[v ^ 1];
    EXPECT_EQ(verify_str(s3, cred, T0), CSIP_AUTH_BAD_NONCE);
    n[42] = last;
    /* the response in upper-case hex is the same response (RFC 7616 §3.4.1
     * LHEX is lower case; accepted, as other servers do) */
    char *rsp = strstr(cred, "response=\"") + 10;
    for (char *c = rsp; *c != '"'; c++)
        *c = (char)toupper((unsigned char)*c);
    EXPECT_EQ(verify_str(s3, cred, T0), CSIP_AUTH_OK);
    /* one hex digit off: refused */
    rsp[31] = rsp[31] == '0' ? '1' : '0';
    EXPECT_EQ(verify_str(s3, cred, T0), CSIP_AUTH_BAD_RESPONSE);
    csip_auth_server_free(s3);

    /* a nonce issued for SHA-256 cannot be used with MD5 */
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    char *alg = strstr(cred, "algorithm=SHA-256");
    ASSERT_TRUE(alg != NULL);
    memcpy(alg, "algorithm=\"MD5\"  ", 17);
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_BAD_NONCE);

    /* a nonce from another key */
    uint8_t other[32] = {9};
    csip_auth_server *s2 = NULL;
    ASSERT_OK(csip_auth_server_new(NULL, other, sizeof other, NULL, &s2));
    csip_auth_server_opts *o = NULL;
    ASSERT_OK(csip_auth_server_opts_new(NULL, &o));
    ASSERT_OK(csip_auth_server_opts_set_realm(o, CSIP_STR(REALM)));
    csip_auth_server_free(s2);
    ASSERT_OK(csip_auth_server_new(NULL, other, sizeof other, o, &s2));
    csip_auth_server_opts_free(o);
    EXPECT_EQ(answer(s2, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_BAD_NONCE);
    csip_auth_server_free(s2);

    /* wrong realm, unknown or not offered algorithm, other scheme, bad qop, uri */
    EXPECT_EQ(verify_str(s,
                         "Digest username=\"alice\", realm=\"other\", nonce=\"x\", "
                         "uri=\"sip:example.com\", response=\"00\"",
                         T0),
              CSIP_AUTH_WRONG_REALM);
    EXPECT_EQ(
        verify_str(s,
                   "Digest username=\"alice\", realm=\"" REALM
                   "\", nonce=\"x\", uri=\"sip:example.com\", response=\"00\", algorithm=SHA-1",
                   T0),
        CSIP_AUTH_UNSUPPORTED_ALGORITHM);
    EXPECT_EQ(
        verify_str(
            s,
            "Digest username=\"alice\", realm=\"" REALM
            "\", nonce=\"x\", uri=\"sip:example.com\", response=\"00\", algorithm=SHA-512-256",
            T0),
        CSIP_AUTH_UNSUPPORTED_ALGORITHM);
    EXPECT_EQ(verify_str(s, "Basic YWxhZGRpbjpvcGVuc2VzYW1l", T0), CSIP_AUTH_NOT_DIGEST);
    EXPECT_EQ(verify_str(s, "Digest username=\"alice\", nonce=\"x\"", T0), CSIP_AUTH_MALFORMED);
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    char *q = strstr(cred, "qop=auth");
    ASSERT_TRUE(q != NULL);
    memcpy(q, "qop=xxxx", 8);
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_UNSUPPORTED_QOP);
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, cred), CSIP_AUTH_OK);
    char *u = strstr(cred, "uri=\"sip:");
    ASSERT_TRUE(u != NULL);
    u[5] = 'x';
    EXPECT_EQ(verify_str(s, cred, T0), CSIP_AUTH_MALFORMED);

    /* result mapping */
    EXPECT_EQ(csip_auth_result_status(CSIP_AUTH_STALE, false), 401);
    EXPECT_EQ(csip_auth_result_status(CSIP_AUTH_BAD_RESPONSE, true), 407);
    EXPECT_EQ(csip_auth_result_status(CSIP_AUTH_MALFORMED, true), 400);
    EXPECT_EQ(csip_auth_result_status(CSIP_AUTH_OK, true), 200);
    for (int r = 0; r <= CSIP_AUTH_INTERNAL_ERROR; r++)
        EXPECT_TRUE(strcmp(csip_auth_result_name((csip_auth_result)r), "UNKNOWN") != 0);
    csip_auth_server_free(s);
}

/* Builds the client's credentials for nonce-count tests from one challenge. */
static void test_nonce_count(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    char chbuf[512], cr[1024];
    csip_auth ch;
    ASSERT_GT(csip_auth_server_challenge(s, 0, false, T0, chbuf, sizeof chbuf), 0);
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    const uint32_t seq[] = {1, 2, 5, 6};
    for (size_t i = 0; i < 4; i++) {
        ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &reg, seq[i],
                                          CSIP_STR("c1"), cr, sizeof cr),
                  0);
        EXPECT_EQ(verify_str(s, cr, T0 + 1000 * i), CSIP_AUTH_OK);
        /* the same request again is a replay */
        EXPECT_EQ(verify_str(s, cr, T0 + 1000 * i), CSIP_AUTH_REPLAY);
    }
    /* going back is refused, even with a fresh cnonce */
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &reg, 3,
                                      CSIP_STR("c2"), cr, sizeof cr),
              0);
    EXPECT_EQ(verify_str(s, cr, T0), CSIP_AUTH_REPLAY);
    /* nc must be 8 hex digits and not zero */
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &reg, 7,
                                      CSIP_STR("c2"), cr, sizeof cr),
              0);
    char *nc = strstr(cr, "nc=00000007");
    ASSERT_TRUE(nc != NULL);
    memcpy(nc, "nc=0000000g", 11);
    EXPECT_EQ(verify_str(s, cr, T0), CSIP_AUTH_MALFORMED);
    memcpy(nc, "nc=00000000", 11);
    EXPECT_EQ(verify_str(s, cr, T0), CSIP_AUTH_MALFORMED);
    EXPECT_EQ(csip_auth_server_replay_count(s), 1);

    /* without qop (RFC 2069): the nonce may be used once */
#define NOQOP_FMT "Digest realm=\"" REALM "\", nonce=\"%.*s\", algorithm=SHA-256"
    char ch2[512];
    ASSERT_GT(csip_auth_server_challenge(s, 0, false, T0, chbuf, sizeof chbuf), 0);
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    int k = snprintf(ch2, sizeof ch2, NOQOP_FMT, (int)ch.nonce.len, ch.nonce.p);
    ASSERT_OK(csip_auth_parse((csip_str){ch2, (size_t)k}, &ch));
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &reg, 1,
                                      CSIP_STR_NULL, cr, sizeof cr),
              0);
    EXPECT_TRUE(strstr(cr, "nc=") == NULL && strstr(cr, "cnonce") == NULL);
    EXPECT_EQ(verify_str(s, cr, T0), CSIP_AUTH_OK);
    EXPECT_EQ(verify_str(s, cr, T0), CSIP_AUTH_REPLAY);
    csip_auth_server_free(s);
}

static void test_userhash(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    char chbuf[600], cr[1024];
    int n = csip_auth_server_challenge(s, 0, false, T0, chbuf, sizeof chbuf - 20);
    ASSERT_GT(n, 0);
    memcpy(chbuf + n, ", userhash=true", 16);
    csip_auth ch, c;
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &reg, 1,
                                      CSIP_STR_NULL, cr, sizeof cr),
              0);
    ASSERT_OK(csip_auth_parse(csip_str_c(cr), &c));
    EXPECT_EQ(c.username.len, 64);
    EXPECT_STR(c.userhash, "true");
    lookup_state st = {0, false};
    EXPECT_EQ(csip_auth_server_verify(s, &c, &reg, T0, lookup, &st), CSIP_AUTH_OK);
    EXPECT_TRUE(st.last_userhash);
    csip_auth_server_free(s);
}

static void test_replay_table_bounded(void)
{
    /* 8 slots, 100 nonces: the table never grows; evicted live nonces come back stale */
    csip_auth_server *s = server_with(NULL, 0, 8);
    ASSERT_TRUE(s != NULL);
    char creds[100][1024];
    for (int i = 0; i < 100; i++) {
        uint64_t t = T0 + (uint64_t)i * 1000;
        EXPECT_EQ(answer(s, 0, t, t, "alice", "secret", 1, creds[i]), CSIP_AUTH_OK);
        EXPECT_LE(csip_auth_server_replay_count(s), 8);
    }
    EXPECT_EQ(csip_auth_server_replay_count(s), 8);
    uint64_t now = T0 + 100000;
    /* recent nonces are still tracked: replay refused */
    for (int i = 92; i < 100; i++)
        EXPECT_EQ(verify_str(s, creds[i], now), CSIP_AUTH_REPLAY);
    /* evicted ones are not accepted again: stale, so the client takes a new nonce */
    for (int i = 0; i < 92; i++)
        EXPECT_EQ(verify_str(s, creds[i], now), CSIP_AUTH_STALE);
    /* a nonce issued after the evictions works */
    EXPECT_EQ(answer(s, 0, now + 1000, now + 1000, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    /* nonces evicted after expiry do not block later ones */
    csip_auth_server_free(s);
    s = server_with(NULL, 0, 2);
    ASSERT_TRUE(s != NULL);
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    uint64_t later = T0 + 400000;
    EXPECT_EQ(answer(s, 0, later, later, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    EXPECT_EQ(answer(s, 0, later, later, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    EXPECT_EQ(answer(s, 0, later, later, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    csip_auth_server_free(s);
}

static void test_auth_int(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    char chbuf[512], cr[1024];
    ASSERT_GT(csip_auth_server_challenge(s, 0, false, T0, chbuf, sizeof chbuf), 0);
    char *q = strstr(chbuf, "qop=\"auth,auth-int\"");
    ASSERT_TRUE(q != NULL);
    memcpy(q, "qop=\"auth-int\"     ", 19);
    csip_auth ch, c;
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    csip_auth_request r = {CSIP_STR("MESSAGE"), CSIP_STR("sip:bob@example.com"), CSIP_STR("hi")};
    ASSERT_GT(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &r, 1,
                                      CSIP_STR_NULL, cr, sizeof cr),
              0);
    ASSERT_OK(csip_auth_parse(csip_str_c(cr), &c));
    EXPECT_STR(c.qop, "auth-int");
    EXPECT_EQ(c.cnonce.len, 32); /* 16 random bytes in hex */
    /* the body is covered */
    csip_auth_request other = r;
    other.body = CSIP_STR("ho");
    EXPECT_EQ(csip_auth_server_verify(s, &c, &other, T0, lookup, NULL), CSIP_AUTH_BAD_RESPONSE);
    /* so is the method */
    other = r;
    other.method = CSIP_STR("INVITE");
    EXPECT_EQ(csip_auth_server_verify(s, &c, &other, T0, lookup, NULL), CSIP_AUTH_BAD_RESPONSE);
    EXPECT_EQ(csip_auth_server_verify(s, &c, &r, T0, lookup, NULL), CSIP_AUTH_OK);
    /* a challenge offering only an unknown qop cannot be answered */
    memcpy(q, "qop=\"xyz\"          ", 19);
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    EXPECT_EQ(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &r, 1,
                                      CSIP_STR_NULL, cr, sizeof cr),
              CSIP_ERR_NOT_FOUND);
    /* nothing that could end the header line */
    EXPECT_EQ(csip_auth_client_answer(&ch, CSIP_STR("alice\r\nVia: x"), CSIP_STR("secret"), &r, 1,
                                      CSIP_STR_NULL, cr, sizeof cr),
              CSIP_ERR_INVALID_ARG);
    /* output too small */
    ASSERT_GT(csip_auth_server_challenge(s, 0, false, T0, chbuf, sizeof chbuf), 0);
    ASSERT_OK(csip_auth_parse(csip_str_c(chbuf), &ch));
    EXPECT_EQ(csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), &r, 1,
                                      CSIP_STR_NULL, cr, 100),
              CSIP_ERR_BUFFER_TOO_SMALL);
    csip_auth_server_free(s);
}

/* Allocator that fails once `left` allocations have succeeded. */
typedef struct fail_mem {
    int left;
} fail_mem;

static void *fm_malloc(size_t n, void *ud)
{
    fail_mem *f = ud;
    if (f->left-- <= 0)
        return NULL;
    return malloc(n);
}
static void fm_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}
static void *fm_realloc(void *p, size_t n, void *ud)
{
    fail_mem *f = ud;
    if (f->left-- <= 0)
        return NULL;
    return realloc(p, n);
}

static void test_failing_allocator(void)
{
    int ok_at = -1;
    for (int n = 0; n < 20 && ok_at < 0; n++) {
        fail_mem f = {n};
        csip_mem mem = {fm_malloc, fm_free, fm_realloc, &f};
        csip_auth_server_opts *o = NULL;
        int rc = csip_auth_server_opts_new(&mem, &o);
        if (rc != 0) {
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
            continue;
        }
        rc = csip_auth_server_opts_set_realm(o, CSIP_STR(REALM));
        csip_auth_server *s = NULL;
        if (rc == 0)
            rc = csip_auth_server_new(&mem, key, sizeof key, o, &s);
        csip_auth_server_opts_free(o);
        if (rc != 0) {
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
            EXPECT_TRUE(s == NULL);
            continue;
        }
        ok_at = n;
        EXPECT_EQ(answer(s, 0, T0, T0, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
        csip_auth_server_free(s); /* LeakSanitizer checks every failure path above */
    }
    EXPECT_GT(ok_at, 0);
}

static void test_options(void)
{
    csip_auth_server_opts *o = NULL;
    ASSERT_OK(csip_auth_server_opts_new(NULL, &o));
    EXPECT_EQ(csip_auth_server_opts_set_realm(o, CSIP_STR("a\"b")), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_auth_server_opts_set_nonce_lifetime(o, 0), CSIP_ERR_INVALID_ARG);
    const csip_auth_alg dup[] = {CSIP_AUTH_ALG_MD5, CSIP_AUTH_ALG_MD5};
    EXPECT_EQ(csip_auth_server_opts_set_algorithms(o, dup, 2), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_auth_server_opts_set_replay_slots(o, 0), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_auth_server_opts_set_nonce_lifetime(o, 10));
    ASSERT_OK(csip_auth_server_opts_set_realm(o, CSIP_STR(REALM)));
    csip_auth_server *s = NULL;
    EXPECT_EQ(csip_auth_server_new(NULL, key, 8, o, &s), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_auth_server_new(NULL, key, sizeof key, o, &s));
    csip_auth_server_opts_free(o);
    EXPECT_EQ(answer(s, 0, T0, T0 + 9999, "alice", "secret", 1, NULL), CSIP_AUTH_OK);
    EXPECT_EQ(answer(s, 0, T0, T0 + 10000, "alice", "secret", 1, NULL), CSIP_AUTH_STALE);
    csip_auth_server_free(s);
}

/* One verifier, requests of other methods and digest-uris, both algorithms,
 * in turn: each is checked against its own HA2 (the verifier keeps the last
 * one made), and a response computed for another method or uri fails. */
static csip_auth_result answer_req(csip_auth_server *s, size_t i, const csip_auth_request *rq,
                                   const csip_auth_request *claimed)
{
    char chbuf[512], crbuf[1024];
    csip_auth ch, cr;
    if (csip_auth_server_challenge(s, i, false, T0, chbuf, sizeof chbuf) <= 0 ||
        csip_auth_parse(csip_str_c(chbuf), &ch) != 0 ||
        csip_auth_client_answer(&ch, CSIP_STR("alice"), CSIP_STR("secret"), rq, 1, CSIP_STR_NULL,
                                crbuf, sizeof crbuf) <= 0 ||
        csip_auth_parse(csip_str_c(crbuf), &cr) != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    return csip_auth_server_verify(s, &cr, claimed, T0 + 1000, lookup, NULL);
}

static void test_ha2_varies(void)
{
    csip_auth_server *s = server_with(NULL, 0, 0);
    ASSERT_TRUE(s != NULL);
    const csip_auth_request r1 = {CSIP_STR("REGISTER"), CSIP_STR("sip:" REALM), CSIP_STR_NULL};
    const csip_auth_request r2 = {CSIP_STR("INVITE"), CSIP_STR("sip:bob@" REALM), CSIP_STR_NULL};
    const csip_auth_request r3 = {CSIP_STR("REGISTER"), CSIP_STR("sip:" REALM ";x"),
                                  CSIP_STR_NULL};
    const csip_auth_request *seq[] = {&r1, &r1, &r2, &r1, &r3, &r3, &r2, &r2, &r1};
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++)
        for (size_t alg = 0; alg < 2; alg++)
            EXPECT_EQ(answer_req(s, alg, seq[k], seq[k]), CSIP_AUTH_OK);
    /* the response of an INVITE sent as a REGISTER's (same uri) fails */
    const csip_auth_request r4 = {CSIP_STR("INVITE"), CSIP_STR("sip:" REALM), CSIP_STR_NULL};
    EXPECT_EQ(answer_req(s, 0, &r4, &r1), CSIP_AUTH_BAD_RESPONSE);
    EXPECT_EQ(answer_req(s, 1, &r1, &r4), CSIP_AUTH_BAD_RESPONSE);
    csip_auth_server_free(s);
}

/* Every parameter csip_auth names is found whatever its case, and a name
 * that only looks like one (same length and first letter, or a prefix) is
 * left in params alone. */
static void test_parse_params(void)
{
    csip_auth a;
    ASSERT_OK(csip_auth_parse(
        CSIP_STR("Digest REALM=\"r\", Nonce=\"n\", opaque=\"o\", AlGoRiThM=MD5, qop=\"auth\","
                 " stale=TRUE, domain=\"sip:d\", UserName=\"u\", uri=\"sip:x\","
                 " response=\"0a\", cnonce=\"c\", nc=00000001, userhash=false,"
                 " nextnonce=\"nn\", rspauth=\"ra\""),
        &a));
    EXPECT_STR(a.scheme, "Digest");
    EXPECT_STR(a.realm, "r");
    EXPECT_STR(a.nonce, "n");
    EXPECT_STR(a.opaque, "o");
    EXPECT_STR(a.algorithm, "MD5");
    EXPECT_STR(a.qop, "auth");
    EXPECT_STR(a.stale, "TRUE");
    EXPECT_STR(a.domain, "sip:d");
    EXPECT_STR(a.username, "u");
    EXPECT_STR(a.uri, "sip:x");
    EXPECT_STR(a.response, "0a");
    EXPECT_STR(a.cnonce, "c");
    EXPECT_STR(a.nc, "00000001");
    EXPECT_STR(a.userhash, "false");
    EXPECT_STR(a.nextnonce, "nn");
    EXPECT_STR(a.rspauth, "ra");
    /* look-alikes: same length and first letter, longer, shorter */
    ASSERT_OK(csip_auth_parse(CSIP_STR("Digest userhasx=\"1\", usernamee=\"2\", realx=\"3\","
                                       " n=\"4\", ncc=5, uris=\"6\", responsE=\"7\""),
                              &a));
    EXPECT_TRUE(a.userhash.p == NULL);
    EXPECT_TRUE(a.username.p == NULL);
    EXPECT_TRUE(a.realm.p == NULL);
    EXPECT_TRUE(a.nonce.p == NULL);
    EXPECT_TRUE(a.nc.p == NULL);
    EXPECT_TRUE(a.uri.p == NULL);
    EXPECT_STR(a.response, "7");
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_rfc7616_vectors),
        CHECK_TEST(test_rfc2617_md5),
        CHECK_TEST(test_parse_params),
        CHECK_TEST(test_variants),
        CHECK_TEST(test_challenge_format),
        CHECK_TEST(test_choose_msg),
        CHECK_TEST(test_round_trips),
        CHECK_TEST(test_failures),
        CHECK_TEST(test_nonce_count),
        CHECK_TEST(test_userhash),
        CHECK_TEST(test_replay_table_bounded),
        CHECK_TEST(test_options),
        CHECK_TEST(test_auth_int),
        CHECK_TEST(test_failing_allocator),
        CHECK_TEST(test_ha2_varies),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
