/* The README's library example, compiled and run as written. */
#include <stdio.h>

#include "check.h"

static int readme_example(const char *buf, size_t len)
{
    /* --- begin README example --- */
    csip_msg *m;
    csip_parse_error err;
    if (csip_msg_parse(buf, len, NULL, &m, &err) == 0 && csip_msg_validate(m, &err) == 0) {
        const csip_via *via;
        const csip_cseq *cseq;
        csip_msg_via(m, 0, &via);              /* top Via: via->branch, via->host … */
        csip_msg_cseq(m, &cseq);               /* cseq->number, cseq->method */
        printf("%u %.*s\n", cseq->number, (int)via->branch.len, via->branch.p);
    } else {
        /* err.status is the response to send (400, 505, 513 …), err.reason says why */
    }
    csip_msg_free(m);                          /* NULL-safe; every view dies with it */
    /* --- end README example --- */
    return err.status;
}

static void test_readme_example(void)
{
    static const char ok[] = "OPTIONS sip:b@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP h;branch=z9hG4bKreadme\r\nFrom: <sip:a@x>;tag=1\r\n"
                             "To: <sip:b@example.com>\r\nCall-ID: r1\r\nCSeq: 42 OPTIONS\r\n"
                             "Content-Length: 0\r\n\r\n";
    EXPECT_EQ(readme_example(ok, sizeof ok - 1), 0);
    static const char bad[] = "OPTIONS sip:b@example.com SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP h;branch=z9hG4bKreadme\r\nFrom: <sip:a@x>;tag=1\r\n"
                              "To: <sip:b@example.com>\r\nCall-ID: r1\r\nCSeq: 42 INVITE\r\n"
                              "Content-Length: 0\r\n\r\n";
    EXPECT_EQ(readme_example(bad, sizeof bad - 1), 400);
    EXPECT_EQ(readme_example("x", 1), 0); /* nothing usable: no message, no status */
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {CHECK_TEST(test_readme_example)};
    return check_run(tests, 1, argc, argv);
}
