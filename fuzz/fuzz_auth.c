/*
 * Fuzz target: the digest verifier and the client side of the auth layer.
 * The input is one Authorization (or Proxy-Authorization) value.
 *
 * A verifier with a fixed key and realm "example.com" (nonce lifetime 300 s,
 * all six algorithms offered, auth-int allowed, a replay table of 4) checks the
 * input as credentials for "REGISTER sip:example.com" at a fixed time T0
 * (1700000000 s, the time of the valid nonces in the seed corpus). The only
 * user is alice / secret. Properties:
 *   - the result is one of the csip_auth_result values;
 *   - when it is OK: the same credentials again give REPLAY, and at T0 + 301 s
 *     (a fresh verifier) STALE;
 *   - the replay table never holds more than its 4 slots.
 * The input is also read as a challenge: when csip_auth_client_answer()
 * builds credentials from it, they must parse back with the same username,
 * uri and a response of the algorithm's length.
 * Any property that does not hold calls abort().
 */
#include "csip/auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1700000000000ull

static const uint8_t fuzz_key[32] = "csip-fuzz-key-0123456789abcdef!";

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_auth: property violated: %s (%ld, %ld)\n", what, a, b);
    abort();
}

static int lookup(void *ud, csip_str user, bool userhash, csip_str realm, csip_auth_alg alg,
                  char *ha1, size_t cap)
{
    (void)ud;
    if (cap < CSIP_AUTH_HEX_MAX)
        fail("lookup buffer", (long)cap, 0);
    if (userhash) {
        char uh[CSIP_AUTH_HEX_MAX];
        if (csip_auth_userhash(alg, CSIP_STR("alice"), realm, uh) != 0)
            fail("userhash", alg, 0);
        if (!csip_str_eq_c(user, uh))
            return CSIP_ERR_NOT_FOUND;
    } else if (!csip_str_eq_c(user, "alice")) {
        return CSIP_ERR_NOT_FOUND;
    }
    if (csip_auth_ha1(alg, CSIP_STR("alice"), realm, CSIP_STR("secret"), ha1) != 0)
        fail("ha1", alg, 0);
    return 0;
}

static csip_auth_server *make_server(void)
{
    static const csip_auth_alg all[] = {CSIP_AUTH_ALG_SHA256,     CSIP_AUTH_ALG_MD5,
                                        CSIP_AUTH_ALG_SHA512_256, CSIP_AUTH_ALG_SHA256_SESS,
                                        CSIP_AUTH_ALG_MD5_SESS,   CSIP_AUTH_ALG_SHA512_256_SESS};
    csip_auth_server_opts *o = NULL;
    csip_auth_server *s = NULL;
    if (csip_auth_server_opts_new(NULL, &o) != 0 ||
        csip_auth_server_opts_set_realm(o, CSIP_STR("example.com")) != 0 ||
        csip_auth_server_opts_set_algorithms(o, all, 6) != 0 ||
        csip_auth_server_opts_set_replay_slots(o, 4) != 0 ||
        csip_auth_server_opts_set_auth_int(o, true) != 0 ||
        csip_auth_server_new(NULL, fuzz_key, sizeof fuzz_key, o, &s) != 0)
        abort();
    csip_auth_server_opts_free(o);
    return s;
}

static void check_answer(const csip_auth *ch, const csip_auth_request *req)
{
    char buf[4096];
    int n = csip_auth_client_answer(ch, CSIP_STR("alice"), CSIP_STR("secret"), req, 1,
                                    CSIP_STR("0a4f113b"), buf, sizeof buf);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf || buf[n] != '\0')
        fail("answer length", n, 0);
    csip_auth cr;
    int rc = csip_auth_parse((csip_str){buf, (size_t)n}, &cr);
    if (rc != 0)
        fail("answer does not parse", rc, n);
    csip_auth_alg alg;
    if (csip_auth_alg_parse(ch->algorithm, &alg) != 0)
        fail("answer to an unsupported algorithm", 0, 0);
    bool userhash = ch->userhash.p && csip_str_ieq_c(ch->userhash, "true");
    if (!userhash && !csip_str_eq_c(cr.username, "alice"))
        fail("answer username", (long)cr.username.len, 0);
    if (!csip_str_eq(cr.uri, req->uri) || cr.response.len != csip_auth_alg_hex_len(alg))
        fail("answer uri or response", (long)cr.uri.len, (long)cr.response.len);
    if (!csip_str_eq(cr.nonce, ch->nonce) || !csip_str_eq(cr.realm, ch->realm))
        fail("answer nonce or realm", (long)cr.nonce.len, (long)cr.realm.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const csip_auth_request req = {CSIP_STR("REGISTER"), CSIP_STR("sip:example.com"),
                                          CSIP_STR("body")};
    csip_auth cred;
    if (csip_auth_parse((csip_str){(const char *)data, size}, &cred) != 0)
        return 0;

    check_answer(&cred, &req);

    csip_auth_server *s = make_server();
    csip_auth_result r = csip_auth_server_verify(s, &cred, &req, T0, lookup, NULL);
    if ((unsigned)r > CSIP_AUTH_INTERNAL_ERROR || r == CSIP_AUTH_INTERNAL_ERROR)
        fail("verify result", r, 0);
    if (strcmp(csip_auth_result_name(r), "UNKNOWN") == 0)
        fail("result name", r, 0);
    if (r == CSIP_AUTH_OK) {
        csip_auth_result again = csip_auth_server_verify(s, &cred, &req, T0, lookup, NULL);
        if (again != CSIP_AUTH_REPLAY)
            fail("accepted twice", again, 0);
        csip_auth_server *s2 = make_server();
        csip_auth_result late = csip_auth_server_verify(s2, &cred, &req, T0 + 301000, lookup, NULL);
        if (late != CSIP_AUTH_STALE)
            fail("not stale after the lifetime", late, 0);
        csip_auth_server_free(s2);
    }
    if (csip_auth_server_replay_count(s) > 4)
        fail("replay table over its bound", (long)csip_auth_server_replay_count(s), 4);
    csip_auth_server_free(s);
    return 0;
}
