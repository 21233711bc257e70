/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rpc_notify: the inner notification message against nova 26.2.2's
 * captured notifications (same context as the live_migration cast), the
 * timestamp spellings and the routing key.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rpc_notify.h"
#include "rpc_nova.h"

#define FIXTURES FERRY_SHARED_DIR "/reference/oslo-fixtures/"

static json_t *
load_inner(const char *name)
{
	json_error_t err;
	json_t *f = json_load_file(name, 0, &err), *inner;

	cr_assert_not_null(f, "%s: %s", name, err.text);
	inner = json_incref(json_object_get(f, "oslo.message_decoded"));
	json_decref(f);
	cr_assert_not_null(inner);
	return inner;
}

static json_t *
context_of(json_t *inner)
{
	json_t *ctx = json_object(), *v;
	const char *k;

	json_object_foreach (inner, k, v) {
		if (strncmp(k, "_context_", 9) == 0)
			json_object_set(ctx, k + 9, v);
	}
	return ctx;
}

static void
assert_matches(const char *s, const char *re)
{
	regex_t rx;

	cr_assert_not_null(s);
	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	cr_expect_eq(regexec(&rx, s, 0, NULL, 0), 0, "\"%s\" does not match %s", s, re);
	regfree(&rx);
}

#define UUID_RE  "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
#define HEX_RE   "^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$"
#define TS_RE    "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{6})?$"
#define CTXTS_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}$"

static const char *
sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

Test(rpc_notify, message_matches_nova_capture_key_by_key)
{
	json_t *cast = load_inner(FIXTURES "cast_live_migration.json");
	json_t *want = load_inner(FIXTURES "notification_instance.live_migration_post.start.json");
	json_t *ctx = context_of(cast);
	json_t *payload = json_deep_copy(json_object_get(want, "payload"));
	json_t *msg = rpc_notify_build(
	    "nova-compute:host1", "instance.live_migration_post.start", "INFO", payload, ctx);
	void *it_g, *it_w;

	cr_assert_not_null(msg);
	cr_assert_eq(json_object_get(msg, "payload"), payload, "payload is stolen, not copied");
	cr_assert_eq(json_object_size(msg), json_object_size(want));
	/* Same keys, same order (jansson keeps insertion order). */
	for (it_g = json_object_iter(msg), it_w = json_object_iter(want); it_w != NULL;
	     it_g = json_object_iter_next(msg, it_g), it_w = json_object_iter_next(want, it_w)) {
		const char *k = json_object_iter_key(it_w);

		cr_assert_not_null(it_g);
		cr_expect_str_eq(json_object_iter_key(it_g), k);
		if (strcmp(k, "message_id") == 0 || strcmp(k, "timestamp") == 0 ||
		    strcmp(k, "_unique_id") == 0 || strcmp(k, "_context_timestamp") == 0)
			continue; /* fresh per message, checked by format below */
		cr_expect(json_equal(json_object_get(msg, k), json_object_iter_value(it_w)),
		    "key %s differs from nova's", k);
	}
	assert_matches(sget(msg, "message_id"), UUID_RE);
	assert_matches(sget(msg, "_unique_id"), HEX_RE);
	assert_matches(sget(msg, "timestamp"), TS_RE);
	assert_matches(sget(msg, "_context_timestamp"), CTXTS_RE);
	/* Same instant: the date and time-of-day seconds agree. */
	cr_expect_eq(strncmp(sget(msg, "timestamp"), sget(msg, "_context_timestamp"), 10), 0);
	json_decref(msg);
	json_decref(ctx);
	json_decref(want);
	json_decref(cast);
}

Test(rpc_notify, every_capture_has_the_same_context_block)
{
	static const char *const files[] = {"compute.exception",
	    "instance.live_migration_abort.start", "instance.live_migration_pre.end",
	    "instance.live_migration_rollback_dest.end"};
	json_t *cast = load_inner(FIXTURES "cast_live_migration_abort.json");
	json_t *ctx = context_of(cast);

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[512];
		json_t *want, *msg, *v;
		const char *k;

		snprintf(path, sizeof(path), FIXTURES "notification_%s.json", files[i]);
		want = load_inner(path);
		msg = rpc_notify_build(sget(want, "publisher_id"), sget(want, "event_type"),
		    sget(want, "priority"), json_object(), ctx);
		json_object_foreach (want, k, v) {
			if (strncmp(k, "_context_", 9) != 0 || strcmp(k, "_context_timestamp") == 0)
				continue;
			cr_expect(json_equal(json_object_get(msg, k), v), "%s: %s", files[i], k);
		}
		cr_expect_str_eq(sget(msg, "priority"), sget(want, "priority"));
		cr_expect_str_eq(sget(msg, "publisher_id"), sget(want, "publisher_id"));
		json_decref(msg);
		json_decref(want);
	}
	json_decref(ctx);
	json_decref(cast);
}

