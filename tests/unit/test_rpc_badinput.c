/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hostile and broken inbound bodies: each is refused with the specific
 * -errno, and the error text (what the worker logs) names what was wrong
 * (the field, or which of the two JSON texts of an envelope, and where).
 * test_rpc_msg.c covers the return codes of the common cases; this file
 * pins the texts and the edge cases around them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rpc_msg.h"

/* Expects @body (@len bytes) to be refused with @code and a text holding
 * every one of the NULL-terminated @needles. */
static void
expect_refused(const char *body, size_t len, int code, const char *const *needles)
{
	struct rpc_err err = {{0}};
	rpc_msg *m = NULL;
	int r;

	r = rpc_msg_parse(body, len, &m, &err);
	cr_assert_eq(r, code, "expected %d, got %d (%s) for %.120s", code, r, err.msg, body);
	cr_assert_null(m);
	for (; *needles != NULL; needles++)
		cr_assert_not_null(strstr(err.msg, *needles), "\"%s\" not in \"%s\" for %.120s",
		    *needles, err.msg, body);
}

#define REFUSED(body, code, ...) \
	expect_refused(body, sizeof(body) - 1, code, (const char *const[]){__VA_ARGS__, NULL})

/* An envelope around @inner_text, escaped by jansson as a sender would. */
static char *
envelope_of(const char *inner_text, size_t len)
{
	json_t *env =
	    json_pack("{s:s, s:s#}", "oslo.version", "2.0", "oslo.message", inner_text, (int)len);
	char *text;

	cr_assert_not_null(env);
	text = json_dumps(env, JSON_COMPACT);
	cr_assert_not_null(text);
	json_decref(env);
	return text;
}

static rpc_msg *
parse_ok(const char *body)
{
	struct rpc_err err = {{0}};
	rpc_msg *m = NULL;

	cr_assert_eq(rpc_msg_parse(body, strlen(body), &m, &err), 0, "%s: %s", body, err.msg);
	cr_assert_not_null(m);
	return m;
}

Test(rpc_badinput, malformed_json_says_where)
{
	REFUSED("{\"method\":", -EINVAL, "malformed JSON", "line 1", "column 10");
	REFUSED("{\"method\":\"m\",\"args\":{}", -EINVAL, "malformed JSON", "column");
	REFUSED("{\"method\":\"m\",\"args\":{},}", -EINVAL, "malformed JSON");
	REFUSED("{'method':'m','args':{}}", -EINVAL, "malformed JSON", "column 2");
	REFUSED("{\"method\":\"m\",\n\"args\":{\n\"x\":tru}}", -EINVAL, "line 3");
	REFUSED("{\"method\":\"m\",\"args\":{},\"method\":\"n\"}", -EINVAL, "duplicate");
	REFUSED("", -EINVAL, "malformed JSON");
}

Test(rpc_badinput, malformed_inner_text_names_oslo_message)
{
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"not json\"}", -EINVAL, "oslo.message",
	    "malformed JSON", "invalid token");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"{\\\"method\\\":\"}", -EINVAL,
	    "oslo.message", "malformed JSON");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"\"}", -EINVAL, "oslo.message");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":"
	        "\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{},\\\"args\\\":{}}\"}",
	    -EINVAL, "oslo.message", "duplicate");
	/* the outer text is the one named when it is the broken one */
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"{}\"", -EINVAL, "malformed JSON");
}

Test(rpc_badinput, non_envelope_json)
{
	REFUSED("[]", -EINVAL, "not a JSON object");
	REFUSED("3.5", -EINVAL, "not a JSON object");
	REFUSED("true", -EINVAL, "not a JSON object");
	REFUSED("\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{}}\"", -EINVAL, "not a JSON object");
	/* half an envelope is a bare 1.0 message (as oslo reads it), so the
	 * request fields are what is missing */
	REFUSED("{\"oslo.version\":\"2.0\"}", -EINVAL, "\"method\"");
	REFUSED("{\"oslo.message\":\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{}}\"}", -EINVAL,
	    "\"method\"");
	REFUSED("{}", -EINVAL, "\"method\"");
	/* a notification is not a request */
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"{\\\"event_type\\\":\\\"x\\\","
	        "\\\"payload\\\":{},\\\"priority\\\":\\\"INFO\\\"}\"}",
	    -EINVAL, "\"method\"");
}

