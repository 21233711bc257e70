/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow: the live-migration flow on both ends (see wk_flow.h).
 * Invariant: a record lives from the request that creates it until exactly
 * one terminal notification (post.end or rollback.end on the source,
 * post_dest.end or rollback_dest.end on the destination) has been sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_nova.h"
#include "wk_flow.h"
#include "wk_instance_policy.h"
#include "wk_journal.h"
#include "wk_log.h"
#include "wk_policy.h"

WK_LOG_NAME("worker.flow");

#define RPC_VERSION "6.0"

/* The destination's answer when its inbound slots are all taken; the source
 * keeps the migration queued and asks again after INBOUND_RETRY_MS. */
#define NO_INBOUND_SLOT "no free inbound migration slot"
#define INBOUND_RETRY_MS 2000
/* A reservation no migration arrived for is released after
 * 2 * rpc_response_timeout, at least this long. */
#define INBOUND_GRACE_MIN_MS 20000
/* Struggling verdict changes closer together than this are not repeated. */
#define WARN_REPEAT_MS 10000

enum mig_role {
	ROLE_SOURCE,
	ROLE_DEST,
};

enum mig_phase {
	PHASE_QUEUED,     /* accepted; waits for an outbound slot (FIFO by seq) */
	PHASE_PREPARING,  /* waiting for the destination's pre_live_migration */
	PHASE_RUNNING,    /* libvirt is migrating */
	PHASE_COMPLETING, /* migrated; post at destination in flight */
	PHASE_INBOUND,    /* destination side: reserved, waiting for post or rollback */
};

struct mig {
	struct mig *next;
	wk_flow *flow;
	enum mig_role role;
	enum mig_phase phase;
	uint64_t job_id;
	uint64_t seq; /* acceptance order, for the outbound FIFO */
	uint64_t retry_at_ms; /* queued: not before (the destination had no inbound slot) */
	char *uuid;
	char *dest_host;
	char *migration_uuid;
	long long migration_id;
	char *request_id;
	bool block_migration;
	bool persistent;
	bool postcopy_active;
	bool paused_by_us;
	bool abort_requested;
	char abort_reason[200];             /* set with abort_requested */
	struct wk_policy_config policy;     /* host tuning + this instance's overrides */
	struct wk_policy_state policy_state;
	unsigned long long max_downtime_ms; /* what the policy last set, 0 = libvirt's */
	unsigned warned_reasons;            /* every reason reported so far */
	char warned_none[160];              /* the last "nothing left to do" reason reported */
	uint64_t last_warn_ms;
	int policy_step;
	json_t *instance;     /* the cast's Instance primitive */
	json_t *context;      /* the cast's request context */
	json_t *migrate_data; /* source: the destination's answer to pre_live_migration */
	json_t *cast_migrate_data; /* source: the cast's migrate_data, sent with pre */
	struct wk_progress progress;
	struct wk_job_sample last_sample;
	uint64_t started_ms, last_notify_ms;
};

struct wk_flow {
	struct wk_flow_deps d;
	struct mig *migs;
	uint64_t next_job_id;
	uint64_t next_seq;
	bool stopping; /* no queued migration starts any more */
	uint64_t next_stale_check_ms;
};

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

static void
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
	free(m);
}

/* ---- the journal: what a restarted worker needs to carry on ---- */

#define RECORD_VERSION 1

static void
journal_key(const struct mig *m, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%s", m->role == ROLE_SOURCE ? "source" : "destination", m->uuid);
}

/* Plain structs (no pointers) travel as hex, with their size as a check. */
static json_t *
hex_of(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	char *text = malloc(2 * n + 1);
	json_t *v;

	if (text == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		text[2 * i] = digits[b[i] >> 4];
		text[2 * i + 1] = digits[b[i] & 15];
	}
	text[2 * n] = '\0';
	v = json_string(text);
	free(text);
	return v;
}

