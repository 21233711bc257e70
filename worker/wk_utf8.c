/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_utf8: a cut at @max moves back over continuation bytes (10xxxxxx) to
 * the start of the character it would split, at most 3 bytes back.
 */
#include "wk_utf8.h"

#include <string.h>

size_t
wk_utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1), cut;

	if (n <= max)
		return n;
	/* s[max] is the first byte left out: if it continues a sequence, that
	 * sequence started at or after the last byte that does not. */
	cut = max;
	while (cut > 0 && max - cut < 3 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	return ((unsigned char)s[cut] & 0xc0) == 0x80 ? max : cut;
}
