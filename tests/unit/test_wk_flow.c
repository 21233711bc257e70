/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_flow.c - the whole live-migration flow on the fake hypervisor and
 * a tapped bus (tests/support/flow_harness.h): accept -> queue -> reserve
 * -> migrate -> post; the outbound queue; abort while queued, preparing,
 * running and in post-copy; a policy action that fails; lost replies; a
 * post-copy break recovered and one not; a restart at every journalled
 * phase; the destination's side.  Every path ends with exactly one terminal
 * notification per migration and end: post.end, rollback.end or
 * postcopy_failed on the source, post_dest.end or rollback_dest.end on the
 * destination.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "flow_harness.h"
#include "rpc_nova.h"
#include "wk_flow_priv.h"

#define A FH_A
#define B FH_B

#define WAIT_MS 3000
/* A destination without the domain is taken as gone only after a failed
 * resume, 3 s after the break (wk_migrate.c DEST_GONE_MS). */
#define GONE_WAIT_MS 8000

#define POST_END     "instance.live_migration_post.end"
#define ROLLBACK_END "instance.live_migration_rollback.end"
#define STRUGGLING   "instance.live_migration_struggling"
#define PC_FAILED    "instance.live_migration_postcopy_failed"

FH_SUITE(wk_flow);

static void
accept_cast(const char *uuid)
{
	struct wk_err err = {{0}};

	cr_assert_eq(fh_live_migration(h, uuid, &err), 0, "live_migration: %s", err.msg);
}

static void
script(const char *uuid, enum fake_mig_kind kind)
{
	struct fake_mig_step step = {.kind = kind};

	fake_hv_script(uuid, &step);
}

static void
release(const char *uuid, enum fake_mig_kind kind)
{
	struct fake_mig_step step = {.kind = kind};

	fake_hv_release(uuid, &step);
}

static const char *
phase(const char *uuid)
{
	return fh_phase(h, uuid, "source");
}

static void
wait_phase(const char *uuid, const char *want)
{
	cr_assert(fh_wait_phase(h, uuid, "source", want, WAIT_MS),
	    "migration of %s: phase '%s', want '%s'", uuid, phase(uuid), want);
}

/* The guest ran through to the destination and the worker said so once. */
static void
assert_migrated(const char *uuid)
{
	cr_assert(
	    fake_hv_get_domain(FH_DST_URI, uuid, NULL), "the guest is not on the destination");
	cr_assert_not(fake_hv_get_domain(FH_SRC_URI, uuid, NULL), "the guest is still here");
	cr_assert_eq(fh_count(h, POST_END, uuid), 1);
	cr_assert_eq(fh_count(h, ROLLBACK_END, uuid), 0);
	cr_assert_eq(fh_source_terminals(h, uuid), 1);
	cr_assert_str_eq(phase(uuid), "", "the record outlived its terminal notification");
}

/* The migration was given up and said so once; the guest runs here. */
static void
assert_rolled_back(const char *uuid)
{
	struct wk_hv_domain_info info;

	cr_assert(fh_wait_event(h, ROLLBACK_END, uuid, 1, WAIT_MS), "no rollback.end");
	cr_assert_eq(fh_count(h, "instance.live_migration_rollback.start", uuid), 1);
	cr_assert_eq(fh_count(h, ROLLBACK_END, uuid), 1);
	cr_assert_eq(fh_count(h, POST_END, uuid), 0);
	cr_assert_eq(fh_source_terminals(h, uuid), 1);
	cr_assert_str_eq(phase(uuid), "");
	cr_assert(fake_hv_get_domain(FH_SRC_URI, uuid, &info), "the guest left the source");
	cr_assert_eq(info.state, WK_HV_STATE_RUNNING, "the guest was left paused");
	cr_assert_not(fake_hv_get_domain(FH_DST_URI, uuid, NULL));
}

/* Runs uuid's migration from its pre call to the end of a post. */
static void
run_to_post(const char *uuid)
{
	cr_assert(fh_answer_pre(h, uuid), "no pre_live_migration call for %s", uuid);
	cr_assert(fh_answer_post(h, uuid), "no post_live_migration_at_destination for %s", uuid);
	cr_assert(fh_wait_event(h, POST_END, uuid, 1, WAIT_MS));
	assert_migrated(uuid);
}

/* uuid's migration runs (in pre-copy) and hangs there until released. */
static void
migrating(const char *uuid)
{
	script(uuid, FAKE_MIG_HANG);
	accept_cast(uuid);
	cr_assert(fh_answer_pre(h, uuid));
	wait_phase(uuid, "precopy");
}

/* The hanging migration of uuid completes and is posted. */
static void
complete(const char *uuid)
{
	release(uuid, FAKE_MIG_COMPLETE);
	cr_assert(fh_answer_post(h, uuid));
	cr_assert(fh_wait_event(h, POST_END, uuid, 1, WAIT_MS));
	assert_migrated(uuid);
}

static bool
on_destination(struct fh *hh, const void *uuid)
{
	(void)hh;
	return fake_hv_get_domain(FH_DST_URI, uuid, NULL);
}

/* ---- the way through ---- */

