/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rpc_nova: nova primitives and payloads.  The InstanceActionPayload
 * built from the live_migration cast's Instance is compared with what real
 * nova 26.2.2 emitted for the same Instance (oslo-fixtures, captured with
 * the same RequestContext), field by field, for all 14 live-migration
 * notifications.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

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
	cr_assert_not_null(inner, "%s has no oslo.message_decoded", name);
	return inner;
}

/* The cast's _context_* keys, prefix stripped (what rpc_msg_context gives). */
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

static json_t *cast, *instance, *context;

static void
setup(void)
{
	cast = load_inner(FIXTURES "cast_live_migration.json");
	instance = json_object_get(json_object_get(cast, "args"), "instance");
	cr_assert_not_null(instance);
	context = context_of(cast);
}

static void
teardown(void)
{
	json_decref(context);
	json_decref(cast);
}

static void
assert_same_fields(json_t *got, json_t *want, const char *what)
{
	json_t *gd = rpc_nova_object_data(got), *wd = rpc_nova_object_data(want), *v;
	const char *k;

	cr_assert_not_null(gd);
	cr_assert_not_null(wd);
	cr_assert_eq(json_object_size(gd), json_object_size(wd), "%s: %zu keys, nova has %zu", what,
	    json_object_size(gd), json_object_size(wd));
	json_object_foreach (wd, k, v) {
		char *g = json_dumps(json_object_get(gd, k), JSON_ENCODE_ANY | JSON_SORT_KEYS);
		char *w = json_dumps(v, JSON_ENCODE_ANY | JSON_SORT_KEYS);

		cr_expect(json_equal(json_object_get(gd, k), v), "%s: field %s: got %s, nova %s",
		    what, k, g ? g : "(missing)", w);
		free(g);
		free(w);
	}
	cr_assert(json_equal(got, want), "%s: primitive differs outside data", what);
}

Test(rpc_nova, instance_uuid_of_the_cast, .init = setup, .fini = teardown)
{
	cr_assert_str_eq(rpc_nova_instance_uuid(instance), "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21");
	cr_assert_null(rpc_nova_instance_uuid(NULL));
	cr_assert_null(
	    rpc_nova_instance_uuid(json_object_get(json_object_get(cast, "args"), "migration")));
	cr_assert_not_null(rpc_nova_object_data(instance));
	cr_assert_null(rpc_nova_object_data(context));
}

Test(rpc_nova, post_start_payload_matches_nova_field_by_field, .init = setup, .fini = teardown)
{
	json_t *want = load_inner(FIXTURES "notification_instance.live_migration_post.start.json");
	json_t *got = rpc_nova_instance_action_payload(instance, NULL, NULL, context, NULL);

	cr_assert_not_null(got);
	assert_same_fields(got, json_object_get(want, "payload"), "live_migration_post.start");
	/* Same key order as nova's obj_to_primitive, too. */
	{
		char *g = json_dumps(got, JSON_COMPACT);
		char *w = json_dumps(json_object_get(want, "payload"), JSON_COMPACT);

		cr_expect_str_eq(g, w);
		free(g);
		free(w);
	}
	json_decref(got);
	json_decref(want);
}

/*
 * Every captured live-migration notification: the capture changed
 * task_state (and host/node on the destination) on the Instance before
 * notifying, exactly what ferry's caller does with its own copy.
 */
Test(rpc_nova, all_live_migration_payloads_match_nova, .init = setup, .fini = teardown)
{
	static const char *const events[] = {"pre.start", "pre.end", "force_complete.start",
	    "force_complete.end", "abort.start", "abort.end", "post.start", "post.end",
	    "post_dest.start", "post_dest.end", "rollback.start", "rollback.end",
	    "rollback_dest.start", "rollback_dest.end"};

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		char path[512];
		json_t *want, *wd, *inst, *got;

		snprintf(path, sizeof(path),
		    FIXTURES "notification_instance.live_migration_%s.json", events[i]);
		want = load_inner(path);
		wd = rpc_nova_object_data(json_object_get(want, "payload"));
		inst = json_deep_copy(instance);
		json_object_set(
		    rpc_nova_object_data(inst), "task_state", json_object_get(wd, "task_state"));
		got = rpc_nova_instance_action_payload(inst,
		    json_string_value(json_object_get(wd, "host")),
		    json_string_value(json_object_get(wd, "node")), context, NULL);
		assert_same_fields(got, json_object_get(want, "payload"), events[i]);
		json_decref(got);
		json_decref(inst);
		json_decref(want);
	}
}

