/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_nova: nova object primitives and notification payloads.  The field
 * mapping follows nova 26.2.2 nova/notifications/objects/{instance,flavor,
 * exception}.py and nova/network/model.py; value coercion follows the
 * oslo.versionedobjects field types (StringField turns numbers into
 * strings, DiskConfigField turns truthiness into AUTO/MANUAL, ...).
 * Where nova would raise on malformed input, ferry emits null instead.
 */
#include "rpc_nova.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

json_t *
rpc_nova_object(const char *name, const char *ns, const char *version, json_t *data)
{
	json_t *o;

	if (data == NULL)
		return NULL;
	if (name == NULL || ns == NULL || version == NULL) {
		json_decref(data);
		return NULL;
	}
	o = json_pack("{s:s, s:s, s:s, s:o}", "nova_object.name", name, "nova_object.namespace", ns,
	    "nova_object.version", version, "nova_object.data", data);
	return o;
}

json_t *
rpc_nova_object_data(json_t *primitive)
{
	json_t *d =
	    json_is_object(primitive) ? json_object_get(primitive, "nova_object.data") : NULL;

	return json_is_object(d) ? d : NULL;
}

const char *
rpc_nova_instance_uuid(json_t *instance)
{
	json_t *name, *data, *uuid;

	if (!json_is_object(instance))
		return NULL;
	name = json_object_get(instance, "nova_object.name");
	if (!json_is_string(name) || strcmp(json_string_value(name), "Instance") != 0)
		return NULL;
	data = rpc_nova_object_data(instance);
	uuid = data != NULL ? json_object_get(data, "uuid") : NULL;
	return json_is_string(uuid) ? json_string_value(uuid) : NULL;
}

/* ---- oslo.versionedobjects coercions; each returns a new reference ---- */

/* Python's repr(float), close enough: shortest %.Ng that round-trips. */
static json_t *
py_float_str(double d)
{
	char buf[64];

	if (isnan(d))
		return json_string("nan");
	if (isinf(d))
		return json_string(d > 0 ? "inf" : "-inf");
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".e") == NULL)
		strcat(buf, ".0");
	return json_string(buf);
}

/* String(): str, int, float (bool is an int) -> str(value); else NULL. */
static json_t *
coerce_str(json_t *v)
{
	char buf[32];

	if (v == NULL)
		return NULL;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_deep_copy(v);
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return json_string(buf);
	case JSON_REAL:
		return py_float_str(json_real_value(v));
	case JSON_TRUE:
		return json_string("True");
	case JSON_FALSE:
		return json_string("False");
	default:
		return NULL;
	}
}

/* Nullable StringField: null when absent, null or not coercible. */
static json_t *
f_str(json_t *obj, const char *key)
{
	json_t *s = coerce_str(json_is_object(obj) ? json_object_get(obj, key) : NULL);

	return s != NULL ? s : json_null();
}

static bool
parse_ll(const char *s, long long *ret)
{
	char *end;
	long long n;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (errno != 0 || *end != '\0')
		return false;
	*ret = n;
	return true;
}

/* IntegerField: int(value). */
static json_t *
f_int(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	long long n;
	double d;

	if (json_is_integer(v))
		return json_integer(json_integer_value(v));
	if (json_is_boolean(v))
		return json_integer(json_is_true(v) ? 1 : 0);
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (isfinite(d) && d > -9.2e18 && d < 9.2e18)
			return json_integer((json_int_t)d);
	}
	if (json_is_string(v) && parse_ll(json_string_value(v), &n))
		return json_integer(n);
	return json_null();
}

/* FloatField: float(value). */
static json_t *
f_float(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	char *end;
	double d;

	if (json_is_real(v))
		return json_real(json_real_value(v));
	if (json_is_integer(v))
		return json_real((double)json_integer_value(v));
	if (json_is_string(v)) {
		d = strtod(json_string_value(v), &end);
		if (end != json_string_value(v) && *end == '\0' && isfinite(d))
			return json_real(d);
	}
	return json_null();
}

static bool
truthy(const json_t *v)
{
	if (v == NULL)
		return false;
	switch (json_typeof(v)) {
	case JSON_TRUE:
		return true;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0.0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	default:
		return false;
	}
}

