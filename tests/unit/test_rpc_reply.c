/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for rpc_reply: replies, failures and requests compared with what
 * oslo.messaging 14.0.3 really put on the wire (oslo-fixtures/call_*).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rpc_error.h"
#include "rpc_msg.h"
#include "rpc_reply.h"

#define FIXTURES FERRY_SHARED_DIR "/reference/oslo-fixtures/"

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

/* The inner message of reply @i of a *_replies.json fixture, decoded from
 * body_raw with our own codec (new reference). */
static json_t *
fixture_reply(json_t *fx, size_t i)
{
	json_t *raw = json_object_get(json_array_get(fx, i), "body_raw");
	json_t *inner = NULL;

	cr_assert(json_is_string(raw));
	cr_assert_eq(
	    rpc_envelope_decode(json_string_value(raw), json_string_length(raw), &inner, NULL), 0);
	return inner;
}

/* Keys of @o joined by ',' in their order. */
static void
key_order(json_t *o, char *buf, size_t size)
{
	const char *key;
	json_t *value;

	buf[0] = '\0';
	json_object_foreach (o, key, value) {
		strncat(buf, key, size - strlen(buf) - 1);
		strncat(buf, ",", size - strlen(buf) - 1);
	}
}

static bool
is_hex32(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 32)
		return false;
	for (i = 0; i < 32; i++) {
		if (strchr("0123456789abcdef", s[i]) == NULL)
			return false;
	}
	return true;
}

Test(rpc_reply, build_matches_oslo_reply_shape)
{
	json_t *fx = load_fixture("call_some_method_replies.json");
	json_t *theirs = fixture_reply(fx, 0);
	json_t *result =
	    json_pack("{s:i, s:s, s:[i, f, n, s]}", "arg", 1, "host", "host1", "list", 1, 2.5, "x");
	json_t *ours = rpc_reply_build("3c9c0ec1", json_deep_copy(result), NULL, true);
	char a[256];
	char b[256];

	cr_assert_not_null(ours);
	key_order(ours, a, sizeof(a));
	key_order(theirs, b, sizeof(b));
	cr_assert_str_eq(a, b);
	cr_assert_str_eq(a, "result,failure,ending,_msg_id,_unique_id,");
	cr_assert(json_equal(json_object_get(ours, "result"), result));
	cr_assert(json_equal(json_object_get(ours, "result"), json_object_get(theirs, "result")));
	cr_assert(json_is_null(json_object_get(ours, "failure")));
	cr_assert(json_is_true(json_object_get(ours, "ending")));
	cr_assert_str_eq(json_string_value(json_object_get(ours, "_msg_id")), "3c9c0ec1");
	cr_assert(is_hex32(json_string_value(json_object_get(ours, "_unique_id"))));
	json_decref(result);
	json_decref(ours);
	json_decref(theirs);
	json_decref(fx);
}

Test(rpc_reply, build_round_trips_through_envelope_and_parse)
{
	json_t *ours = rpc_reply_build("m1", json_string("done"), NULL, true);
	json_t *back = NULL;
	struct rpc_reply_in in;
	size_t len;
	char *text = rpc_envelope_encode(ours, &len);
	json_t *hb;
	json_t *other;

	cr_assert_not_null(text);
	cr_assert_eq(rpc_envelope_decode(text, len, &back, NULL), 0);
	cr_assert(json_equal(back, ours));
	cr_assert_eq(rpc_reply_parse(back, &in, NULL), 0);
	cr_assert_str_eq(in.msg_id, "m1");
	cr_assert_str_eq(json_string_value(in.result), "done");
	cr_assert_null(in.failure);
	cr_assert(in.ending);

	/* heartbeat: null result, not ending, and unique ids are fresh */
	hb = rpc_reply_build("m1", NULL, NULL, false);
	cr_assert(json_is_null(json_object_get(hb, "result")));
	cr_assert(json_is_false(json_object_get(hb, "ending")));
	other = rpc_reply_build("m1", NULL, NULL, false);
	cr_assert_str_neq(json_string_value(json_object_get(hb, "_unique_id")),
	    json_string_value(json_object_get(other, "_unique_id")));
	cr_assert_null(rpc_reply_build(NULL, json_integer(1), NULL, true));

	free(text);
	json_decref(other);
	json_decref(hb);
	json_decref(back);
	json_decref(ours);
}