Test(wk_flow, accept_reserve_migrate_post)
{
	static struct wk_job_sample trace[128];
	struct fake_mig_step step = {.kind = FAKE_MIG_COMPLETE, .duration_ms = 300};
	struct wk_hv_migrate_params p;
	json_t *post;

	step.trace_len = fh_load_trace("converging", trace, 128);
	step.trace = trace;
	step.step_ms = 50;
	cr_assert_gt(step.trace_len, 0);
	start(NULL);
	fake_hv_script(A, &step);
	accept_cast(A);
	/* Accepted and journalled, then straight out of the queue: the only one. */
	cr_assert_str_eq(phase(A), "preparing");
	cr_assert_eq(fh_requests(h, "pre_live_migration", A), 1);
	cr_assert_eq(fake_hv_calls("migrate", A), 0, "migrating before the destination reserved");

	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_event(h, "instance.live_migration_post.start", A, 1, WAIT_MS));
	cr_assert_eq(fh_count(h, POST_END, A), 0, "post.end before the destination answered");
	cr_assert_str_eq(phase(A), "completing");
	cr_assert_geq(fh_count(h, "instance.live_migration_progress", A), 1);
	cr_assert(fake_hv_last_params(A, &p));
	cr_assert(p.persistent);
	cr_assert_not(p.tls, "TLS without libvirt.live_migration_with_native_tls");
	cr_assert_null(p.tls_destination);

	post = json_object_get(
	    h->msgs[fh_pending_call(h, "post_live_migration_at_destination", A)].inner, "args");
	cr_assert_str_eq(rpc_nova_instance_uuid(json_object_get(post, "instance")), A);
	cr_assert(fh_answer_post(h, A));
	assert_migrated(A);
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 0);
	cr_assert_eq(wk_flow_active(h->flow), 0);
}

/* The dial, resolved per migration: on 10G the host derives 2 multifd
 * channels, but QEMU 7.2 (the fake's default) cannot run them with
 * post-copy, so an instance that permits post-copy gets one stream; with
 * QEMU 10.1 it keeps them.  The choice and its reason reach the journal
 * record and the libvirt call. */
static void
migrate_and_check_streams(int want_parallel, const char *want_why)
{
	struct wk_hv_migrate_params p;
	json_t *rec, *tuning;

	accept_cast(A);
	rec = fh_journal_record(h, "source", A);
	cr_assert_not_null(rec);
	tuning = json_object_get(rec, "tuning");
	cr_assert(json_is_object(tuning));
	cr_assert_eq(
	    json_integer_value(json_object_get(tuning, "parallel_connections")), want_parallel);
	cr_assert_not_null(
	    strstr(json_string_value(json_object_get(json_object_get(tuning, "why"), "parallel")),
	        want_why),
	    "%s", json_dumps(tuning, 0));
	json_decref(rec);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_event(h, "instance.live_migration_post.start", A, 1, WAIT_MS));
	cr_assert(fake_hv_last_params(A, &p));
	cr_assert_eq(p.parallel_connections, want_parallel);
	cr_assert(p.postcopy);
	cr_assert(!p.zstd);
	cr_assert(!p.compressed);
	cr_assert(fh_answer_post(h, A));
	assert_migrated(A);
}

Test(wk_flow, post_copy_instance_gets_one_stream_before_qemu_10_1)
{
	start("link_speed = \"10G\";\nlive_migration_permit_post_copy = true;");
	migrate_and_check_streams(0, "cannot run multifd with post-copy (needs 10.1)");
	cr_assert_geq(fake_hv_calls("versions", NULL), 1);
}

Test(wk_flow, post_copy_instance_keeps_multifd_on_qemu_10_1)
{
	start("link_speed = \"10G\";\nlive_migration_permit_post_copy = true;");
	fake_hv_set_versions(WK_VERSION(10, 1, 0), WK_VERSION(9, 0, 0));
	migrate_and_check_streams(2, "multifd channels");
}

Test(wk_flow, second_migration_waits_in_the_queue)
{
	struct wk_err err = {{0}};

	start("max_concurrent_live_migrations = 1;");
	migrating(A);

	accept_cast(B);
	fh_pump(h, 100);
	cr_assert_str_eq(phase(B), "queued");
	cr_assert_eq(fh_requests(h, "pre_live_migration", B), 0, "B left the queue early");
	/* Nova retries a cast it thinks was lost: still one migration. */
	cr_assert_eq(fh_live_migration(h, B, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_flow_active(h->flow), 2);

	complete(A);
	/* A's slot goes to B. */
	run_to_post(B);
}

/* ---- abort ---- */

Test(wk_flow, abort_while_queued)
{
	struct wk_err err = {{0}};

	start("max_concurrent_live_migrations = 1;");
	migrating(A);
	accept_cast(B);
	cr_assert_str_eq(phase(B), "queued");

	cr_assert_eq(fh_abort(h, B, &err), 0, "%s", err.msg);
	cr_assert_eq(fh_count(h, "instance.live_migration_abort.start", B), 1);
	cr_assert_eq(fh_count(h, "instance.live_migration_abort.end", B), 1);
	assert_rolled_back(B);
	/* Nothing was reserved at the destination for a queued migration. */
	cr_assert_eq(fh_requests(h, "pre_live_migration", B), 0);
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", B), 0);
	cr_assert_eq(fake_hv_calls("migrate", B), 0);

	complete(A);
}

Test(wk_flow, abort_while_preparing)
{
	struct wk_err err = {{0}};

	start(NULL);
	accept_cast(A);
	cr_assert(fh_wait_call(h, "pre_live_migration", A, WAIT_MS) >= 0);
	cr_assert_str_eq(phase(A), "preparing");

	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	/* The destination is still reserving: the answer decides. */
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	cr_assert(fh_answer_pre(h, A));
	assert_rolled_back(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 0, "an aborted migration started");
	/* What the destination reserved is released. */
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 1);
}