/*
 * The Instance state per live-migration event follows nova's own upstream
 * samples (nova 26.2.2 functional tests, source "compute"/"fake-mini",
 * destination "host2"): a payload host equal to the sample's publisher host
 * means "the notifying host", else the Instance's; a null task_state means
 * nova reset it.  Every other field equals the plain payload of the cast.
 */
Test(rpc_nova, live_migration_payload_follows_nova_per_event, .init = setup, .fini = teardown)
{
	static const char *const events[][2] = {{"pre", "start"}, {"pre", "end"},
	    {"force_complete", "start"}, {"force_complete", "end"}, {"abort", "start"},
	    {"abort", "end"}, {"post", "start"}, {"post", "end"}, {"post_dest", "start"},
	    {"post_dest", "end"}, {"rollback", "start"}, {"rollback", "end"},
	    {"rollback_dest", "start"}, {"rollback_dest", "end"}};
	json_t *plain = rpc_nova_instance_action_payload(instance, NULL, NULL, context, NULL);
	int moved = 0, reset = 0;

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		char path[512], action[64];
		json_t *sample, *sd, *got, *gd, *pd, *v;
		const char *publisher, *k;
		bool self;

		snprintf(path, sizeof(path),
		    FIXTURES "upstream_notification_samples_26.2.2/resolved/"
		             "instance-live_migration_%s-%s.json",
		    events[i][0], events[i][1]);
		snprintf(action, sizeof(action), "live_migration_%s", events[i][0]);
		sample = json_load_file(path, 0, NULL);
		cr_assert_not_null(sample, "%s", path);
		sd = rpc_nova_object_data(json_object_get(sample, "payload"));
		publisher = strchr(json_string_value(json_object_get(sample, "publisher_id")), ':');
		cr_assert_not_null(publisher);
		self = strcmp(json_string_value(json_object_get(sd, "host")), publisher + 1) == 0 &&
		       strcmp(publisher + 1, "compute") != 0;
		got = rpc_nova_live_migration_payload(
		    instance, action, events[i][1], "ferry-self", context);
		cr_assert_not_null(got);
		gd = rpc_nova_object_data(got);
		pd = rpc_nova_object_data(plain);
		cr_expect_str_eq(json_string_value(json_object_get(gd, "host")),
		    self ? "ferry-self" : "host1", "%s.%s: host", action, events[i][1]);
		cr_expect_str_eq(json_string_value(json_object_get(gd, "node")),
		    self ? "ferry-self" : "host1", "%s.%s: node", action, events[i][1]);
		if (json_is_null(json_object_get(sd, "task_state")))
			cr_expect(json_is_null(json_object_get(gd, "task_state")),
			    "%s.%s: task_state", action, events[i][1]);
		else
			cr_expect_str_eq(json_string_value(json_object_get(gd, "task_state")),
			    "migrating", "%s.%s: task_state", action, events[i][1]);
		moved += self;
		reset += json_is_null(json_object_get(sd, "task_state"));
		cr_assert_eq(json_object_size(gd), json_object_size(pd));
		json_object_foreach (pd, k, v) {
			if (strcmp(k, "host") != 0 && strcmp(k, "node") != 0 &&
			    strcmp(k, "task_state") != 0)
				cr_expect(json_equal(json_object_get(gd, k), v), "%s.%s: field %s",
				    action, events[i][1], k);
		}
		json_decref(got);
		json_decref(sample);
	}
	/* post_dest.end moves the instance; it and rollback.end reset task_state. */
	cr_assert_eq(moved, 1);
	cr_assert_eq(reset, 2);
	/* The caller's Instance is never changed. */
	cr_assert_str_eq(
	    json_string_value(json_object_get(rpc_nova_object_data(instance), "task_state")),
	    "migrating");
	json_decref(plain);
}

