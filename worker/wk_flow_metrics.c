/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_metrics: the flow's Prometheus families (wk_flow_metrics()) and
 * the counters behind them.  Rendering only reads the records; the counters
 * are bumped where the events happen (mig_count_outcome at each terminal
 * notification, the policy's actions in wk_flow_policy.c).  Main thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "wk_flow_priv.h"
#include "wk_metrics.h"

static const char *const role_names[] = {
    [ROLE_SOURCE] = "source",
    [ROLE_DEST] = "destination",
};

static const char *const outcome_names[] = {
    [OUTCOME_COMPLETED] = "completed",
    [OUTCOME_ROLLED_BACK] = "rolled_back",
    [OUTCOME_ABORTED] = "aborted",
    [OUTCOME_POSTCOPY_FAILED] = "postcopy_failed",
    [OUTCOME_LOST] = "lost",
    [OUTCOME_RELEASED] = "released",
};

/* The outcomes each role can have: every pair is rendered from start, at 0,
 * so rate() and increase() see the first one. */
static bool
role_has_outcome(enum mig_role role, enum mig_outcome o)
{
	if (role == ROLE_DEST)
		return o == OUTCOME_COMPLETED || o == OUTCOME_ROLLED_BACK || o == OUTCOME_RELEASED;
	return o != OUTCOME_RELEASED;
}

/* Every name mig_phase_name() returns: one ferry_migration_phase series each. */
static const char *const phase_names[] = {
    "queued",
    "preparing",
    "precopy",
    "postcopy",
    "postcopy_recovering",
    "paused",
    "completing",
    "inbound",
    "postcopy_failed",
};

void
mig_count_outcome(wk_flow *f, enum mig_role role, enum mig_outcome outcome)
{
	f->outcomes[role][outcome]++;
}

/* The labels naming migration m: instance and its peer host. */
static size_t
mig_labels(const struct mig *m, struct wk_metrics_label *l)
{
	l[0].name = "instance";
	l[0].value = m->uuid;
	if (m->role == ROLE_SOURCE) {
		l[1].name = "dest";
		l[1].value = m->dest_host;
	} else {
		/* The Instance's host is still the source while it migrates. */
		l[1].name = "source";
		l[1].value = wk_flow_obj_str(m->instance, "host");
	}
	return 2;
}

/* A source migration libvirt has reported on (the job's figures are known). */
static bool
has_sample(const struct mig *m)
{
	return m->role == ROLE_SOURCE && m->last_sample.t_ms != 0;
}

enum figure {
	FIG_REMAINING,
	FIG_PROCESSED,
	FIG_TOTAL,
	FIG_DIRTY_RATE,
	FIG_TRANSFER_RATE,
	FIG_ITERATION,
};

static const struct {
	const char *name, *help;
} figures[] = {
    [FIG_REMAINING] = {"ferry_migration_data_remaining_bytes",
        "Data (memory and disks) still to send, as libvirt last reported it."},
    [FIG_PROCESSED] = {"ferry_migration_data_processed_bytes",
        "Data (memory and disks) sent so far, as libvirt last reported it."},
    [FIG_TOTAL] = {"ferry_migration_data_total_bytes",
        "Data (memory and disks) to migrate, as libvirt last reported it."},
    [FIG_DIRTY_RATE] = {"ferry_migration_dirty_rate_bytes",
        "Rate at which the guest dirties its memory, bytes per second."},
    [FIG_TRANSFER_RATE] = {"ferry_migration_transfer_rate_bytes",
        "Rate of the migration stream, bytes per second."},
    [FIG_ITERATION] = {"ferry_migration_iteration",
        "Pre-copy memory pass the migration is in (1 = the first)."},
};

/* Figure fig of m, or -1 when libvirt did not report it. */
static long long
figure_of(const struct mig *m, enum figure fig)
{
	switch (fig) {
	case FIG_REMAINING:
		return m->last_sample.data_remaining;
	case FIG_PROCESSED:
		return m->last_sample.data_processed;
	case FIG_TOTAL:
		return m->last_sample.data_total;
	case FIG_DIRTY_RATE:
		return m->progress.dirty_rate_bps;
	case FIG_TRANSFER_RATE:
		return m->progress.transfer_rate_bps;
	case FIG_ITERATION:
		return m->last_sample.memory_iteration;
	}
	return -1;
}

static void
render_counters(const wk_flow *f, struct wk_metrics_text *t)
{
	struct wk_metrics_label l[2];
	int role, o, a;

	wk_metrics_family(t, "ferry_migrations_total", "counter",
	    "Migrations this worker took part in that ended, by role and outcome.");
	for (role = ROLE_SOURCE; role <= ROLE_DEST; role++)
		for (o = 0; o < _OUTCOME_MAX; o++) {
			if (!role_has_outcome(role, o))
				continue;
			l[0].name = "role";
			l[0].value = role_names[role];
			l[1].name = "outcome";
			l[1].value = outcome_names[o];
			wk_metrics_sample(
			    t, "ferry_migrations_total", l, 2, (double)f->outcomes[role][o]);
		}

	wk_metrics_family(t, "ferry_policy_actions_total", "counter",
	    "Actions the migration policy carried out on struggling or overdue migrations.");
	for (a = WK_ACTION_NONE + 1; a < _WK_ACTION_MAX; a++) {
		l[0].name = "action";
		l[0].value = wk_action_name(a);
		wk_metrics_sample(t, "ferry_policy_actions_total", l, 1, (double)f->actions[a]);
	}
}

static void
render_slots(const wk_flow *f, struct wk_metrics_text *t)
{
	int queued = 0, inbound = 0, outbound = 0;
	int max_in = f->d.tuning->max_inbound, max_out = f->d.tuning->max_outbound;

	for (const struct mig *m = f->migs; m != NULL; m = m->next) {
		if (m->role == ROLE_DEST)
			inbound++;
		else if (m->phase == PHASE_QUEUED)
			queued++;
		else if (m->phase != PHASE_POSTCOPY_FAILED)
			outbound++;
	}
	wk_metrics_family(t, "ferry_migrations_queued", "gauge",
	    "Outbound migrations waiting for a slot (ours or the destination's).");
	wk_metrics_sample(t, "ferry_migrations_queued", NULL, 0, queued);
	wk_metrics_family(t, "ferry_inbound_slots_in_use", "gauge",
	    "Inbound migrations reserved or running here.");
	wk_metrics_sample(t, "ferry_inbound_slots_in_use", NULL, 0, inbound);
	wk_metrics_family(t, "ferry_inbound_slots", "gauge",
	    "libvirt.max_concurrent_inbound_migrations (+Inf when unlimited).");
	wk_metrics_sample(t, "ferry_inbound_slots", NULL, 0, max_in > 0 ? max_in : INFINITY);
	wk_metrics_family(t, "ferry_outbound_slots_in_use", "gauge",
	    "Outbound migrations past the queue (preparing, running or completing).");
	wk_metrics_sample(t, "ferry_outbound_slots_in_use", NULL, 0, outbound);
	wk_metrics_family(t, "ferry_outbound_slots", "gauge",
	    "libvirt.max_concurrent_live_migrations (+Inf when unlimited).");
	wk_metrics_sample(t, "ferry_outbound_slots", NULL, 0, max_out > 0 ? max_out : INFINITY);
}

static void
render_migrations(const wk_flow *f, struct wk_metrics_text *t, double now_wall_s)
{
	struct wk_metrics_label l[3];
	uint64_t now = wk_now_ms();
	const struct mig *m;
	size_t n, p, fig;
	const char *cur;

	wk_metrics_family(t, "ferry_migration_phase", "gauge",
	    "1 for the phase the migration is in, 0 for the others.");
	for (m = f->migs; m != NULL; m = m->next) {
		n = mig_labels(m, l);
		cur = mig_phase_name(m);
		l[n].name = "phase";
		for (p = 0; p < sizeof(phase_names) / sizeof(phase_names[0]); p++) {
			l[n].value = phase_names[p];
			wk_metrics_sample(t, "ferry_migration_phase", l, n + 1,
			    strcmp(cur, phase_names[p]) == 0 ? 1 : 0);
		}
	}

	wk_metrics_family(t, "ferry_migration_start_time_seconds", "gauge",
	    "When the migration was accepted here, Unix time.");
	for (m = f->migs; m != NULL; m = m->next) {
		double age_s = m->started_ms != 0 && now >= m->started_ms
		                   ? (double)(now - m->started_ms) / 1000.0
		                   : 0.0;

		n = mig_labels(m, l);
		wk_metrics_sample(t, "ferry_migration_start_time_seconds", l, n,
		    floor((now_wall_s - age_s) * 1000.0) / 1000.0);
	}

	wk_metrics_family(t, "ferry_migration_struggling", "gauge",
	    "1 while the policy finds the migration struggling (see its notifications), else 0.");
	for (m = f->migs; m != NULL; m = m->next) {
		n = mig_labels(m, l);
		wk_metrics_sample(t, "ferry_migration_struggling", l, n,
		    m->role == ROLE_SOURCE && m->policy_state.reported != 0 ? 1 : 0);
	}

	for (fig = 0; fig < sizeof(figures) / sizeof(figures[0]); fig++) {
		wk_metrics_family(t, figures[fig].name, "gauge", figures[fig].help);
		for (m = f->migs; m != NULL; m = m->next) {
			long long v = has_sample(m) ? figure_of(m, (enum figure)fig) : -1;

			if (v < 0)
				continue;
			n = mig_labels(m, l);
			wk_metrics_sample(t, figures[fig].name, l, n, (double)v);
		}
	}
}

void
wk_flow_metrics(const wk_flow *f, struct wk_metrics_text *t, double now_wall_s)
{
	render_counters(f, t);
	render_slots(f, t);
	render_migrations(f, t, now_wall_s);
}
