/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_migrate: migration jobs on their own threads, and the hand-off of their
 * results to the main thread (Redis "bio", scaled down).
 *
 * Each job has two threads: one blocks in wk_hv_migrate() for the whole
 * migration, the other samples job statistics every interval.  Both hand
 * results back BY VALUE through a mutex-protected list and wake the main
 * thread through an eventfd.  No json_t crosses a thread boundary.
 *
 * Thread: every function is for the main thread, except that the job
 * threads live inside.  Lock: one mutex guards the event list (documented at
 * the field in wk_migrate.c).
 */
#ifndef WK_MIGRATE_H
#define WK_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "wk_hv.h"
#include "wk_progress.h"

typedef struct wk_migrate wk_migrate;

enum wk_mig_event_kind {
	WK_MIG_SAMPLE, /* sample holds fresh job statistics */
	WK_MIG_DONE,   /* the migration call returned: r and msg hold its outcome */
};

struct wk_mig_event {
	uint64_t job_id;
	enum wk_mig_event_kind kind;
	struct wk_job_sample sample;
	int r;         /* WK_MIG_DONE: 0 success, else -errno */
	char msg[256]; /* WK_MIG_DONE failure text from libvirt */
};

typedef void (*wk_migrate_on_event)(void *userdata, const struct wk_mig_event *ev);

/* Creates the job table over hv (borrowed; must outlive it). */
int wk_migrate_new(wk_hv *hv, wk_migrate **ret_migrate);

/* Frees.  Jobs still running are left to finish inside libvirtd (peer-to-peer
 * migrations outlive their client); their threads are detached.  NULL-safe. */
wk_migrate *wk_migrate_free(wk_migrate *m);

/* The eventfd to poll for POLLIN. */
int wk_migrate_fd(const wk_migrate *m);

/* Starts job job_id: copies p and request_id, spawns the threads.
 * interval_ms is the statistics period.  Returns 0 or -errno. */
int wk_migrate_start(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id);

/* Adopts the running migration of domain uuid that an earlier worker
 * process started (libvirtd kept it going): only the statistics thread runs;
 * it reports samples as usual and, once libvirt shows no active job, one
 * WK_MIG_DONE with r = 0 when the domain has left this host, else -EIO.
 * Returns 0 or -errno. */
int wk_migrate_adopt(wk_migrate *m, uint64_t job_id, const char *uuid, unsigned interval_ms,
    const char *request_id);

/* Delivers every queued event to on_event in order and reaps finished jobs.
 * Returns the number of events delivered. */
size_t wk_migrate_drain(wk_migrate *m, wk_migrate_on_event on_event, void *userdata);

/* Number of jobs whose migration call has not returned yet. */
size_t wk_migrate_running(const wk_migrate *m);

#endif