Test(rpc_nova, live_migration_payload_without_instance)
{
	json_t *p =
	    rpc_nova_live_migration_payload(NULL, "live_migration_rollback", "end", "h", NULL);
	json_t *junk = json_string("x");

	cr_assert_not_null(p);
	cr_assert(json_is_null(json_object_get(rpc_nova_object_data(p), "task_state")));
	cr_assert(json_is_null(json_object_get(rpc_nova_object_data(p), "host")));
	json_decref(p);
	p = rpc_nova_live_migration_payload(junk, "live_migration_post_dest", "end", "h", NULL);
	cr_assert_str_eq(json_string_value(json_object_get(rpc_nova_object_data(p), "host")), "h");
	json_decref(p);
	json_decref(junk);
}

Test(rpc_nova, host_and_node_override, .init = setup, .fini = teardown)
{
	json_t *p = rpc_nova_instance_action_payload(instance, "src", NULL, context, NULL);
	json_t *d = rpc_nova_object_data(p);

	cr_assert_str_eq(json_string_value(json_object_get(d, "host")), "src");
	cr_assert_str_eq(json_string_value(json_object_get(d, "node")), "host1");
	json_decref(p);
}

Test(rpc_nova, exception_payload_matches_nova_shape)
{
	json_t *want = load_inner(FIXTURES "notification_compute.exception.json");
	json_t *wp = json_object_get(want, "payload"), *wd = rpc_nova_object_data(wp);
	json_t *got = rpc_nova_exception_payload("nova.compute.manager", "live_migration_abort",
	    "MigrationNotFoundForInstance",
	    "Migration 42 not found for instance 6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21");
	json_t *gd = rpc_nova_object_data(got), *v;
	const char *k;

	cr_assert_not_null(got);
	cr_assert_str_eq(
	    json_string_value(json_object_get(got, "nova_object.name")), "ExceptionPayload");
	cr_assert_str_eq(json_string_value(json_object_get(got, "nova_object.version")), "1.1");
	cr_assert_str_eq(json_string_value(json_object_get(got, "nova_object.namespace")), "nova");
	cr_assert_eq(json_object_size(gd), json_object_size(wd));
	json_object_foreach (wd, k, v)
		cr_assert(json_is_string(json_object_get(gd, k)), "%s", k);
	cr_assert(json_equal(json_object_get(gd, "exception"), json_object_get(wd, "exception")));
	cr_assert(json_equal(
	    json_object_get(gd, "exception_message"), json_object_get(wd, "exception_message")));
	cr_assert_str_eq(json_string_value(json_object_get(gd, "traceback")),
	    "Traceback (most recent call last):\n,  File \"nova.compute.manager\", in "
	    "live_migration_abort\n,MigrationNotFoundForInstance: Migration 42 not found for "
	    "instance 6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21\n");
	json_decref(got);
	got = rpc_nova_exception_payload(NULL, NULL, NULL, NULL);
	cr_assert_str_eq(
	    json_string_value(json_object_get(rpc_nova_object_data(got), "exception")), "");
	json_decref(got);
	json_decref(want);
}

Test(rpc_nova, fault_is_copied_into_the_action_payload, .init = setup, .fini = teardown)
{
	json_t *fault = rpc_nova_exception_payload("m", "f", "E", "boom");
	json_t *p = rpc_nova_instance_action_payload(instance, NULL, NULL, context, fault);

	cr_assert(json_equal(json_object_get(rpc_nova_object_data(p), "fault"), fault));
	cr_assert_neq(json_object_get(rpc_nova_object_data(p), "fault"), fault);
	json_decref(p);
	p = rpc_nova_instance_action_payload(instance, NULL, NULL, context, json_true());
	cr_assert(json_is_null(json_object_get(rpc_nova_object_data(p), "fault")));
	json_decref(p);
	json_decref(fault);
}

