/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_utf8.c - wk_utf8_prefix(): short texts are whole, a cut never
 * splits a 2-, 3- or 4-byte character, and the prefix of valid UTF-8 is
 * valid UTF-8 (jansson accepts it) at every cut position.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "wk_utf8.h"

Test(wk_utf8, short_text_is_whole)
{
	cr_assert_eq(wk_utf8_prefix("", 48), 0);
	cr_assert_eq(wk_utf8_prefix("abc", 3), 3);
	cr_assert_eq(wk_utf8_prefix("abc", 48), 3);
	cr_assert_eq(wk_utf8_prefix("abcd", 3), 3);
	cr_assert_eq(wk_utf8_prefix("abc", 0), 0);
}

Test(wk_utf8, cut_moves_back_to_the_start_of_a_split_character)
{
	/* "a" then é (2 bytes), € (3 bytes), 😀 (4 bytes) */
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";

	cr_assert_eq(wk_utf8_prefix(s, 1), 1);
	cr_assert_eq(wk_utf8_prefix(s, 2), 1, "inside é");
	cr_assert_eq(wk_utf8_prefix(s, 3), 3);
	cr_assert_eq(wk_utf8_prefix(s, 4), 3, "inside €");
	cr_assert_eq(wk_utf8_prefix(s, 5), 3, "inside €");
	cr_assert_eq(wk_utf8_prefix(s, 6), 6);
	cr_assert_eq(wk_utf8_prefix(s, 7), 6, "inside the emoji");
	cr_assert_eq(wk_utf8_prefix(s, 9), 6, "inside the emoji");
	cr_assert_eq(wk_utf8_prefix(s, 10), 10);
}

Test(wk_utf8, every_prefix_of_valid_text_is_valid)
{
	const char *s = "x\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9y";
	char buf[64];

	for (size_t max = 0; max <= strlen(s); max++) {
		size_t n = wk_utf8_prefix(s, max);
		json_t *j;

		cr_assert_leq(n, max);
		cr_assert_geq(n + 3, max, "cut %zu bytes short of %zu", max - n, max);
		memcpy(buf, s, n);
		buf[n] = '\0';
		j = json_string(buf);
		cr_assert_not_null(j, "prefix of %zu bytes (max %zu) is not UTF-8", n, max);
		json_decref(j);
	}
}

Test(wk_utf8, invalid_input_is_never_cut_past_max)
{
	/* Continuation bytes with no lead byte. */
	cr_assert_eq(wk_utf8_prefix("ab\x80\x80\x80\x80\x80", 5), 5);
}