Test(rpc_notify, null_context_gives_nova_defaults)
{
	json_t *msg = rpc_notify_build(
	    "ferry:h", "instance.live_migration_progress", "INFO", json_object(), NULL);

	cr_assert_not_null(msg);
	cr_assert_eq(json_object_size(msg), 32);
	cr_assert(json_is_null(json_object_get(msg, "_context_user")));
	cr_assert(json_is_null(json_object_get(msg, "_context_user_id")));
	cr_assert(json_is_false(json_object_get(msg, "_context_is_admin")));
	cr_assert(json_is_true(json_object_get(msg, "_context_is_admin_project")));
	cr_assert_str_eq(sget(msg, "_context_user_identity"), "- - - - -");
	cr_assert_str_eq(sget(msg, "_context_read_deleted"), "no");
	cr_assert_eq(json_array_size(json_object_get(msg, "_context_roles")), 0);
	cr_assert(json_is_array(json_object_get(msg, "_context_service_catalog")));
	assert_matches(sget(msg, "_context_request_id"),
	    "^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
	json_decref(msg);
}

Test(rpc_notify, secrets_and_junk_do_not_survive)
{
	json_t *ctx = json_pack("{s:s, s:s, s:s, s:[{s:s}], s:s, s:s, s:i}", "auth_token", "secret",
	    "remote_address", "192.0.2.1", "user_id", "", "service_catalog", "type", "image",
	    "quota_class", "q", "read_deleted", "yes", "roles", 5);
	json_t *msg = rpc_notify_build("p", "e", "WARN", json_object(), ctx);

	cr_assert(json_is_null(json_object_get(msg, "_context_auth_token")));
	cr_assert(json_is_null(json_object_get(msg, "_context_remote_address")));
	cr_assert(json_is_null(json_object_get(msg, "_context_quota_class")));
	cr_assert(json_is_null(json_object_get(msg, "_context_user_id")));
	cr_assert_str_eq(sget(msg, "_context_read_deleted"), "no");
	cr_assert_eq(json_array_size(json_object_get(msg, "_context_service_catalog")), 0);
	cr_assert(
	    json_equal(json_object_get(msg, "_context_roles"), json_object_get(ctx, "roles")));
	cr_assert_null(json_object_get(msg, "_context_foo"));
	json_decref(msg);
	json_decref(ctx);
}

Test(rpc_notify, priority_is_kept_as_given)
{
	static const char *const prios[] = {"INFO", "WARN", "ERROR", "AUDIT", "CRITICAL"};

	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++) {
		json_t *msg = rpc_notify_build("p", "e", prios[i], json_object(), NULL);

		cr_assert_str_eq(sget(msg, "priority"), prios[i]);
		json_decref(msg);
	}
}

Test(rpc_notify, null_payload_is_enomem)
{
	cr_assert_null(rpc_notify_build("p", "e", "INFO", NULL, NULL));
}

Test(rpc_notify, messages_get_fresh_ids)
{
	json_t *a = rpc_notify_build("p", "e", "INFO", json_object(), NULL);
	json_t *b = rpc_notify_build("p", "e", "INFO", json_object(), NULL);

	cr_assert_str_neq(sget(a, "message_id"), sget(b, "message_id"));
	cr_assert_str_neq(sget(a, "_unique_id"), sget(b, "_unique_id"));
	json_decref(a);
	json_decref(b);
}

Test(rpc_notify, timestamp_with_and_without_microseconds)
{
	char buf[RPC_NOTIFY_TS_LEN];
	struct timespec ts = {.tv_sec = 1790045926, .tv_nsec = 506050123};

	/* str(datetime.utcfromtimestamp(1790045926.506050)) */
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-09-22 02:58:46.506050");
	ts.tv_nsec = 0;
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-09-22 02:58:46");
	ts.tv_nsec = 999; /* < 1 us: Python has no sub-microsecond part either */
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-09-22 02:58:46");
	ts.tv_nsec = 1000;
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-09-22 02:58:46.000001");
	ts.tv_sec = 0;
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "1970-01-01 00:00:00.000001");
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, 10), -ENOSPC);
	cr_assert_eq(rpc_notify_format_timestamp(NULL, buf, sizeof(buf)), -EINVAL);
	ts.tv_nsec = -5;
	cr_assert_eq(rpc_notify_format_timestamp(&ts, buf, sizeof(buf)), -EINVAL);
}

Test(rpc_notify, routing_key_is_topic_dot_lower_priority)
{
	char buf[64];

	cr_assert_eq(
	    rpc_notify_routing_key("versioned_notifications", "WARN", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "versioned_notifications.warn");
	cr_assert_eq(
	    rpc_notify_routing_key("versioned_notifications", "INFO", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "versioned_notifications.info");
	cr_assert_eq(rpc_notify_routing_key("t", "ERROR", buf, 8), 0);
	cr_assert_str_eq(buf, "t.error");
	cr_assert_eq(rpc_notify_routing_key("t", "ERROR", buf, 7), -ENOSPC);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(rpc_notify_routing_key("t", "ERROR", buf, 0), -ENOSPC);
	cr_assert_eq(rpc_notify_routing_key(NULL, "INFO", buf, sizeof(buf)), -EINVAL);
}

Test(rpc_notify, fixture_routing_keys)
{
	static const char *const files[] = {
	    "compute.exception", "instance.live_migration_post.end"};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[512], buf[64];
		json_error_t err;
		json_t *f;

		snprintf(path, sizeof(path), FIXTURES "notification_%s.json", files[i]);
		f = json_load_file(path, 0, &err);
		cr_assert_not_null(f);
		cr_assert_eq(rpc_notify_routing_key("versioned_notifications",
		                 sget(json_object_get(f, "oslo.message_decoded"), "priority"), buf,
		                 sizeof(buf)),
		    0);
		cr_expect_str_eq(buf, sget(f, "routing_key"));
		json_decref(f);
	}
}