Test(rpc_nova, object_primitive)
{
	json_t *o = rpc_nova_object("X", "ns", "1.0", json_pack("{s:i}", "a", 1));
	char *s = json_dumps(o, JSON_COMPACT);

	cr_assert_str_eq(s, "{\"nova_object.name\":\"X\",\"nova_object.namespace\":\"ns\","
	                    "\"nova_object.version\":\"1.0\",\"nova_object.data\":{\"a\":1}}");
	free(s);
	json_decref(o);
	cr_assert_null(rpc_nova_object("X", "ns", "1.0", NULL));
	cr_assert_null(rpc_nova_object(NULL, "ns", "1.0", json_object()));
}

Test(rpc_nova, missing_flavor_uses_instance_figures, .init = setup, .fini = teardown)
{
	json_t *inst = json_deep_copy(instance), *p, *fd;

	json_object_del(rpc_nova_object_data(inst), "flavor");
	p = rpc_nova_instance_action_payload(inst, NULL, NULL, context, NULL);
	cr_assert_not_null(p);
	fd = rpc_nova_object_data(json_object_get(rpc_nova_object_data(p), "flavor"));
	cr_assert_not_null(fd);
	cr_assert_eq(json_integer_value(json_object_get(fd, "memory_mb")), 2048);
	cr_assert_eq(json_integer_value(json_object_get(fd, "vcpus")), 1);
	cr_assert_eq(json_integer_value(json_object_get(fd, "swap")), 0);
	cr_assert(json_is_true(json_object_get(fd, "is_public")));
	cr_assert(json_is_null(json_object_get(fd, "name")));
	cr_assert_eq(json_object_size(fd), 14);
	json_decref(p);
	json_decref(inst);
}

static json_t *
ips_for_network_info(json_t *ni)
{
	json_t *inst = json_pack("{s:s, s:{s:s, s:{s:{s:o}}}}", "nova_object.name", "Instance",
	    "nova_object.data", "uuid", "u", "info_cache", "nova_object.data", "network_info", ni);
	json_t *p = rpc_nova_instance_action_payload(inst, NULL, NULL, NULL, NULL);
	json_t *ips = json_incref(json_object_get(rpc_nova_object_data(p), "ip_addresses"));

	json_decref(p);
	json_decref(inst);
	return ips;
}

Test(rpc_nova, network_info_that_is_not_json_gives_no_ips)
{
	json_t *ips = ips_for_network_info(json_string("[{\"id\": "));

	cr_assert(json_is_array(ips));
	cr_assert_eq(json_array_size(ips), 0);
	json_decref(ips);
	ips = ips_for_network_info(json_integer(3));
	cr_assert_eq(json_array_size(ips), 0);
	json_decref(ips);
	ips = ips_for_network_info(json_string("{\"a\": 1}"));
	cr_assert_eq(json_array_size(ips), 0);
	json_decref(ips);
	ips = ips_for_network_info(
	    json_string("[1, null, {\"network\": null}, "
	                "{\"network\": {\"subnets\": 5}}, "
	                "{\"network\": {\"subnets\": [{\"ips\": [{}, 7]}]}}]"));
	cr_assert_eq(json_array_size(ips), 0);
	json_decref(ips);
}

