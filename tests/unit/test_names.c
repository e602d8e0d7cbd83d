#include "check.h"

/* Every known header name, from the public map (not from the lookup tables). */
static const struct {
    csip_hdr_id id;
    const char *name;
    char compact;
} hdrs[] = {
#define X(id, name, compact) {CSIP_HDR_##id, name, compact},
    CSIP_HDR_MAP(X)
#undef X
};
#define N_HDRS (sizeof hdrs / sizeof hdrs[0])

static const struct {
    csip_method m;
    const char *name;
} methods[] = {
    {CSIP_METHOD_ACK, "ACK"},
    {CSIP_METHOD_BYE, "BYE"},
    {CSIP_METHOD_CANCEL, "CANCEL"},
    {CSIP_METHOD_INFO, "INFO"},
    {CSIP_METHOD_INVITE, "INVITE"},
    {CSIP_METHOD_MESSAGE, "MESSAGE"},
    {CSIP_METHOD_NOTIFY, "NOTIFY"},
    {CSIP_METHOD_OPTIONS, "OPTIONS"},
    {CSIP_METHOD_PRACK, "PRACK"},
    {CSIP_METHOD_PUBLISH, "PUBLISH"},
    {CSIP_METHOD_REFER, "REFER"},
    {CSIP_METHOD_REGISTER, "REGISTER"},
    {CSIP_METHOD_SUBSCRIBE, "SUBSCRIBE"},
    {CSIP_METHOD_UPDATE, "UPDATE"},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static char up(char c) { return (c >= 'a' && c <= 'z') ? (char)(c - 32) : c; }
static char down(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

/* The header lookup, done the slow and obvious way. */
static csip_hdr_id ref_hdr_lookup(const char *p, size_t len)
{
    csip_str s = {p, len};
    for (size_t i = 0; i < N_HDRS; i++) {
        if (csip_str_ieq_c(s, hdrs[i].name))
            return hdrs[i].id;
        if (len == 1 && hdrs[i].compact && down(p[0]) == hdrs[i].compact)
            return hdrs[i].id;
    }
    return CSIP_HDR_OTHER;
}

static csip_method ref_method_lookup(const char *p, size_t len)
{
    csip_str s = {p, len};
    for (size_t i = 0; i < N_METHODS; i++) {
        if (csip_str_eq_c(s, methods[i].name))
            return methods[i].m;
    }
    return CSIP_METHOD_OTHER;
}

/* Looks up a copy placed at the very end of a heap buffer, so that ASan catches over-reads. */
static csip_hdr_id hdr_lookup_tail(const char *p, size_t len)
{
    char *b = check_tail_copy(p, len);
    csip_hdr_id id = csip_hdr_lookup(b, len);
    free(b);
    return id;
}

static csip_method method_lookup_tail(const char *p, size_t len)
{
    char *b = check_tail_copy(p, len);
    csip_method m = csip_method_lookup((csip_str){b, len});
    free(b);
    return m;
}

#define HDR_IS(lit, want) EXPECT_EQ(hdr_lookup_tail(lit, sizeof(lit) - 1), want)
#define METHOD_IS(lit, want) EXPECT_EQ(method_lookup_tail(lit, sizeof(lit) - 1), want)

static void test_hdr_map_complete(void)
{
    /* the map covers every id once, in enum order */
    ASSERT_EQ(N_HDRS, CSIP_HDR__COUNT - 1);
    for (size_t i = 0; i < N_HDRS; i++) {
        EXPECT_EQ(hdrs[i].id, i + 1);
        EXPECT_CSTR(csip_hdr_name(hdrs[i].id), hdrs[i].name);
        EXPECT_EQ(csip_hdr_compact(hdrs[i].id), hdrs[i].compact);
    }
    EXPECT_CSTR(csip_hdr_name(CSIP_HDR_OTHER), "");
    EXPECT_EQ(csip_hdr_compact(CSIP_HDR_OTHER), 0);
    EXPECT_CSTR(csip_hdr_name(CSIP_HDR__COUNT), "");
    EXPECT_CSTR(csip_hdr_name((csip_hdr_id)1000), "");
    EXPECT_EQ(csip_hdr_compact(CSIP_HDR__COUNT), 0);
    EXPECT_CSTR(csip_hdr_name(CSIP_HDR_CALL_ID), "Call-ID");
    EXPECT_CSTR(csip_hdr_name(CSIP_HDR_WWW_AUTHENTICATE), "WWW-Authenticate");
    EXPECT_EQ(csip_hdr_compact(CSIP_HDR_VIA), 'v');
    EXPECT_EQ(csip_hdr_compact(CSIP_HDR_CSEQ), 0);
}

static void test_hdr_every_name_every_case(void)
{
    char buf[64];
    for (size_t i = 0; i < N_HDRS; i++) {
        const char *name = hdrs[i].name;
        size_t len = strlen(name);
        ASSERT_LT(len, sizeof buf);
        EXPECT_EQ(hdr_lookup_tail(name, len), hdrs[i].id);
        for (size_t k = 0; k < len; k++)
            buf[k] = up(name[k]);
        EXPECT_EQ(hdr_lookup_tail(buf, len), hdrs[i].id);
        for (size_t k = 0; k < len; k++)
            buf[k] = down(name[k]);
        EXPECT_EQ(hdr_lookup_tail(buf, len), hdrs[i].id);
        for (size_t k = 0; k < len; k++)
            buf[k] = (k & 1) ? up(name[k]) : down(name[k]);
        EXPECT_EQ(hdr_lookup_tail(buf, len), hdrs[i].id);
        for (size_t k = 0; k < len; k++)
            buf[k] = (k & 1) ? down(name[k]) : up(name[k]);
        EXPECT_EQ(hdr_lookup_tail(buf, len), hdrs[i].id);
        /* the name inside a longer line: only the given length counts */
        memcpy(buf, name, len);
        memcpy(buf + len, ": value\r\n", 9);
        EXPECT_EQ(csip_hdr_lookup(buf, len), hdrs[i].id);
        /* a prefix and an extension are other names */
        EXPECT_EQ(hdr_lookup_tail(name, len - 1), ref_hdr_lookup(name, len - 1));
        EXPECT_EQ(hdr_lookup_tail(buf, len + 1), CSIP_HDR_OTHER);
    }
}

static void test_hdr_compact(void)
{
    size_t n_compact = 0;
    for (size_t i = 0; i < N_HDRS; i++) {
        char c = hdrs[i].compact;
        if (!c)
            continue;
        n_compact++;
        char lo = down(c), hi = up(c);
        EXPECT_EQ(hdr_lookup_tail(&lo, 1), hdrs[i].id);
        EXPECT_EQ(hdr_lookup_tail(&hi, 1), hdrs[i].id);
    }
    EXPECT_EQ(n_compact, 19);
    HDR_IS("v", CSIP_HDR_VIA);
    HDR_IS("V", CSIP_HDR_VIA);
    HDR_IS("i", CSIP_HDR_CALL_ID);
    HDR_IS("l", CSIP_HDR_CONTENT_LENGTH);
    HDR_IS("m", CSIP_HDR_CONTACT);
    HDR_IS("y", CSIP_HDR_IDENTITY);
    /* every other single byte is an unknown name */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        EXPECT_EQ(hdr_lookup_tail(&c, 1), ref_hdr_lookup(&c, 1));
    }
    HDR_IS("g", CSIP_HDR_OTHER);
    HDR_IS("n", CSIP_HDR_OTHER); /* Identity-Info has no compact form in the map */
    HDR_IS("z", CSIP_HDR_OTHER);
    HDR_IS("-", CSIP_HDR_OTHER);
}

static void test_hdr_near_misses(void)
{
    HDR_IS("Vias", CSIP_HDR_OTHER);
    HDR_IS("Vi", CSIP_HDR_OTHER);
    HDR_IS("Via ", CSIP_HDR_OTHER);
    HDR_IS(" Via", CSIP_HDR_OTHER);
    HDR_IS("Via\r", CSIP_HDR_OTHER);
    HDR_IS("Via:", CSIP_HDR_OTHER);
    HDR_IS("Call-I", CSIP_HDR_OTHER);
    HDR_IS("Call-IDs", CSIP_HDR_OTHER);
    HDR_IS("Call_ID", CSIP_HDR_OTHER);
    /* '\r' | 0x20 == '-': folding must apply to letters only */
    HDR_IS("Call\rID", CSIP_HDR_OTHER);
    HDR_IS("Max\rForwards", CSIP_HDR_OTHER);
    HDR_IS("Content\rLength", CSIP_HDR_OTHER);
    HDR_IS("Call\x0d"
           "id",
           CSIP_HDR_OTHER);
    HDR_IS("Contact ", CSIP_HDR_OTHER);
    HDR_IS("Contac", CSIP_HDR_OTHER);
    HDR_IS("Content", CSIP_HDR_OTHER);
    HDR_IS("Content-", CSIP_HDR_OTHER);
    HDR_IS("Content-Lengths", CSIP_HDR_OTHER);
    HDR_IS("T", CSIP_HDR_TO);
    HDR_IS("To", CSIP_HDR_TO);
    HDR_IS("TO", CSIP_HDR_TO);
    HDR_IS("Tp", CSIP_HDR_OTHER);
    HDR_IS("To\0", CSIP_HDR_OTHER);
    HDR_IS("T\0", CSIP_HDR_OTHER);
    /* letters folded with 0x20 only: '@' | 0x20 == '`', '[' | 0x20 == '{' */
    HDR_IS("Vi\x01", CSIP_HDR_OTHER);
    HDR_IS("V\x09"
           "a",
           CSIP_HDR_OTHER);
    HDR_IS("\x16ia", CSIP_HDR_OTHER);
    HDR_IS("Via\xe1", CSIP_HDR_OTHER);
    HDR_IS("v\xc9"
           "a",
           CSIP_HDR_OTHER);
    HDR_IS("Reply-To", CSIP_HDR_REPLY_TO);
    HDR_IS("Refer-To", CSIP_HDR_REFER_TO);
    HDR_IS("Refer-Sub", CSIP_HDR_REFER_SUB);
    HDR_IS("Referred-By", CSIP_HDR_REFERRED_BY);
    HDR_IS("Referred-To", CSIP_HDR_OTHER);
    HDR_IS("P-Preferred-Identity", CSIP_HDR_P_PREFERRED_IDENTITY);
    HDR_IS("p-preferred-identitY", CSIP_HDR_P_PREFERRED_IDENTITY);
    HDR_IS("P-Preferred-Identities", CSIP_HDR_OTHER);
    HDR_IS("P-Preferred-Identit", CSIP_HDR_OTHER);
    HDR_IS("X-Custom-Header", CSIP_HDR_OTHER);
    HDR_IS("Accept-Resource-Priority", CSIP_HDR_OTHER);
    HDR_IS("A-Very-Long-Header-Name-That-Is-Not-Known-At-All", CSIP_HDR_OTHER);
    EXPECT_EQ(csip_hdr_lookup(NULL, 0), CSIP_HDR_OTHER);
    EXPECT_EQ(csip_hdr_lookup("Via", 0), CSIP_HDR_OTHER);
}

/* Every name with every byte changed to every value, cut short and extended by
 * every byte: the fast lookup must agree with the obvious one. */
static void test_hdr_exhaustive_mutations(void)
{
    char buf[64];
    long checked = 0;
    for (size_t i = 0; i < N_HDRS; i++) {
        const char *name = hdrs[i].name;
        size_t len = strlen(name);
        for (size_t pos = 0; pos < len; pos++) {
            for (int b = 0; b < 256; b++) {
                memcpy(buf, name, len);
                buf[pos] = (char)b;
                csip_hdr_id want = ref_hdr_lookup(buf, len);
                csip_hdr_id got = hdr_lookup_tail(buf, len);
                if (got != want) {
                    CHECK_FAIL_("%s with byte %zu = 0x%02x: %d vs %d", name, pos, b, (int)got,
                                (int)want);
                    return;
                }
                checked++;
            }
        }
        for (int b = 0; b < 256; b++) {
            memcpy(buf, name, len);
            buf[len] = (char)b;
            EXPECT_EQ(hdr_lookup_tail(buf, len + 1), ref_hdr_lookup(buf, len + 1));
            buf[0] = (char)b;
            memcpy(buf + 1, name, len);
            EXPECT_EQ(hdr_lookup_tail(buf, len + 1), ref_hdr_lookup(buf, len + 1));
        }
        for (size_t cut = 0; cut < len; cut++) {
            EXPECT_EQ(hdr_lookup_tail(name, cut), ref_hdr_lookup(name, cut));
            EXPECT_EQ(hdr_lookup_tail(name + cut, len - cut),
                      ref_hdr_lookup(name + cut, len - cut));
        }
    }
    EXPECT_GE(checked, 150000);
}

/* Pseudo-random names made of header-name letters: no false matches. */
static void test_hdr_random(void)
{
    static const char alphabet[] = "aAcCdDeEiInNoOrRsStTuU-";
    uint32_t x = 12345;
    char buf[32];
    for (int n = 0; n < 200000; n++) {
        x = x * 1664525u + 1013904223u;
        size_t len = 1 + (x >> 24) % 22;
        for (size_t k = 0; k < len; k++) {
            x = x * 1664525u + 1013904223u;
            buf[k] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
        }
        csip_hdr_id got = csip_hdr_lookup(buf, len);
        csip_hdr_id want = ref_hdr_lookup(buf, len);
        if (got != want) {
            CHECK_FAIL_("\"%.*s\": %d vs %d", (int)len, buf, (int)got, (int)want);
            return;
        }
    }
}

static void test_method_lookup(void)
{
    ASSERT_EQ(N_METHODS, CSIP_METHOD__COUNT - 1);
    char buf[32];
    for (size_t i = 0; i < N_METHODS; i++) {
        const char *name = methods[i].name;
        size_t len = strlen(name);
        EXPECT_EQ(methods[i].m, i + 1);
        EXPECT_EQ(method_lookup_tail(name, len), methods[i].m);
        EXPECT_CSTR(csip_method_name(methods[i].m), name);
        /* case-sensitive (RFC 3261 §7.1) */
        for (size_t k = 0; k < len; k++)
            buf[k] = down(name[k]);
        EXPECT_EQ(method_lookup_tail(buf, len), CSIP_METHOD_OTHER);
        memcpy(buf, name, len);
        buf[len - 1] = down(buf[len - 1]);
        EXPECT_EQ(method_lookup_tail(buf, len), CSIP_METHOD_OTHER);
        /* every byte changed to every value, prefixes, extensions */
        for (size_t pos = 0; pos < len; pos++) {
            for (int b = 0; b < 256; b++) {
                memcpy(buf, name, len);
                buf[pos] = (char)b;
                EXPECT_EQ(method_lookup_tail(buf, len), ref_method_lookup(buf, len));
            }
        }
        for (int b = 0; b < 256; b++) {
            memcpy(buf, name, len);
            buf[len] = (char)b;
            EXPECT_EQ(method_lookup_tail(buf, len + 1), CSIP_METHOD_OTHER);
        }
        for (size_t cut = 0; cut < len; cut++)
            EXPECT_EQ(method_lookup_tail(name, cut), CSIP_METHOD_OTHER);
    }
    METHOD_IS("invite", CSIP_METHOD_OTHER);
    METHOD_IS("Invite", CSIP_METHOD_OTHER);
    METHOD_IS("INVITE ", CSIP_METHOD_OTHER);
    METHOD_IS("INVITEX", CSIP_METHOD_OTHER);
    METHOD_IS("INVIT", CSIP_METHOD_OTHER);
    METHOD_IS("ACK", CSIP_METHOD_ACK);
    METHOD_IS("ACk", CSIP_METHOD_OTHER);
    METHOD_IS("AC", CSIP_METHOD_OTHER);
    METHOD_IS("A", CSIP_METHOD_OTHER);
    METHOD_IS("NEWMETHOD", CSIP_METHOD_OTHER);
    METHOD_IS("SUBSCRIBES", CSIP_METHOD_OTHER);
    METHOD_IS("REGISTRAR", CSIP_METHOD_OTHER);
    METHOD_IS("PUBLISH\0", CSIP_METHOD_OTHER);
    EXPECT_EQ(csip_method_lookup(CSIP_STR_NULL), CSIP_METHOD_OTHER);
    EXPECT_EQ(csip_method_lookup(CSIP_STR("")), CSIP_METHOD_OTHER);
    EXPECT_CSTR(csip_method_name(CSIP_METHOD_OTHER), "");
    EXPECT_CSTR(csip_method_name(CSIP_METHOD__COUNT), "");
    EXPECT_CSTR(csip_method_name((csip_method)-1), "");
}

static void test_is_token(void)
{
    EXPECT_TRUE(csip_is_token(CSIP_STR("INVITE")));
    EXPECT_TRUE(csip_is_token(CSIP_STR("x")));
    EXPECT_TRUE(csip_is_token(CSIP_STR("NEW-method.v2")));
    EXPECT_TRUE(csip_is_token(CSIP_STR("-.!%*_+`'~")));
    EXPECT_TRUE(csip_is_token(CSIP_STR("AZaz09")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("")));
    EXPECT_FALSE(csip_is_token(CSIP_STR_NULL));
    EXPECT_FALSE(csip_is_token(CSIP_STR("IN VITE")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("INVITE ")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("INVITE\r\n")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("a:b")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("a/b")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("\"quoted\"")));
    EXPECT_FALSE(csip_is_token(CSIP_STR("caf\xc3\xa9")));
    EXPECT_FALSE(csip_is_token((csip_str){"A\0B", 3}));
    /* RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" /
     * "~") */
    static const char extra[] = "-.!%*_+`'~";
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        bool want = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                    (b != 0 && memchr(extra, b, sizeof extra - 1) != NULL);
        EXPECT_EQ(csip_is_token((csip_str){&c, 1}), want);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_hdr_map_complete),
        CHECK_TEST(test_hdr_every_name_every_case),
        CHECK_TEST(test_hdr_compact),
        CHECK_TEST(test_hdr_near_misses),
        CHECK_TEST(test_hdr_exhaustive_mutations),
        CHECK_TEST(test_hdr_random),
        CHECK_TEST(test_method_lookup),
        CHECK_TEST(test_is_token),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