Test(rpc_reply, heartbeat_matches_oslo_call_monitor_replies)
{
	json_t *fx = load_fixture("call_slow_with_call_monitor_replies.json");
	json_t *ours = rpc_reply_build("52dc186880ff48fe84adfa4bae1bc357", NULL, NULL, false);
	struct rpc_reply_in in;
	size_t i;

	cr_assert_eq(json_array_size(fx), 3);
	for (i = 0; i < 3; i++) {
		json_t *theirs = fixture_reply(fx, i);

		cr_assert_eq(rpc_reply_parse(theirs, &in, NULL), 0);
		cr_assert_str_eq(in.msg_id, "52dc186880ff48fe84adfa4bae1bc357");
		cr_assert_null(in.failure);
		if (i < 2) {
			json_t *a = json_deep_copy(ours);

			cr_assert_not(in.ending);
			cr_assert(json_is_null(in.result));
			json_object_del(a, "_unique_id");
			json_object_del(theirs, "_unique_id");
			cr_assert(json_equal(a, theirs));
			json_decref(a);
		} else {
			cr_assert(in.ending);
			cr_assert_str_eq(json_string_value(in.result), "done after 3s");
		}
		json_decref(theirs);
	}
	json_decref(ours);
	json_decref(fx);
}

Test(rpc_reply, parse_reports_pre_newton_two_message_scheme)
{
	json_t *first =
	    json_pack("{s:i, s:n, s:b, s:s}", "result", 5, "failure", "ending", 0, "_msg_id", "x");
	json_t *second = json_pack("{s:b, s:s}", "ending", 1, "_msg_id", "x");
	struct rpc_reply_in in;

	cr_assert_eq(rpc_reply_parse(first, &in, NULL), 0);
	cr_assert_eq(json_integer_value(in.result), 5);
	cr_assert_not(in.ending);
	cr_assert_eq(rpc_reply_parse(second, &in, NULL), 0);
	cr_assert_null(in.result);
	cr_assert_null(in.failure);
	cr_assert(in.ending);
	json_decref(first);
	json_decref(second);
}

Test(rpc_reply, parse_rejects_bad_replies)
{
	static const char *const bad[] = {
	    "[]",
	    "{\"result\": 1, \"ending\": true}",
	    "{\"_msg_id\": 5}",
	    "{\"_msg_id\": \"x\", \"failure\": 5}",
	    "{\"_msg_id\": \"x\", \"failure\": {}}",
	    "{\"_msg_id\": \"x\", \"ending\": \"yes\"}",
	    "{\"_msg_id\": \"x\", \"ending\": 1}",
	};
	struct rpc_reply_in in = {.msg_id = "untouched"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rpc_err err = {{0}};
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);

		cr_assert_not_null(j);
		cr_assert_eq(rpc_reply_parse(j, &in, &err), -EINVAL, "case %zu", i);
		cr_assert_neq(err.msg[0], '\0');
		json_decref(j);
	}
	cr_assert_str_eq(in.msg_id, "untouched");
	cr_assert_eq(rpc_reply_parse(NULL, &in, NULL), -EINVAL);
}

/*
 * Compares our failure text with oslo's byte for byte everywhere except
 * inside the "tb" list: the text before ', "tb": [' and from '], "args": '
 * on must be identical, and both must parse to the same object without tb.
 */
