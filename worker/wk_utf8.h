/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_utf8.h - cutting text at a UTF-8 character boundary.  Texts quoted in
 * error messages ("%.48s") reach JSON (failure replies, compute.exception
 * notifications), and jansson refuses a string that ends inside a
 * multi-byte sequence, losing the whole message.  Pure; any thread; never logs.
 */
#ifndef WK_UTF8_H
#define WK_UTF8_H

#include <stddef.h>

/*
 * Returns the length in bytes of the longest prefix of @s that is at most
 * @max bytes and does not end inside a UTF-8 sequence: print it with
 * "%.*s", (int)wk_utf8_prefix(s, max), s.  For valid UTF-8 the prefix is
 * valid UTF-8; invalid input is cut by the same rule (never past @max).
 */
size_t wk_utf8_prefix(const char *s, size_t max);

#endif /* WK_UTF8_H */
