/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_instance_policy.c - wk_instance_policy_read() over the real Instance
 * primitive of nova 26.2.2's live_migration cast (the vendored fixture) with
 * flavor extra specs and image properties added: nova-style booleans, the
 * restrictive merge, which key decided, bad values and bad shapes.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "wk_instance_policy.h"

#define FIXTURE FERRY_SHARED_DIR "/reference/oslo-fixtures/cast_live_migration.json"

#define PC_FLAVOR "ferry:live_migration_permit_post_copy"
#define AC_FLAVOR "ferry:live_migration_permit_auto_converge"
#define TA_FLAVOR "ferry:live_migration_timeout_action"
#define PC_IMAGE  "image_ferry_live_migration_permit_post_copy"
#define AC_IMAGE  "image_ferry_live_migration_permit_auto_converge"
#define TA_IMAGE  "image_ferry_live_migration_timeout_action"

static json_t *instance;

/* Loads args.instance out of the captured wire message (envelope 2.0). */
static void
load_instance(void)
{
	json_error_t jerr;
	json_t *wire, *msg;

	wire = json_load_file(FIXTURE, 0, &jerr);
	cr_assert_not_null(wire, "%s: %s", FIXTURE, jerr.text);
	msg = json_loads(json_string_value(json_object_get(wire, "body_raw")), 0, &jerr);
	cr_assert_not_null(msg, "body_raw: %s", jerr.text);
	json_decref(wire);
	wire = json_loads(json_string_value(json_object_get(msg, "oslo.message")), 0, &jerr);
	cr_assert_not_null(wire, "oslo.message: %s", jerr.text);
	json_decref(msg);
	instance = json_incref(json_object_get(json_object_get(wire, "args"), "instance"));
	json_decref(wire);
	cr_assert_not_null(instance);
}

static void
free_instance(void)
{
	json_decref(instance);
	instance = NULL;
}

TestSuite(wk_instance_policy, .init = load_instance, .fini = free_instance);

static json_t *
data_of(json_t *primitive)
{
	json_t *d = json_object_get(primitive, "nova_object.data");

	cr_assert(json_is_object(d));
	return d;
}

static json_t *
extra_specs(void)
{
	json_t *d =
	    json_object_get(data_of(json_object_get(data_of(instance), "flavor")), "extra_specs");

	cr_assert(json_is_object(d));
	return d;
}

static json_t *
sysmeta(void)
{
	json_t *d = json_object_get(data_of(instance), "system_metadata");

	cr_assert(json_is_object(d));
	return d;
}

static void
set(json_t *dict, const char *key, const char *value)
{
	cr_assert_eq(json_object_set_new(dict, key, json_string(value)), 0);
}

static struct wk_instance_policy
read_ok(void)
{
	struct wk_instance_policy p;
	struct wk_err err = {{0}};
	int r;

	r = wk_instance_policy_read(instance, &p, &err);
	cr_assert_eq(r, 0, "read: %d %s", r, err.msg);
	return p;
}

static void
expect_einval(const char *want1, const char *want2)
{
	struct wk_instance_policy p;
	struct wk_err err = {{0}};

	memset(&p, 0x5a, sizeof(p));
	cr_assert_eq(wk_instance_policy_read(instance, &p, &err), -EINVAL);
	cr_assert_eq(p.permit_post_copy, 0x5a5a5a5a, "ret written on failure");
	cr_assert_null(strchr(err.msg, '\n'), "%s", err.msg);
	if (want1 != NULL)
		cr_assert_not_null(strstr(err.msg, want1), "'%s' not in '%s'", want1, err.msg);
	if (want2 != NULL)
		cr_assert_not_null(strstr(err.msg, want2), "'%s' not in '%s'", want2, err.msg);
}

Test(wk_instance_policy, fixture_without_ferry_keys_sets_nothing)
{
	struct wk_instance_policy p = read_ok();

	cr_assert_eq(p.permit_post_copy, -1);
	cr_assert_eq(p.permit_auto_converge, -1);
	cr_assert_eq(p.timeout_action, -1);
	cr_assert_str_eq(p.source, "");
}

Test(wk_instance_policy, flavor_extra_specs_are_read)
{
	struct wk_instance_policy p;

	set(extra_specs(), PC_FLAVOR, "false");
	set(extra_specs(), AC_FLAVOR, "true");
	set(extra_specs(), TA_FLAVOR, "force_complete");
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 0);
	cr_assert_eq(p.permit_auto_converge, 1);
	cr_assert_eq(p.timeout_action, WK_TIMEOUT_ACTION_FORCE_COMPLETE);
	cr_assert_str_eq(p.source, PC_FLAVOR " " AC_FLAVOR " " TA_FLAVOR);
}