static void
assert_same_failure(const char *ours, const char *theirs)
{
	const char *tb_o = strstr(ours, ", \"tb\": [");
	const char *tb_t = strstr(theirs, ", \"tb\": [");
	const char *args_o = strstr(ours, "], \"args\": ");
	const char *args_t = strstr(theirs, "], \"args\": ");
	json_t *jo = json_loads(ours, 0, NULL);
	json_t *jt = json_loads(theirs, 0, NULL);
	json_t *tb;
	size_t i;

	cr_assert(tb_o && tb_t && args_o && args_t, "ours: %s", ours);
	cr_assert_eq(tb_o - ours, tb_t - theirs, "ours: %s\ntheirs: %s", ours, theirs);
	cr_assert_eq(memcmp(ours, theirs, (size_t)(tb_o - ours)), 0, "ours: %s", ours);
	cr_assert_str_eq(args_o, args_t);

	cr_assert_not_null(jo);
	cr_assert_not_null(jt);
	tb = json_object_get(jo, "tb");
	cr_assert(json_is_array(tb));
	cr_assert_gt(json_array_size(tb), 0);
	for (i = 0; i < json_array_size(tb); i++)
		cr_assert(json_is_string(json_array_get(tb, i)));
	/* the last line names the exception as Python's traceback does */
	cr_assert_str_eq(json_string_value(json_array_get(tb, json_array_size(tb) - 1)),
	    json_string_value(json_array_get(
	        json_object_get(jt, "tb"), json_array_size(json_object_get(jt, "tb")) - 1)));
	json_object_del(jo, "tb");
	json_object_del(jt, "tb");
	cr_assert(json_equal(jo, jt));
	json_decref(jo);
	json_decref(jt);
}

static const char *
fixture_failure(json_t *fx, json_t **ret_inner)
{
	json_t *inner = fixture_reply(fx, json_array_size(fx) - 1);
	struct rpc_reply_in in;

	cr_assert_eq(rpc_reply_parse(inner, &in, NULL), 0);
	cr_assert(in.ending);
	cr_assert(json_is_null(in.result));
	cr_assert_not_null(in.failure);
	*ret_inner = inner;
	return in.failure;
}

static void
check_failure_fixture(const char *name)
{
	json_t *fx = load_fixture(name);
	json_t *inner;
	const char *theirs = fixture_failure(fx, &inner);
	json_t *f = json_loads(theirs, 0, NULL);
	char *ours;

	ours = rpc_failure_build(json_string_value(json_object_get(f, "class")),
	    json_string_value(json_object_get(f, "module")),
	    json_string_value(json_object_get(f, "message")),
	    json_deep_copy(json_object_get(f, "kwargs")));
	cr_assert_not_null(ours);
	assert_same_failure(ours, theirs);
	free(ours);
	json_decref(f);
	json_decref(inner);
	json_decref(fx);
}

Test(rpc_reply, failure_build_matches_nova_exception)
{
	check_failure_fixture("call_fail_nova_replies.json");
}

Test(rpc_reply, failure_build_matches_builtin_exception)
{
	check_failure_fixture("call_fail_builtin_replies.json");
}

Test(rpc_reply, failure_build_matches_expected_exception)
{
	check_failure_fixture("call_fail_expected_replies.json");
}

Test(rpc_reply, no_such_method_matches_oslo)
{
	json_t *fx = load_fixture("call_no_such_method_replies.json");
	json_t *inner;
	const char *theirs = fixture_failure(fx, &inner);
	char *ours = rpc_failure_no_such_method("no_such_method");

	cr_assert_not_null(ours);
	assert_same_failure(ours, theirs);
	free(ours);
	json_decref(inner);
	json_decref(fx);
}

Test(rpc_reply, unsupported_version_matches_oslo)
{
	json_t *fx = load_fixture("call_unsupported_version_replies.json");
	json_t *inner;
	const char *theirs = fixture_failure(fx, &inner);
	char *ours = rpc_failure_unsupported_version("7.0", "some_method");

	cr_assert_not_null(ours);
	assert_same_failure(ours, theirs);
	free(ours);
	json_decref(inner);
	json_decref(fx);

	ours = rpc_failure_unsupported_version("7.0", NULL);
	cr_assert_not_null(strstr(ours, "\"message\": \"Endpoint does not support RPC version "
	                                "7.0\", "));
	free(ours);
}

