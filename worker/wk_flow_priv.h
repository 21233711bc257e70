/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_priv.h - what the wk_flow*.c files share, and nothing else: the
 * migration record (struct mig), the flow handle's body, and the helpers one
 * part of the flow calls in another.  Not an interface for the rest of the
 * worker (that is wk_flow.h); tests may include it to reach the record
 * format.  Main thread only, like the flow itself.
 */
#ifndef WK_FLOW_PRIV_H
#define WK_FLOW_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "rpc_uuid.h"
#include "wk_addr.h"
#include "wk_disk.h"
#include "wk_flow.h"
#include "wk_policy.h"
#include "wk_progress.h"

struct rpc_prediction;
#include "wk_tuning.h"

/* The destination's answer when its inbound slots are all taken; the source
 * keeps the migration queued and asks again later (wk_flow_source.c). */
#define NO_INBOUND_SLOT "no free inbound migration slot"

enum mig_role {
	ROLE_SOURCE,
	ROLE_DEST,
};

enum mig_phase {
	PHASE_QUEUED,     /* accepted; waits for an outbound slot (FIFO by seq) */
	PHASE_PREPARING,  /* waiting for the destination's pre_live_migration */
	PHASE_RUNNING,    /* libvirt is migrating */
	PHASE_COMPLETING, /* migrated; post at destination in flight */
	PHASE_INBOUND,    /* destination side: reserved, waiting for post or rollback */
	/* source: post-copy broke and was not recovered; the guest is split over
	 * both hosts; kept until an operator acts (recover_migration) */
	PHASE_POSTCOPY_FAILED,
};

struct mig {
	struct mig *next;
	wk_flow *flow;
	enum mig_role role;
	enum mig_phase phase;
	uint64_t job_id;
	uint64_t seq;         /* acceptance order, for the outbound FIFO */
	uint64_t retry_at_ms; /* queued: not before (the destination had no inbound slot) */
	/* source: when it was accepted (wk_now_ms), for
	 * libvirt.live_migration_queue_timeout; 0 = not known (taken as the
	 * first tick after a restart).  To be journalled. */
	uint64_t queued_since_ms;
	/* destination: the reservation ends then unless renewed (the migration
	 * runs here); 0 = started_ms + the lease.  Derived, not journalled. */
	uint64_t lease_until_ms;
	char *uuid;
	char *dest_host;
	char *migration_uuid;
	long long migration_id;
	char *request_id;
	bool block_migration;
	bool persistent;
	bool postcopy_active;
	bool paused_by_us;
	bool abort_requested;
	bool recovering;                /* the post-copy stream broke; wk_migrate resumes it */
	uint64_t broke_at_wall;         /* recovering: wall-clock s when the break was seen */
	char abort_reason[200];         /* set with abort_requested */
	struct wk_policy_config policy; /* host tuning + this instance's overrides */
	/* source: the stream knobs resolved for this migration (wk_tuning_resolve),
	 * journalled; tuning_resolved false until then */
	struct wk_tuning_mig tuning;
	bool tuning_resolved;
	struct wk_policy_state policy_state;
	bool fast_sampling; /* a switch is pending: sampled every WK_POLICY_SWITCH_SAMPLE_MS */
	unsigned long long max_downtime_ms; /* what the policy last set, 0 = libvirt's */
	unsigned warned_reasons;            /* every reason reported so far */
	char warned_none[160];              /* the last "nothing left to do" reason reported */
	uint64_t last_warn_ms;
	int policy_step;
	/* source: the policy's decision on the newest sample (verdict, reasons,
	 * planned action; action_reason is static text), for list_migrations;
	 * decided is false until the first sample of this run.  last_action is
	 * the newest action the hypervisor carried out (WK_ACTION_NONE: none
	 * yet).  Derived, not journalled. */
	struct wk_decision decision;
	bool decided;
	enum wk_action last_action;
	json_t *instance;          /* the cast's Instance primitive */
	json_t *context;           /* the cast's request context */
	json_t *migrate_data;      /* source: the destination's answer to pre_live_migration */
	json_t *cast_migrate_data; /* source: the cast's migrate_data, sent with pre */
	/* Block migration.  source: the local disks sent with pre (NULL: not a
	 * block migration) and how the destination will have them filled;
	 * destination: how it prepared them, and created, the images and
	 * directories it made (wk_disk_remove_created's list), removed on a
	 * rollback, forgotten at post.  Journalled. */
	struct wk_disk_list *disks;
	enum wk_disk_copy disk_copy;
	json_t *created;
	/* source: the local disks were removed after the completed migration
	 * (mig_remove_source_disks); journalled, so a restart does not go
	 * over them again */
	bool disks_removed;
	/* source: the caps ferry last gave libvirt for this migration, MiB/s, 0 =
	 * unlimited (wk_flow_bandwidth.c); speed_set is false while they are not
	 * known (not started, or adopted after a restart).  Derived, not
	 * journalled. */
	unsigned long long speed_mib_s, postcopy_speed_mib_s;
	bool speed_set;
	struct wk_progress progress;
	struct wk_job_sample last_sample;
	uint64_t started_ms, last_notify_ms;
};

