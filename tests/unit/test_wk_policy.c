/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_policy.c - the struggling policy replayed over job-stats traces
 * recorded from real libvirt/QEMU migrations (tests/data/traces/<name>.jsonl,
 * recorded by tests/traces/record.py) and over synthetic sample streams for
 * the edge cases and the escalation ladder.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>

#include "trace_sample.h"
#include "wk_policy.h"

#define MIB        (1024LL * 1024LL)
#define GIB_BYTES  (1024ULL * 1024ULL * 1024ULL)
#define MAX_SAMPLE 512

/* One recorded trace: its samples plus the recorder's events. */
struct trace {
	struct wk_job_sample s[MAX_SAMPLE];
	size_t n;
	long long freeze_ms;       /* -1 when the trace has no freeze */
	long long slowdown_iter;   /* iteration when the link was slowed; -1 none */
	long long max_downtime_ms; /* what QEMU ran with (libvirt's default 300) */
	bool done, ok;
};

/* Everything a replay saw, plus the invariants checked on every call. */
struct replay {
	struct wk_policy_state st;
	struct wk_policy_config cfg;
	struct wk_decision last;
	bool announced; /* a verdict_changed since the verdict last was 0 */
	int n_post_copy, n_pause, n_terminal;
	enum wk_action actions[64]; /* non-NONE actions, in order */
	const char *reasons_text[64];
	size_t n_actions;
};

static struct wk_policy_config
nova_defaults(void)
{
	struct wk_policy_config c = {
	    .max_downtime_ms = WK_POLICY_DEFAULT_DOWNTIME_MS,
	    .downtime_steps = WK_POLICY_DEFAULT_DOWNTIME_STEPS,
	    .downtime_delay_s = WK_POLICY_DEFAULT_DOWNTIME_DELAY_S,
	    .completion_timeout_s = WK_POLICY_DEFAULT_COMPLETION_TIMEOUT,
	    .timeout_action = WK_TIMEOUT_ABORT,
	    .permit_post_copy = true,
	    .permit_auto_converge = true,
	    .permit_pause = true,
	    .data_bytes = 2 * GIB_BYTES, /* 256 MiB guest: nova's 2 GiB floor */
	};
	return c;
}

/*
 * Config to replay a recorded trace with.  The recorder did not act on the
 * policy, so the replay runs under the max downtime QEMU actually used (one
 * step at that value): judging a recorded pass against nova's 50 ms step 0
 * would call a migration struggling that converged at 300 ms.
 */
static struct wk_policy_config
trace_config(const struct trace *t)
{
	struct wk_policy_config c = nova_defaults();

	c.max_downtime_ms = (unsigned)t->max_downtime_ms;
	c.downtime_steps = 1;
	return c;
}

static void
replay_init(struct replay *r, const struct wk_policy_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	wk_policy_init(&r->st, &r->cfg, 0);
}

static bool
drastic(enum wk_action a)
{
	return a == WK_ACTION_POST_COPY || a == WK_ACTION_PAUSE || a == WK_ACTION_ABORT ||
	       a == WK_ACTION_FORCE_COMPLETE;
}

/* Feeds one sample and checks the invariants every decision must keep. */
static const struct wk_decision *
feed(struct replay *r, const struct wk_job_sample *s)
{
	struct wk_decision *d = &r->last;

	wk_policy_step(&r->st, &r->cfg, s, d);
	cr_assert_not_null(d->action_reason);
	cr_assert_not_null(wk_action_name(d->action));
	cr_assert_not_null(wk_action_name(d->planned));
	if (d->verdict_changed) {
		cr_assert_neq(d->reasons, 0);
		r->announced = true;
	}
	if (d->reasons == 0)
		r->announced = false;
	if (drastic(d->action)) {
		cr_assert_neq(
		    d->reasons, 0, "drastic %s without a verdict", wk_action_name(d->action));
		cr_assert(r->announced, "drastic %s before the struggling notification",
		    wk_action_name(d->action));
	}
	if (d->action == WK_ACTION_RAISE_DOWNTIME)
		cr_assert(d->downtime_ms > 0 && d->downtime_ms <= r->cfg.max_downtime_ms);
	if (d->action == WK_ACTION_POST_COPY ||
	    (d->action == WK_ACTION_FORCE_COMPLETE && r->cfg.permit_post_copy))
		r->n_post_copy++;
	if (d->action == WK_ACTION_PAUSE ||
	    (d->action == WK_ACTION_FORCE_COMPLETE && !r->cfg.permit_post_copy))
		r->n_pause++;
	if (d->action == WK_ACTION_ABORT || d->action == WK_ACTION_FORCE_COMPLETE)
		r->n_terminal++;
	cr_assert_leq(r->n_post_copy, 1, "post-copy twice");
	cr_assert_leq(r->n_pause, 1, "pause twice");
	cr_assert_leq(r->n_terminal, 1, "abort/force-complete twice");
	if (d->action != WK_ACTION_NONE && r->n_actions < 64) {
		r->reasons_text[r->n_actions] = d->action_reason;
		r->actions[r->n_actions++] = d->action;
	}
	return d;
}

/* ---- trace loading ---- */

static long long
field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void
load_trace(const char *name, struct trace *t)
{
	char path[512];
	char line[8192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/traces/%s.jsonl", FERRY_SOURCE_DIR, name);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s", path);
	memset(t, 0, sizeof(*t));
	t->freeze_ms = -1;
	t->slowdown_iter = -1;
	t->max_downtime_ms = 300;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		json_t *ev;

		cr_assert_not_null(o, "%s: %s", path, err.text);
		ev = json_object_get(o, "event");
		if (json_is_string(ev)) {
			if (strcmp(json_string_value(ev), "scenario") == 0 &&
			    field(o, "max_downtime_ms") > 0)
				t->max_downtime_ms = field(o, "max_downtime_ms");
			if (strcmp(json_string_value(ev), "freeze") == 0)
				t->freeze_ms = field(o, "t_ms");
			if (strcmp(json_string_value(ev), "slowdown") == 0)
				t->slowdown_iter = field(o, "iteration");
			if (strcmp(json_string_value(ev), "done") == 0) {
				t->done = true;
				t->ok = json_is_true(json_object_get(o, "ok"));
			}
		} else {
			cr_assert(trace_sample_from_json(o, &t->s[t->n]), "%s: bad sample", path);
			t->n++;
			cr_assert_lt(t->n, MAX_SAMPLE);
		}
		json_decref(o);
	}
	fclose(f);
	cr_assert(t->done, "%s: no done event", path);
	cr_assert_gt(t->n, 0, "%s: no samples", path);
}

