/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_nova: nova object primitives (oslo.versionedobjects obj_to_primitive)
 * and the versioned-notification payloads ferry emits: nova's
 * InstanceActionPayload 1.8 / FlavorPayload 1.4 / IpPayload 1.0 /
 * ExceptionPayload 1.1 built exactly as nova 26.2.2 builds them, and ferry's
 * own LiveMigrationProgressPayload 1.0 (namespace "ferry").  Schemas live in
 * schemas/payloads/.  Pure jansson: no I/O, no logging, no globals; any
 * thread.  Every builder tolerates odd input (missing keys, wrong types).
 */
#ifndef RPC_NOVA_H
#define RPC_NOVA_H

#include <jansson.h>

/*
 * {"nova_object.name", "nova_object.namespace", "nova_object.version",
 *  "nova_object.data"}.  @data is STOLEN (also on failure); the strings are
 * copied.  Returns a new reference, or NULL on ENOMEM or a NULL argument.
 */
json_t *rpc_nova_object(const char *name, const char *ns, const char *version, json_t *data);

/* Borrowed "nova_object.data" object of @primitive, or NULL if there is none. */
json_t *rpc_nova_object_data(json_t *primitive);

/*
 * Borrowed uuid string of an Instance primitive (nova_object.name "Instance"
 * with a string data.uuid), or NULL.
 */
const char *rpc_nova_instance_uuid(json_t *instance);

/*
 * InstanceActionPayload 1.8 (namespace nova) built from an Instance
 * primitive (@instance, BORROWED) the way nova 26.2.2's
 * InstanceActionPayload(context, instance, fault) does with
 * bdms_in_notifications off: flavor is a FlavorPayload 1.4 of
 * instance.flavor (when the flavor was not sent, one made of the
 * instance's memory_mb/vcpus/root_gb/ephemeral_gb and Flavor's defaults),
 * ip_addresses are IpPayload 1.0 of every fixed IP in
 * info_cache.network_info, power_state is nova's state name, datetimes are
 * "YYYY-MM-DDTHH:MM:SSZ", auto_disk_config "AUTO"/"MANUAL",
 * locked_reason from system_metadata, block_devices null.
 * action_initiator_user/project and request_id come from @context
 * (BORROWED, keys without "_context_", may be NULL; request_id only when
 * both user_id and project_id are set, as nova does).  Non-NULL @host /
 * @node replace the instance's host / node.  @fault (BORROWED, may be NULL)
 * is copied when it is an object (an ExceptionPayload primitive), else the
 * fault is null.  Missing or ill-typed instance fields become null (or
 * nova's default: metadata {}, locked false, auto_disk_config "MANUAL",
 * ip_addresses []).  Returns a new reference, or NULL on ENOMEM.
 */
json_t *rpc_nova_instance_action_payload(
    json_t *instance, const char *host, const char *node, json_t *context, json_t *fault);

/*
 * The InstanceActionPayload of instance.<action>.<phase> for the
 * live-migration actions ("live_migration_pre", "live_migration_post_dest",
 * "live_migration_rollback", ...), with the Instance in the state nova 26's
 * compute manager holds it at that point (nova's upstream notification
 * samples): host and node stay the Instance's (the source, also on the
 * destination), except live_migration_post_dest.end where they are
 * @self_host (nova moved the instance); task_state is null on
 * live_migration_rollback.end and live_migration_post_dest.end (nova reset
 * it), else the Instance's.  @instance and @context are BORROWED.  Returns a
 * new reference, or NULL on ENOMEM.
 */
json_t *rpc_nova_live_migration_payload(json_t *instance, const char *action, const char *phase,
    const char *self_host, json_t *context);

/*
 * ExceptionPayload 1.1 (namespace nova): module_name, function_name,
 * exception, exception_message and a traceback string shaped like
 * nova's (','.join(traceback.format_exception(...))), naming the module and
 * function since a C daemon has no Python stack.  NULL strings become "".
 * Returns a new reference, or NULL on ENOMEM.
 */
json_t *rpc_nova_exception_payload(const char *module_name, const char *function_name,
    const char *exception, const char *exception_message);