/* BooleanField: bool(value); @dflt when absent or null. */
static json_t *
f_bool(json_t *obj, const char *key, bool dflt)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	if (v == NULL || json_is_null(v))
		return json_boolean(dflt);
	return json_boolean(truthy(v));
}

/* DictOfStringsField: values coerced by String(); others dropped.  NULL on ENOMEM. */
static json_t *
dict_of_strings(json_t *src)
{
	json_t *out = json_object(), *v, *s;
	const char *k;

	if (out == NULL || !json_is_object(src))
		return out;
	json_object_foreach (src, k, v) {
		s = coerce_str(v);
		if (s != NULL && json_object_set_new(out, k, s) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* Nullable DictOfStringsField. */
static json_t *
f_dict_nullable(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_object(v) ? dict_of_strings(v) : json_null();
}

/* Nullable ListOfStringsField. */
static json_t *
f_list_nullable(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	json_t *out, *e, *s;
	size_t i;

	if (!json_is_array(v))
		return json_null();
	out = json_array();
	if (out == NULL)
		return NULL;
	json_array_foreach (v, i, e) {
		s = coerce_str(e);
		if (s != NULL && json_array_append_new(out, s) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static bool
digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

/*
 * DateTimeField: parse ISO 8601 ("YYYY-MM-DD[T ]HH:MM[:SS[.f]][Z|+-HH[:]MM]")
 * and print oslo's isotime(): "%Y-%m-%dT%H:%M:%S" plus "Z" for "Z" or no
 * zone, else the numeric offset as "+HH:MM" (even +00:00, as iso8601's
 * tzname does).  Unparsable -> null.
 */
static json_t *
f_datetime(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	int y, mo, d, h, mi, s = 0, oh = 0, om = 0;
	char buf[48], zone[16] = "Z";
	const char *p;

	if (!json_is_string(v))
		return json_null();
	p = json_string_value(v);
	if (strlen(p) < 16 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) ||
	    p[7] != '-' || !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != ' ') ||
	    !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi))
		return json_null();
	p += 16;
	if (*p == ':') {
		if (!digits(p + 1, 2, &s))
			return json_null();
		p += 3;
		if (*p == '.' || *p == ',') {
			p++;
			if (!isdigit((unsigned char)*p))
				return json_null();
			while (isdigit((unsigned char)*p))
				p++;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return json_null();
	if (*p == '+' || *p == '-') {
		char sign = *p;

		if (!digits(p + 1, 2, &oh))
			return json_null();
		p += 3;
		if (*p == ':')
			p++;
		if (*p != '\0') {
			if (!digits(p, 2, &om))
				return json_null();
			p += 2;
		}
		if (*p != '\0' || oh > 23 || om > 59)
			return json_null();
		snprintf(zone, sizeof(zone), "%c%02d:%02d", sign, oh, om);
	} else if (*p == 'Z' || *p == 'z') {
		if (p[1] != '\0')
			return json_null();
	} else if (*p != '\0') {
		return json_null();
	}
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d%s", y, mo, d, h, mi, s, zone);
	return json_string(buf);
}

/* InstancePowerStateField: index (int or digit string) -> name; names pass. */
static json_t *
f_power_state(json_t *obj, const char *key)
{
	static const char *const names[] = {"pending", "running", "_unused", "paused", "shutdown",
	    "_unused", "crashed", "suspended"};
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	long long n = -1;

	if (json_is_integer(v))
		n = json_integer_value(v);
	else if (json_is_string(v) && !parse_ll(json_string_value(v), &n)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(json_string_value(v), names[i]) == 0)
				return json_string(names[i]);
		return json_null();
	}
	if (n >= 0 && n < (long long)(sizeof(names) / sizeof(names[0])))
		return json_string(names[n]);
	return json_null();
}

static int
put(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v); /* NULL v: -1 (ENOMEM upstream) */
}

/* ---- payloads ---- */

/* FlavorPayload 1.4 of a Flavor primitive, or of the instance's figures. */
static json_t *
flavor_payload(json_t *inst)
{
	json_t *fl = rpc_nova_object_data(json_object_get(inst, "flavor"));
	json_t *d = json_object();
	int r = 0;

	if (d == NULL)
		return NULL;
	if (fl != NULL) {
		r |= put(d, "flavorid", f_str(fl, "flavorid"));
		r |= put(d, "memory_mb", f_int(fl, "memory_mb"));
		r |= put(d, "vcpus", f_int(fl, "vcpus"));
		r |= put(d, "root_gb", f_int(fl, "root_gb"));
		r |= put(d, "ephemeral_gb", f_int(fl, "ephemeral_gb"));
		r |= put(d, "name", f_str(fl, "name"));
		r |= put(d, "swap", f_int(fl, "swap"));
		r |= put(d, "rxtx_factor", f_float(fl, "rxtx_factor"));
		r |= put(d, "vcpu_weight", f_int(fl, "vcpu_weight"));
		r |= put(d, "disabled", f_bool(fl, "disabled", false));
		r |= put(d, "is_public", f_bool(fl, "is_public", true));
		r |= put(d, "extra_specs", f_dict_nullable(fl, "extra_specs"));
		r |= put(d, "projects", f_list_nullable(fl, "projects"));
		r |= put(d, "description", f_str(fl, "description"));
		if (r == 0 && json_is_null(json_object_get(d, "swap")))
			r |= put(d, "swap", json_integer(0));
	} else {
		/*
		 * nova would lazy-load instance.flavor from its database; the
		 * casts that omit it (force_complete, abort) leave ferry with
		 * the legacy per-instance figures and Flavor's defaults.
		 */
		r |= put(d, "flavorid", json_null());
		r |= put(d, "memory_mb", f_int(inst, "memory_mb"));
		r |= put(d, "vcpus", f_int(inst, "vcpus"));
		r |= put(d, "root_gb", f_int(inst, "root_gb"));
		r |= put(d, "ephemeral_gb", f_int(inst, "ephemeral_gb"));
		r |= put(d, "name", json_null());
		r |= put(d, "swap", json_integer(0));
		r |= put(d, "rxtx_factor", json_real(1.0));
		r |= put(d, "vcpu_weight", json_null());
		r |= put(d, "disabled", json_false());
		r |= put(d, "is_public", json_true());
		r |= put(d, "extra_specs", json_null());
		r |= put(d, "projects", json_null());
		r |= put(d, "description", json_null());
	}
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("FlavorPayload", "nova", "1.4", d);
}

static bool
vif_known_key(const char *k)
{
	static const char *const known[] = {"id", "address", "network", "type", "details",
	    "devname", "ovs_interfaceid", "qbh_params", "qbg_params", "active", "vnic_type",
	    "profile", "preserve_on_delete", "delegate_create", "meta"};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(k, known[i]) == 0)
			return true;
	return false;
}

/* VIF meta as nova's model builds it: "meta" updated by unknown keys. */
static json_t *
vif_meta(json_t *vif)
{
	json_t *meta = dict_of_strings(json_object_get(vif, "meta")), *v, *s;
	const char *k;

	if (meta == NULL)
		return NULL;
	json_object_foreach (vif, k, v) {
		if (vif_known_key(k))
			continue;
		s = coerce_str(v);
		if (s != NULL && json_object_set_new(meta, k, s) < 0) {
			json_decref(meta);
			return NULL;
		}
	}
	return meta;
}

/* MACAddressField: the address in lower case; null when not a string. */
static json_t *
mac_lower(json_t *v)
{
	char buf[64];
	size_t n;

	if (!json_is_string(v))
		return json_null();
	n = json_string_length(v);
	if (n >= sizeof(buf))
		return json_deep_copy(v);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)json_string_value(v)[i]);
	buf[n] = '\0';
	return json_string(buf);
}