Test(rpc_badinput, oslo_message_of_the_wrong_type)
{
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":7}", -EINVAL, "oslo.message",
	    "not a string");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":true}", -EINVAL, "oslo.message",
	    "not a string");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":[\"{}\"]}", -EINVAL, "oslo.message",
	    "not a string");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":{\"method\":\"m\",\"args\":{}}}",
	    -EINVAL, "oslo.message", "not a string");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"7\"}", -EINVAL, "oslo.message",
	    "not a JSON object");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"null\"}", -EINVAL, "oslo.message",
	    "not a JSON object");
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"\\\"{}\\\"\"}", -EINVAL,
	    "oslo.message", "not a JSON object");
	REFUSED("{\"oslo.version\":2.0,\"oslo.message\":\"{}\"}", -EINVAL, "oslo.version",
	    "not a string");
	REFUSED("{\"oslo.version\":\"\",\"oslo.message\":\"{}\"}", -EINVAL, "oslo.version");
	REFUSED("{\"oslo.version\":\"2.\",\"oslo.message\":\"{}\"}", -EINVAL, "oslo.version");
	REFUSED("{\"oslo.version\":\"2.0 \",\"oslo.message\":\"{}\"}", -EINVAL, "oslo.version");
	REFUSED("{\"oslo.version\":\"99999999999.0\",\"oslo.message\":\"{}\"}", -EINVAL,
	    "oslo.version");
	REFUSED("{\"oslo.version\":\"12.0\",\"oslo.message\":\"{}\"}", -EPROTONOSUPPORT,
	    "envelope version 12.0");
}

Test(rpc_badinput, wrong_types_name_the_field)
{
	REFUSED("{\"method\":null,\"args\":{}}", -EINVAL, "\"method\"");
	REFUSED("{\"method\":[\"m\"],\"args\":{}}", -EINVAL, "\"method\"");
	REFUSED("{\"method\":{},\"args\":{}}", -EINVAL, "\"method\"");
	REFUSED("{\"method\":true,\"args\":{}}", -EINVAL, "\"method\"");
	REFUSED("{\"method\":\"m\",\"args\":\"{}\"}", -EINVAL, "\"args\"", "not an object");
	REFUSED("{\"method\":\"m\",\"args\":[{}]}", -EINVAL, "\"args\"", "not an object");
	REFUSED("{\"method\":\"m\",\"args\":0}", -EINVAL, "\"args\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"version\":6}", -EINVAL, "\"version\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"version\":[6,1]}", -EINVAL, "\"version\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"version\":\"\"}", -EINVAL, "\"version\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"version\":\" 6.1\"}", -EINVAL, "\"version\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"version\":\"-6.1\"}", -EINVAL, "\"version\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"namespace\":[]}", -EINVAL, "\"namespace\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"namespace\":false}", -EINVAL, "\"namespace\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_unique_id\":null}", -EINVAL, "\"_unique_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_unique_id\":{}}", -EINVAL, "\"_unique_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_unique_id\":1.5}", -EINVAL, "\"_unique_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"\",\"_reply_q\":\"r\"}", -EINVAL,
	    "\"_msg_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":[\"x\"],\"_reply_q\":\"r\"}", -EINVAL,
	    "\"_msg_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":false,\"_reply_q\":\"r\"}", -EINVAL,
	    "\"_msg_id\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"\"}", -EINVAL,
	    "\"_reply_q\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\","
	        "\"_timeout\":true}",
	    -EINVAL, "\"_timeout\"");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\","
	        "\"_timeout\":-0.5}",
	    -EINVAL, "\"_timeout\"");
}