Test(wk_instance_policy, image_properties_are_read_from_system_metadata)
{
	struct wk_instance_policy p;

	set(sysmeta(), PC_IMAGE, "no");
	set(sysmeta(), AC_IMAGE, "1");
	set(sysmeta(), TA_IMAGE, "abort");
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 0);
	cr_assert_eq(p.permit_auto_converge, 1);
	cr_assert_eq(p.timeout_action, WK_TIMEOUT_ACTION_ABORT);
	/* the longest possible source fits */
	cr_assert_str_eq(p.source, "ferry_live_migration_permit_post_copy "
	                           "ferry_live_migration_permit_auto_converge "
	                           "ferry_live_migration_timeout_action");
}

Test(wk_instance_policy, nova_style_booleans_are_accepted)
{
	static const struct {
		const char *s;
		int want;
	} cases[] = {{"true", 1}, {"True", 1}, {"TRUE", 1}, {"yes", 1}, {"Y", 1}, {"1", 1},
	    {"on", 1}, {"t", 1}, {" true ", 1}, {"false", 0}, {"False", 0}, {"no", 0}, {"N", 0},
	    {"0", 0}, {"off", 0}, {"f", 0}, {"\tno\n", 0}};
	struct wk_instance_policy p;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set(extra_specs(), AC_FLAVOR, cases[i].s);
		p = read_ok();
		cr_expect_eq(p.permit_auto_converge, cases[i].want, "'%s'", cases[i].s);
	}
	set(extra_specs(), TA_FLAVOR, "Force_Complete");
	cr_assert_eq(read_ok().timeout_action, WK_TIMEOUT_ACTION_FORCE_COMPLETE);
}

Test(wk_instance_policy, never_anywhere_means_never)
{
	struct wk_instance_policy p;

	/* flavor permits, image forbids: forbidden, by the image */
	set(extra_specs(), PC_FLAVOR, "true");
	set(sysmeta(), PC_IMAGE, "false");
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 0);
	cr_assert_str_eq(p.source, "ferry_live_migration_permit_post_copy");

	/* flavor forbids, image permits: forbidden, by the flavor */
	set(extra_specs(), PC_FLAVOR, "no");
	set(sysmeta(), PC_IMAGE, "yes");
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 0);
	cr_assert_str_eq(p.source, PC_FLAVOR);

	/* both permit: permitted, the flavor named */
	set(extra_specs(), PC_FLAVOR, "1");
	set(sysmeta(), PC_IMAGE, "on");
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 1);
	cr_assert_str_eq(p.source, PC_FLAVOR);

	/* auto-converge the same way */
	set(extra_specs(), AC_FLAVOR, "yes");
	set(sysmeta(), AC_IMAGE, "0");
	p = read_ok();
	cr_assert_eq(p.permit_auto_converge, 0);
	cr_assert_str_eq(p.source, PC_FLAVOR " ferry_live_migration_permit_auto_converge");
}

Test(wk_instance_policy, abort_wins_over_force_complete)
{
	struct wk_instance_policy p;

	set(extra_specs(), TA_FLAVOR, "force_complete");
	set(sysmeta(), TA_IMAGE, "abort");
	p = read_ok();
	cr_assert_eq(p.timeout_action, WK_TIMEOUT_ACTION_ABORT);
	cr_assert_str_eq(p.source, "ferry_live_migration_timeout_action");

	set(extra_specs(), TA_FLAVOR, "abort");
	set(sysmeta(), TA_IMAGE, "force_complete");
	p = read_ok();
	cr_assert_eq(p.timeout_action, WK_TIMEOUT_ACTION_ABORT);
	cr_assert_str_eq(p.source, TA_FLAVOR);

	/* image alone decides when the flavor is silent */
	json_object_del(extra_specs(), TA_FLAVOR);
	p = read_ok();
	cr_assert_eq(p.timeout_action, WK_TIMEOUT_ACTION_FORCE_COMPLETE);
}

Test(wk_instance_policy, bad_values_name_the_key_and_value)
{
	set(extra_specs(), PC_FLAVOR, "maybe");
	expect_einval(PC_FLAVOR, "\"maybe\"");
	set(extra_specs(), PC_FLAVOR, "");
	expect_einval(PC_FLAVOR, "\"\"");
	set(extra_specs(), PC_FLAVOR, "true");

	set(sysmeta(), TA_IMAGE, "pause");
	expect_einval(TA_IMAGE, "\"pause\"");
	set(sysmeta(), TA_IMAGE, "abort");

	set(sysmeta(), AC_IMAGE, "truest");
	expect_einval(AC_IMAGE, "\"truest\"");
	json_object_del(sysmeta(), AC_IMAGE);

	/* only strings: extra specs and system_metadata are string dicts in nova */
	cr_assert_eq(json_object_set_new(extra_specs(), AC_FLAVOR, json_true()), 0);
	expect_einval(AC_FLAVOR, "expected a string");
	json_object_del(extra_specs(), AC_FLAVOR);

	/* a very long value is cut in the message, not overflowing it */
	set(extra_specs(), TA_FLAVOR,
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "x");
	expect_einval(TA_FLAVOR, "expected \"abort\" or \"force_complete\"");
	json_object_del(extra_specs(), TA_FLAVOR);

	/* nova keys that are not ours are ignored, whatever they hold */
	cr_assert_eq(json_object_set_new(extra_specs(), "hw:cpu_policy", json_integer(3)), 0);
	cr_assert_eq(json_object_set_new(sysmeta(), "image_hw_foo", json_null()), 0);
	cr_assert_eq(read_ok().permit_post_copy, 1);
}

