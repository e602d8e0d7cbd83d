/*
 * Transport addresses of the sans-I/O core (include/csip/addr.h): raw IP
 * octets, port, transport and the host's connection id. No socket header.
 */
#include "csip/addr.h"

#include "base/base_int.h"

#include <stdio.h>
#include <string.h>

bool csip_transport_reliable(csip_transport tp)
{
    switch (tp) {
    case CSIP_TP_UDP:
        return false;
    case CSIP_TP_TCP:
    case CSIP_TP_TLS:
    case CSIP_TP_SCTP:
    case CSIP_TP_WS:
    case CSIP_TP_WSS:
        return true;
    }
    return false;
}

const char *csip_transport_name(csip_transport tp)
{
    switch (tp) {
    case CSIP_TP_UDP:
        return "UDP";
    case CSIP_TP_TCP:
        return "TCP";
    case CSIP_TP_TLS:
        return "TLS";
    case CSIP_TP_SCTP:
        return "SCTP";
    case CSIP_TP_WS:
        return "WS";
    case CSIP_TP_WSS:
        return "WSS";
    }
    return "";
}

int csip_transport_lookup(csip_str name)
{
    static const csip_transport all[] = {CSIP_TP_UDP,  CSIP_TP_TCP, CSIP_TP_TLS,
                                         CSIP_TP_SCTP, CSIP_TP_WS,  CSIP_TP_WSS};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (csip_str_ieq_c(name, csip_transport_name(all[i])))
            return (int)all[i];
    return -1;
}

/* A dotted quad of dec-octets (1 to 3 digits, no leading zero, at most 255). */
bool csip__ipv4_parse(const char *p, size_t n, uint8_t out[4])
{
    /* Straight-line digits: a fourth digit is caught by the '.' or end test after it. */
    const char *e = p + n;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (p == e || *p != '.')
                return false;
            p++;
        }
        unsigned d, v;
        if (p == e || (v = (unsigned)((unsigned char)*p - '0')) > 9)
            return false;
        p++;
        if (p < e && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
            if (v == 0)
                return false; /* leading zero */
            v = v * 10 + d;
            p++;
            if (p < e && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
                v = v * 10 + d;
                p++;
                if (v > 255)
                    return false;
            }
        }
        out[part] = (uint8_t)v;
    }
    return p == e;
}

/* RFC 4291 §2.2 text forms: eight groups, "::" once, an embedded IPv4 tail. */
bool csip__ipv6_parse(const char *p, size_t n, uint8_t out[16])
{
    uint16_t g[8];
    int ng = 0, dbl = -1;
    size_t i = 0;
    if (n < 2)
        return false;
    if (p[0] == ':') {
        if (p[1] != ':')
            return false;
        dbl = 0;
        i = 2;
    }
    while (i < n) {
        size_t st = i;
        unsigned v = 0;
        int h;
        while (i < n && i - st < 5 && (h = csip__hexval((unsigned char)p[i])) >= 0) {
            v = v * 16 + (unsigned)h;
            i++;
        }
        if (i < n && p[i] == '.') {
            uint8_t v4[4];
            if (ng > 6 || !csip__ipv4_parse(p + st, n - st, v4))
                return false;
            g[ng++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[ng++] = (uint16_t)(v4[2] << 8 | v4[3]);
            break;
        }
        if (i == st || i - st > 4 || ng == 8)
            return false;
        g[ng++] = (uint16_t)v;
        if (i == n)
            break;
        if (p[i] != ':')
            return false;
        i++;
        if (i < n && p[i] == ':') {
            if (dbl >= 0)
                return false;
            dbl = ng;
            i++;
        } else if (i == n) {
            return false;
        }
    }
    if (dbl >= 0 ? ng > 7 : ng != 8)
        return false;
    uint16_t full[8] = {0};
    if (dbl < 0) {
        memcpy(full, g, sizeof full);
    } else {
        for (int k = 0; k < dbl; k++)
            full[k] = g[k];
        int tail = ng - dbl;
        for (int k = 0; k < tail; k++)
            full[8 - tail + k] = g[dbl + k];
    }
    for (int k = 0; k < 8; k++) {
        out[2 * k] = (uint8_t)(full[k] >> 8);
        out[2 * k + 1] = (uint8_t)full[k];
    }
    return true;
}

int csip_addr_set_ip(csip_addr *a, csip_str ip)
{
    if (!a || !ip.p)
        return CSIP_ERR_INVALID_ARG;
    uint8_t buf[16];
    memset(buf, 0, sizeof buf);
    if (ip.len >= 2 && ip.p[0] == '[') {
        if (ip.p[ip.len - 1] != ']' || !csip__ipv6_parse(ip.p + 1, ip.len - 2, buf))
            return CSIP_ERR_SYNTAX;
        a->family = 6;
    } else if (csip__ipv4_parse(ip.p, ip.len, buf)) {
        a->family = 4;
    } else if (csip__ipv6_parse(ip.p, ip.len, buf)) {
        a->family = 6;
    } else {
        return CSIP_ERR_SYNTAX;
    }
    memcpy(a->ip, buf, sizeof buf);
    return 0;
}

bool csip_addr_equal(const csip_addr *a, const csip_addr *b)
{
    if (a->family != b->family || a->port != b->port || a->transport != b->transport)
        return false;
    return memcmp(a->ip, b->ip, a->family == 4 ? 4u : 16u) == 0;
}

/* RFC 5952 text form: lower case, no leading zeros, the longest run of two or
 * more zero groups (the first one on a tie) written "::". */
static size_t format_ipv6(const uint8_t ip[16], char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len && j - i >= 2) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            out[n++] = ':';
            if (i == 0)
                out[n++] = ':';
            i += best_len - 1;
            continue;
        }
        bool lead = true;
        for (int s = 12; s >= 0; s -= 4) {
            unsigned d = (g[i] >> s) & 0xf;
            if (lead && d == 0 && s > 0)
                continue;
            lead = false;
            out[n++] = hex[d];
        }
        if (i < 7)
            out[n++] = ':';
    }
    return n;
}

int csip_addr_format(const csip_addr *a, char *out, size_t cap)
{
    if (!a || (a->family != 4 && a->family != 6))
        return CSIP_ERR_INVALID_ARG;
    char tmp[64];
    size_t n = 0;
    if (a->family == 4) {
        int r = snprintf(tmp, sizeof tmp, "%u.%u.%u.%u:%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3],
                         (unsigned)a->port);
        n = (size_t)r;
    } else {
        tmp[n++] = '[';
        n += format_ipv6(a->ip, tmp + n);
        int r = snprintf(tmp + n, sizeof tmp - n, "]:%u", (unsigned)a->port);
        n += (size_t)r;
    }
    if (!out || n + 1 > cap)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    memcpy(out, tmp, n + 1);
    return (int)n;
}
