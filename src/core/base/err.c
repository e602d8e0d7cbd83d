#include "base/base_int.h"
#include "csip/version.h"

/* A switch over every code: with -Wswitch a new code without a message is caught. */
const char *csip_strerror(int err)
{
    switch ((csip_err)err) {
    case CSIP_OK:
        return "success";
#define CSIP__ERR_STR(name, val, msg)                                                            \
    case CSIP_ERR_##name:                                                                        \
        return msg;
        CSIP_ERR_MAP(CSIP__ERR_STR)
#undef CSIP__ERR_STR
    }
    return "unknown error";
}

const char *csip_err_name(int err)
{
    switch ((csip_err)err) {
    case CSIP_OK:
        return "OK";
#define CSIP__ERR_NAME(name, val, msg)                                                           \
    case CSIP_ERR_##name:                                                                        \
        return #name;
        CSIP_ERR_MAP(CSIP__ERR_NAME)
#undef CSIP__ERR_NAME
    }
    return "UNKNOWN";
}

bool csip_err_is_fatal(int err)
{
    return err <= CSIP_ERR_FATAL;
}

const char *csip_version(void)
{
    return CSIP_VERSION_STRING;
}