Test(rpc_badinput, field_errors_inside_an_envelope_carry_the_request_id)
{
	char *body = envelope_of("{\"method\":\"m\",\"args\":{},\"_unique_id\":7,"
	                         "\"_context_request_id\":\"req-badtype\"}",
	    strlen("{\"method\":\"m\",\"args\":{},\"_unique_id\":7,"
	           "\"_context_request_id\":\"req-badtype\"}"));

	expect_refused(body, strlen(body), -EINVAL,
	    (const char *const[]){"\"_unique_id\"", "(request_id req-badtype)", NULL});
	free(body);

	/* a request id that is not printable is left out rather than logged */
	body = envelope_of("{\"method\":\"m\",\"_context_request_id\":\"req\\nforged\"}",
	    strlen("{\"method\":\"m\",\"_context_request_id\":\"req\\nforged\"}"));
	expect_refused(body, strlen(body), -EINVAL, (const char *const[]){"\"args\"", NULL});
	{
		struct rpc_err err = {{0}};
		rpc_msg *m = NULL;

		rpc_msg_parse(body, strlen(body), &m, &err);
		cr_assert_null(strstr(err.msg, "forged"), "%s", err.msg);
		cr_assert_null(strchr(err.msg, '\n'));
	}
	free(body);
}

Test(rpc_badinput, missing_args)
{
	REFUSED("{\"method\":\"live_migration\"}", -EINVAL, "\"args\"", "missing");
	REFUSED("{\"method\":\"live_migration\",\"arg\":{}}", -EINVAL, "\"args\"");
	REFUSED("{\"method\":\"m\",\"args\":null,\"version\":\"6.0\"}", -EINVAL, "\"args\"");
	REFUSED(
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":"
	    "\"{\\\"method\\\":\\\"m\\\",\\\"_msg_id\\\":\\\"x\\\",\\\"_reply_q\\\":\\\"r\\\"}\"}",
	    -EINVAL, "\"args\"");
}

Test(rpc_badinput, huge_bodies)
{
	const size_t limit = RPC_MSG_MAX_BYTES;
	const char head[] = "{\"oslo.version\":\"2.0\",\"oslo.message\":\"{\\\"method\\\":"
	                    "\\\"m\\\",\\\"args\\\":{\\\"blob\\\":\\\"";
	const char tail[] = "\\\"}}\"}";
	char limit_text[32];
	char *body;
	rpc_msg *m;
	size_t len;

	/* an envelope one byte over the limit: refused before parsing, says so */
	len = limit + 1;
	body = malloc(len);
	cr_assert_not_null(body);
	memcpy(body, head, sizeof(head) - 1);
	memset(body + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - (sizeof(tail) - 1));
	memcpy(body + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	snprintf(limit_text, sizeof(limit_text), "%zu", limit);
	expect_refused(body, len, -E2BIG, (const char *const[]){"exceeds", limit_text, NULL});
	{
		/* also refused without writing anything when no detail is wanted */
		json_t *inner = NULL;

		cr_assert_eq(rpc_envelope_decode(body, len, &inner, NULL), -E2BIG);
		cr_assert_null(inner);
	}

	/* the same envelope exactly at the limit is a valid request */
	memcpy(body + len - 1 - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	m = NULL;
	cr_assert_eq(rpc_msg_parse(body, len - 1, &m, NULL), 0);
	cr_assert_eq(json_string_length(json_object_get(rpc_msg_args(m), "blob")),
	    limit - (sizeof(head) - 1) - (sizeof(tail) - 1));
	rpc_msg_free(m);
	free(body);

	/* a huge length with a short buffer is never read past: the length is
	 * checked first */
	expect_refused("{}", SIZE_MAX, -E2BIG, (const char *const[]){"exceeds", NULL});
}

Test(rpc_badinput, invalid_utf8)
{
	/* UTF-16 surrogate encoded in UTF-8, in a key */
	REFUSED(
	    "{\"method\":\"m\",\"args\":{\"\xed\xa0\x80\":1}}", -EINVAL, "malformed JSON", "0xed");
	/* beyond U+10FFFF */
	REFUSED("{\"method\":\"m\",\"args\":{\"a\":\"\xf4\x90\x80\x80\"}}", -EINVAL, "0xf4");
	/* truncated multi-byte sequence at the end of the body */
	REFUSED("{\"method\":\"m\",\"args\":{\"a\":\"\xe2\x82", -EINVAL, "malformed JSON");
	/* continuation byte with no lead */
	REFUSED("{\"method\":\"\x80\",\"args\":{}}", -EINVAL, "0x80");
	/* a lone low surrogate escaped in the inner text */
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":"
	        "\"{\\\"method\\\":\\\"\\\\udc00\\\",\\\"args\\\":{}}\"}",
	    -EINVAL, "oslo.message", "malformed JSON");
	/* a high surrogate followed by something else than a low one */
	REFUSED("{\"method\":\"\\ud83d\\u0041\",\"args\":{}}", -EINVAL, "malformed JSON");
}

Test(rpc_badinput, nul_bytes)
{
	REFUSED("{\"method\":\"m\0\",\"args\":{}}", -EINVAL, "malformed JSON", "column 12");
	REFUSED("\0{\"method\":\"m\",\"args\":{}}", -EINVAL, "malformed JSON");
	REFUSED("{\"method\":\"m\",\"args\":{\"a\\u0000\":1}}", -EINVAL, "NUL");
	REFUSED("{\"method\":\"m\",\"args\":{\"a\":\"x\\u0000y\"}}", -EINVAL, "malformed JSON");
	/* escaped through the envelope, so only the inner text holds it */
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":"
	        "\"{\\\"method\\\":\\\"m\\\\u0000\\\",\\\"args\\\":{}}\"}",
	    -EINVAL, "oslo.message");
	/* an inner text cut short by a NUL in the envelope string */
	REFUSED("{\"oslo.version\":\"2.0\",\"oslo.message\":\"{}\\u0000{}\"}", -EINVAL,
	    "malformed JSON");
}

