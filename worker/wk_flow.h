/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow: Nova's live-migration flow, on both ends.
 *
 * Source side: live_migration -> call pre_live_migration on the destination
 * -> run the libvirt migration on its own thread (wk_migrate) while progress
 * notifications go out -> post (call post_live_migration_at_destination) or
 * rollback (cast rollback_live_migration_at_destination), each with nova's
 * start/end notifications.  Destination side: pre_live_migration answers
 * with migrate_data carrying target_connect_addr; post/rollback at
 * destination emit their notifications and release what pre reserved.
 *
 * Every migration this host takes part in has one record here until it
 * ends.  Thread: main thread only.  This is part of the logging layer.
 */
#ifndef WK_FLOW_H
#define WK_FLOW_H

#include <stddef.h>

#include <jansson.h>

#include "rpc_msg.h"
#include "wk_bus.h"
#include "wk_conf.h"
#include "wk_hv.h"
#include "wk_journal.h"
#include "wk_migrate.h"
#include "wk_tuning.h"
#include "wk_util.h"

typedef struct wk_flow wk_flow;
struct wk_metrics_text;

/* Everything borrowed; must outlive the flow. */
struct wk_flow_deps {
	const struct wk_conf *conf;
	const struct wk_tuning *tuning; /* derived from conf (link_speed) */
	wk_bus *bus;
	wk_hv *hv;
	wk_migrate *migrate;
	wk_journal *journal; /* NULL: nothing survives a restart */
};

int wk_flow_new(const struct wk_flow_deps *deps, wk_flow **ret_flow);
wk_flow *wk_flow_free(wk_flow *flow);

/*
 * RPC handlers.  Each returns 0 and sets *ret_result to the call's result
 * (new reference, or NULL for None), or returns -errno with reterr saying
 * why in one line (the caller logs it and answers the sender), or
 * WK_FLOW_REQUEUE with reterr saying why: the request was not kept (its
 * journal record could not be written) and must not be acknowledged, but
 * put back on the queue to be handled again, with no answer or failure
 * notification (only live_migration does so).
 * instance_uuid (when the handler got that far) is written to
 * ret_instance_uuid so the caller can notify about a failed cast.
 */
#define WK_FLOW_REQUEUE 1

typedef int (*wk_flow_handler)(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);

int wk_flow_live_migration(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_force_complete(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_abort(wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_pre_live_migration(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_post_at_destination(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_rollback_at_destination(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
/* ferry's recover_migration (namespace ferry): retries the recovery of a
 * post-copy migration that ended postcopy_failed; answers once it started. */
int wk_flow_recover_migration(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);
int wk_flow_list_migrations(
    wk_flow *flow, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr);

/* A cast that failed before any migration existed: tells the sender where
 * it can see it (compute.exception, and rollback start/end when the
 * instance is known).  method and text are borrowed. */
void wk_flow_cast_failed(wk_flow *flow, const rpc_msg *msg, const char *method, const char *text);

/* Feeds one event from wk_migrate. */
void wk_flow_on_job_event(wk_flow *flow, const struct wk_mig_event *ev);

/* Migrations this host is still working on (either end). */
size_t wk_flow_active(const wk_flow *flow);

/* Appends the flow's Prometheus families to t (wk_metrics.h): migrations
 * ended by role and outcome, policy actions, the queue and the slots, and
 * per migration its phase, start time, struggling verdict and (source
 * side, once libvirt reported) its data figures, rates and iteration.
 * now_wall_s is the wall-clock time (start times are given as Unix time). */
void wk_flow_metrics(const wk_flow *flow, struct wk_metrics_text *t, double now_wall_s);

/* Time-driven work: checks the leases of inbound reservations, rolls back
 * queued migrations past libvirt.live_migration_queue_timeout, starts
 * queued migrations whose retry time has come.  Returns the ms until the
 * next such deadline, or -1 when none.  Call from the main loop. */
int wk_flow_tick(wk_flow *flow, uint64_t now_ms);

/* Carries on every migration the journal holds (called once, at start):
 * inbound reservations are kept, migrations that had not reached libvirt
 * are queued again, running ones are re-adopted from libvirtd, completed
 * ones are finished.  Returns how many, or -errno with reterr. */
int wk_flow_recover(wk_flow *flow, struct wk_err *reterr);

/* The worker is stopping: no queued migration starts after this.  Source
 * migrations not yet handed to libvirt (queued, or waiting for
 * pre_live_migration) stay in the journal for the next start, or, without
 * a journal, are rolled back with their notifications, so no accepted
 * migration is forgotten; running ones go on inside libvirtd. */
void wk_flow_stop(wk_flow *flow);

#endif
