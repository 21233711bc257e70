/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for rpc_json_fast (rpc_json_priv.h).  The reader: whatever it
 * accepts, jansson (json_loadb with JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY) accepts too and reads into the same tree, same types,
 * same key order; it takes every body captured from oslo and nova; it
 * declines what it must leave to jansson.  The writer: whatever envelope
 * it writes is byte for byte the one jansson's two dumps make.  Checked on
 * a table of edge cases, on every fixture body and on seeded random
 * mutations of them.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rpc_json_priv.h"
#include "rpc_msg.h"

#define FIXTURES  FERRY_SHARED_DIR "/reference/oslo-fixtures/"
#define MAX_DEPTH RPC_MSG_MAX_DEPTH

static json_t *
jansson_parse(const char *buf, size_t len)
{
	json_error_t jerr;

	return json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
}

/* Dumps with every distinction kept: types (1 vs 1.0), key order, escapes. */
static char *
dump(const json_t *j)
{
	return json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
}

/* The envelope the slow way: dump, wrap in an object, dump again. */
static char *
ref_envelope(json_t *inner)
{
	char *text = rpc_json_dumps(inner, JSON_COMPACT), *out;
	json_t *env;

	if (text == NULL)
		return NULL;
	env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);
	cr_assert_not_null(env);
	out = rpc_json_dumps(env, JSON_COMPACT);
	json_decref(env);
	free(text);
	return out;
}

/* The writer's property: it declines, or writes what jansson does.
 * Returns 1 when it wrote. */
static int
check_writer(json_t *j)
{
	size_t len = 0;
	char *fast = rpc_envelope_fast(j, &len), *ref;

	if (fast == NULL)
		return 0;
	ref = ref_envelope(j);
	cr_assert_not_null(ref, "fast writer wrote what jansson cannot: %s", fast);
	cr_assert_str_eq(fast, ref);
	cr_assert_eq(len, strlen(ref));
	free(fast);
	free(ref);
	return 1;
}

/*
 * The property: the fast reader declines, or jansson reads the same tree
 * (and the writer, given that tree, declines or agrees with jansson).
 * Returns 1 when the fast reader took the text, else 0.
 */
static int
check_same(const char *buf, size_t len)
{
	json_t *fast = rpc_json_fast_parse(buf, len, MAX_DEPTH);
	json_t *ref;
	char *a, *b;

	if (fast == NULL)
		return 0;
	ref = jansson_parse(buf, len);
	cr_assert_not_null(ref, "fast reader accepted what jansson refuses: '%.*s'", (int)len, buf);
	a = dump(fast);
	b = dump(ref);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_str_eq(a, b, "trees differ for '%.*s'", (int)len, buf);
	cr_assert(json_equal(fast, ref));
	check_writer(fast);
	free(a);
	free(b);
	json_decref(fast);
	json_decref(ref);
	return 1;
}

static void
accepts(const char *text)
{
	cr_assert_eq(check_same(text, strlen(text)), 1, "declined '%s'", text);
}

static void
declines(const char *text, size_t len)
{
	json_t *j = rpc_json_fast_parse(text, len, MAX_DEPTH);

	cr_assert_null(j, "accepted '%.*s'", (int)len, text);
}

#define DECLINES(lit) declines(lit, sizeof(lit) - 1)

