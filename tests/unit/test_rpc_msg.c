/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for rpc_msg: the envelope codec and request validation, against the
 * real nova casts and oslo calls captured in /work/shared/reference.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rpc_msg.h"

#define FIXTURES      FERRY_SHARED_DIR "/reference/oslo-fixtures/"
#define INSTANCE_UUID "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21"

static json_t *
load_fixture(const char *name)
{
	char path[512];
	json_error_t jerr;
	json_t *j;

	snprintf(path, sizeof(path), FIXTURES "%s", name);
	j = json_load_file(path, 0, &jerr);
	cr_assert_not_null(j, "cannot load %s: %s", path, jerr.text);
	return j;
}

static int
parse_str(const char *body, rpc_msg **ret, struct rpc_err *err)
{
	return rpc_msg_parse(body, strlen(body), ret, err);
}

static rpc_msg *
parse_fixture(json_t *fx)
{
	json_t *raw = json_object_get(fx, "body_raw");
	struct rpc_err err = {{0}};
	rpc_msg *m = NULL;
	int r;

	cr_assert(json_is_string(raw));
	r = rpc_msg_parse(json_string_value(raw), json_string_length(raw), &m, &err);
	cr_assert_eq(r, 0, "parse failed: %d %s", r, err.msg);
	return m;
}

static void
check_cast(const char *fixture, const char *method)
{
	json_t *fx = load_fixture(fixture);
	json_t *dec = json_object_get(fx, "oslo.message_decoded");
	rpc_msg *m = parse_fixture(fx);
	json_t *ctx = rpc_msg_context(m);
	json_t *inst;
	const char *key;
	json_t *value;
	size_t n_ctx = 0;

	cr_assert_str_eq(rpc_msg_method(m), method);
	cr_assert_str_eq(rpc_msg_version(m), "6.0");
	cr_assert_null(rpc_msg_namespace(m));
	cr_assert_not(rpc_msg_is_call(m));
	cr_assert_null(rpc_msg_msg_id(m));
	cr_assert_null(rpc_msg_reply_q(m));
	cr_assert(rpc_msg_timeout(m) == 0);
	cr_assert_str_eq(
	    rpc_msg_unique_id(m), json_string_value(json_object_get(dec, "_unique_id")));
	cr_assert_eq(strlen(rpc_msg_unique_id(m)), 32);
	cr_assert_str_eq(
	    rpc_msg_request_id(m), json_string_value(json_object_get(dec, "_context_request_id")));
	cr_assert_eq(strncmp(rpc_msg_request_id(m), "req-", 4), 0);

	inst = json_object_get(json_object_get(rpc_msg_args(m), "instance"), "nova_object.data");
	cr_assert_str_eq(json_string_value(json_object_get(inst, "uuid")), INSTANCE_UUID);
	cr_assert(json_equal(rpc_msg_args(m), json_object_get(dec, "args")));

	json_object_foreach (dec, key, value) {
		if (strncmp(key, "_context_", 9) != 0)
			continue;
		n_ctx++;
		cr_assert(json_equal(json_object_get(ctx, key + 9), value), "context %s", key);
	}
	cr_assert_gt(n_ctx, 10);
	cr_assert_eq(json_object_size(ctx), n_ctx);
	cr_assert(json_is_string(json_object_get(ctx, "auth_token")));
	cr_assert(json_is_array(json_object_get(ctx, "roles")));
	cr_assert_null(json_object_get(ctx, "_context_user_id"));

	rpc_msg_free(m);
	json_decref(fx);
}

Test(rpc_msg, parses_nova_live_migration_cast)
{
	json_t *fx = load_fixture("cast_live_migration.json");
	rpc_msg *m = parse_fixture(fx);
	json_t *args = rpc_msg_args(m);

	check_cast("cast_live_migration.json", "live_migration");
	cr_assert(json_is_string(json_object_get(args, "dest")));
	cr_assert(json_is_boolean(json_object_get(args, "block_migration")));
	cr_assert(json_is_object(json_object_get(args, "migration")));
	cr_assert(json_is_object(json_object_get(args, "migrate_data")));
	rpc_msg_free(m);
	json_decref(fx);
}

Test(rpc_msg, parses_nova_force_complete_cast)
{
	check_cast("cast_live_migration_force_complete.json", "live_migration_force_complete");
}