Test(wk_flow, abort_while_running)
{
	struct wk_err err = {{0}};

	start(NULL);
	migrating(A);

	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	cr_assert_eq(fake_hv_calls("abort", A), 1);
	assert_rolled_back(A);
	/* Aborted on request: nothing failed. */
	cr_assert(json_is_null(json_object_get(fh_event_data(h, ROLLBACK_END, A, 0), "fault")));
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 1);
	cr_assert_eq(fh_requests(h, "post_live_migration_at_destination", A), 0);
}

Test(wk_flow, abort_in_postcopy_is_refused_and_the_migration_completes)
{
	struct wk_err err = {{0}};

	start("live_migration_permit_post_copy = true;");
	migrating(A);
	cr_assert_eq(fh_force_complete(h, A, &err), 0, "%s", err.msg);
	cr_assert_eq(fake_hv_calls("start_postcopy", A), 1);
	cr_assert_str_eq(phase(A), "postcopy");

	/* libvirt cannot abort post-copy: the guest already runs there. */
	cr_assert_lt(fh_abort(h, A, &err), 0);
	cr_assert_not_null(strstr(err.msg, "post-copy"), "%s", err.msg);
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	cr_assert_str_eq(phase(A), "postcopy");

	complete(A);
}

/* ---- the policy ---- */

static bool
paused_here(struct fh *hh, const void *uuid)
{
	struct wk_hv_domain_info info;

	(void)hh;
	return fake_hv_get_domain(FH_SRC_URI, uuid, &info) && info.state == WK_HV_STATE_PAUSED;
}

/* A migration that cannot converge (the nonconverging trace, played in
 * fast motion) of a 1 GiB guest on a worker with libvirt_opts, post-copy
 * refused by the hypervisor when refuse_postcopy.  Returns when it was
 * accepted and its pre call answered. */
static uint64_t
start_struggling_with(
    struct wk_job_sample *trace, size_t max, const char *libvirt_opts, bool refuse_postcopy)
{
	struct fake_mig_step step = {.kind = FAKE_MIG_HANG, .step_ms = 50};
	struct mig *m;
	uint64_t t0;

	step.trace_len = fh_load_trace("nonconverging", trace, max);
	step.trace = trace;
	cr_assert_gt(step.trace_len, 10);
	start(libvirt_opts);
	fake_hv_script(A, &step);
	if (refuse_postcopy)
		fake_hv_fail_always("start_postcopy", -EINVAL,
		    "switch to post-copy: internal error: unable to execute QEMU command "
		    "'migrate-start-postcopy'");
	accept_cast(A);
	/* A 1 GiB guest: the completion timeout per GiB is the deadline. */
	m = mig_find(h->flow, A, ROLE_SOURCE);
	cr_assert_not_null(m);
	m->policy.data_bytes = 1ULL << 30;
	t0 = wk_now_ms();
	cr_assert(fh_answer_pre(h, A));
	return t0;
}

/* The same with a 1 s deadline, force_complete at the timeout, and
 * post-copy permitted but refused by the hypervisor. */
static uint64_t
start_struggling(struct wk_job_sample *trace, size_t max)
{
	return start_struggling_with(trace, max,
	    "live_migration_permit_post_copy = true;\n"
	    "live_migration_timeout_action = \"force_complete\";\n"
	    "live_migration_completion_timeout = 1;",
	    true);
}

/* Post-copy and pausing both refused: the deadline still ends it (abort). */
Test(wk_flow, failed_actions_still_end_at_the_deadline)
{
	static struct wk_job_sample trace[128];
	uint64_t t0;

	t0 = start_struggling(trace, 128);
	fake_hv_fail_always("suspend", -EINVAL, "suspend: internal error: cannot stop the CPUs");
	cr_assert(fh_wait_event(h, ROLLBACK_END, A, 1, 8000), "the migration did not end");
	cr_assert_geq(wk_now_ms() - t0, 1000, "ended before its deadline");
	cr_assert_lt(wk_now_ms() - t0, 5000, "ended long after its deadline");
	/* Each refused action was tried and retried, then the next one ended it. */
	cr_assert_geq(fake_hv_calls("start_postcopy", A), 2);
	cr_assert_geq(fake_hv_calls("suspend", A), 2);
	cr_assert_eq(fake_hv_calls("abort", A), 1);
	cr_assert_geq(fh_count(h, STRUGGLING, A), 1);
	assert_rolled_back(A);
}

