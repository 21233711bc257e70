/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole migration flow under ThreadSanitizer: the flow harness
 * (tests/support/flow_harness.h: a real wk_flow, wk_migrate's threads over
 * the fake hypervisor, a journal, a tapped bus) through the paths whose
 * threads meet most: many migrations through a limited outbound queue, an
 * abort of a running migration, a broken post-copy resumed, a worker killed
 * and restarted while its migration runs.  The same paths as the Criterion
 * suite test_wk_flow.c, which cannot run under TSan (Criterion's sandbox
 * cannot start under TSan's memory layout).  Exits 0 when every path ended
 * as it must; TSan makes the run fail on a race.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_hv.h"
#include "flow_harness.h"

#define WAIT_MS  5000
#define POST_END "instance.live_migration_post.end"
#define ROLLBACK "instance.live_migration_rollback.end"
#define N        6

static int failures;

#define CHECK(cond, ...)                                                           \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "tsan_flow: %s:%d: ", __func__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			failures++;                                                \
			return;                                                    \
		}                                                                  \
	} while (0)

static void
uuid_of(int i, char *buf, size_t size)
{
	snprintf(buf, size, "5a5a5a5a-0000-4000-8000-%012d", i);
}

static void
script(const char *uuid, enum fake_mig_kind kind)
{
	struct fake_mig_step step = {.kind = kind};

	fake_hv_script(uuid, &step);
}

/* N migrations through two outbound slots: each is reserved, migrated and
 * posted once, in any order the queue gives. */
static void
queue_of_migrations(void)
{
	struct fh *h = fh_new("max_concurrent_live_migrations = 2;");
	char uuids[N][40];
	struct wk_err err = {{0}};

	for (int i = 0; i < N; i++) {
		uuid_of(i, uuids[i], sizeof(uuids[i]));
		fh_add_guest(uuids[i]);
		if (fh_live_migration(h, uuids[i], &err) < 0) {
			fprintf(stderr, "tsan_flow: live_migration: %s\n", err.msg);
			failures++;
			fh_free(h);
			return;
		}
	}
	for (int i = 0; i < N; i++) {
		bool ok = fh_answer_pre(h, uuids[i]) && fh_answer_post(h, uuids[i]) &&
		          fh_wait_event(h, POST_END, uuids[i], 1, WAIT_MS);

		if (!ok || fh_source_terminals(h, uuids[i]) != 1 ||
		    !fake_hv_get_domain(FH_DST_URI, uuids[i], NULL)) {
			fprintf(
			    stderr, "tsan_flow: migration %d did not end on the destination\n", i);
			failures++;
			break;
		}
	}
	fh_free(h);
}

static void
abort_running(struct fh *h)
{
	const char *u = "5a5a5a5a-0000-4000-8000-000000000101";
	struct wk_err err = {{0}};

	fh_add_guest(u);
	script(u, FAKE_MIG_HANG);
	CHECK(fh_live_migration(h, u, &err) == 0, "live_migration: %s", err.msg);
	CHECK(fh_answer_pre(h, u), "no pre_live_migration");
	CHECK(fh_wait_phase(h, u, "source", "precopy", WAIT_MS), "not running");
	CHECK(fh_abort(h, u, &err) == 0, "abort: %s", err.msg);
	CHECK(fh_wait_event(h, ROLLBACK, u, 1, WAIT_MS), "no rollback.end");
	CHECK(fh_source_terminals(h, u) == 1, "terminal notifications: %zu",
	    fh_source_terminals(h, u));
	CHECK(fake_hv_get_domain(FH_SRC_URI, u, NULL), "the guest left the source");
}

static void
broken_postcopy_resumed(struct fh *h)
{
	const char *u = "5a5a5a5a-0000-4000-8000-000000000102";
	struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY, .duration_ms = 50};
	struct wk_err err = {{0}};

	fh_add_guest(u);
	fake_hv_script(u, &brk);
	script(u, FAKE_MIG_COMPLETE); /* the resume */
	CHECK(fh_live_migration(h, u, &err) == 0, "live_migration: %s", err.msg);
	CHECK(fh_answer_pre(h, u), "no pre_live_migration");
	CHECK(fh_answer_post(h, u), "no post_live_migration_at_destination");
	CHECK(fh_wait_event(h, POST_END, u, 1, WAIT_MS), "no post.end");
	CHECK(fake_hv_calls("resume_postcopy", u) >= 1, "never resumed");
	CHECK(fh_source_terminals(h, u) == 1, "terminal notifications: %zu",
	    fh_source_terminals(h, u));
}

static void
restart_while_running(struct fh *h)
{
	const char *u = "5a5a5a5a-0000-4000-8000-000000000103";
	struct fake_mig_step done = {.kind = FAKE_MIG_COMPLETE};
	struct wk_err err = {{0}};

	fh_add_guest(u);
	script(u, FAKE_MIG_HANG);
	CHECK(fh_live_migration(h, u, &err) == 0, "live_migration: %s", err.msg);
	CHECK(fh_answer_pre(h, u), "no pre_live_migration");
	CHECK(fh_wait_phase(h, u, "source", "precopy", WAIT_MS), "not running");
	CHECK(fh_restart(h) == 1, "the journal did not give the migration back");
	CHECK(fh_wait_phase(h, u, "source", "precopy", WAIT_MS), "not re-adopted");
	fake_hv_release(u, &done);
	CHECK(fh_answer_post(h, u), "the restarted worker did not post");
	CHECK(fh_wait_event(h, POST_END, u, 1, WAIT_MS), "no post.end");
	CHECK(fake_hv_calls("migrate", u) == 1, "the migration was started twice");
}

static void
with_worker(const char *libvirt_opts, void (*path)(struct fh *h))
{
	struct fh *h = fh_new(libvirt_opts);

	path(h);
	fh_free(h);
}

int
main(void)
{
	queue_of_migrations();
	with_worker(NULL, abort_running);
	with_worker("live_migration_permit_post_copy = true;", broken_postcopy_resumed);
	with_worker(NULL, restart_while_running);
	if (failures != 0) {
		fprintf(stderr, "tsan_flow: %d path(s) failed\n", failures);
		return 1;
	}
	printf("tsan_flow: every path ended as it must\n");
	return 0;
}