Test(rpc_msg, parses_nova_abort_cast)
{
	json_t *fx = load_fixture("cast_live_migration_abort.json");
	rpc_msg *m = parse_fixture(fx);

	check_cast("cast_live_migration_abort.json", "live_migration_abort");
	cr_assert(json_is_integer(json_object_get(rpc_msg_args(m), "migration_id")));
	rpc_msg_free(m);
	json_decref(fx);
}

Test(rpc_msg, parses_call_with_null_timeout)
{
	json_t *fx = load_fixture("call_some_method_request.json");
	json_t *dec = json_object_get(fx, "oslo.message_decoded");
	rpc_msg *m = parse_fixture(fx);

	cr_assert(rpc_msg_is_call(m));
	cr_assert_str_eq(rpc_msg_method(m), "some_method");
	cr_assert_str_eq(rpc_msg_msg_id(m), json_string_value(json_object_get(dec, "_msg_id")));
	cr_assert_str_eq(rpc_msg_reply_q(m), json_string_value(json_object_get(dec, "_reply_q")));
	cr_assert_eq(strncmp(rpc_msg_reply_q(m), "reply_", 6), 0);
	cr_assert(rpc_msg_timeout(m) == 0);
	cr_assert_eq(json_integer_value(json_object_get(rpc_msg_args(m), "arg")), 1);
	rpc_msg_free(m);
	json_decref(fx);
}

Test(rpc_msg, parses_call_with_call_monitor_timeout)
{
	json_t *fx = load_fixture("call_slow_with_call_monitor_request.json");
	rpc_msg *m = parse_fixture(fx);

	cr_assert(rpc_msg_is_call(m));
	cr_assert(rpc_msg_timeout(m) == 2.0);
	rpc_msg_free(m);
	json_decref(fx);
}

Test(rpc_msg, accepts_real_timeout_and_namespace)
{
	rpc_msg *m = NULL;

	cr_assert_eq(parse_str("{\"method\":\"ping\",\"args\":{},\"version\":\"1.1\","
	                       "\"namespace\":\"baseapi\",\"_msg_id\":\"a\",\"_reply_q\":\"r\","
	                       "\"_timeout\":2.5}",
	                 &m, NULL),
	    0);
	cr_assert_str_eq(rpc_msg_namespace(m), "baseapi");
	cr_assert(rpc_msg_timeout(m) == 2.5);
	cr_assert_null(rpc_msg_unique_id(m));
	cr_assert_null(rpc_msg_request_id(m));
	cr_assert_eq(json_object_size(rpc_msg_context(m)), 0);
	rpc_msg_free(m);
}

Test(rpc_msg, accepts_bare_1_0_body)
{
	rpc_msg *m = NULL;

	cr_assert_eq(parse_str("{\"method\": \"ping\", \"args\": {\"a\": 1}, \"namespace\": null, "
	                       "\"_context_request_id\": \"req-1\"}",
	                 &m, NULL),
	    0);
	cr_assert_str_eq(rpc_msg_method(m), "ping");
	cr_assert_str_eq(rpc_msg_version(m), "1.0");
	cr_assert_null(rpc_msg_namespace(m));
	cr_assert_str_eq(rpc_msg_request_id(m), "req-1");
	rpc_msg_free(m);
}

Test(rpc_msg, accepts_envelope_minor_versions)
{
	rpc_msg *m = NULL;

	cr_assert_eq(parse_str("{\"oslo.version\":\"2.1\",\"oslo.message\":"
	                       "\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{}}\"}",
	                 &m, NULL),
	    0);
	rpc_msg_free(m);
}

Test(rpc_msg, rejects_envelope_3_0)
{
	struct rpc_err err = {{0}};
	rpc_msg *m = NULL;

	cr_assert_eq(parse_str("{\"oslo.version\":\"3.0\",\"oslo.message\":"
	                       "\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{}}\"}",
	                 &m, &err),
	    -EPROTONOSUPPORT);
	cr_assert_null(m);
	cr_assert_not_null(strstr(err.msg, "3.0"));
	cr_assert_eq(parse_str("{\"oslo.version\":\"1.0\",\"oslo.message\":\"{}\"}", &m, NULL),
	    -EPROTONOSUPPORT);
	cr_assert_eq(parse_str("{\"oslo.version\":2,\"oslo.message\":\"{}\"}", &m, NULL), -EINVAL);
	cr_assert_eq(
	    parse_str("{\"oslo.version\":\"two\",\"oslo.message\":\"{}\"}", &m, NULL), -EINVAL);
}

