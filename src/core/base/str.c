#include <string.h>

#include "base/base_int.h"

csip_str csip_str_c(const char *s)
{
    csip_str r = {s, s ? strlen(s) : 0};
    return r;
}

bool csip_str_eq(csip_str a, csip_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool csip_str_ieq(csip_str a, csip_str b)
{
    if (a.len != b.len)
        return false;
    /* Mostly equal octet for octet (branches, hosts, names as sent): that
     * first, then case folded from the first difference on. */
    if (a.len == 0 || memcmp(a.p, b.p, a.len) == 0)
        return true;
    for (size_t i = 0; i < a.len; i++)
        if (a.p[i] != b.p[i] && csip__lower(a.p[i]) != csip__lower(b.p[i]))
            return false;
    return true;
}

bool csip_str_ieq_c(csip_str a, const char *b)
{
    return csip_str_ieq(a, csip_str_c(b));
}

bool csip_str_eq_c(csip_str a, const char *b)
{
    return csip_str_eq(a, csip_str_c(b));
}

int csip_str_to_u32(csip_str s, uint32_t *out)
{
    if (s.len == 0)
        return CSIP_ERR_SYNTAX;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return CSIP_ERR_SYNTAX;
        v = v * 10 + d;
        if (v > UINT32_MAX) {
            /* keep scanning: a non-digit later is a syntax error, not a range one */
            for (size_t j = i + 1; j < s.len; j++)
                if ((unsigned char)s.p[j] - '0' > 9)
                    return CSIP_ERR_SYNTAX;
            return CSIP_ERR_RANGE;
        }
    }
    *out = (uint32_t)v;
    return 0;
}

csip_str csip__trim(csip_str s)
{
    while (s.len && csip__is((unsigned char)s.p[0], CSIP_C_LWS)) {
        s.p++;
        s.len--;
    }
    while (s.len && csip__is((unsigned char)s.p[s.len - 1], CSIP_C_LWS))
        s.len--;
    return s;
}
