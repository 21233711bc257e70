/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow: the live-migration flow on both ends (see wk_flow.h); this file
 * holds the record table itself (create, find, unlink), phase names, the
 * tick, list_migrations and stop.  The rest of the flow is split by concern:
 * wk_flow_record.c (journal, restart), wk_flow_notify.c, wk_flow_policy.c,
 * wk_flow_source.c and wk_flow_dest.c; wk_flow_priv.h ties them together.
 * Invariant: a record lives from the request that creates it until exactly
 * one terminal notification (post.end or rollback.end on the source,
 * post_dest.end or rollback_dest.end on the destination) has been sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_nova.h"
#include "rpc_uuid.h"
#include "wk_flow_priv.h"
#include "wk_log.h"
#include "wk_utf8.h"

WK_LOG_NAME("worker.flow");

int
wk_flow_new(const struct wk_flow_deps *deps, wk_flow **ret_flow)
{
	wk_flow *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	f->d = *deps;
	f->next_job_id = 1;
	*ret_flow = f;
	return 0;
}

void
mig_free(struct mig *m)
{
	if (m == NULL)
		return;
	free(m->uuid);
	free(m->dest_host);
	free(m->migration_uuid);
	free(m->request_id);
	json_decref(m->instance);
	json_decref(m->context);
	json_decref(m->migrate_data);
	json_decref(m->cast_migrate_data);
	json_decref(m->created);
	free(m->disks);
	free(m);
}

wk_flow *
wk_flow_free(wk_flow *f)
{
	if (f == NULL)
		return NULL;
	while (f->migs != NULL) {
		struct mig *m = f->migs;

		f->migs = m->next;
		wk_bus_cancel(f->d.bus, m);
		mig_free(m);
	}
	free(f);
	return NULL;
}

size_t
wk_flow_active(const wk_flow *f)
{
	size_t n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		n++;
	return n;
}

struct mig *
mig_find(wk_flow *f, const char *uuid, enum mig_role role)
{
	for (struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == role && strcmp(m->uuid, uuid) == 0)
			return m;
	return NULL;
}

struct mig *
mig_find_job(wk_flow *f, uint64_t job_id)
{
	for (struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->job_id == job_id)
			return m;
	return NULL;
}

void
mig_unlink_free(wk_flow *f, struct mig *m)
{
	bool frees_slot =
	    m->role == ROLE_SOURCE && m->phase != PHASE_QUEUED && m->phase != PHASE_POSTCOPY_FAILED;

	for (struct mig **pp = &f->migs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	wk_bus_cancel(f->d.bus, m);
	mig_journal_drop(f, m);
	mig_free(m);
	if (frees_slot) {
		wk_flow_reshare(f);
		wk_flow_start_queued(f);
	}
}

const char *
mig_phase_name(const struct mig *m)
{
	switch (m->phase) {
	case PHASE_QUEUED:
		return "queued";
	case PHASE_PREPARING:
		return "preparing";
	case PHASE_RUNNING:
		if (m->recovering)
			return "postcopy_recovering";
		if (m->postcopy_active)
			return "postcopy";
		return m->paused_by_us ? "paused" : "precopy";
	case PHASE_COMPLETING:
		return "completing";
	case PHASE_INBOUND:
		return "inbound";
	case PHASE_POSTCOPY_FAILED:
		return "postcopy_failed";
	}
	return "unknown";
}

/* Reads an optional typed argument; -EINVAL names it when the type is wrong. */
int
wk_flow_arg_get(json_t *args, const char *method, const char *name, json_type type, bool required,
    json_t **ret, struct wk_err *reterr)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || (json_is_null(v) && !required)) {
		if (required)
			return wk_err_set(
			    reterr, -EINVAL, "%s: missing argument '%s'", method, name);
		*ret = NULL;
		return 0;
	}
	if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
		return wk_err_set(
		    reterr, -EINVAL, "%s: argument '%s' has the wrong type", method, name);
	*ret = v;
	return 0;
}

int
wk_flow_uuid_arg(const char *method, const char *uuid, char canonical[RPC_UUID_DASHED_LEN],
    struct wk_err *reterr)
{
	if (rpc_uuid_canonical(uuid, canonical) < 0)
		return wk_err_set(reterr, -EINVAL, "%s: instance uuid '%.*s' is not a uuid", method,
		    (int)wk_utf8_prefix(uuid ? uuid : "", 64), uuid ? uuid : "");
	return 0;
}

/* The instance's uuid is canonicalised in the message itself, so that the
 * records, the journal, notifications and the calls to the peer host all
 * name the instance the same way, whatever spelling the sender used. */
int
wk_flow_instance_arg(json_t *args, const char *method, const char **ret_uuid, json_t **ret_instance,
    struct wk_err *reterr)
{
	char canonical[RPC_UUID_DASHED_LEN];
	json_t *instance = NULL, *data;
	const char *uuid = NULL;
	int r;

