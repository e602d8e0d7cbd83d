#include "base/base_int.h"
#include "check.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <string.h>

static void test_err_strings(void)
{
    /* every code has a message and a name, and no two codes share a value */
    static const int codes[] = {
#define X(name, val, msg) CSIP_ERR_##name,
        CSIP_ERR_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        EXPECT_TRUE(codes[i] < 0);
        EXPECT_TRUE(strcmp(csip_strerror(codes[i]), "unknown error") != 0);
        EXPECT_TRUE(strcmp(csip_err_name(codes[i]), "UNKNOWN") != 0);
        for (size_t j = i + 1; j < n; j++)
            EXPECT_NE(codes[i], codes[j]);
    }
    EXPECT_CSTR(csip_err_name(CSIP_ERR_PARSE_URI), "PARSE_URI");
    EXPECT_CSTR(csip_strerror(12345), "unknown error");
    EXPECT_TRUE(csip_err_is_fatal(CSIP_ERR_FATAL));
    EXPECT_FALSE(csip_err_is_fatal(CSIP_ERR_NOMEM));
}

static void test_str(void)
{
    EXPECT_TRUE(csip_str_ieq(CSIP_STR("Call-ID"), CSIP_STR("call-id")));
    EXPECT_FALSE(csip_str_eq(CSIP_STR("INVITE"), CSIP_STR("invite")));
    EXPECT_TRUE(csip_str_eq(CSIP_STR(""), CSIP_STR_NULL));
    uint32_t v = 7;
    EXPECT_OK(csip_str_to_u32(CSIP_STR("0004294967295"), &v));
    EXPECT_EQ(v, 4294967295u);
    EXPECT_EQ(csip_str_to_u32(CSIP_STR("4294967296"), &v), CSIP_ERR_RANGE);
    EXPECT_EQ(csip_str_to_u32(CSIP_STR("99999999999999999999x"), &v), CSIP_ERR_SYNTAX);
    EXPECT_EQ(csip_str_to_u32(CSIP_STR(""), &v), CSIP_ERR_SYNTAX);
    EXPECT_EQ(csip_str_to_u32(CSIP_STR("-1"), &v), CSIP_ERR_SYNTAX);
    csip_str t = csip__trim(CSIP_STR(" \r\n\t abc \t"));
    EXPECT_STR(t, "abc");
}

static void test_arena(void)
{
    char initial[64];
    csip__arena a;
    csip__arena_init(&a, NULL, initial, sizeof initial);
    void *p1 = csip__arena_alloc(&a, 10);
    ASSERT_TRUE(p1 != NULL);
    EXPECT_EQ((uintptr_t)p1 % 8, 0);
    /* beyond the initial block: heap blocks, one big allocation on its own */
    for (int i = 0; i < 100; i++) {
        char *p = csip__arena_alloc(&a, 100);
        ASSERT_TRUE(p != NULL);
        memset(p, 0xab, 100);
    }
    char *big = csip__arena_alloc(&a, 200000);
    ASSERT_TRUE(big != NULL);
    memset(big, 1, 200000);
    char *d = csip__arena_memdup(&a, "hello", 5);
    EXPECT_CSTR(d, "hello");
    csip__arena_reset(&a); /* LeakSanitizer checks that every block went */
}

static void test_version(void)
{
    EXPECT_CSTR(csip_version(), CSIP_VERSION_STRING);
    EXPECT_EQ(CSIP_VERSION_NUM >> 16, CSIP_VERSION_MAJOR);
}

/* OpenSSL's SipHash (EVP_MAC "SIPHASH", 16-octet output, 2 and 4 rounds). */
static bool openssl_siphash128(const uint8_t key[16], const uint8_t *in, size_t len,
                               uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    size_t size = 16, got = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                           OSSL_PARAM_construct_end()};
    bool ok = ctx && EVP_MAC_init(ctx, key, 16, params) == 1 && EVP_MAC_update(ctx, in, len) == 1 &&
              EVP_MAC_final(ctx, out, &got, 16) == 1 && got == 16;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

static void test_siphash(void)
{
    /* the reference implementation's first 128-bit vector: key 00..0f, empty input */
    static const uint8_t empty[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                      0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
    uint8_t key[16], in[64], got[16], want[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        in[i] = (uint8_t)i;
    csip__siphash128(key, in, 0, got);
    EXPECT_TRUE(memcmp(got, empty, 16) == 0);
    /* every length 0..64 (each tail length, whole words) agrees with OpenSSL's */
    for (size_t len = 0; len <= sizeof in; len++) {
        csip__siphash128(key, in, len, got);
        ASSERT_TRUE(openssl_siphash128(key, in, len, want));
        EXPECT_TRUE(memcmp(got, want, 16) == 0);
    }
    /* another key: every output octet depends on it */
    uint8_t key2[16];
    memcpy(key2, key, 16);
    key2[15] ^= 0x80;
    csip__siphash128(key2, in, 17, got);
    ASSERT_TRUE(openssl_siphash128(key2, in, 17, want));
    EXPECT_TRUE(memcmp(got, want, 16) == 0);
    csip__siphash128(key, in, 17, want);
    EXPECT_TRUE(memcmp(got, want, 16) != 0);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_err_strings), CHECK_TEST(test_str),     CHECK_TEST(test_arena),
        CHECK_TEST(test_version),     CHECK_TEST(test_siphash),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