/* ---- recorded traces ---- */

/*
 * Every recorded trace, with what happened when it was recorded (no policy
 * acted): converged, or aborted by the recorder after struggling from its
 * onset iteration on (iteration 2, the first with a dirty set, or the
 * iteration whose start the recorder slowed the link at).
 */
struct trace_case {
	char trace[32]; /* an array: criterion copies parameters into the test process */
	bool converges;
	bool only_if_converged; /* the sawtooth trace counts only if it converged */
};

ParameterizedTestParameters(wk_policy, recorded_traces)
{
	static struct trace_case cases[] = {
	    {"converging", true, false},
	    {"converging_fast", true, false},
	    {"sawtooth", true, true},
	    /* KubeVirt VEP 248's case: an 8 MiB set re-dirtied at 3x the link */
	    {"hot_small", true, false},
	    {"nonconverging", false, false},
	    {"large_ws", false, false},
	    {"bursty", false, false},
	    {"link_slowdown", false, false},
	    {"issue10", false, false},
	    {"stalled", false, false},
	};
	return cr_make_param_array(struct trace_case, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Lowest data_remaining of the trace's samples in iteration @it. */
static long long
iteration_min(const struct trace *t, long long it)
{
	long long m = -1;

	for (size_t i = 0; i < t->n; i++)
		if (t->s[i].memory_iteration == it && t->s[i].data_remaining >= 0 &&
		    (m < 0 || t->s[i].data_remaining < m))
			m = t->s[i].data_remaining;
	return m;
}

/*
 * Replays a trace under the max downtime it was recorded with: converging
 * traces never get a verdict nor a drastic action; struggling ones get the
 * memory verdict within 2 completed iterations of the onset, with a
 * prediction of "struggles" at >= 75 % confidence, the ladder skips the
 * downtime raise that could not fit (every struggling trace's pass takes
 * seconds against 300 ms), and post-copy comes at the lowest data_remaining
 * of its iteration.
 */
ParameterizedTest(struct trace_case *c, wk_policy, recorded_traces)
{
	static struct trace t;
	struct wk_policy_config cfg;
	struct replay r;
	long long onset = 2, detected = -1, pc_iter = -1, pc_rem = -1;
	size_t i;

	load_trace(c->trace, &t);
	cfg = trace_config(&t);
	if (c->only_if_converged && !t.ok)
		cr_skip_test("%s did not converge when recorded", c->trace);
	cr_assert_eq(t.ok, c->converges, "%s: recorded outcome", c->trace);
	if (t.slowdown_iter > 0)
		onset = t.slowdown_iter;
	replay_init(&r, &cfg);
	for (i = 0; i < t.n; i++) {
		const struct wk_decision *d = feed(&r, &t.s[i]);

		if (c->converges) {
			cr_assert_eq(d->reasons, 0,
			    "%s: struggling (0x%x) at t=%llu ms iteration %lld", c->trace,
			    d->reasons, (unsigned long long)t.s[i].t_ms, d->memory_iteration);
			cr_assert(
			    d->action == WK_ACTION_NONE || d->action == WK_ACTION_RAISE_DOWNTIME);
			continue;
		}
		if ((d->reasons & WK_REASON_REMAINING_NOT_SHRINKING) && detected < 0) {
			detected = d->memory_iteration;
			cr_assert(d->verdict_changed);
			cr_assert_eq(d->prediction.outlook, WK_OUTLOOK_STRUGGLES);
			cr_assert_geq(d->prediction.confidence_pct, 75);
			cr_assert_gt(d->prediction.downtime_ms, (long long)cfg.max_downtime_ms,
			    "%s: predicted %lld ms", c->trace, d->prediction.downtime_ms);
			cr_assert_gt(d->prediction.dirty_set, 0);
			cr_assert_eq(d->prediction.iterations, -1);
			cr_log_info(
			    "%s: onset iteration %lld, verdict at iteration %lld (t=%llu ms), "
			    "dirty set %lld MiB, predicted downtime %lld ms, confidence %u %%",
			    c->trace, onset, detected, (unsigned long long)t.s[i].t_ms,
			    d->prediction.dirty_set / MIB, d->prediction.downtime_ms,
			    d->prediction.confidence_pct);
		}
		if (d->reasons & WK_REASON_REMAINING_NOT_SHRINKING)
			cr_assert_neq(d->action, WK_ACTION_RAISE_DOWNTIME,
			    "%s: raised a downtime that cannot fit", c->trace);
		if (d->action == WK_ACTION_POST_COPY) {
			pc_iter = d->memory_iteration;
			pc_rem = d->data_remaining;
		}
	}
	if (c->converges)
		return;
	cr_assert_geq(detected, 2, "%s: never detected (onset iteration %lld)", c->trace, onset);
	cr_assert_leq(detected, onset + 2, "%s: detected at iteration %lld, onset %lld", c->trace,
	    detected, onset);
	cr_assert_eq(r.actions[0], WK_ACTION_RAISE_DOWNTIME, "nova's step 0 at the first sample");
	for (i = 1; i < r.n_actions && r.actions[i] == WK_ACTION_RAISE_DOWNTIME; i++)
		;
	cr_assert_eq(i, 1, "%s: only nova's step 0 was a raise", c->trace);
	if (t.freeze_ms >= 0) {
		cr_assert_eq(pc_iter, -1, "%s: post-copy on a stalled link", c->trace);
		return;
	}
	if (pc_iter < 0) { /* throttled first: did the trace go on for another pass? */
		cr_assert_leq(
		    t.s[t.n - 1].memory_iteration, detected, "%s: no post-copy", c->trace);
		return;
	}
	cr_assert_leq(pc_rem, iteration_min(&t, pc_iter),
	    "%s: post-copy at %lld MiB remaining, its iteration %lld fell to %lld MiB", c->trace,
	    pc_rem / MIB, pc_iter, iteration_min(&t, pc_iter) / MIB);
}

Test(wk_policy, stalled_trace_reports_transfer_stalled_within_4s_of_freeze)
{
	static struct trace t;
	struct wk_policy_config cfg;
	struct replay r;
	long long first = -1;
	size_t i;

	load_trace("stalled", &t);
	cfg = trace_config(&t);
	cr_assert_geq(t.freeze_ms, 0);
	replay_init(&r, &cfg);
	for (i = 0; i < t.n; i++) {
		const struct wk_decision *d = feed(&r, &t.s[i]);

		if (!(d->reasons & WK_REASON_TRANSFER_STALLED))
			continue;
		if (first < 0) {
			first = (long long)t.s[i].t_ms;
			cr_assert(d->verdict_changed);
		}
		cr_assert_neq(d->action, WK_ACTION_POST_COPY, "post-copy on a dead link");
		cr_assert_neq(d->action, WK_ACTION_PAUSE);
	}
	cr_assert_geq(first, t.freeze_ms, "stalled before the freeze at %lld", t.freeze_ms);
	cr_assert_leq(first - t.freeze_ms, 4000, "stalled verdict %lld ms after the freeze",
	    first - t.freeze_ms);
	cr_log_info("stalled: verdict %lld ms after the freeze", first - t.freeze_ms);
}

/* ---- synthetic streams ---- */

static struct wk_job_sample
blank(uint64_t t_ms)
{
	struct wk_job_sample s;

	memset(&s, 0xff, sizeof(s)); /* every long long -1 */
	s.t_ms = t_ms;
	s.type = WK_JOB_UNBOUNDED;
	return s;
}

static struct wk_job_sample
sample(uint64_t t_ms, long long iteration, long long remaining, long long processed,
    long long dirty_bps, long long bps)
{
	struct wk_job_sample s = blank(t_ms);

	s.memory_iteration = iteration;
	s.data_remaining = remaining;
	s.data_processed = processed;
	s.data_total = 256 * MIB;
	s.memory_page_size = 4096;
	s.memory_dirty_rate = dirty_bps / 4096;
	s.memory_bps = bps;
	return s;
}

/*
 * A guest that re-dirties a @ws byte working set faster than a @bps link
 * sends it: iteration 1 sends 256 MiB (mostly zero pages) in @first_ms,
 * then every iteration sends the whole working set again.  Samples every
 * 250 ms from @t0 for @n samples; the dirty rate shows @dirty_pct % of
 * the link rate.
 */
struct gen {
	uint64_t t;
	long long iteration, rem, proc, ws, bps, dirty_pct;
};

static struct wk_job_sample
gen_next(struct gen *g)
{
	long long sent = g->bps / 4;
	long long dirty = g->iteration >= 2 ? g->bps * g->dirty_pct / 100 : 0;

	g->t += 250;
	g->proc += sent;
	g->rem -= sent;
	if (g->rem <= g->ws / 8) {
		g->iteration++;
		g->rem = g->ws;
	}
	return sample(g->t, g->iteration, g->rem, g->proc, dirty, g->bps);
}

static void
gen_init(struct gen *g, long long ws, long long bps, long long dirty_pct)
{
	memset(g, 0, sizeof(*g));
	g->iteration = 1;
	g->rem = 128 * MIB;
	g->ws = ws;
	g->bps = bps;
	g->dirty_pct = dirty_pct;
}

/* A 64 MiB set at 16 MiB/s takes 4 s to switch over, far beyond the 500 ms
 * max downtime: the ladder skips the downtime raise and throttles, then
 * switches to post-copy, then does nothing more. */
Test(wk_policy, ladder_skips_a_raise_that_cannot_fit_then_throttle_post_copy)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct gen g;
	size_t i;
	bool saw_prediction = false;

	cfg.downtime_delay_s = 1000; /* wall-clock steps out of the way */
	replay_init(&r, &cfg);
	gen_init(&g, 64 * MIB, 16 * MIB, 101);
	for (i = 0; i < 400; i++) {
		struct wk_job_sample s = gen_next(&g);
		const struct wk_decision *d = feed(&r, &s);

		if (d->action == WK_ACTION_THROTTLE) {
			cr_assert_eq(d->prediction.outlook, WK_OUTLOOK_STRUGGLES);
			cr_assert_gt(
			    d->prediction.downtime_ms, 3500, "%lld ms", d->prediction.downtime_ms);
			cr_assert_not_null(strstr(d->action_reason, "no max downtime fits"));
			saw_prediction = true;
		}
	}
	cr_assert(saw_prediction);
	cr_assert_eq(r.n_actions, 3);
	cr_assert_eq(r.actions[0], WK_ACTION_RAISE_DOWNTIME, "step 0 of nova's schedule");
	cr_assert_eq(r.actions[1], WK_ACTION_THROTTLE);
	cr_assert_eq(r.actions[2], WK_ACTION_POST_COPY);
	cr_assert_eq(r.st.step, 0, "no raise beyond nova's step 0");
	cr_assert(!r.st.downtime_raised);
	cr_assert_str_eq(r.last.action_reason, "post-copy phase: no further escalation");
}

Test(wk_policy, ladder_skips_throttle_and_pauses_when_post_copy_forbidden)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct gen g;
	size_t i;
	bool saw_plan = false;

	cfg.downtime_delay_s = 1000;
	cfg.permit_auto_converge = false;
	cfg.permit_post_copy = false;
	replay_init(&r, &cfg);
	gen_init(&g, 64 * MIB, 16 * MIB, 101);
	for (i = 0; i < 400; i++) {
		struct wk_job_sample s = gen_next(&g);
		const struct wk_decision *d = feed(&r, &s);

		if (d->reasons != 0 && d->planned == WK_ACTION_PAUSE)
			saw_plan = true;
	}
	cr_assert(saw_plan, "pause announced as the planned action");
	cr_assert_eq(r.actions[r.n_actions - 1], WK_ACTION_PAUSE);
	cr_assert_not_null(strstr(r.reasons_text[r.n_actions - 1], "post-copy forbidden"));
	for (i = 0; i + 1 < r.n_actions; i++)
		cr_assert_eq(r.actions[i], WK_ACTION_RAISE_DOWNTIME);
	cr_assert_eq(r.n_pause, 1);
	cr_assert_not_null(strstr(r.last.action_reason, "paused"));
}