Test(rpc_json_fast, accepts_what_jansson_reads_the_same)
{
	accepts("{}");
	accepts("[]");
	accepts(" \t\r\n{ \"a\" : [ 1 , -2 , 0 , -0 , true , false , null ] } \n");
	accepts("\"plain\"");
	accepts("123456789012345678");
	accepts("-123456789012345678");
	accepts("{\"\": \"\", \"a\": {\"a\": {}}}");
	accepts("\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t end\"");
	accepts("\"\\u00e9 \\u20AC \\ud83d\\ude00 \\u0001 \\u007f\"");
	accepts("\"raw UTF-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"");
	accepts("{\"k\\u00e9y\": 1, \"k\xc3\xa9y2\": 2}");
	accepts("[[[[[[[[[[]]]]]]]]]]");
	accepts("[1.5, -0.0, 0.1, 1e5, 1E+5, 2.5e-3, -1.0e10, 123456789.123456789, "
	        "1.7976931348623157e308]");
	/* The oslo call envelope, escaped text inside. */
	accepts("{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": "
	        "\\\"list_migrations\\\", "
	        "\\\"args\\\": {}, \\\"_msg_id\\\": \\\"ab\\\", \\\"_timeout\\\": null}\"}");
}

Test(rpc_json_fast, declines_what_it_leaves_to_jansson)
{
	/* Errors: jansson words them. */
	DECLINES("");
	DECLINES(" ");
	DECLINES("{");
	DECLINES("{\"a\":1,}");
	DECLINES("[1,]");
	DECLINES("[1 2]");
	DECLINES("{\"a\" 1}");
	DECLINES("{1:2}");
	DECLINES("{\"a\":1}x");
	DECLINES("{\"a\":1}{}");
	DECLINES("tru");
	DECLINES("truex");
	DECLINES("nul");
	DECLINES("01");
	DECLINES("-");
	DECLINES("- 1");
	DECLINES("+1");
	DECLINES("1.");
	DECLINES("\"unterminated");
	DECLINES("\"bad escape \\x\"");
	DECLINES("\"short \\u12\"");
	DECLINES("\"ctl \x01\"");
	DECLINES("\"tab \t\"");
	DECLINES("\"nul \\u0000\"");
	DECLINES("\"lone low \\udc00\"");
	DECLINES("\"lone high \\ud800\"");
	DECLINES("\"high then other \\ud800\\u0041\"");
	DECLINES("\"high then high \\ud800\\ud800\"");
	DECLINES("{\"a\": 1, \"a\": 2}");
	DECLINES("{\"\\u0061\": 1, \"a\": 2}");
	DECLINES("\"\xc0\xaf\"");         /* overlong '/' */
	DECLINES("\"\xe0\x80\xaf\"");     /* overlong, 3 bytes */
	DECLINES("\"\xf0\x80\x80\xaf\""); /* overlong, 4 bytes */
	DECLINES("\"\xed\xa0\x80\"");     /* a surrogate in UTF-8 */
	DECLINES("\"\xf4\x90\x80\x80\""); /* past U+10FFFF */
	DECLINES("\"\xf5\x80\x80\x80\"");
	DECLINES("\"\x80\"");
	DECLINES("\"\xc3\"");
	DECLINES("\xef\xbb\xbf{}"); /* a BOM */
	declines("[1]\0", 4);
	declines("\"a\0b\"", 5);
	DECLINES("1.e5");
	DECLINES("1e");
	DECLINES("1e+");
	DECLINES(".5");
	DECLINES("-.5");
	DECLINES("00.5");
	/* Valid, but jansson's to read. */
	DECLINES("1e400");  /* overflow: jansson refuses it */
	DECLINES("1e-400"); /* underflow */
	DECLINES("1234567890123456789");
	DECLINES("-9223372036854775808");
	DECLINES("99999999999999999999");
}

Test(rpc_json_fast, depth_limit)
{
	char text[2 * (MAX_DEPTH + 1) + 1];
	size_t n = 0;

	for (int i = 0; i < MAX_DEPTH; i++)
		text[n++] = '[';
	for (int i = 0; i < MAX_DEPTH; i++)
		text[n++] = ']';
	cr_assert_eq(check_same(text, n), 1, "declined %d levels", MAX_DEPTH);
	n = 0;
	for (int i = 0; i <= MAX_DEPTH; i++)
		text[n++] = '[';
	for (int i = 0; i <= MAX_DEPTH; i++)
		text[n++] = ']';
	declines(text, n);
}

Test(rpc_json_fast, writer_writes_what_jansson_dumps)
{
	json_t *take[] = {
	    json_pack("{s:s, s:{}, s:n, s:b, s:b, s:i, s:I, s:[]}", "method", "m", "args",
	        "_timeout", "ending", 1, "no", 0, "n", -7, "big", (json_int_t)INT64_MIN, "list"),
	    json_pack("{s:s}", "s",
	        "ctl \x01\x1f\b\f\n\r\t del \x7f q\" b\\ s/ "
	        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
	    json_pack("{s:[s, s, {s:s}, [[]]]}", "a", "\\\"", "\"\\", "\\u0041", "x\ny"),
	    json_pack("{s:s%}", "nul", "a\0b", (size_t)3),
	    json_pack("[i, {s:s}]", 1, "k\xc3\xa9y \"q\"", "v"),
	    json_object(),
	    json_array(),
	};
	json_t *decline[] = {
	    json_pack("{s:f}", "pct", 12.5),
	    json_pack("[[{s:[f]}]]", "x", 1.0),
	    json_string("top-level string"),
	    json_integer(1),
	    json_null(),
	    json_pack("{s:s%}", "bad", "\xff\xfe", (size_t)2),
	};

	json_object_setn_new(take[3], "k\0ey", 4, json_false()); /* a NUL in a key */
	for (size_t i = 0; i < sizeof(take) / sizeof(take[0]); i++) {
		cr_assert_not_null(take[i], "case %zu", i);
		cr_assert_eq(check_writer(take[i]), 1, "declined case %zu", i);
		json_decref(take[i]);
	}
	for (size_t i = 0; i < sizeof(decline) / sizeof(decline[0]); i++) {
		char *out;

		if (i == 5) { /* not UTF-8: only a *_nocheck constructor makes it */
			json_decref(decline[i]);
			decline[i] = json_object();
			json_object_set_new(decline[i], "bad", json_stringn_nocheck("\xff\xfe", 2));
		}
		cr_assert_not_null(decline[i], "case %zu", i);
		out = rpc_envelope_fast(decline[i], NULL);
		cr_assert_null(out, "wrote case %zu: %s", i, out);
		json_decref(decline[i]);
	}
}

/* Every "body_raw" of the oslo fixtures, and the text inside each envelope. */
static size_t
fixture_bodies(char ***ret)
{
	DIR *d = opendir(FIXTURES);
	struct dirent *de;
	char **bodies = NULL;
	size_t n = 0, cap = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[512];
		json_error_t jerr;
		json_t *fx, *items, *item;
		size_t i;

		if (strstr(de->d_name, ".json") == NULL)
			continue;
		snprintf(path, sizeof(path), FIXTURES "%s", de->d_name);
		fx = json_load_file(path, 0, &jerr);
		cr_assert_not_null(fx, "%s: %s", path, jerr.text);
		items = json_is_array(fx) ? json_incref(fx) : json_pack("[O]", fx);
		json_array_foreach (items, i, item) {
			const char *raw = json_string_value(json_object_get(item, "body_raw"));
			json_t *env;

			if (raw == NULL)
				continue;
			if (n + 2 > cap) {
				cap = cap ? cap * 2 : 64;
				bodies = realloc(bodies, cap * sizeof(*bodies));
				cr_assert_not_null(bodies);
			}
			bodies[n++] = strdup(raw);
			env = json_loads(raw, 0, NULL);
			if (json_is_string(json_object_get(env, "oslo.message")))
				bodies[n++] =
				    strdup(json_string_value(json_object_get(env, "oslo.message")));
			json_decref(env);
		}
		json_decref(items);
		json_decref(fx);
	}
	closedir(d);
	*ret = bodies;
	return n;
}

static bool
has_real(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_real(j))
		return true;
	json_object_foreach (j, k, v)
		if (has_real(v))
			return true;
	json_array_foreach (j, i, v)
		if (has_real(v))
			return true;
	return false;
}