Test(rpc_reply, failure_build_handles_defaults_and_bad_kwargs)
{
	char *text = rpc_failure_build("E", "m", "caf\xc3\xa9 \"x\"", NULL);
	char *cls = NULL;
	char *mod = NULL;
	char *msg = NULL;

	cr_assert_not_null(text);
	cr_assert_not_null(strstr(text, "\"kwargs\": {}}"), "%s", text);
	/* Python's ensure_ascii spelling, lower-case hex */
	cr_assert_not_null(strstr(text, "\"message\": \"caf\\u00e9 \\\"x\\\"\", "), "%s", text);
	cr_assert_eq(rpc_failure_parse(text, &cls, &mod, &msg), 0);
	cr_assert_str_eq(cls, "E");
	cr_assert_str_eq(mod, "m");
	cr_assert_str_eq(msg, "caf\xc3\xa9 \"x\"");
	free(cls);
	free(mod);
	free(msg);
	free(text);

	cr_assert_null(rpc_failure_build("E", "m", "x", json_array()));
	cr_assert_null(rpc_failure_build(NULL, "m", "x", json_object()));
}

Test(rpc_reply, failure_parse_reads_fixtures_and_rejects_garbage)
{
	json_t *fx = load_fixture("call_fail_nova_replies.json");
	json_t *inner;
	const char *f = fixture_failure(fx, &inner);
	char *cls = NULL;
	char *mod = NULL;
	char *msg = NULL;

	cr_assert_eq(rpc_failure_parse(f, &cls, &mod, &msg), 0);
	cr_assert_str_eq(cls, "MigrationNotFoundForInstance");
	cr_assert_str_eq(mod, "nova.exception");
	cr_assert_str_eq(
	    msg, "Migration 42 not found for instance 6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21");
	free(cls);
	free(mod);
	free(msg);
	cls = NULL;
	cr_assert_eq(rpc_failure_parse(f, &cls, NULL, NULL), 0);
	cr_assert_str_eq(cls, "MigrationNotFoundForInstance");
	free(cls);
	json_decref(inner);
	json_decref(fx);

	cls = NULL;
	cr_assert_eq(rpc_failure_parse(NULL, &cls, &mod, &msg), -EINVAL);
	cr_assert_eq(rpc_failure_parse("not json", &cls, &mod, &msg), -EINVAL);
	cr_assert_eq(rpc_failure_parse("[]", &cls, &mod, &msg), -EINVAL);
	cr_assert_eq(rpc_failure_parse("{\"module\": \"m\"}", &cls, &mod, &msg), -EINVAL);
	cr_assert_eq(
	    rpc_failure_parse("{\"class\": 1, \"module\": \"m\"}", &cls, &mod, &msg), -EINVAL);
	cr_assert_eq(rpc_failure_parse(
	                 "{\"class\": \"c\", \"module\": \"m\", \"message\": 3}", &cls, &mod, &msg),
	    -EINVAL);
	cr_assert_null(cls);
}

Test(rpc_reply, request_build_matches_oslo_call)
{
	json_t *fx = load_fixture("call_some_method_request.json");
	json_t *theirs = json_object_get(fx, "oslo.message_decoded");
	json_t *ctx = json_object();
	json_t *ours;
	const char *key;
	json_t *value;
	char a[2048];
	char b[2048];
	rpc_msg *m = NULL;

	json_object_foreach (theirs, key, value) {
		if (strncmp(key, "_context_", 9) == 0)
			json_object_set(ctx, key + 9, value);
	}
	ours = rpc_request_build("some_method", json_pack("{s:i}", "arg", 1), "6.0", ctx,
	    json_string_value(json_object_get(theirs, "_msg_id")),
	    json_string_value(json_object_get(theirs, "_reply_q")), 0);
	cr_assert_not_null(ours);
	key_order(ours, a, sizeof(a));
	key_order(theirs, b, sizeof(b));
	cr_assert_str_eq(a, b);
	cr_assert(json_is_null(json_object_get(ours, "_timeout")));
	cr_assert(is_hex32(json_string_value(json_object_get(ours, "_unique_id"))));
	json_object_del(ours, "_unique_id");
	json_object_del(theirs, "_unique_id");
	cr_assert(json_equal(ours, theirs));

	/* what we build, we parse */
	cr_assert_eq(rpc_msg_from_inner(json_incref(ours), &m, NULL), 0);
	cr_assert(rpc_msg_is_call(m));
	cr_assert(json_equal(rpc_msg_context(m), ctx));
	rpc_msg_free(m);

	json_decref(ours);
	json_decref(ctx);
	json_decref(fx);
}