/* How a migration ended, for ferry_migrations_total (wk_flow_metrics.c). */
enum mig_outcome {
	OUTCOME_COMPLETED,       /* source: post.end; destination: post_dest.end */
	OUTCOME_ROLLED_BACK,     /* source: rollback.end (also of a refused cast);
	                          * destination: rollback_dest.end */
	OUTCOME_ABORTED,         /* source: rollback.end after an abort (operator or policy) */
	OUTCOME_POSTCOPY_FAILED, /* source: post-copy broke and was not recovered */
	OUTCOME_LOST,            /* source: the guest runs on neither host */
	OUTCOME_RELEASED,        /* destination: the reservation's lease ran out */
	_OUTCOME_MAX,
};

struct wk_flow {
	struct wk_flow_deps d;
	/* Counters for metrics, since start (main thread, like the rest). */
	uint64_t outcomes[2][_OUTCOME_MAX]; /* [enum mig_role][enum mig_outcome] */
	uint64_t actions[_WK_ACTION_MAX];   /* policy actions carried out */
	struct mig *migs;
	uint64_t next_job_id;
	uint64_t next_seq;
	bool stopping; /* no queued migration starts any more */
	uint64_t next_lease_check_ms;
};

/* ---- the record table (wk_flow.c) ---- */

/* Frees m and what it owns; NULL-safe.  m must not be in the table. */
void mig_free(struct mig *m);
/* The record of instance uuid in role, or NULL. */
struct mig *mig_find(wk_flow *f, const char *uuid, enum mig_role role);
/* The record whose wk_migrate job is job_id, or NULL. */
struct mig *mig_find_job(wk_flow *f, uint64_t job_id);
/* Takes m out of the table, cancels its pending calls, drops its journal
 * record and frees it; a source migration's slot goes to the queue. */
void mig_unlink_free(wk_flow *f, struct mig *m);
/* Counts a migration that ended (role, outcome) for metrics. */
void mig_count_outcome(wk_flow *f, enum mig_role role, enum mig_outcome outcome);
/* "queued", "preparing", "precopy", "postcopy", "paused", "completing",
 * "inbound"; static. */
const char *mig_phase_name(const struct mig *m);

/* RPC argument helpers: name is borrowed from args.  -EINVAL with reterr
 * naming the argument when it is missing (required) or of the wrong type. */
int wk_flow_arg_get(json_t *args, const char *method, const char *name, json_type type,
    bool required, json_t **ret, struct wk_err *reterr);
/* The instance argument; its uuid is canonicalised in args (rpc_uuid), a
 * uuid that is not one is refused (-EINVAL). */
int wk_flow_instance_arg(json_t *args, const char *method, const char **ret_uuid,
    json_t **ret_instance, struct wk_err *reterr);
/* canonical = uuid in canonical spelling, or -EINVAL naming method. */
int wk_flow_uuid_arg(const char *method, const char *uuid, char canonical[RPC_UUID_DASHED_LEN],
    struct wk_err *reterr);
