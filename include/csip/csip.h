/*
 * csip — SIP (RFC 3261) stack. Umbrella header.
 *
 * Threading rule: a message, and every object derived from one, is confined to
 * one thread at a time; separate objects are independent. The static tables
 * (csip_status_*, csip_method_*, csip_hdr_*), csip_version() and
 * csip_strerror() may be used from any thread.
 */
#ifndef CSIP_H
#define CSIP_H

#include "csip/addr.h"
#include "csip/auth.h"
#include "csip/base.h"
#include "csip/dialog.h"
#include "csip/limiter.h"
#include "csip/limits.h"
#include "csip/msg.h"
#include "csip/proxy.h"
#include "csip/registrar.h"
#include "csip/sdp.h"
#include "csip/txn.h"
#include "csip/uri.h"
#include "csip/version.h"

#endif
