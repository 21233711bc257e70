/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_migrate on the fake hypervisor: outcomes read from both hosts, and the
 * recovery of a broken post-copy migration (started or adopted).
 */
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "fake_hv.h"
#include "wk_migrate.h"

#define SRC  "fake://host1"
#define DST  "fake://host2"
#define UUID "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f"

static wk_hv *hv;
static wk_migrate *mig;
static struct wk_mig_event events[256];
static size_t nevents;

static void
collect(void *userdata, const struct wk_mig_event *ev)
{
	(void)userdata;
	/* samples come every 20 ms: keep only what a test asserts on */
	if (ev->kind != WK_MIG_SAMPLE && nevents < 256)
		events[nevents++] = *ev;
}

static void
setup(void)
{
	struct wk_err err = {{0}};

	fake_hv_reset();
	nevents = 0;
	fake_hv_add_domain(SRC, UUID, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(wk_hv_open(&fake_hv_ops, SRC, &hv, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_migrate_new(hv, &mig), 0);
	wk_migrate_set_recovery(mig, 5, 20);
}

static void
teardown(void)
{
	mig = wk_migrate_free(mig);
	hv = wk_hv_close(hv);
}

static struct wk_hv_migrate_params
params(bool postcopy)
{
	struct wk_hv_migrate_params p = {
	    .uuid = UUID, .dest_uri = DST, .persistent = true, .postcopy = postcopy};

	return p;
}

/* Drains events until the DONE of job 1 (or 10 s). */
static const struct wk_mig_event *
wait_done(void)
{
	uint64_t until = wk_now_ms() + 10000;

	while (wk_now_ms() < until) {
		struct pollfd p = {.fd = wk_migrate_fd(mig), .events = POLLIN};

		poll(&p, 1, 100);
		wk_migrate_drain(mig, collect, NULL);
		for (size_t i = 0; i < nevents; i++)
			if (events[i].kind == WK_MIG_DONE)
				return &events[i];
	}
	cr_assert_fail("no WK_MIG_DONE within 10 s");
	return NULL;
}

static size_t
count(enum wk_mig_event_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < nevents; i++)
		n += events[i].kind == kind;
	return n;
}

TestSuite(wk_migrate, .init = setup, .fini = teardown, .timeout = 30);

Test(wk_migrate, completed_migration_is_read_from_both_hosts)
{
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;

	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, "req-1"), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED);
	cr_assert_eq(ev->r, 0);
	cr_assert_str_eq(ev->source_state, "absent");
	cr_assert_str_eq(ev->dest_state, "running");
	cr_assert_geq(fake_hv_calls("remote_domain_info", UUID), 1);
	cr_assert_eq(wk_migrate_running(mig), 0);
}

Test(wk_migrate, failed_migration_leaves_the_guest_on_the_source)
{
	struct fake_mig_step fail = {.kind = FAKE_MIG_FAIL, .r = -EIO, .msg = "unable to connect"};
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;

	fake_hv_script(UUID, &fail);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_ON_SOURCE);
	cr_assert_eq(ev->r, -EIO);
	cr_assert(strstr(ev->msg, "unable to connect") != NULL, "%s", ev->msg);
	cr_assert_str_eq(ev->dest_state, "absent");
	cr_assert_eq(count(WK_MIG_RECOVERING), 0);
}

/* A call that returned an error while the guest really moved (libvirtd
 * finished the migration, the client's connection died): the outcome is
 * where the guest runs, not what the call returned. */
Test(wk_migrate, an_error_return_does_not_decide_the_outcome)
{
	struct fake_mig_step eof = {.kind = FAKE_MIG_COMPLETE,
	    .r = -EIO,
	    .msg = "End of file while reading data: Input/output error"};
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;

	fake_hv_script(UUID, &eof);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->r, -EIO);
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED);
	cr_assert_str_eq(ev->dest_state, "running");
}

