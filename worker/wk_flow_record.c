/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_record: what a restarted worker needs to carry on.  The journal
 * record of one migration (its format, written and read back here only),
 * when it is saved and dropped, and wk_flow_recover: what happens to each
 * phase when the worker restarts mid-migration.  Main thread only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_flow_priv.h"
#include "wk_journal.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

/*
 * Record format, version 2: every field by name, never raw struct bytes, so
 * a record survives a change of a struct's layout and a reader can say which
 * key it could not use.  Version 1 (wk_policy_config and wk_policy_state as
 * hex dumps of their bytes) is refused, not guessed at.  A nullable field
 * (dest_host, migration_uuid, request_id, ...: a destination reservation has
 * no dest_host, a cast may have no request id) may be null or absent.
 */
#define RECORD_VERSION 2

static const char *const phase_names[] = {
    [PHASE_QUEUED] = "queued",
    [PHASE_PREPARING] = "preparing",
    [PHASE_RUNNING] = "running",
    [PHASE_COMPLETING] = "completing",
    [PHASE_INBOUND] = "inbound",
    [PHASE_POSTCOPY_FAILED] = "postcopy_failed",
};

static void
journal_key(const struct mig *m, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%s", m->role == ROLE_SOURCE ? "source" : "destination", m->uuid);
}

static json_t *
iter_to_json(const struct wk_policy_iter *it)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "iteration",
	    (json_int_t)it->iteration, "dirty_set", (json_int_t)it->dirty_set, "rem_min",
	    (json_int_t)it->rem_min, "rem_peak", (json_int_t)it->rem_peak, "dirty_sum",
	    (json_int_t)it->dirty_sum, "n_dirty", (json_int_t)it->n_dirty, "bps_sum",
	    (json_int_t)it->bps_sum, "n_bps", (json_int_t)it->n_bps, "bps_max",
	    (json_int_t)it->bps_max, "t_first", (json_int_t)it->t_first, "t_last",
	    (json_int_t)it->t_last, "proc_first", (json_int_t)it->proc_first, "proc_last",
	    (json_int_t)it->proc_last);
}

static json_t *
policy_to_json(const struct wk_policy_config *p)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:s,s:b,s:b,s:b,s:I}", "max_downtime_ms",
	    (json_int_t)p->max_downtime_ms, "downtime_steps", (json_int_t)p->downtime_steps,
	    "downtime_delay_s", (json_int_t)p->downtime_delay_s, "completion_timeout_s",
	    (json_int_t)p->completion_timeout_s, "timeout_action",
	    p->timeout_action == WK_TIMEOUT_FORCE_COMPLETE ? "force_complete" : "abort",
	    "permit_post_copy", p->permit_post_copy, "permit_auto_converge",
	    p->permit_auto_converge, "permit_pause", p->permit_pause, "data_bytes",
	    (json_int_t)p->data_bytes);
}

/* Refusals per action, by action name ({"post_copy": 2}); two or more
 * means given up (wk_policy_action_result). */
