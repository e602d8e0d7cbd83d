#include "check.h"

/* The IANA SIP response-code registry, 75 codes. */
static const int registry[] = {
    100, 180, 181, 182, 183, 199,                                         /* 1xx */
    200, 202, 204,                                                        /* 2xx */
    300, 301, 302, 305, 380,                                              /* 3xx */
    400, 401, 402, 403, 404, 405, 406, 407, 408, 410, 412, 413, 414, 415, /* 4xx */
    416, 417, 420, 421, 422, 423, 424, 425, 428, 429, 430, 433, 436, 437,
    438, 439, 440, 469, 470, 480, 481, 482, 483, 484, 485, 486, 487, 488,
    489, 491, 493, 494, 500, 501, 502, 503, 504, 505, 513, 555, 580, /* 5xx */
    600, 603, 604, 606, 607, 608,                                    /* 6xx */
};
#define N_REGISTRY (sizeof registry / sizeof registry[0])

static bool registered(int code)
{
    for (size_t i = 0; i < N_REGISTRY; i++) {
        if (registry[i] == code)
            return true;
    }
    return false;
}

static void test_table_shape(void)
{
    size_t n = 0;
    const csip_status_info *t = csip_status_table(&n);
    ASSERT_TRUE(t != NULL);
    ASSERT_EQ(n, 75);
    ASSERT_EQ(N_REGISTRY, 75);
    EXPECT_TRUE(csip_status_table(NULL) == t);
    for (size_t i = 0; i < n; i++) {
        EXPECT_EQ(t[i].code, registry[i]);
        if (i > 0)
            EXPECT_TRUE(t[i].code > t[i - 1].code);
        ASSERT_TRUE(t[i].reason && t[i].rfc && t[i].meaning);
        EXPECT_TRUE(t[i].reason[0] != 0);
        EXPECT_TRUE(strncmp(t[i].rfc, "RFC ", 4) == 0);
        size_t ml = strlen(t[i].meaning);
        EXPECT_TRUE(ml > 10);
        /* one sentence: starts with a capital, ends with the only full stop */
        EXPECT_TRUE(t[i].meaning[0] >= 'A' && t[i].meaning[0] <= 'Z');
        EXPECT_EQ(t[i].meaning[ml - 1], '.');
        EXPECT_TRUE(strstr(t[i].meaning, ". ") == NULL);
        EXPECT_TRUE(strchr(t[i].reason, '|') == NULL && strchr(t[i].meaning, '|') == NULL);
        /* the reason phrase is valid on the wire: no CR, LF or leading/trailing space */
        EXPECT_TRUE(strpbrk(t[i].reason, "\r\n") == NULL);
        EXPECT_TRUE(t[i].reason[0] != ' ' && t[i].reason[strlen(t[i].reason) - 1] != ' ');
    }
}

static void test_lookup(void)
{
    size_t n = 0;
    const csip_status_info *t = csip_status_table(&n);
    for (size_t i = 0; i < n; i++)
        EXPECT_TRUE(csip_status_lookup(t[i].code) == &t[i]);
    for (int code = -5; code < 1100; code++) {
        const csip_status_info *e = csip_status_lookup(code);
        if (registered(code)) {
            EXPECT_TRUE(e != NULL && e->code == code);
        } else if (e != NULL) {
            CHECK_FAIL_("csip_status_lookup(%d) found an entry", code);
        }
    }
    EXPECT_TRUE(csip_status_lookup(99) == NULL);
    EXPECT_TRUE(csip_status_lookup(700) == NULL);
    EXPECT_TRUE(csip_status_lookup(1000) == NULL);
    EXPECT_TRUE(csip_status_lookup(0) == NULL);
    EXPECT_TRUE(csip_status_lookup(-100) == NULL);
    EXPECT_TRUE(csip_status_lookup(499) == NULL);
    EXPECT_TRUE(csip_status_lookup(2147483647) == NULL);
    EXPECT_TRUE(csip_status_lookup(-2147483647 - 1) == NULL);
}

#define REASON_IS(code, phrase) EXPECT_CSTR(csip_status_lookup(code)->reason, phrase)
#define RFC_IS(code, ref) EXPECT_CSTR(csip_status_lookup(code)->rfc, ref)

