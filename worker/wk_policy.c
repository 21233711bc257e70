/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_policy.c - struggling detection and the escalation ladder over job-stats
 * samples (rules in wk_policy.h).  Pure: the only state is the caller's
 * struct wk_policy_state.
 */
#include "wk_policy.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define GIB               (1024.0 * 1024.0 * 1024.0)
#define NOVA_MIN_DATA_GB  2.0
#define DEFAULT_PAGE_SIZE 4096LL
#define DIRTY_MARGIN_PCT  95 /* dirty >= 95 % of transfer counts as "exceeds" */
#define DEADLINE_WARN_PCT 75
#define STALL_MS          3000ULL
#define STALL_ABORT_MS    30000ULL
#define SURE_PCT          75   /* confidence that turns the memory verdict on or off */
#define SAMPLE_GAP_MS     250  /* assumed sample period before two samples were seen */
#define SWITCH_SLACK_MS   1000 /* a due switch waits at most one pass + this */

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
wk_outlook_name(enum wk_outlook o)
{
	switch (o) {
	case WK_OUTLOOK_UNKNOWN:
		return "unknown";
	case WK_OUTLOOK_CONVERGES:
		return "converges";
	case WK_OUTLOOK_STRUGGLES:
		return "struggles";
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
	it->dirty_set = -1;
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
	st->switch_wait_iter = -1;
	st->prev_iter = -1;
	st->prev_rem = -1;
	st->pause_req_iter = -1;
}

static bool refused(const struct wk_policy_state *st, enum wk_action a);

void
wk_policy_request_pause(struct wk_policy_state *st, long long iteration, uint64_t t_ms)
{
	if (st->pause_req_iter >= 0)
		return; /* the first request's timing stands */
	st->pause_req_iter = iteration > 0 ? iteration : 0;
	st->pause_req_t_ms = t_ms;
}

bool
wk_policy_pause_requested(const struct wk_policy_state *st)
{
	/* Refused twice: given up, and the cap comes back. */
	return st->pause_req_iter >= 0 && !refused(st, WK_ACTION_PAUSE);
}

bool
wk_policy_switch_pending(const struct wk_policy_state *st)
{
	if (st->finished || st->post_copy || st->paused || st->prev_iter < 2)
		return false;
	return wk_policy_pause_requested(st) || st->switch_wait_iter >= 0;
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

/* Max downtime QEMU runs with: the policy's last step (step 0 before any). */
static unsigned long long
cur_downtime(const struct wk_policy_state *st, const struct wk_policy_config *cfg)
{
	return step_downtime(cfg, st->step >= 0 ? st->step : 0);
}

/*
 * The dirty set the sync handed to pass @iteration, whose first sample shows
 * @rem remaining after @proc bytes processed, @prev being the pass before.
 * Between prev's last sample and this one @proc - prev.proc_last bytes
 * went out: first what prev still had above its switch-over threshold (QEMU
 * syncs once remaining falls below rate * max downtime), the rest in this
 * pass.  Only the first sample when prev is not the pass just before.
 */
static long long
estimate_dirty_set(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_policy_iter *prev, long long iteration, long long rem, long long proc)
{
	long long sent, bps, thr, over;

	if (rem < 0)
		return -1;
	if (prev->iteration < 1 || prev->iteration != iteration - 1 || prev->rem_min < 0 ||
	    proc < 0 || prev->proc_last < 0 || proc < prev->proc_last)
		return rem;
	sent = proc - prev->proc_last;
	bps = iter_transfer(prev);
	thr = bps > 0 ? (long long)((unsigned long long)bps * cur_downtime(st, cfg) / 1000) : 0;
	over = prev->rem_min > thr ? prev->rem_min - thr : 0;
	return over >= sent ? rem : rem + sent - over;
}

/* Folds @s into the per-iteration records; a higher memory_iteration closes
 * the current one. */
static void
track_iteration(
    struct wk_policy_state *st, const struct wk_policy_config *cfg, const struct wk_job_sample *s)
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
		if (it->iteration >= 2)
			it->dirty_set =
			    estimate_dirty_set(st, cfg, &st->done[0], it->iteration, rem, proc);
	}
	if (rem >= 0 && it->iteration >= 2 && rem > it->dirty_set)
		it->dirty_set = rem;
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
		if (s->memory_bps > it->bps_max)
			it->bps_max = s->memory_bps;
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

/* QEMU's dirty rate of the current iteration, else the newest completed one. */
static long long
recent_dirty(const struct wk_policy_state *st)
{
	long long d = iter_dirty(&st->cur);

	if (d < 0)
		d = iter_dirty(&st->done[0]);
	return d;
}

/* Passes until @set * q^k fits @thr (pass time and max downtime, ms): 0 when
 * it fits now, -1 when never or beyond the horizon. */
static long long
passes_needed(double set, double q, double thr)
{
	long long k;

	if (set <= thr)
		return 0;
	if (!(q < 1.0))
		return -1;
	for (k = 1; k <= WK_PREDICT_HORIZON; k++) {
		set *= q;
		if (set <= thr)
			return k;
	}
	return -1;
}

/* Per-pass ratio between two pass times @gap iterations apart. */
static double
per_pass(double newer, double older, long long gap)
{
	if (older <= 0.0 || gap < 1)
		return 1.0;
	return gap == 1 ? newer / older : pow(newer / older, 1.0 / (double)gap);
}

/* Pass time of @it in ms: its dirty set at its highest transfer rate (the
 * recent rate @bps when it reported none); -1 unknown. */
static double
pass_ms(const struct wk_policy_iter *it, long long bps)
{
	long long rate = it->bps_max > 0 ? it->bps_max : bps;

	if (it->dirty_set < 0 || rate <= 0)
		return -1.0;
	return (double)it->dirty_set * 1000.0 / (double)rate;
}

void
wk_policy_predict(
    const struct wk_policy_state *st, const struct wk_policy_config *cfg, struct wk_prediction *ret)
{
	struct wk_prediction p = {
	    .outlook = WK_OUTLOOK_UNKNOWN,
	    .dirty_set = -1,
	    .shrink_pct = -1,
	    .iterations = -1,
	    .downtime_ms = -1,
	};
	const struct wk_policy_iter *its[3];
	double pt[3], dt, q = 1.0, qe;
	long long iter[3];
	size_t n = 0, i;
	bool rate_struggles, struggles;

	p.transfer_bps = recent_transfer(st);
	p.dirty_bps = recent_dirty(st);
	p.max_downtime_ms = (long long)cur_downtime(st, cfg);
	/* The newest passes with a dirty set, newest first. */
	if (st->cur.iteration >= 2 && pass_ms(&st->cur, p.transfer_bps) >= 0)
		its[n++] = &st->cur;
	for (i = 0; i < WK_POLICY_HISTORY && n < 3; i++) {
		const struct wk_policy_iter *it = &st->done[i];

		if (it->iteration >= 2 && pass_ms(it, p.transfer_bps) >= 0 &&
		    (n == 0 || it->iteration < its[n - 1]->iteration))
			its[n++] = it;
	}
	if (n == 0 || p.transfer_bps <= 0) {
		*ret = p;
		return;
	}
	for (i = 0; i < n; i++) {
		pt[i] = pass_ms(its[i], p.transfer_bps);
		iter[i] = its[i]->iteration;
	}
	p.dirty_set = its[0]->dirty_set;
	dt = (double)p.max_downtime_ms;
	rate_struggles = p.dirty_bps >= 0 && p.dirty_bps * 100 >= p.transfer_bps * DIRTY_MARGIN_PCT;
	if (n >= 2) {
		q = per_pass(pt[0], pt[n - 1], iter[0] - iter[n - 1]);
		p.shrink_pct = (int)lround(q * 100.0);
	}
	p.iterations = passes_needed(pt[0], n >= 2 ? q : 1.0, dt);
	if (p.iterations == 0) {
		p.outlook = WK_OUTLOOK_CONVERGES; /* it goes at the next sync */
		p.confidence_pct = SURE_PCT;
	} else if (n == 1) {
		p.outlook = rate_struggles ? WK_OUTLOOK_STRUGGLES : WK_OUTLOOK_CONVERGES;
		p.confidence_pct = 25;
	} else {
		double q1 = per_pass(pt[0], pt[1], iter[0] - iter[1]);

		p.outlook = p.iterations < 0 ? WK_OUTLOOK_STRUGGLES : WK_OUTLOOK_CONVERGES;
		struggles = p.outlook == WK_OUTLOOK_STRUGGLES;
		p.confidence_pct = 50;
		if (struggles && q1 >= 1.0)
			p.confidence_pct = SURE_PCT; /* not shrinking at all */
		if (n == 3) {
			double q2 = per_pass(pt[1], pt[2], iter[1] - iter[2]);
			bool s1 = passes_needed(pt[0], q1, dt) < 0;
			bool s2 = passes_needed(pt[1], q2, dt) < 0;

			if (s1 == struggles && s2 == struggles)
				p.confidence_pct = SURE_PCT;
		}
		/* The rates only back up what the trend already shows (VEP 248). */
		if (rate_struggles == struggles && p.confidence_pct >= SURE_PCT)
			p.confidence_pct += 25;
	}
	if (p.confidence_pct > 100)
		p.confidence_pct = 100;
	/* Expected switch-over downtime. */
	qe = n >= 2 && q < 1.0 ? q : 1.0;
	if (p.outlook == WK_OUTLOOK_CONVERGES && p.iterations >= 0) {
		p.downtime_ms = (long long)(pt[0] * pow(qe, (double)p.iterations));
	} else {
		double v = pt[0];
		int j;

		for (j = 1; j <= WK_PREDICT_LOOKAHEAD && p.downtime_ms < 0; j++) {
			v *= qe;
			if (v <= (double)cfg->max_downtime_ms)
				p.downtime_ms = (long long)v;
		}
		if (p.downtime_ms < 0)
			p.downtime_ms = (long long)(pt[0] * qe);
	}
	*ret = p;
}

/* The memory verdict turns on or off only on a confident prediction. */
static void
update_struggling(struct wk_policy_state *st, const struct wk_prediction *p)
{
	if (p->confidence_pct < SURE_PCT)
		return;
	if (p->outlook == WK_OUTLOOK_STRUGGLES)
		st->struggling = true;
	else if (p->outlook == WK_OUTLOOK_CONVERGES)
		st->struggling = false;
}

static unsigned
verdict(const struct wk_policy_state *st, long long elapsed)
{
	unsigned r = 0;

	if (st->struggling) {
		r |= WK_REASON_REMAINING_NOT_SHRINKING;
		if (dirty_exceeds_transfer(st))
			r |= WK_REASON_DIRTY_EXCEEDS_TRANSFER;
	}
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

/* The step the one downtime raise goes to: the smallest whose downtime is
 * at or above the predicted switch-over downtime; -1 when none up to the
 * configured max downtime is (or there is no prediction). */
static int
raise_target(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_prediction *p)
{
	int top = (int)nsteps(cfg);
	int i;

	if (p->downtime_ms <= 0 || (unsigned long long)p->downtime_ms > cfg->max_downtime_ms)
		return -1;
	for (i = st->step + 1; i <= top; i++)
		if (step_downtime(cfg, i) >= (unsigned long long)p->downtime_ms)
			return i;
	return -1;
}

/* The rung the ladder takes next, and why (static text). */
static enum wk_action
next_rung(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_prediction *p, const char **why)
{
	if (!st->downtime_raised && !refused(st, WK_ACTION_RAISE_DOWNTIME) &&
	    raise_target(st, cfg, p) >= 0) {
		*why = "struggling: raising max downtime to where the predicted switch-over "
		       "downtime fits";
		return WK_ACTION_RAISE_DOWNTIME;
	}
	if (cfg->permit_auto_converge && !st->throttled) {
		*why = "struggling, no max downtime fits the predicted switch-over: auto-converge "
		       "throttling the guest";
		return WK_ACTION_THROTTLE;
	}
	if (cfg->permit_post_copy && !st->post_copy && !refused(st, WK_ACTION_POST_COPY)) {
		*why = "struggling, no max downtime fits the predicted switch-over: switching to "
		       "post-copy";
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

/*
 * Whether a due post-copy or pause goes now: at the lowest data_remaining
 * of the current pass.  Remaining only falls within a pass and jumps at the
 * sync that starts the next one, so the last sample before the sync is the
 * pass's minimum: act when the pass is expected to end before the next
 * sample (remaining - rate * gap at or below the level where passes end),
 * or when remaining turned up within the pass (its minimum just passed).
 * Never waits more than 2 iterations or one pass + 1 s, except while
 * nothing moves (the stall rules decide then).
 */
static bool
switch_now(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_job_sample *s)
{
	long long rem = remaining_of(s);
	long long bps = recent_transfer(st);
	long long gap = SAMPLE_GAP_MS, end, pass_ms = 0;
	size_t i;

	if (rem < 0 || bps <= 0 || s->memory_iteration < 2)
		return true; /* nothing to time it by */
	if (st->processed_since_ms < s->t_ms && st->prev_iter == s->memory_iteration)
		return false; /* nothing moved since the last sample: no minimum to wait for,
		                 and a stalled link is no place for post-copy */
	if (st->prev_iter == s->memory_iteration && st->prev_rem >= 0 && rem > st->prev_rem)
		return true;
	if (st->done[0].iteration >= 1 && st->done[0].t_last > st->done[0].t_first)
		pass_ms = (long long)(st->done[0].t_last - st->done[0].t_first);
	if (st->switch_wait_iter >= 0 &&
	    (s->memory_iteration >= st->switch_wait_iter + 2 ||
	        (s->t_ms >= st->switch_wait_t_ms &&
	            (long long)(s->t_ms - st->switch_wait_t_ms) >= pass_ms + SWITCH_SLACK_MS)))
		return true;
	if (st->prev_t_ms > 0 && s->t_ms > st->prev_t_ms)
		gap = (long long)(s->t_ms - st->prev_t_ms);
	/* Where passes end: the switch-over threshold, or lower where the
	 * passes seen ended lower: a pass's last sample is 0 to one sample's
	 * transfer above its end, half of it on average. */
	end = (long long)((unsigned long long)bps * cur_downtime(st, cfg) / 1000);
	for (i = 0; i < WK_POLICY_HISTORY; i++)
		if (st->done[i].iteration >= 2 && st->done[i].rem_min >= 0 &&
		    st->done[i].rem_min - bps * gap / 2000 < end)
			end = st->done[i].rem_min - bps * gap / 2000;
	return rem - bps * gap / 1000 <= end;
}

/*
 * Whether a requested force-complete by pause goes now.  Not during the
 * first pass: it sends all of RAM, and a guest paused then would wait for
 * the rest of it (seen on the rig: 243 MiB left at the request, 1.5 s
 * paused); running on at full speed, the guest is paused only for its
 * dirty set.  Then at a pass's lowest data_remaining (switch_now), at most
 * two passes after the first one ended or the request came, and at once
 * when nothing moves (the stall rules take over).
 */
static bool
requested_pause_now(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_job_sample *s)
{
	long long from = st->pause_req_iter > 2 ? st->pause_req_iter : 2;

	if (s->t_ms >= st->processed_since_ms + STALL_MS)
		return true;
	if (s->memory_iteration < 2)
		return false;
	if (s->memory_iteration >= from + 2)
		return true;
	return switch_now(st, cfg, s);
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
		set_step(st, cfg, raise_target(st, cfg, &d->prediction), d);
		st->downtime_raised = true;
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
	st->switch_wait_iter = -1;
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
		wk_policy_predict(st, cfg, &d.prediction);
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
	track_iteration(st, cfg, s);
	wk_policy_predict(st, cfg, &d.prediction);
	update_struggling(st, &d.prediction);

	d.reasons = verdict(st, elapsed);
	d.verdict_changed = d.reasons != 0 && d.reasons != st->reported;
	st->reported = d.reasons;
	d.planned = next_rung(st, cfg, &d.prediction, &why);

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
	} else if (st->pause_req_iter >= 0 && !st->paused && !refused(st, WK_ACTION_PAUSE)) {
		if (requested_pause_now(st, cfg, s)) {
			d.action = WK_ACTION_FORCE_COMPLETE;
			d.force_by = WK_ACTION_PAUSE;
			d.action_reason =
			    "force-complete requested: pausing the guest at the lowest "
			    "data_remaining of a pass";
			st->finished = true;
			st->paused = true;
		} else {
			d.action_reason = "force-complete requested: the guest runs on, uncapped, "
			                  "until its first pass is over and then to the lowest "
			                  "data_remaining of a pass; then it is paused";
		}
	} else if (st->deadline_ms >= 0 && elapsed >= st->deadline_ms) {
		deadline_action(st, cfg, &d);
	} else if (d.reasons & WK_REASON_TRANSFER_STALLED) {
		d.action_reason = "transfer stalled: waiting for the link (abort after 30 s)";
	} else if (d.reasons != 0 && !ladder_ready(st, s)) {
		d.action_reason = "waiting for the last escalation to take effect";
	} else if (d.reasons != 0 &&
	           (d.planned == WK_ACTION_POST_COPY || d.planned == WK_ACTION_PAUSE) &&
	           !switch_now(st, cfg, s)) {
		if (st->switch_wait_iter < 0) {
			st->switch_wait_iter = s->memory_iteration;
			st->switch_wait_t_ms = s->t_ms;
		}
		d.action_reason = d.planned == WK_ACTION_POST_COPY
		                      ? "struggling: switching to post-copy at the end of this "
		                        "pass, where data_remaining is lowest"
		                      : "struggling: pausing the guest at the end of this pass, "
		                        "where data_remaining is lowest";
	} else if (d.reasons != 0) {
		take_rung(st, cfg, d.planned, s, &d);
		d.action_reason = why;
		d.planned = next_rung(st, cfg, &d.prediction, &why);
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
	st->prev_iter = s->memory_iteration;
	st->prev_rem = remaining_of(s);
	st->prev_t_ms = s->t_ms;
	*ret = d;
}