static json_t *
action_failures_to_json(const struct wk_policy_state *s)
{
	json_t *o = json_object();

	for (int a = WK_ACTION_NONE + 1; o != NULL && a < _WK_ACTION_MAX; a++)
		if (s->failures[a] > 0 && json_object_set_new(o, wk_action_name((enum wk_action)a),
		                              json_integer(s->failures[a])) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *
policy_state_to_json(const struct wk_policy_state *s)
{
	json_t *done = json_array();

	for (size_t i = 0; done != NULL && i < WK_POLICY_HISTORY; i++)
		if (json_array_append_new(done, iter_to_json(&s->done[i])) < 0) {
			json_decref(done);
			done = NULL;
		}
	if (done == NULL)
		return NULL;
	return json_pack("{s:I,s:I,s:I,s:i,s:I,s:o,s:o,s:I,s:I,s:b,s:I,s:I,s:b,s:b,s:b,s:b,s:b,s:o,"
	                 "s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "start_ms", (json_int_t)s->start_ms, "deadline_ms", (json_int_t)s->deadline_ms,
	    "step_delay_ms", (json_int_t)s->step_delay_ms, "step", s->step, "reported",
	    (json_int_t)s->reported, "cur", iter_to_json(&s->cur), "done", done, "last_processed",
	    (json_int_t)s->last_processed, "processed_since_ms", (json_int_t)s->processed_since_ms,
	    "ladder_acted", s->ladder_acted, "ladder_iter", (json_int_t)s->ladder_iter,
	    "ladder_t_ms", (json_int_t)s->ladder_t_ms, "throttled", s->throttled, "post_copy",
	    s->post_copy, "paused", s->paused, "finished", s->finished, "aborted", s->aborted,
	    "action_failures", action_failures_to_json(s), "struggling", s->struggling,
	    "downtime_raised", s->downtime_raised, "switch_wait_iter",
	    (json_int_t)s->switch_wait_iter, "switch_wait_t_ms", (json_int_t)s->switch_wait_t_ms,
	    "prev_iter", (json_int_t)s->prev_iter, "prev_rem", (json_int_t)s->prev_rem, "prev_t_ms",
	    (json_int_t)s->prev_t_ms, "pause_req_iter", (json_int_t)s->pause_req_iter,
	    "pause_req_t_ms", (json_int_t)s->pause_req_t_ms);
}

/*
 * What of a request context a restart needs: who asked (for the
 * notifications' action_initiator and the calls to the destination) and
 * the request ids that tie the logs together.  An allow-list, so nothing
 * secret can slip in with a new oslo or nova key: never auth_token, any
 * other *token*, *secret* or *password* key, nor service_catalog.  Only
 * scalars and arrays of strings (roles) are kept.
 */
static const char *const context_keep[] = {
    "request_id",
    "global_request_id",
    "user",
    "user_id",
    "user_name",
    "user_domain",
    "user_identity",
    "project",
    "project_id",
    "project_name",
    "project_domain",
    "tenant",
    "roles",
    "is_admin",
    "read_deleted",
    "show_deleted",
    "timestamp",
};

static bool
context_value_ok(json_t *v)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return !json_is_object(v);
	json_array_foreach (v, i, e)
		if (!json_is_string(e))
			return false;
	return true;
}

json_t *
wk_flow_journal_context(json_t *context)
{
	json_t *kept, *v;

	if (!json_is_object(context))
		return NULL;
	kept = json_object();
	if (kept == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(context_keep) / sizeof(context_keep[0]); i++) {
		v = json_object_get(context, context_keep[i]);
		if (v != NULL && context_value_ok(v) &&
		    json_object_set_new(kept, context_keep[i], json_deep_copy(v)) < 0) {
			json_decref(kept);
			return NULL;
		}
	}
	return kept;
}

/* The stream knobs this migration resolved, with their reasons. */
static json_t *
tuning_to_json(const struct wk_tuning_mig *t)
{
	return json_pack("{s:i,s:b,s:s,s:i,s:b,s:I,s:I,s:b,s:{s:s,s:s,s:s,s:s}}",
	    "parallel_connections", t->parallel_connections, "xbzrle", t->compressed,
	    "multifd_compression", wk_multifd_comp_name(t->multifd_compression), "zstd_level",
	    t->zstd_level, "zero_copy", t->zero_copy, "qemu_version", (json_int_t)t->qemu_version,
	    "libvirt_version", (json_int_t)t->libvirt_version, "tls", t->tls, "why", "parallel",
	    t->why.parallel, "xbzrle", t->why.compression, "multifd_compression",
	    t->why.multifd_compression, "zero_copy", t->why.zero_copy);
}

json_t *
mig_record(const struct mig *m)
{
	/* The request context without its token (issue 12.2). */
	json_t *context = wk_flow_journal_context(m->context);
	json_t *rec;

	rec = json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s?,s:I,s:s?,s:b,s:b,s:b,s:b,s:b,s:s,s:O,s:O?,"
	                "s:O?,s:O?,s:I,s:I,s:I,s:i,s:o,s:o}",
	    "version", RECORD_VERSION, "role", m->role == ROLE_SOURCE ? "source" : "destination",
	    "phase", phase_names[m->phase], "uuid", m->uuid, "dest_host", m->dest_host,
	    "migration_uuid", m->migration_uuid, "migration_id", (json_int_t)m->migration_id,
	    "request_id", m->request_id, "block_migration", m->block_migration, "persistent",
	    m->persistent, "postcopy_active", m->postcopy_active, "paused_by_us", m->paused_by_us,
	    "abort_requested", m->abort_requested, "abort_reason", m->abort_reason, "instance",
	    m->instance, "context", context, "migrate_data", m->migrate_data, "cast_migrate_data",
	    m->cast_migrate_data, "seq", (json_int_t)m->seq, "started_ms",
	    (json_int_t)m->started_ms, "max_downtime_ms", (json_int_t)m->max_downtime_ms,
	    "policy_step", m->policy_step, "policy", policy_to_json(&m->policy), "policy_state",
	    policy_state_to_json(&m->policy_state));
	json_decref(context);
	/* When it was accepted: the queue timeout runs from there, also across
	 * a restart (monotonic ms, like started_ms). */
	if (rec != NULL && json_object_set_new(rec, "queued_since_ms",
	                       json_integer((json_int_t)m->queued_since_ms)) < 0) {
		json_decref(rec);
		return NULL;
	}
	if (rec != NULL && m->tuning_resolved &&
	    json_object_set_new(rec, "tuning", tuning_to_json(&m->tuning)) < 0) {
		json_decref(rec);
		return NULL;
	}
	/* Block migration (added later, optional when read): the source's
	 * local disks and copy mode, the destination's images to remove on a
	 * rollback. */
	if (rec != NULL &&
	    ((m->disks != NULL &&
	         json_object_set_new(rec, "local_disks", wk_disk_list_to_json(m->disks)) < 0) ||
	        json_object_set_new(
	            rec, "disk_copy", json_string(wk_disk_copy_name(m->disk_copy))) < 0 ||
	        (m->created != NULL &&
	            json_object_set_new(rec, "created_disks", json_deep_copy(m->created)) < 0) ||
	        (m->disks_removed && json_object_set_new(rec, "disks_removed", json_true()) < 0))) {
		json_decref(rec);
		return NULL;
	}
	return rec;
}

