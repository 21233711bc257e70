/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_progress.h - migration progress figures computed from libvirt job-stats
 * samples: a percentage that never runs backwards, ETA, dirty rate versus
 * transfer rate.  Pure functions over caller-owned structs: no I/O, no
 * globals, never logs; any thread (one struct wk_progress per migration).
 */
#ifndef WK_PROGRESS_H
#define WK_PROGRESS_H

#include <stdint.h>

/* libvirt's virDomainJobType values, as found in wk_job_sample.type. */
enum {
	WK_JOB_NONE = 0,
	WK_JOB_BOUNDED = 1,
	WK_JOB_UNBOUNDED = 2,
	WK_JOB_COMPLETED = 3,
	WK_JOB_FAILED = 4,
	WK_JOB_CANCELLED = 5,
};

/* One virDomainGetJobStats() result.  Sizes in bytes, rates in bytes/s unless
 * noted; every long long field is -1 when libvirt did not report it. */
struct wk_job_sample {
	uint64_t t_ms; /* monotonic time the sample was taken (wk_now_ms()) */
	int type;      /* WK_JOB_*, stored as libvirt reported it */
	long long memory_total, memory_processed, memory_remaining, data_total, data_processed,
	    data_remaining, disk_total, disk_processed, disk_remaining,
	    memory_dirty_rate /* pages/s */, memory_page_size, memory_bps, memory_iteration,
	    time_elapsed_ms, downtime_ms, setup_time_ms, auto_converge_throttle /* % */,
	    memory_postcopy_requests;
};

/*
 * Figures derived from the sample history.  Callers read the public fields;
 * -1 means "unknown".  Zero-initialise it or call wk_progress_init() before
 * the first update.
 */
struct wk_progress {
	double percent;              /* 0..99 while running, 100 once complete; never decreases */
	long long eta_s;             /* seconds to completion, -1 when not converging/unknown */
	long long dirty_rate_bps;    /* guest dirtying rate, bytes/s */
	long long transfer_rate_bps; /* migration stream rate, bytes/s */
	long long data_remaining;    /* bytes */
	long long memory_iteration;  /* pre-copy pass, 1 = first pass */
	long long elapsed_ms;        /* job time so far */
	long long expected_downtime_ms; /* QEMU's estimate while running, actual once completed */

	/* Internal to wk_progress.c: the previous sample, for rates libvirt did not report. */
	uint64_t last_t_ms;
	long long last_processed;
};

/* Sets every figure to "unknown" and percent to 0. */
void wk_progress_init(struct wk_progress *p);

/*
 * Folds sample @s (borrowed) into @p.
 *
 * percent is nova's measure, (data_total - data_remaining) / data_total: the
 * share of guest state that is already at the destination and still valid.
 * It drops when the guest re-dirties pages faster than they are sent, so @p
 * keeps the maximum seen, and caps it at 99 until the job completes (a
 * WK_JOB_COMPLETED sample or wk_progress_complete()).  When data_total is
 * not reported, processed / (processed + remaining) is used instead.
 * Samples with nothing to measure (setup phase, all zeros) leave percent alone.
 *
 * dirty_rate_bps = memory_dirty_rate * memory_page_size (4096 when absent).
 * transfer_rate_bps = memory_bps, else the data_processed delta since the
 * previous sample.  eta_s = remaining / (transfer - dirty), rounded up, when
 * the transfer rate exceeds the dirty rate; -1 otherwise, and -1 during the
 * first pass, whose data_remaining counts zero pages that cost almost nothing
 * to send and whose dirty rate is not yet measured (libvirt-lab.md section 5).
 */
void wk_progress_update(struct wk_progress *p, const struct wk_job_sample *s);

/* Marks the migration complete: percent 100, eta 0, nothing remaining. */
void wk_progress_complete(struct wk_progress *p);

#endif /* WK_PROGRESS_H */
