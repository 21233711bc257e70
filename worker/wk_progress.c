/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_progress.c - progress arithmetic over job-stats samples.  Pure: the
 * only state is the caller's struct wk_progress.
 */
#include "wk_progress.h"

#include <stddef.h>

#define DEFAULT_PAGE_SIZE 4096LL
#define RUNNING_CAP       99.0

void
wk_progress_init(struct wk_progress *p)
{
	p->percent = 0.0;
	p->eta_s = -1;
	p->dirty_rate_bps = -1;
	p->transfer_rate_bps = -1;
	p->data_remaining = -1;
	p->memory_iteration = -1;
	p->elapsed_ms = -1;
	p->expected_downtime_ms = -1;
	p->last_t_ms = 0;
	p->last_processed = -1;
}

/* Sum of the fields that are present; -1 when none is. */
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
total_of(const struct wk_job_sample *s)
{
	return s->data_total >= 0 ? s->data_total : sum2(s->memory_total, s->disk_total);
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

/* Percentage this sample shows, or -1 when it shows nothing measurable. */
static double
sample_percent(long long total, long long processed, long long remaining)
{
	if (total > 0 && remaining >= 0) {
		if (remaining >= total)
			return 0.0;
		return (double)(total - remaining) * 100.0 / (double)total;
	}
	if (processed >= 0 && remaining >= 0 && processed + remaining > 0)
		return (double)processed * 100.0 / (double)(processed + remaining);
	return -1.0;
}

void
wk_progress_update(struct wk_progress *p, const struct wk_job_sample *s)
{
	long long total = total_of(s);
	long long processed = processed_of(s);
	long long remaining = remaining_of(s);
	long long page, dirty = -1, xfer = -1, net;
	double pct;

	if (s->memory_dirty_rate >= 0) {
		page = s->memory_page_size > 0 ? s->memory_page_size : DEFAULT_PAGE_SIZE;
		dirty = s->memory_dirty_rate * page;
	}
	if (s->memory_bps > 0) {
		xfer = s->memory_bps;
	} else if (processed >= 0 && p->last_processed >= 0 && p->last_t_ms != 0 &&
	           s->t_ms > p->last_t_ms && processed >= p->last_processed) {
		xfer = (long long)((double)(processed - p->last_processed) * 1000.0 /
		                   (double)(s->t_ms - p->last_t_ms));
	} else if (s->memory_bps == 0) {
		xfer = 0;
	}

	p->dirty_rate_bps = dirty;
	p->transfer_rate_bps = xfer;
	p->data_remaining = remaining;
	p->memory_iteration = s->memory_iteration;
	p->elapsed_ms = s->time_elapsed_ms;
	p->expected_downtime_ms = s->downtime_ms;
	if (processed >= 0 && s->t_ms != 0) {
		p->last_processed = processed;
		p->last_t_ms = s->t_ms;
	}

	if (s->type == WK_JOB_COMPLETED) {
		p->percent = 100.0;
		p->eta_s = 0;
		if (p->data_remaining < 0)
			p->data_remaining = 0;
		return;
	}

	pct = sample_percent(total, processed, remaining);
	if (pct > RUNNING_CAP)
		pct = RUNNING_CAP;
	if (pct > p->percent)
		p->percent = pct;

	p->eta_s = -1;
	if (remaining < 0 || xfer <= 0 || s->memory_iteration < 2)
		return;
	if (remaining == 0) {
		p->eta_s = 0;
		return;
	}
	net = xfer - (dirty > 0 ? dirty : 0);
	if (net > 0)
		p->eta_s = (remaining + net - 1) / net;
}

void
wk_progress_complete(struct wk_progress *p)
{
	p->percent = 100.0;
	p->eta_s = 0;
	p->data_remaining = 0;
}