static bool
unhex(json_t *v, void *p, size_t n)
{
	const char *t = json_string_value(v);
	unsigned char *b = p;

	if (t == NULL || strlen(t) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned hi, lo;

		if (sscanf(t + 2 * i, "%1x%1x", &hi, &lo) != 2)
			return false;
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static json_t *
mig_record(const struct mig *m)
{
	return json_pack("{s:i,s:s,s:i,s:s,s:s?,s:s?,s:I,s:s?,s:b,s:b,s:b,s:b,s:b,s:s,s:O?,s:O?,"
			 "s:O?,s:O?,s:I,s:I,s:I,s:i,s:o,s:o}",
	    "version", RECORD_VERSION, "role", m->role == ROLE_SOURCE ? "source" : "destination",
	    "phase", (int)m->phase, "uuid", m->uuid, "dest_host", m->dest_host, "migration_uuid",
	    m->migration_uuid, "migration_id", (json_int_t)m->migration_id, "request_id",
	    m->request_id, "block_migration", m->block_migration, "persistent", m->persistent,
	    "postcopy_active", m->postcopy_active, "paused_by_us", m->paused_by_us,
	    "abort_requested", m->abort_requested, "abort_reason", m->abort_reason, "instance",
	    m->instance, "context", m->context, "migrate_data", m->migrate_data,
	    "cast_migrate_data", m->cast_migrate_data, "seq", (json_int_t)m->seq, "started_ms",
	    (json_int_t)m->started_ms, "max_downtime_ms", (json_int_t)m->max_downtime_ms,
	    "policy_step", m->policy_step, "policy", hex_of(&m->policy, sizeof(m->policy)),
	    "policy_state", hex_of(&m->policy_state, sizeof(m->policy_state)));
}

/* Records m as it is now.  A failure is logged: the migration goes on, it
 * would only not survive a restart of the worker. */
static void
journal_save(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	json_t *rec;
	char key[128];

	if (f->d.journal == NULL)
		return;
	journal_key(m, key, sizeof(key));
	rec = mig_record(m);
	if (rec == NULL || wk_journal_write(f->d.journal, key, rec, &err) < 0)
		log_error("Cannot journal the migration of '%s': %s", m->uuid,
		    rec ? err.msg : "out of memory");
	json_decref(rec);
}

static void
journal_drop(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	char key[128];

	if (f->d.journal == NULL)
		return;
	journal_key(m, key, sizeof(key));
	if (wk_journal_remove(f->d.journal, key, &err) < 0)
		log_error("Cannot remove the journal record of '%s': %s", m->uuid, err.msg);
}

/* The inverse of mig_record; NULL when the record does not fit. */
static struct mig *
mig_from_record(wk_flow *f, json_t *rec)
{
	json_t *instance = NULL, *context = NULL, *md = NULL, *cmd = NULL, *pol = NULL,
	       *pst = NULL;
	const char *role, *uuid, *dest = NULL, *mig_uuid = NULL, *rid = NULL, *reason = "";
	json_int_t mig_id, seq, started, downtime;
	int version, phase, step;
	int block, persistent, postcopy, paused, aborted;
	struct mig *m;

	if (json_unpack(rec,
		"{s:i,s:s,s:i,s:s,s?s,s?s,s:I,s?s,s:b,s:b,s:b,s:b,s:b,s?s,s:o,s?o,s?o,s?o,s:I,s:I,"
		"s:I,s:i,s:o,s:o}",
		"version", &version, "role", &role, "phase", &phase, "uuid", &uuid, "dest_host",
		&dest, "migration_uuid", &mig_uuid, "migration_id", &mig_id, "request_id", &rid,
		"block_migration", &block, "persistent", &persistent, "postcopy_active", &postcopy,
		"paused_by_us", &paused, "abort_requested", &aborted, "abort_reason", &reason,
		"instance", &instance, "context", &context, "migrate_data", &md,
		"cast_migrate_data", &cmd, "seq", &seq, "started_ms", &started, "max_downtime_ms",
		&downtime, "policy_step", &step, "policy", &pol, "policy_state", &pst) < 0 ||
	    version != RECORD_VERSION || phase < PHASE_QUEUED || phase > PHASE_INBOUND)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->flow = f;
	m->role = strcmp(role, "source") == 0 ? ROLE_SOURCE : ROLE_DEST;
	m->phase = (enum mig_phase)phase;
	m->uuid = strdup(uuid);
	m->dest_host = dest ? strdup(dest) : NULL;
	m->migration_uuid = mig_uuid ? strdup(mig_uuid) : NULL;
	m->migration_id = mig_id;
	m->request_id = rid ? strdup(rid) : NULL;
	m->block_migration = block;
	m->persistent = persistent;
	m->postcopy_active = postcopy;
	m->paused_by_us = paused;
	m->abort_requested = aborted;
	snprintf(m->abort_reason, sizeof(m->abort_reason), "%s", reason ? reason : "");
	m->instance = json_incref(instance);
	m->context = json_is_null(context) ? NULL : json_incref(context);
	m->migrate_data = json_is_null(md) ? NULL : json_incref(md);
	m->cast_migrate_data = json_is_null(cmd) ? NULL : json_incref(cmd);
	m->seq = (uint64_t)seq;
	m->started_ms = (uint64_t)started;
	m->max_downtime_ms = (unsigned long long)downtime;
	m->policy_step = step;
	wk_progress_init(&m->progress);
	if (m->uuid == NULL || (m->role == ROLE_SOURCE && m->dest_host == NULL) ||
	    !unhex(pol, &m->policy, sizeof(m->policy)) ||
	    !unhex(pst, &m->policy_state, sizeof(m->policy_state))) {
		mig_free(m);
		return NULL;
	}
	return m;
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

static struct mig *
find_mig(wk_flow *f, const char *uuid, enum mig_role role)
{
	for (struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == role && strcmp(m->uuid, uuid) == 0)
			return m;
	return NULL;
}

static struct mig *
find_job(wk_flow *f, uint64_t job_id)
{
	for (struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->job_id == job_id)
			return m;
	return NULL;
}

static void start_queued(wk_flow *f);

static void
unlink_free(wk_flow *f, struct mig *m)
{
	bool frees_slot = m->role == ROLE_SOURCE && m->phase != PHASE_QUEUED;

	for (struct mig **pp = &f->migs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	wk_bus_cancel(f->d.bus, m);
	journal_drop(f, m);
	mig_free(m);
	if (frees_slot)
		start_queued(f);
}

static const char *
phase_name(const struct mig *m)
{
	switch (m->phase) {
	case PHASE_QUEUED:
		return "queued";
	case PHASE_PREPARING:
		return "preparing";
	case PHASE_RUNNING:
		if (m->postcopy_active)
			return "postcopy";
		return m->paused_by_us ? "paused" : "precopy";
	case PHASE_COMPLETING:
		return "completing";
	case PHASE_INBOUND:
		return "inbound";
	}
	return "unknown";
}

/* instance.<action>.<phase> with nova's InstanceActionPayload. */
static void
notify_action(wk_flow *f, json_t *instance, json_t *context, const char *action,
    const char *phase)
{
	char event[128];
	json_t *payload;

	snprintf(event, sizeof(event), "instance.%s.%s", action, phase);
	payload =
	    rpc_nova_live_migration_payload(instance, action, phase, f->d.conf->host, context);
	if (payload == NULL) {
		log_error("Cannot build the '%s' payload, not sent", event);
		return;
	}
	if (wk_bus_notify(f->d.bus, event, "INFO", payload, context) < 0)
		log_error("Cannot queue notification '%s'", event);
}

static void
notify_exception(wk_flow *f, json_t *context, const char *function, const char *exception,
    const char *text)
{
	json_t *payload = rpc_nova_exception_payload("ferry.worker", function, exception, text);

	if (payload == NULL || wk_bus_notify(f->d.bus, "compute.exception", "ERROR", payload,
				   context) < 0)
		log_error("Cannot queue notification 'compute.exception'");
}

static void
notify_progress(wk_flow *f, struct mig *m)
{
	const struct wk_job_sample *s = &m->last_sample;
	struct rpc_progress p;
	json_t *payload;

	memset(&p, 0, sizeof(p));
	p.instance_uuid = m->uuid;
	p.migration_uuid = m->migration_uuid;
	p.migration_id = m->migration_id;
	p.source_host = f->d.conf->host;
	p.dest_host = m->dest_host;
	p.phase = phase_name(m);
	p.percent = m->progress.percent;
	p.memory_total = s->memory_total;
	p.memory_processed = s->memory_processed;
	p.memory_remaining = s->memory_remaining;
	p.data_total = s->data_total;
	p.data_processed = s->data_processed;
	p.data_remaining = s->data_remaining;
	p.disk_total = s->disk_total;
	p.disk_processed = s->disk_processed;
	p.disk_remaining = s->disk_remaining;
	p.dirty_rate_bps = m->progress.dirty_rate_bps;
	p.transfer_rate_bps = m->progress.transfer_rate_bps;
	p.memory_iteration = s->memory_iteration;
	p.elapsed_ms = (long long)(wk_now_ms() - m->started_ms);
	p.eta_s = m->progress.eta_s;
	p.expected_downtime_ms = s->downtime_ms;
	p.max_downtime_ms = m->max_downtime_ms > 0 ? (long long)m->max_downtime_ms : -1;
	p.bandwidth_mib_s = (long long)f->d.tuning->bandwidth_mib_s;
	p.policy_step = m->policy_step;
	payload = rpc_nova_progress_payload(&p);
	if (payload == NULL || wk_bus_notify(f->d.bus, "instance.live_migration_progress", "INFO",
				   payload, m->context) < 0)
		log_error("Cannot queue the progress notification of '%s'", m->uuid);
	log_info("Migration of '%s' to '%s': %.0f%% (%s, iteration %lld, %lld MiB remaining)",
	    m->uuid, m->dest_host, m->progress.percent, phase_name(m), s->memory_iteration,
	    s->data_remaining >= 0 ? s->data_remaining / (1024 * 1024) : -1);
	m->last_notify_ms = wk_now_ms();
}

/* Reads an optional typed argument; -EINVAL names it when the type is wrong. */
static int
arg_get(json_t *args, const char *method, const char *name, json_type type, bool required,
    json_t **ret, struct wk_err *reterr)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || (json_is_null(v) && !required)) {
		if (required)
			return wk_err_set(reterr, -EINVAL, "%s: missing argument '%s'", method, name);
		*ret = NULL;
		return 0;
	}
	if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
		return wk_err_set(reterr, -EINVAL, "%s: argument '%s' has the wrong type", method,
		    name);
	*ret = v;
	return 0;
}

static int
instance_arg(json_t *args, const char *method, const char **ret_uuid, json_t **ret_instance,
    struct wk_err *reterr)
{
	json_t *instance = NULL;
	const char *uuid = NULL;
	int r;

	r = arg_get(args, method, "instance", JSON_OBJECT, true, &instance, reterr);
	if (r < 0)
		return r;
	uuid = rpc_nova_instance_uuid(instance);
	if (uuid == NULL)
		return wk_err_set(reterr, -EINVAL,
		    "%s: argument 'instance' is not a nova Instance with a uuid", method);
	*ret_uuid = uuid;
	*ret_instance = instance;
	return 0;
}

static const char *
obj_str(json_t *primitive, const char *key)
{
	json_t *data = primitive ? rpc_nova_object_data(primitive) : NULL;

	return data ? json_string_value(json_object_get(data, key)) : NULL;
}

/* Source side: the migration is over one way or the other. */
static void
finish_rollback(wk_flow *f, struct mig *m, const char *why)
{
	json_t *args;

	notify_action(f, m->instance, m->context, "live_migration_rollback", "start");
	if (m->paused_by_us) {
		struct wk_err err = {{0}};

		/* Never leave a guest paused because of us. */
		if (wk_hv_resume(f->d.hv, m->uuid, &err) < 0)
			log_error("Cannot resume '%s' after the failed migration: %s", m->uuid,
			    err.msg);
		else
			log_info("Resumed '%s' on the source after the failed migration", m->uuid);
	}
	/* A queued migration reserved nothing at the destination. */
	if (m->dest_host != NULL && m->phase != PHASE_QUEUED) {
		args = json_pack("{s:O,s:b,s:O?}", "instance", m->instance, "destroy_disks", 1,
		    "migrate_data", m->migrate_data);
		if (args == NULL ||
		    wk_bus_cast(f->d.bus, m->dest_host, "rollback_live_migration_at_destination",
			RPC_VERSION, args, m->context) < 0)
			log_error("Cannot send rollback_live_migration_at_destination to '%s'",
			    m->dest_host);
	}
	notify_action(f, m->instance, m->context, "live_migration_rollback", "end");
	log_warning("Migration of '%s' to '%s' rolled back: %s", m->uuid,
	    m->dest_host ? m->dest_host : "?", why);
	unlink_free(f, m);
}

static void
on_post_at_dest_reply(void *data, int r, json_t *result, const char *error)
{
	struct mig *m = data;
	wk_flow *f = m->flow;

	wk_log_set_request_id(m->request_id);
	if (r < 0)
		log_warning("post_live_migration_at_destination on '%s' failed: %s", m->dest_host,
		    error);
	notify_action(f, m->instance, m->context, "live_migration_post", "end");
	log_info("Migration of '%s' to '%s' finished", m->uuid, m->dest_host);
	unlink_free(f, m);
}

static void
finish_post(wk_flow *f, struct mig *m)
{
	json_t *args;
	int r;

	m->phase = PHASE_COMPLETING;
	journal_save(f, m);
	wk_progress_complete(&m->progress);
	/* The last poll predates the switchover: report the finished state. */
	if (m->last_sample.memory_total > 0) {
		m->last_sample.memory_processed = m->last_sample.memory_total;
		m->last_sample.memory_remaining = 0;
	}
	if (m->last_sample.data_total > 0)
		m->last_sample.data_processed = m->last_sample.data_total;
	m->last_sample.data_remaining = 0;
	notify_progress(f, m);
	notify_action(f, m->instance, m->context, "live_migration_post", "start");
	args = json_pack("{s:O,s:b}", "instance", m->instance, "block_migration",
	    m->block_migration);
	r = args ? wk_bus_call(f->d.bus, m->dest_host, "post_live_migration_at_destination",
			RPC_VERSION, args, m->context, f->d.conf->rpc_response_timeout,
			on_post_at_dest_reply, m)
		 : -ENOMEM;
	if (r < 0)
		on_post_at_dest_reply(m, r, NULL, "cannot send the call");
}

/* Post-copy where this migration may use it, else pause the guest so the
 * remaining pages stop changing.  why is for the log. */
static int
force_complete(wk_flow *f, struct mig *m, const char *why, bool by_postcopy,
    struct wk_err *reterr)
{
	int r;

	if (m->postcopy_active || m->paused_by_us)
		return 0;
	if (by_postcopy) {
		r = wk_hv_start_postcopy(f->d.hv, m->uuid, reterr);
		if (r == 0) {
			m->postcopy_active = true;
			log_info("Switched the migration of '%s' to post-copy %s", m->uuid, why);
			/* The phase changed: say so now; post-copy may end before the next sample. */
			notify_progress(f, m);
		}
		return r;
	}
	r = wk_hv_suspend(f->d.hv, m->uuid, reterr);
	if (r == 0) {
		m->paused_by_us = true;
		log_info("Paused '%s' so its migration completes (%s)", m->uuid, why);
		notify_progress(f, m);
	}
	return r;
}

static void
notify_struggling(wk_flow *f, struct mig *m, const struct wk_decision *d)
{
	struct rpc_struggling st;
	json_t *payload;
	size_t n = 0;

	memset(&st, 0, sizeof(st));
	for (unsigned bit = 1; bit <= WK_REASON_TRANSFER_STALLED && n < 4; bit <<= 1)
		if (d->reasons & bit)
			st.reasons[n++] = wk_reason_name(bit);
	st.instance_uuid = m->uuid;
	st.migration_uuid = m->migration_uuid;
	st.action = wk_action_name(d->action);
	st.action_reason = d->action_reason;
	st.planned = wk_action_name(d->planned);
	st.dirty_rate_bps = d->dirty_rate_bps;
	st.transfer_rate_bps = d->transfer_rate_bps;
	st.data_remaining = d->data_remaining;
	st.memory_iteration = d->memory_iteration;
	st.elapsed_ms = d->elapsed_ms;
	st.deadline_ms = d->deadline_ms;
	st.max_downtime_ms = d->action == WK_ACTION_RAISE_DOWNTIME ? (long long)d->downtime_ms
				 : m->max_downtime_ms > 0 ? (long long)m->max_downtime_ms
							  : -1;
	st.policy_step = d->policy_step;
	log_warning("Migration of '%s' is struggling (%s%s%s): %s%s%s", m->uuid,
	    st.reasons[0] ? st.reasons[0] : "?", st.reasons[1] ? ", " : "",
	    st.reasons[1] ? st.reasons[1] : "", st.action,
	    d->action_reason ? ": " : "", d->action_reason ? d->action_reason : "");
	payload = rpc_nova_struggling_payload(&st);
	if (payload == NULL || wk_bus_notify(f->d.bus, "instance.live_migration_struggling",
				   "WARN", payload, m->context) < 0)
		log_error("Cannot queue the struggling notification of '%s'", m->uuid);
}

/* Whether this decision is news for instance.live_migration_struggling.  A
 * drastic action is always announced (before it is taken), and so is the
 * first verdict.  Otherwise a change counts when it brings a reason not
 * reported yet, and not within WARN_REPEAT_MS of the last warning: the
 * reason set of a migration on the edge flaps with every iteration
 * (measured: 78 warnings in 216 s before this rule). */
static bool
should_warn(const struct mig *m, const struct wk_decision *d, uint64_t now_ms)
{
	if (d->reasons != 0 && d->action != WK_ACTION_NONE && d->action != WK_ACTION_RAISE_DOWNTIME)
		return true;
	/* Nothing left on the ladder ("none: post-copy forbidden for this
	 * instance ..."): said once per reason. */
	if (d->reasons != 0 && d->action == WK_ACTION_NONE && d->planned == WK_ACTION_NONE &&
	    d->action_reason != NULL &&
	    strncmp(d->action_reason, m->warned_none, sizeof(m->warned_none) - 1) != 0)
		return true;
	if (!d->verdict_changed) /* set only when turning or changing to a non-empty set */
		return false;
	if (m->last_warn_ms == 0)
		return true;
	return (d->reasons & ~m->warned_reasons) != 0 && now_ms >= m->last_warn_ms + WARN_REPEAT_MS;
}

/* One policy decision per sample: warn first, then act. */
static void
apply_policy(wk_flow *f, struct mig *m, const struct wk_job_sample *s)
{
	struct wk_decision d;
	struct wk_err err = {{0}};
	int r = 0;

	wk_policy_step(&m->policy_state, &m->policy, s, &d);
	m->policy_step = d.policy_step;
	if (should_warn(m, &d, s->t_ms)) {
		notify_struggling(f, m, &d);
		m->warned_reasons |= d.reasons;
		if (d.action == WK_ACTION_NONE && d.action_reason != NULL)
			snprintf(m->warned_none, sizeof(m->warned_none), "%s", d.action_reason);
		m->last_warn_ms = s->t_ms;
	}
	switch (d.action) {
	case WK_ACTION_NONE:
	case WK_ACTION_THROTTLE: /* auto-converge was enabled at start; QEMU throttles */
	case _WK_ACTION_MAX:
		return;
	case WK_ACTION_RAISE_DOWNTIME:
		r = wk_hv_set_max_downtime(f->d.hv, m->uuid, d.downtime_ms, &err);
		if (r == 0) {
			m->max_downtime_ms = d.downtime_ms;
			log_info("Max downtime of '%s' set to %llu ms (step %d)", m->uuid,
			    d.downtime_ms, d.policy_step);
		}
		break;
	case WK_ACTION_POST_COPY:
	case WK_ACTION_FORCE_COMPLETE:
		r = force_complete(f, m,
		    d.action == WK_ACTION_POST_COPY ? "as it was struggling"
						    : "at the completion timeout",
		    d.action == WK_ACTION_POST_COPY || d.force_by == WK_ACTION_POST_COPY, &err);
		break;
	case WK_ACTION_PAUSE:
		if (!m->paused_by_us) {
			r = wk_hv_suspend(f->d.hv, m->uuid, &err);
			if (r == 0) {
				m->paused_by_us = true;
				log_warning("Paused '%s' as the last resort for its migration",
				    m->uuid);
				notify_progress(f, m);
			}
		}
		break;
	case WK_ACTION_ABORT:
		if (m->abort_requested)
			break;
		r = wk_hv_abort(f->d.hv, m->uuid, &err);
		if (r == 0) {
			m->abort_requested = true;
			snprintf(m->abort_reason, sizeof(m->abort_reason), "%s",
			    d.action_reason ? d.action_reason : "aborted by policy");
			log_warning("Aborting the migration of '%s': %s", m->uuid, m->abort_reason);
		}
		break;
	}
	/* The policy learns the outcome: a refused action is retried once,
	 * then the ladder or the deadline moves on. */
	wk_policy_action_result(&m->policy_state, &d, r);
	if (r < 0)
		log_error("Policy action '%s' on '%s' failed: %s", wk_action_name(d.action), m->uuid,
		    err.msg);
	journal_save(f, m); /* keeps the step, the deadline and refusals across a restart */
}

/* This migration's policy: the host's tuning, then the instance's overrides. */
static int
resolve_policy(wk_flow *f, struct mig *m, json_t *instance, unsigned long long memory_kib,
    struct wk_err *reterr)
{
	const struct wk_tuning *t = f->d.tuning;
	const struct wk_conf *c = f->d.conf;
	struct wk_instance_policy ip;
	unsigned long long ram = memory_kib * 1024ULL;
	int r;

	r = wk_instance_policy_read(instance, &ip, reterr);
	if (r < 0)
		return r;
	memset(&m->policy, 0, sizeof(m->policy));
	m->policy.max_downtime_ms = t->downtime_ms;
	m->policy.downtime_steps = t->downtime_steps;
	m->policy.downtime_delay_s = t->downtime_delay_s;
	m->policy.completion_timeout_s = t->completion_timeout_s;
	if (ip.timeout_action >= 0)
		m->policy.timeout_action = ip.timeout_action == WK_TIMEOUT_ACTION_FORCE_COMPLETE
					       ? WK_TIMEOUT_FORCE_COMPLETE
					       : WK_TIMEOUT_ABORT;
	else
		m->policy.timeout_action =
		    strcmp(c->libvirt.live_migration_timeout_action, "force_complete") == 0
			? WK_TIMEOUT_FORCE_COMPLETE
			: WK_TIMEOUT_ABORT;
	m->policy.permit_post_copy =
	    wk_instance_policy_permits(ip.permit_post_copy, c->libvirt.live_migration_permit_post_copy);
	m->policy.permit_auto_converge = wk_instance_policy_permits(ip.permit_auto_converge,
	    c->libvirt.live_migration_permit_auto_converge);
	m->policy.permit_pause = c->libvirt.live_migration_permit_pause;
	/* nova counts at least 2 GiB of RAM when scaling its timeouts */
	m->policy.data_bytes = ram < (2ULL << 30) ? (2ULL << 30) : ram;
	if (ip.source[0] != '\0')
		log_info("Instance '%s' sets its own migration policy (%s): post-copy %s, "
			 "auto-converge %s, timeout action %s",
		    m->uuid, ip.source, m->policy.permit_post_copy ? "permitted" : "forbidden",
		    m->policy.permit_auto_converge ? "permitted" : "forbidden",
		    m->policy.timeout_action == WK_TIMEOUT_ABORT ? "abort" : "force_complete");
	return 0;
}

struct job_uris {
	char dest[512], migrate[300];
};

/* The migration's libvirt parameters, from the record and the host's
 * tuning: the same for the first call, an adoption and a recovery.
 * Returns the address the stream goes to. */
static const char *
job_params(wk_flow *f, const struct mig *m, struct wk_hv_migrate_params *p,
    struct job_uris *uris)
{
	const struct wk_conf *c = f->d.conf;
	const char *addr = obj_str(m->migrate_data, "target_connect_addr");

	if (addr == NULL)
		addr = m->dest_host;
	snprintf(uris->dest, sizeof(uris->dest), "qemu+%s://%s/system",
	    c->libvirt.live_migration_scheme, addr);
	snprintf(uris->migrate, sizeof(uris->migrate), "tcp://%s", addr);
	memset(p, 0, sizeof(*p));
	p->uuid = m->uuid;
	p->dest_uri = uris->dest;
	p->migrate_uri = uris->migrate;
	p->bandwidth_mib_s = f->d.tuning->bandwidth_mib_s;
	p->compressed = f->d.tuning->compressed;
	p->parallel_connections = f->d.tuning->parallel_connections;
	p->block_migration = m->block_migration;
	p->persistent = m->persistent;
	p->postcopy = m->policy.permit_post_copy;
	/* Nova: auto-converge only where post-copy is not available. */
	p->auto_converge = m->policy.permit_auto_converge && !p->postcopy;
	return addr;
}

static int
start_job(wk_flow *f, struct mig *m, struct wk_err *reterr)
{
	const struct wk_conf *c = f->d.conf;
	struct wk_hv_migrate_params p;
	struct job_uris uris;
	const char *addr = job_params(f, m, &p, &uris);
	unsigned interval_ms;

	interval_ms = (unsigned)(c->notifications.progress_interval * 1000.0);
	/* The policy decides per memory iteration, and iterations take well
	 * under a second on a fast link: sample at 4 Hz (one cheap libvirtd
	 * call each), notify every progress_interval. */
	if (interval_ms > 250)
		interval_ms = 250;
	m->job_id = f->next_job_id++;
	m->phase = PHASE_RUNNING;
	m->started_ms = wk_now_ms();
	m->last_notify_ms = 0;
	wk_policy_init(&m->policy_state, &m->policy, m->started_ms);
	log_info("Migrating '%s' to '%s' over %s (bandwidth %llu MiB/s)", m->uuid, m->dest_host,
	    addr, p.bandwidth_mib_s);
	return wk_migrate_start(f->d.migrate, m->job_id, &p, interval_ms, m->request_id) < 0
		   ? wk_err_set(reterr, -ENOMEM, "cannot start the migration thread")
		   : 0;
}

/* A restarted worker takes over the migration libvirtd kept running. */
static int
adopt_job(wk_flow *f, struct mig *m, unsigned interval_ms)
{
	struct wk_hv_migrate_params p;
	struct job_uris uris;

	job_params(f, m, &p, &uris);
	return wk_migrate_adopt(f->d.migrate, m->job_id, &p, interval_ms, m->request_id);
}

static void
on_pre_reply(void *data, int r, json_t *result, const char *error)
{
	struct mig *m = data;
	wk_flow *f = m->flow;
	struct wk_err err = {{0}};

	wk_log_set_request_id(m->request_id);
	if (r < 0 && !m->abort_requested && !f->stopping && error != NULL &&
	    strstr(error, NO_INBOUND_SLOT) != NULL) {
		log_info("'%s' has no free inbound slot for '%s'; queued again, retrying in %d s",
		    m->dest_host, m->uuid, INBOUND_RETRY_MS / 1000);
		m->phase = PHASE_QUEUED;
		m->retry_at_ms = wk_now_ms() + INBOUND_RETRY_MS;
		start_queued(f); /* the slot it held may serve another destination */
		return;
	}
	if (r < 0) {
		log_error("pre_live_migration on '%s' for '%s' failed: %s", m->dest_host, m->uuid,
		    error);
		finish_rollback(f, m, error);
		return;
	}
	if (m->abort_requested) {
		finish_rollback(f, m, "aborted before it started");
		return;
	}
	if (json_is_object(result))
		m->migrate_data = json_incref(result);
	if (start_job(f, m, &err) < 0) {
		log_error("Cannot start the migration of '%s': %s", m->uuid, err.msg);
		finish_rollback(f, m, err.msg);
		return;
	}
	journal_save(f, m);
}

/* Outbound migrations holding a slot: every source one past the queue. */
static int
outbound_busy(const wk_flow *f)
{
	int n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_SOURCE && m->phase != PHASE_QUEUED)
			n++;
	return n;
}

/* Takes an outbound slot: asks the destination to reserve its side. */
static void
prepare(wk_flow *f, struct mig *m)
{
	json_t *call_args;
	int r;

	m->phase = PHASE_PREPARING;
	call_args = json_pack("{s:O,s:n,s:O?}", "instance", m->instance, "disk", "migrate_data",
	    m->cast_migrate_data);
	r = call_args ? wk_bus_call(f->d.bus, m->dest_host, "pre_live_migration", RPC_VERSION,
			    call_args, m->context, f->d.conf->rpc_response_timeout, on_pre_reply, m)
		      : -ENOMEM;
	if (r < 0)
		finish_rollback(f, m, "cannot call pre_live_migration");
}

/* Starts queued migrations, oldest first, while outbound slots are free. */
static void
start_queued(wk_flow *f)
{
	uint64_t now = wk_now_ms();

	for (;;) {
		struct mig *next = NULL;

		if (f->stopping ||
		    (f->d.tuning->max_outbound > 0 && outbound_busy(f) >= f->d.tuning->max_outbound))
			return;
		for (struct mig *m = f->migs; m != NULL; m = m->next)
			if (m->role == ROLE_SOURCE && m->phase == PHASE_QUEUED &&
			    m->retry_at_ms <= now && (next == NULL || m->seq < next->seq))
				next = m;
		if (next == NULL)
			return;
		wk_log_set_request_id(next->request_id);
		log_info("Live migration of '%s' to '%s' leaves the queue", next->uuid,
		    next->dest_host);
		prepare(f, next);
	}
}

/* A reservation is stale when no migration arrived for it (libvirt has no
 * domain of that uuid here) long after the source's pre_live_migration:
 * the source gave up or died without a rollback.  Released, so one lost
 * rollback cannot close this host to inbound migrations for good. */
static void
release_stale_reservations(wk_flow *f, uint64_t now_ms)
{
	uint64_t grace_ms = 2ULL * (uint64_t)f->d.conf->rpc_response_timeout * 1000ULL;
	struct mig *m, *next;

	if (grace_ms < INBOUND_GRACE_MIN_MS)
		grace_ms = INBOUND_GRACE_MIN_MS;
	if (now_ms < f->next_stale_check_ms)
		return;
	f->next_stale_check_ms = now_ms + 5000;
	for (m = f->migs; m != NULL; m = next) {
		struct wk_hv_domain_info info;
		struct wk_err err = {{0}};

		next = m->next;
		if (m->role != ROLE_DEST || now_ms < m->started_ms + grace_ms ||
		    wk_hv_domain_info(f->d.hv, m->uuid, &info, &err) != -ENOENT)
			continue;
		wk_log_set_request_id(m->request_id);
		log_warning("Released the inbound reservation of '%s': no migration arrived in %llu s "
			    "and no rollback came",
		    m->uuid, (unsigned long long)(grace_ms / 1000));
		unlink_free(f, m);
	}
	wk_log_set_request_id(NULL);
}

int
wk_flow_tick(wk_flow *f, uint64_t now_ms)
{
	uint64_t next = 0;

	release_stale_reservations(f, now_ms);
	start_queued(f);
	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_SOURCE && m->phase == PHASE_QUEUED && m->retry_at_ms > now_ms &&
		    (next == 0 || m->retry_at_ms < next))
			next = m->retry_at_ms;
	return next == 0 ? -1 : (int)(next - now_ms);
}