static json_t *
ip_payload(json_t *vif, json_t *network, json_t *ip)
{
	json_t *addr = json_object_get(ip, "address"), *ver, *d;
	int r = 0;

	d = json_object();
	if (d == NULL)
		return NULL;
	r |= put(d, "label", f_str(network, "label"));
	r |= put(d, "mac", mac_lower(json_object_get(vif, "address")));
	r |= put(d, "meta", vif_meta(vif));
	r |= put(d, "port_uuid", f_str(vif, "id"));
	ver = f_int(ip, "version");
	if (ver != NULL && (!json_is_integer(ver) || json_integer_value(ver) == 0)) {
		json_decref(ver);
		ver = json_integer(strchr(json_string_value(addr), ':') != NULL ? 6 : 4);
	}
	r |= put(d, "version", ver);
	r |= put(d, "address", json_deep_copy(addr));
	r |= put(d, "device_name", f_str(vif, "devname"));
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("IpPayload", "nova", "1.0", d);
}

/* Appends the IpPayloads of one VIF (VIF.fixed_ips()).  -ENOMEM or 0. */
static int
vif_ips(json_t *list, json_t *vif)
{
	json_t *network = json_object_get(vif, "network"), *subnets, *subnet, *ips, *ip, *p;
	size_t i, j;

	if (!json_is_object(network) || json_object_size(network) == 0)
		return 0;
	subnets = json_object_get(network, "subnets");
	json_array_foreach (subnets, i, subnet) {
		ips = json_is_object(subnet) ? json_object_get(subnet, "ips") : NULL;
		json_array_foreach (ips, j, ip) {
			if (!json_is_object(ip) || !json_is_string(json_object_get(ip, "address")))
				continue;
			p = ip_payload(vif, network, ip);
			if (p == NULL || json_array_append_new(list, p) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static json_t *
ip_addresses(json_t *inst)
{
	json_t *cache = rpc_nova_object_data(json_object_get(inst, "info_cache"));
	json_t *ni = cache != NULL ? json_object_get(cache, "network_info") : NULL;
	json_t *list = json_array(), *parsed = NULL, *vif;
	size_t i;

	if (list == NULL)
		return NULL;
	if (json_is_string(ni)) {
		parsed = json_loadb(json_string_value(ni), json_string_length(ni), 0, NULL);
		ni = parsed;
	}
	json_array_foreach (ni, i, vif) {
		if (json_is_object(vif) && vif_ips(list, vif) < 0) {
			json_decref(list);
			list = NULL;
			break;
		}
	}
	json_decref(parsed);
	return list;
}

static json_t *
ctx_value(json_t *ctx, const char *key)
{
	json_t *v = json_is_object(ctx) ? json_object_get(ctx, key) : NULL;

	return v != NULL && !json_is_null(v) ? v : NULL;
}

/* String() of @v, or null when absent or not coercible. */
static json_t *
str_or_null(json_t *v)
{
	json_t *s = coerce_str(v);

	return s != NULL ? s : json_null();
}

json_t *
rpc_nova_instance_action_payload(
    json_t *instance, const char *host, const char *node, json_t *context, json_t *fault)
{
	json_t *inst = rpc_nova_object_data(instance), *empty = NULL, *d, *v, *sysmeta;
	json_t *uid, *pid;
	int r = 0;

	if (inst == NULL) {
		inst = empty = json_object();
		if (inst == NULL)
			return NULL;
	}
	d = json_object();
	if (d == NULL) {
		json_decref(empty);
		return NULL;
	}
	r |= put(d, "fault", json_is_object(fault) ? json_deep_copy(fault) : json_null());
	/* nova leaves request_id out for contexts without user and project. */
	uid = ctx_value(context, "user_id");
	pid = ctx_value(context, "project_id");
	v = json_is_object(context) ? json_object_get(context, "request_id") : NULL;
	r |= put(d, "request_id", truthy(uid) && truthy(pid) ? str_or_null(v) : json_null());
	r |= put(d, "uuid", f_str(inst, "uuid"));
	r |= put(d, "user_id", f_str(inst, "user_id"));
	r |= put(d, "tenant_id", f_str(inst, "project_id"));
	r |= put(d, "reservation_id", f_str(inst, "reservation_id"));
	r |= put(d, "display_name", f_str(inst, "display_name"));
	r |= put(d, "display_description", f_str(inst, "display_description"));
	r |= put(d, "host_name", f_str(inst, "hostname"));
	r |= put(d, "host", host != NULL ? json_string(host) : f_str(inst, "host"));
	r |= put(d, "node", node != NULL ? json_string(node) : f_str(inst, "node"));
	r |= put(d, "os_type", f_str(inst, "os_type"));
	r |= put(d, "architecture", f_str(inst, "architecture"));
	r |= put(d, "availability_zone", f_str(inst, "availability_zone"));
	r |= put(d, "flavor", flavor_payload(inst));
	r |= put(d, "image_uuid", f_str(inst, "image_ref"));
	r |= put(d, "key_name", f_str(inst, "key_name"));
	r |= put(d, "kernel_id", f_str(inst, "kernel_id"));
	r |= put(d, "ramdisk_id", f_str(inst, "ramdisk_id"));
	r |= put(d, "created_at", f_datetime(inst, "created_at"));
	r |= put(d, "launched_at", f_datetime(inst, "launched_at"));
	r |= put(d, "terminated_at", f_datetime(inst, "terminated_at"));
	r |= put(d, "deleted_at", f_datetime(inst, "deleted_at"));
	r |= put(d, "updated_at", f_datetime(inst, "updated_at"));
	r |= put(d, "state", f_str(inst, "vm_state"));
	r |= put(d, "power_state", f_power_state(inst, "power_state"));
	r |= put(d, "task_state", f_str(inst, "task_state"));
	r |= put(d, "progress", f_int(inst, "progress"));
	r |= put(d, "ip_addresses", ip_addresses(inst));
	r |= put(d, "block_devices", json_null());
	r |= put(d, "metadata", dict_of_strings(json_object_get(inst, "metadata")));
	r |= put(d, "locked", f_bool(inst, "locked", false));
	r |= put(d, "auto_disk_config",
	    json_string(truthy(json_object_get(inst, "auto_disk_config")) ? "AUTO" : "MANUAL"));
	r |= put(d, "action_initiator_user", str_or_null(uid));
	r |= put(d, "action_initiator_project", str_or_null(pid));
	sysmeta = json_object_get(inst, "system_metadata");
	r |= put(
	    d, "locked_reason", f_str(json_is_object(sysmeta) ? sysmeta : NULL, "locked_reason"));
	json_decref(empty);
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("InstanceActionPayload", "nova", "1.8", d);
}

json_t *
rpc_nova_live_migration_payload(
    json_t *instance, const char *action, const char *phase, const char *self_host, json_t *context)
{
	bool end = phase != NULL && strcmp(phase, "end") == 0;
	bool moved = end && action != NULL && strcmp(action, "live_migration_post_dest") == 0;
	bool reset =
	    moved || (end && action != NULL && strcmp(action, "live_migration_rollback") == 0);
	json_t *copy, *data, *p;

	if (!reset)
		return rpc_nova_instance_action_payload(instance, NULL, NULL, context, NULL);
	/* Only the data object changes: shallow copies are enough. */
	data = rpc_nova_object_data(instance);
	data = data != NULL ? json_copy(data) : json_object();
	if (data == NULL)
		return NULL;
	copy = json_is_object(instance) ? json_copy(instance) : json_object();
	if (copy == NULL || json_object_set_new(data, "task_state", json_null()) < 0) {
		json_decref(copy);
		json_decref(data);
		return NULL;
	}
	if (json_object_set_new(copy, "nova_object.data", data) < 0) {
		json_decref(copy);
		return NULL;
	}
	p = rpc_nova_instance_action_payload(
	    copy, moved ? self_host : NULL, moved ? self_host : NULL, context, NULL);
	json_decref(copy);
	return p;
}

json_t *
rpc_nova_exception_payload(const char *module_name, const char *function_name,
    const char *exception, const char *exception_message)
{
	const char *mod = module_name != NULL ? module_name : "";
	const char *fn = function_name != NULL ? function_name : "";
	const char *exc = exception != NULL ? exception : "";
	const char *msg = exception_message != NULL ? exception_message : "";
	json_t *d;
	char *tb;

	/* The shape of ','.join(traceback.format_exception(...)). */
	if (asprintf(&tb, "Traceback (most recent call last):\n,  File \"%s\", in %s\n,%s: %s\n",
	        mod, fn, exc, msg) < 0)
		return NULL;
	d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "module_name", mod, "function_name", fn,
	    "exception", exc, "exception_message", msg, "traceback", tb);
	free(tb);
	if (d == NULL)
		return NULL;
	return rpc_nova_object("ExceptionPayload", "nova", "1.1", d);
}