Test(wk_migrate, broken_postcopy_is_resumed_until_it_completes)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY};
	struct fake_mig_step busy = {.kind = FAKE_MIG_FAIL,
	    .r = -EBUSY,
	    .msg = "Requested operation is not valid: QEMU reports migration is still running"};
	struct fake_mig_step done = {.kind = FAKE_MIG_COMPLETE};
	struct wk_hv_migrate_params p = params(true), last;
	const struct wk_mig_event *ev;

	fake_hv_script(UUID, &brk);
	fake_hv_script(UUID, &busy);
	fake_hv_script(UUID, &done);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED, "outcome %d: %s", ev->outcome, ev->msg);
	cr_assert_eq(ev->recovery_attempts, 2);
	cr_assert_eq(fake_hv_calls("resume_postcopy", UUID), 2);
	cr_assert_eq(count(WK_MIG_RECOVERING), 1);
	cr_assert_neq(ev->broke_at_ms, 0);
	/* The resume carries the original flags plus the resume flag. */
	cr_assert(fake_hv_last_params(UUID, &last));
	cr_assert(last.postcopy_resume);
	cr_assert(last.postcopy && last.persistent);
	for (size_t i = 0; i < nevents; i++)
		if (events[i].kind == WK_MIG_RECOVERING) {
			cr_assert(
			    strstr(events[i].msg, "post-copy phase") != NULL, "%s", events[i].msg);
			cr_assert_str_eq(events[i].source_state, "paused (postcopy_failed)");
		}
}

Test(wk_migrate, postcopy_without_destination_qemu_fails_after_one_resume)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY};
	struct fake_mig_step hang = {.kind = FAKE_MIG_HANG};
	struct wk_hv_migrate_params p = params(true);
	const struct wk_mig_event *ev;

	wk_migrate_set_recovery(mig, 5, 2000); /* no resume before the QEMU is gone */
	fake_hv_script(UUID, &hang);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	usleep(30000);
	fake_hv_release(UUID, &brk);
	usleep(30000);
	fake_hv_remove_domain(DST, UUID); /* the destination's QEMU was killed */
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_POSTCOPY_FAILED);
	cr_assert_str_eq(ev->source_state, "paused (postcopy_failed)");
	cr_assert_str_eq(ev->dest_state, "absent");
	cr_assert(fake_hv_get_domain(SRC, UUID, NULL), "the source keeps its half");
}

Test(wk_migrate, recovery_gives_up_at_its_deadline_and_says_so)
{
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY};
	struct fake_mig_step refused = {
	    .kind = FAKE_MIG_FAIL, .r = -EIO, .msg = "operation failed: destination not ready"};
	struct wk_hv_migrate_params p = params(true);
	const struct wk_mig_event *ev;

	wk_migrate_set_recovery(mig, 1, 20);
	fake_hv_script(UUID, &brk);
	for (int i = 0; i < 20; i++)
		fake_hv_script(UUID, &refused);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_POSTCOPY_FAILED);
	cr_assert_geq(ev->recovery_attempts, 2);
	cr_assert(strstr(ev->msg, "post-copy phase") != NULL, "%s", ev->msg);
	cr_assert(strstr(ev->msg, "destination not ready") != NULL, "%s", ev->msg);
	cr_assert_str_eq(ev->dest_state, "running (postcopy_failed)");
}

/* The worker was killed while the stream was broken: the next one adopts
 * the migration from the journal and recovers it the same way. */