/* Post-copy refused: the guest is paused instead, and then completes. */
Test(wk_flow, refused_postcopy_falls_back_to_pause)
{
	static struct wk_job_sample trace[128];
	struct wk_hv_domain_info info;

	start_struggling(trace, 128);
	cr_assert(fh_pump_until(h, paused_here, A, 8000), "the guest was not paused");
	cr_assert_geq(fake_hv_calls("start_postcopy", A), 2);
	cr_assert_str_eq(phase(A), "paused");
	/* A paused guest stops dirtying memory: the migration converges. */
	complete(A);
	cr_assert(fake_hv_get_domain(FH_DST_URI, A, &info));
	cr_assert_eq(fake_hv_calls("abort", A), 0);
}

/* uuid's record of role in list_migrations (new reference), or NULL. */
static json_t *
listed(const char *uuid, const char *role)
{
	json_t *list = fh_list(h), *e, *found = NULL;
	size_t i;

	json_array_foreach (list, i, e)
		if (strcmp(json_string_value(json_object_get(e, "instance_uuid")), uuid) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "role")), role) == 0)
			found = json_incref(e);
	json_decref(list);
	return found;
}

static bool
listed_struggling(struct fh *hh, const void *uuid)
{
	json_t *e = listed(uuid, "source");
	bool yes = e != NULL && json_is_true(json_object_get(e, "struggling"));

	(void)hh;
	json_decref(e);
	return yes;
}

/* list_migrations shows what the policy thinks (verdict, reasons, what it
 * would do next and why) and how long the completion timeout leaves. */
Test(wk_flow, list_shows_the_policy_verdict_and_the_deadline)
{
	static struct wk_job_sample trace[128];
	struct wk_err err = {{0}};
	json_t *e, *reasons, *v;
	json_int_t left;
	size_t i;

	/* 60 s per GiB of a 1 GiB guest: a 60 s deadline, far away. */
	start_struggling_with(trace, 128,
	    "live_migration_permit_post_copy = false;\n"
	    "live_migration_timeout_action = \"abort\";\n"
	    "live_migration_completion_timeout = 60;",
	    false);
	e = listed(A, "source");
	cr_assert_not_null(e);
	cr_assert_str_eq(json_string_value(json_object_get(e, "source_host")), FH_HOST);
	cr_assert_eq(json_integer_value(json_object_get(e, "deadline_ms")), 60000);
	cr_assert(json_object_get(e, "prediction") != NULL, "prediction missing");
	json_decref(e);

	cr_assert(fh_pump_until(h, listed_struggling, A, 8000), "never listed as struggling");
	e = listed(A, "source");
	reasons = json_object_get(e, "reasons");
	cr_assert(json_is_array(reasons) && json_array_size(reasons) > 0);
	json_array_foreach (reasons, i, v)
		cr_assert(json_is_string(v));
	cr_assert_str_eq(json_string_value(json_object_get(e, "phase")), "precopy");
	cr_assert(json_is_string(json_object_get(e, "planned_action")));
	cr_assert(json_is_string(json_object_get(e, "action_reason")));
	cr_assert_geq(json_integer_value(json_object_get(e, "transfer_rate_bytes_per_second")), 0);
	v = json_object_get(e, "seconds_left");
	cr_assert(json_is_integer(v), "seconds_left is not a number");
	left = json_integer_value(v);
	cr_assert(left > 0 && left <= 60, "seconds_left %lld", (long long)left);
	/* the predictor's view of the newest sample (1.1), as the struggling
	 * notification's prediction has it */
	v = json_object_get(e, "prediction");
	cr_assert(json_is_object(v), "no prediction on a sampled migration");
	cr_assert_eq(json_object_size(v), 7);
	cr_assert(json_is_string(json_object_get(v, "outlook")));
	cr_assert(json_is_integer(json_object_get(v, "confidence_pct")));
	cr_assert(strcmp(json_string_value(json_object_get(v, "outlook")), "unknown") == 0 ||
	              strcmp(json_string_value(json_object_get(v, "outlook")), "converges") == 0 ||
	              strcmp(json_string_value(json_object_get(v, "outlook")), "struggles") == 0,
	    "outlook %s", json_string_value(json_object_get(v, "outlook")));
	cr_assert_gt(json_integer_value(json_object_get(v, "judged_max_downtime_ms")), 0);
	json_decref(e);

	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	assert_rolled_back(A);
}

/* ---- lost replies ---- */

Test(wk_flow, lost_pre_reply_rolls_back)
{
	start(NULL);
	accept_cast(A);
	cr_assert(fh_wait_call(h, "pre_live_migration", A, WAIT_MS) >= 0);
	fh_pump(h, 50);
	cr_assert_str_eq(phase(A), "preparing");

	fh_expire_calls(h);
	assert_rolled_back(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 0);
	/* The destination may have reserved before the answer got lost. */
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 1);
	cr_assert_eq(wk_flow_active(h->flow), 0);
}

Test(wk_flow, lost_post_reply_still_posts_once)
{
	start(NULL);
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_call(h, "post_live_migration_at_destination", A, WAIT_MS) >= 0);

	fh_expire_calls(h);
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	assert_migrated(A);
}