Test(rpc_msg, rejects_malformed_and_non_objects)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "{\"method\":}",
	    "not json",
	    "[1,2]",
	    "42",
	    "\"str\"",
	    "null",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":42}",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":{\"method\":\"m\",\"args\":{}}}",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":null}",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":\"[1]\"}",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":\"{bad\"}",
	    "{\"oslo.version\":\"2.0\",\"oslo.message\":\"\"}",
	    "{\"method\":\"m\",\"args\":{},\"method\":\"n\"}",
	    "{\"method\":\"m\",\"args\":{}} trailing",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rpc_err err = {{0}};
		rpc_msg *m = NULL;

		cr_assert_eq(parse_str(bad[i], &m, &err), -EINVAL, "case %zu: %s", i, bad[i]);
		cr_assert_null(m);
		cr_assert_neq(err.msg[0], '\0', "case %zu has no message", i);
	}
}

Test(rpc_msg, rejects_wrong_field_types)
{
	static const char *const bad[] = {
	    "{\"args\":{}}",
	    "{\"method\":42,\"args\":{}}",
	    "{\"method\":\"\",\"args\":{}}",
	    "{\"method\":\"m\"}",
	    "{\"method\":\"m\",\"args\":[]}",
	    "{\"method\":\"m\",\"args\":null}",
	    "{\"method\":\"m\",\"args\":{},\"version\":6.0}",
	    "{\"method\":\"m\",\"args\":{},\"version\":\"6\"}",
	    "{\"method\":\"m\",\"args\":{},\"version\":\"a.b\"}",
	    "{\"method\":\"m\",\"args\":{},\"version\":\"6.0.1\"}",
	    "{\"method\":\"m\",\"args\":{},\"version\":null}",
	    "{\"method\":\"m\",\"args\":{},\"namespace\":5}",
	    "{\"method\":\"m\",\"args\":{},\"_unique_id\":5}",
	    "{\"method\":\"m\",\"args\":{},\"_msg_id\":5,\"_reply_q\":\"r\"}",
	    "{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\"}",
	    "{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":7}",
	    "{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\",\"_timeout\":"
	    "\"9\"}",
	    "{\"method\":\"m\",\"args\":{},\"_msg_id\":\"x\",\"_reply_q\":\"r\",\"_timeout\":-1}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rpc_err err = {{0}};
		rpc_msg *m = NULL;

		cr_assert_eq(parse_str(bad[i], &m, &err), -EINVAL, "case %zu: %s", i, bad[i]);
		cr_assert_null(m);
		cr_assert_neq(err.msg[0], '\0');
	}
}

Test(rpc_msg, error_text_carries_request_id)
{
	struct rpc_err err = {{0}};
	rpc_msg *m = NULL;
	json_t *inner = json_pack("{s:s, s:s}", "method", "m", "_context_request_id", "req-42");

	cr_assert_str_eq(rpc_msg_peek_request_id(inner), "req-42");
	json_incref(inner);
	cr_assert_eq(rpc_msg_from_inner(inner, &m, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "args"));
	cr_assert_not_null(strstr(err.msg, "(request_id req-42)"), "%s", err.msg);
	cr_assert_str_eq(rpc_msg_peek_request_id(inner), "req-42");
	json_decref(inner);

	cr_assert_null(rpc_msg_peek_request_id(NULL));
	inner = json_pack("[i]", 1);
	cr_assert_null(rpc_msg_peek_request_id(inner));
	cr_assert_eq(rpc_msg_from_inner(inner, &m, NULL), -EINVAL);
	cr_assert_eq(rpc_msg_from_inner(NULL, &m, NULL), -EINVAL);
}

Test(rpc_msg, rejects_huge_body)
{
	size_t len = RPC_MSG_MAX_BYTES + 1;
	char *body = malloc(len);
	rpc_msg *m = NULL;
	json_t *inner = NULL;

	cr_assert_not_null(body);
	memset(body, ' ', len);
	memcpy(body, "{\"method\":\"m\",\"args\":{}}", 24);
	cr_assert_eq(rpc_msg_parse(body, len, &m, NULL), -E2BIG);
	/* exactly at the limit is fine */
	cr_assert_eq(rpc_envelope_decode(body, len - 1, &inner, NULL), 0);
	json_decref(inner);
	free(body);
}