/* Carries one journalled migration on; false when it cannot be. */
static bool
recover_one(wk_flow *f, struct mig *m)
{
	unsigned interval_ms;

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
		interval_ms = (unsigned)(f->d.conf->notifications.progress_interval * 1000.0);
		m->job_id = f->next_job_id++;
		if (adopt_job(f, m, interval_ms > 250 ? 250 : interval_ms) < 0)
			return false;
		log_info("Re-adopted the running migration of '%s' to '%s' (step %d)", m->uuid,
		    m->dest_host, m->policy_step);
		return true;
	case PHASE_COMPLETING:
		log_info("Recovered the completed migration of '%s' to '%s'; finishing it", m->uuid,
		    m->dest_host);
		finish_post(f, m);
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
	json_object_foreach(records, key, rec) {
		struct mig *m = mig_from_record(f, rec);
		struct wk_err err = {{0}};

		if (m == NULL) {
			char *text = json_dumps(rec, JSON_COMPACT);

			log_error("Journal record '%s' does not fit this worker, dropped: %.2000s",
			    key, text ? text : "?");
			free(text);
			wk_journal_remove(f->d.journal, key, &err);
			continue;
		}
		if (!recover_one(f, m)) {
			log_error("Cannot carry on the migration of '%s'", m->uuid);
			finish_rollback(f, m, "the restarted worker cannot carry it on");
			continue;
		}
		n++;
	}
	wk_log_set_request_id(NULL);
	json_decref(records);
	return n;
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
			finish_rollback(f, m, "the worker is stopping before the migration started");
		}
	} while (m != NULL);
	wk_log_set_request_id(NULL);
}

