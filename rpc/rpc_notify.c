/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_notify: builds the inner oslo notification message.  The _context_*
 * block reproduces what nova 26.2.2 puts on the wire after oslo 14.0.3's
 * _sanitize_context() and nova's RequestContext.from_dict().to_dict()
 * round trip (checked against oslo-fixtures/notification_*.json).
 */
#include "rpc_notify.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "rpc_uuid.h"

int
rpc_notify_format_timestamp(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	time_t secs;
	long usec;
	int n;

	if (ts == NULL || buf == NULL)
		return -EINVAL;
	if (len < RPC_NOTIFY_TS_LEN)
		return -ENOSPC;
	secs = ts->tv_sec;
	usec = ts->tv_nsec / 1000;
	if (ts->tv_nsec < 0 || ts->tv_nsec > 999999999 || gmtime_r(&secs, &tm) == NULL)
		return -EINVAL;
	if (tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return -EINVAL;
	if (usec == 0)
		n = snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		n = snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

/* nova's utils.strtime(): "%Y-%m-%dT%H:%M:%S.%f", fraction always present. */
static int
format_strtime(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	time_t secs = ts->tv_sec;
	int n;

	if (gmtime_r(&secs, &tm) == NULL)
		return -EINVAL;
	n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

int
rpc_notify_routing_key(const char *topic, const char *priority, char *buf, size_t len)
{
	size_t tl, pl;

	if (topic == NULL || priority == NULL || buf == NULL)
		return -EINVAL;
	tl = strlen(topic);
	pl = strlen(priority);
	if (tl + 1 + pl + 1 > len) {
		if (len > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	memcpy(buf, topic, tl);
	buf[tl] = '.';
	for (size_t i = 0; i < pl; i++)
		buf[tl + 1 + i] = (char)tolower((unsigned char)priority[i]);
	buf[tl + 1 + pl] = '\0';
	return 0;
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Python truthiness of a JSON value; NULL (absent) is false. */
static bool
truthy(const json_t *v)
{
	if (v == NULL)
		return false;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return false;
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
	}
	return false;
}

/* New reference: a deep copy of context[key], or null when absent. */
static json_t *
ctx_copy(json_t *ctx, const char *key)
{
	json_t *v = json_is_object(ctx) ? json_object_get(ctx, key) : NULL;

	return v != NULL ? json_deep_copy(v) : json_null();
}

/* New reference: context[key] when truthy (nova drops falsy ids), else null. */
static json_t *
ctx_truthy(json_t *ctx, const char *key)
{
	json_t *v = json_is_object(ctx) ? json_object_get(ctx, key) : NULL;

	return truthy(v) ? json_deep_copy(v) : json_null();
}

static const char *
idt_part(json_t *ctx, const char *key)
{
	json_t *v = json_is_object(ctx) ? json_object_get(ctx, key) : NULL;

	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : "-";
}

static int
set_new(json_t *obj, const char *key, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(obj, key, v);
}

static int
add_context(json_t *msg, json_t *ctx, const struct timespec *now)
{
	char ts[40], idt[1024], rid[4 + RPC_UUID_DASHED_LEN];
	json_t *v;
	int r = 0;

	r |= set_new(msg, "_context_user", ctx_truthy(ctx, "user_id"));
	r |= set_new(msg, "_context_project_id", ctx_truthy(ctx, "project_id"));
	r |= set_new(msg, "_context_system_scope", ctx_copy(ctx, "system_scope"));
	r |= set_new(msg, "_context_project", ctx_truthy(ctx, "project_id"));
	r |= set_new(msg, "_context_domain", ctx_copy(ctx, "domain"));
	r |= set_new(msg, "_context_user_domain", ctx_copy(ctx, "user_domain"));
	r |= set_new(msg, "_context_project_domain", ctx_copy(ctx, "project_domain"));
	v = json_is_object(ctx) ? json_object_get(ctx, "is_admin") : NULL;
	r |= set_new(msg, "_context_is_admin", v != NULL ? json_deep_copy(v) : json_false());
	r |= set_new(msg, "_context_read_only", json_false());
	r |= set_new(msg, "_context_show_deleted", json_false());
	r |= set_new(msg, "_context_auth_token", json_null());
	v = json_is_object(ctx) ? json_object_get(ctx, "request_id") : NULL;
	if (truthy(v)) {
		r |= set_new(msg, "_context_request_id", json_deep_copy(v));
	} else {
		memcpy(rid, "req-", 4);
		rpc_uuid4_dashed(rid + 4);
		r |= set_new(msg, "_context_request_id", json_string(rid));
	}
	r |= set_new(msg, "_context_global_request_id", ctx_copy(ctx, "global_request_id"));
	r |= set_new(msg, "_context_resource_uuid", json_null());
	v = json_is_object(ctx) ? json_object_get(ctx, "roles") : NULL;
	r |= set_new(msg, "_context_roles", truthy(v) ? json_deep_copy(v) : json_array());
	snprintf(idt, sizeof(idt), "%s %s %s %s %s", idt_part(ctx, "user_id"),
	    idt_part(ctx, "project_id"), idt_part(ctx, "domain"), idt_part(ctx, "user_domain"),
	    idt_part(ctx, "project_domain"));
	r |= set_new(msg, "_context_user_identity", json_string(idt));
	r |= set_new(msg, "_context_is_admin_project", json_true());
	r |= set_new(msg, "_context_user_id", ctx_truthy(ctx, "user_id"));
	r |= set_new(msg, "_context_read_deleted", json_string("no"));
	r |= set_new(msg, "_context_remote_address", json_null());
	if (format_strtime(now, ts, sizeof(ts)) < 0)
		return -1;
	r |= set_new(msg, "_context_timestamp", json_string(ts));
	r |= set_new(msg, "_context_quota_class", json_null());
	r |= set_new(msg, "_context_user_name", ctx_copy(ctx, "user_name"));
	r |= set_new(msg, "_context_service_catalog", json_array());
	r |= set_new(msg, "_context_project_name", ctx_copy(ctx, "project_name"));
	return r != 0 ? -1 : 0;
}

json_t *
rpc_notify_build(const char *publisher_id, const char *event_type, const char *priority,
    json_t *payload, json_t *context)
{
	char mid[RPC_UUID_DASHED_LEN], uid[RPC_UUID_HEX_LEN], ts[RPC_NOTIFY_TS_LEN];
	struct timespec now;
	json_t *msg;
	int r = 0;

	if (payload == NULL)
		return NULL;
	msg = json_object();
	if (msg == NULL) {
		json_decref(payload);
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	rpc_uuid4_dashed(mid);
	rpc_uuid4_hex(uid);
	r |= set_new(msg, "message_id", json_string(mid));
	r |= set_new(msg, "publisher_id", str_or_null(publisher_id));
	r |= set_new(msg, "event_type", str_or_null(event_type));
	r |= set_new(msg, "priority", str_or_null(priority));
	r |= json_object_set_new(msg, "payload", payload);
	if (rpc_notify_format_timestamp(&now, ts, sizeof(ts)) < 0)
		r = -1;
	else
		r |= set_new(msg, "timestamp", json_string(ts));
	r |= set_new(msg, "_unique_id", json_string(uid));
	if (r != 0 || add_context(msg, context, &now) < 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}
