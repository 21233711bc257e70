/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_flow_bandwidth.c - the bandwidth of source migrations while they
 * run, on the flow harness (tests/support/flow_harness.h) and the fake
 * hypervisor's call log: a pause lifts the pre-copy cap before the guest
 * stops and a failed pause puts it back; post-copy gets its own bandwidth
 * (VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY) from the dial or its option; the
 * running migrations re-share the link budget as one starts or ends, and an
 * explicit bandwidth is never re-shared.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "flow_harness.h"
#include "wk_flow_priv.h"

#define A FH_A
#define B FH_B

#define WAIT_MS 3000
/* the policy pauses a requested force-complete once nothing moves for 3 s */
#define PAUSE_WAIT_MS 8000
#define POST_END      "instance.live_migration_post.end"

FH_SUITE(wk_flow_bandwidth);

static bool
sampled(struct fh *hh, const void *uuid)
{
	struct mig *m = mig_find(hh->flow, uuid, ROLE_SOURCE);

	return m != NULL && m->last_sample.memory_total > 0;
}

/* uuid's migration runs (hanging in pre-copy) and libvirt reported it. */
static void
migrating(const char *uuid)
{
	struct fake_mig_step step = {.kind = FAKE_MIG_HANG};
	struct wk_err err = {{0}};

	fake_hv_script(uuid, &step);
	cr_assert_eq(fh_live_migration(h, uuid, &err), 0, "%s", err.msg);
	cr_assert(fh_answer_pre(h, uuid));
	cr_assert(fh_wait_phase(h, uuid, "source", "precopy", WAIT_MS));
	cr_assert(fh_pump_until(h, sampled, uuid, WAIT_MS), "no sample of %s", uuid);
}

static void
complete(const char *uuid)
{
	struct fake_mig_step step = {.kind = FAKE_MIG_COMPLETE};

	fake_hv_release(uuid, &step);
	cr_assert(fh_answer_post(h, uuid));
	cr_assert(fh_wait_event(h, POST_END, uuid, 1, WAIT_MS));
}

/* uuid's calls to the hypervisor, without the policy's downtime steps
 * (the fake's fixed sample may look struggling to it). */
static const char *
call_log(const char *uuid)
{
	static const char step[] = " set_max_downtime";
	static char buf[1024];
	char *p;

	fake_hv_call_log(uuid, buf, sizeof(buf));
	while ((p = strstr(buf, step)) != NULL)
		memmove(p, p + strlen(step), strlen(p + strlen(step)) + 1);
	return buf;
}

static void
assert_params(const char *uuid, unsigned long long pre, unsigned long long post)
{
	struct wk_hv_migrate_params p;

	cr_assert(fake_hv_last_params(uuid, &p));
	cr_assert_eq(
	    p.bandwidth_mib_s, pre, "%s: bandwidth %llu, want %llu", uuid, p.bandwidth_mib_s, pre);
	cr_assert_eq(p.postcopy_bandwidth_mib_s, post, "%s: post-copy bandwidth %llu, want %llu",
	    uuid, p.postcopy_bandwidth_mib_s, post);
}

struct speed_want {
	const char *uuid;
	bool postcopy;
	long long mib_s;
};

static bool
speed_is(struct fh *hh, const void *arg)
{
	const struct speed_want *w = arg;

	(void)hh;
	return fake_hv_speed(w->uuid, w->postcopy) == w->mib_s;
}

static void
wait_speed(const char *uuid, bool postcopy, long long mib_s)
{
	struct speed_want w = {uuid, postcopy, mib_s};

	cr_assert(fh_pump_until(h, speed_is, &w, WAIT_MS), "%s: %s cap %lld, want %lld (calls: %s)",
	    uuid, postcopy ? "post-copy" : "pre-copy", fake_hv_speed(uuid, postcopy), mib_s,
	    call_log(uuid));
}

/* ---- the paused switch-over ---- */

static bool
phase_is(struct fh *hh, const void *arg)
{
	return strcmp(fh_phase(hh, A, "source"), arg) == 0;
}

/* force-complete without post-copy pauses the guest: the cap is lifted
 * (0 = unlimited) at the request, so the whole last pass runs at full
 * speed; the policy pauses the guest after its first pass (here, where
 * the fake's job stands still in pass 1, once nothing moves for 3 s); the
 * migration then completes. */
Test(wk_flow_bandwidth, pause_lifts_the_cap_before_the_guest_stops)
{
	struct wk_err err = {{0}};

	start("live_migration_bandwidth = 32;");
	migrating(A);
	assert_params(A, 32, 0); /* no link speed: post-copy as nova, unlimited */
	cr_assert_eq(fake_hv_calls("set_max_speed", A), 0);

	cr_assert_eq(fh_force_complete(h, A, &err), 0, "%s", err.msg);
	cr_assert_str_eq(call_log(A), "migrate speed=0");
	cr_assert_str_eq(fh_phase(h, A, "source"), "precopy", "not paused in the first pass");
	fh_pump(h, 600); /* samples of pass 1 neither pause it nor cap it again */
	cr_assert_str_eq(call_log(A), "migrate speed=0");
	cr_assert(fh_pump_until(h, phase_is, "paused", PAUSE_WAIT_MS), "calls: %s", call_log(A));
	cr_assert_str_eq(call_log(A), "migrate speed=0 suspend");
	fh_pump(h, 200); /* samples of the paused migration change nothing */
	cr_assert_str_eq(call_log(A), "migrate speed=0 suspend");
	complete(A);
}

