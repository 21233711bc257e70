/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_bandwidth: the bandwidth of the source migrations while they run
 * (docs/tuning.md, "Bandwidth at run time").
 *
 * - Re-sharing: when the bandwidth is derived from libvirt.link_speed, the
 *   running outbound migrations share the link budget (wk_tuning's
 *   budget_mib_s, bandwidth x max_outbound): each gets budget / n, in
 *   pre-copy and in post-copy, and each start or end re-shares it
 *   (virDomainMigrateSetMaxSpeed).  An explicit bandwidth is a fixed cap
 *   per migration and is never re-shared.
 * - The paused switch-over: before ferry pauses a guest so its migration
 *   completes, the pre-copy cap is lifted: the paused guest dirties
 *   nothing, so its last pass is all downtime and goes unlimited, as QEMU's
 *   own final stage does.  A force-complete by pause on request lifts it
 *   at the request and pauses later (mig_request_pause).
 * Main thread only.
 */
#include <stdio.h>

#include "wk_flow_priv.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

/* Whether m's migration moves data now and so takes part in the sharing:
 * it runs in libvirt, and its stream is not broken (recovering). */
static bool
speed_counts(const struct mig *m)
{
	return m->role == ROLE_SOURCE && m->phase == PHASE_RUNNING && !m->recovering;
}

/* Running outbound migrations other than m (NULL: all of them). */
static int
speed_running(const wk_flow *f, const struct mig *m)
{
	int n = 0;

	for (const struct mig *o = f->migs; o != NULL; o = o->next)
		if (o != m && speed_counts(o))
			n++;
	return n;
}

/* m's caps with n migrations running: its share of the budget, or the
 * fixed per-migration values; a guest ferry paused goes unlimited. */
static void
speed_wanted(const wk_flow *f, const struct mig *m, int n, unsigned long long *ret_pre,
    unsigned long long *ret_post)
{
	const struct wk_tuning *t = f->d.tuning;
	unsigned long long share = 0;

	if (t->budget_mib_s > 0 && n > 0) {
		share = t->budget_mib_s / (unsigned long long)n;
		if (share < 1)
			share = 1;
	}
	*ret_pre = t->bandwidth_mib_s;
	*ret_post = t->postcopy_bandwidth_mib_s;
	if (share > 0) {
		*ret_pre = share;
		if (t->src.postcopy_bandwidth != WK_SRC_CONFIG)
			*ret_post = share;
	}
	if (m->paused_by_us || wk_policy_pause_requested(&m->policy_state))
		*ret_pre = 0;
}

void
mig_speed_params(const wk_flow *f, const struct mig *m, struct wk_hv_migrate_params *p)
{
	speed_wanted(
	    f, m, speed_running(f, m) + 1, &p->bandwidth_mib_s, &p->postcopy_bandwidth_mib_s);
	/* Only a migration that may switch to post-copy has a post-copy cap. */
	if (!m->policy.permit_post_copy)
		p->postcopy_bandwidth_mib_s = 0;
}

void
mig_speed_started(struct mig *m, const struct wk_hv_migrate_params *p)
{
	m->speed_mib_s = p->bandwidth_mib_s;
	m->postcopy_speed_mib_s = p->postcopy_bandwidth_mib_s;
	m->speed_set = true;
}

/* Gives m's migration one cap (postcopy: the post-copy one); the value is
 * kept even when libvirt refuses, so a refusal is logged once, not at
 * every sample. */
