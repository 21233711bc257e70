/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_json_priv.h: the fast JSON reader behind rpc_json_parse()
 * (rpc_json_fast.c), for rpc_msg.c and its tests only.
 *
 * Pure: no globals, never logs; any thread.
 */
#ifndef RPC_JSON_PRIV_H
#define RPC_JSON_PRIV_H

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

#endif