Test(wk_flow, pre_failure_rolls_back)
{
	start(NULL);
	accept_cast(A);
	fh_reply_failure(h, fh_wait_call(h, "pre_live_migration", A, WAIT_MS),
	    "MigrationPreCheckError", "Migration pre-check error: no room");
	assert_rolled_back(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 0);
}

/* ---- post-copy breaks ---- */

static json_t *
stream_broken_warning(const char *uuid)
{
	for (size_t i = 0; i < fh_count(h, STRUGGLING, uuid); i++) {
		json_t *data = fh_event_data(h, STRUGGLING, uuid, i);
		json_t *reasons = json_object_get(data, "reasons");

		if (json_array_size(reasons) == 1 &&
		    strcmp(json_string_value(json_array_get(reasons, 0)),
		        "postcopy_stream_broken") == 0) {
			cr_assert_str_eq(json_string_value(json_object_get(
			                     fh_event(h, STRUGGLING, uuid, i), "priority")),
			    "WARN");
			return data;
		}
	}
	return NULL;
}

static bool
stream_broke(struct fh *hh, const void *uuid)
{
	(void)hh;
	return stream_broken_warning(uuid) != NULL;
}

Test(wk_flow, broken_postcopy_recovered)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY, .duration_ms = 50};

	start("live_migration_permit_post_copy = true;");
	fake_hv_script(A, &brk);
	script(A, FAKE_MIG_COMPLETE); /* the resume */
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_pump_until(h, stream_broke, A, WAIT_MS), "no postcopy_stream_broken warning");
	cr_assert(fh_answer_post(h, A));
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	cr_assert_geq(fake_hv_calls("resume_postcopy", A), 1);
	cr_assert_eq(fh_count(h, PC_FAILED, A), 0);
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 0);
	assert_migrated(A);
}

Test(wk_flow, broken_postcopy_not_recovered_waits_for_an_operator)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY, .duration_ms = 50};
	struct wk_err err = {{0}};
	json_t *result = NULL, *inner;

	start("live_migration_permit_post_copy = true;");
	/* Time enough between the break and the first resume to lose the
	 * destination's QEMU. */
	wk_migrate_set_recovery(h->migrate, 5, 300);
	fake_hv_script(A, &brk);
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_pump_until(h, stream_broke, A, WAIT_MS), "no postcopy_stream_broken warning");
	fake_hv_remove_domain(FH_DST_URI, A);

	cr_assert(fh_wait_event(h, PC_FAILED, A, 1, GONE_WAIT_MS), "no postcopy_failed");
	inner = fh_event(h, PC_FAILED, A, 0);
	cr_assert_str_eq(json_string_value(json_object_get(inner, "priority")), "ERROR");
	wait_phase(A, "postcopy_failed");
	fh_pump(h, 100);
	/* Never a rollback: the guest's newest pages were on the destination. */
	cr_assert_eq(fh_count(h, POST_END, A), 0);
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 0);
	cr_assert_eq(fh_source_terminals(h, A), 1);
	cr_assert_lt(fh_abort(h, A, &err), 0, "a split guest cannot be aborted");

	/* The operator brought the destination's QEMU back and asks again. */
	fake_hv_set_domain(FH_DST_URI, A, WK_HV_STATE_PAUSED, WK_HV_REASON_POSTCOPY_FAILED);
	cr_assert_eq(fh_recover_migration(h, A, &result, &err), 0, "%s", err.msg);
	cr_assert_str_eq(json_string_value(json_object_get(result, "status")), "recovering");
	json_decref(result);
	cr_assert(fh_answer_post(h, A), "the recovered migration was not posted");
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	cr_assert_eq(fh_count(h, POST_END, A), 1);
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	cr_assert_str_eq(phase(A), "");
	cr_assert(fake_hv_get_domain(FH_DST_URI, A, NULL));
	cr_assert_not(fake_hv_get_domain(FH_SRC_URI, A, NULL));
}

/* ---- restarts: the worker dies (no wk_flow_stop) and starts again ---- */

Test(wk_flow, restart_while_queued)
{
	start("max_concurrent_live_migrations = 1;");
	migrating(A);
	accept_cast(B);
	cr_assert_str_eq(phase(B), "queued");

	cr_assert_eq(fh_restart(h), 2);
	fh_pump(h, 100);
	cr_assert_str_eq(phase(A), "precopy", "the running migration was not re-adopted");
	cr_assert_str_eq(phase(B), "queued", "the queue order was lost");

	complete(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 1, "a re-adopted migration was started again");
	run_to_post(B);
}

Test(wk_flow, restart_while_preparing)
{
	start(NULL);
	accept_cast(A);
	cr_assert(fh_wait_call(h, "pre_live_migration", A, WAIT_MS) >= 0);

	cr_assert_eq(fh_restart(h), 1);
	/* Nothing reached libvirt: the new worker asks the destination again. */
	run_to_post(A);
	cr_assert_eq(fh_requests(h, "pre_live_migration", A), 2);
	cr_assert_eq(fake_hv_calls("migrate", A), 1);
}