int
wk_flow_live_migration(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	json_t *args = rpc_msg_args(msg);
	json_t *instance = NULL, *dest = NULL, *block = NULL, *migration = NULL;
	json_t *migrate_data = NULL;
	struct wk_hv_domain_info info;
	const char *uuid = NULL;
	struct mig *m;
	int r;

	r = instance_arg(args, "live_migration", &uuid, &instance, reterr);
	if (r < 0)
		return r;
	if (f->stopping)
		return wk_err_set(reterr, -ESHUTDOWN, "live_migration: the worker is stopping");
	if ((r = arg_get(args, "live_migration", "dest", JSON_STRING, true, &dest, reterr)) < 0 ||
	    (r = arg_get(args, "live_migration", "block_migration", JSON_TRUE, false, &block,
		 reterr)) < 0 ||
	    (r = arg_get(args, "live_migration", "migration", JSON_OBJECT, false, &migration,
		 reterr)) < 0 ||
	    (r = arg_get(args, "live_migration", "migrate_data", JSON_OBJECT, false,
		 &migrate_data, reterr)) < 0)
		return r;
	if (strcmp(json_string_value(dest), f->d.conf->host) == 0)
		return wk_err_set(reterr, -EINVAL, "live_migration: destination '%s' is this host",
		    f->d.conf->host);
	m = find_mig(f, uuid, ROLE_SOURCE);
	if (m != NULL && m->request_id != NULL && rpc_msg_request_id(msg) != NULL &&
	    strcmp(m->request_id, rpc_msg_request_id(msg)) == 0) {
		/* Redelivered after a restart that came between journal and ack. */
		log_info("Live migration of '%s' is already accepted, ignoring the redelivery",
		    uuid);
		*ret_result = NULL;
		return 0;
	}
	if (m != NULL)
		return wk_err_set(reterr, -EBUSY, "instance '%s' is already migrating", uuid);
	r = wk_hv_domain_info(f->d.hv, uuid, &info, reterr);
	if (r < 0)
		return r;
	if (info.state != WK_HV_STATE_RUNNING && info.state != WK_HV_STATE_PAUSED)
		return wk_err_set(reterr, -EINVAL, "instance '%s' is not running", uuid);

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->flow = f;
	m->role = ROLE_SOURCE;
	m->phase = PHASE_PREPARING;
	m->uuid = strdup(uuid);
	m->dest_host = strdup(json_string_value(dest));
	m->migration_uuid = obj_str(migration, "uuid") ? strdup(obj_str(migration, "uuid")) : NULL;
	m->migration_id = -1;
	wk_progress_init(&m->progress);
	if (migration != NULL) {
		json_t *id = json_object_get(rpc_nova_object_data(migration), "id");

		if (json_is_integer(id))
			m->migration_id = json_integer_value(id);
	}
	m->request_id = rpc_msg_request_id(msg) ? strdup(rpc_msg_request_id(msg)) : NULL;
	m->block_migration = block != NULL && json_is_true(block);
	m->persistent = info.persistent;
	m->instance = json_incref(instance);
	m->context = json_incref(rpc_msg_context(msg));
	if (m->uuid == NULL || m->dest_host == NULL) {
		mig_free(m);
		return -ENOMEM;
	}
	r = resolve_policy(f, m, instance, info.memory_kib, reterr);
	if (r < 0) {
		mig_free(m);
		return r;
	}
	m->cast_migrate_data = json_incref(migrate_data);
	m->seq = f->next_seq++;
	m->phase = PHASE_QUEUED;
	m->next = f->migs;
	f->migs = m;
	*ret_result = NULL;
	journal_save(f, m); /* before the cast is acked */
	if (outbound_busy(f) >= f->d.tuning->max_outbound && f->d.tuning->max_outbound > 0) {
		log_info("Live migration of '%s' to '%s' accepted and queued: %d outbound "
			 "migration(s) at once (libvirt.max_concurrent_live_migrations)",
		    m->uuid, m->dest_host, f->d.tuning->max_outbound);
		return 0;
	}
	log_info("Live migration of '%s' to '%s' accepted", m->uuid, m->dest_host);
	prepare(f, m);
	return 0; /* a failure is reported through the rollback */
}

