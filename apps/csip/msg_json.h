/*
 * The JSON form of a parsed message (docs/csip-tool.md, "csip parse").
 */
#ifndef CSIP_APP_MSG_JSON_H
#define CSIP_APP_MSG_JSON_H

#include "csip/csip.h"
#include "json.h"

/*
 * Writes the members of a message into the JSON object the caller has opened:
 * "type", the start line ("method", "request_uri", "version" or "version",
 * "status", "reason"), "headers" (every line in order, with its typed value
 * under "parsed" where the header is known, or "parse_error"), "body_length".
 * The message's typed-value caches are filled as a side effect.
 */
void msg_json_members(json_out *j, const csip_msg *msg);

#endif
