/* The failure limiter: burst, steady rate, bounded memory, eviction. */
#include "check.h"
#include "csip/limiter.h"

#include <stdio.h>
#include <string.h>

static void limiter_burst_then_rate(void)
{
    csip_limiter_opts o = {.burst = 3, .interval_ms = 1000, .slots = 64};
    csip_limiter *l = NULL;
    ASSERT_EQ(csip_limiter_new(&o, NULL, &l), 0);
    const char *ip = "192.0.2.1";
    uint64_t t = 1000000;
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t), 0u);
    /* three failures at once pass; the third leaves the key waiting */
    EXPECT_EQ(csip_limiter_fail(l, ip, strlen(ip), t), 0u);
    EXPECT_EQ(csip_limiter_fail(l, ip, strlen(ip), t), 0u);
    EXPECT_EQ(csip_limiter_fail(l, ip, strlen(ip), t), 1u);
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t), 1u);
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t + 999), 1u);
    /* one interval later one more attempt, then a wait again */
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t + 1000), 0u);
    EXPECT_EQ(csip_limiter_fail(l, ip, strlen(ip), t + 1000), 1u);
    /* hammering while it waits does not push the wait out */
    for (int i = 0; i < 100; i++)
        (void)csip_limiter_fail(l, ip, strlen(ip), t + 1000);
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t + 2000), 0u);
    /* another key is not touched */
    EXPECT_EQ(csip_limiter_wait(l, "192.0.2.2", 9, t + 1000), 0u);
    EXPECT_EQ(csip_limiter_count(l, t + 1000), 1u);
    /* the debt is paid back with time */
    EXPECT_EQ(csip_limiter_count(l, t + 10000), 0u);
    /* forgive clears the key */
    for (int i = 0; i < 3; i++)
        (void)csip_limiter_fail(l, ip, strlen(ip), t + 20000);
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t + 20000), 1u);
    csip_limiter_forgive(l, ip, strlen(ip));
    EXPECT_EQ(csip_limiter_wait(l, ip, strlen(ip), t + 20000), 0u);
    csip_limiter_free(l);
}

static void limiter_bounded(void)
{
    csip_limiter_opts o = {.burst = 1, .interval_ms = 60000, .slots = 16};
    csip_limiter *l = NULL;
    ASSERT_EQ(csip_limiter_new(&o, NULL, &l), 0);
    /* ten thousand keys failing: the table keeps its size, and the newest
       failures (the most indebted keys) are the ones remembered */
    char k[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(k, sizeof k, "k%d", i);
        (void)csip_limiter_fail(l, k, (size_t)n, (uint64_t)i);
    }
    EXPECT_TRUE(csip_limiter_count(l, 10000) <= 16u);
    EXPECT_TRUE(csip_limiter_count(l, 10000) >= 8u);
    EXPECT_EQ(csip_limiter_wait(l, "k9999", 5, 10000), 60u);
    EXPECT_EQ(csip_limiter_wait(l, "k0", 2, 10000), 0u);
    csip_limiter_free(l);
}

static void limiter_args(void)
{
    csip_limiter *l = NULL;
    csip_limiter_opts big = {.slots = (1u << 24) + 1};
    EXPECT_EQ(csip_limiter_new(&big, NULL, &l), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_limiter_new(NULL, NULL, NULL), CSIP_ERR_INVALID_ARG);
    ASSERT_EQ(csip_limiter_new(NULL, NULL, &l), 0);
    /* defaults: ten failures at once pass, the tenth leaves a wait of 3 s */
    for (int i = 0; i < 9; i++)
        EXPECT_EQ(csip_limiter_fail(l, "u", 1, 0), 0u);
    EXPECT_EQ(csip_limiter_fail(l, "u", 1, 0), 3u);
    EXPECT_EQ(csip_limiter_wait(NULL, "u", 1, 0), 0u);
    csip_limiter_free(l);
    csip_limiter_free(NULL);
    /* a failing allocator: an error, no leak */
    for (int k = 1; k <= 2; k++) {
        check_failmem f;
        check_failmem_init(&f, k);
        EXPECT_EQ(csip_limiter_new(NULL, &f.mem, &l), CSIP_ERR_NOMEM);
        EXPECT_EQ(f.live, 0);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(limiter_burst_then_rate),
        CHECK_TEST(limiter_bounded),
        CHECK_TEST(limiter_args),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
