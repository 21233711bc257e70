/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_policy.c - struggling detection and the escalation ladder over job-stats
 * samples (rules in wk_policy.h).  Pure: the only state is the caller's
 * struct wk_policy_state.
 */
#include "wk_policy.h"

#include <stddef.h>
#include <string.h>

#define GIB               (1024.0 * 1024.0 * 1024.0)
#define NOVA_MIN_DATA_GB  2.0
#define DEFAULT_PAGE_SIZE 4096LL
#define DIRTY_MARGIN_PCT  95 /* dirty >= 95 % of transfer counts as "exceeds" */
#define SHRINK_PCT        95 /* a peak must drop below 95 % of the one 2 passes back */
#define DEADLINE_WARN_PCT 75
#define STALL_MS          3000ULL
#define STALL_ABORT_MS    30000ULL

const char *
wk_reason_name(unsigned reason)
{
	switch (reason) {
	case WK_REASON_DIRTY_EXCEEDS_TRANSFER:
		return "dirty_rate_exceeds_transfer_rate";
	case WK_REASON_REMAINING_NOT_SHRINKING:
		return "remaining_not_shrinking";
	case WK_REASON_DEADLINE_APPROACHING:
		return "deadline_approaching";
	case WK_REASON_TRANSFER_STALLED:
		return "transfer_stalled";
	default:
		return NULL;
	}
}