/* Records m as it is now.  A failure is logged; most callers go on (the
 * migration would only not survive a restart of the worker), the accepting
 * write of live_migration does not. */
int
mig_journal_save(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	json_t *rec;
	char key[128];
	int r;

	if (f->d.journal == NULL)
		return 0;
	journal_key(m, key, sizeof(key));
	rec = mig_record(m);
	r = rec ? wk_journal_write(f->d.journal, key, rec, &err) : -ENOMEM;
	if (r < 0)
		log_error("Cannot journal the migration of '%s': %s", m->uuid,
		    rec ? err.msg : "out of memory");
	json_decref(rec);
	return r;
}

void
mig_journal_drop(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	char key[128];

	if (f->d.journal == NULL)
		return;
	journal_key(m, key, sizeof(key));
	if (wk_journal_remove(f->d.journal, key, &err) < 0)
		log_error("Cannot remove the journal record of '%s': %s", m->uuid, err.msg);
}

/*
 * Readers of one key of object o.  Each returns true with the value in *ret,
 * or false with e naming the key (prefixed by where, e.g. "policy.") and
 * what is wrong with it, never its value: records hold request contexts.
 */
static bool
bad_key(struct wk_err *e, const char *where, const char *key, json_t *v, const char *want)
{
	wk_err_set(
	    e, -EINVAL, "key '%s%s' %s %s", where, key, v ? "is not" : "is missing, want", want);
	return false;
}

static bool
get_int(json_t *o, const char *where, const char *key, long long min, long long max, long long *ret,
    struct wk_err *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return bad_key(e, where, key, v, "an integer in range");
	*ret = json_integer_value(v);
	return true;
}

static bool
get_bool(json_t *o, const char *where, const char *key, bool *ret, struct wk_err *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return bad_key(e, where, key, v, "a boolean");
	*ret = json_is_true(v);
	return true;
}

/* nullable: null or absence give NULL. */
static bool
get_str(json_t *o, const char *where, const char *key, bool nullable, const char **ret,
    struct wk_err *e)
{
	json_t *v = json_object_get(o, key);

	if (nullable && (v == NULL || json_is_null(v))) {
		*ret = NULL;
		return true;
	}
	if (!json_is_string(v))
		return bad_key(e, where, key, v, nullable ? "a string or null" : "a string");
	*ret = json_string_value(v);
	return true;
}