static bool
cap_back(struct fh *hh, const void *arg)
{
	(void)hh;
	(void)arg;
	return strcmp(call_log(A), "migrate speed=0 suspend suspend speed=32") == 0;
}

/* The pause refused twice: the guest still runs, so its cap comes back. */
Test(wk_flow_bandwidth, failed_pause_puts_the_cap_back)
{
	struct wk_err err = {{0}};

	start("live_migration_bandwidth = 32;");
	migrating(A);
	fake_hv_fail_always("suspend", -EIO, "pause domain: internal error");
	cr_assert_eq(fh_force_complete(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_pump_until(h, cap_back, NULL, PAUSE_WAIT_MS), "calls: %s", call_log(A));
	cr_assert_str_eq(fh_phase(h, A, "source"), "precopy");
	fake_hv_fail_always("suspend", 0, NULL);
	complete(A);
}

/* ---- post-copy's own bandwidth ---- */

/* From the dial: the whole link budget (1G, one outbound slot: 95 MiB/s),
 * passed as VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY; the switch to post-copy
 * lifts nothing (the guest keeps running on the destination). */
Test(wk_flow_bandwidth, postcopy_gets_its_bandwidth_from_the_dial)
{
	struct wk_err err = {{0}};

	start("link_speed = \"1G\";\nlive_migration_permit_post_copy = true;");
	migrating(A);
	assert_params(A, 95, 95);
	cr_assert_eq(fh_force_complete(h, A, &err), 0, "%s", err.msg);
	cr_assert_str_eq(call_log(A), "migrate start_postcopy");
	cr_assert_str_eq(fh_phase(h, A, "source"), "postcopy");
	complete(A);
}

/* Its own option wins over the dial, and is not re-shared. */
Test(wk_flow_bandwidth, postcopy_option_wins)
{
	start("link_speed = \"1G\";\nlive_migration_permit_post_copy = true;\n"
	      "live_migration_bandwidth_postcopy = 300;");
	migrating(A);
	assert_params(A, 95, 300);
	complete(A);
}

/* ---- re-sharing the link budget ---- */

/* 1G with two outbound slots: 47 MiB/s each, a budget of 94.  Alone, the
 * first migration gets all of it; the second one's start re-caps it to
 * half (pre-copy and post-copy), and the second's end gives it back. */
Test(wk_flow_bandwidth, running_migrations_reshare_the_budget)
{
	start("link_speed = \"1G\";\nmax_concurrent_live_migrations = 2;\n"
	      "live_migration_permit_post_copy = true;");
	cr_assert_eq(h->tuning.budget_mib_s, 94);
	migrating(A);
	assert_params(A, 94, 94);
	cr_assert_eq(fake_hv_calls("set_max_speed", A), 0);

	migrating(B);
	assert_params(B, 47, 47);
	wait_speed(A, false, 47);
	wait_speed(A, true, 47);
	fh_pump(h, 200); /* steady: no more calls */
	cr_assert_str_eq(call_log(A), "migrate speed=47 postcopy_speed=47");
	cr_assert_eq(fake_hv_calls("set_max_speed", B), 0);

	complete(B);
	wait_speed(A, false, 94);
	wait_speed(A, true, 94);
	cr_assert_str_eq(
	    call_log(A), "migrate speed=47 postcopy_speed=47 speed=94 postcopy_speed=94");
	complete(A);
}

static bool
b_paused(struct fh *hh, const void *arg)
{
	(void)arg;
	return strcmp(fh_phase(hh, B, "source"), "paused") == 0;
}

/* A migration that ends by an abort frees its share as well; a paused
 * one keeps its lifted cap while the others are re-shared. */
Test(wk_flow_bandwidth, abort_frees_the_share_and_a_paused_guest_stays_unlimited)
{
	struct wk_err err = {{0}};

	start("link_speed = \"1G\";\nmax_concurrent_live_migrations = 2;");
	migrating(A);
	migrating(B);
	wait_speed(A, false, 47);
	cr_assert_eq(fake_hv_speed(A, true), -1, "post-copy not permitted: %s", call_log(A));
	cr_assert_eq(fh_force_complete(h, B, &err), 0, "%s", err.msg);
	cr_assert(fh_pump_until(h, b_paused, NULL, PAUSE_WAIT_MS), "calls: %s", call_log(B));
	cr_assert_str_eq(call_log(B), "migrate speed=0 suspend");
	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_wait_event(h, "instance.live_migration_rollback.end", A, 1, WAIT_MS));
	fh_pump(h, 200);
	cr_assert_eq(fake_hv_speed(B, false), 0, "calls: %s", call_log(B));
	/* its post-copy cap would matter only if it could switch: it cannot */
	cr_assert_str_eq(call_log(B), "migrate speed=0 suspend");
	complete(B);
}

/* An explicit live_migration_bandwidth is a fixed cap per migration:
 * whatever runs beside it, nothing is re-shared. */
Test(wk_flow_bandwidth, explicit_bandwidth_is_never_reshared)
{
	start("link_speed = \"1G\";\nmax_concurrent_live_migrations = 2;\n"
	      "live_migration_bandwidth = 20;");
	cr_assert_eq(h->tuning.budget_mib_s, 0);
	migrating(A);
	migrating(B);
	assert_params(A, 20, 0); /* post-copy not permitted: no post-copy cap */
	assert_params(B, 20, 0);
	complete(B);
	fh_pump(h, 200);
	cr_assert_eq(fake_hv_calls("set_max_speed", A), 0, "calls: %s", call_log(A));
	complete(A);
}
