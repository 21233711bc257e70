/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_progress.c - progress figures over job-stats sequences measured in
 * libvirt-lab.md: the non-converging run of section 4(b) (100 MiB/s cap,
 * guest dirtying 64 MiB at 256 MiB/s), a converging run (section 4(a)), the
 * first-pass and setup-phase samples of section 5, and the fallbacks.
 */
#include <stdint.h>

#include <criterion/criterion.h>

#include "wk_progress.h"

#define MiB (1024LL * 1024LL)

/* A running-migration sample with every field absent except t and type. */
static struct wk_job_sample
sample(uint64_t t_ms)
{
	struct wk_job_sample s = {
	    .t_ms = t_ms,
	    .type = WK_JOB_UNBOUNDED,
	    .memory_total = -1,
	    .memory_processed = -1,
	    .memory_remaining = -1,
	    .data_total = -1,
	    .data_processed = -1,
	    .data_remaining = -1,
	    .disk_total = -1,
	    .disk_processed = -1,
	    .disk_remaining = -1,
	    .memory_dirty_rate = -1,
	    .memory_page_size = -1,
	    .memory_bps = -1,
	    .memory_iteration = -1,
	    .time_elapsed_ms = -1,
	    .downtime_ms = -1,
	    .setup_time_ms = -1,
	    .auto_converge_throttle = -1,
	    .memory_postcopy_requests = -1,
	};
	return s;
}

/* As libvirt 9.0 reports a 256 MiB guest's outgoing migration (section 5 fields). */
static struct wk_job_sample
lab_sample(uint64_t t_ms, long long iteration, long long processed, long long remaining,
    long long dirty_pages, long long bps, long long downtime)
{
	struct wk_job_sample s = sample(t_ms);

	s.memory_total = s.data_total = 256 * MiB;
	s.memory_processed = s.data_processed = processed;
	s.memory_remaining = s.data_remaining = remaining;
	s.disk_total = s.disk_processed = s.disk_remaining = 0;
	s.memory_dirty_rate = dirty_pages;
	s.memory_page_size = 4096;
	s.memory_bps = bps;
	s.memory_iteration = iteration;
	s.time_elapsed_ms = (long long)t_ms;
	s.downtime_ms = downtime;
	s.setup_time_ms = 3;
	s.memory_postcopy_requests = 0;
	return s;
}

Test(wk_progress, init_means_unknown)
{
	struct wk_progress p;

	wk_progress_init(&p);
	cr_assert_float_eq(p.percent, 0.0, 1e-9);
	cr_assert_eq(p.eta_s, -1);
	cr_assert_eq(p.dirty_rate_bps, -1);
	cr_assert_eq(p.transfer_rate_bps, -1);
	cr_assert_eq(p.data_remaining, -1);
	cr_assert_eq(p.memory_iteration, -1);
	cr_assert_eq(p.elapsed_ms, -1);
	cr_assert_eq(p.expected_downtime_ms, -1);
}

Test(wk_progress, setup_phase_zeros_change_nothing_visible)
{
	struct wk_progress p;
	struct wk_job_sample s = lab_sample(10, 0, 0, 0, 0, 0, 0);

	s.memory_total = s.data_total = 0;
	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 0.0, 1e-9);
	cr_assert_eq(p.eta_s, -1);
	cr_assert_eq(p.transfer_rate_bps, 0);
}

Test(wk_progress, first_pass_has_percent_but_no_eta)
{
	struct wk_progress p;
	/* iteration 1: data_remaining still counts the zero pages (section 5) */
	struct wk_job_sample s = lab_sample(300, 1, 23 * MiB, 233 * MiB, 0, 100 * MiB, 300);

	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 23.0 * 100.0 / 256.0, 1e-6);
	cr_assert_eq(p.eta_s, -1);
	cr_assert_eq(p.memory_iteration, 1);
	cr_assert_eq(p.data_remaining, 233 * MiB);
	cr_assert_eq(p.transfer_rate_bps, 100 * MiB);
	cr_assert_eq(p.dirty_rate_bps, 0);
}