/* An object (borrowed); nullable as get_str. */
static bool
get_obj(
    json_t *o, const char *where, const char *key, bool nullable, json_t **ret, struct wk_err *e)
{
	json_t *v = json_object_get(o, key);

	if (nullable && (v == NULL || json_is_null(v))) {
		*ret = NULL;
		return true;
	}
	if (!json_is_object(v))
		return bad_key(e, where, key, v, nullable ? "an object or null" : "an object");
	*ret = v;
	return true;
}

static bool
get_uint(json_t *o, const char *where, const char *key, unsigned *ret, struct wk_err *e)
{
	long long v;

	if (!get_int(o, where, key, 0, UINT_MAX, &v, e))
		return false;
	*ret = (unsigned)v;
	return true;
}

static bool
get_u64(json_t *o, const char *where, const char *key, uint64_t *ret, struct wk_err *e)
{
	long long v;

	if (!get_int(o, where, key, 0, LLONG_MAX, &v, e))
		return false;
	*ret = (uint64_t)v;
	return true;
}

static bool
get_ll(json_t *o, const char *where, const char *key, long long *ret, struct wk_err *e)
{
	return get_int(o, where, key, LLONG_MIN, LLONG_MAX, ret, e);
}

/* get_ll / get_u64 for a key that older records lack: *ret untouched then. */
static bool
opt_ll(json_t *o, const char *where, const char *key, long long *ret, struct wk_err *e)
{
	return json_object_get(o, key) == NULL || get_ll(o, where, key, ret, e);
}

static bool
opt_u64(json_t *o, const char *where, const char *key, uint64_t *ret, struct wk_err *e)
{
	return json_object_get(o, key) == NULL || get_u64(o, where, key, ret, e);
}

static bool
iter_from_json(json_t *o, const char *where, struct wk_policy_iter *it, struct wk_err *e)
{
	if (!json_is_object(o))
		return bad_key(e, where, "", json_is_null(o) ? NULL : o, "an object");
	/* absent in records of workers before the convergence predictor */
	it->dirty_set = -1;
	it->bps_max = 0;
	if (!(opt_ll(o, where, "dirty_set", &it->dirty_set, e) &&
	        opt_ll(o, where, "bps_max", &it->bps_max, e)))
		return false;
	return get_ll(o, where, "iteration", &it->iteration, e) &&
	       get_ll(o, where, "rem_min", &it->rem_min, e) &&
	       get_ll(o, where, "rem_peak", &it->rem_peak, e) &&
	       get_ll(o, where, "dirty_sum", &it->dirty_sum, e) &&
	       get_ll(o, where, "n_dirty", &it->n_dirty, e) &&
	       get_ll(o, where, "bps_sum", &it->bps_sum, e) &&
	       get_ll(o, where, "n_bps", &it->n_bps, e) &&
	       get_u64(o, where, "t_first", &it->t_first, e) &&
	       get_u64(o, where, "t_last", &it->t_last, e) &&
	       get_ll(o, where, "proc_first", &it->proc_first, e) &&
	       get_ll(o, where, "proc_last", &it->proc_last, e);
}

static bool
policy_from_json(json_t *o, struct wk_policy_config *p, struct wk_err *e)
{
	const char *w = "policy.", *action = NULL;
	long long data_bytes;

	if (!(get_uint(o, w, "max_downtime_ms", &p->max_downtime_ms, e) &&
	        get_uint(o, w, "downtime_steps", &p->downtime_steps, e) &&
	        get_uint(o, w, "downtime_delay_s", &p->downtime_delay_s, e) &&
	        get_uint(o, w, "completion_timeout_s", &p->completion_timeout_s, e) &&
	        get_str(o, w, "timeout_action", false, &action, e) &&
	        get_bool(o, w, "permit_post_copy", &p->permit_post_copy, e) &&
	        get_bool(o, w, "permit_auto_converge", &p->permit_auto_converge, e) &&
	        get_bool(o, w, "permit_pause", &p->permit_pause, e) &&
	        get_int(o, w, "data_bytes", 0, LLONG_MAX, &data_bytes, e)))
		return false;
	if (strcmp(action, "abort") == 0)
		p->timeout_action = WK_TIMEOUT_ABORT;
	else if (strcmp(action, "force_complete") == 0)
		p->timeout_action = WK_TIMEOUT_FORCE_COMPLETE;
	else
		return bad_key(e, w, "timeout_action", o, "\"abort\" or \"force_complete\"");
	p->data_bytes = (unsigned long long)data_bytes;
	return true;
}

