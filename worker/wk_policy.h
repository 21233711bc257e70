/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_policy.h - "migrations that always end": decides, per job-stats
 * sample, whether a live migration is struggling and what to do about it
 * (raise max downtime, auto-converge, post-copy, pause, abort, force
 * complete).  Pure: no I/O, no clocks, no globals, never logs; time comes
 * from the samples (wk_job_sample.t_ms) and the start time given to
 * wk_policy_init().  One caller-allocated struct wk_policy_state per
 * migration, used by one thread at a time.  The state is a plain struct of
 * bounded size (no pointers); the journal stores it field by field
 * (wk_flow_record.c), so a new field must be added there too.
 *
 * Detection is per memory iteration (pre-copy pass, memory_iteration), not
 * per raw sample: data_remaining is a saw-tooth (it falls while a pass sends
 * and jumps at every dirty-log sync), which is what made Nova drop its old
 * sample-based automatic post-copy switch.  For every iteration the state
 * keeps the minimum and the peak of data_remaining, the average dirty and
 * transfer rates, and the dirty set the last sync handed to the pass.
 *
 * The convergence predictor (wk_policy_predict(), docs/tuning.md):
 *   dirty set S of a pass: data_remaining at its first sample plus what was
 *     sent between the previous pass's last sample and this one, minus what
 *     the previous pass still had to send above its switch-over threshold
 *     (QEMU syncs when remaining falls below transfer rate * max downtime),
 *     clamped to [first sample, first sample + sent]; the first sample alone
 *     would be 0-250 ms of transfer late (up to 40 % off at 100 MiB/s).
 *     Iteration 1 (all of RAM) has no dirty set.
 *   pass time P = S / the pass's highest transfer rate: what one
 *     switch-over of that set takes, and comparable across a link that
 *     changes speed (link_slowdown trace: 0.9 s, 0.46 s, then 3.0 s at a
 *     quarter of the rate, where the bytes alone fell from 57 to 48 MiB).
 *   trend q: the per-pass ratio of P from the third-newest pass to the
 *     newest (from the second-newest when only two are known; iteration
 *     numbers that skip count as passes); the observed trend, never
 *     the dirty rate, decides: a guest re-dirtying a small working set
 *     shows a dirty rate equal to the transfer rate (QEMU measures it over
 *     one sync period), yet its dirty set falls and it converges (KubeVirt
 *     VEP 248's case), which a rate comparison would escalate.
 *   iterations needed: passes until P * q^k fits the current max downtime
 *     (QEMU's switch-over threshold); 0 when P already fits;
 *     "never" when q >= 1 or k > 30 (WK_PREDICT_HORIZON: a set shrinking by
 *     15 % per pass from 40x the threshold still makes it; one shrinking by
 *     4 %, the nonconverging trace's noise, from 9x does not).
 *   outlook: converges / struggles by the above; with only one dirty set
 *     known (iteration 2), by the rates (dirty >= 95 % of transfer).
 *   confidence: 25 with one dirty set; 50 with a trend; 75 when the
 *     newest ratio is >= 1 with outlook "struggles" (not shrinking at all),
 *     or both single-pass ratios give the outlook the trend gives, or the
 *     set already fits; then +25 when the rate model (dirty >= 95 % of
 *     transfer <=> struggles) agrees.  The rates never lift a prediction to
 *     75: with them, one noisy ratio (95 % from an underestimated first
 *     pass) would have escalated the VEP 248 case.
 *   expected downtime: P * q^k when it converges; else the smallest
 *     P * q^j (j = 1..3, WK_PREDICT_LOOKAHEAD, q capped at 1) within the
 *     configured max downtime, else P * q (the next pass's set): what a max
 *     downtime raised now would have to absorb.
 *
 * The memory verdict is sticky: it turns on at outlook "struggles" with
 * confidence >= 75 and off at "converges" with confidence >= 75.  On the
 * recorded traces (tests/data/traces) it comes at the first sample of
 * iteration 3 or 4 (onset + 1 or 2) and never on a converging one.  The
 * verdict is a set of reasons:
 *
 *   WK_REASON_REMAINING_NOT_SHRINKING: the memory verdict (the dirty set
 *     does not shrink fast enough to fit the current max downtime within
 *     30 passes).
 *   WK_REASON_DIRTY_EXCEEDS_TRANSFER: with the memory verdict only, the
 *     average dirty rate reached 95 % of the average transfer rate in each
 *     of the last 2 completed iterations (never iteration 1, whose dirty
 *     rate QEMU reports as 0): reported, never decisive on its own.
 *   WK_REASON_DEADLINE_APPROACHING: elapsed >= 75 % of the completion
 *     deadline, completion_timeout_s * data GiB (Nova's scaling).
 *   WK_REASON_TRANSFER_STALLED: data_processed unchanged for >= 3 s of
 *     sample time.
 *
 * Actions, at most one per call, in this order of precedence:
 *   1. nothing after ABORT or FORCE_COMPLETE, and nothing in the post-copy
 *      phase (after POST_COPY: libvirt cannot abort it, nothing is faster);
 *   2. transfer stalled for >= 30 s: ABORT (post-copy cannot help a dead
 *      link), also after a force-complete that paused the guest;
 *   3. elapsed >= deadline: timeout_action: ABORT, or FORCE_COMPLETE, which
 *      the caller performs as Nova does: post-copy when permit_post_copy,
 *      else pause (an explicit operator setting, so it does not need
 *      permit_pause); action_reason says which.  A guest already paused
 *      and still not done, or a refused action, falls through to the
 *      next one (see wk_policy_action_result below);
 *   4. struggling (and not stalled, where nothing but waiting or aborting
 *      helps): the next rung of the ladder, once the previous rung had one
 *      memory iteration or the downtime delay (downtime_delay_s * data GiB)
 *      to work.  A rung that cannot help is skipped:
 *        RAISE_DOWNTIME once, and only when the predicted downtime fits
 *          under max_downtime_ms: straight to the smallest step of Nova's
 *          schedule at or above it (a verdict without a prediction, e.g. the
 *          deadline approaching in iteration 1, skips it too);
 *        THROTTLE once, if permit_auto_converge (the migration was started
 *          with auto-converge; the action only reports it);
 *        POST_COPY once, if permit_post_copy;
 *        PAUSE once, if permit_pause;
 *        NONE with the reason ("post-copy forbidden for this instance, ...").
 *      POST_COPY and PAUSE wait for the lowest data_remaining of the
 *      current pass: they are taken at the sample after which the pass is
 *      expected to end before the next sample (remaining - transfer rate *
 *      sample gap <= where passes end: the switch-over threshold, or the
 *      lowest last-sample remaining of a pass seen minus half a sample's
 *      transfer if lower), or when remaining turned up within
 *      the pass, and at the latest 2 iterations or one pass duration + 1 s
 *      after the rung was due; never while data_processed stands still
 *      (the stall rules decide then); at once in pass 1 (all of RAM: its
 *      end may be far) or without remaining and rate figures.  A switch at
 *      a pass's first sample would carry its whole dirty set; at its end
 *      only what is left above the threshold (nonconverging trace: 8.8 MiB
 *      instead of 57-64 MiB).
 *   5. Nova's wall-clock downtime schedule (also when not struggling):
 *      step i at elapsed > i * delay, downtime base + i * (max - base) /
 *      steps with base = max / steps (nova.virt.libvirt.migration.
 *      downtime_steps); the first sample applies step 0.
 * An action the hypervisor refused is reported back with
 * wk_policy_action_result(): it is retried once (at the next sample;
 * post-copy and pause at the next pass end), then given up, and the ladder
 * or the deadline moves on to what is left: at the deadline the configured
 * action first, then post-copy, pause, abort, in that order, whatever
 * state the ladder is in (a migration never runs on for want of an action
 * that worked).
 * Any call returning POST_COPY, PAUSE, ABORT or FORCE_COMPLETE has a
 * non-zero verdict, and verdict_changed is set no later than that call, so
 * the caller can send the struggling notification before acting.
 */
#ifndef WK_POLICY_H
#define WK_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "wk_progress.h"

/* Resolved per migration (host configuration + instance overrides). */
struct wk_policy_config {
	unsigned max_downtime_ms;      /* libvirt.live_migration_downtime, nova default 500 */
	unsigned downtime_steps;       /* default 10; 0 is taken as 1 */
	unsigned downtime_delay_s;     /* default 75 (per GiB of data, as nova) */
	unsigned completion_timeout_s; /* default 800 (per GiB, as nova); 0 = off */
	enum wk_timeout_action {
		WK_TIMEOUT_ABORT,
		WK_TIMEOUT_FORCE_COMPLETE,
	} timeout_action;
	bool permit_post_copy, permit_auto_converge, permit_pause; /* pause = last resort */
	/* Guest RAM + disk to copy, for nova's per-GiB scaling.  Nova counts RAM
	 * as at least 2 GiB; callers do the same.  0 is taken as 2 GiB. */
	unsigned long long data_bytes;
};

/* Nova's defaults for the knobs above (libvirt.live_migration_*). */
#define WK_POLICY_DEFAULT_DOWNTIME_MS        500u
#define WK_POLICY_DEFAULT_DOWNTIME_STEPS     10u
#define WK_POLICY_DEFAULT_DOWNTIME_DELAY_S   75u
#define WK_POLICY_DEFAULT_COMPLETION_TIMEOUT 800u

/* Struggling reasons, a bitmask. */
enum wk_struggle_reason {
	WK_REASON_DIRTY_EXCEEDS_TRANSFER = 1u << 0,
	WK_REASON_REMAINING_NOT_SHRINKING = 1u << 1,
	WK_REASON_DEADLINE_APPROACHING = 1u << 2,
	WK_REASON_TRANSFER_STALLED = 1u << 3,
};

/* Wire name of one reason bit ("dirty_rate_exceeds_transfer_rate",
 * "remaining_not_shrinking", "deadline_approaching", "transfer_stalled"),
 * or NULL for anything that is not exactly one known bit.  Static string. */
const char *wk_reason_name(unsigned reason);

enum wk_action {
	WK_ACTION_NONE,
	WK_ACTION_RAISE_DOWNTIME,
	WK_ACTION_THROTTLE, /* auto-converge engaged (report only) */
	WK_ACTION_POST_COPY,
	WK_ACTION_PAUSE,
	WK_ACTION_ABORT,
	WK_ACTION_FORCE_COMPLETE,
	_WK_ACTION_MAX,
};

/* Wire name of an action: "none", "raise_downtime", "throttle", "post_copy",
 * "pause", "abort", "force_complete"; NULL when out of range.  Static. */
const char *wk_action_name(enum wk_action a);

/* Per-iteration figures (internal to wk_policy.c, readable for reports). */
struct wk_policy_iter {
	long long iteration;             /* memory_iteration; -1 = empty */
	long long dirty_set;             /* bytes handed to this pass by its sync; -1 unknown */
	long long rem_min, rem_peak;     /* data_remaining over the iteration's samples */
	long long dirty_sum, n_dirty;    /* dirty rate bytes/s, summed over samples */
	long long bps_sum, n_bps;        /* memory_bps, summed over samples reporting it */
	long long bps_max;               /* highest memory_bps (the link's rate; QEMU's
	                                    per-pass average dips at a pass's start) */
	uint64_t t_first, t_last;        /* sample times */
	long long proc_first, proc_last; /* data_processed at those samples, -1 unknown */
};

#define WK_POLICY_HISTORY 4 /* completed iterations kept */

/*
 * Everything the policy remembers about one migration.  Caller-allocated,
 * fixed size; fields are internal to wk_policy.c.
 */
struct wk_policy_state {
	uint64_t start_ms;
	long long deadline_ms;     /* relative to start; -1 = no completion timeout */
	long long step_delay_ms;   /* nova's downtime delay, scaled */
	int step;                  /* downtime step applied; -1 = none yet */
	unsigned reported;         /* last verdict returned */
	struct wk_policy_iter cur; /* iteration in progress */
	struct wk_policy_iter done[WK_POLICY_HISTORY]; /* completed, [0] newest */
	long long last_processed;                      /* -1 = none seen */
	uint64_t processed_since_ms;                   /* when it last changed */
	bool ladder_acted;                             /* a ladder rung was taken */
	long long ladder_iter;                         /* memory_iteration at the last rung */
	uint64_t ladder_t_ms;                          /* sample time of the last rung */
	bool throttled, post_copy, paused, finished;
	bool aborted;                           /* an abort was decided (and not refused) */
	unsigned char failures[_WK_ACTION_MAX]; /* refusals seen per action */
	unsigned refused;                       /* 1u << action: given up after two refusals */
	bool struggling;                        /* the sticky memory verdict */
	bool downtime_raised;                   /* the ladder's one downtime raise was taken */
	long long switch_wait_iter;             /* post-copy/pause due since; -1 = not waiting */
	uint64_t switch_wait_t_ms;
	long long prev_iter, prev_rem; /* the previous sample (-1 none) */
	uint64_t prev_t_ms;
	/* force-complete by pause requested (wk_policy_request_pause) at this
	 * memory_iteration and sample time; -1 = not requested */
	long long pause_req_iter;
	uint64_t pause_req_t_ms;
};

#define WK_PREDICT_HORIZON   30 /* passes: converging slower than this is struggling */
#define WK_PREDICT_LOOKAHEAD 3  /* passes a raised max downtime may take to switch over */

enum wk_outlook {
	WK_OUTLOOK_UNKNOWN,
	WK_OUTLOOK_CONVERGES,
	WK_OUTLOOK_STRUGGLES,
};

/* Wire name: "unknown", "converges", "struggles"; NULL out of range. */
const char *wk_outlook_name(enum wk_outlook o);

/* What the predictor expects (rules above); -1 = unknown. */
struct wk_prediction {
	enum wk_outlook outlook;
	unsigned confidence_pct;   /* 0, 25, 50, 75 or 100 */
	long long dirty_set;       /* bytes, newest pass */
	long long transfer_bps;    /* recent transfer rate */
	long long dirty_bps;       /* QEMU's dirty rate, recent */
	int shrink_pct;            /* dirty set per pass, percent of the previous one */
	long long iterations;      /* passes still needed at the current max downtime; -1 never */
	long long downtime_ms;     /* expected switch-over downtime */
	long long max_downtime_ms; /* the current max downtime it was judged against */
};

/* The prediction from what @st has seen so far (pure; wk_policy_step()
 * reports the same one in its decision). */
void wk_policy_predict(const struct wk_policy_state *st, const struct wk_policy_config *cfg,
    struct wk_prediction *ret);

/* Prepares @st for a migration that started at @start_ms (sample time base,
 * e.g. wk_now_ms() when the migrate call was issued).  @cfg is borrowed. */
void wk_policy_init(
    struct wk_policy_state *st, const struct wk_policy_config *cfg, uint64_t start_ms);

struct wk_decision {
	unsigned reasons;               /* current verdict (WK_REASON_* bits), 0 = not struggling */
	bool verdict_changed;           /* turned struggling or the reason set changed: notify */
	enum wk_action action;          /* what to do NOW (at most one per call) */
	enum wk_action force_by;        /* FORCE_COMPLETE: WK_ACTION_POST_COPY or _PAUSE */
	unsigned long long downtime_ms; /* RAISE_DOWNTIME: the new max downtime; otherwise
	                                   the one last set by the policy (0 = none yet) */
	const char *action_reason;      /* static text: why this action, or why none */
	enum wk_action planned;         /* next escalation if it keeps struggling */
	long long dirty_rate_bps, transfer_rate_bps, data_remaining, memory_iteration, elapsed_ms,
	    deadline_ms /* -1 none */;
	int policy_step;                 /* downtime step index reached (-1 none yet) */
	struct wk_prediction prediction; /* what justified the choice */
};

/*
 * Folds sample @s (borrowed; -1 fields are "absent") into @st and writes the
 * decision to @ret (always fully written).  Call it for every sample, in
 * time order, with the same @cfg as wk_policy_init().  The caller performs
 * ret->action, and must send a struggling notification when
 * ret->verdict_changed (before performing the action).  Samples of a job
 * that is no longer running (type NONE/COMPLETED/FAILED/CANCELLED) give
 * WK_ACTION_NONE and change nothing.
 */
void wk_policy_step(struct wk_policy_state *st, const struct wk_policy_config *cfg,
    const struct wk_job_sample *s, struct wk_decision *ret);

/*
 * Tells the policy how the action of decision @d went: r == 0 done, r < 0
 * refused by the hypervisor.  A refused action is retried once, then never
 * again for this migration.  No-op for r == 0 or WK_ACTION_NONE.
 */
void wk_policy_action_result(struct wk_policy_state *st, const struct wk_decision *d, int r);

/*
 * A force-complete by pause was requested (nova's force_complete without
 * post-copy) at @t_ms, the newest sample being in @iteration (0 = none yet).
 * The guest is not paused at once: the caller lifts the bandwidth cap and
 * wk_policy_step() returns WK_ACTION_FORCE_COMPLETE (force_by PAUSE) once
 * the first full pass is over, at the lowest data_remaining of a pass, so
 * the paused guest's last pass carries its dirty set, not the rest of its
 * RAM (docs/tuning.md, "Force-complete by pause").
 */
void wk_policy_request_pause(struct wk_policy_state *st, long long iteration, uint64_t t_ms);
/* Whether a force-complete by pause was requested and not refused twice
 * (and so the pre-copy cap stays lifted). */
bool wk_policy_pause_requested(const struct wk_policy_state *st);

/* Statistics period while a switch is pending (below). */
#define WK_POLICY_SWITCH_SAMPLE_MS 40

/*
 * Whether a post-copy switch or a pause is due and waits for the lowest
 * data_remaining of the current pass (a requested force-complete by pause
 * from the second pass on, or a struggling migration's due switch).  The
 * caller then samples every WK_POLICY_SWITCH_SAMPLE_MS, so that minimum is
 * caught within a short period rather than a progress interval: a pass of
 * the rig's 64 MiB working set lasts 300-400 ms uncapped.
 */
bool wk_policy_switch_pending(const struct wk_policy_state *st);

#endif /* WK_POLICY_H */