/* ferry's progress figures; see rpc_nova_progress_payload(). */
struct rpc_progress {
	const char *instance_uuid, *migration_uuid, *source_host, *dest_host, *phase; /* borrowed */
	long long migration_id; /* -1 unknown */
	double percent;         /* 0..100, monotonic by construction of the caller */
	long long memory_total, memory_processed, memory_remaining; /* bytes, -1 unknown */
	long long data_total, data_processed, data_remaining;       /* bytes */
	long long disk_total, disk_processed, disk_remaining;       /* bytes */
	long long dirty_rate_bps, transfer_rate_bps;                /* bytes/s */
	long long memory_iteration, elapsed_ms, eta_s;              /* eta -1 unknown */
	long long expected_downtime_ms, max_downtime_ms, bandwidth_mib_s;
	int policy_step;
};

/*
 * LiveMigrationProgressPayload 1.1, namespace "ferry" (1.1: phases
 * postcopy_recovering and postcopy_failed).  Data keys:
 * instance_uuid, migration_uuid, migration_id, source_host, dest_host,
 * phase, percent, memory_{total,processed,remaining}_bytes,
 * data_{total,processed,remaining}_bytes, disk_{total,processed,remaining}_bytes,
 * dirty_rate_bytes_per_second, transfer_rate_bytes_per_second,
 * memory_iteration, elapsed_ms, eta_s, expected_downtime_ms,
 * max_downtime_ms, bandwidth_mib_s, policy_step.  Negative figures (-1,
 * unknown) and NULL strings become null; percent is clamped to 0..100 (NaN
 * becomes null).  @p is BORROWED.  Returns a new reference, or NULL on
 * ENOMEM or a NULL @p.
 */
json_t *rpc_nova_progress_payload(const struct rpc_progress *p);

/* The policy's convergence prediction (docs/tuning.md); -1 figures are
 * unknown (null on the wire); outlook borrowed. */
struct rpc_prediction {
	const char *outlook;            /* "unknown", "converges", "struggles"; NULL: none */
	int confidence_pct, shrink_pct; /* shrink_pct -1 unknown */
	long long dirty_set, iterations_needed, predicted_downtime_ms, judged_downtime_ms;
};

/*
 * The "prediction" object of LiveMigrationStrugglingPayload 1.2 and of
 * list_migrations 1.1: outlook, confidence_pct, dirty_set_bytes,
 * shrink_pct, iterations_needed, expected_downtime_ms,
 * judged_max_downtime_ms (negative figures become null).  @p BORROWED.
 * New reference; NULL on ENOMEM, or when @p or its outlook is NULL.
 */
json_t *rpc_prediction_to_json(const struct rpc_prediction *p);

/* ferry's "migration struggling" figures; strings borrowed. */
struct rpc_struggling {
	const char *instance_uuid, *migration_uuid;
	const char *reasons[4];    /* reason names, NULL-terminated when fewer */
	const char *action;        /* what was done now: raise_downtime ... none */
	const char *action_reason; /* why that action (or why none), may be NULL */
	const char *planned;       /* next escalation if it keeps struggling, may be NULL */
	long long dirty_rate_bps, transfer_rate_bps, data_remaining, memory_iteration;
	long long elapsed_ms, deadline_ms, max_downtime_ms; /* -1 unknown */
	int policy_step;
	/* The policy's convergence prediction behind the action (1.2); no
	 * "prediction" key when its outlook is NULL. */
	struct rpc_prediction prediction;
};

/*
 * nova_object LiveMigrationStrugglingPayload 1.2 (1.1: reason
 * postcopy_stream_broken, action recover_postcopy; 1.2: the optional
 * prediction object), namespace "ferry": the
 * keys of schemas/payloads/LiveMigrationStrugglingPayload.json (negative
 * figures become null).  @s BORROWED.  New reference, NULL on ENOMEM.
 */
json_t *rpc_nova_struggling_payload(const struct rpc_struggling *s);

/* A post-copy migration that could not be recovered; strings borrowed,
 * NULL entries of errors/tried are skipped. */
struct rpc_postcopy_failed {
	const char *instance_uuid, *migration_uuid, *source_host, *dest_host;
	long long migration_id; /* -1 unknown */
	const char *source_state, *dest_state;
	const char *errors[4], *tried[4];
	int recovery_attempts, recovery_timeout_s;
	const char *broke_at; /* ISO 8601 UTC, may be NULL */
};

/*
 * nova_object LiveMigrationPostcopyFailedPayload 1.0, namespace "ferry":
 * the keys of schemas/payloads/LiveMigrationPostcopyFailedPayload.json.
 * @p BORROWED.  New reference, NULL on ENOMEM or a NULL @p.
 */
json_t *rpc_nova_postcopy_failed_payload(const struct rpc_postcopy_failed *p);

#endif