/* A string field of a nova object primitive (borrowed), or NULL. */
const char *wk_flow_obj_str(json_t *primitive, const char *key);

/* ---- the journal (wk_flow_record.c) ---- */

/* The journal record of m as it is now (new reference), or NULL: named
 * fields with "version": 2, no raw struct bytes. */
json_t *mig_record(const struct mig *m);
/* The inverse of mig_record (rec borrowed): 0 and a new struct mig in
 * *ret_m, not yet in the table; -EPROTONOSUPPORT for a record of another
 * version (an older ferry's), -EINVAL for one that does not fit, -ENOMEM;
 * reterr names the key at fault, never a value. */
int mig_from_record(wk_flow *f, json_t *rec, struct mig **ret_m, struct wk_err *reterr);
/* The part of request context (borrowed) a restart needs, as a new object:
 * request ids, user, project, roles, is_admin and the like, never a token,
 * secret, password or service catalog.  NULL for a NULL or non-object
 * context, or out of memory.  Pure. */
json_t *wk_flow_journal_context(json_t *context);
/* Records m as it is now: 0 (also without a journal), or -errno after
 * logging the failure. */
int mig_journal_save(wk_flow *f, const struct mig *m);
/* Removes m's record; a failure is logged. */
void mig_journal_drop(wk_flow *f, const struct mig *m);

/* ---- notifications (wk_flow_notify.c); failures are logged ---- */

/* instance.<action>.<phase> with nova's InstanceActionPayload. */
void wk_flow_notify_action(
    wk_flow *f, json_t *instance, json_t *context, const char *action, const char *phase);
/* The same with the payload's fault an ExceptionPayload (MigrationError,
 * message @fault); NULL = no fault. */
void wk_flow_notify_action_fault(wk_flow *f, json_t *instance, json_t *context, const char *action,
    const char *phase, const char *fault);
void wk_flow_notify_exception(
    wk_flow *f, json_t *context, const char *function, const char *exception, const char *text);
void mig_notify_progress(wk_flow *f, struct mig *m);
void mig_notify_struggling(wk_flow *f, struct mig *m, const struct wk_decision *d);
/* @p as the wire has it (the struggling notification's and list_migrations'
 * "prediction"); the outlook's name is static. */
void mig_prediction_wire(const struct wk_prediction *p, struct rpc_prediction *ret);
/* The post-copy stream broke (ev: WK_MIG_RECOVERING): WARN with the break
 * and the recovery under way. */
void mig_notify_stream_broken(wk_flow *f, struct mig *m, const struct wk_mig_event *ev);
/* Recovery failed (ev: WK_MIG_DONE, WK_MIG_POSTCOPY_FAILED): ERROR
 * instance.live_migration_postcopy_failed with both hosts' states. */
void mig_notify_postcopy_failed(wk_flow *f, struct mig *m, const struct wk_mig_event *ev);
/* Whether decision d is news for instance.live_migration_struggling. */
bool mig_should_warn(const struct mig *m, const struct wk_decision *d, uint64_t now_ms);

/* ---- policy (wk_flow_policy.c) ---- */

/* Fills m->policy from the host's tuning and instance's overrides. */
int mig_resolve_policy(wk_flow *f, struct mig *m, json_t *instance, unsigned long long memory_kib,
    struct wk_err *reterr);
/* Resolves m->tuning from the host's tuning, the instance's policy (m->policy
 * must be resolved) and the hypervisor's versions; logs a version query that
 * failed (the versions are then taken as old: the safe side). */
void mig_resolve_tuning(wk_flow *f, struct mig *m, unsigned long long memory_kib);

/* One policy decision for sample s, carried out. */
void mig_apply_policy(wk_flow *f, struct mig *m, const struct wk_job_sample *s);
/* Post-copy (by_postcopy) or pause the guest; why is for the log. */
int mig_force_complete(
    wk_flow *f, struct mig *m, const char *why, bool by_postcopy, struct wk_err *reterr);