static bool
action_failures_from_json(json_t *o, struct wk_policy_state *s, struct wk_err *e)
{
	const char *name;
	json_t *v;

	if (o == NULL)
		return true; /* none recorded */
	if (!json_is_object(o))
		return bad_key(e, "policy_state.", "action_failures", o, "an object");
	json_object_foreach (o, name, v) {
		int a;

		for (a = WK_ACTION_NONE + 1; a < _WK_ACTION_MAX; a++)
			if (strcmp(name, wk_action_name((enum wk_action)a)) == 0)
				break;
		if (a == _WK_ACTION_MAX || !json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 255)
			return bad_key(e, "policy_state.action_failures.", name, v,
			    "a count of refusals of a known action");
		s->failures[a] = (unsigned char)json_integer_value(v);
		if (s->failures[a] >= 2)
			s->refused |= 1u << a;
	}
	return true;
}

static bool
policy_state_from_json(json_t *o, struct wk_policy_state *s, struct wk_err *e)
{
	const char *w = "policy_state.";
	json_t *done = json_object_get(o, "done");
	long long step;
	char where[64];

	if (!(get_u64(o, w, "start_ms", &s->start_ms, e) &&
	        get_ll(o, w, "deadline_ms", &s->deadline_ms, e) &&
	        get_ll(o, w, "step_delay_ms", &s->step_delay_ms, e) &&
	        get_int(o, w, "step", INT_MIN, INT_MAX, &step, e) &&
	        get_uint(o, w, "reported", &s->reported, e) &&
	        iter_from_json(json_object_get(o, "cur"), "policy_state.cur", &s->cur, e) &&
	        get_ll(o, w, "last_processed", &s->last_processed, e) &&
	        get_u64(o, w, "processed_since_ms", &s->processed_since_ms, e) &&
	        get_bool(o, w, "ladder_acted", &s->ladder_acted, e) &&
	        get_ll(o, w, "ladder_iter", &s->ladder_iter, e) &&
	        get_u64(o, w, "ladder_t_ms", &s->ladder_t_ms, e) &&
	        get_bool(o, w, "throttled", &s->throttled, e) &&
	        get_bool(o, w, "post_copy", &s->post_copy, e) &&
	        get_bool(o, w, "paused", &s->paused, e) &&
	        get_bool(o, w, "finished", &s->finished, e) &&
	        action_failures_from_json(json_object_get(o, "action_failures"), s, e)))
		return false;
	/* absent in records of the first version-2 workers */
	s->aborted = json_is_true(json_object_get(o, "aborted"));
	/* absent in records of workers before the convergence predictor */
	s->struggling = json_is_true(json_object_get(o, "struggling"));
	s->downtime_raised = json_is_true(json_object_get(o, "downtime_raised"));
	s->switch_wait_iter = -1;
	s->prev_iter = -1;
	s->prev_rem = -1;
	s->switch_wait_t_ms = 0;
	s->prev_t_ms = 0;
	s->pause_req_iter = -1; /* absent before the deferred force-complete pause */
	s->pause_req_t_ms = 0;
	if (!(opt_ll(o, w, "pause_req_iter", &s->pause_req_iter, e) &&
	        opt_u64(o, w, "pause_req_t_ms", &s->pause_req_t_ms, e) &&
	        opt_ll(o, w, "switch_wait_iter", &s->switch_wait_iter, e) &&
	        opt_u64(o, w, "switch_wait_t_ms", &s->switch_wait_t_ms, e) &&
	        opt_ll(o, w, "prev_iter", &s->prev_iter, e) &&
	        opt_ll(o, w, "prev_rem", &s->prev_rem, e) &&
	        opt_u64(o, w, "prev_t_ms", &s->prev_t_ms, e)))
		return false;
	s->step = (int)step;
	if (!json_is_array(done) || json_array_size(done) != WK_POLICY_HISTORY)
		return bad_key(e, w, "done", done, "an array of this version's history length");
	for (size_t i = 0; i < WK_POLICY_HISTORY; i++) {
		snprintf(where, sizeof(where), "policy_state.done[%zu]", i);
		if (!iter_from_json(json_array_get(done, i), where, &s->done[i], e))
			return false;
	}
	return true;
}

static char *
dup_or_null(const char *s, bool *ok)
{
	char *d = s ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*ok = false;
	return d;
}

