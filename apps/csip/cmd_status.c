/*
 * csip status [CODE]: the IANA SIP response-code registry as the library
 * knows it (csip_status_*).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "csip/csip.h"

static void status_usage(FILE *f)
{
    fprintf(f, "usage: csip status [CODE]\n"
               "\n"
               "With CODE (100..699): its reason phrase, class, defining RFC and meaning.\n"
               "A code in range that is not registered is described as the x00 code of\n"
               "its class, which is how RFC 3261 section 8.1.3.2 says to treat it.\n"
               "Without CODE: the whole registry, one code per line.\n");
}

static void print_class(int code)
{
    int cls = csip_status_class(code);
    printf("class:    %dxx %s\n", cls, csip_status_class_name(cls));
}

static void print_one(int code)
{
    const csip_status_info *info = csip_status_lookup(code);

    printf("code:     %d\n", code);
    if (info != NULL) {
        printf("reason:   %s\n", info->reason);
        print_class(code);
        printf("rfc:      %s\n", info->rfc);
        printf("meaning:  %s\n", info->meaning);
        return;
    }
    int eff = csip_status_effective(code);
    const csip_status_info *base = csip_status_lookup(eff);
    printf("reason:   (unregistered code)\n");
    print_class(code);
    printf("treat as: %d %s (an unregistered code is handled as the x00 code of its "
           "class, RFC 3261 section 8.1.3.2)\n",
           eff, csip_status_reason(code));
    if (base != NULL) {
        printf("meaning:  %s\n", base->meaning);
    }
}

static void print_table(void)
{
    size_t n = 0;
    const csip_status_info *t = csip_status_table(&n);
    int wreason = (int)strlen("REASON");
    int wrfc = (int)strlen("RFC");

    for (size_t i = 0; i < n; i++) {
        size_t lr = strlen(t[i].reason);
        size_t lf = strlen(t[i].rfc);
        if (lr > (size_t)wreason && lr < 200) {
            wreason = (int)lr;
        }
        if (lf > (size_t)wrfc && lf < 200) {
            wrfc = (int)lf;
        }
    }
    printf("CODE  %-*s  %-*s  MEANING\n", wreason, "REASON", wrfc, "RFC");
    for (size_t i = 0; i < n; i++) {
        printf("%-4u  %-*s  %-*s  %s\n", (unsigned)t[i].code, wreason, t[i].reason, wrfc, t[i].rfc,
               t[i].meaning);
    }
}

int cmd_status(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        status_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "csip status: too many arguments\n");
        status_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (argc == 1) {
        print_table();
        return CLI_EXIT_OK;
    }

    uint32_t code;
    int rc = csip_str_to_u32(csip_str_c(argv[1]), &code);
    if (rc == CSIP_ERR_SYNTAX) {
        fprintf(stderr, "csip status: '%s' is not a status code (expected a number 100..699)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
    }
    if (rc != 0 || code < 100 || code > 699) {
        fprintf(stderr, "csip status: %s is outside 100..699: not a SIP status code\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    print_one((int)code);
    return CLI_EXIT_OK;
}
