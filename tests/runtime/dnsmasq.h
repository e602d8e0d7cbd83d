/*
 * A real DNS server for the runtime tests: dnsmasq, started by the test in
 * the foreground on 127.0.0.1 on a free port, answering only from the
 * records given on its command line (--naptr-record, --srv-host,
 * --host-record …) and authoritative for the .test domain, so that unknown
 * names get NXDOMAIN. It dies with the test process (PR_SET_PDEATHSIG) even
 * when the test crashes or is killed by its timeout. It runs as root or not
 * (as root it is told to stay root rather than switch to nobody).
 *
 * $CSIP_DNSMASQ names the binary when it is not in /usr/sbin (or elsewhere
 * in the usual places).
 */
#ifndef CSIP_TEST_DNSMASQ_H
#define CSIP_TEST_DNSMASQ_H

#include <stdint.h>
#include <sys/types.h>

typedef struct dnsmasq {
    pid_t pid;
    uint16_t port;
    char log_path[256]; /* dnsmasq's output, printed when it fails to start */
    char servers[32];   /* "127.0.0.1:PORT", for csip_resolver_opts.servers */
} dnsmasq;

/**
 * Starts dnsmasq with the given extra options (NULL-terminated) and waits
 * until it answers queries. Tries ports from 15353 up (a start spread by the
 * process id, so that parallel test runs rarely meet).
 * @return 0, or -1 after printing why on stderr (dnsmasq missing: install
 *         the Debian package dnsmasq-base, see tools/deps.sh check).
 */
int dnsmasq_start(dnsmasq *d, const char *const *options);

/** Stops dnsmasq (SIGTERM, then SIGKILL) and removes its log. Idempotent. */
void dnsmasq_stop(dnsmasq *d);

#endif