static void test_reason_phrases(void)
{
    /* as the defining RFCs write them */
    REASON_IS(100, "Trying");
    REASON_IS(181, "Call Is Being Forwarded");
    REASON_IS(182, "Queued");
    REASON_IS(183, "Session Progress");
    REASON_IS(199, "Early Dialog Terminated");
    REASON_IS(200, "OK");
    REASON_IS(202, "Accepted");
    REASON_IS(204, "No Notification");
    REASON_IS(302, "Moved Temporarily");
    REASON_IS(380, "Alternative Service");
    REASON_IS(404, "Not Found");
    REASON_IS(407, "Proxy Authentication Required");
    REASON_IS(408, "Request Timeout");
    REASON_IS(412, "Conditional Request Failed");
    REASON_IS(414, "Request-URI Too Long");
    REASON_IS(417, "Unknown Resource-Priority");
    REASON_IS(420, "Bad Extension");
    REASON_IS(421, "Extension Required");
    REASON_IS(422, "Session Interval Too Small");
    REASON_IS(423, "Interval Too Brief");
    REASON_IS(424, "Bad Location Information");
    REASON_IS(425, "Bad Alert Message");
    REASON_IS(428, "Use Identity Header");
    REASON_IS(429, "Provide Referrer Identity");
    REASON_IS(430, "Flow Failed");
    REASON_IS(433, "Anonymity Disallowed");
    REASON_IS(436, "Bad Identity Info");
    REASON_IS(437, "Unsupported Credential");
    REASON_IS(438, "Invalid Identity Header");
    REASON_IS(439, "First Hop Lacks Outbound Support");
    REASON_IS(440, "Max-Breadth Exceeded");
    REASON_IS(469, "Bad Info Package");
    REASON_IS(470, "Consent Needed");
    REASON_IS(481, "Call/Transaction Does Not Exist");
    REASON_IS(489, "Bad Event");
    REASON_IS(493, "Undecipherable");
    REASON_IS(494, "Security Agreement Required");
    REASON_IS(500, "Server Internal Error");
    REASON_IS(504, "Server Time-out");
    REASON_IS(513, "Message Too Large");
    REASON_IS(555, "Push Notification Service Not Supported");
    REASON_IS(580, "Precondition Failure");
    REASON_IS(604, "Does Not Exist Anywhere");
    REASON_IS(606, "Not Acceptable");
    REASON_IS(607, "Unwanted");
    REASON_IS(608, "Rejected");
}

static void test_rfcs(void)
{
    RFC_IS(100, "RFC 3261");
    RFC_IS(199, "RFC 6228");
    RFC_IS(202, "RFC 3265/6665");
    RFC_IS(204, "RFC 5839");
    RFC_IS(412, "RFC 3903");
    RFC_IS(417, "RFC 4412");
    RFC_IS(422, "RFC 4028");
    RFC_IS(424, "RFC 6442");
    RFC_IS(425, "RFC 8876");
    RFC_IS(428, "RFC 8224");
    RFC_IS(429, "RFC 3892");
    RFC_IS(430, "RFC 5626");
    RFC_IS(433, "RFC 5079");
    RFC_IS(436, "RFC 8224");
    RFC_IS(437, "RFC 8224");
    RFC_IS(438, "RFC 8224");
    RFC_IS(439, "RFC 5626");
    RFC_IS(440, "RFC 5393");
    RFC_IS(469, "RFC 6086");
    RFC_IS(470, "RFC 5360");
    RFC_IS(489, "RFC 3265/6665");
    RFC_IS(494, "RFC 3329");
    RFC_IS(555, "RFC 8599");
    RFC_IS(580, "RFC 3312");
    RFC_IS(607, "RFC 8197");
    RFC_IS(608, "RFC 8688");
}

static void test_class(void)
{
    EXPECT_EQ(csip_status_class(99), 0);
    EXPECT_EQ(csip_status_class(100), 1);
    EXPECT_EQ(csip_status_class(199), 1);
    EXPECT_EQ(csip_status_class(200), 2);
    EXPECT_EQ(csip_status_class(486), 4);
    EXPECT_EQ(csip_status_class(699), 6);
    EXPECT_EQ(csip_status_class(700), 0);
    EXPECT_EQ(csip_status_class(1000), 0);
    EXPECT_EQ(csip_status_class(0), 0);
    EXPECT_EQ(csip_status_class(-404), 0);
    static const char *const names[] = {"",
                                        "Provisional",
                                        "Successful",
                                        "Redirection",
                                        "Request Failure",
                                        "Server Failure",
                                        "Global Failure",
                                        ""};
    for (int c = 0; c <= 7; c++)
        EXPECT_CSTR(csip_status_class_name(c), names[c]);
    EXPECT_CSTR(csip_status_class_name(-1), "");
    EXPECT_CSTR(csip_status_class_name(100), "");
}

