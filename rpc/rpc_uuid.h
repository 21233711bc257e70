/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_uuid: random (version 4) UUIDs in the two spellings oslo uses:
 * 32 hex digits for _unique_id/_msg_id/queue names, dashed for message_id;
 * and the one canonical spelling of a uuid a sender wrote.
 * Thread-safe (getrandom, a per-thread pool); never logs.
 */
#ifndef RPC_UUID_H
#define RPC_UUID_H

#define RPC_UUID_HEX_LEN    33 /* 32 digits + NUL */
#define RPC_UUID_DASHED_LEN 37 /* 36 characters + NUL */

/* Writes a fresh uuid4 as 32 lower-case hex digits. */
void rpc_uuid4_hex(char out[RPC_UUID_HEX_LEN]);

/* Writes a fresh uuid4 as 8-4-4-4-12 lower-case hex. */
void rpc_uuid4_dashed(char out[RPC_UUID_DASHED_LEN]);

/*
 * Writes the canonical spelling (8-4-4-4-12 lower-case hex) of @in, a uuid
 * in any of the spellings libvirt's virUUIDParse accepts for the same
 * domain: any case, surrounding white space, '-' or ' ' anywhere between
 * two-digit pairs, exactly 32 hex digits.  Two spellings of one domain
 * therefore canonicalise to the same text.  Returns 0, or -EINVAL (@in
 * NULL or not a uuid; @out untouched).
 */
int rpc_uuid_canonical(const char *in, char out[RPC_UUID_DASHED_LEN]);

/* The value of hex digit c (either case), or -1. */
int rpc_hex_value(char c);

#endif
