/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_instance_policy.c - per-instance overrides from flavor extra specs and
 * image properties (keys and merge rule in wk_instance_policy.h).  Pure.
 */
#include "wk_instance_policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rpc_nova.h"
#include "wk_utf8.h"

/* Longest part of a bad value quoted back in an error, in bytes. */
#define QUOTE_MAX 48

enum field { F_POST_COPY, F_AUTO_CONVERGE, F_TIMEOUT_ACTION, F_MAX };

/* Key names without their origin's prefix ("ferry:" or "image_ferry_"). */
static const char *const field_names[F_MAX] = {
    "live_migration_permit_post_copy",
    "live_migration_permit_auto_converge",
    "live_migration_timeout_action",
};

/* What one origin (flavor or image) says: -1 unset, else the value. */
struct origin {
	int v[F_MAX];
};

/* Copies @s without leading and trailing blanks into @buf; false if too long. */
static bool
trim(const char *s, char *buf, size_t n)
{
	size_t len;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= n)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return true;
}

/* oslo's strutils.bool_from_string(strict=True) vocabulary: 1, 0 or -1. */
static int
parse_bool(const char *s)
{
	static const char *const yes[] = {"1", "t", "true", "on", "y", "yes"};
	static const char *const no[] = {"0", "f", "false", "off", "n", "no"};
	char buf[16];
	size_t i;

	if (!trim(s, buf, sizeof(buf)))
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(buf, yes[i]) == 0)
			return 1;
		if (strcasecmp(buf, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int
parse_action(const char *s)
{
	char buf[32];

	if (!trim(s, buf, sizeof(buf)))
		return -1;
	if (strcasecmp(buf, "abort") == 0)
		return WK_TIMEOUT_ACTION_ABORT;
	if (strcasecmp(buf, "force_complete") == 0)
		return WK_TIMEOUT_ACTION_FORCE_COMPLETE;
	return -1;
}

/*
 * Reads the three keys from the string dict @dict (borrowed, may be NULL),
 * named "<prefix><field>"; @where names the dict in errors.
 */
static int
read_origin(
    json_t *dict, const char *prefix, const char *where, struct origin *o, struct wk_err *reterr)
{
	char key[96];
	const char *s;
	json_t *v;
	int i, q, r;

	for (i = 0; i < F_MAX; i++) {
		o->v[i] = -1;
		if (dict == NULL)
			continue;
		(void)snprintf(key, sizeof(key), "%s%s", prefix, field_names[i]);
		v = json_object_get(dict, key);
		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_string(v))
			return wk_err_set(reterr, -EINVAL, "%s %s: expected a string", where, key);
		s = json_string_value(v);
		/* Quoted at most QUOTE_MAX bytes, cut between characters: the text
		 * may reach a compute.exception notification, which must stay UTF-8. */
		q = (int)wk_utf8_prefix(s, QUOTE_MAX);
		if (i == F_TIMEOUT_ACTION) {
			r = parse_action(s);
			if (r < 0)
				return wk_err_set(reterr, -EINVAL,
				    "%s %s: invalid value \"%.*s\" (expected \"abort\" or "
				    "\"force_complete\")",
				    where, key, q, s);
		} else {
			r = parse_bool(s);
			if (r < 0)
				return wk_err_set(reterr, -EINVAL,
				    "%s %s: invalid value \"%.*s\" (expected true/false, yes/no, "
				    "on/off or 1/0)",
				    where, key, q, s);
		}
		o->v[i] = r;
	}
	return 0;
}

/* The object at @parent[@name], NULL when missing or null; -EINVAL otherwise. */
static int
get_dict(json_t *parent, const char *name, const char *where, json_t **ret, struct wk_err *reterr)
{
	json_t *v = parent != NULL ? json_object_get(parent, name) : NULL;

	if (v == NULL || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return wk_err_set(reterr, -EINVAL, "%s%s: expected an object", where, name);
	*ret = v;
	return 0;
}

static void
append_source(char *buf, size_t n, const char *key)
{
	size_t len = strlen(buf);

	(void)snprintf(buf + len, n - len, "%s%s", len > 0 ? " " : "", key);
}

int
wk_instance_policy_read(json_t *instance, struct wk_instance_policy *ret, struct wk_err *reterr)
{
	struct wk_instance_policy p;
	struct origin flavor_o, image_o;
	json_t *data, *flavor = NULL, *flavor_data = NULL, *specs = NULL, *sysmeta = NULL;
	char key[96];
	int i, r, *out[F_MAX];

	data = instance != NULL ? rpc_nova_object_data(instance) : NULL;
	if (data == NULL || !json_is_object(data))
		return wk_err_set(reterr, -EINVAL,
		    "instance: not a nova_object primitive with an object \"nova_object.data\"");

	r = get_dict(data, "flavor", "instance.", &flavor, reterr);
	if (r < 0)
		return r;
	if (flavor != NULL) {
		flavor_data = rpc_nova_object_data(flavor);
		if (flavor_data == NULL || !json_is_object(flavor_data))
			return wk_err_set(
			    reterr, -EINVAL, "instance.flavor: not a nova_object primitive");
		r = get_dict(flavor_data, "extra_specs", "instance.flavor.", &specs, reterr);
		if (r < 0)
			return r;
	}
	r = get_dict(data, "system_metadata", "instance.", &sysmeta, reterr);
	if (r < 0)
		return r;

	r = read_origin(specs, "ferry:", "flavor extra spec", &flavor_o, reterr);
	if (r < 0)
		return r;
	r = read_origin(
	    sysmeta, "image_ferry_", "image property (system_metadata)", &image_o, reterr);
	if (r < 0)
		return r;

	memset(&p, 0, sizeof(p));
	out[F_POST_COPY] = &p.permit_post_copy;
	out[F_AUTO_CONVERGE] = &p.permit_auto_converge;
	out[F_TIMEOUT_ACTION] = &p.timeout_action;
	/* The lower value is the restrictive one for every field: 0 "forbidden"
	 * and 0 "abort"; the flavor is named when both agree. */
	for (i = 0; i < F_MAX; i++) {
		*out[i] = -1;
		if (flavor_o.v[i] >= 0 && (image_o.v[i] < 0 || flavor_o.v[i] <= image_o.v[i])) {
			*out[i] = flavor_o.v[i];
			(void)snprintf(key, sizeof(key), "ferry:%s", field_names[i]);
		} else if (image_o.v[i] >= 0) {
			*out[i] = image_o.v[i];
			(void)snprintf(key, sizeof(key), "ferry_%s", field_names[i]);
		} else {
			continue;
		}
		append_source(p.source, sizeof(p.source), key);
	}
	*ret = p;
	return 0;
}

bool
wk_instance_policy_permits(int value, bool host_default)
{
	if (value < 0)
		return host_default;
	return value > 0;
}