Test(wk_policy, forbidden_post_copy_and_pause_give_none_naming_it)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct gen g;
	size_t i;

	cfg.downtime_delay_s = 1000;
	cfg.permit_post_copy = false;
	cfg.permit_pause = false;
	replay_init(&r, &cfg);
	gen_init(&g, 64 * MIB, 16 * MIB, 101);
	for (i = 0; i < 400; i++) {
		struct wk_job_sample s = gen_next(&g);

		feed(&r, &s);
	}
	cr_assert_neq(r.last.reasons, 0);
	cr_assert_eq(r.last.action, WK_ACTION_NONE);
	cr_assert_eq(r.last.planned, WK_ACTION_NONE);
	cr_assert_not_null(strstr(r.last.action_reason, "post-copy forbidden for this instance"),
	    "reason: %s", r.last.action_reason);
	cr_assert_eq(r.n_post_copy + r.n_pause + r.n_terminal, 0);
	cr_assert_eq(r.actions[r.n_actions - 1], WK_ACTION_THROTTLE);
}

/* A healthy but long migration: iteration 1 of a big guest at 1 MiB/s. */
static void
run_to_deadline(struct replay *r, uint64_t until_ms, long long *approach_ms, long long *act_ms)
{
	uint64_t t;

	*approach_ms = -1;
	*act_ms = -1;
	for (t = 250; t <= until_ms; t += 250) {
		struct wk_job_sample s = sample(
		    t, 1, 64LL * 1024 * MIB - (long long)t * 1024, (long long)t * 1024, 0, MIB);
		const struct wk_decision *d = feed(r, &s);

		if ((d->reasons & WK_REASON_DEADLINE_APPROACHING) && *approach_ms < 0)
			*approach_ms = (long long)t;
		if (drastic(d->action) && *act_ms < 0)
			*act_ms = (long long)t;
		cr_assert_eq(d->reasons & ~(unsigned)WK_REASON_DEADLINE_APPROACHING, 0);
	}
}