Test(rpc_nova, network_info_ips_follow_nova_model)
{
	/* Two subnets, IPv6 without version, VIF extra keys land in meta as strings. */
	json_t *ips = ips_for_network_info(json_string(
	    "[{\"id\": \"p1\", \"address\": \"FA:16:3E:00:00:01\", \"devname\": \"tap1\","
	    " \"meta\": {\"mtu\": 1500, \"x\": {\"no\": 1}}, \"extra\": true,"
	    " \"network\": {\"label\": \"net\", \"subnets\": ["
	    "  {\"ips\": [{\"address\": \"10.0.0.5\", \"version\": 4},"
	    "             {\"address\": \"10.0.0.6\"}]},"
	    "  {\"ips\": [{\"address\": \"fd00::5\", \"floating_ips\": []}]}]}}]"));
	json_t *d;

	cr_assert_eq(json_array_size(ips), 3);
	d = rpc_nova_object_data(json_array_get(ips, 2));
	cr_assert_str_eq(json_string_value(json_object_get(d, "address")), "fd00::5");
	cr_assert_eq(json_integer_value(json_object_get(d, "version")), 6);
	cr_assert_str_eq(json_string_value(json_object_get(d, "mac")), "fa:16:3e:00:00:01");
	cr_assert_str_eq(json_string_value(json_object_get(d, "label")), "net");
	cr_assert_str_eq(json_string_value(json_object_get(d, "port_uuid")), "p1");
	cr_assert_str_eq(json_string_value(json_object_get(d, "device_name")), "tap1");
	{
		char *m = json_dumps(json_object_get(d, "meta"), JSON_COMPACT);

		cr_assert_str_eq(m, "{\"mtu\":\"1500\",\"extra\":\"True\"}");
		free(m);
	}
	d = rpc_nova_object_data(json_array_get(ips, 1));
	cr_assert_eq(json_integer_value(json_object_get(d, "version")), 4);
	json_decref(ips);
}

Test(rpc_nova, wrong_types_do_not_crash_and_become_null)
{
	json_t *inst = json_loads(
	    "{\"nova_object.name\": \"Instance\", \"nova_object.data\": {"
	    " \"uuid\": 5, \"user_id\": [], \"project_id\": {}, \"display_name\": \"x\","
	    " \"created_at\": \"yesterday\", \"updated_at\": \"2024-05-06 07:08:09.5+02:00\","
	    " \"power_state\": 9, \"vm_state\": \"active\", \"metadata\": [],"
	    " \"flavor\": \"not a flavor\", \"locked\": 1, \"info_cache\": \"x\","
	    " \"progress\": \"7\", \"task_state\": \"x\","
	    " \"system_metadata\": {\"locked_reason\": 3}, \"security_groups\": [],"
	    " \"launched_at\": \"2024-05-06T07:08Z\", \"auto_disk_config\": 0.5}}",
	    0, NULL);
	json_t *ctx = json_pack("{s:i, s:[], s:{}}", "user_id", 1, "project_id", "request_id");
	json_t *p = rpc_nova_instance_action_payload(inst, NULL, NULL, ctx, NULL);
	json_t *d = rpc_nova_object_data(p);

	cr_assert_not_null(d);
	cr_assert_str_eq(json_string_value(json_object_get(d, "uuid")), "5");
	cr_assert(json_is_null(json_object_get(d, "user_id")));
	cr_assert(json_is_null(json_object_get(d, "tenant_id")));
	cr_assert(json_is_null(json_object_get(d, "created_at")));
	cr_assert_str_eq(
	    json_string_value(json_object_get(d, "updated_at")), "2024-05-06T07:08:09+02:00");
	cr_assert_str_eq(
	    json_string_value(json_object_get(d, "launched_at")), "2024-05-06T07:08:00Z");
	cr_assert(json_is_null(json_object_get(d, "power_state")));
	cr_assert(json_is_object(json_object_get(d, "metadata")));
	cr_assert_eq(json_object_size(json_object_get(d, "metadata")), 0);
	cr_assert(json_is_true(json_object_get(d, "locked")));
	cr_assert_str_eq(json_string_value(json_object_get(d, "auto_disk_config")), "AUTO");
	cr_assert_str_eq(json_string_value(json_object_get(d, "locked_reason")), "3");
	cr_assert_eq(json_array_size(json_object_get(d, "ip_addresses")), 0);
	cr_assert(json_is_object(json_object_get(d, "flavor")));
	cr_assert_str_eq(json_string_value(json_object_get(d, "action_initiator_user")), "1");
	cr_assert(json_is_null(json_object_get(d, "action_initiator_project")));
	cr_assert(json_is_null(json_object_get(d, "request_id")));
	cr_assert_eq(json_integer_value(json_object_get(d, "progress")), 7);
	cr_assert_eq(json_object_size(d), 36);
	json_decref(p);
	json_decref(ctx);
	json_decref(inst);
}

