/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_uuid: uuid4 from getrandom(2), retried until 16 bytes arrive. */
#include <sys/random.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rpc_uuid.h"

static void
uuid4_bytes(uint8_t b[16])
{
	size_t got = 0;

	while (got < 16) {
		ssize_t n = getrandom(b + got, 16 - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
}

void
rpc_uuid4_hex(char out[RPC_UUID_HEX_LEN])
{
	uint8_t b[16];

	uuid4_bytes(b);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
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
		snprintf(p, 3, "%02x", b[i]);
		p += 2;
	}
}
