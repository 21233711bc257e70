/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_notify: the notifications the flow emits, built by rpc_nova:
 * instance.<action>.<phase>, compute.exception, progress, and
 * instance.live_migration_struggling with the rule that decides when a
 * policy verdict is news (mig_should_warn).  Main thread only.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rpc_nova.h"
#include "wk_flow_priv.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

/* Struggling verdict changes closer together than this are not repeated. */
#define WARN_REPEAT_MS 10000

/* instance.<action>.<phase> with nova's InstanceActionPayload. */
void
wk_flow_notify_action(
    wk_flow *f, json_t *instance, json_t *context, const char *action, const char *phase)
{
	wk_flow_notify_action_fault(f, instance, context, action, phase, NULL);
}

void
wk_flow_notify_action_fault(wk_flow *f, json_t *instance, json_t *context, const char *action,
    const char *phase, const char *fault)
{
	char event[128];
	json_t *payload, *data;

	snprintf(event, sizeof(event), "instance.%s.%s", action, phase);
	payload =
	    rpc_nova_live_migration_payload(instance, action, phase, f->d.conf->host, context);
	data = rpc_nova_object_data(payload);
	if (payload != NULL && fault != NULL &&
	    (data == NULL || json_object_set_new(data, "fault",
	                         rpc_nova_exception_payload("ferry.worker", "live_migration",
	                             "MigrationError", fault)) < 0)) {
		json_decref(payload);
		payload = NULL;
	}
	if (payload == NULL) {
		log_error("Cannot build the '%s' payload, not sent", event);
		return;
	}
	if (wk_bus_notify(f->d.bus, event, "INFO", payload, context) < 0)
		log_error("Cannot queue notification '%s'", event);
}

void
wk_flow_notify_exception(
    wk_flow *f, json_t *context, const char *function, const char *exception, const char *text)
{
	json_t *payload = rpc_nova_exception_payload("ferry.worker", function, exception, text);

	if (payload == NULL ||
	    wk_bus_notify(f->d.bus, "compute.exception", "ERROR", payload, context) < 0)
		log_error("Cannot queue notification 'compute.exception'");
}

void
mig_notify_progress(wk_flow *f, struct mig *m)
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
	p.phase = mig_phase_name(m);
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
	    m->uuid, m->dest_host, m->progress.percent, mig_phase_name(m), s->memory_iteration,
	    s->data_remaining >= 0 ? s->data_remaining / (1024 * 1024) : -1);
	m->last_notify_ms = wk_now_ms();
}

static void
send_struggling(wk_flow *f, struct mig *m, const struct rpc_struggling *st)
{
	json_t *payload = rpc_nova_struggling_payload(st);

	if (payload == NULL || wk_bus_notify(f->d.bus, "instance.live_migration_struggling", "WARN",
	                           payload, m->context) < 0)
		log_error("Cannot queue the struggling notification of '%s'", m->uuid);
}

void
mig_prediction_wire(const struct wk_prediction *p, struct rpc_prediction *ret)
{
	*ret = (struct rpc_prediction){
	    .outlook = wk_outlook_name(p->outlook),
	    .confidence_pct = (int)p->confidence_pct,
	    .shrink_pct = p->shrink_pct,
	    .dirty_set = p->dirty_set,
	    .iterations_needed = p->iterations,
	    .predicted_downtime_ms = p->downtime_ms,
	    .judged_downtime_ms = p->max_downtime_ms,
	};
}

void
mig_notify_struggling(wk_flow *f, struct mig *m, const struct wk_decision *d)
{
	struct rpc_struggling st;
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
	                     : m->max_downtime_ms > 0              ? (long long)m->max_downtime_ms
	                                                           : -1;
	st.policy_step = d->policy_step;
	/* the prediction that justified the action */
	mig_prediction_wire(&d->prediction, &st.prediction);
	log_warning("Migration of '%s' is struggling (%s%s%s): %s%s%s (predicted: %s, %u %% sure, "
	            "switch-over %lld ms)",
	    m->uuid, st.reasons[0] ? st.reasons[0] : "?", st.reasons[1] ? ", " : "",
	    st.reasons[1] ? st.reasons[1] : "", st.action, d->action_reason ? ": " : "",
	    d->action_reason ? d->action_reason : "",
	    st.prediction.outlook ? st.prediction.outlook : "?", d->prediction.confidence_pct,
	    d->prediction.downtime_ms);
	send_struggling(f, m, &st);
}

