/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_uuid: uuid4 from getrandom(2), retried until the bytes arrive.
 * Every reply carries a fresh _unique_id, so the bytes come from a small
 * per-thread pool, refilled 16 uuids at a time, instead of one getrandom(2)
 * per uuid.  A forked child starts with an empty pool (pthread_atfork), so
 * it never repeats its parent's uuids.
 */
#include "rpc_uuid.h"

#include <sys/random.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define POOL_BYTES 256

struct pool {
	uint8_t b[POOL_BYTES];
	size_t left; /* unused bytes at the end of b */
};

static _Thread_local struct pool pool;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
forget_pool(void)
{
	explicit_bzero(&pool, sizeof(pool));
}

static void
register_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, forget_pool);
}

static void
fill(uint8_t *b, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(b + got, len - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
}

static void
uuid4_bytes(uint8_t b[16])
{
	(void)pthread_once(&atfork_once, register_atfork);
	if (pool.left < 16) {
		fill(pool.b, sizeof(pool.b));
		pool.left = sizeof(pool.b);
	}
	memcpy(b, pool.b + sizeof(pool.b) - pool.left, 16);
	explicit_bzero(pool.b + sizeof(pool.b) - pool.left, 16);
	pool.left -= 16;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
}

static const char hex_digits[] = "0123456789abcdef";

void
rpc_uuid4_hex(char out[RPC_UUID_HEX_LEN])
{
	uint8_t b[16];

	uuid4_bytes(b);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex_digits[b[i] >> 4];
		out[2 * i + 1] = hex_digits[b[i] & 15];
	}
	out[32] = '\0';
}

void
rpc_uuid4_dashed(char out[RPC_UUID_DASHED_LEN])
{
	uint8_t b[16];
	char *p = out;

	uuid4_bytes(b);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex_digits[b[i] >> 4];
		*p++ = hex_digits[b[i] & 15];
	}
	*p = '\0';
}

int
rpc_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The grammar of libvirt's virUUIDParse (src/util/viruuid.c), so that
 * whatever libvirt resolves to one domain is one uuid here too. */
int
rpc_uuid_canonical(const char *in, char out[RPC_UUID_DASHED_LEN])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t b[16];
	const char *p = in;
	char *o = out;

	if (in == NULL)
		return -EINVAL;
	while (is_space(*p))
		p++;
	for (int i = 0; i < 16;) {
		int hi, lo;

		if (*p == '-' || *p == ' ') {
			p++;
			continue;
		}
		hi = rpc_hex_value(p[0]);
		lo = hi >= 0 ? rpc_hex_value(p[1]) : -1;
		if (lo < 0)
			return -EINVAL;
		b[i++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	while (*p != '\0')
		if (!is_space(*p++))
			return -EINVAL;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = digits[b[i] >> 4];
		*o++ = digits[b[i] & 15];
	}
	*o = '\0';
	return 0;
}