Test(rpc_nova, no_instance_at_all_still_gives_a_full_payload)
{
	json_t *bogus[] = {NULL, json_null(), json_integer(1), json_string("x"), json_array(),
	    json_pack("{s:[]}", "nova_object.data")};

	for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
		json_t *p =
		    rpc_nova_instance_action_payload(bogus[i], NULL, NULL, bogus[i], bogus[i]);
		json_t *d = rpc_nova_object_data(p);

		cr_assert_not_null(d);
		cr_assert_eq(json_object_size(d), 36);
		cr_assert_str_eq(
		    json_string_value(json_object_get(d, "auto_disk_config")), "MANUAL");
		cr_assert(json_is_false(json_object_get(d, "locked")));
		cr_assert(json_is_null(json_object_get(d, "uuid")));
		json_decref(p);
		json_decref(bogus[i]);
	}
}

Test(rpc_nova, datetimes_are_printed_as_oslo_isotime)
{
	/* Expected values printed by oslo.versionedobjects' DateTimeField. */
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {{"2024-05-06T07:08:09Z", "2024-05-06T07:08:09Z"},
	    {"2024-05-06T07:08:09.123456", "2024-05-06T07:08:09Z"},
	    {"2024-05-06 07:08:09.5+02:00", "2024-05-06T07:08:09+02:00"},
	    {"2024-05-06T07:08:09+00:00", "2024-05-06T07:08:09+00:00"},
	    {"2024-05-06T07:08:09+0000", "2024-05-06T07:08:09+00:00"},
	    {"2024-05-06T07:08:09+02", "2024-05-06T07:08:09+02:00"},
	    {"2024-05-06T07:08Z", "2024-05-06T07:08:00Z"}, {"2024-13-06T07:08:09Z", NULL},
	    {"2024-05-06", NULL}, {"2024-05-06T07:08:09Zjunk", NULL}, {"", NULL}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *inst =
		    json_pack("{s:{s:s}}", "nova_object.data", "created_at", cases[i].in);
		json_t *p = rpc_nova_instance_action_payload(inst, NULL, NULL, NULL, NULL);
		json_t *v = json_object_get(rpc_nova_object_data(p), "created_at");

		if (cases[i].out == NULL)
			cr_expect(json_is_null(v), "%s", cases[i].in);
		else
			cr_expect_str_eq(json_string_value(v), cases[i].out, "%s", cases[i].in);
		json_decref(p);
		json_decref(inst);
	}
}

Test(rpc_nova, power_states_by_index_and_name)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {{"0", "pending"}, {"1", "running"}, {"3", "paused"}, {"4", "shutdown"},
	    {"6", "crashed"}, {"7", "suspended"}, {"8", NULL}, {"-1", NULL},
	    {"\"paused\"", "paused"}, {"\"4\"", "shutdown"}, {"\"bogus\"", NULL}, {"null", NULL},
	    {"true", NULL}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *ps = json_loads(cases[i].in, JSON_DECODE_ANY, NULL);
		json_t *inst = json_pack("{s:{s:o}}", "nova_object.data", "power_state", ps);
		json_t *p = rpc_nova_instance_action_payload(inst, NULL, NULL, NULL, NULL);
		json_t *v = json_object_get(rpc_nova_object_data(p), "power_state");

		if (cases[i].out == NULL)
			cr_expect(json_is_null(v), "%s", cases[i].in);
		else
			cr_expect_str_eq(json_string_value(v), cases[i].out, "%s", cases[i].in);
		json_decref(p);
		json_decref(inst);
	}
}