static bool
why_from_json(json_t *o, const char *key, char *buf, size_t n, struct wk_err *e)
{
	const char *v;

	if (!get_str(o, "tuning.why.", key, false, &v, e))
		return false;
	snprintf(buf, n, "%s", v);
	return true;
}

/* "tuning" is absent in records of workers before the dial (and of
 * destinations): then t is left unresolved. */
static bool
tuning_from_json(json_t *rec, struct wk_tuning_mig *t, bool *resolved, struct wk_err *e)
{
	const char *w = "tuning.", *mc = NULL;
	json_t *o = json_object_get(rec, "tuning"), *why = NULL;
	long long par, level, qv, lv;

	*resolved = false;
	if (o == NULL || json_is_null(o))
		return true;
	if (!json_is_object(o))
		return bad_key(e, "", "tuning", o, "an object");
	if (!(get_int(o, w, "parallel_connections", 0, 255, &par, e) &&
	        get_bool(o, w, "xbzrle", &t->compressed, e) &&
	        get_str(o, w, "multifd_compression", false, &mc, e) &&
	        get_int(o, w, "zstd_level", WK_ZSTD_LEVEL_MIN, WK_ZSTD_LEVEL_MAX, &level, e) &&
	        get_bool(o, w, "zero_copy", &t->zero_copy, e) &&
	        get_int(o, w, "qemu_version", 0, LONG_MAX, &qv, e) &&
	        get_int(o, w, "libvirt_version", 0, LONG_MAX, &lv, e) &&
	        get_bool(o, w, "tls", &t->tls, e) && get_obj(o, w, "why", false, &why, e) &&
	        why_from_json(why, "parallel", t->why.parallel, sizeof(t->why.parallel), e) &&
	        why_from_json(why, "xbzrle", t->why.compression, sizeof(t->why.compression), e) &&
	        why_from_json(why, "multifd_compression", t->why.multifd_compression,
	            sizeof(t->why.multifd_compression), e) &&
	        why_from_json(why, "zero_copy", t->why.zero_copy, sizeof(t->why.zero_copy), e)))
		return false;
	if (wk_multifd_comp_parse(mc, &t->multifd_compression) < 0)
		return bad_key(e, w, "multifd_compression",
		    json_object_get(o, "multifd_compression"), "\"none\" or \"zstd\"");
	t->parallel_connections = (int)par;
	t->zstd_level = (int)level;
	t->qemu_version = (unsigned long)qv;
	t->libvirt_version = (unsigned long)lv;
	*resolved = true;
	return true;
}

/* The optional block-migration keys of a record (see mig_record). */
static int
disks_from_record(wk_flow *f, json_t *rec, struct mig *m, struct wk_err *reterr)
{
	json_t *ld = json_object_get(rec, "local_disks"),
	       *cd = json_object_get(rec, "created_disks");
	json_t *dc = json_object_get(rec, "disk_copy");
	struct wk_err err = {{0}};

	if (dc != NULL && wk_disk_copy_parse(json_string_value(dc), &m->disk_copy) < 0)
		return wk_err_set(
		    reterr, -EINVAL, "key 'disk_copy' is not none, full or incremental");
	if (ld != NULL && !json_is_null(ld)) {
		m->disks = calloc(1, sizeof(*m->disks));
		if (m->disks == NULL)
			return wk_err_set(reterr, -ENOMEM, "out of memory");
		if (wk_disk_list_from_arg(ld,
		        f != NULL && f->d.conf != NULL ? f->d.conf->libvirt.instances_path : "/",
		        m->disks, &err) < 0)
			return wk_err_set(reterr, -EINVAL, "key 'local_disks': %s", err.msg);
	}
	if (json_object_get(rec, "disks_removed") != NULL) {
		if (!json_is_boolean(json_object_get(rec, "disks_removed")))
			return wk_err_set(reterr, -EINVAL, "key 'disks_removed' is not a boolean");
		m->disks_removed = json_is_true(json_object_get(rec, "disks_removed"));
	}
	if (cd != NULL && !json_is_null(cd)) {
		if (!json_is_array(cd))
			return wk_err_set(reterr, -EINVAL, "key 'created_disks' is not a list");
		m->created = json_deep_copy(cd);
	}
	return 0;
}