static char *
repeat(const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(ul * n + tl + 1);
	size_t i;

	cr_assert_not_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + n * ul, tail, tl + 1);
	return s;
}

Test(rpc_badinput, deep_nesting)
{
	struct rpc_err err = {{0}};
	json_t *j = NULL;
	char *s;
	char *body;

	/* 100000 objects deep, each with a key: refused by the guard, named */
	s = repeat("{\"a\":", 100000, "1");
	expect_refused(s, strlen(s), -EINVAL, (const char *const[]){"nested deeper", "64", NULL});
	free(s);

	/* 100000 '[' inside the inner text */
	s = repeat("[", 100000, "");
	body = envelope_of(s, strlen(s));
	expect_refused(body, strlen(body), -EINVAL,
	    (const char *const[]){"oslo.message", "nested deeper", NULL});
	free(body);
	free(s);

	/* escaped quotes and backslashes in strings do not end them early: the
	 * brackets after them are string content, not nesting */
	s = repeat("\"\\\\\\\"[{\",", 10000, "1]}}");
	cr_assert_gt(asprintf(&body, "{\"method\":\"m\",\"args\":{\"a\":[%s", s), 0);
	cr_assert_eq(rpc_envelope_decode(body, strlen(body), &j, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "args"), "a")), 10001);
	json_decref(j);
	free(body);
	free(s);

	/* exactly at the limit inside the envelope: the inner text counts on its
	 * own (the envelope's object does not add a level) */
	s = repeat("[", RPC_MSG_MAX_DEPTH - 2, "");
	{
		char *close = repeat("]", RPC_MSG_MAX_DEPTH - 2, "");
		char *inner;
		rpc_msg *m;

		cr_assert_gt(
		    asprintf(&inner, "{\"method\":\"m\",\"args\":{\"a\":%s%s}}", s, close), 0);
		body = envelope_of(inner, strlen(inner));
		m = parse_ok(body);
		rpc_msg_free(m);
		free(body);
		free(inner);
		free(close);
	}
	free(s);
}

