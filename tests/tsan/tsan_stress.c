/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The threaded modules under ThreadSanitizer: many migrations at once on
 * the fake hypervisor (completing, failing, breaking in post-copy and being
 * resumed, adopted), their events drained by the main thread while it makes
 * bounded hypervisor calls.  A plain program, not a Criterion suite:
 * Criterion's sandbox cannot start under TSan's memory layout.  Exits 0
 * when every migration ended as scripted; TSan makes the run fail on a race.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "fake_hv.h"
#include "wk_migrate.h"

#define SRC "fake://host1"
#define DST "fake://host2"
#define N   24

static enum wk_mig_outcome got[N + 1];
static int done;

static void
on_event(void *userdata, const struct wk_mig_event *ev)
{
	(void)userdata;
	if (ev->kind == WK_MIG_DONE && ev->job_id >= 1 && ev->job_id <= N) {
		got[ev->job_id] = ev->outcome;
		done++;
	}
}

static void
uuid_of(int i, char *buf, size_t size)
{
	snprintf(buf, size, "00000000-0000-4000-8000-%012d", i);
}

int
main(void)
{
	enum wk_mig_outcome want[N + 1];
	struct wk_err err = {{0}};
	wk_migrate *mig;
	wk_hv *hv;
	int failures = 0;

	fake_hv_reset();
	if (wk_hv_open(&fake_hv_ops, SRC, &hv, &err) < 0 || wk_migrate_new(hv, &mig) < 0 ||
	    wk_hv_bound_calls(hv, 500) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return 1;
	}
	wk_migrate_set_recovery(mig, 10, 5);
	for (int i = 1; i <= N; i++) {
		struct fake_mig_step brk = {.kind = FAKE_MIG_BREAK_POSTCOPY, .duration_ms = 20};
		struct fake_mig_step fail = {
		    .kind = FAKE_MIG_FAIL, .r = -EIO, .msg = "x", .duration_ms = 10};
		struct fake_mig_step ok = {.kind = FAKE_MIG_COMPLETE, .duration_ms = 30};
		struct wk_hv_migrate_params p = {
		    .dest_uri = DST, .persistent = true, .postcopy = true};
		char uuid[64];

		uuid_of(i, uuid, sizeof(uuid));
		p.uuid = uuid;
		switch (i % 4) {
		case 0: /* completes */
			fake_hv_add_domain(SRC, uuid, WK_HV_STATE_RUNNING, 1024, true);
			fake_hv_script(uuid, &ok);
			want[i] = WK_MIG_MIGRATED;
			break;
		case 1: /* fails: stays on the source */
			fake_hv_add_domain(SRC, uuid, WK_HV_STATE_RUNNING, 1024, true);
			fake_hv_script(uuid, &fail);
			want[i] = WK_MIG_ON_SOURCE;
			break;
		case 2: /* breaks in post-copy, one refused resume, then recovered */
			fake_hv_add_domain(SRC, uuid, WK_HV_STATE_RUNNING, 1024, true);
			fake_hv_script(uuid, &brk);
			fake_hv_script(uuid, &fail);
			fake_hv_script(uuid, &ok);
			want[i] = WK_MIG_MIGRATED;
			break;
		case 3: /* adopted while broken (a restarted worker) */
			fake_hv_set_domain(
			    SRC, uuid, WK_HV_STATE_PAUSED, WK_HV_REASON_POSTCOPY_FAILED);
			fake_hv_set_domain(
			    DST, uuid, WK_HV_STATE_RUNNING, WK_HV_REASON_POSTCOPY_FAILED);
			fake_hv_script(uuid, &ok);
			want[i] = WK_MIG_MIGRATED;
			if (wk_migrate_adopt(mig, (uint64_t)i, &p, 5, NULL) < 0)
				return 1;
			continue;
		}
		if (wk_migrate_start(mig, (uint64_t)i, &p, 5, NULL) < 0)
			return 1;
	}
	for (uint64_t until = wk_now_ms() + 60000; done < N && wk_now_ms() < until;) {
		struct pollfd pfd = {.fd = wk_migrate_fd(mig), .events = POLLIN};
		struct wk_hv_domain_info info;
		char uuid[64];

		poll(&pfd, 1, 10);
		wk_migrate_drain(mig, on_event, NULL);
		/* the main thread's bounded calls race the job threads */
		uuid_of((int)(wk_now_ms() % N) + 1, uuid, sizeof(uuid));
		(void)wk_hv_domain_info(hv, uuid, &info, &err);
		/* and so do its sample-period changes (a switch pending, then not) */
		wk_migrate_set_interval(mig, wk_now_ms() % N + 1, wk_now_ms() % 2 ? 2 : 0);
	}
	for (int i = 1; i <= N; i++)
		if (got[i] != want[i]) {
			fprintf(stderr, "migration %d: outcome %d, want %d\n", i, got[i], want[i]);
			failures++;
		}
	printf("%d migrations, %d ended as scripted\n", N, done - failures);
	mig = wk_migrate_free(mig);
	hv = wk_hv_close(hv);
	return done == N && failures == 0 ? 0 : 1;
}