Test(rpc_msg, rejects_invalid_utf8_and_nul)
{
	static const char bad_utf8[] = "{\"method\":\"m\xff\",\"args\":{}}";
	static const char overlong[] = "{\"method\":\"\xc0\xaf\",\"args\":{}}";
	static const char raw_nul[] = "{\"method\":\"m\",\"args\":{}}\0";
	rpc_msg *m = NULL;

	cr_assert_eq(rpc_msg_parse(bad_utf8, sizeof(bad_utf8) - 1, &m, NULL), -EINVAL);
	cr_assert_eq(rpc_msg_parse(overlong, sizeof(overlong) - 1, &m, NULL), -EINVAL);
	cr_assert_eq(rpc_msg_parse(raw_nul, sizeof(raw_nul), &m, NULL), -EINVAL);
	cr_assert_eq(parse_str("{\"method\":\"m\\u0000x\",\"args\":{}}", &m, NULL), -EINVAL);
	/* a lone surrogate, inside the double-encoded inner text */
	cr_assert_eq(parse_str("{\"oslo.version\":\"2.0\",\"oslo.message\":"
	                       "\"{\\\"method\\\":\\\"\\\\ud83d\\\",\\\"args\\\":{}}\"}",
	                 &m, NULL),
	    -EINVAL);
	cr_assert_null(m);
}

static char *
nested(size_t depth)
{
	char *s = malloc(2 * depth + 1);
	size_t i;

	cr_assert_not_null(s);
	for (i = 0; i < depth; i++) {
		s[i] = '[';
		s[2 * depth - 1 - i] = ']';
	}
	s[2 * depth] = '\0';
	return s;
}

Test(rpc_msg, rejects_deep_nesting_without_recursing)
{
	struct rpc_err err = {{0}};
	json_t *j = NULL;
	char *s;
	char *body;
	size_t i;

	s = malloc(100000);
	cr_assert_not_null(s);
	memset(s, '[', 100000);
	cr_assert_eq(rpc_envelope_decode(s, 100000, &j, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "deeper"));
	memset(s, '{', 100000);
	cr_assert_eq(rpc_envelope_decode(s, 100000, &j, NULL), -EINVAL);
	free(s);

	s = nested(RPC_MSG_MAX_DEPTH);
	cr_assert_eq(rpc_json_parse(s, strlen(s), &j, NULL), 0);
	json_decref(j);
	free(s);
	s = nested(RPC_MSG_MAX_DEPTH + 1);
	cr_assert_eq(rpc_json_parse(s, strlen(s), &j, NULL), -EINVAL);
	free(s);

	/* deep inside the double-encoded inner text */
	s = nested(70);
	cr_assert_gt(asprintf(&body,
	                 "{\"oslo.version\":\"2.0\",\"oslo.message\":"
	                 "\"{\\\"method\\\":\\\"m\\\",\\\"args\\\":{\\\"x\\\":%s}}\"}",
	                 s),
	    0);
	cr_assert_eq(rpc_envelope_decode(body, strlen(body), &j, NULL), -EINVAL);
	free(body);
	free(s);

	/* brackets inside strings do not count */
	body = malloc(300);
	cr_assert_not_null(body);
	strcpy(body, "{\"method\":\"m\",\"args\":{\"s\":\"");
	for (i = strlen(body); i < 250; i++)
		body[i] = '[';
	strcpy(body + 250, "\\\"\"}}");
	cr_assert_eq(rpc_envelope_decode(body, strlen(body), &j, NULL), 0);
	json_decref(j);
	free(body);
}

Test(rpc_msg, decodes_surrogate_pairs)
{
	rpc_msg *m = NULL;
	const char *s;

	/* as Python's ensure_ascii sends it: escaped twice through the envelope */
	cr_assert_eq(parse_str("{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": "
	                       "\\\"m\\\", \\\"args\\\": {\\\"name\\\": "
	                       "\\\"vm-\\\\ud83d\\\\ude00-\\\\u00e9\\\"}}\"}",
	                 &m, NULL),
	    0);
	s = json_string_value(json_object_get(rpc_msg_args(m), "name"));
	cr_assert_str_eq(s, "vm-\xf0\x9f\x98\x80-\xc3\xa9");
	rpc_msg_free(m);

	cr_assert_eq(
	    parse_str("{\"method\":\"m\",\"args\":{\"n\":\"\\ud83d\\ude00\"}}", &m, NULL), 0);
	cr_assert_str_eq(
	    json_string_value(json_object_get(rpc_msg_args(m), "n")), "\xf0\x9f\x98\x80");
	rpc_msg_free(m);
}