/* Whether this decision is news for instance.live_migration_struggling.  A
 * drastic action is always announced (before it is taken), and so is the
 * first verdict.  Otherwise a change counts when it brings a reason not
 * reported yet, and not within WARN_REPEAT_MS of the last warning: the
 * reason set of a migration on the edge flaps with every iteration
 * (measured: 78 warnings in 216 s before this rule). */
bool
mig_should_warn(const struct mig *m, const struct wk_decision *d, uint64_t now_ms)
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

/* "2026-12-04T08:10:11Z" for wall-clock seconds t. */
static void
utc_text(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
}

void
mig_notify_stream_broken(wk_flow *f, struct mig *m, const struct wk_mig_event *ev)
{
	struct rpc_struggling st;
	char when[32], why[400];

	utc_text(m->broke_at_wall, when, sizeof(when));
	snprintf(why, sizeof(why),
	    "post-copy stream broke at %s (%.100s); resuming with VIR_MIGRATE_POSTCOPY_RESUME for "
	    "up to %d s (source %s, destination %s)",
	    when, ev->msg[0] ? ev->msg : "no error returned",
	    f->d.conf->libvirt.live_migration_postcopy_recovery_timeout, ev->source_state,
	    ev->dest_state);
	memset(&st, 0, sizeof(st));
	st.reasons[0] = "postcopy_stream_broken";
	st.instance_uuid = m->uuid;
	st.migration_uuid = m->migration_uuid;
	st.action = "recover_postcopy";
	st.action_reason = why;
	st.planned = "none";
	st.dirty_rate_bps = m->progress.dirty_rate_bps;
	st.transfer_rate_bps = m->progress.transfer_rate_bps;
	st.data_remaining = m->last_sample.data_remaining;
	st.memory_iteration = m->last_sample.memory_iteration;
	st.elapsed_ms = (long long)(wk_now_ms() - m->started_ms);
	st.deadline_ms = -1;
	st.max_downtime_ms = m->max_downtime_ms > 0 ? (long long)m->max_downtime_ms : -1;
	st.policy_step = m->policy_step;
	log_warning("Migration of '%s' is struggling (postcopy_stream_broken): %s", m->uuid, why);
	send_struggling(f, m, &st);
}

void
mig_notify_postcopy_failed(wk_flow *f, struct mig *m, const struct wk_mig_event *ev)
{
	struct rpc_postcopy_failed p;
	char when[32], tried[160];
	json_t *payload;

	memset(&p, 0, sizeof(p));
	utc_text(m->broke_at_wall ? m->broke_at_wall : (uint64_t)time(NULL), when, sizeof(when));
	snprintf(tried, sizeof(tried),
	    "resume with VIR_MIGRATE_POSTCOPY_RESUME on a fresh connection: %d attempt(s) within "
	    "%d s",
	    ev->recovery_attempts, f->d.conf->libvirt.live_migration_postcopy_recovery_timeout);
	p.instance_uuid = m->uuid;
	p.migration_uuid = m->migration_uuid;
	p.migration_id = m->migration_id;
	p.source_host = f->d.conf->host;
	p.dest_host = m->dest_host;
	p.source_state = ev->source_state;
	p.dest_state = ev->dest_state;
	p.errors[0] = ev->msg[0] ? ev->msg : NULL;
	p.tried[0] = tried;
	p.recovery_attempts = ev->recovery_attempts;
	p.recovery_timeout_s = f->d.conf->libvirt.live_migration_postcopy_recovery_timeout;
	p.broke_at = ev->broke_at_ms ? when : NULL;
	payload = rpc_nova_postcopy_failed_payload(&p);
	if (payload == NULL || wk_bus_notify(f->d.bus, "instance.live_migration_postcopy_failed",
	                           "ERROR", payload, m->context) < 0)
		log_error("Cannot queue the postcopy_failed notification of '%s'", m->uuid);
}
