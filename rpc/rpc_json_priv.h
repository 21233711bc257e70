/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_json_priv.h: the fast JSON reader behind rpc_json_parse() and the
 * fast envelope writer behind rpc_envelope_encode() (rpc_json_fast.c), for
 * rpc_msg.c and its tests only.
 *
 * Pure: no globals, never logs; any thread.
 */
#ifndef RPC_JSON_PRIV_H
#define RPC_JSON_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/*
 * Reads the one JSON document of @len bytes at @buf into a new reference,
 * the same tree json_loadb(buf, len, JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY) builds, or returns NULL when it declines: on anything
 * jansson might refuse (syntax, invalid UTF-8, \u0000, a duplicate key,
 * arrays and objects nested deeper than @max_depth), on integers of more
 * than 18 digits and reals strtod(3) cannot take whole (another locale's
 * decimal point) or exactly (under- or overflow), and when out of memory.  NULL says
 * nothing about the text: ask jansson.
 */
json_t *rpc_json_fast_parse(const void *buf, size_t len, size_t max_depth);

/* The two strings of an oslo 2.0 envelope: each is either inside the
 * text given (its _buf NULL) or decoded into its _buf, which the caller
 * frees.  Neither is NUL-terminated. */
struct rpc_envelope_parts {
	const char *version;
	size_t version_len;
	unsigned char *version_buf;
	const char *message;
	size_t message_len;
	unsigned char *message_buf;
};

/*
 * Splits the envelope at @buf without building its tree: only when the text
 * is one object of exactly the two members "oslo.version" and
 * "oslo.message", each once, in either order, both strings that the fast
 * reader takes (rpc_json_fast_parse's rules).  Returns false to decline,
 * with nothing to free: anything else is the general path's to judge.
 */
bool rpc_envelope_fast_split(const void *buf, size_t len, struct rpc_envelope_parts *ret);

/* Nesting the writer follows before it declines (jansson's parser limit). */
#define RPC_JSON_WRITE_MAX_DEPTH 2048

/*
 * The 2.0 envelope of @inner (borrowed) in one pass: byte for byte what
 * rpc_envelope_encode() writes through jansson (rpc_json_dumps() of @inner,
 * compact, then that text as the "oslo.message" string).  Returns malloc'd
 * NUL-terminated text and its length in *ret_len (when not NULL), or NULL
 * when it declines: @inner holds a real (jansson formats those), a string
 * that is not UTF-8, nesting deeper than RPC_JSON_WRITE_MAX_DEPTH, or
 * memory ran out.
 */
char *rpc_envelope_fast(json_t *inner, size_t *ret_len);

#endif
