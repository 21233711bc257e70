/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_policy: a source migration's policy, from resolving it (host
 * tuning plus the instance's overrides) to carrying out what wk_policy
 * decides for each sample (downtime, post-copy, pause, abort).  Main
 * thread only.
 */
#include <stdio.h>
#include <string.h>

#include "wk_flow_priv.h"
#include "wk_instance_policy.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

/* Post-copy where this migration may use it, else pause the guest so the
 * remaining pages stop changing.  why is for the log. */
int
mig_force_complete(
    wk_flow *f, struct mig *m, const char *why, bool by_postcopy, struct wk_err *reterr)
{
	int r;

	if (m->postcopy_active || m->paused_by_us)
		return 0;
	if (by_postcopy) {
		r = wk_hv_start_postcopy(f->d.hv, m->uuid, reterr);
		if (r == 0) {
			m->postcopy_active = true;
			log_info("Switched the migration of '%s' to post-copy %s", m->uuid, why);
			/* The phase changed: say so now; post-copy may end before the next sample.
			 */
			mig_notify_progress(f, m);
		}
		return r;
	}
	r = mig_pause(f, m, reterr);
	if (r == 0) {
		m->paused_by_us = true;
		log_info("Paused '%s' so its migration completes (%s)", m->uuid, why);
		mig_notify_progress(f, m);
	}
	return r;
}

/* A pending switch waits for the lowest data_remaining of a pass: sample
 * faster meanwhile, so it is caught within WK_POLICY_SWITCH_SAMPLE_MS. */
static void
pace_samples(wk_flow *f, struct mig *m)
{
	bool fast = wk_policy_switch_pending(&m->policy_state);

	if (fast == m->fast_sampling)
		return;
	wk_migrate_set_interval(f->d.migrate, m->job_id, fast ? WK_POLICY_SWITCH_SAMPLE_MS : 0);
	m->fast_sampling = fast;
	if (fast)
		log_debug("Sampling the migration of '%s' every %d ms until its switch", m->uuid,
		    WK_POLICY_SWITCH_SAMPLE_MS);
}

/* One policy decision per sample: warn first, then act. */
void
mig_apply_policy(wk_flow *f, struct mig *m, const struct wk_job_sample *s)
{
	struct wk_decision d;
	struct wk_err err = {{0}};
	bool done = false; /* the action was carried out */
	int r = 0;

	wk_policy_step(&m->policy_state, &m->policy, s, &d);
	pace_samples(f, m);
	m->policy_step = d.policy_step;
	m->decision = d;
	m->decided = true;
	if (mig_should_warn(m, &d, s->t_ms)) {
		mig_notify_struggling(f, m, &d);
		m->warned_reasons |= d.reasons;
		if (d.action == WK_ACTION_NONE && d.action_reason != NULL)
			snprintf(m->warned_none, sizeof(m->warned_none), "%s", d.action_reason);
		m->last_warn_ms = s->t_ms;
	}
	switch (d.action) {
	case WK_ACTION_THROTTLE: /* auto-converge was enabled at start; QEMU throttles */
		f->actions[d.action]++;
		return;
	case WK_ACTION_NONE:
	case _WK_ACTION_MAX:
		return;
	case WK_ACTION_RAISE_DOWNTIME:
		r = wk_hv_set_max_downtime(f->d.hv, m->uuid, d.downtime_ms, &err);
		if (r == 0) {
			done = true;
			m->max_downtime_ms = d.downtime_ms;
			log_info("Max downtime of '%s' set to %llu ms (step %d)", m->uuid,
			    d.downtime_ms, d.policy_step);
		}
		break;
	case WK_ACTION_POST_COPY:
	case WK_ACTION_FORCE_COMPLETE:
		r = mig_force_complete(f, m,
		    d.action == WK_ACTION_POST_COPY ? "as it was struggling"
		    : wk_policy_pause_requested(&m->policy_state)
		        ? "on request, at the lowest data_remaining of a pass"
		        : "at the completion timeout",
		    d.action == WK_ACTION_POST_COPY || d.force_by == WK_ACTION_POST_COPY, &err);
		done = r == 0;
		break;
	case WK_ACTION_PAUSE:
		if (!m->paused_by_us) {
			r = mig_pause(f, m, &err);
			if (r == 0) {
				done = true;
				m->paused_by_us = true;
				log_warning(
				    "Paused '%s' as the last resort for its migration", m->uuid);
				mig_notify_progress(f, m);
			}
		}
		break;
	case WK_ACTION_ABORT:
		if (m->abort_requested)
			break;
		r = wk_hv_abort(f->d.hv, m->uuid, &err);
		if (r == 0) {
			done = true;
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
	if (done) {
		m->last_action = d.action;
		f->actions[d.action]++;
	}
	if (r < 0)
		log_error("Policy action '%s' on '%s' failed: %s", wk_action_name(d.action),
		    m->uuid, err.msg);
	mig_journal_save(f, m); /* keeps the step, the deadline and refusals across a restart */
}

void
mig_resolve_tuning(wk_flow *f, struct mig *m, unsigned long long memory_kib)
{
	struct wk_tuning_env env;
	struct wk_err err = {{0}};

	memset(&env, 0, sizeof(env));
	env.permit_post_copy = m->policy.permit_post_copy;
	env.tls = f->d.tuning->native_tls; /* libvirt.live_migration_with_native_tls */
	if (wk_hv_versions(f->d.hv, &env.qemu_version, &env.libvirt_version, &err) < 0) {
		env.qemu_version = env.libvirt_version = 0;
		log_warning("Cannot ask the hypervisor for its versions (%s); '%s' is tuned as for "
		            "old ones",
		    err.msg, m->uuid);
	}
	env.memlock = -1;
	if (f->d.tuning->parallel_connections > 0) /* zero-copy may be on for it */
		env.memlock = wk_tuning_memlock(
		    "/proc", memory_kib * 1024ULL, env.memlock_why, sizeof(env.memlock_why));
	wk_tuning_resolve(f->d.tuning, &env, &m->tuning);
	m->tuning_resolved = true;
}

/* This migration's policy: the host's tuning, then the instance's overrides. */
int
mig_resolve_policy(wk_flow *f, struct mig *m, json_t *instance, unsigned long long memory_kib,
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
	m->policy.permit_post_copy = wk_instance_policy_permits(
	    ip.permit_post_copy, c->libvirt.live_migration_permit_post_copy);
	m->policy.permit_auto_converge = wk_instance_policy_permits(
	    ip.permit_auto_converge, c->libvirt.live_migration_permit_auto_converge);
	m->policy.permit_pause = c->libvirt.live_migration_permit_pause;
	/* nova counts at least 2 GiB of RAM when scaling its timeouts */
	m->policy.data_bytes = ram < (2ULL << 30) ? (2ULL << 30) : ram;
	mig_resolve_tuning(f, m, memory_kib);
	if (ip.source[0] != '\0')
		log_info("Instance '%s' sets its own migration policy (%s): post-copy %s, "
		         "auto-converge %s, timeout action %s",
		    m->uuid, ip.source, m->policy.permit_post_copy ? "permitted" : "forbidden",
		    m->policy.permit_auto_converge ? "permitted" : "forbidden",
		    m->policy.timeout_action == WK_TIMEOUT_ABORT ? "abort" : "force_complete");
	return 0;
}