Test(wk_progress, non_converging_run_of_section_4b)
{
	struct wk_progress p;
	struct wk_job_sample s1 = lab_sample(1000, 2, 90 * MiB, 39 * MiB, 0, 100 * MiB, 300);
	struct wk_job_sample s2 = lab_sample(2000, 5, 190 * MiB, 54 * MiB, 25321, 100 * MiB, 639);
	struct wk_job_sample s12 =
	    lab_sample(12000, 30, 1190 * MiB, 54 * MiB, 25475, 100 * MiB, 639);
	double first;

	wk_progress_init(&p);

	/* t=1s: dirty rate not measured yet (0), so the fluid estimate is optimistic */
	wk_progress_update(&p, &s1);
	first = (256.0 - 39.0) * 100.0 / 256.0;
	cr_assert_float_eq(p.percent, first, 1e-6);
	cr_assert_eq(p.eta_s, 1); /* ceil(39 MiB / 100 MiB/s) */
	cr_assert_eq(p.expected_downtime_ms, 300);
	cr_assert_eq(p.elapsed_ms, 1000);

	/* t=2s: more remains than before; the percentage holds, it never runs back */
	wk_progress_update(&p, &s2);
	cr_assert_float_eq(p.percent, first, 1e-6);
	cr_assert_eq(p.data_remaining, 54 * MiB);
	cr_assert_eq(p.dirty_rate_bps, 25321LL * 4096);
	cr_assert_eq(p.transfer_rate_bps, 100 * MiB);
	cr_assert_eq(p.memory_iteration, 5);
	cr_assert_eq(p.expected_downtime_ms, 639);
	/* 54 MiB shrinking at (100 MiB/s - 25321 pages/s) */
	cr_assert_eq(
	    p.eta_s, (54 * MiB + (100 * MiB - 25321LL * 4096) - 1) / (100 * MiB - 25321LL * 4096));
	cr_assert_gt(p.eta_s, 40);

	/* t=12s: 30 passes later, still stuck: the percentage does not creep to 99 */
	wk_progress_update(&p, &s12);
	cr_assert_float_eq(p.percent, first, 1e-6);
	cr_assert_lt(p.percent, 90.0);
	cr_assert_eq(p.memory_iteration, 30);
	cr_assert_gt(p.eta_s, 100);
}

Test(wk_progress, no_eta_when_dirtying_outpaces_the_link)
{
	struct wk_progress p;
	/* 30000 pages/s = 117 MiB/s against a 100 MiB/s cap */
	struct wk_job_sample s = lab_sample(5000, 12, 500 * MiB, 60 * MiB, 30000, 100 * MiB, 700);

	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	cr_assert_eq(p.eta_s, -1);
	cr_assert_gt(p.dirty_rate_bps, p.transfer_rate_bps);

	/* equal rates: remaining never shrinks either */
	s.memory_dirty_rate = 100 * MiB / 4096;
	wk_progress_update(&p, &s);
	cr_assert_eq(p.eta_s, -1);
}

Test(wk_progress, converging_run_reaches_100_only_on_completion)
{
	struct wk_progress p;
	struct wk_job_sample s;

	wk_progress_init(&p);
	s = lab_sample(100, 1, 20 * MiB, 200 * MiB, 0, 312 * MiB, 300);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 56.0 * 100.0 / 256.0, 1e-6);

	s = lab_sample(300, 2, 31 * MiB, 4 * MiB, 1000, 312 * MiB, 20);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 252.0 * 100.0 / 256.0, 1e-6);
	cr_assert_eq(p.eta_s, 1);

	/* last pass, nothing left but not yet switched over: capped at 99 */
	s = lab_sample(400, 3, 33 * MiB, 0, 1000, 312 * MiB, 18);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 99.0, 1e-9);
	cr_assert_eq(p.eta_s, 0);

	/* the JOB_COMPLETED statistics (type 3) finish it */
	s = lab_sample(570, 3, 33 * MiB, 0, 0, 312 * MiB, 18);
	s.type = WK_JOB_COMPLETED;
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 100.0, 1e-9);
	cr_assert_eq(p.eta_s, 0);
	cr_assert_eq(p.expected_downtime_ms, 18);
}