/* The Instance for an action's notifications: the cast's, as nova sends it,
 * unless the sender (an admin tool such as ferryctl) named little more than
 * the uuid; then the one the migration was started with. */
static json_t *
action_instance(json_t *cast_instance, const struct mig *m)
{
	json_t *data = rpc_nova_object_data(cast_instance);

	return json_object_get(data, "flavor") != NULL ? cast_instance : m->instance;
}

static struct mig *
running_source(wk_flow *f, const rpc_msg *msg, const char *method, json_t **ret_instance,
    struct wk_err *reterr, int *ret_r)
{
	const char *uuid = NULL;
	struct mig *m;

	*ret_r = instance_arg(rpc_msg_args(msg), method, &uuid, ret_instance, reterr);
	if (*ret_r < 0)
		return NULL;
	m = find_mig(f, uuid, ROLE_SOURCE);
	if (m == NULL)
		*ret_r = wk_err_set(reterr, -ENOENT, "%s: no migration in progress for '%s'", method,
		    uuid);
	return m;
}

int
wk_flow_force_complete(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	json_t *instance = NULL;
	struct mig *m;
	int r;

	m = running_source(f, msg, "live_migration_force_complete", &instance, reterr, &r);
	if (m == NULL)
		return r;
	if (m->phase != PHASE_RUNNING)
		return wk_err_set(reterr, -EBUSY, "migration of '%s' is %s, cannot force it now",
		    m->uuid, phase_name(m));
	notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_force_complete", "start");
	r = force_complete(f, m, "on request", m->policy.permit_post_copy, reterr);
	if (r == 0)
		journal_save(f, m);
	notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_force_complete", "end");
	*ret_result = NULL;
	return r;
}