Test(rpc_nova, progress_payload)
{
	struct rpc_progress pr = {
	    .instance_uuid = "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21",
	    .migration_uuid = NULL,
	    .source_host = "host1",
	    .dest_host = "host2",
	    .phase = "precopy",
	    .migration_id = -1,
	    .percent = 42.5,
	    .memory_total = 1LL << 31,
	    .memory_processed = 1000,
	    .memory_remaining = -1,
	    .data_total = 5,
	    .data_processed = 4,
	    .data_remaining = 1,
	    .disk_total = 0,
	    .disk_processed = 0,
	    .disk_remaining = 0,
	    .dirty_rate_bps = 10,
	    .transfer_rate_bps = 20,
	    .memory_iteration = 3,
	    .elapsed_ms = 1500,
	    .eta_s = -1,
	    .expected_downtime_ms = 30,
	    .max_downtime_ms = 500,
	    .bandwidth_mib_s = 0,
	    .policy_step = 2,
	};
	json_t *p = rpc_nova_progress_payload(&pr), *d = rpc_nova_object_data(p);

	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.name")),
	    "LiveMigrationProgressPayload");
	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.namespace")), "ferry");
	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.version")), "1.1");
	cr_assert_eq(json_object_size(d), 25);
	cr_assert(json_is_null(json_object_get(d, "migration_uuid")));
	cr_assert(json_is_null(json_object_get(d, "migration_id")));
	cr_assert(json_is_null(json_object_get(d, "memory_remaining_bytes")));
	cr_assert(json_is_null(json_object_get(d, "eta_s")));
	cr_assert_eq(json_integer_value(json_object_get(d, "memory_total_bytes")), 1LL << 31);
	cr_assert_eq(json_integer_value(json_object_get(d, "dirty_rate_bytes_per_second")), 10);
	cr_assert_eq(json_integer_value(json_object_get(d, "transfer_rate_bytes_per_second")), 20);
	cr_assert_eq(json_integer_value(json_object_get(d, "policy_step")), 2);
	cr_assert_float_eq(json_real_value(json_object_get(d, "percent")), 42.5, 1e-9);
	cr_assert_str_eq(json_string_value(json_object_get(d, "phase")), "precopy");
	json_decref(p);
	pr.percent = 140.0;
	p = rpc_nova_progress_payload(&pr);
	cr_assert_float_eq(
	    json_real_value(json_object_get(rpc_nova_object_data(p), "percent")), 100.0, 1e-9);
	json_decref(p);
	pr.percent = NAN;
	p = rpc_nova_progress_payload(&pr);
	cr_assert(json_is_null(json_object_get(rpc_nova_object_data(p), "percent")));
	json_decref(p);
	cr_assert_null(rpc_nova_progress_payload(NULL));
}

Test(rpc_nova, struggling_payload_has_the_schema_keys)
{
	struct rpc_struggling s = {
	    .instance_uuid = "07b1dc07-8dc0-409c-981a-ffd8ff1fe5af",
	    .reasons = {"dirty_rate_exceeds_transfer_rate", "remaining_not_shrinking"},
	    .action = "raise_downtime",
	    .action_reason = "downtime step 3 of 10",
	    .planned = "post_copy",
	    .dirty_rate_bps = 104857600,
	    .transfer_rate_bps = 33554432,
	    .data_remaining = -1,
	    .memory_iteration = 4,
	    .elapsed_ms = 4200,
	    .deadline_ms = -1,
	    .max_downtime_ms = 150,
	    .policy_step = 3,
	};
	json_t *p = rpc_nova_struggling_payload(&s);
	json_t *d;

	cr_assert_not_null(p);
	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.name")),
	    "LiveMigrationStrugglingPayload");
	d = rpc_nova_object_data(p);
	cr_assert_eq(json_array_size(json_object_get(d, "reasons")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(d, "planned_action")), "post_copy");
	cr_assert(json_is_null(json_object_get(d, "data_remaining_bytes")));
	cr_assert(json_is_null(json_object_get(d, "migration_uuid")));
	cr_assert_eq(json_integer_value(json_object_get(d, "policy_step")), 3);
	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.version")), "1.2");
	cr_assert_null(json_object_get(d, "prediction"), "no outlook, no prediction");
	json_decref(p);

	s.prediction = (struct rpc_prediction){
	    .outlook = "struggles",
	    .confidence_pct = 75,
	    .shrink_pct = 103,
	    .dirty_set = 64LL << 20,
	    .iterations_needed = -1,
	    .predicted_downtime_ms = 640,
	    .judged_downtime_ms = 300,
	};
	p = rpc_nova_struggling_payload(&s);
	d = json_object_get(rpc_nova_object_data(p), "prediction");
	cr_assert(json_is_object(d));
	cr_assert_eq(json_object_size(d), 7);
	cr_assert_str_eq(json_string_value(json_object_get(d, "outlook")), "struggles");
	cr_assert_eq(json_integer_value(json_object_get(d, "confidence_pct")), 75);
	cr_assert_eq(json_integer_value(json_object_get(d, "shrink_pct")), 103);
	cr_assert_eq(json_integer_value(json_object_get(d, "dirty_set_bytes")), 64LL << 20);
	cr_assert(json_is_null(json_object_get(d, "iterations_needed")));
	cr_assert_eq(json_integer_value(json_object_get(d, "expected_downtime_ms")), 640);
	cr_assert_eq(json_integer_value(json_object_get(d, "judged_max_downtime_ms")), 300);
	json_decref(p);
}

