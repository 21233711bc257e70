/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_reply: oslo RPC replies and failures in both directions (building the
 * replies we send to calls, parsing the replies to calls we make), and the
 * inner request message oslo's RPCClient sends.  Pure: jansson only, no
 * I/O, no globals, never logs.  Any thread; a json_t stays on one thread.
 */
#ifndef RPC_REPLY_H
#define RPC_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rpc_err.h"

/* A reply we received, as pointers BORROWED from the inner message. */
struct rpc_reply_in {
	const char *msg_id;  /* "_msg_id", never NULL after a successful parse */
	json_t *result;      /* "result"; NULL when the key is absent */
	const char *failure; /* oslo failure JSON text, NULL when null or absent */
	bool ending;         /* false when absent or null (heartbeat, pre-Newton first half) */
};

/*
 * Reads a received reply's inner object (borrowed; the pointers in *ret live
 * as long as @inner).  Requires a "_msg_id" string; "failure" must be a
 * string, null or absent; "ending" a boolean, null or absent.  Reports what
 * is there, so heartbeats, one-message replies and the pre-Newton pair
 * (result with ending false, then {ending: true}) all parse.  Returns 0 or
 * -EINVAL.
 */
int rpc_reply_parse(json_t *inner, struct rpc_reply_in *ret, struct rpc_err *reterr);

/*
 * Parses an oslo failure text {"class", "module", "message", ...}.  "class"
 * and "module" must be strings; "message" a string (or absent -> "").  Each
 * non-NULL ret_* receives a malloc'd copy the caller frees; outputs are
 * written only on success.  Returns 0, -EINVAL or -ENOMEM.
 */
int rpc_failure_parse(const char *failure, char **ret_class, char **ret_module, char **ret_message);

/*
 * New inner reply {"result", "failure", "ending", "_msg_id", "_unique_id"}
 * with a fresh uuid4-hex _unique_id.  @msg_id is required (copied);
 * @result is STOLEN (NULL -> null); @failure is oslo failure JSON text
 * (copied) or NULL -> null.  A heartbeat is (msg_id, NULL, NULL, false).
 * Returns a new reference, NULL on ENOMEM (or @msg_id NULL).
 */
json_t *rpc_reply_build(const char *msg_id, json_t *result, const char *failure, bool ending);

/*
 * oslo failure text, serialized as oslo does (json.dumps: key order class,
 * module, message, tb, args, kwargs; ", "/": " separators; ASCII-only):
 * tb is a Python-style list of traceback lines ending in
 * "<module>.<class>: <message>\n", args is [message], kwargs is @kwargs
 * (STOLEN; must be an object, NULL -> {}).  A @message that is not valid
 * UTF-8 goes out with its non-ASCII bytes as '?'.  Returns malloc'd text the
 * caller frees, NULL on ENOMEM or a non-object @kwargs.
 */
char *rpc_failure_build(const char *cls, const char *module, const char *message, json_t *kwargs);

/* oslo_messaging.rpc.dispatcher.NoSuchMethod for @method: message
 * "Endpoint does not support RPC method <m>".  Caller frees; NULL on ENOMEM. */
char *rpc_failure_no_such_method(const char *method);

/* oslo_messaging.rpc.dispatcher.UnsupportedVersion: "Endpoint does not
 * support RPC version <v>. Attempted method: <m>" (no suffix when @method is
 * NULL or empty).  Caller frees; NULL on ENOMEM. */
char *rpc_failure_unsupported_version(const char *version, const char *method);

/*
 * Outgoing inner request as oslo's RPCClient builds it: "method", "args"
 * (STOLEN; NULL -> {}), "version" (omitted when NULL), and only for a call
 * (@msg_id non-NULL) "_msg_id", "_reply_q" and "_timeout" (a number, integral
 * values as integers, or null when @timeout <= 0), then a fresh "_unique_id"
 * and every key of @context (BORROWED, may be NULL) as "_context_<key>".
 * Returns a new reference, NULL on ENOMEM.
 */
json_t *rpc_request_build(const char *method, json_t *args, const char *version, json_t *context,
    const char *msg_id, const char *reply_q, double timeout);

/*
 * Where to answer a call that rpc_envelope_decode() or rpc_msg_from_inner()
 * refused (@len bytes at @body, the AMQP body).  The inner message is the
 * "oslo.message" text of a 2.0 envelope that parses, else the body itself.
 * Its top level is read by an iterative scanner that needs no nesting limit
 * and skips string contents unread, so deep nesting, invalid UTF-8 or a
 * lone surrogate inside the arguments do not hide the reply address.  The
 * text must be one object with terminated strings and matching brackets.
 * Only top-level "_msg_id", "_reply_q" and "_context_request_id" values that
 * are plain printable ASCII (no escapes, 1..255 bytes) are taken.  Returns 0
 * with malloc'd *ret_msg_id and *ret_reply_q for a call, both NULL when the
 * pair is incomplete (a cast: nowhere to answer), and, when @ret_request_id
 * is non-NULL, the request id or NULL; -EINVAL when the text cannot be
 * scanned, -ENOMEM (outputs untouched on failure).
 */
int rpc_reply_peek_target(
    const void *body, size_t len, char **ret_msg_id, char **ret_reply_q, char **ret_request_id);

#endif /* RPC_REPLY_H */