Test(rpc_reply, request_build_timeouts_and_casts)
{
	json_t *o;

	o = rpc_request_build("slow", NULL, "6.0", NULL, "id", "reply_q", 2);
	cr_assert(json_is_integer(json_object_get(o, "_timeout")));
	cr_assert_eq(json_integer_value(json_object_get(o, "_timeout")), 2);
	cr_assert_eq(json_object_size(json_object_get(o, "args")), 0);
	json_decref(o);

	o = rpc_request_build("slow", NULL, "6.0", NULL, "id", "reply_q", 2.5);
	cr_assert(json_real_value(json_object_get(o, "_timeout")) == 2.5);
	json_decref(o);

	o = rpc_request_build("live_migration_abort", json_pack("{s:i}", "migration_id", 42), NULL,
	    NULL, NULL, NULL, 30);
	cr_assert_not_null(o);
	cr_assert_null(json_object_get(o, "_msg_id"));
	cr_assert_null(json_object_get(o, "_reply_q"));
	cr_assert_null(json_object_get(o, "_timeout"));
	cr_assert_null(json_object_get(o, "version"));
	cr_assert(is_hex32(json_string_value(json_object_get(o, "_unique_id"))));
	json_decref(o);

	cr_assert_null(rpc_request_build(NULL, json_object(), "6.0", NULL, NULL, NULL, 0));
}

/* ---- rpc_reply_peek_target: where to answer an undecodable call ---- */

/* "[[[...]]]" @depth deep, malloc'd. */
static char *
nested(size_t depth)
{
	char *s = malloc(2 * depth + 1);

	cr_assert_not_null(s);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	return s;
}

/* A 2.0 envelope around @inner_text (escaped with jansson). */
static char *
wrap(const char *inner_text)
{
	json_t *env = json_pack("{s:s,s:s}", "oslo.version", "2.0", "oslo.message", inner_text);
	char *s = json_dumps(env, JSON_COMPACT);

	json_decref(env);
	cr_assert_not_null(s);
	return s;
}

static char untouched[] = "untouched";

static int
peek(const char *body, char **msg_id, char **reply_q, char **rid)
{
	*msg_id = *reply_q = *rid = untouched;
	return rpc_reply_peek_target(body, strlen(body), msg_id, reply_q, rid);
}

Test(rpc_reply, peek_target_reads_calls_the_decoder_refuses)
{
	char *deep = nested(100000);
	char *inner = NULL, *env, *id, *q, *rid;
	json_t *j = NULL;
	int n;

	n = asprintf(&inner,
	    "{\"method\": \"pre_live_migration\", \"args\": {\"instance\": %s, "
	    "\"_msg_id\": \"inner\"}, \"version\": \"6.0\", \"_msg_id\": \"m1\", "
	    "\"_reply_q\": \"reply_abc\", \"_timeout\": null, \"_unique_id\": \"u\", "
	    "\"_context_request_id\": \"req-1\", \"_context_roles\": [\"admin\"]}",
	    deep);
	cr_assert_gt(n, 0);
	env = wrap(inner);
	/* the decoder refuses it ... */
	cr_assert_eq(rpc_envelope_decode(env, strlen(env), &j, NULL), -EINVAL);
	/* ... the scanner still finds where to answer, at any depth */
	cr_assert_eq(peek(env, &id, &q, &rid), 0);
	cr_assert_str_eq(id, "m1");
	cr_assert_str_eq(q, "reply_abc");
	cr_assert_str_eq(rid, "req-1");
	free(id);
	free(q);
	free(rid);
	/* a bare (1.0) message too */
	cr_assert_eq(peek(inner, &id, &q, &rid), 0);
	cr_assert_str_eq(id, "m1");
	free(id);
	free(q);
	free(rid);
	free(env);
	free(inner);
	free(deep);

	/* a lone surrogate and raw invalid UTF-8 inside the args */
	env = wrap("{\"args\": {\"x\": \"\\udc80\"}, \"_msg_id\": \"m2\", \"_reply_q\": \"r2\"}");
	cr_assert_eq(rpc_envelope_decode(env, strlen(env), &j, NULL), -EINVAL);
	cr_assert_eq(peek(env, &id, &q, &rid), 0);
	cr_assert_str_eq(id, "m2");
	cr_assert_str_eq(q, "r2");
	cr_assert_null(rid);
	free(id);
	free(q);
	free(env);
	cr_assert_eq(peek("{\"args\": {\"x\": \"\xff\xfe\"}, \"_msg_id\": \"m3\", "
	                  "\"_reply_q\": \"r3\"}",
	                 &id, &q, &rid),
	    0);
	cr_assert_str_eq(id, "m3");
	free(id);
	free(q);
}

