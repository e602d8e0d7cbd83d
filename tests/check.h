/*
 * Minimal test harness: typed assertions that print file:line and the values,
 * and a runner for a table of test functions. Each test binary is one CTest.
 */
#ifndef CSIP_TEST_CHECK_H
#define CSIP_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csip/csip.h"

extern int check_failures;
extern const char *check_current;

#define CHECK_FAIL_(fmt, ...)                                                                    \
    do {                                                                                         \
        fprintf(stderr, "%s:%d: %s: " fmt "\n", __FILE__, __LINE__, check_current, __VA_ARGS__); \
        check_failures++;                                                                        \
    } while (0)

/* ASSERT_* stop the current test function; EXPECT_* go on. */
#define ASSERT_TRUE(c)                                                                           \
    do {                                                                                         \
        if (!(c)) {                                                                              \
            CHECK_FAIL_("assertion failed: %s", #c);                                             \
            return;                                                                              \
        }                                                                                        \
    } while (0)
#define EXPECT_TRUE(c)                                                                           \
    do {                                                                                         \
        if (!(c))                                                                                \
            CHECK_FAIL_("expectation failed: %s", #c);                                           \
    } while (0)
#define ASSERT_FALSE(c) ASSERT_TRUE(!(c))
#define EXPECT_FALSE(c) EXPECT_TRUE(!(c))

#define CHECK_INT_(a, op, b, ret)                                                                \
    do {                                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                                      \
        if (!(a_ op b_)) {                                                                       \
            CHECK_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                          \
            ret;                                                                                 \
        }                                                                                        \
    } while (0)
#define ASSERT_EQ(a, b) CHECK_INT_(a, ==, b, return)
#define ASSERT_NE(a, b) CHECK_INT_(a, !=, b, return)
#define ASSERT_LE(a, b) CHECK_INT_(a, <=, b, return)
#define ASSERT_LT(a, b) CHECK_INT_(a, <, b, return)
#define ASSERT_GE(a, b) CHECK_INT_(a, >=, b, return)
#define ASSERT_GT(a, b) CHECK_INT_(a, >, b, return)
#define EXPECT_EQ(a, b) CHECK_INT_(a, ==, b, (void)0)
#define EXPECT_NE(a, b) CHECK_INT_(a, !=, b, (void)0)
#define EXPECT_GE(a, b) CHECK_INT_(a, >=, b, (void)0)
#define EXPECT_LE(a, b) CHECK_INT_(a, <=, b, (void)0)
#define EXPECT_GT(a, b) CHECK_INT_(a, >, b, (void)0)
#define EXPECT_LT(a, b) CHECK_INT_(a, <, b, (void)0)
/* 0 result, printing the error name otherwise */
#define ASSERT_OK(x)                                                                             \
    do {                                                                                         \
        int r_ = (int)(x);                                                                       \
        if (r_ != 0) {                                                                           \
            CHECK_FAIL_("%s returned %d (%s)", #x, r_, csip_err_name(r_));                       \
            return;                                                                              \
        }                                                                                        \
    } while (0)
#define EXPECT_OK(x)                                                                             \
    do {                                                                                         \
        int r_ = (int)(x);                                                                       \
        if (r_ != 0)                                                                             \
            CHECK_FAIL_("%s returned %d (%s)", #x, r_, csip_err_name(r_));                       \
    } while (0)

/* csip_str against a C string, exact bytes */
#define CHECK_STR_(s, lit, ret)                                                                  \
    do {                                                                                         \
        csip_str s_ = (s);                                                                       \
        const char *l_ = (lit);                                                                  \
        if (!(l_ ? (s_.p && s_.len == strlen(l_) && memcmp(s_.p, l_, s_.len) == 0) : !s_.p)) {   \
            CHECK_FAIL_("%s: \"%.*s\"%s vs \"%s\"", #s, (int)(s_.p ? s_.len : 6),                \
                        s_.p ? s_.p : "(null)", "", l_ ? l_ : "(absent)");                       \
            ret;                                                                                 \
        }                                                                                        \
    } while (0)
#define ASSERT_STR(s, lit) CHECK_STR_(s, lit, return)
#define EXPECT_STR(s, lit) CHECK_STR_(s, lit, (void)0)
#define EXPECT_CSTR(a, b)                                                                        \
    do {                                                                                         \
        const char *a_ = (a), *b_ = (b);                                                         \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                   \
            CHECK_FAIL_("%s vs %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)",                \
                        b_ ? b_ : "(null)");                                                     \
    } while (0)

typedef struct check_test {
    const char *name;
    void (*fn)(void);
} check_test;

#define CHECK_TEST(fn) {#fn, fn}

/* Runs every test (or those named on the command line); prints "N passed, N failed". */
int check_run(const check_test *tests, size_t n, int argc, char **argv);

/* Reads a whole file into a heap buffer placed at the END of its allocation,
 * so that reading past it is caught by ASan. Free with free(). */
char *check_read_file(const char *path, size_t *len);
/* An allocator (csip_mem) that fails the fail_at-th allocation or reallocation
 * (1-based; 0 = never) and counts the blocks still live, for the failing-
 * allocator tests: after freeing everything, live must be 0. */
typedef struct check_failmem {
    int fail_at, count, live;
    csip_mem mem;
} check_failmem;
void check_failmem_init(check_failmem *f, int fail_at);

/* memmem (not in C11): the first occurrence of needle in hay, or NULL. */
const void *check_memmem(const void *hay, size_t hlen, const void *needle, size_t nlen);
/* Copies bytes to the end of a fresh heap buffer (same purpose). */
char *check_tail_copy(const void *p, size_t len);

#endif