Test(rpc_msg, envelope_encode_round_trips)
{
	json_t *inner = json_pack("{s:s, s:{s:s, s:i}, s:s}", "method", "live_migration", "args",
	    "name", "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ /", "n", 7, "version", "6.0");
	json_t *outer;
	json_t *back = NULL;
	size_t len = 0;
	char *text;
	size_t i;

	text = rpc_envelope_encode(inner, &len);
	cr_assert_not_null(text);
	cr_assert_eq(len, strlen(text));
	for (i = 0; i < len; i++)
		cr_assert_lt((unsigned char)text[i], 0x80, "non-ASCII byte at %zu", i);
	cr_assert_eq(
	    strncmp(text, "{\"oslo.version\":\"2.0\",\"oslo.message\":\"{", 39), 0, "%s", text);
	cr_assert_not_null(strstr(text, "\\\\ud83d\\\\ude00"), "%s", text);

	outer = json_loads(text, 0, NULL);
	cr_assert(json_is_string(json_object_get(outer, "oslo.message")));
	json_decref(outer);

	cr_assert_eq(rpc_envelope_decode(text, len, &back, NULL), 0);
	cr_assert(json_equal(back, inner));
	json_decref(back);
	free(text);

	text = rpc_envelope_encode(inner, NULL);
	cr_assert_not_null(text);
	free(text);
	json_decref(inner);
}

/* The envelope is written by hand (rpc_msg.c): byte for byte what jansson
 * dumps for the envelope object built the obvious way. */
Test(rpc_msg, envelope_encode_is_jansson_byte_for_byte)
{
	json_t *inners[] = {
	    json_pack("{s:s, s:{}, s:n, s:b, s:i, s:f}", "method", "m", "args", "_timeout",
	        "ending", 1, "n", -7, "pct", 12.5),
	    json_pack("{s:s}", "s",
	        "ctl \x01\x1f\b\f\n\r\t del \x7f q\" b\\ s/ "
	        "caf\xc3\xa9 \xf0\x9f\x98\x80"),
	    json_pack("{s:[s, s, {s:s}]}", "a", "\\\"", "\"\\", "\\u0041", "x\ny"),
	    json_object(),
	};

	for (size_t i = 0; i < sizeof(inners) / sizeof(inners[0]); i++) {
		char *text = rpc_json_dumps(inners[i], JSON_COMPACT);
		json_t *env = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", text);
		char *want = rpc_json_dumps(env, JSON_COMPACT);
		size_t len = 0;
		char *got = rpc_envelope_encode(inners[i], &len);

		cr_assert_not_null(got);
		cr_assert_str_eq(got, want);
		cr_assert_eq(len, strlen(want));
		free(got);
		free(want);
		free(text);
		json_decref(env);
		json_decref(inners[i]);
	}
}

Test(rpc_msg, reencoded_fixture_parses_identically)
{
	json_t *fx = load_fixture("cast_live_migration.json");
	rpc_msg *m = parse_fixture(fx);
	rpc_msg *m2 = NULL;
	size_t len;
	char *text = rpc_envelope_encode(rpc_msg_inner(m), &len);

	cr_assert_not_null(text);
	cr_assert_eq(rpc_msg_parse(text, len, &m2, NULL), 0);
	cr_assert(json_equal(rpc_msg_inner(m), rpc_msg_inner(m2)));
	cr_assert(json_equal(rpc_msg_inner(m2), json_object_get(fx, "oslo.message_decoded")));
	free(text);
	rpc_msg_free(m2);
	rpc_msg_free(m);
	json_decref(fx);
	cr_assert_null(rpc_msg_free(NULL));
}

Test(rpc_msg, dumps_is_byte_for_byte_python)
{
	static const char *const names[] = {"cast_live_migration.json",
	    "cast_live_migration_abort.json", "cast_live_migration_force_complete.json",
	    "call_some_method_request.json"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		json_t *fx = load_fixture(names[i]);
		json_t *raw = json_object_get(fx, "body_raw");
		json_t *outer = json_loads(json_string_value(raw), 0, NULL);
		const char *theirs = json_string_value(json_object_get(outer, "oslo.message"));
		json_t *inner = NULL;
		char *ours;

		cr_assert_eq(rpc_envelope_decode(
		                 json_string_value(raw), json_string_length(raw), &inner, NULL),
		    0);
		ours = rpc_json_dumps(inner, 0);
		cr_assert_not_null(ours);
		cr_assert_str_eq(ours, theirs, "%s", names[i]);
		free(ours);
		json_decref(inner);
		json_decref(outer);
		json_decref(fx);
	}
}