Test(rpc_reply, peek_target_casts_and_junk)
{
	static const char *const junk[] = {
	    "",
	    "[]",
	    "\"s\"",
	    "{",
	    "{\"_msg_id\": \"m\", \"_reply_q\": \"r\"",
	    "{\"_msg_id\": \"m\", \"_reply_q\": \"r\", \"a\": [}",
	    "{\"_msg_id\": \"m\", \"_reply_q\": \"r\", \"a\": {]}",
	    "{\"_msg_id\": \"m\", \"_reply_q\": \"r\", \"a\": \"open}",
	    "{\"_msg_id\": \"m\", \"_reply_q\": \"r\"} trailing",
	    "{\"_msg_id\" \"m\"}",
	    "{\"_msg_id\": \"m\" \"_reply_q\": \"r\"}",
	    "{\"a\": ]}",
	};
	char *id, *q, *rid;

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		cr_assert_eq(peek(junk[i], &id, &q, &rid), -EINVAL, "%s", junk[i]);
		cr_assert_str_eq(id, "untouched");
		cr_assert_str_eq(rid, "untouched");
	}
	/* a cast: nowhere to answer, the request id still read */
	cr_assert_eq(peek("{\"method\": \"m\", \"_context_request_id\": \"req-9\", \"args\": {}}",
	                 &id, &q, &rid),
	    0);
	cr_assert_null(id);
	cr_assert_null(q);
	cr_assert_str_eq(rid, "req-9");
	free(rid);
	/* half a call, _msg_id only at a nested level, escaped or non-string values */
	cr_assert_eq(peek("{\"_msg_id\": \"m\"}", &id, &q, &rid), 0);
	cr_assert_null(id);
	cr_assert_null(q);
	cr_assert_eq(
	    peek("{\"args\": {\"_msg_id\": \"m\", \"_reply_q\": \"r\"}}", &id, &q, &rid), 0);
	cr_assert_null(id);
	cr_assert_eq(peek("{\"_msg_id\": \"m\\u0041\", \"_reply_q\": \"r\"}", &id, &q, &rid), 0);
	cr_assert_null(id);
	cr_assert_eq(peek("{\"_msg_id\": 7, \"_reply_q\": \"r\"}", &id, &q, &rid), 0);
	cr_assert_null(id);
	cr_assert_eq(peek("{}", &id, &q, &rid), 0);
	cr_assert_null(id);
	cr_assert_null(rid);
	/* an envelope whose oslo.message is not a string is read as a bare body */
	cr_assert_eq(peek("{\"oslo.version\": \"2.0\", \"oslo.message\": 5, \"_msg_id\": \"m\", "
	                  "\"_reply_q\": \"r\"}",
	                 &id, &q, &rid),
	    0);
	cr_assert_str_eq(id, "m");
	free(id);
	free(q);
}

Test(rpc_reply, failure_build_survives_a_message_cut_mid_utf8)
{
	/* "caf\xc3" is "café" cut after the first byte of the é */
	char *text = rpc_failure_build("E", "m", "caf\xc3", NULL);
	json_t *f;

	cr_assert_not_null(text);
	f = json_loads(text, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(f, "message")), "caf?");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(f, "args"), 0)), "caf?");
	json_decref(f);
	free(text);
}

Test(rpc_reply, error_failure_survives_a_message_cut_mid_utf8)
{
	char *text = rpc_error_failure(-EINVAL, "instance 'caf\xc3' is busy");
	json_t *f;

	cr_assert_not_null(text);
	f = json_loads(text, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(f, "class")), "InvalidInput");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(f, "kwargs"), "reason")),
	    "instance 'caf?' is busy");
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(f, "kwargs"), "code")), 400);
	json_decref(f);
	free(text);
}