/* The prediction object alone, as list_migrations 1.1 carries it: the
 * schema's seven keys, unknown figures null, nothing without an outlook. */
Test(rpc_nova, prediction_has_the_schema_keys)
{
	struct rpc_prediction pr = {
	    .outlook = "converges",
	    .confidence_pct = 50,
	    .shrink_pct = -1,
	    .dirty_set = 3LL << 20,
	    .iterations_needed = 2,
	    .predicted_downtime_ms = -1,
	    .judged_downtime_ms = 500,
	};
	json_t *o = rpc_prediction_to_json(&pr);

	cr_assert(json_is_object(o));
	cr_assert_eq(json_object_size(o), 7);
	cr_assert_str_eq(json_string_value(json_object_get(o, "outlook")), "converges");
	cr_assert_eq(json_integer_value(json_object_get(o, "confidence_pct")), 50);
	cr_assert(json_is_null(json_object_get(o, "shrink_pct")));
	cr_assert_eq(json_integer_value(json_object_get(o, "dirty_set_bytes")), 3LL << 20);
	cr_assert_eq(json_integer_value(json_object_get(o, "iterations_needed")), 2);
	cr_assert(json_is_null(json_object_get(o, "expected_downtime_ms")));
	cr_assert_eq(json_integer_value(json_object_get(o, "judged_max_downtime_ms")), 500);
	json_decref(o);

	pr.outlook = NULL;
	cr_assert_null(rpc_prediction_to_json(&pr));
	cr_assert_null(rpc_prediction_to_json(NULL));
}

Test(rpc_nova, postcopy_failed_payload_has_the_schema_keys)
{
	struct rpc_postcopy_failed f = {
	    .instance_uuid = "07b1dc07-8dc0-409c-981a-ffd8ff1fe5af",
	    .source_host = "host1",
	    .dest_host = "host2",
	    .migration_id = -1,
	    .source_state = "paused (postcopy_failed)",
	    .dest_state = "absent",
	    .errors = {"job 'migration in' failed in post-copy phase", NULL},
	    .tried = {"resume with VIR_MIGRATE_POSTCOPY_RESUME: 2 attempts over 3 s"},
	    .recovery_attempts = 2,
	    .recovery_timeout_s = 600,
	};
	json_t *p = rpc_nova_postcopy_failed_payload(&f), *d;

	cr_assert_not_null(p);
	cr_assert_str_eq(json_string_value(json_object_get(p, "nova_object.name")),
	    "LiveMigrationPostcopyFailedPayload");
	d = rpc_nova_object_data(p);
	cr_assert_eq(json_object_size(d), 12);
	cr_assert_eq(json_array_size(json_object_get(d, "errors")), 1);
	cr_assert_eq(json_array_size(json_object_get(d, "tried")), 1);
	cr_assert(json_is_null(json_object_get(d, "migration_id")));
	cr_assert(json_is_null(json_object_get(d, "broke_at")));
	cr_assert_str_eq(json_string_value(json_object_get(d, "dest_state")), "absent");
	json_decref(p);
	cr_assert_null(rpc_nova_postcopy_failed_payload(NULL));
}