static void
speed_apply(wk_flow *f, struct mig *m, bool postcopy, unsigned long long mib_s, int n)
{
	const struct wk_tuning *t = f->d.tuning;
	struct wk_err err = {{0}};
	char budget[96] = "fixed per migration";
	char caller[WK_LOG_REQUEST_ID_MAX + 1];
	const char *id = wk_log_get_request_id();

	/* The lines are about m: its request id, then the caller's again. */
	snprintf(caller, sizeof(caller), "%s", id != NULL ? id : "");
	wk_log_set_request_id(m->request_id);
	if (wk_hv_set_max_speed(f->d.hv, m->uuid, mib_s, postcopy, &err) < 0)
		log_warning("Cannot set the %s bandwidth of '%s' to %llu MiB/s: %s",
		    postcopy ? "post-copy" : "pre-copy", m->uuid, mib_s, err.msg);
	else {
		if (t->budget_mib_s > 0)
			snprintf(budget, sizeof(budget), "%llu MiB/s shared by %d running",
			    t->budget_mib_s, n);
		if (!postcopy && (m->paused_by_us || wk_policy_pause_requested(&m->policy_state)))
			log_info(
			    "Lifted the bandwidth cap of '%s' for its paused last pass", m->uuid);
		else
			log_info("Re-shared the %s bandwidth of '%s': %llu MiB/s (%s)",
			    postcopy ? "post-copy" : "pre-copy", m->uuid, mib_s, budget);
	}
	wk_log_set_request_id(caller[0] != '\0' ? caller : NULL);
	if (postcopy)
		m->postcopy_speed_mib_s = mib_s;
	else
		m->speed_mib_s = mib_s;
}

void
wk_flow_reshare(wk_flow *f)
{
	int n = speed_running(f, NULL);

	for (struct mig *m = f->migs; m != NULL; m = m->next) {
		unsigned long long pre, post;

		/* Not before libvirt reported the job: a cap set earlier would
		 * find none and be refused; the next sample comes back here. */
		if (!speed_counts(m) || m->last_sample.memory_total <= 0)
			continue;
		speed_wanted(f, m, n, &pre, &post);
		if (!m->speed_set || m->speed_mib_s != pre)
			speed_apply(f, m, false, pre, n);
		/* Only a migration that may switch has a post-copy cap, and a
		 * paused guest never switches: its post-copy cap waits. */
		if (m->policy.permit_post_copy && !m->paused_by_us &&
		    (!m->speed_set || m->postcopy_speed_mib_s != post))
			speed_apply(f, m, true, post, n);
		m->speed_set = true;
	}
}

int
mig_pause(wk_flow *f, struct mig *m, struct wk_err *reterr)
{
	struct wk_err err = {{0}};
	bool lifted = false;
	int r;

	/* Before the pause, so the last pass is not capped for even a sample:
	 * the guest's downtime starts with the pause. */
	if (!m->speed_set || m->speed_mib_s != 0) {
		if (wk_hv_set_max_speed(f->d.hv, m->uuid, 0, false, &err) < 0)
			log_warning("Cannot lift the bandwidth cap of '%s' before pausing it: %s",
			    m->uuid, err.msg);
		else {
			lifted = true;
			m->speed_mib_s = 0;
			m->speed_set = true;
			log_info(
			    "Lifted the bandwidth cap of '%s' for its paused last pass", m->uuid);
		}
	}
	r = wk_hv_suspend(f->d.hv, m->uuid, reterr);
	if (r == 0)
		m->paused_by_us = true;
	else if (lifted)
		wk_flow_reshare(f); /* still running: its cap comes back */
	return r;
}

int
mig_request_pause(wk_flow *f, struct mig *m, struct wk_err *reterr)
{
	struct wk_err err = {{0}};

	if (wk_policy_pause_requested(&m->policy_state))
		return 0;
	if (wk_hv_set_max_speed(f->d.hv, m->uuid, 0, false, &err) < 0) {
		log_warning(
		    "Cannot lift the bandwidth cap of '%s' (%s): pausing it now", m->uuid, err.msg);
		return mig_pause(f, m, reterr);
	}
	m->speed_mib_s = 0;
	m->speed_set = true;
	wk_policy_request_pause(&m->policy_state,
	    m->last_sample.memory_total > 0 ? m->last_sample.memory_iteration : 0, wk_now_ms());
	log_info("Lifted the bandwidth cap of '%s'; it is paused once its first pass is over, at "
	         "the lowest data_remaining of a pass (iteration %lld now)",
	    m->uuid, m->last_sample.memory_total > 0 ? m->last_sample.memory_iteration : 0);
	return 0;
}
