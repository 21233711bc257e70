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
 * keeps the minimum and the peak of data_remaining and the average dirty
 * and transfer rates.  The verdict is a set of reasons:
 *
 *   WK_REASON_DIRTY_EXCEEDS_TRANSFER: in each of the last 2 completed
 *     iterations (never iteration 1, whose dirty rate QEMU reports as 0)
 *     the average dirty rate (pages/s * page size) reached 95 % of the
 *     average transfer rate.  The margin is needed because QEMU measures
 *     the dirty rate over one sync period, which lasts as long as sending
 *     the dirty set takes: a guest re-dirtying its whole working set every
 *     pass shows a dirty rate equal to the link rate, never above it (the
 *     nonconverging trace: 23.7-24.0 MiB/s dirty on a 24.0 MiB/s link; the
 *     converging sawtooth trace runs at 75 %).
 *   WK_REASON_REMAINING_NOT_SHRINKING: from iteration 3 on, the peak of
 *     data_remaining of the current iteration is not at least 5 % below the
 *     peak of the iteration 2 before it (or, when that one had no sample,
 *     the newest earlier one), unless it already fits the current max
 *     downtime at the current transfer rate.  The peak (the dirty set the
 *     last sync handed to this pass; remaining only falls within a pass, so
 *     it is known from the iteration's first sample) is used rather than the
 *     minimum: the per-iteration minimum is whatever sample fell just
 *     before QEMU's next sync, i.e. below its switch-over threshold
 *     (bandwidth * max downtime) in every iteration, converging or not, and
 *     flagged the converging sawtooth trace.  The minimum is kept for
 *     reporting (struct wk_policy_iter.rem_min).
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
 *      to work:
 *        RAISE_DOWNTIME along Nova's step schedule, accelerated: straight
 *          to the smallest step whose downtime would let the last
 *          iteration's dirty set (peak remaining / transfer rate) go in one
 *          switch-over, at least one step up, capped at the top step;
 *        THROTTLE once, if permit_auto_converge (the migration was started
 *          with auto-converge; the action only reports it);
 *        POST_COPY once, if permit_post_copy;
 *        PAUSE once, if permit_pause;
 *        NONE with the reason ("post-copy forbidden for this instance, ...").
 *   5. Nova's wall-clock downtime schedule (also when not struggling):
 *      step i at elapsed > i * delay, downtime base + i * (max - base) /
 *      steps with base = max / steps (nova.virt.libvirt.migration.
 *      downtime_steps); the first sample applies step 0.
 * An action the hypervisor refused is reported back with
 * wk_policy_action_result(): it is retried once (at the next sample), then
 * given up, and the ladder or the deadline moves on to what is left: at the
 * deadline the configured action first, then post-copy, pause, abort, in
 * that order, whatever state the ladder is in (a migration never runs on
 * for want of an action that worked).
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
	long long rem_min, rem_peak;     /* data_remaining over the iteration's samples */
	long long dirty_sum, n_dirty;    /* dirty rate bytes/s, summed over samples */
	long long bps_sum, n_bps;        /* memory_bps, summed over samples reporting it */
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
};

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
	int policy_step; /* downtime step index reached (-1 none yet) */
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

#endif /* WK_POLICY_H */