/* ---- source side (wk_flow_source.c) ---- */

struct mig_job_uris {
	char host[WK_ADDR_MAX + 3]; /* the address, IPv6 in brackets */
	char dest[512], migrate[300];
	const char *disks[WK_DISK_MAX]; /* target devs of the local disks */
};
/* m's libvirt migration parameters (strings point into m and uris); returns
 * the address the stream goes to. */
const char *mig_job_params(
    wk_flow *f, const struct mig *m, struct wk_hv_migrate_params *p, struct mig_job_uris *uris);
/* The job-statistics period, ms. */
unsigned mig_sample_interval_ms(const wk_flow *f);
/* Takes over m's migration that libvirtd runs (or that broke) without a
 * worker: a new job id, wk_migrate_adopt.  0 or -errno. */
int mig_adopt_job(wk_flow *f, struct mig *m);

/* The migration succeeded: post at destination, then m is freed. */
void mig_finish_post(wk_flow *f, struct mig *m);
/* The migration failed or was abandoned: rollback, then m is freed. */
void mig_finish_rollback(wk_flow *f, struct mig *m, const char *why);
/* The same for a migration the hypervisor failed: rollback.end carries @why
 * as its fault (MigrationError). */
void mig_finish_rollback_fault(wk_flow *f, struct mig *m, const char *why);
/* Starts queued migrations, oldest first, while outbound slots are free. */
void wk_flow_start_queued(wk_flow *f);
/* Rolls back queued migrations past libvirt.live_migration_queue_timeout;
 * returns the ms until the next expiry, or -1. */
int wk_flow_expire_queued(wk_flow *f, uint64_t now_ms);

/* ---- bandwidth at run time (wk_flow_bandwidth.c) ---- */

/* The caps m's migration starts with (p's bandwidth and post-copy
 * bandwidth): the host's tuning, or m's share of the link budget among the
 * running outbound migrations, m counted once. */
void mig_speed_params(const wk_flow *f, const struct mig *m, struct wk_hv_migrate_params *p);
/* m's migration was handed to libvirt with p's caps. */
void mig_speed_started(struct mig *m, const struct wk_hv_migrate_params *p);
/* Re-shares the link budget: every running outbound migration (libvirt
 * reported its job) whose caps differ from what it should have now gets
 * them (virDomainMigrateSetMaxSpeed), with a log line each.  Call whenever
 * one starts, ends, pauses or breaks; a no-op when nothing changed. */
void wk_flow_reshare(wk_flow *f);
/* Pauses m's guest so its migration completes, lifting the pre-copy cap
 * first (its last pass goes unlimited); a failed pause puts the cap back.
 * Sets m->paused_by_us.  0 or -errno with reterr (the pause's). */
int mig_pause(wk_flow *f, struct mig *m, struct wk_err *reterr);
/* A force-complete by pause on request: lifts m's pre-copy cap now and
 * leaves the pause to the policy (wk_policy_request_pause), which pauses
 * the guest once its first pass is over, at a pass's lowest
 * data_remaining.  Pauses at once if the cap cannot be lifted.  0 or
 * -errno with reterr. */
int mig_request_pause(wk_flow *f, struct mig *m, struct wk_err *reterr);

/* ---- destination side (wk_flow_dest.c) ---- */

/* Checks the lease of every inbound reservation (at most every
 * LEASE_CHECK_MS): renewed while the migration runs here, released when it
 * ends (no migration arrived, or it ended without
 * post_live_migration_at_destination).  Returns the ms until the next
 * check, or -1 when no reservation is held. */
int wk_flow_check_leases(wk_flow *f, uint64_t now_ms);
/* Removes the disk images m's reservation created (a rollback), unless
 * the guest runs here; why is for the log. */
void mig_drop_created(wk_flow *f, struct mig *m, const char *why);
/* How long a reservation lasts unless the migration starts:
 * 2 * rpc_response_timeout, at least 20 s. */
uint64_t wk_flow_lease_ms(const wk_flow *f);

#endif /* WK_FLOW_PRIV_H */
