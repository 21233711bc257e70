/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_migrate: migration jobs on their own threads, and the hand-off of their
 * results to the main thread (Redis "bio", scaled down).
 *
 * Each job has two threads: one blocks in wk_hv_migrate() for the whole
 * migration (or, for an adopted one, waits for libvirt's job to end), the
 * other samples job statistics every interval.  Both hand results back BY
 * VALUE through a mutex-protected list and wake the main thread through an
 * eventfd.  No json_t crosses a thread boundary.
 *
 * The outcome is never taken from the return of the migrate call alone: when
 * the job ends, the run thread reads the domain on both hosts (this one and
 * the destination, over the migration's own destination URI) and reports
 * what they really run.  A migration whose post-copy stream broke (the
 * guest's memory split over both hosts, both paused or failed) is recovered
 * on that thread: the migrate call again with VIR_MIGRATE_POSTCOPY_RESUME on
 * a fresh connection, with a short backoff, until the recovery timeout.
 *
 * Thread: every function is for the main thread, except that the job
 * threads live inside.  Lock: one mutex guards the event list (documented at
 * the field in wk_migrate.c).
 */
#ifndef WK_MIGRATE_H
#define WK_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wk_hv.h"
#include "wk_progress.h"

typedef struct wk_migrate wk_migrate;

enum wk_mig_event_kind {
	WK_MIG_SAMPLE,     /* sample holds fresh job statistics */
	WK_MIG_RECOVERING, /* the post-copy stream broke; msg says how; recovery under way */
	WK_MIG_DONE,       /* the job ended: outcome says where the guest runs */
};

/* Where the guest runs once the job has ended, read from both hosts. */
enum wk_mig_outcome {
	WK_MIG_MIGRATED,        /* runs on the destination and no longer on this host */
	WK_MIG_ON_SOURCE,       /* still on this host, not on the destination */
	WK_MIG_POSTCOPY_FAILED, /* post-copy broke and was not recovered by the deadline */
	WK_MIG_LOST,            /* on neither host (destroyed from outside meanwhile) */
};

struct wk_mig_event {
	uint64_t job_id;
	enum wk_mig_event_kind kind;
	struct wk_job_sample sample;
	/* WK_MIG_DONE: outcome, r the last migrate call's result (0 or -errno) */
	enum wk_mig_outcome outcome;
	int r;
	char msg[256];         /* DONE: the last libvirt error seen; RECOVERING: the break */
	char source_state[48]; /* DONE, RECOVERING: e.g. "paused (postcopy_failed)", "absent" */
	char dest_state[48];
	int recovery_attempts; /* resume calls made */
	uint64_t broke_at_ms;  /* RECOVERING, DONE after a break: when the break was seen */
};

typedef void (*wk_migrate_on_event)(void *userdata, const struct wk_mig_event *ev);

/* Creates the job table over hv (borrowed; must outlive it). */
int wk_migrate_new(wk_hv *hv, wk_migrate **ret_migrate);

/* How long a broken post-copy migration is retried before it is reported
 * as failed (libvirt.live_migration_postcopy_recovery_timeout), and the
 * pause between resume attempts.  Defaults: 600 s, 500 ms. */
void wk_migrate_set_recovery(wk_migrate *m, unsigned timeout_s, unsigned backoff_ms);

/* Frees.  Jobs still running are left to finish inside libvirtd (peer-to-peer
 * migrations outlive their client); their threads are detached.  NULL-safe. */
wk_migrate *wk_migrate_free(wk_migrate *m);

/* The eventfd to poll for POLLIN. */
int wk_migrate_fd(const wk_migrate *m);

/* Starts job job_id: copies p and request_id, spawns the threads.
 * interval_ms is the statistics period.  Returns 0 or -errno. */
int wk_migrate_start(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id);

/* Adopts the migration of domain p->uuid that an earlier worker process
 * started (libvirtd kept it going, or its post-copy stream broke meanwhile):
 * no new migrate call; the run thread waits for libvirt's job to end, then
 * reads both hosts and recovers a broken post-copy with p's flags, exactly
 * as for a started job.  Returns 0 or -errno. */
int wk_migrate_adopt(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id);

/* Delivers every queued event to on_event in order and reaps finished jobs.
 * Returns the number of events delivered. */
size_t wk_migrate_drain(wk_migrate *m, wk_migrate_on_event on_event, void *userdata);

/* Sets job job_id's statistics period to interval_ms from now on (0: back
 * to the period it started with); the next sample comes one new period
 * from now.  Unknown jobs are ignored.  Main thread. */
void wk_migrate_set_interval(wk_migrate *m, uint64_t job_id, unsigned interval_ms);

/* Number of jobs whose run thread has not ended yet. */
size_t wk_migrate_running(const wk_migrate *m);

/* "running", "paused (postcopy_failed)", "absent" ...: for logs and payloads. */
const char *wk_migrate_state_text(
    int r, const struct wk_hv_domain_info *info, char *buf, size_t size);

#endif