	r = wk_flow_arg_get(args, method, "instance", JSON_OBJECT, true, &instance, reterr);
	if (r < 0)
		return r;
	uuid = rpc_nova_instance_uuid(instance);
	if (uuid == NULL)
		return wk_err_set(reterr, -EINVAL,
		    "%s: argument 'instance' is not a nova Instance with a uuid", method);
	r = wk_flow_uuid_arg(method, uuid, canonical, reterr);
	if (r < 0)
		return r;
	data = rpc_nova_object_data(instance);
	if (strcmp(uuid, canonical) != 0 &&
	    json_object_set_new(data, "uuid", json_string(canonical)) < 0)
		return -ENOMEM;
	*ret_uuid = rpc_nova_instance_uuid(instance);
	*ret_instance = instance;
	return 0;
}

const char *
wk_flow_obj_str(json_t *primitive, const char *key)
{
	json_t *data = primitive ? rpc_nova_object_data(primitive) : NULL;

	return data ? json_string_value(json_object_get(data, key)) : NULL;
}

static int
earliest(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

int
wk_flow_tick(wk_flow *f, uint64_t now_ms)
{
	uint64_t next = 0;
	int t;

	t = wk_flow_check_leases(f, now_ms);
	t = earliest(t, wk_flow_expire_queued(f, now_ms));
	wk_flow_start_queued(f);
	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_SOURCE && m->phase == PHASE_QUEUED && m->retry_at_ms > now_ms &&
		    (next == 0 || m->retry_at_ms < next))
			next = m->retry_at_ms;
	return earliest(t, next == 0 ? -1 : (int)(next - now_ms));
}

void
wk_flow_stop(wk_flow *f)
{
	struct mig *m;

	f->stopping = true;
	if (f->d.journal != NULL) {
		/* The journal keeps them; the next start carries them on. */
		for (m = f->migs; m != NULL; m = m->next)
			if (m->role == ROLE_SOURCE &&
			    (m->phase == PHASE_QUEUED || m->phase == PHASE_PREPARING)) {
				wk_log_set_request_id(m->request_id);
				log_info("Migration of '%s' has not started; the journal keeps it "
				         "for the next start",
				    m->uuid);
			}
		wk_log_set_request_id(NULL);
		return;
	}
	do {
		for (m = f->migs; m != NULL; m = m->next)
			if (m->role == ROLE_SOURCE &&
			    (m->phase == PHASE_QUEUED || m->phase == PHASE_PREPARING))
				break;
		if (m != NULL) {
			wk_log_set_request_id(m->request_id);
			mig_finish_rollback(
			    f, m, "the worker is stopping before the migration started");
		}
	} while (m != NULL);
	wk_log_set_request_id(NULL);
}

/* The host the migration leaves: this one for a source record; for a
 * destination record the instance's host in the source's
 * pre_live_migration (nova's instance.host is the source until post).
 * Borrowed, or NULL. */
static const char *
mig_source_host(const wk_flow *f, const struct mig *m)
{
	return m->role == ROLE_SOURCE ? f->d.conf->host : wk_flow_obj_str(m->instance, "host");
}

/* ms until the completion deadline of a source migration in pre-copy
 * (negative once it passed and the timeout action is still pending), or
 * false when none applies: no completion timeout, not started, or no
 * longer in pre-copy (post-copy, recovery: the policy's deadline is over). */
static bool
mig_deadline_left(const struct mig *m, uint64_t now_ms, long long *ret_left_ms)
{
	const struct wk_policy_state *st = &m->policy_state;

	if (m->role != ROLE_SOURCE || m->phase != PHASE_RUNNING || m->postcopy_active ||
	    m->recovering || st->start_ms == 0 || st->deadline_ms < 0)
		return false;
	*ret_left_ms = (long long)(st->start_ms + (uint64_t)st->deadline_ms) - (long long)now_ms;
	return true;
}

/* list_migrations' "prediction" (ferry 1.1, additive): what the predictor
 * made of the newest sample, as the struggling notification carries it;
 * null before the first sample and on a destination record.  NULL on
 * ENOMEM. */
static json_t *
mig_prediction_json(const struct wk_decision *d)
{
	struct rpc_prediction p;

	if (d == NULL)
		return json_null();
	mig_prediction_wire(&d->prediction, &p);
	return rpc_prediction_to_json(&p);
}

/* list_migrations' policy view of m (ferry 1.0, additive): the verdict of
 * the newest sample, its reasons, why this action or none, the next rung,
 * the deadline, the prediction (1.1).  Destination records have no policy: empty verdict, -1 and
 * null figures (ferryctl takes them from the source). */