Test(wk_flow, restart_while_running)
{
	start(NULL);
	migrating(A);

	cr_assert_eq(fh_restart(h), 1);
	wait_phase(A, "precopy");
	complete(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 1, "the migration was started twice");
	cr_assert_eq(fh_requests(h, "pre_live_migration", A), 1);
}

Test(wk_flow, restart_while_completing)
{
	start(NULL);
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_call(h, "post_live_migration_at_destination", A, WAIT_MS) >= 0);
	cr_assert_str_eq(phase(A), "completing");

	cr_assert_eq(fh_restart(h), 1);
	cr_assert(fh_answer_post(h, A), "the restarted worker did not post");
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	assert_migrated(A);
	cr_assert_eq(fh_requests(h, "post_live_migration_at_destination", A), 2);
}

Test(wk_flow, restart_after_postcopy_failed)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY, .duration_ms = 50};
	struct wk_err err = {{0}};
	json_t *result = NULL;

	start("live_migration_permit_post_copy = true;");
	wk_migrate_set_recovery(h->migrate, 5, 300);
	fake_hv_script(A, &brk);
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_pump_until(h, stream_broke, A, WAIT_MS));
	fake_hv_remove_domain(FH_DST_URI, A);
	cr_assert(fh_wait_event(h, PC_FAILED, A, 1, GONE_WAIT_MS), "no postcopy_failed");
	wait_phase(A, "postcopy_failed");

	cr_assert_eq(fh_restart(h), 1);
	cr_assert_str_eq(phase(A), "postcopy_failed", "the split guest was forgotten");
	fh_pump(h, 100);
	cr_assert_eq(fh_source_terminals(h, A), 1, "the restart said more");
	fake_hv_set_domain(FH_DST_URI, A, WK_HV_STATE_PAUSED, WK_HV_REASON_POSTCOPY_FAILED);
	cr_assert_eq(fh_recover_migration(h, A, &result, &err), 0, "%s", err.msg);
	json_decref(result);
	cr_assert(fh_answer_post(h, A));
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	cr_assert_str_eq(phase(A), "");
}

/* ---- the destination's side ---- */

static json_t *
pre_args(const char *uuid)
{
	json_t *md =
	    json_deep_copy(json_object_get(json_object_get(h->cast_inner, "args"), "migrate_data"));

	return json_pack(
	    "{s:o,s:n,s:o}", "instance", fh_instance(h, uuid), "disk", "migrate_data", md);
}

/* This host is the destination: the guest is elsewhere until it arrives
 * (pre_live_migration refuses a guest that already runs here). */
static void
reserve(const char *uuid)
{
	struct wk_err err = {{0}};
	json_t *result = NULL;

	fake_hv_remove_domain(FH_SRC_URI, uuid);

	cr_assert_eq(fh_request(h, wk_flow_pre_live_migration, "pre_live_migration", pre_args(uuid),
	                 true, "req-src", &result, &err),
	    0, "%s", err.msg);
	cr_assert_str_eq(
	    json_string_value(json_object_get(rpc_nova_object_data(result), "target_connect_addr")),
	    FH_HOST);
	json_decref(result);
	cr_assert_eq(fh_count(h, "instance.live_migration_pre.start", uuid), 1);
	cr_assert_eq(fh_count(h, "instance.live_migration_pre.end", uuid), 1);
	cr_assert_str_eq(fh_phase(h, uuid, "destination"), "inbound");
}

/* Ends uuid's reservation with method (post or rollback at destination):
 * the record goes, with exactly one terminal notification, end_event. */
static void
end_inbound(wk_flow_handler fn, const char *method, const char *end_event, const char *uuid)
{
	struct wk_err err = {{0}};

	cr_assert_eq(
	    fh_request(h, fn, method,
	        json_pack("{s:o,s:b}", "instance", fh_instance(h, uuid), "block_migration", 0),
	        true, "req-src", NULL, &err),
	    0, "%s", err.msg);
	cr_assert_str_eq(fh_phase(h, uuid, "destination"), "");
	cr_assert_eq(fh_count(h, end_event, uuid), 1);
	cr_assert_eq(fh_count(h, "instance.live_migration_post_dest.end", uuid) +
	                 fh_count(h, "instance.live_migration_rollback_dest.end", uuid),
	    1);
}

static void
post_dest(const char *uuid)
{
	fh_add_guest(uuid); /* it arrived */
	end_inbound(wk_flow_post_at_destination, "post_live_migration_at_destination",
	    "instance.live_migration_post_dest.end", uuid);
}

static void
rollback_dest(const char *uuid)
{
	end_inbound(wk_flow_rollback_at_destination, "rollback_live_migration_at_destination",
	    "instance.live_migration_rollback_dest.end", uuid);
}

Test(wk_flow, destination_reserves_then_posts)
{
	start(NULL);
	reserve(A);
	post_dest(A);
}

Test(wk_flow, destination_reserves_then_rolls_back)
{
	start(NULL);
	reserve(A);
	rollback_dest(A);
}

/* A destination record names the source (to ask it for the figures) and
 * has no policy of its own. */