Test(wk_progress, complete_sets_100_and_stale_samples_do_not_undo_it)
{
	struct wk_progress p;
	struct wk_job_sample s = lab_sample(1000, 2, 90 * MiB, 39 * MiB, 0, 100 * MiB, 300);

	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	wk_progress_complete(&p);
	cr_assert_float_eq(p.percent, 100.0, 1e-9);
	cr_assert_eq(p.eta_s, 0);
	cr_assert_eq(p.data_remaining, 0);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 100.0, 1e-9);
}

Test(wk_progress, transfer_rate_from_deltas_when_memory_bps_is_absent)
{
	struct wk_progress p;
	struct wk_job_sample s1 = lab_sample(1000, 2, 10 * MiB, 100 * MiB, 0, -1, 300);
	struct wk_job_sample s2 = lab_sample(3000, 3, 210 * MiB, 50 * MiB, 0, -1, 300);

	wk_progress_init(&p);
	wk_progress_update(&p, &s1);
	cr_assert_eq(p.transfer_rate_bps, -1);
	cr_assert_eq(p.eta_s, -1);
	wk_progress_update(&p, &s2);
	cr_assert_eq(p.transfer_rate_bps, 100 * MiB);
	cr_assert_eq(p.eta_s, 1);
}

Test(wk_progress, dirty_rate_uses_the_reported_page_size)
{
	struct wk_progress p;
	struct wk_job_sample s = lab_sample(2000, 4, 100 * MiB, 10 * MiB, 100, 100 * MiB, 300);

	wk_progress_init(&p);
	s.memory_page_size = 65536;
	wk_progress_update(&p, &s);
	cr_assert_eq(p.dirty_rate_bps, 100LL * 65536);
	s.memory_page_size = -1;
	wk_progress_update(&p, &s);
	cr_assert_eq(p.dirty_rate_bps, 100LL * 4096);
	s.memory_dirty_rate = -1;
	wk_progress_update(&p, &s);
	cr_assert_eq(p.dirty_rate_bps, -1);
}

Test(wk_progress, memory_and_disk_fields_when_data_fields_are_absent)
{
	struct wk_progress p;
	struct wk_job_sample s = sample(1000);

	s.memory_total = 100 * MiB;
	s.memory_processed = 50 * MiB;
	s.memory_remaining = 50 * MiB;
	s.disk_total = 100 * MiB;
	s.disk_processed = 100 * MiB;
	s.disk_remaining = 0;
	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 75.0, 1e-9);
	cr_assert_eq(p.data_remaining, 50 * MiB);
}

Test(wk_progress, processed_share_when_no_total_is_reported)
{
	struct wk_progress p;
	struct wk_job_sample s = sample(1000);

	s.data_processed = 30 * MiB;
	s.data_remaining = 10 * MiB;
	wk_progress_init(&p);
	wk_progress_update(&p, &s);
	cr_assert_float_eq(p.percent, 75.0, 1e-9);
}

Test(wk_progress, zero_initialised_struct_works_like_init)
{
	struct wk_progress a = {0}, b;
	struct wk_job_sample s1 = lab_sample(1000, 2, 10 * MiB, 100 * MiB, 0, -1, 300);
	struct wk_job_sample s2 = lab_sample(2000, 3, 60 * MiB, 50 * MiB, 0, -1, 300);

	wk_progress_init(&b);
	wk_progress_update(&a, &s1);
	wk_progress_update(&b, &s1);
	wk_progress_update(&a, &s2);
	wk_progress_update(&b, &s2);
	cr_assert_float_eq(a.percent, b.percent, 1e-9);
	cr_assert_eq(a.transfer_rate_bps, 50 * MiB);
	cr_assert_eq(a.transfer_rate_bps, b.transfer_rate_bps);
	cr_assert_eq(a.eta_s, b.eta_s);
}