Test(wk_instance_policy, missing_or_null_containers_set_nothing)
{
	struct wk_instance_policy p;

	set(sysmeta(), PC_IMAGE, "false");
	cr_assert_eq(json_object_set_new(data_of(instance), "flavor", json_null()), 0);
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, 0);

	cr_assert_eq(json_object_del(data_of(instance), "flavor"), 0);
	cr_assert_eq(json_object_set_new(data_of(instance), "system_metadata", json_null()), 0);
	p = read_ok();
	cr_assert_eq(p.permit_post_copy, -1);
	cr_assert_str_eq(p.source, "");

	cr_assert_eq(json_object_del(data_of(instance), "system_metadata"), 0);
	p = read_ok();
	cr_assert_eq(p.timeout_action, -1);
}

Test(wk_instance_policy, null_extra_specs_and_null_values_set_nothing)
{
	json_t *flavor_data = data_of(json_object_get(data_of(instance), "flavor"));

	cr_assert_eq(json_object_set_new(flavor_data, "extra_specs", json_null()), 0);
	cr_assert_eq(json_object_set_new(sysmeta(), PC_IMAGE, json_null()), 0);
	cr_assert_eq(read_ok().permit_post_copy, -1);
}

Test(wk_instance_policy, a_long_bad_value_is_quoted_whole_characters_only)
{
	struct wk_instance_policy p;
	struct wk_err err = {{0}};
	char value[80], want[64];
	json_t *j;

	/* 47 ASCII bytes, then é across bytes 48-49: "%.48s" kept half of it. */
	memset(value, 'x', 47);
	strcpy(value + 47, "\xc3\xa9tail");
	set(extra_specs(), PC_FLAVOR, value);
	cr_assert_eq(wk_instance_policy_read(instance, &p, &err), -EINVAL);
	snprintf(want, sizeof(want), "\"%.47s\" (expected", value);
	cr_assert_not_null(strstr(err.msg, want), "'%s' not in '%s'", want, err.msg);
	/* As a compute.exception notification would carry it. */
	j = json_string(err.msg);
	cr_assert_not_null(j, "not UTF-8: %s", err.msg);
	json_decref(j);

	/* A whole é within the 48 bytes is kept. */
	memset(value, 'x', 46);
	strcpy(value + 46, "\xc3\xa9tail");
	set(extra_specs(), PC_FLAVOR, value);
	cr_assert_eq(wk_instance_policy_read(instance, &p, &err), -EINVAL);
	snprintf(want, sizeof(want), "\"%.48s\" (expected", value);
	cr_assert_not_null(strstr(err.msg, want), "'%s' not in '%s'", want, err.msg);
}

Test(wk_instance_policy, bad_shapes_are_refused)
{
	struct wk_instance_policy p;
	json_t *flavor_data;
	json_t *bare;

	cr_assert_eq(wk_instance_policy_read(NULL, &p, NULL), -EINVAL);
	bare = json_pack("{s:s}", "uuid", "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21");
	cr_assert_eq(wk_instance_policy_read(bare, &p, NULL), -EINVAL);
	json_decref(bare);

	cr_assert_eq(json_object_set_new(sysmeta(), "x", json_string("y")), 0);
	cr_assert_eq(json_object_set_new(data_of(instance), "system_metadata", json_array()), 0);
	expect_einval("instance.system_metadata", "expected an object");

	cr_assert_eq(json_object_del(data_of(instance), "system_metadata"), 0);
	flavor_data = data_of(json_object_get(data_of(instance), "flavor"));
	cr_assert_eq(json_object_set_new(flavor_data, "extra_specs", json_string("{}")), 0);
	expect_einval("instance.flavor.extra_specs", "expected an object");

	cr_assert_eq(json_object_set_new(data_of(instance), "flavor", json_string("m1.small")), 0);
	expect_einval("instance.flavor", NULL);
	cr_assert_eq(json_object_set_new(data_of(instance), "flavor", json_object()), 0);
	expect_einval("instance.flavor", "nova_object");
}

Test(wk_instance_policy, permits_combines_with_the_host_default)
{
	cr_assert_eq(wk_instance_policy_permits(-1, true), true);
	cr_assert_eq(wk_instance_policy_permits(-1, false), false);
	cr_assert_eq(wk_instance_policy_permits(0, true), false);
	cr_assert_eq(wk_instance_policy_permits(1, false), true);
}