Test(wk_flow, list_names_the_source_of_an_inbound_migration)
{
	json_t *e, *inst;

	start(NULL);
	reserve(A);
	e = listed(A, "destination");
	cr_assert_not_null(e);
	inst = fh_instance(h, A);
	cr_assert_not_null(wk_flow_obj_str(inst, "host"));
	cr_assert_str_eq(
	    json_string_value(json_object_get(e, "source_host")), wk_flow_obj_str(inst, "host"));
	json_decref(inst);
	cr_assert(json_is_false(json_object_get(e, "struggling")));
	cr_assert_eq(json_array_size(json_object_get(e, "reasons")), 0);
	cr_assert(json_is_null(json_object_get(e, "seconds_left")));
	cr_assert(json_is_null(json_object_get(e, "planned_action")));
	cr_assert_eq(json_integer_value(json_object_get(e, "deadline_ms")), -1);
	cr_assert(json_is_null(json_object_get(e, "prediction")));
	json_decref(e);
}

Test(wk_flow, destination_inbound_slots_are_limited)
{
	struct wk_err err = {{0}};

	start("max_concurrent_inbound_migrations = 1;");
	reserve(A);
	fake_hv_remove_domain(FH_SRC_URI, B); /* B is still on its source too */
	cr_assert_eq(fh_request(h, wk_flow_pre_live_migration, "pre_live_migration", pre_args(B),
	                 true, "req-src-b", NULL, &err),
	    -EAGAIN);
	cr_assert_not_null(strstr(err.msg, NO_INBOUND_SLOT), "%s", err.msg);
	cr_assert_eq(fh_count(h, "instance.live_migration_pre.start", B), 0);
	rollback_dest(A);
	reserve(B);
	post_dest(B);
}

Test(wk_flow, restart_with_an_inbound_reservation)
{
	start(NULL);
	reserve(A);
	cr_assert_eq(fh_restart(h), 1);
	cr_assert_str_eq(fh_phase(h, A, "destination"), "inbound", "the reservation was lost");
	fh_pump(h, 50);
	post_dest(A);
}

/* The source asks a destination with no free slot again later; the
 * migration waits in the queue meanwhile. */
Test(wk_flow, destination_without_a_slot_is_asked_again)
{
	struct mig *m;

	start(NULL);
	accept_cast(A);
	fh_reply_failure(h, fh_wait_call(h, "pre_live_migration", A, WAIT_MS), "MigrationError",
	    NO_INBOUND_SLOT " on 'host2'");
	fh_turn(h);
	cr_assert_str_eq(phase(A), "queued");
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0);
	m = mig_find(h->flow, A, ROLE_SOURCE);
	cr_assert_not_null(m);
	m->retry_at_ms = wk_now_ms(); /* instead of waiting the 2 s */
	run_to_post(A);
	cr_assert_eq(fh_requests(h, "pre_live_migration", A), 2);
}

/* Two migrations to one full destination keep their order: while the
 * older waits to ask again, the younger does not take the slot it waits
 * for (the outbound slot the older gave back is free meanwhile). */
Test(wk_flow, full_destination_keeps_the_queue_order)
{
	struct mig *m;

	start("max_concurrent_live_migrations = 1;");
	accept_cast(A);
	accept_cast(B);
	fh_reply_failure(h, fh_wait_call(h, "pre_live_migration", A, WAIT_MS), "MigrationError",
	    NO_INBOUND_SLOT " on 'host2'");
	fh_pump(h, 200);
	cr_assert_str_eq(phase(A), "queued");
	cr_assert_str_eq(phase(B), "queued");
	cr_assert_eq(fh_requests(h, "pre_live_migration", B), 0, "B overtook A");
	m = mig_find(h->flow, A, ROLE_SOURCE);
	cr_assert_not_null(m);
	m->retry_at_ms = wk_now_ms(); /* instead of waiting the 2 s */
	run_to_post(A);
	cr_assert_eq(fh_requests(h, "pre_live_migration", A), 2);
	run_to_post(B);
	cr_assert_eq(fh_requests(h, "pre_live_migration", B), 1);
}

/* ---- native TLS ---- */

/* The destination's certificate names its host; the stream goes to
 * target_connect_addr: when they differ, QEMU is told the name. */
Test(wk_flow, native_tls_names_the_destination_host_when_the_address_differs)
{
	static const char why[] = "operation failed: job 'migration out' failed: The certificate "
	                          "hasn't got a known issuer";
	struct fake_mig_step step = {.kind = FAKE_MIG_FAIL, .r = -EIO, .msg = why};
	struct wk_hv_migrate_params p;
	json_t *md, *fault;
	long idx;

	start("live_migration_with_native_tls = true;");
	fake_hv_script(A, &step);
	accept_cast(A);
	idx = fh_wait_call(h, "pre_live_migration", A, WAIT_MS);
	cr_assert_geq(idx, 0);
	md = rpc_nova_object("LibvirtLiveMigrateData", "nova", "1.10",
	    json_pack("{s:s}", "target_connect_addr", "192.0.2.7"));
	cr_assert_not_null(md);
	fh_reply(h, idx, md);

	/* A failed migration: rolled back, and rollback.end says why. */
	assert_rolled_back(A);
	cr_assert(fake_hv_last_params(A, &p));
	cr_assert(p.tls);
	cr_assert_str_eq(p.tls_destination, FH_DEST);
	cr_assert(json_is_null(json_object_get(
	    fh_event_data(h, "instance.live_migration_rollback.start", A, 0), "fault")));
	fault =
	    rpc_nova_object_data(json_object_get(fh_event_data(h, ROLLBACK_END, A, 0), "fault"));
	cr_assert_not_null(fault, "rollback.end without a fault");
	cr_assert_str_eq(json_string_value(json_object_get(fault, "exception")), "MigrationError");
	cr_assert_not_null(
	    strstr(json_string_value(json_object_get(fault, "exception_message")), why));
}