Test(rpc_badinput, numbers_out_of_range)
{
	REFUSED(
	    "{\"method\":\"m\",\"args\":{\"x\":99999999999999999999}}", -EINVAL, "too big integer");
	REFUSED("{\"method\":\"m\",\"args\":{\"x\":-9223372036854775809}}", -EINVAL,
	    "too big negative integer");
	REFUSED("{\"method\":\"m\",\"args\":{\"x\":1e400}}", -EINVAL, "overflow");
	REFUSED("{\"method\":\"m\",\"args\":{\"x\":-1e400}}", -EINVAL, "overflow");
	REFUSED("{\"method\":\"m\",\"args\":{\"x\":NaN}}", -EINVAL, "malformed JSON");
	REFUSED("{\"method\":\"m\",\"args\":{\"x\":Infinity}}", -EINVAL, "malformed JSON");
	REFUSED("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\","
	        "\"_timeout\":1e999}",
	    -EINVAL, "overflow");
	REFUSED(
	    "{\"method\":\"m\",\"args\":{},\"version\":\"1234567890.0\"}", -EINVAL, "\"version\"");
	REFUSED(
	    "{\"method\":\"m\",\"args\":{},\"version\":\"1.1234567890\"}", -EINVAL, "\"version\"");
}

Test(rpc_badinput, numbers_at_the_edges_are_kept)
{
	rpc_msg *m;
	json_t *args;

	m = parse_ok("{\"method\":\"m\",\"args\":{\"max\":9223372036854775807,"
	             "\"min\":-9223372036854775808,\"tiny\":1e-400,\"big\":1.7976931348623157e308},"
	             "\"_msg_id\":\"x\",\"_reply_q\":\"r\",\"_timeout\":-0.0}");
	args = rpc_msg_args(m);
	cr_assert_eq(json_integer_value(json_object_get(args, "max")), INT64_MAX);
	cr_assert_eq(json_integer_value(json_object_get(args, "min")), INT64_MIN);
	cr_assert_eq(json_real_value(json_object_get(args, "tiny")), 0.0);
	cr_assert_eq(json_real_value(json_object_get(args, "big")), 1.7976931348623157e308);
	cr_assert_eq(rpc_msg_timeout(m), 0.0);
	rpc_msg_free(m);

	m = parse_ok("{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\","
	             "\"_timeout\":9223372036854775807,\"version\":\"999999999.999999999\"}");
	cr_assert_eq(rpc_msg_timeout(m), 9223372036854775807.0);
	cr_assert_str_eq(rpc_msg_version(m), "999999999.999999999");
	rpc_msg_free(m);
}

Test(rpc_badinput, error_texts_are_printable_ascii)
{
	static const char *const bodies[] = {
	    "{\"method\":\"m\",\"args\":{}\x1b[2J}",
	    "{\"method\":\"m\",\"args\":{\"a\":1\n\x01}}",
	    "{\"method\":\"\xc3\xa9\xc3\xa9\xff\",\"args\":{}}",
	    "{\"method\":\"\xc3\xa9\x7f\x01\",\"args\":{}}",
	};
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct rpc_err err = {{0}};
		rpc_msg *m = NULL;
		const unsigned char *p;

		cr_assert_eq(rpc_msg_parse(bodies[i], strlen(bodies[i]), &m, &err), -EINVAL);
		cr_assert_not_null(strstr(err.msg, "malformed JSON"), "%s", err.msg);
		for (p = (const unsigned char *)err.msg; *p != '\0'; p++)
			cr_assert(*p >= 0x20 && *p < 0x7f, "case %zu: byte 0x%02x in \"%s\"", i, *p,
			    err.msg);
	}

	/* the sender's bytes near the error are quoted escaped, not dropped */
	{
		static const char body[] = "{\"a\":\"\xc3\xa9\x01\"}";
		struct rpc_err err = {{0}};
		rpc_msg *m = NULL;

		REFUSED("{\"method\":\"m\",\"args\":{}\x1b}", -EINVAL, "\\x1b");
		cr_assert_eq(rpc_msg_parse(body, sizeof(body) - 1, &m, &err), -EINVAL);
		cr_assert_not_null(strstr(err.msg, "\\xc3\\xa9"), "%s", err.msg);
	}
}
