/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_msg: decode inbound oslo.messaging bodies (envelope 2.0 or bare 1.0)
 * and validate an RPC request into an opaque rpc_msg with typed getters.
 * Pure: jansson only, no I/O, no globals, never logs.  Any thread may call
 * it, but one rpc_msg (and the json_t it holds) belongs to one thread.
 */
#ifndef RPC_MSG_H
#define RPC_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rpc_err.h"

/* Largest AMQP body (and largest nested oslo.message text) we accept. */
#define RPC_MSG_MAX_BYTES (8u * 1024u * 1024u)
/* Deepest array/object nesting accepted in any one JSON document. */
#define RPC_MSG_MAX_DEPTH 64

/*
 * Parses one JSON document of @len bytes at @buf (not NUL-terminated) with
 * the same guards as the envelope: size <= RPC_MSG_MAX_BYTES (-E2BIG),
 * nesting <= RPC_MSG_MAX_DEPTH checked iteratively before jansson sees it,
 * duplicate keys, invalid UTF-8, NUL characters and syntax errors (-EINVAL).
 * Any JSON type is accepted at the top.  On success *ret_json is a new
 * reference.  Returns 0 or -errno.
 */
int rpc_json_parse(const void *buf, size_t len, json_t **ret_json, struct rpc_err *reterr);

/*
 * json_dumps(@json, @flags | JSON_ENSURE_ASCII) with the \uXXXX escapes in
 * lower case, so the text is byte for byte what Python's json.dumps() (with
 * ensure_ascii) writes for the same object and separators: pass 0 for
 * Python's default ", " / ": " separators, JSON_COMPACT for ",", ":".
 * @json borrowed; returns malloc'd text the caller frees, NULL on ENOMEM.
 */
char *rpc_json_dumps(const json_t *json, size_t flags);

/*
 * Decodes an AMQP body (@len bytes, not NUL-terminated).  Accepts the 2.0
 * envelope {"oslo.version": "2.x", "oslo.message": "<JSON text>"} (the text
 * is parsed too) and, as oslo does, any object lacking one of those two keys
 * as a bare 1.0 message.  Returns 0 and a new reference to the inner object
 * in *ret_inner, or -EINVAL (malformed, not an object, oslo.message not a
 * string, inner not an object, too deep, bad UTF-8), -EPROTONOSUPPORT
 * (envelope major != 2), -E2BIG (body > RPC_MSG_MAX_BYTES), -ENOMEM.
 */
int rpc_envelope_decode(const void *body, size_t len, json_t **ret_inner, struct rpc_err *reterr);

/*
 * Encodes @inner (borrowed) as a compact, ASCII-only 2.0 envelope.  Returns a
 * malloc'd NUL-terminated text the caller frees, its length (without the NUL)
 * in *ret_len when @ret_len is non-NULL; NULL means out of memory.
 */
char *rpc_envelope_encode(json_t *inner, size_t *ret_len);

/* One validated inbound RPC request (cast or call).  Opaque. */
typedef struct rpc_msg rpc_msg;

/*
 * Validates an inner request and wraps it.  @inner is STOLEN, even on
 * failure.  Checks: "method" non-empty string; "args" object (required);
 * "version" "M.m" (absent -> "1.0"); "namespace" string, null or absent;
 * "_msg_id" non-empty string makes it a call, which then needs a "_reply_q"
 * string; "_timeout" number >= 0 or null; "_unique_id" string or absent.
 * Each "_context_<k>" lands in the context object under <k>.  Returns 0 and
 * the new message in *ret_msg, -EINVAL with the offending field named in
 * @reterr (followed by " (request_id <id>)" when the message carried a
 * printable one), or -ENOMEM.
 *
 * To keep the request id for your own logging on failure, peek first while
 * you still own a reference:
 *	json_incref(inner); r = rpc_msg_from_inner(inner, &msg, &err);
 *	if (r < 0) log(..., rpc_msg_peek_request_id(inner)); json_decref(inner);
 */
int rpc_msg_from_inner(json_t *inner, rpc_msg **ret_msg, struct rpc_err *reterr);

/* rpc_envelope_decode() then rpc_msg_from_inner(); same errors. */
int rpc_msg_parse(const void *body, size_t len, rpc_msg **ret_msg, struct rpc_err *reterr);

/* Borrowed "_context_request_id" string of @inner (any json_t or NULL), or
 * NULL.  Never fails. */
const char *rpc_msg_peek_request_id(json_t *inner);

/* NULL-safe; returns NULL. */
rpc_msg *rpc_msg_free(rpc_msg *msg);

/* Getters.  Everything returned is borrowed and valid while @msg lives. */
const char *rpc_msg_method(const rpc_msg *msg);
/* Never NULL: "1.0" when the message had no version. */
const char *rpc_msg_version(const rpc_msg *msg);
/* NULL when absent or null. */
const char *rpc_msg_namespace(const rpc_msg *msg);
/* The kwargs object. */
json_t *rpc_msg_args(const rpc_msg *msg);
/* Object of the context, keys without the "_context_" prefix (may be empty). */
json_t *rpc_msg_context(const rpc_msg *msg);
/* Context request_id when it is a string, else NULL. */
const char *rpc_msg_request_id(const rpc_msg *msg);
/* NULL for casts. */
const char *rpc_msg_msg_id(const rpc_msg *msg);
/* NULL for casts. */
const char *rpc_msg_reply_q(const rpc_msg *msg);
/* NULL when absent. */
const char *rpc_msg_unique_id(const rpc_msg *msg);
/* Call-monitor timeout in seconds; 0 when null or absent (no heartbeats). */
double rpc_msg_timeout(const rpc_msg *msg);
bool rpc_msg_is_call(const rpc_msg *msg);
/* The whole validated inner message (borrowed). */
json_t *rpc_msg_inner(const rpc_msg *msg);

#endif /* RPC_MSG_H */