Test(wk_policy, deadline_approaching_then_abort_at_scaled_timeout)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	long long approach, act;

	cfg.completion_timeout_s = 8;
	cfg.permit_pause = false; /* the ladder must not act first */
	cfg.permit_post_copy = false;
	cfg.permit_auto_converge = false;
	cfg.data_bytes = 5 * GIB_BYTES / 2; /* 2.5 GiB: deadline int(8 * 2.5) = 20 s */
	replay_init(&r, &cfg);
	run_to_deadline(&r, 25000, &approach, &act);
	cr_assert_eq(r.last.deadline_ms, 20000);
	cr_assert_eq(approach, 15000);
	cr_assert_eq(act, 20000);
	cr_assert_eq(r.actions[r.n_actions - 1], WK_ACTION_ABORT);
	cr_assert_eq(r.n_terminal, 1);
}

Test(wk_policy, deadline_force_complete_by_post_copy_or_pause)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	long long approach, act;

	cfg.completion_timeout_s = 10;
	cfg.data_bytes = GIB_BYTES;
	cfg.downtime_delay_s = 1000;
	cfg.timeout_action = WK_TIMEOUT_FORCE_COMPLETE;
	replay_init(&r, &cfg);
	run_to_deadline(&r, 12000, &approach, &act);
	cr_assert_eq(act, 10000);
	cr_assert_eq(r.actions[r.n_actions - 1], WK_ACTION_FORCE_COMPLETE);
	cr_assert_not_null(strstr(r.reasons_text[r.n_actions - 1], "post-copy"));
	cr_assert_eq(r.n_post_copy, 1);

	cfg.permit_post_copy = false;
	replay_init(&r, &cfg);
	run_to_deadline(&r, 12000, &approach, &act);
	cr_assert_eq(r.actions[r.n_actions - 1], WK_ACTION_FORCE_COMPLETE);
	cr_assert_not_null(strstr(r.reasons_text[r.n_actions - 1], "pausing"));
	cr_assert_not_null(strstr(r.reasons_text[r.n_actions - 1], "post-copy forbidden"));
	cr_assert_eq(r.n_pause, 1);
}

Test(wk_policy, completion_timeout_zero_is_off)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	long long approach, act;

	cfg.completion_timeout_s = 0;
	replay_init(&r, &cfg);
	run_to_deadline(&r, 60000, &approach, &act);
	cr_assert_eq(approach, -1);
	cr_assert_eq(act, -1);
	cr_assert_eq(r.last.deadline_ms, -1);
}

Test(wk_policy, stalled_transfer_aborts_after_30s_without_escalating)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	long long stalled_at = -1, abort_at = -1;
	uint64_t t;

	replay_init(&r, &cfg);
	for (t = 250; t <= 40000; t += 250) {
		long long proc = t < 5000 ? (long long)t * 8192 : 5000LL * 8192;
		struct wk_job_sample s = sample(t, 1, 200 * MIB - proc, proc, 0, 8 * MIB);
		const struct wk_decision *d = feed(&r, &s);

		if ((d->reasons & WK_REASON_TRANSFER_STALLED) && stalled_at < 0)
			stalled_at = (long long)t;
		if (d->action == WK_ACTION_ABORT)
			abort_at = (long long)t;
		if (d->action != WK_ACTION_ABORT)
			cr_assert(
			    d->action == WK_ACTION_NONE || d->action == WK_ACTION_RAISE_DOWNTIME);
	}
	cr_assert_eq(stalled_at, 8000);
	cr_assert_eq(abort_at, 35000);
	cr_assert_eq(r.n_terminal, 1);
	cr_assert_not_null(strstr(r.reasons_text[r.n_actions - 1], "stalled"));
}

Test(wk_policy, missing_fields_are_tolerated)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	uint64_t t;

	replay_init(&r, &cfg);
	for (t = 250; t <= 20000; t += 250) {
		struct wk_job_sample s = blank(t);
		const struct wk_decision *d = feed(&r, &s);

		cr_assert_eq(d->reasons, 0);
		cr_assert_eq(d->dirty_rate_bps, -1);
		cr_assert_eq(d->data_remaining, -1);
		cr_assert_eq(d->memory_iteration, -1);
		cr_assert_eq(d->elapsed_ms, (long long)t);
		cr_assert(d->action == WK_ACTION_NONE || d->action == WK_ACTION_RAISE_DOWNTIME);
	}
	/* Iteration numbers without any size or rate: still no verdict. */
	for (t = 20250; t <= 40000; t += 250) {
		struct wk_job_sample s = blank(t);

		s.memory_iteration = (long long)(t / 1000);
		cr_assert_eq(feed(&r, &s)->reasons, 0);
	}
}