int
wk_flow_abort(wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *instance = NULL;
	struct mig *m;
	int r;

	m = running_source(f, msg, "live_migration_abort", &instance, reterr, &r);
	if (m == NULL)
		return r;
	notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_abort", "start");
	switch (m->phase) {
	case PHASE_QUEUED:
		r = 0;
		break;
	case PHASE_PREPARING:
		m->abort_requested = true; /* on_pre_reply rolls back instead of starting */
		snprintf(m->abort_reason, sizeof(m->abort_reason), "aborted on request");
		r = 0;
		break;
	case PHASE_RUNNING:
		r = wk_hv_abort(f->d.hv, m->uuid, reterr);
		if (r == 0) {
			m->abort_requested = true;
			snprintf(m->abort_reason, sizeof(m->abort_reason), "aborted on request");
		}
		break;
	default:
		r = wk_err_set(reterr, -EBUSY, "migration of '%s' is already completing", m->uuid);
		break;
	}
	notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_abort", "end");
	if (r == 0 && m->phase == PHASE_QUEUED)
		finish_rollback(f, m, "aborted on request while queued");
	else if (r == 0) {
		journal_save(f, m);
		log_info("Abort of the migration of '%s' requested", m->uuid);
	}
	*ret_result = NULL;
	return r;
}