static void test_effective(void)
{
    /* RFC 3261 §8.1.3.2: an unknown final code is treated as x00 of its class,
     * an unknown provisional code as 183 */
    EXPECT_EQ(csip_status_effective(499), 400);
    EXPECT_EQ(csip_status_effective(431), 400);
    EXPECT_EQ(csip_status_effective(486), 486);
    EXPECT_EQ(csip_status_effective(199), 199);
    EXPECT_EQ(csip_status_effective(198), 183);
    EXPECT_EQ(csip_status_effective(101), 183);
    EXPECT_EQ(csip_status_effective(189), 183);
    EXPECT_EQ(csip_status_effective(299), 200);
    EXPECT_EQ(csip_status_effective(201), 200);
    EXPECT_EQ(csip_status_effective(399), 300);
    EXPECT_EQ(csip_status_effective(599), 500);
    EXPECT_EQ(csip_status_effective(699), 600);
    EXPECT_EQ(csip_status_effective(100), 100);
    EXPECT_EQ(csip_status_effective(99), 0);
    EXPECT_EQ(csip_status_effective(700), 0);
    EXPECT_EQ(csip_status_effective(1000), 0);
    EXPECT_EQ(csip_status_effective(0), 0);
    EXPECT_EQ(csip_status_effective(-1), 0);
    for (int code = 100; code <= 699; code++) {
        int eff = csip_status_effective(code);
        int x00 = code / 100 * 100;
        EXPECT_EQ(eff, registered(code) ? code : code < 200 ? 183 : x00);
        EXPECT_TRUE(csip_status_lookup(eff) != NULL);
        /* the phrase is the code's own, or that of x00 */
        EXPECT_CSTR(csip_status_reason(code),
                    csip_status_lookup(registered(code) ? code : x00)->reason);
    }
}

static void test_reason(void)
{
    EXPECT_CSTR(csip_status_reason(180), "Ringing");
    EXPECT_CSTR(csip_status_reason(486), "Busy Here");
    EXPECT_CSTR(csip_status_reason(499), "Bad Request");
    EXPECT_CSTR(csip_status_reason(299), "OK");
    EXPECT_CSTR(csip_status_reason(150), "Trying");
    EXPECT_CSTR(csip_status_reason(399), "Multiple Choices");
    EXPECT_CSTR(csip_status_reason(599), "Server Internal Error");
    EXPECT_CSTR(csip_status_reason(699), "Busy Everywhere");
    EXPECT_CSTR(csip_status_reason(99), "");
    EXPECT_CSTR(csip_status_reason(700), "");
    EXPECT_CSTR(csip_status_reason(1000), "");
    EXPECT_CSTR(csip_status_reason(-200), "");
}

/* The table rows of docs/status-codes.md, as they must read. */
static size_t expected_rows(char *out, size_t cap)
{
    size_t n = 0, used = 0;
    const csip_status_info *t = csip_status_table(&n);
    for (size_t i = 0; i < n; i++) {
        int w =
            snprintf(out + used, cap - used, "| %d | %s | %s | %s | %s |\n", t[i].code, t[i].reason,
                     csip_status_class_name(csip_status_class(t[i].code)), t[i].rfc, t[i].meaning);
        if (w < 0 || (size_t)w >= cap - used)
            return 0;
        used += (size_t)w;
    }
    return used;
}

/* Writes the rows the document should hold next to the test binary, to paste in. */
static void doc_mismatch(const char *want, size_t want_len, const char *why)
{
    FILE *f = fopen("status-codes.rows.md", "w");
    if (f) {
        fwrite(want, 1, want_len, f);
        fclose(f);
    }
    CHECK_FAIL_("docs/status-codes.md %s; the rows it should hold, made from "
                "src/core/msg/status.c, are in status-codes.rows.md (in the tests build directory)",
                why);
}

static void test_doc_matches_table(void)
{
    static char want[32768];
    size_t want_len = expected_rows(want, sizeof want);
    ASSERT_GT(want_len, 0);

    size_t len = 0;
    char *doc = check_read_file(CSIP_TEST_DATA "/../../docs/status-codes.md", &len);
    if (!doc) {
        doc_mismatch(want, want_len, "cannot be read");
        return;
    }
    /* gather the lines that are table rows of a code: "| 1".."| 6" */
    static char got[32768];
    size_t got_len = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && doc[j] != '\n')
            j++;
        size_t ll = j - i;
        if (ll >= 3 && doc[i] == '|' && doc[i + 1] == ' ' && doc[i + 2] >= '1' &&
            doc[i + 2] <= '6' && got_len + ll + 1 < sizeof got) {
            memcpy(got + got_len, doc + i, ll);
            got_len += ll;
            got[got_len++] = '\n';
        }
        i = j + 1;
    }
    free(doc);
    if (got_len != want_len || memcmp(got, want, want_len) != 0)
        doc_mismatch(want, want_len, "differs from the status table");
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_table_shape),    CHECK_TEST(test_lookup),
        CHECK_TEST(test_reason_phrases), CHECK_TEST(test_rfcs),
        CHECK_TEST(test_class),          CHECK_TEST(test_effective),
        CHECK_TEST(test_reason),         CHECK_TEST(test_doc_matches_table),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