Test(wk_policy, iteration_one_never_struggles)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	uint64_t t;

	replay_init(&r, &cfg);
	/* A huge first pass on a slow link, with a (bogus) dirty rate far above
	 * the transfer rate and remaining barely moving. */
	for (t = 250; t <= 120000; t += 250) {
		struct wk_job_sample s = sample(
		    t, 1, 4096 * MIB - (long long)t * 100, (long long)t * 100, 64 * MIB, MIB / 10);

		cr_assert_eq(feed(&r, &s)->reasons, 0, "at t=%llu", (unsigned long long)t);
	}
}

/*
 * Pre-copy as QEMU runs it: every 250 ms the link sends bps / 4 bytes; a
 * pass ends (dirty-log sync) once remaining falls to @end, which moves by
 * up to 2 MiB from pass to pass (QEMU syncs at whatever point below its
 * threshold it checks); the next pass starts with the previous set times
 * shrink_pct %, and the rest of the 250 ms goes to it.
 */
struct pgen {
	uint64_t t;
	long long iteration, rem, proc, set, bps, dirty_bps, shrink_pct, end;
};

static void
pgen_init(struct pgen *g, long long set, long long bps, long long dirty_pct, long long shrink_pct)
{
	memset(g, 0, sizeof(*g));
	g->iteration = 2;
	g->rem = g->set = set;
	g->proc = 300 * MIB;
	g->bps = bps;
	g->dirty_bps = bps * dirty_pct / 100;
	g->shrink_pct = shrink_pct;
}

static struct wk_job_sample
pgen_next(struct pgen *g)
{
	long long send = g->bps / 4;

	g->t += 250;
	g->proc += send;
	while (send > 0) {
		g->end = (g->iteration % 3) * MIB;
		if (g->rem - send > g->end) {
			g->rem -= send;
			break;
		}
		send -= g->rem > g->end ? g->rem - g->end : 0;
		g->iteration++;
		g->set = g->set * g->shrink_pct / 100;
		if (g->set < 3 * MIB)
			g->set = 3 * MIB;
		g->rem = g->set;
	}
	return sample(g->t, g->iteration, g->rem, g->proc, g->dirty_bps, g->bps);
}

/* Every pass's dirty set 15 % smaller, at nova's 50 ms step 0: 23 passes
 * to fit, within the 30-pass horizon: converging, never struggling. */
Test(wk_policy, synthetic_sawtooth_that_converges_is_not_struggling)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct pgen g;

	replay_init(&r, &cfg);
	pgen_init(&g, 60 * MIB, 32 * MIB, 85, 85);
	while (g.set > 3 * MIB) {
		struct wk_job_sample s = pgen_next(&g);
		const struct wk_decision *d = feed(&r, &s);

		cr_assert_eq(d->reasons, 0, "iteration %lld rem %lld", g.iteration, g.rem);
		cr_assert(d->action == WK_ACTION_NONE || d->action == WK_ACTION_RAISE_DOWNTIME);
	}
	cr_assert_gt(g.iteration, 10);
}

/*
 * KubeVirt VEP 248: a guest re-dirtying a small hot working set shows a
 * dirty rate equal to the transfer rate (QEMU measures it over one sync
 * period, which lasts as long as sending the set takes), yet the set
 * shrinks pass after pass.  It converges: no verdict, no escalation,
 * although the dirty rate is >= 95 % of the transfer rate throughout.
 */
Test(wk_policy, vep248_hot_set_at_the_link_rate_that_shrinks_is_not_escalated)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct pgen g;
	bool predicted = false;

	replay_init(&r, &cfg);
	pgen_init(&g, 48 * MIB, 32 * MIB, 100, 80);
	while (g.set > 3 * MIB) {
		struct wk_job_sample s = pgen_next(&g);
		const struct wk_decision *d = feed(&r, &s);

		cr_assert_eq(d->reasons, 0,
		    "iteration %lld rem %lld: set %lld, %d %% per pass, %lld passes, %u %%",
		    g.iteration, g.rem, d->prediction.dirty_set, d->prediction.shrink_pct,
		    d->prediction.iterations, d->prediction.confidence_pct);
		cr_assert(d->action == WK_ACTION_NONE || d->action == WK_ACTION_RAISE_DOWNTIME);
		cr_assert_geq(d->dirty_rate_bps * 100, d->transfer_rate_bps * 95);
		if (g.iteration >= 5) {
			cr_assert_eq(d->prediction.outlook, WK_OUTLOOK_CONVERGES,
			    "iteration %lld: %d %% per pass", g.iteration,
			    d->prediction.shrink_pct);
			cr_assert_geq(d->prediction.iterations, 0);
			cr_assert_leq(d->prediction.shrink_pct, 90);
			predicted = true;
		}
	}
	cr_assert(predicted);
	cr_assert_eq(r.st.step, 0, "only nova's step 0");
}

/*
 * A 12.8 MiB set re-dirtied every pass at 32 MiB/s needs a 400 ms
 * switch-over: under the 500 ms max, so the ladder raises the max downtime
 * once, straight to the first of nova's steps at or above it (410 ms),
 * where QEMU's threshold (32 MiB/s * 410 ms = 13.1 MiB) takes the set.
 */
Test(wk_policy, a_raise_that_fits_goes_straight_there_once)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct pgen g;
	const struct wk_decision *d = NULL;
	int i;

	cfg.downtime_delay_s = 1000;
	replay_init(&r, &cfg);
	pgen_init(&g, 64 * MIB * 2 / 10, 32 * MIB, 100, 100);
	for (i = 0; i < 200; i++) {
		struct wk_job_sample s = pgen_next(&g);

		d = feed(&r, &s);
		if (d->reasons != 0)
			break;
	}
	cr_assert_neq(d->reasons, 0, "no verdict");
	cr_assert_leq(g.iteration, 4, "verdict at iteration %lld", g.iteration);
	cr_assert_eq(d->action, WK_ACTION_RAISE_DOWNTIME);
	cr_assert_eq(d->downtime_ms, 410);
	cr_assert_eq(d->policy_step, 8);
	cr_assert_not_null(strstr(d->action_reason, "predicted"), "%s", d->action_reason);
	cr_assert_eq(d->prediction.outlook, WK_OUTLOOK_STRUGGLES);
	cr_assert(d->prediction.downtime_ms > 365 && d->prediction.downtime_ms <= 410,
	    "predicted %lld ms", d->prediction.downtime_ms);
	cr_assert_neq(d->planned, WK_ACTION_RAISE_DOWNTIME, "once");
	cr_assert_leq(g.set, 32 * MIB * 410 / 1000, "QEMU switches over at the next sync");
	cr_assert(r.st.downtime_raised);
}