/* The inverse of mig_record.  -EPROTONOSUPPORT for a record of another
 * version, -EINVAL for one that does not fit (reterr names the key). */
int
mig_from_record(wk_flow *f, json_t *rec, struct mig **ret_m, struct wk_err *reterr)
{
	json_t *instance = NULL, *context = NULL, *md = NULL, *cmd = NULL, *pol, *pst;
	const char *role = NULL, *phase = NULL, *uuid = NULL, *dest = NULL, *mig_uuid = NULL,
	           *rid = NULL, *reason = NULL;
	long long version, mig_id, seq, started, downtime, step;
	json_t *vv = json_object_get(rec, "version");
	struct mig *m;
	bool ok = true;
	int p;

	if (!json_is_integer(vv))
		return wk_err_set(reterr, -EINVAL, "key 'version' is missing or not an integer");
	version = json_integer_value(vv);
	if (version != RECORD_VERSION)
		return wk_err_set(reterr, -EPROTONOSUPPORT,
		    "key 'version' is %lld: written by %s ferry (record version %lld), this one "
		    "reads version %d",
		    version, version < RECORD_VERSION ? "an older" : "a newer", version,
		    RECORD_VERSION);
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	if (!(get_str(rec, "", "role", false, &role, reterr) &&
	        get_str(rec, "", "phase", false, &phase, reterr) &&
	        get_str(rec, "", "uuid", false, &uuid, reterr) &&
	        get_str(rec, "", "dest_host", true, &dest, reterr) &&
	        get_str(rec, "", "migration_uuid", true, &mig_uuid, reterr) &&
	        get_ll(rec, "", "migration_id", &mig_id, reterr) &&
	        get_str(rec, "", "request_id", true, &rid, reterr) &&
	        get_bool(rec, "", "block_migration", &m->block_migration, reterr) &&
	        get_bool(rec, "", "persistent", &m->persistent, reterr) &&
	        get_bool(rec, "", "postcopy_active", &m->postcopy_active, reterr) &&
	        get_bool(rec, "", "paused_by_us", &m->paused_by_us, reterr) &&
	        get_bool(rec, "", "abort_requested", &m->abort_requested, reterr) &&
	        get_str(rec, "", "abort_reason", true, &reason, reterr) &&
	        get_obj(rec, "", "instance", false, &instance, reterr) &&
	        get_obj(rec, "", "context", true, &context, reterr) &&
	        get_obj(rec, "", "migrate_data", true, &md, reterr) &&
	        get_obj(rec, "", "cast_migrate_data", true, &cmd, reterr) &&
	        get_int(rec, "", "seq", 0, LLONG_MAX, &seq, reterr) &&
	        get_int(rec, "", "started_ms", 0, LLONG_MAX, &started, reterr) &&
	        get_int(rec, "", "max_downtime_ms", 0, LLONG_MAX, &downtime, reterr) &&
	        get_int(rec, "", "policy_step", INT_MIN, INT_MAX, &step, reterr) &&
	        get_obj(rec, "", "policy", false, &pol, reterr) &&
	        get_obj(rec, "", "policy_state", false, &pst, reterr) &&
	        policy_from_json(pol, &m->policy, reterr) &&
	        policy_state_from_json(pst, &m->policy_state, reterr) &&
	        tuning_from_json(rec, &m->tuning, &m->tuning_resolved, reterr))) {
		mig_free(m);
		return -EINVAL;
	}
	if (strcmp(role, "source") == 0)
		m->role = ROLE_SOURCE;
	else if (strcmp(role, "destination") == 0)
		m->role = ROLE_DEST;
	else
		ok = false;
	for (p = 0; p <= PHASE_POSTCOPY_FAILED && strcmp(phase, phase_names[p]) != 0; p++)
		;
	m->phase = (enum mig_phase)p;
	if (!ok || p > PHASE_POSTCOPY_FAILED ||
	    (m->role == ROLE_DEST) != (m->phase == PHASE_INBOUND) ||
	    (m->role == ROLE_SOURCE && dest == NULL)) {
		mig_free(m);
		return wk_err_set(reterr, -EINVAL,
		    "keys 'role', 'phase' and 'dest_host' do not describe a migration");
	}
	m->flow = f;
	m->uuid = dup_or_null(uuid, &ok);
	m->dest_host = dup_or_null(dest, &ok);
	m->migration_uuid = dup_or_null(mig_uuid, &ok);
	m->request_id = dup_or_null(rid, &ok);
	m->migration_id = mig_id;
	snprintf(m->abort_reason, sizeof(m->abort_reason), "%s", reason ? reason : "");
	m->instance = json_incref(instance);
	m->context = json_incref(context);
	m->migrate_data = json_incref(md);
	m->cast_migrate_data = json_incref(cmd);
	m->seq = (uint64_t)seq;
	m->started_ms = (uint64_t)started;
	/* absent in records of the first version-2 workers: 0 = from now */
	if (json_is_integer(json_object_get(rec, "queued_since_ms")) &&
	    json_integer_value(json_object_get(rec, "queued_since_ms")) > 0)
		m->queued_since_ms =
		    (uint64_t)json_integer_value(json_object_get(rec, "queued_since_ms"));
	m->max_downtime_ms = (unsigned long long)downtime;
	m->policy_step = (int)step;
	wk_progress_init(&m->progress);
	if (disks_from_record(f, rec, m, reterr) < 0) {
		mig_free(m);
		return -EINVAL;
	}
	if (!ok) {
		mig_free(m);
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	}
	*ret_m = m;
	return 0;
}