Test(rpc_json_fast, takes_every_fixture_body)
{
	char **bodies;
	size_t n = fixture_bodies(&bodies), written = 0;

	cr_assert_gt(n, 20, "only %zu fixture bodies", n);
	for (size_t i = 0; i < n; i++) {
		json_t *j = rpc_json_fast_parse(bodies[i], strlen(bodies[i]), MAX_DEPTH);

		accepts(bodies[i]);
		/* Every fixture without reals, the writer takes. */
		if (!has_real(j)) {
			cr_assert_eq(check_writer(j), 1, "writer declined '%s'", bodies[i]);
			written++;
		}
		json_decref(j);
		free(bodies[i]);
	}
	free(bodies);
	cr_assert_gt(written, n / 2, "the writer took only %zu of %zu", written, n);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* One random edit of buf (len bytes, room for 32 more). */
static size_t
mutate(char *buf, size_t len)
{
	static const char *const pieces[] = {"\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0",
	    "-", "1e5", "1.5", "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u00e9",
	    "\xc3\xa9", "\xc0\xaf", "\xed\xa0\x80", "\x80", "\x01", "\x7f", "true", "null",
	    "\"a\":1,", "\\\"", "\\\\", "99999999999999999999"};
	size_t at = len ? next_rand() % (len + 1) : 0;

	switch (next_rand() % 4) {
	case 0: /* overwrite a byte */
		if (len > 0) {
			buf[at % len] = (char)(next_rand() & 0xff);
			return len;
		}
		/* fall through */
	case 1: { /* insert a piece */
		const char *p = pieces[next_rand() % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t k = strlen(p);

		memmove(buf + at + k, buf + at, len - at);
		memcpy(buf + at, p, k);
		return len + k;
	}
	case 2: /* delete a byte */
		if (at < len) {
			memmove(buf + at, buf + at + 1, len - at - 1);
			return len - 1;
		}
		return len;
	default: { /* duplicate a span: repeats keys */
		size_t k = len > 0 ? next_rand() % 16 : 0;

		if (at + k > len)
			k = len - at;
		memmove(buf + at + k, buf + at, len - at);
		return len + k;
	}
	}
}

Test(rpc_json_fast, mutations_agree_with_jansson)
{
	char **bodies;
	size_t n = fixture_bodies(&bodies), tried = 0, taken = 0;

	for (size_t i = 0; i < n; i++) {
		size_t blen = strlen(bodies[i]);
		char *buf = malloc(blen + 4 * 32 + 1);

		cr_assert_not_null(buf);
		for (int round = 0; round < 300; round++) {
			size_t len = blen;
			int edits = 1 + (int)(next_rand() % 4);

			memcpy(buf, bodies[i], blen);
			for (int e = 0; e < edits; e++)
				len = mutate(buf, len);
			taken += (size_t)check_same(buf, len);
			tried++;
		}
		free(buf);
		free(bodies[i]);
	}
	free(bodies);
	/* Edits inside strings keep many texts valid: the reader must have
	 * taken a fair share, or the property was hardly tested. */
	cr_assert_gt(taken, tried / 20, "took only %zu of %zu mutated texts", taken, tried);
}

/* rpc_envelope_fast_split on @buf: when it takes the text, jansson reads it
 * to an object of exactly the two members with the same two strings.
 * Returns whether it took it. */
static int
check_split(const char *buf, size_t len)
{
	struct rpc_envelope_parts p;
	json_t *j;

	if (!rpc_envelope_fast_split(buf, len, &p))
		return 0;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	cr_assert_not_null(j, "split a text jansson refuses: '%.*s'", (int)len, buf);
	cr_assert(json_is_object(j));
	cr_assert_eq(json_object_size(j), 2u);
	cr_assert(json_is_string(json_object_get(j, "oslo.version")));
	cr_assert(json_is_string(json_object_get(j, "oslo.message")));
	cr_assert_eq(json_string_length(json_object_get(j, "oslo.version")), p.version_len);
	cr_assert_arr_eq(
	    json_string_value(json_object_get(j, "oslo.version")), p.version, p.version_len);
	cr_assert_eq(json_string_length(json_object_get(j, "oslo.message")), p.message_len);
	cr_assert_arr_eq(
	    json_string_value(json_object_get(j, "oslo.message")), p.message, p.message_len);
	cr_assert(p.message_buf == NULL || (const char *)p.message_buf == p.message);
	json_decref(j);
	free(p.version_buf);
	free(p.message_buf);
	return 1;
}

Test(rpc_json_fast, envelope_split_agrees_with_jansson)
{
	static const char *const taken[] = {
	    "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"a\\\": 1}\"}",
	    " {\"oslo.message\":\"{}\" , \"oslo.version\":\"2.0\"} \n",
	    "{\"oslo\\u002eversion\": \"2.0\", \"oslo.message\": \"x\\u00e9\"}",
	};
	static const char *const declined[] = {
	    "{\"oslo.version\": \"2.0\"}",
	    "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\", \"x\": 1}",
	    "{\"oslo.version\": \"2.0\", \"oslo.version\": \"{}\"}",
	    "{\"oslo.version\": 2, \"oslo.message\": \"{}\"}",
	    "{\"oslo.version\": \"2.0\", \"oslo.message\": {}}",
	    "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\"} x",
	    "{\"oslo.version\": \"2.0\", \"oslo.message\": \"a\\u0000b\"}",
	    "{\"oslo.version\": \"2.0\" \"oslo.message\": \"{}\"}",
	    "[\"oslo.version\", \"oslo.message\"]",
	    "",
	};
	char **bodies;
	size_t n = fixture_bodies(&bodies), split = 0;

	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		cr_assert_eq(check_split(taken[i], strlen(taken[i])), 1, "declined '%s'", taken[i]);
	for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
		cr_assert_eq(
		    check_split(declined[i], strlen(declined[i])), 0, "took '%s'", declined[i]);
	for (size_t i = 0; i < n; i++) {
		size_t blen = strlen(bodies[i]);
		char *buf = malloc(blen + 4 * 32 + 1);

		cr_assert_not_null(buf);
		split += (size_t)check_split(bodies[i], blen);
		for (int round = 0; round < 100; round++) {
			size_t len = blen;

			memcpy(buf, bodies[i], blen);
			for (int e = 0, edits = 1 + (int)(next_rand() % 3); e < edits; e++)
				len = mutate(buf, len);
			(void)check_split(buf, len);
		}
		free(buf);
		free(bodies[i]);
	}
	free(bodies);
	cr_assert_gt(split, 0u, "no fixture body is an oslo 2.0 envelope the split takes");
}