Test(wk_policy, nova_downtime_schedule_by_wall_clock)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	uint64_t t;
	unsigned long long want[] = {50, 95, 140, 185, 230, 275, 320, 365, 410, 455, 500};
	size_t n = 0;

	cfg.downtime_delay_s = 2;
	cfg.data_bytes = GIB_BYTES / 2 * 3; /* 1.5 GiB: one step every 3 s */
	replay_init(&r, &cfg);
	for (t = 250; t <= 40000; t += 250) {
		struct wk_job_sample s = sample(t, 1, 200 * MIB, (long long)t * 1024, 0, MIB);
		const struct wk_decision *d = feed(&r, &s);

		if (d->action != WK_ACTION_RAISE_DOWNTIME)
			continue;
		cr_assert_lt(n, sizeof(want) / sizeof(want[0]));
		cr_assert_eq(d->downtime_ms, want[n], "step %zu: %llu", n, d->downtime_ms);
		cr_assert_eq(d->policy_step, (int)n);
		cr_assert_eq(
		    t, n == 0 ? 250 : 3000 * n + 250, "step %zu at %llu", n, (unsigned long long)t);
		cr_assert_str_eq(d->action_reason, "nova downtime schedule");
		n++;
	}
	cr_assert_eq(n, 11);
	cr_assert_eq(r.last.downtime_ms, 500);
}

Test(wk_policy, finished_job_samples_change_nothing)
{
	struct wk_policy_config cfg = nova_defaults();
	struct replay r;
	struct wk_job_sample s = sample(1000, 3, MIB, 10 * MIB, MIB, MIB);

	replay_init(&r, &cfg);
	s.type = WK_JOB_COMPLETED;
	feed(&r, &s);
	cr_assert_eq(r.last.action, WK_ACTION_NONE);
	cr_assert_eq(r.st.step, -1);
	cr_assert_eq(r.st.cur.iteration, -1);
}

Test(wk_policy, names)
{
	cr_assert_str_eq(
	    wk_reason_name(WK_REASON_DIRTY_EXCEEDS_TRANSFER), "dirty_rate_exceeds_transfer_rate");
	cr_assert_str_eq(
	    wk_reason_name(WK_REASON_REMAINING_NOT_SHRINKING), "remaining_not_shrinking");
	cr_assert_str_eq(wk_reason_name(WK_REASON_DEADLINE_APPROACHING), "deadline_approaching");
	cr_assert_str_eq(wk_reason_name(WK_REASON_TRANSFER_STALLED), "transfer_stalled");
	cr_assert_null(wk_reason_name(0));
	cr_assert_null(wk_reason_name(WK_REASON_TRANSFER_STALLED | WK_REASON_DEADLINE_APPROACHING));
	cr_assert_str_eq(wk_action_name(WK_ACTION_NONE), "none");
	cr_assert_str_eq(wk_action_name(WK_ACTION_RAISE_DOWNTIME), "raise_downtime");
	cr_assert_str_eq(wk_action_name(WK_ACTION_THROTTLE), "throttle");
	cr_assert_str_eq(wk_action_name(WK_ACTION_POST_COPY), "post_copy");
	cr_assert_str_eq(wk_action_name(WK_ACTION_PAUSE), "pause");
	cr_assert_str_eq(wk_action_name(WK_ACTION_ABORT), "abort");
	cr_assert_str_eq(wk_action_name(WK_ACTION_FORCE_COMPLETE), "force_complete");
	cr_assert_null(wk_action_name((enum wk_action)99));
}

/* ---- actions the hypervisor refuses (issue: a refused action must never
 * leave a migration without an end) ---- */

/* Plays @g's stream for @n samples against a hypervisor that refuses every
 * action whose bit is in @refuse (1u << action; FORCE_COMPLETE counts as
 * the method used).  Records every drastic action taken, in order. */
static size_t
play_refusing(struct wk_policy_state *st, const struct wk_policy_config *cfg,
    struct wk_job_sample (*next)(void *), void *gen, size_t n, unsigned refuse, enum wk_action *out,
    size_t out_size, struct wk_decision *last)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct wk_job_sample s = next(gen);
		struct wk_decision d;
		enum wk_action how;

		wk_policy_step(st, cfg, &s, &d);
		*last = d;
		how = d.action == WK_ACTION_FORCE_COMPLETE ? d.force_by : d.action;
		if (d.action == WK_ACTION_FORCE_COMPLETE)
			cr_assert(how == WK_ACTION_POST_COPY || how == WK_ACTION_PAUSE);
		if (drastic(d.action) && k < out_size)
			out[k++] = how;
		wk_policy_action_result(st, &d, (refuse & (1u << how)) ? -EBUSY : 0);
	}
	return k;
}

static struct wk_job_sample
gen_next_cb(void *g)
{
	return gen_next(g);
}

static uint64_t slow_t;

/* A healthy but slow migration (iteration 1 of a big guest at 1 MiB/s). */
static struct wk_job_sample
slow_next(void *unused)
{
	(void)unused;
	slow_t += 250;
	return sample(slow_t, 1, 64LL * 1024 * MIB - (long long)slow_t * 1024,
	    (long long)slow_t * 1024, 0, MIB);
}

Test(wk_policy, refused_post_copy_is_retried_once_then_the_ladder_pauses)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct wk_decision last;
	enum wk_action acts[16];
	struct gen g;
	size_t k;

	cfg.downtime_delay_s = 1000;
	cfg.permit_auto_converge = false;
	cfg.permit_post_copy = true;
	cfg.permit_pause = true;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 16 * MIB, 101);
	k = play_refusing(
	    &st, &cfg, gen_next_cb, &g, 400, 1u << WK_ACTION_POST_COPY, acts, 16, &last);
	cr_assert_geq(k, 3, "got %zu drastic actions", k);
	cr_assert_eq(acts[0], WK_ACTION_POST_COPY);
	cr_assert_eq(acts[1], WK_ACTION_POST_COPY, "retried once");
	cr_assert_eq(acts[2], WK_ACTION_PAUSE, "then the next rung");
}