/* Carries one journalled migration on; false when it cannot be. */
static bool
recover_one(wk_flow *f, struct mig *m)
{
	wk_log_set_request_id(m->request_id);
	m->next = f->migs;
	f->migs = m;
	if (m->seq >= f->next_seq)
		f->next_seq = m->seq + 1;
	switch (m->phase) {
	case PHASE_INBOUND:
		if (m->started_ms > wk_now_ms())
			m->started_ms = wk_now_ms(); /* recorded before a reboot */
		log_info("Recovered the inbound reservation of '%s'", m->uuid);
		return true;
	case PHASE_QUEUED:
	case PHASE_PREPARING:
		/* Nothing reached libvirt yet: start over from the queue. */
		m->phase = PHASE_QUEUED;
		log_info("Recovered the accepted migration of '%s' to '%s'; queued", m->uuid,
		    m->dest_host);
		return true;
	case PHASE_RUNNING:
		if (mig_adopt_job(f, m) < 0)
			return false;
		log_info("Re-adopted the running migration of '%s' to '%s' (step %d)", m->uuid,
		    m->dest_host, m->policy_step);
		return true;
	case PHASE_COMPLETING:
		log_info("Recovered the completed migration of '%s' to '%s'; finishing it", m->uuid,
		    m->dest_host);
		mig_finish_post(f, m);
		return true;
	case PHASE_POSTCOPY_FAILED:
		/* Split over both hosts: it waits for an operator (recover_migration). */
		log_error("Recovered the failed post-copy migration of '%s' to '%s'; it needs an "
		          "operator: 'ferryctl recover %s %s'",
		    m->uuid, m->dest_host, f->d.conf->host, m->uuid);
		return true;
	}
	return false;
}

int
wk_flow_recover(wk_flow *f, struct wk_err *reterr)
{
	json_t *records = NULL, *rec;
	const char *key;
	int corrupt = 0, n = 0, r;

	if (f->d.journal == NULL)
		return 0;
	r = wk_journal_load(f->d.journal, &records, &corrupt, reterr);
	if (r < 0)
		return r;
	if (corrupt > 0)
		log_error("%d unreadable journal record(s) renamed to *.corrupt; those "
		          "migrations need an operator",
		    corrupt);
	json_object_foreach (records, key, rec) {
		struct wk_err err = {{0}};
		struct mig *m = NULL;

		/* A record this worker cannot read is kept, never deleted (it
		 * may be an inbound reservation or an accepted migration) and
		 * never guessed at; wk_journal has no way to set it aside, so
		 * it stays where it is, named in one line per start.  The
		 * record itself is not logged: it holds a request context. */
		if (mig_from_record(f, rec, &m, &err) < 0) {
			log_error("Journal record '%s' cannot be carried on: %s; kept for the "
			          "operator",
			    key, err.msg);
			continue;
		}
		if (!recover_one(f, m)) {
			log_error("Cannot carry on the migration of '%s'", m->uuid);
			mig_finish_rollback(f, m, "the restarted worker cannot carry it on");
			continue;
		}
		n++;
	}
	wk_log_set_request_id(NULL);
	json_decref(records);
	return n;
}