/* The address is the host's name: QEMU checks that name itself. */
Test(wk_flow, native_tls_to_the_host_name_needs_no_destination_name)
{
	struct wk_hv_migrate_params p;

	start("live_migration_with_native_tls = true;");
	migrating(A);
	cr_assert(fake_hv_last_params(A, &p));
	cr_assert(p.tls);
	cr_assert_null(p.tls_destination);
	complete(A);
}

/* ---- more restarts and refusals ---- */

/* libvirtd finished the migration while no worker ran: the new worker
 * reads where the guest is and posts it. */
Test(wk_flow, restart_after_libvirt_finished_meanwhile)
{
	start(NULL);
	migrating(A);
	release(A, FAKE_MIG_COMPLETE);
	cr_assert(fh_pump_until(h, on_destination, A, WAIT_MS));

	cr_assert_eq(fh_restart(h), 1);
	cr_assert(fh_answer_post(h, A));
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	assert_migrated(A);
	cr_assert_eq(fake_hv_calls("migrate", A), 1);
}

/* ... or failed meanwhile: the guest is still here, so it is rolled back. */
Test(wk_flow, restart_after_libvirt_failed_meanwhile)
{
	start(NULL);
	migrating(A);
	release(A, FAKE_MIG_FAIL);

	cr_assert_eq(fh_restart(h), 1);
	assert_rolled_back(A);
	cr_assert_eq(fh_requests(h, "rollback_live_migration_at_destination", A), 1);
}

/* A clean stop keeps what had not started in the journal (no rollback);
 * the next start carries it on. */
Test(wk_flow, stop_keeps_an_unstarted_migration_for_the_next_start)
{
	struct wk_err err = {{0}};

	start(NULL);
	accept_cast(A);
	cr_assert(fh_wait_call(h, "pre_live_migration", A, WAIT_MS) >= 0);
	wk_flow_stop(h->flow);
	cr_assert_eq(fh_live_migration(h, B, &err), -ESHUTDOWN);
	cr_assert_str_eq(phase(B), "");
	fh_pump(h, 50);
	cr_assert_eq(fh_count(h, ROLLBACK_END, A), 0, "a kept migration was rolled back");

	cr_assert_eq(fh_restart(h), 1);
	run_to_post(A);
}

Test(wk_flow, completing_migration_cannot_be_aborted_or_forced)
{
	struct wk_err err = {{0}};

	start(NULL);
	accept_cast(A);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_call(h, "post_live_migration_at_destination", A, WAIT_MS) >= 0);
	cr_assert_eq(fh_abort(h, A, &err), -EBUSY);
	cr_assert_eq(fh_force_complete(h, A, &err), -EBUSY);
	cr_assert(fh_answer_post(h, A));
	cr_assert(fh_wait_event(h, POST_END, A, 1, WAIT_MS));
	assert_migrated(A);
}

Test(wk_flow, guest_not_running_here_is_refused)
{
	struct wk_err err = {{0}};

	start(NULL);
	cr_assert_lt(fh_live_migration(h, "00000000-0000-4000-8000-000000000000", &err), 0);
	cr_assert_eq(wk_flow_active(h->flow), 0);
	cr_assert_eq(fh_requests(h, "pre_live_migration", NULL), 0);
}

/* A reservation no migration arrived for is released after its grace
 * time, so one lost rollback cannot close this host to inbound
 * migrations; one whose guest arrived is kept. */
Test(wk_flow, stale_inbound_reservation_is_released)
{
	const char *c = "8c4c7ea8-8172-4a66-9e6d-2a5e4d2d9143";

	start("max_concurrent_inbound_migrations = 2;");
	reserve(c);
	reserve(A);
	/* A's guest arrives and is still migrating in: its lease is renewed. */
	fake_hv_add_domain(FH_SRC_URI, A, WK_HV_STATE_PAUSED, 262144, true);
	fake_hv_set_domain(FH_SRC_URI, A, WK_HV_STATE_PAUSED, WK_HV_REASON_MIGRATING);
	wk_flow_tick(h->flow, wk_now_ms() + 10 * 60 * 1000);
	cr_assert_str_eq(fh_phase(h, c, "destination"), "", "the stale reservation was kept");
	cr_assert_eq(fh_count(h, "instance.live_migration_rollback_dest.end", c), 1,
	    "a released reservation says it was rolled back");
	cr_assert_str_eq(fh_phase(h, A, "destination"), "inbound");
	post_dest(A);
}