/* nova's defaults with a 10 s deadline (10 s/GiB of a 1 GiB guest). */
static struct wk_policy_config
deadline_config(void)
{
	struct wk_policy_config cfg = nova_defaults();

	cfg.completion_timeout_s = 10;
	cfg.data_bytes = GIB_BYTES;
	return cfg;
}

/* Plays a slow migration (next: slow_next or stalls_after_12s) from its
 * start for samples samples, refusing the actions in the refused mask;
 * returns the drastic actions tried (into acts[16]). */
static size_t
play_slow(const struct wk_policy_config *cfg, struct wk_job_sample (*next)(void *),
    unsigned samples, unsigned refused, enum wk_action acts[16], struct wk_decision *last)
{
	struct wk_policy_state st;

	wk_policy_init(&st, cfg, 0);
	slow_t = 0;
	return play_refusing(&st, cfg, next, NULL, samples, refused, acts, 16, last);
}

Test(wk_policy, refused_abort_at_the_deadline_falls_through_to_force_complete)
{
	struct wk_policy_config cfg = deadline_config();
	struct wk_decision last;
	enum wk_action acts[16];
	size_t k;

	cfg.permit_post_copy = false;
	cfg.permit_pause = false;
	cfg.permit_auto_converge = false;
	cfg.timeout_action = WK_TIMEOUT_ABORT;
	k = play_slow(&cfg, slow_next, 60, 1u << WK_ACTION_ABORT, acts, &last);
	cr_assert_eq(k, 3, "got %zu drastic actions", k);
	cr_assert_eq(acts[0], WK_ACTION_ABORT);
	cr_assert_eq(acts[1], WK_ACTION_ABORT);
	cr_assert_eq(acts[2], WK_ACTION_PAUSE, "force-complete by pause once abort is refused");
}

Test(wk_policy, refused_force_complete_by_post_copy_pauses_then_aborts)
{
	struct wk_policy_config cfg = deadline_config();
	struct wk_decision last;
	enum wk_action acts[16];
	size_t k;

	cfg.permit_post_copy = true; /* but libvirt started it without the flag */
	cfg.timeout_action = WK_TIMEOUT_FORCE_COMPLETE;
	cfg.downtime_delay_s = 1000;
	k = play_slow(
	    &cfg, slow_next, 80, 1u << WK_ACTION_POST_COPY | 1u << WK_ACTION_PAUSE, acts, &last);
	cr_assert_eq(k, 5, "got %zu drastic actions", k);
	cr_assert_eq(acts[0], WK_ACTION_POST_COPY);
	cr_assert_eq(acts[1], WK_ACTION_POST_COPY);
	cr_assert_eq(acts[2], WK_ACTION_PAUSE);
	cr_assert_eq(acts[3], WK_ACTION_PAUSE);
	cr_assert_eq(acts[4], WK_ACTION_ABORT, "nothing else left: abort, never run forever");
}

Test(wk_policy, every_action_refused_says_so_and_stops_trying)
{
	struct wk_policy_config cfg = deadline_config();
	struct wk_decision last;
	enum wk_action acts[16];
	size_t k;

	cfg.permit_post_copy = false;
	cfg.permit_pause = false;
	cfg.permit_auto_converge = false;
	k = play_slow(&cfg, slow_next, 100, ~0u, acts, &last);
	cr_assert_eq(k, 4, "abort twice, pause twice; got %zu", k);
	cr_assert_eq(last.action, WK_ACTION_NONE);
	cr_assert_not_null(
	    strstr(last.action_reason, "every action was refused"), "%s", last.action_reason);
}

Test(wk_policy, an_accepted_action_is_not_repeated)
{
	struct wk_policy_config cfg = deadline_config();
	struct wk_decision last;
	enum wk_action acts[16];
	size_t k;

	cfg.timeout_action = WK_TIMEOUT_ABORT;
	k = play_slow(&cfg, slow_next, 100, 0, acts, &last);
	cr_assert_eq(k, 1);
	cr_assert_eq(acts[0], WK_ACTION_ABORT);
}

/* Moves until 12 s, then nothing moves (a dead link under a paused guest). */
static struct wk_job_sample
stalls_after_12s(void *unused)
{
	long long t;

	(void)unused;
	slow_t += 250;
	t = slow_t < 12000 ? (long long)slow_t : 12000;
	return sample(slow_t, 1, 64LL * 1024 * MIB - t * 1024, t * 1024, 0, MIB);
}

Test(wk_policy, a_paused_guest_whose_transfer_stalls_is_aborted_not_left_forever)
{
	struct wk_policy_config cfg = deadline_config();
	struct wk_decision last;
	enum wk_action acts[16];
	size_t k;

	cfg.permit_post_copy = false;
	cfg.timeout_action = WK_TIMEOUT_FORCE_COMPLETE;
	cfg.downtime_delay_s = 1000;
	k = play_slow(&cfg, stalls_after_12s, 240, 0, acts, &last);
	cr_assert_eq(k, 2, "got %zu drastic actions", k);
	cr_assert_eq(acts[0], WK_ACTION_PAUSE, "force-complete by pause at the deadline");
	cr_assert_eq(acts[1], WK_ACTION_ABORT, "then abort once nothing moves for 30 s");
}

/*
 * Force-complete by pause on request (nova's force_complete without
 * post-copy): not an escalation of the policy's own, so not fed through
 * feed()'s "drastic only after a verdict" invariant.  Steps @g until the
 * policy pauses (or @n samples), requesting at sample @req; returns the
 * sample it paused at (t_ms 0: never) and counts the force-completes.
 */
static struct wk_job_sample
play_requested_pause(struct wk_policy_state *st, const struct wk_policy_config *cfg, struct gen *g,
    int req, int n, int *ret_forces)
{
	struct wk_job_sample at = blank(0);

	*ret_forces = 0;
	for (int i = 0; i < n; i++) {
		struct wk_job_sample s = gen_next(g);
		struct wk_decision d;

		if (i == req) {
			wk_policy_request_pause(st, s.memory_iteration, s.t_ms);
			cr_assert(wk_policy_pause_requested(st));
		}
		wk_policy_step(st, cfg, &s, &d);
		if (d.action == WK_ACTION_FORCE_COMPLETE) {
			cr_assert_eq(d.force_by, WK_ACTION_PAUSE);
			cr_assert_not_null(strstr(d.action_reason, "force-complete requested"));
			if ((*ret_forces)++ == 0)
				at = s;
		} else if (i >= req && at.t_ms == 0) {
			cr_assert_not_null(strstr(d.action_reason, "force-complete requested"),
			    "waiting says why: %s", d.action_reason);
		}
	}
	return at;
}