void
wk_flow_on_job_event(wk_flow *f, const struct wk_mig_event *ev)
{
	struct mig *m = find_job(f, ev->job_id);

	if (m == NULL || m->phase != PHASE_RUNNING)
		return; /* a late sample of a finished job */
	wk_log_set_request_id(m->request_id);
	if (ev->kind == WK_MIG_SAMPLE) {
		uint64_t interval = (uint64_t)(f->d.conf->notifications.progress_interval * 1000.0);

		if (ev->sample.memory_total <= 0)
			return; /* setup phase: nothing measured yet */
		m->last_sample = ev->sample;
		wk_progress_update(&m->progress, &ev->sample);
		apply_policy(f, m, &ev->sample);
		if (wk_now_ms() - m->last_notify_ms >= interval)
			notify_progress(f, m);
		return;
	}
	if (ev->outcome == WK_MIG_MIGRATED) {
		finish_post(f, m);
		return;
	}
	finish_rollback(f, m, m->abort_requested ? m->abort_reason : ev->msg);
}

/* ---- destination side ---- */

static int
inbound_reserved(const wk_flow *f)
{
	int n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_DEST)
			n++;
	return n;
}

int
wk_flow_pre_live_migration(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	json_t *args = rpc_msg_args(msg);
	json_t *instance = NULL, *migrate_data = NULL, *result, *data, *changes;
	const char *uuid = NULL;
	struct mig *m;
	int r;

	r = instance_arg(args, "pre_live_migration", &uuid, &instance, reterr);
	if (r < 0)
		return r;
	r = arg_get(args, "pre_live_migration", "migrate_data", JSON_OBJECT, false, &migrate_data,
	    reterr);
	if (r < 0)
		return r;
	m = find_mig(f, uuid, ROLE_DEST);
	if (m != NULL) {
		/* The source asks again only after it restarted: the new request
		 * takes over the reservation. */
		log_info("pre_live_migration for '%s' again: the new request replaces the "
			 "reservation",
		    uuid);
		unlink_free(f, m);
	}
	if (f->d.tuning->max_inbound > 0 && inbound_reserved(f) >= f->d.tuning->max_inbound)
		return wk_err_set(reterr, -EAGAIN,
		    NO_INBOUND_SLOT " on '%s' for '%s': %d reserved "
				    "(libvirt.max_concurrent_inbound_migrations)",
		    f->d.conf->host, uuid, f->d.tuning->max_inbound);
	notify_action(f, instance, rpc_msg_context(msg), "live_migration_pre", "start");

	/* Answer with the caller's migrate_data plus where to connect (as nova's
	 * libvirt driver does in pre_live_migration). */
	result = migrate_data ? json_deep_copy(migrate_data)
			      : rpc_nova_object("LibvirtLiveMigrateData", "nova", "1.10",
				    json_object());
	if (result == NULL)
		return -ENOMEM;
	data = rpc_nova_object_data(result);
	if (data == NULL) {
		json_decref(result);
		return wk_err_set(reterr, -EINVAL,
		    "pre_live_migration: argument 'migrate_data' is not a nova object");
	}
	json_object_set_new(data, "target_connect_addr",
	    json_string(f->d.conf->libvirt.live_migration_inbound_addr));
	changes = json_object_get(result, "nova_object.changes");
	if (!json_is_array(changes)) {
		changes = json_array();
		json_object_set_new(result, "nova_object.changes", changes);
	}
	json_array_append_new(changes, json_string("target_connect_addr"));

	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->uuid = strdup(uuid)) == NULL) {
		free(m);
		json_decref(result);
		return -ENOMEM;
	}
	m->flow = f;
	m->role = ROLE_DEST;
	m->phase = PHASE_INBOUND;
	m->migration_id = -1;
	wk_progress_init(&m->progress);
	m->instance = json_incref(instance);
	m->context = json_incref(rpc_msg_context(msg));
	m->request_id = rpc_msg_request_id(msg) ? strdup(rpc_msg_request_id(msg)) : NULL;
	m->started_ms = wk_now_ms();
	m->next = f->migs;
	f->migs = m;
	journal_save(f, m);
	notify_action(f, instance, rpc_msg_context(msg), "live_migration_pre", "end");
	log_info("Inbound migration of '%s' prepared, connect to '%s'", uuid,
	    f->d.conf->libvirt.live_migration_inbound_addr);
	*ret_result = result;
	return 0;
}