const char *
wk_action_name(enum wk_action a)
{
	static const char *const names[] = {
	    [WK_ACTION_NONE] = "none",
	    [WK_ACTION_RAISE_DOWNTIME] = "raise_downtime",
	    [WK_ACTION_THROTTLE] = "throttle",
	    [WK_ACTION_POST_COPY] = "post_copy",
	    [WK_ACTION_PAUSE] = "pause",
	    [WK_ACTION_ABORT] = "abort",
	    [WK_ACTION_FORCE_COMPLETE] = "force_complete",
	};

	if ((unsigned)a >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[a];
}

static double
data_gb(const struct wk_policy_config *cfg)
{
	return cfg->data_bytes ? (double)cfg->data_bytes / GIB : NOVA_MIN_DATA_GB;
}

static unsigned
nsteps(const struct wk_policy_config *cfg)
{
	return cfg->downtime_steps ? cfg->downtime_steps : 1;
}

/* Nova's downtime for step @i: int(base + offset * i). */
static unsigned long long
step_downtime(const struct wk_policy_config *cfg, int i)
{
	double steps = nsteps(cfg);
	double base = cfg->max_downtime_ms / steps;
	double offset = (cfg->max_downtime_ms - base) / steps;

	return (unsigned long long)(base + offset * i);
}

static void
iter_reset(struct wk_policy_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->iteration = -1;
	it->rem_min = -1;
	it->rem_peak = -1;
	it->proc_first = -1;
	it->proc_last = -1;
}

void
wk_policy_init(struct wk_policy_state *st, const struct wk_policy_config *cfg, uint64_t start_ms)
{
	double gb = data_gb(cfg);
	size_t i;

	memset(st, 0, sizeof(*st));
	st->start_ms = start_ms;
	/* Nova: int(timeout * data_gb) and int(delay * data_gb), in seconds. */
	st->deadline_ms =
	    cfg->completion_timeout_s ? (long long)(cfg->completion_timeout_s * gb) * 1000LL : -1;
	st->step_delay_ms = (long long)(cfg->downtime_delay_s * gb) * 1000LL;
	st->step = -1;
	iter_reset(&st->cur);
	for (i = 0; i < WK_POLICY_HISTORY; i++)
		iter_reset(&st->done[i]);
	st->last_processed = -1;
	st->ladder_iter = -1;
}

static long long
sum2(long long a, long long b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a + b;
}

static long long
processed_of(const struct wk_job_sample *s)
{
	return s->data_processed >= 0 ? s->data_processed
	                              : sum2(s->memory_processed, s->disk_processed);
}

static long long
remaining_of(const struct wk_job_sample *s)
{
	return s->data_remaining >= 0 ? s->data_remaining
	                              : sum2(s->memory_remaining, s->disk_remaining);
}

static long long
dirty_bps_of(const struct wk_job_sample *s)
{
	long long page = s->memory_page_size > 0 ? s->memory_page_size : DEFAULT_PAGE_SIZE;

	if (s->memory_dirty_rate < 0)
		return -1;
	return s->memory_dirty_rate * page;
}

/* Average transfer rate over an iteration, -1 when unknown. */
static long long
iter_transfer(const struct wk_policy_iter *it)
{
	if (it->n_bps > 0)
		return it->bps_sum / it->n_bps;
	if (it->proc_first >= 0 && it->proc_last > it->proc_first && it->t_last > it->t_first)
		return (long long)((it->proc_last - it->proc_first) * 1000LL /
		                   (long long)(it->t_last - it->t_first));
	return -1;
}

static long long
iter_dirty(const struct wk_policy_iter *it)
{
	return it->n_dirty > 0 ? it->dirty_sum / it->n_dirty : -1;
}

/* Folds @s into the per-iteration records; a higher memory_iteration closes
 * the current one. */
static void
track_iteration(struct wk_policy_state *st, const struct wk_job_sample *s)
{
	struct wk_policy_iter *it = &st->cur;
	long long rem = remaining_of(s);
	long long proc = processed_of(s);
	long long dirty = dirty_bps_of(s);

	if (s->memory_iteration < 1 || s->memory_iteration < it->iteration)
		return;
	if (s->memory_iteration > it->iteration) {
		if (it->iteration >= 1) {
			memmove(&st->done[1], &st->done[0],
			    sizeof(st->done[0]) * (WK_POLICY_HISTORY - 1));
			st->done[0] = *it;
		}
		iter_reset(it);
		it->iteration = s->memory_iteration;
		it->t_first = s->t_ms;
		it->proc_first = proc;
	}
	if (rem >= 0) {
		if (it->rem_min < 0 || rem < it->rem_min)
			it->rem_min = rem;
		if (rem > it->rem_peak)
			it->rem_peak = rem;
	}
	/* QEMU reports 0 until the first sync with a measured period. */
	if (dirty >= 0 && it->iteration >= 2) {
		it->dirty_sum += dirty;
		it->n_dirty++;
	}
	if (s->memory_bps > 0) {
		it->bps_sum += s->memory_bps;
		it->n_bps++;
	}
	it->t_last = s->t_ms;
	if (proc >= 0) {
		if (it->proc_first < 0)
			it->proc_first = proc;
		it->proc_last = proc;
	}
}

static bool
dirty_exceeds_transfer(const struct wk_policy_state *st)
{
	int i;

	for (i = 0; i < 2; i++) {
		const struct wk_policy_iter *it = &st->done[i];
		long long d = iter_dirty(it);
		long long t = iter_transfer(it);

		if (it->iteration < 2 || d < 0 || t <= 0)
			return false;
		if (d * 100 < t * DIRTY_MARGIN_PCT)
			return false;
	}
	return true;
}

/* Transfer rate to judge the current iteration with: its own, else the
 * newest completed iteration's. */
static long long
recent_transfer(const struct wk_policy_state *st)
{
	long long t = iter_transfer(&st->cur);

	if (t <= 0)
		t = iter_transfer(&st->done[0]);
	return t;
}

static bool
remaining_not_shrinking(const struct wk_policy_state *st, const struct wk_policy_config *cfg)
{
	const struct wk_policy_iter *cur = &st->cur;
	const struct wk_policy_iter *ref = NULL;
	long long bps;
	int i;

	if (cur->iteration < 3 || cur->rem_peak < 0)
		return false;
	for (i = 0; i < WK_POLICY_HISTORY; i++) {
		if (st->done[i].iteration >= 1 && st->done[i].iteration <= cur->iteration - 2 &&
		    st->done[i].rem_peak >= 0) {
			ref = &st->done[i];
			break;
		}
	}
	if (ref == NULL)
		return false;
	if (cur->rem_peak * 100 < ref->rem_peak * SHRINK_PCT)
		return false;
	/* A dirty set that fits the current max downtime goes at the next sync. */
	bps = recent_transfer(st);
	if (st->step >= 0 && bps > 0 &&
	    (unsigned long long)(cur->rem_peak * 1000 / bps) <= step_downtime(cfg, st->step))
		return false;
	return true;
}

static unsigned
verdict(const struct wk_policy_state *st, const struct wk_policy_config *cfg, long long elapsed)
{
	unsigned r = 0;

	if (dirty_exceeds_transfer(st))
		r |= WK_REASON_DIRTY_EXCEEDS_TRANSFER;
	if (remaining_not_shrinking(st, cfg))
		r |= WK_REASON_REMAINING_NOT_SHRINKING;
	if (st->deadline_ms >= 0 && elapsed * 100 >= st->deadline_ms * DEADLINE_WARN_PCT)
		r |= WK_REASON_DEADLINE_APPROACHING;
	if (st->last_processed >= 0 && elapsed >= 0 &&
	    (uint64_t)elapsed + st->start_ms - st->processed_since_ms >= STALL_MS)
		r |= WK_REASON_TRANSFER_STALLED;
	return r;
}

static bool
refused(const struct wk_policy_state *st, enum wk_action a)
{
	return (st->refused & (1u << a)) != 0;
}

/* The rung the ladder takes next, and why (static text). */
static enum wk_action
next_rung(const struct wk_policy_state *st, const struct wk_policy_config *cfg, const char **why)
{
	if (st->step < (int)nsteps(cfg)) {
		*why = "struggling: raising max downtime ahead of nova's schedule";
		return WK_ACTION_RAISE_DOWNTIME;
	}
	if (cfg->permit_auto_converge && !st->throttled) {
		*why = "struggling at max downtime: auto-converge throttling the guest";
		return WK_ACTION_THROTTLE;
	}
	if (cfg->permit_post_copy && !st->post_copy && !refused(st, WK_ACTION_POST_COPY)) {
		*why = "struggling at max downtime: switching to post-copy";
		return WK_ACTION_POST_COPY;
	}
	if (cfg->permit_pause && !st->paused && !refused(st, WK_ACTION_PAUSE)) {
		*why = cfg->permit_post_copy
		           ? "struggling after post-copy: pausing the guest"
		           : "post-copy forbidden for this instance: pausing the guest instead";
		return WK_ACTION_PAUSE;
	}
	if (st->paused) {
		*why = "guest already paused: waiting for completion or the completion timeout";
	} else if (!cfg->permit_post_copy) {
		*why = "post-copy forbidden for this instance and pause not permitted: "
		       "waiting for the completion timeout";
	} else {
		*why = "pause not permitted for this instance: waiting for the completion timeout";
	}
	return WK_ACTION_NONE;
}

/* Downtime step to raise to when struggling: the smallest step whose downtime
 * would let the last dirty set go in one switch-over, at least one up. */
static int
raise_target(const struct wk_policy_state *st, const struct wk_policy_config *cfg)
{
	const struct wk_policy_iter *it = st->cur.rem_peak >= 0 ? &st->cur : &st->done[0];
	long long bps = recent_transfer(st);
	int top = (int)nsteps(cfg);
	int i = st->step + 1;
	unsigned long long need;

	if (it->rem_peak < 0 || bps <= 0)
		return i;
	need = (unsigned long long)(it->rem_peak * 1000 / bps);
	while (i < top && step_downtime(cfg, i) < need)
		i++;
	return i;
}

/* Downtime step Nova's wall-clock schedule has reached at @elapsed. */
static int
wall_step(const struct wk_policy_state *st, const struct wk_policy_config *cfg, long long elapsed)
{
	int top = (int)nsteps(cfg);
	int i;

	if (elapsed <= 0)
		return -1;
	if (st->step_delay_ms <= 0)
		return top;
	for (i = top; i >= 0; i--) {
		if (elapsed > st->step_delay_ms * i)
			return i;
	}
	return -1;
}

static void
set_step(
    struct wk_policy_state *st, const struct wk_policy_config *cfg, int step, struct wk_decision *d)
{
	st->step = step;
	d->action = WK_ACTION_RAISE_DOWNTIME;
	d->downtime_ms = step_downtime(cfg, step);
}

/* Takes ladder rung @a (from next_rung()). */
static void
take_rung(struct wk_policy_state *st, const struct wk_policy_config *cfg, enum wk_action a,
    const struct wk_job_sample *s, struct wk_decision *d)
{
	switch (a) {
	case WK_ACTION_RAISE_DOWNTIME:
		set_step(st, cfg, raise_target(st, cfg), d);
		break;
	case WK_ACTION_THROTTLE:
		st->throttled = true;
		break;
	case WK_ACTION_POST_COPY:
		st->post_copy = true;
		break;
	case WK_ACTION_PAUSE:
		st->paused = true;
		break;
	default:
		return;
	}
	d->action = a;
	st->ladder_acted = true;
	st->ladder_iter = s->memory_iteration;
	st->ladder_t_ms = s->t_ms;
}

/* Has the last rung had one iteration, or the downtime delay, to work? */
static bool
ladder_ready(const struct wk_policy_state *st, const struct wk_job_sample *s)
{
	if (!st->ladder_acted)
		return true;
	if (s->memory_iteration > st->ladder_iter)
		return true;
	return s->t_ms >= st->ladder_t_ms &&
	       (long long)(s->t_ms - st->ladder_t_ms) >= st->step_delay_ms;
}

static void
fill_figures(const struct wk_policy_state *st, const struct wk_job_sample *s, long long elapsed,
    struct wk_decision *d)
{
	d->dirty_rate_bps = dirty_bps_of(s);
	d->transfer_rate_bps = s->memory_bps > 0 ? s->memory_bps : iter_transfer(&st->cur);
	d->data_remaining = remaining_of(s);
	d->memory_iteration = s->memory_iteration;
	d->elapsed_ms = elapsed;
	d->deadline_ms = st->deadline_ms;
	d->policy_step = st->step;
}

static bool
job_running(const struct wk_job_sample *s)
{
	return s->type == WK_JOB_BOUNDED || s->type == WK_JOB_UNBOUNDED;
}

/* The completion deadline acts whatever state the ladder is in: the
 * configured action first, then whatever the hypervisor has not refused. */
static void
deadline_action(
    struct wk_policy_state *st, const struct wk_policy_config *cfg, struct wk_decision *d)
{
	bool abort_first = cfg->timeout_action == WK_TIMEOUT_ABORT;

	st->finished = true;
	if (abort_first && !refused(st, WK_ACTION_ABORT)) {
		d->action = WK_ACTION_ABORT;
		st->aborted = true;
		d->action_reason = "completion timeout reached: aborting";
	} else if (cfg->permit_post_copy && !refused(st, WK_ACTION_POST_COPY)) {
		d->action = WK_ACTION_FORCE_COMPLETE;
		d->force_by = WK_ACTION_POST_COPY;
		d->action_reason = abort_first ? "completion timeout reached, abort refused: "
		                                 "force-complete by post-copy"
		                               : "completion timeout reached: force-complete by "
		                                 "post-copy";
		st->post_copy = true;
	} else if (!st->paused && !refused(st, WK_ACTION_PAUSE)) {
		d->action = WK_ACTION_FORCE_COMPLETE;
		d->force_by = WK_ACTION_PAUSE;
		d->action_reason =
		    abort_first ? "completion timeout reached, abort refused: force-complete by "
		                  "pausing the guest"
		    : cfg->permit_post_copy
		        ? "completion timeout reached, post-copy refused: force-complete by "
		          "pausing the guest"
		        : "completion timeout reached: force-complete by pausing the guest "
		          "(post-copy forbidden for this instance)";
		st->paused = true;
	} else if (!refused(st, WK_ACTION_ABORT)) {
		d->action = WK_ACTION_ABORT;
		st->aborted = true;
		d->action_reason = st->paused
		                       ? "completion timeout reached with the guest paused: "
		                         "aborting (the guest is resumed on the source)"
		                       : "completion timeout reached, force-complete refused: "
		                         "aborting";
	} else {
		st->finished = false; /* nothing requested: say so at every sample */
		d->action_reason = "completion timeout reached: every action was refused by the "
		                   "hypervisor";
	}
}

void
wk_policy_action_result(struct wk_policy_state *st, const struct wk_decision *d, int r)
{
	enum wk_action a = d->action == WK_ACTION_FORCE_COMPLETE ? d->force_by : d->action;

	if (r >= 0 || a <= WK_ACTION_NONE || a >= _WK_ACTION_MAX)
		return;
	if (++st->failures[a] >= 2)
		st->refused |= 1u << a;
	/* Undo what deciding it assumed, so the next sample retries it or,
	 * once refused, moves on. */
	switch (a) {
	case WK_ACTION_POST_COPY:
		st->post_copy = false;
		break;
	case WK_ACTION_PAUSE:
		st->paused = false;
		break;
	default:
		break;
	}
	if (d->action == WK_ACTION_ABORT || d->action == WK_ACTION_FORCE_COMPLETE)
		st->finished = false;
	if (d->action == WK_ACTION_ABORT)
		st->aborted = false;
	st->ladder_acted = false;
}

void
wk_policy_step(struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_job_sample *s, struct wk_decision *ret)
{
	struct wk_decision d;
	long long elapsed;
	long long proc;
	const char *why = NULL;
	int ws;

	memset(&d, 0, sizeof(d));
	elapsed = s->t_ms >= st->start_ms ? (long long)(s->t_ms - st->start_ms) : 0;
	d.action = WK_ACTION_NONE;

	if (!job_running(s)) {
		fill_figures(st, s, elapsed, &d);
		d.reasons = st->reported;
		d.planned = WK_ACTION_NONE;
		d.downtime_ms = st->step >= 0 ? step_downtime(cfg, st->step) : 0;
		d.action_reason = "migration job not running";
		*ret = d;
		return;
	}

	proc = processed_of(s);
	if (proc >= 0 && (st->last_processed < 0 || proc != st->last_processed)) {
		st->last_processed = proc;
		st->processed_since_ms = s->t_ms;
	}
	track_iteration(st, s);

	d.reasons = verdict(st, cfg, elapsed);
	d.verdict_changed = d.reasons != 0 && d.reasons != st->reported;
	st->reported = d.reasons;
	d.planned = next_rung(st, cfg, &why);

	if (st->finished && st->paused && !st->aborted && !refused(st, WK_ACTION_ABORT) &&
	    (d.reasons & WK_REASON_TRANSFER_STALLED) &&
	    (uint64_t)elapsed + st->start_ms - st->processed_since_ms >= STALL_ABORT_MS) {
		/* Paused to complete, yet nothing moves: never wait forever. */
		d.action = WK_ACTION_ABORT;
		d.action_reason = "transfer stalled for 30 s with the guest paused: aborting (the "
		                  "guest is resumed on the source)";
		st->aborted = true;
	} else if (st->finished) {
		d.planned = WK_ACTION_NONE;
		d.action_reason = "abort or force-complete already requested";
	} else if (st->post_copy) {
		d.planned = WK_ACTION_NONE;
		d.action_reason = "post-copy phase: no further escalation";
	} else if ((d.reasons & WK_REASON_TRANSFER_STALLED) &&
	           (uint64_t)elapsed + st->start_ms - st->processed_since_ms >= STALL_ABORT_MS) {
		d.action = WK_ACTION_ABORT;
		d.action_reason =
		    "transfer stalled for 30 s: aborting (post-copy cannot help a dead "
		    "link)";
		st->finished = true;
		st->aborted = true;
	} else if (st->deadline_ms >= 0 && elapsed >= st->deadline_ms) {
		deadline_action(st, cfg, &d);
	} else if (d.reasons & WK_REASON_TRANSFER_STALLED) {
		d.action_reason = "transfer stalled: waiting for the link (abort after 30 s)";
	} else if (d.reasons != 0 && !ladder_ready(st, s)) {
		d.action_reason = "waiting for the last escalation to take effect";
	} else if (d.reasons != 0) {
		take_rung(st, cfg, d.planned, s, &d);
		d.action_reason = why;
		d.planned = next_rung(st, cfg, &why);
	}

	ws = wall_step(st, cfg, elapsed);
	if (d.action == WK_ACTION_NONE && !st->finished && !st->post_copy && ws > st->step) {
		set_step(st, cfg, ws, &d);
		d.action_reason = "nova downtime schedule";
	} else if (d.action_reason == NULL) {
		d.action_reason = st->step >= (int)nsteps(cfg) ? "not struggling"
		                                               : "waiting for next downtime step";
	}

	fill_figures(st, s, elapsed, &d);
	if (d.action != WK_ACTION_RAISE_DOWNTIME)
		d.downtime_ms = st->step >= 0 ? step_downtime(cfg, st->step) : 0;
	*ret = d;
}