static int
mig_policy_fields(const wk_flow *f, const struct mig *m, uint64_t now_ms, json_t *o)
{
	const struct wk_decision *d = m->decided ? &m->decision : NULL;
	json_t *reasons = json_array();
	long long left_ms = 0;
	bool has_left = mig_deadline_left(m, now_ms, &left_ms);
	int r = 0;

	if (reasons == NULL)
		return -ENOMEM;
	for (unsigned bit = 1; d != NULL && bit <= WK_REASON_TRANSFER_STALLED; bit <<= 1)
		if ((d->reasons & bit) &&
		    json_array_append_new(reasons, json_string(wk_reason_name(bit))) < 0)
			r = -ENOMEM;
	r |= json_object_set_new(o, "source_host",
	    mig_source_host(f, m) ? json_string(mig_source_host(f, m)) : json_null());
	r |= json_object_set_new(o, "struggling", json_boolean(d != NULL && d->reasons != 0));
	r |= json_object_set_new(o, "reasons", reasons);
	r |= json_object_set_new(o, "action_reason",
	    d && d->action_reason ? json_string(d->action_reason) : json_null());
	r |= json_object_set_new(
	    o, "planned_action", d ? json_string(wk_action_name(d->planned)) : json_null());
	r |= json_object_set_new(o, "last_action",
	    m->last_action != WK_ACTION_NONE ? json_string(wk_action_name(m->last_action))
	                                     : json_null());
	r |= json_object_set_new(o, "policy_step", json_integer(d ? d->policy_step : -1));
	r |= json_object_set_new(o, "max_downtime_ms",
	    json_integer(m->max_downtime_ms > 0 ? (json_int_t)m->max_downtime_ms : -1));
	r |= json_object_set_new(
	    o, "dirty_rate_bytes_per_second", json_integer(d ? d->dirty_rate_bps : -1));
	r |= json_object_set_new(
	    o, "transfer_rate_bytes_per_second", json_integer(d ? d->transfer_rate_bps : -1));
	r |= json_object_set_new(o, "deadline_ms",
	    json_integer(m->role == ROLE_SOURCE && m->policy_state.start_ms != 0
	                     ? m->policy_state.deadline_ms
	                     : -1));
	r |= json_object_set_new(o, "seconds_left",
	    has_left ? json_integer(left_ms >= 0 ? left_ms / 1000 : -((999 - left_ms) / 1000))
	             : json_null());
	r |= json_object_set_new(o, "prediction", mig_prediction_json(d));
	return r < 0 ? -ENOMEM : 0;
}

/* list_migrations' byte counts of the newest sample (added later,
 * additively): memory and disk, total / processed / remaining, -1 unknown;
 * disk only moves in a block migration. */
static int
mig_byte_fields(const struct mig *m, json_t *o)
{
	const struct wk_job_sample *s = &m->last_sample;
	const struct {
		const char *key;
		long long v;
	} f[] = {
	    {"memory_total_bytes", s->memory_total},
	    {"memory_processed_bytes", s->memory_processed},
	    {"memory_remaining_bytes", s->memory_remaining},
	    {"disk_total_bytes", s->disk_total},
	    {"disk_processed_bytes", s->disk_processed},
	    {"disk_remaining_bytes", s->disk_remaining},
	};
	bool sampled = m->last_sample.t_ms != 0;
	int r = 0;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		r |= json_object_set_new(
		    o, f[i].key, json_integer(sampled && f[i].v >= 0 ? (json_int_t)f[i].v : -1));
	return r < 0 ? -ENOMEM : 0;
}

int
wk_flow_list_migrations(wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *list = json_array();

	if (list == NULL)
		return -ENOMEM;
	for (struct mig *m = f->migs; m != NULL; m = m->next) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I,s:f,s:I,s:I,s:I,s:I}",
		    "instance_uuid", m->uuid, "role",
		    m->role == ROLE_SOURCE ? "source" : "destination", "phase", mig_phase_name(m),
		    "dest_host", m->dest_host, "migration_uuid", m->migration_uuid, "migration_id",
		    (json_int_t)m->migration_id, "percent", m->progress.percent,
		    "data_remaining_bytes", (json_int_t)m->last_sample.data_remaining,
		    "memory_iteration", (json_int_t)m->last_sample.memory_iteration, "eta_s",
		    (json_int_t)m->progress.eta_s, "elapsed_ms",
		    (json_int_t)(m->started_ms ? wk_now_ms() - m->started_ms : 0));

		if (o != NULL && mig_byte_fields(m, o) < 0) {
			json_decref(o);
			o = NULL;
		}
		if (o != NULL && mig_policy_fields(f, m, wk_now_ms(), o) < 0) {
			json_decref(o);
			o = NULL;
		}
		if (o == NULL || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return -ENOMEM;
		}
	}
	*ret_result = list;
	return 0;
}