static int
end_inbound(wk_flow *f, const rpc_msg *msg, const char *method, const char *action,
    struct wk_err *reterr)
{
	json_t *instance = NULL;
	const char *uuid = NULL;
	struct mig *m;
	int r;

	r = instance_arg(rpc_msg_args(msg), method, &uuid, &instance, reterr);
	if (r < 0)
		return r;
	notify_action(f, instance, rpc_msg_context(msg), action, "start");
	m = find_mig(f, uuid, ROLE_DEST);
	if (m != NULL)
		unlink_free(f, m);
	notify_action(f, instance, rpc_msg_context(msg), action, "end");
	log_info("Inbound migration of '%s' ended (%s)", uuid, method);
	return 0;
}

/* A guest the source paused to force completion arrives paused; nova's
 * instance state says whether it should run (a paused instance stays so). */
static void
resume_if_should_run(wk_flow *f, const rpc_msg *msg)
{
	json_t *instance = json_object_get(rpc_msg_args(msg), "instance");
	const char *uuid = rpc_nova_instance_uuid(instance);
	const char *vm_state = obj_str(instance, "vm_state");
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	if (uuid == NULL || vm_state == NULL || strcmp(vm_state, "active") != 0)
		return;
	if (wk_hv_domain_info(f->d.hv, uuid, &info, &err) < 0) {
		log_warning("Cannot check the state of '%s' after its migration: %s", uuid,
		    err.msg);
		return;
	}
	if (info.state != WK_HV_STATE_PAUSED)
		return;
	if (wk_hv_resume(f->d.hv, uuid, &err) < 0)
		log_error("Cannot resume '%s' after its migration: %s", uuid, err.msg);
	else
		log_info("Resumed '%s', which arrived paused but should be running", uuid);
}

int
wk_flow_post_at_destination(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	*ret_result = NULL;
	resume_if_should_run(f, msg);
	return end_inbound(f, msg, "post_live_migration_at_destination",
	    "live_migration_post_dest", reterr);
}

int
wk_flow_rollback_at_destination(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	*ret_result = NULL;
	return end_inbound(f, msg, "rollback_live_migration_at_destination",
	    "live_migration_rollback_dest", reterr);
}

int
wk_flow_list_migrations(wk_flow *f, const rpc_msg *msg, json_t **ret_result,
    struct wk_err *reterr)
{
	json_t *list = json_array();

	if (list == NULL)
		return -ENOMEM;
	for (struct mig *m = f->migs; m != NULL; m = m->next) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I,s:f,s:I,s:I,s:I,s:I}", "instance_uuid",
		    m->uuid, "role", m->role == ROLE_SOURCE ? "source" : "destination", "phase",
		    phase_name(m), "dest_host", m->dest_host, "migration_uuid", m->migration_uuid,
		    "migration_id", (json_int_t)m->migration_id, "percent", m->progress.percent,
		    "data_remaining_bytes", (json_int_t)m->last_sample.data_remaining,
		    "memory_iteration", (json_int_t)m->last_sample.memory_iteration, "eta_s",
		    (json_int_t)m->progress.eta_s, "elapsed_ms",
		    (json_int_t)(m->started_ms ? wk_now_ms() - m->started_ms : 0));

		if (o == NULL || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return -ENOMEM;
		}
	}
	*ret_result = list;
	return 0;
}

void
wk_flow_cast_failed(wk_flow *f, const rpc_msg *msg, const char *method, const char *text)
{
	json_t *instance = json_object_get(rpc_msg_args(msg), "instance");

	notify_exception(f, rpc_msg_context(msg), method, "MigrationError", text);
	if (strcmp(method, "live_migration") == 0 && rpc_nova_instance_uuid(instance) != NULL) {
		notify_action(f, instance, rpc_msg_context(msg), "live_migration_rollback", "start");
		notify_action(f, instance, rpc_msg_context(msg), "live_migration_rollback", "end");
	}
}