Test(wk_migrate, adopted_broken_postcopy_is_recovered)
{
	struct wk_hv_migrate_params p = params(true);
	const struct wk_mig_event *ev;

	fake_hv_set_domain(SRC, UUID, WK_HV_STATE_PAUSED, WK_HV_REASON_POSTCOPY_FAILED);
	fake_hv_set_domain(DST, UUID, WK_HV_STATE_RUNNING, WK_HV_REASON_POSTCOPY_FAILED);
	cr_assert_eq(wk_migrate_adopt(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED);
	cr_assert_eq(fake_hv_calls("resume_postcopy", UUID), 1);
	cr_assert_eq(fake_hv_calls("migrate", UUID), 0, "an adopted job never migrates anew");
	cr_assert_eq(count(WK_MIG_RECOVERING), 1);
}

Test(wk_migrate, adopted_migration_that_ended_meanwhile_is_read_not_assumed)
{
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;

	/* It finished while no worker watched: the guest is on the destination. */
	fake_hv_remove_domain(SRC, UUID);
	fake_hv_add_domain(DST, UUID, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(wk_migrate_adopt(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED);

	/* And one that failed meanwhile: still here, nothing there. */
	nevents = 0;
	fake_hv_remove_domain(DST, UUID);
	fake_hv_add_domain(SRC, UUID, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(wk_migrate_adopt(mig, 2, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_ON_SOURCE);
}

Test(wk_migrate, lost_libvirt_connection_is_reopened_to_read_the_outcome)
{
	struct fake_mig_step lose = {.kind = FAKE_MIG_LOSE_CONNECTION};
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;

	fake_hv_script(UUID, &lose);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	usleep(100000);
	fake_hv_lose_connection(300); /* libvirtd back 300 ms later */
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_ON_SOURCE);
	cr_assert_eq(ev->r, -ENOTCONN);
	cr_assert_eq(wk_hv_ensure_connected(hv, NULL), 0, "the shared connection was reopened");
}

/* No access to the destination's libvirt (auth, TLS): the source alone
 * decides, at once, and only where it can (the guest gone from here). */
Test(wk_migrate, unreadable_destination_is_decided_from_the_source_at_once)
{
	struct wk_hv_migrate_params p = params(false);
	const struct wk_mig_event *ev;
	uint64_t t0 = wk_now_ms();

	fake_hv_fail_always("remote_domain_info", -EACCES, "authentication failed");
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 20, NULL), 0);
	ev = wait_done();
	cr_assert_eq(ev->outcome, WK_MIG_MIGRATED);
	cr_assert_lt(wk_now_ms() - t0, 5000, "no 30 s wait");
	cr_assert(strncmp(ev->dest_state, "unknown", 7) == 0, "%s", ev->dest_state);
}

static void
count_samples(void *userdata, const struct wk_mig_event *ev)
{
	if (ev->kind == WK_MIG_SAMPLE)
		(*(size_t *)userdata)++;
}

/* Samples delivered within ms milliseconds. */
static size_t
samples_within(unsigned ms)
{
	uint64_t until = wk_now_ms() + ms;
	size_t n = 0;

	while (wk_now_ms() < until) {
		struct pollfd p = {.fd = wk_migrate_fd(mig), .events = POLLIN};

		poll(&p, 1, 10);
		wk_migrate_drain(mig, count_samples, &n);
	}
	return n;
}

/* A pending switch asks for faster samples: the new period applies at
 * once, not after the old (long) one ends, and 0 brings the old one back. */
Test(wk_migrate, sample_period_changes_while_the_job_runs)
{
	struct fake_mig_step hang = {.kind = FAKE_MIG_HANG};
	struct fake_mig_step done = {.kind = FAKE_MIG_COMPLETE};
	struct wk_hv_migrate_params p = params(false);
	size_t slow, fast, back;

	fake_hv_script(UUID, &hang);
	cr_assert_eq(wk_migrate_start(mig, 1, &p, 5000, NULL), 0);
	slow = samples_within(400);
	wk_migrate_set_interval(mig, 1, 20);
	fast = samples_within(400);
	wk_migrate_set_interval(mig, 1, 0);
	samples_within(40); /* a sample already taken may still arrive */
	back = samples_within(400);
	fake_hv_release(UUID, &done);
	cr_assert_eq(wait_done()->outcome, WK_MIG_MIGRATED);
	cr_assert_eq(slow, 0, "a 5 s period gave %zu samples in 400 ms", slow);
	cr_assert_geq(fast, 3, "a 20 ms period gave %zu samples in 400 ms", fast);
	cr_assert_eq(back, 0, "back to 5 s, %zu samples in 400 ms", back);
}
