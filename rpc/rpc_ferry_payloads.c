/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_ferry_payloads: ferry's own notification payloads (namespace
 * "ferry": progress, struggling, post-copy failed), declared in
 * rpc_nova.h beside nova's.  Negative figures and NULL strings become
 * null, as the schemas in schemas/payloads/ say.  Pure, any thread.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rpc_nova.h"

static json_t *
figure(long long v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *
opt_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
rpc_nova_progress_payload(const struct rpc_progress *p)
{
	double pct;
	json_t *d;
	int r = 0;

	if (p == NULL)
		return NULL;
	d = json_object();
	if (d == NULL)
		return NULL;
	pct = p->percent < 0.0 ? 0.0 : p->percent > 100.0 ? 100.0 : p->percent;
	r |= json_object_set_new(d, "instance_uuid", opt_str(p->instance_uuid));
	r |= json_object_set_new(d, "migration_uuid", opt_str(p->migration_uuid));
	r |= json_object_set_new(d, "migration_id", figure(p->migration_id));
	r |= json_object_set_new(d, "source_host", opt_str(p->source_host));
	r |= json_object_set_new(d, "dest_host", opt_str(p->dest_host));
	r |= json_object_set_new(d, "phase", opt_str(p->phase));
	r |= json_object_set_new(d, "percent", isnan(p->percent) ? json_null() : json_real(pct));
	r |= json_object_set_new(d, "memory_total_bytes", figure(p->memory_total));
	r |= json_object_set_new(d, "memory_processed_bytes", figure(p->memory_processed));
	r |= json_object_set_new(d, "memory_remaining_bytes", figure(p->memory_remaining));
	r |= json_object_set_new(d, "data_total_bytes", figure(p->data_total));
	r |= json_object_set_new(d, "data_processed_bytes", figure(p->data_processed));
	r |= json_object_set_new(d, "data_remaining_bytes", figure(p->data_remaining));
	r |= json_object_set_new(d, "disk_total_bytes", figure(p->disk_total));
	r |= json_object_set_new(d, "disk_processed_bytes", figure(p->disk_processed));
	r |= json_object_set_new(d, "disk_remaining_bytes", figure(p->disk_remaining));
	r |= json_object_set_new(d, "dirty_rate_bytes_per_second", figure(p->dirty_rate_bps));
	r |= json_object_set_new(d, "transfer_rate_bytes_per_second", figure(p->transfer_rate_bps));
	r |= json_object_set_new(d, "memory_iteration", figure(p->memory_iteration));
	r |= json_object_set_new(d, "elapsed_ms", figure(p->elapsed_ms));
	r |= json_object_set_new(d, "eta_s", figure(p->eta_s));
	r |= json_object_set_new(d, "expected_downtime_ms", figure(p->expected_downtime_ms));
	r |= json_object_set_new(d, "max_downtime_ms", figure(p->max_downtime_ms));
	r |= json_object_set_new(d, "bandwidth_mib_s", figure(p->bandwidth_mib_s));
	r |= json_object_set_new(d, "policy_step", figure(p->policy_step));
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("LiveMigrationProgressPayload", "ferry", "1.1", d);
}

json_t *
rpc_prediction_to_json(const struct rpc_prediction *p)
{
	json_t *pr;
	int r = 0;

	if (p == NULL || p->outlook == NULL || (pr = json_object()) == NULL)
		return NULL;
	r |= json_object_set_new(pr, "outlook", json_string(p->outlook));
	r |= json_object_set_new(pr, "confidence_pct", figure(p->confidence_pct));
	r |= json_object_set_new(pr, "dirty_set_bytes", figure(p->dirty_set));
	r |= json_object_set_new(pr, "shrink_pct", figure(p->shrink_pct));
	r |= json_object_set_new(pr, "iterations_needed", figure(p->iterations_needed));
	r |= json_object_set_new(pr, "expected_downtime_ms", figure(p->predicted_downtime_ms));
	r |= json_object_set_new(pr, "judged_max_downtime_ms", figure(p->judged_downtime_ms));
	if (r != 0) {
		json_decref(pr);
		return NULL;
	}
	return pr;
}

json_t *
rpc_nova_struggling_payload(const struct rpc_struggling *s)
{
	json_t *d, *reasons;
	int r = 0;

	if (s == NULL)
		return NULL;
	d = json_object();
	reasons = json_array();
	if (d == NULL || reasons == NULL) {
		json_decref(d);
		json_decref(reasons);
		return NULL;
	}
	for (size_t i = 0; i < 4 && s->reasons[i] != NULL; i++)
		r |= json_array_append_new(reasons, json_string(s->reasons[i]));
	r |= json_object_set_new(d, "instance_uuid", opt_str(s->instance_uuid));
	r |= json_object_set_new(d, "migration_uuid", opt_str(s->migration_uuid));
	r |= json_object_set_new(d, "reasons", reasons);
	r |= json_object_set_new(d, "action", opt_str(s->action ? s->action : "none"));
	r |= json_object_set_new(d, "action_reason", opt_str(s->action_reason));
	r |= json_object_set_new(d, "planned_action", opt_str(s->planned));
	r |= json_object_set_new(d, "dirty_rate_bytes_per_second", figure(s->dirty_rate_bps));
	r |= json_object_set_new(d, "transfer_rate_bytes_per_second", figure(s->transfer_rate_bps));
	r |= json_object_set_new(d, "data_remaining_bytes", figure(s->data_remaining));
	r |= json_object_set_new(d, "memory_iteration", figure(s->memory_iteration));
	r |= json_object_set_new(d, "elapsed_ms", figure(s->elapsed_ms));
	r |= json_object_set_new(d, "deadline_ms", figure(s->deadline_ms));
	r |= json_object_set_new(d, "max_downtime_ms", figure(s->max_downtime_ms));
	r |= json_object_set_new(d, "policy_step", figure(s->policy_step));
	if (s->prediction.outlook != NULL) {
		json_t *pr = rpc_prediction_to_json(&s->prediction);

		if (pr == NULL) {
			json_decref(d);
			return NULL;
		}
		r |= json_object_set_new(d, "prediction", pr);
	}
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("LiveMigrationStrugglingPayload", "ferry", "1.2", d);
}

static json_t *
str_array(const char *const *items, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		if (items[i] != NULL && json_array_append_new(a, opt_str(items[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

json_t *
rpc_nova_postcopy_failed_payload(const struct rpc_postcopy_failed *p)
{
	json_t *d;
	int r = 0;

	if (p == NULL)
		return NULL;
	d = json_object();
	if (d == NULL)
		return NULL;
	r |= json_object_set_new(d, "instance_uuid", opt_str(p->instance_uuid));
	r |= json_object_set_new(d, "migration_uuid", opt_str(p->migration_uuid));
	r |= json_object_set_new(d, "migration_id", figure(p->migration_id));
	r |= json_object_set_new(d, "source_host", opt_str(p->source_host));
	r |= json_object_set_new(d, "dest_host", opt_str(p->dest_host));
	r |= json_object_set_new(d, "source_state", opt_str(p->source_state));
	r |= json_object_set_new(d, "dest_state", opt_str(p->dest_state));
	r |= json_object_set_new(d, "errors", str_array(p->errors, 4));
	r |= json_object_set_new(d, "tried", str_array(p->tried, 4));
	r |= json_object_set_new(d, "recovery_attempts", json_integer(p->recovery_attempts));
	r |= json_object_set_new(d, "recovery_timeout_s", json_integer(p->recovery_timeout_s));
	r |= json_object_set_new(d, "broke_at", opt_str(p->broke_at));
	if (r != 0) {
		json_decref(d);
		return NULL;
	}
	return rpc_nova_object("LiveMigrationPostcopyFailedPayload", "ferry", "1.0", d);
}
