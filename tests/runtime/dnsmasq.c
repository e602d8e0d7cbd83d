/*
 * dnsmasq as a test fixture (see dnsmasq.h). Loopback only.
 */
#define _GNU_SOURCE

#include "dnsmasq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DNSMASQ_MAX_ARGS 512

/* $CSIP_DNSMASQ names another binary (and "none" checks the failure path). */
static const char *find_dnsmasq(void)
{
    const char *env = getenv("CSIP_DNSMASQ");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    static const char *const paths[] = {"/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq",
                                        "/sbin/dnsmasq", "/usr/bin/dnsmasq"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* True when both UDP and TCP 127.0.0.1:port can be bound right now. */
static int port_free(uint16_t port)
{
    static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
    for (size_t i = 0; i < 2; i++) {
        int fd = socket(AF_INET, types[i], 0);
        if (fd < 0)
            return 0;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (!ok)
            return 0;
    }
    return 1;
}

static void print_log(const dnsmasq *d)
{
    FILE *f = fopen(d->log_path, "r");
    if (!f)
        return;
    char line[512];
    fprintf(stderr, "--- dnsmasq output ---\n");
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fprintf(stderr, "---\n");
    fclose(f);
}

/* Sends one query ("probe.test", A) and waits up to 100 ms for any answer. */
static int probe(uint16_t port)
{
    /* id 0x1234, recursion desired, one question: probe.test IN A */
    static const char q[] = "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                            "\x05probe\x04test\x00\x00\x01\x00\x01";
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (sendto(fd, q, sizeof q - 1, 0, (struct sockaddr *)&sa, sizeof sa) ==
        (ssize_t)(sizeof q - 1)) {
        struct pollfd pfd = {fd, POLLIN, 0};
        unsigned char buf[512];
        if (poll(&pfd, 1, 100) == 1 && recv(fd, buf, sizeof buf, 0) >= 12 && buf[0] == 0x12 &&
            buf[1] == 0x34)
            ok = 1;
    }
    close(fd);
    return ok;
}

static void reap(dnsmasq *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            d->pid = 0;
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

/* One attempt on one port: 1 running, 0 exited early (try another port), -1 error. */
static int start_on(dnsmasq *d, const char *exe, const char *const *options, uint16_t port)
{
    char port_opt[32];
    snprintf(port_opt, sizeof port_opt, "--port=%u", (unsigned)port);
    const char *argv[DNSMASQ_MAX_ARGS];
    size_t n = 0;
    argv[n++] = exe;
    argv[n++] = "--keep-in-foreground";
    argv[n++] = "--no-resolv";
    argv[n++] = "--no-hosts";
    argv[n++] = "--no-poll";
    argv[n++] = "--bind-interfaces";
    argv[n++] = "--listen-address=127.0.0.1";
    argv[n++] = "--log-facility=-";
    argv[n++] = "--pid-file=";
    argv[n++] = "--cache-size=0";
    argv[n++] = "--local=/test/"; /* authoritative for .test: NXDOMAIN for unknown names */
    argv[n++] = port_opt;
    if (geteuid() == 0)
        argv[n++] = "--user=root"; /* otherwise it would switch to nobody */
    for (size_t i = 0; options && options[i]; i++) {
        if (n + 1 >= DNSMASQ_MAX_ARGS) {
            fprintf(stderr, "dnsmasq: too many options\n");
            return -1;
        }
        argv[n++] = options[i];
    }
    argv[n] = NULL;

    int logfd = open(d->log_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (logfd < 0) {
        fprintf(stderr, "dnsmasq: cannot open %s: %s\n", d->log_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "dnsmasq: fork: %s\n", strerror(errno));
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(logfd, 1);
        dup2(logfd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        execv(exe, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(logfd);
    d->pid = pid;
    d->port = port;
    for (int i = 0; i < 50; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            return 0;
        }
        if (probe(port))
            return 1;
    }
    fprintf(stderr, "dnsmasq: no answer on 127.0.0.1:%u after 5 s\n", (unsigned)port);
    print_log(d);
    reap(d);
    return -1;
}

int dnsmasq_start(dnsmasq *d, const char *const *options)
{
    memset(d, 0, sizeof *d);
    const char *exe = find_dnsmasq();
    if (!exe) {
        fprintf(stderr, "dnsmasq not found: the DNS tests need a real DNS server. Install the "
                        "Debian package dnsmasq-base (tools/deps.sh check does).\n");
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(d->log_path, sizeof d->log_path, "%s/csip-dnsmasq-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(d->log_path);
    if (fd < 0) {
        fprintf(stderr, "dnsmasq: mkstemp %s: %s\n", d->log_path, strerror(errno));
        d->log_path[0] = '\0';
        return -1;
    }
    close(fd);
    uint16_t base = (uint16_t)(15353 + (unsigned)getpid() % 4000u);
    int tries = 0;
    for (unsigned k = 0; k < 400 && tries < 8; k++) {
        uint16_t port = (uint16_t)(base + k);
        if (!port_free(port))
            continue;
        tries++;
        int rc = start_on(d, exe, options, port);
        if (rc == 1) {
            snprintf(d->servers, sizeof d->servers, "127.0.0.1:%u", (unsigned)port);
            return 0;
        }
        if (rc < 0)
            break;
    }
    fprintf(stderr, "dnsmasq: could not start on 127.0.0.1 (ports from %u)\n", (unsigned)base);
    print_log(d);
    dnsmasq_stop(d);
    return -1;
}

void dnsmasq_stop(dnsmasq *d)
{
    reap(d);
    if (d->log_path[0]) {
        unlink(d->log_path);
        d->log_path[0] = '\0';
    }
}