/* The issue 10 case: a request during the first pass (all of RAM) does not
 * pause a guest that would then wait for the rest of it; the pause comes at
 * the end of a later pass, where only the dirty set is left. */
Test(wk_policy, requested_pause_waits_for_the_first_pass_then_its_lowest_remaining)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct wk_job_sample at;
	struct gen g;
	int forces;

	cfg.permit_post_copy = false;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 100 * MIB, 256);
	at = play_requested_pause(&st, &cfg, &g, 1, 80, &forces);
	cr_assert_eq(forces, 1, "paused once, got %d", forces);
	cr_assert_geq(at.memory_iteration, 2, "not during the first pass");
	cr_assert_leq(at.memory_iteration, 4, "within two passes after the first");
	cr_assert_leq(at.data_remaining, 64 * MIB / 2, "at the low end of a pass: %lld MiB left",
	    at.data_remaining / MIB);
}

/* A request after the first pass waits at most two passes. */
Test(wk_policy, requested_pause_late_waits_at_most_two_passes)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct wk_job_sample at;
	struct gen g;
	long long req_iter = -1;
	int forces;

	cfg.permit_post_copy = false;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 100 * MIB, 256);
	for (int i = 0; i < 12; i++) {
		struct wk_job_sample s = gen_next(&g);
		struct wk_decision d;

		wk_policy_step(&st, &cfg, &s, &d);
		req_iter = s.memory_iteration;
	}
	cr_assert_geq(req_iter, 3, "the first pass is over");
	at = play_requested_pause(&st, &cfg, &g, 0, 40, &forces);
	cr_assert_eq(forces, 1);
	cr_assert_leq(at.memory_iteration, req_iter + 2);
}

/* Nothing moves: the pause is not held back for a pass that never ends. */
Test(wk_policy, requested_pause_on_a_stalled_transfer_goes_at_once)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct wk_decision d;
	uint64_t t;
	bool paused = false;

	cfg.permit_post_copy = false;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	for (t = 250; t <= 8000 && !paused; t += 250) {
		long long moved = t < 1000 ? (long long)t * 1024 : 1000 * 1024;
		struct wk_job_sample s = sample(t, 1, 200 * MIB - moved, moved, 0, MIB);

		if (t == 1000)
			wk_policy_request_pause(&st, 1, t);
		wk_policy_step(&st, &cfg, &s, &d);
		if (d.action == WK_ACTION_FORCE_COMPLETE)
			paused = true;
	}
	cr_assert(paused);
	cr_assert_leq(t, 1000 + 3000 + 500, "paused %llu ms after the request",
	    (unsigned long long)(t - 1000));
}

/* A refused pause is tried once more, then the request is given up. */
Test(wk_policy, requested_pause_refused_twice_is_not_tried_again)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct gen g;
	int tries = 0;

	cfg.permit_post_copy = false;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 100 * MIB, 256);
	wk_policy_request_pause(&st, 1, 0);
	for (int i = 0; i < 80; i++) {
		struct wk_job_sample s = gen_next(&g);
		struct wk_decision d;

		wk_policy_step(&st, &cfg, &s, &d);
		if (d.action == WK_ACTION_FORCE_COMPLETE) {
			tries++;
			wk_policy_action_result(&st, &d, -EPERM);
		}
	}
	cr_assert_eq(tries, 2, "got %d", tries);
}

Test(wk_policy, no_pause_is_requested_after_init)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;

	wk_policy_init(&st, &cfg, 0);
	cr_assert(!wk_policy_pause_requested(&st));
	wk_policy_request_pause(&st, 0, 100);
	cr_assert(wk_policy_pause_requested(&st));
}

/* A requested pause is pending (the caller samples faster) only from the
 * second pass on, where it waits for a pass's lowest data_remaining, and
 * no longer once the pause is decided. */
Test(wk_policy, requested_pause_is_pending_from_the_second_pass_until_decided)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct gen g;
	bool seen_pending = false, decided = false;

	cfg.permit_post_copy = false;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 100 * MIB, 256);
	cr_assert(!wk_policy_switch_pending(&st), "nothing requested yet");
	wk_policy_request_pause(&st, 1, 0);
	for (int i = 0; i < 80 && !decided; i++) {
		struct wk_job_sample s = gen_next(&g);
		struct wk_decision d;

		wk_policy_step(&st, &cfg, &s, &d);
		decided = d.action == WK_ACTION_FORCE_COMPLETE;
		if (s.memory_iteration < 2)
			cr_assert(!wk_policy_switch_pending(&st), "pending in the first pass");
		else if (!decided)
			seen_pending |= wk_policy_switch_pending(&st);
	}
	cr_assert(decided, "the pause was never decided");
	cr_assert(seen_pending, "never pending while it waited for the pass's minimum");
	cr_assert(!wk_policy_switch_pending(&st), "still pending after the pause");
}

/* A struggling migration whose post-copy switch waits for the end of the
 * pass is pending until it switches. */
Test(wk_policy, due_postcopy_switch_is_pending_until_it_switches)
{
	struct wk_policy_config cfg = nova_defaults();
	struct wk_policy_state st;
	struct gen g;
	bool seen_pending = false, switched = false;

	cfg.permit_post_copy = true;
	cfg.downtime_delay_s = 1000;
	wk_policy_init(&st, &cfg, 0);
	gen_init(&g, 64 * MIB, 16 * MIB, 256);
	for (int i = 0; i < 400 && !switched; i++) {
		struct wk_job_sample s = gen_next(&g);
		struct wk_decision d;

		wk_policy_step(&st, &cfg, &s, &d);
		switched = d.action == WK_ACTION_POST_COPY;
		if (!switched)
			seen_pending |= wk_policy_switch_pending(&st);
	}
	cr_assert(switched, "never switched to post-copy");
	cr_assert(seen_pending, "the due switch was never pending");
	cr_assert(!wk_policy_switch_pending(&st), "still pending after the switch");
}
