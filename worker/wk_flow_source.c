/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_source: the source side.  live_migration accepts a migration and
 * queues it for an outbound slot; prepare calls pre_live_migration on the
 * destination, start_job hands it to wk_migrate, job events drive the
 * policy and progress, and it ends in finish_post or finish_rollback.
 * Also force_complete/abort and the notification for a failed cast.
 * Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc_nova.h"
#include "wk_addr.h"
#include "wk_flow_priv.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

#define RPC_VERSION "6.0"
/* A destination with no free inbound slot (NO_INBOUND_SLOT) is asked again
 * after this long; the migration waits in the queue meanwhile. */
#define INBOUND_RETRY_MS 2000

/* Source side: the migration is over one way or the other.  @fault: the
 * failure for rollback.end's fault, NULL for none. */
static void
finish_rollback(wk_flow *f, struct mig *m, const char *why, const char *fault)
{
	json_t *args;

	wk_flow_notify_action(f, m->instance, m->context, "live_migration_rollback", "start");
	if (m->paused_by_us) {
		struct wk_err err = {{0}};

		/* Never leave a guest paused because of us. */
		if (wk_hv_resume(f->d.hv, m->uuid, &err) < 0)
			log_error(
			    "Cannot resume '%s' after the failed migration: %s", m->uuid, err.msg);
		else
			log_info("Resumed '%s' on the source after the failed migration", m->uuid);
	}
	/* A queued migration reserved nothing at the destination. */
	if (m->dest_host != NULL && m->phase != PHASE_QUEUED) {
		args = json_pack("{s:O,s:b,s:O?}", "instance", m->instance, "destroy_disks", 1,
		    "migrate_data", m->migrate_data);
		if (args == NULL ||
		    wk_bus_cast(f->d.bus, m->dest_host, "rollback_live_migration_at_destination",
		        RPC_VERSION, args, m->context) < 0)
			log_error("Cannot send rollback_live_migration_at_destination to '%s'",
			    m->dest_host);
	}
	wk_flow_notify_action_fault(
	    f, m->instance, m->context, "live_migration_rollback", "end", fault);
	log_warning("Migration of '%s' to '%s' rolled back: %s", m->uuid,
	    m->dest_host ? m->dest_host : "?", why);
	mig_count_outcome(
	    f, ROLE_SOURCE, m->abort_requested ? OUTCOME_ABORTED : OUTCOME_ROLLED_BACK);
	mig_unlink_free(f, m);
}

void
mig_finish_rollback(wk_flow *f, struct mig *m, const char *why)
{
	finish_rollback(f, m, why, NULL);
}

void
mig_finish_rollback_fault(wk_flow *f, struct mig *m, const char *why)
{
	finish_rollback(f, m, why, why);
}

/* After a completed block migration, as nova's post_live_migration does
 * (driver.cleanup with destroy_disks when the storage is not shared): the
 * local images sent with pre_live_migration are removed here, each one
 * checked (wk_disk_remove_source), and the instance directory when it is
 * left empty.  Only in PHASE_COMPLETING (the outcome read from both hosts:
 * running at the destination, gone from here), never on a rollback; and
 * not while a domain of that UUID exists here again.  The record says
 * when it is done, so a restart does not go over it again; a restart
 * between the removal and that write repeats it harmlessly (an image
 * already gone is skipped). */
static void
remove_source_disks(wk_flow *f, struct mig *m)
{
	const char *root = f->d.conf->libvirt.instances_path;
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	int removed = 0, failed = 0, r;

	if (m->disks == NULL || m->disks->n == 0 || m->disks_removed ||
	    m->phase != PHASE_COMPLETING)
		return;
	r = wk_hv_domain_info(f->d.hv, m->uuid, &info, &err);
	if (r == 0) {
		log_error("Kept the %d local disk(s) of '%s' on the source after its migration: a "
		          "domain of that UUID is defined here",
		    m->disks->n, m->uuid);
		return;
	}
	if (r != -ENOENT) {
		log_error("Kept the %d local disk(s) of '%s' on the source after its migration: "
		          "cannot tell whether its domain is gone from here: %s",
		    m->disks->n, m->uuid, err.msg);
		return;
	}
	for (int i = 0; i < m->disks->n; i++) {
		const char *path = m->disks->disk[i].path;
		unsigned done = 0;

		if (wk_disk_remove_source(root, path, &done, &err) < 0) {
			log_error("Kept local disk '%s' of '%s' on the source: %s", path, m->uuid,
			    err.msg);
			failed++;
			continue;
		}
		if (done & WK_DISK_REMOVED_FILE) {
			log_info(
			    "Removed local disk '%s' of '%s' from the source (migrated to '%s')",
			    path, m->uuid, m->dest_host);
			removed++;
		} else
			log_info("Local disk '%s' of '%s' is already gone from the source", path,
			    m->uuid);
		if (done & WK_DISK_REMOVED_DIR)
			log_info("Removed the empty instance directory of '%s' from the source",
			    m->uuid);
	}
	log_info("Source cleanup of the block migration of '%s': %d of %d local disk(s) removed%s",
	    m->uuid, removed, m->disks->n, failed ? ", some kept (see above)" : "");
	m->disks_removed = true;
	mig_journal_save(f, m);
}

static void
on_post_at_dest_reply(void *data, int r, json_t *result, const char *error)
{
	struct mig *m = data;
	wk_flow *f = m->flow;

	wk_log_set_request_id(m->request_id);
	if (r < 0)
		log_warning(
		    "post_live_migration_at_destination on '%s' failed: %s", m->dest_host, error);
	remove_source_disks(f, m);
	wk_flow_notify_action(f, m->instance, m->context, "live_migration_post", "end");
	log_info("Migration of '%s' to '%s' finished", m->uuid, m->dest_host);
	mig_count_outcome(f, ROLE_SOURCE, OUTCOME_COMPLETED);
	mig_unlink_free(f, m);
}

void
mig_finish_post(wk_flow *f, struct mig *m)
{
	json_t *args;
	int r;

	m->phase = PHASE_COMPLETING;
	mig_journal_save(f, m);
	wk_progress_complete(&m->progress);
	/* The last poll predates the switchover: report the finished state. */
	if (m->last_sample.memory_total > 0) {
		m->last_sample.memory_processed = m->last_sample.memory_total;
		m->last_sample.memory_remaining = 0;
	}
	if (m->last_sample.data_total > 0)
		m->last_sample.data_processed = m->last_sample.data_total;
	m->last_sample.data_remaining = 0;
	mig_notify_progress(f, m);
	wk_flow_notify_action(f, m->instance, m->context, "live_migration_post", "start");
	args =
	    json_pack("{s:O,s:b}", "instance", m->instance, "block_migration", m->block_migration);
	r = args ? wk_bus_call(f->d.bus, m->dest_host, "post_live_migration_at_destination",
	               RPC_VERSION, args, m->context, f->d.conf->rpc_response_timeout,
	               on_post_at_dest_reply, m)
	         : -ENOMEM;
	if (r < 0)
		on_post_at_dest_reply(m, r, NULL, "cannot send the call");
}

/* The migration's libvirt parameters, from the record and the host's
 * tuning: the same for the first call, an adoption and a recovery. */
const char *
mig_job_params(
    wk_flow *f, const struct mig *m, struct wk_hv_migrate_params *p, struct mig_job_uris *uris)
{
	const struct wk_conf *c = f->d.conf;
	const char *addr = wk_flow_obj_str(m->migrate_data, "target_connect_addr");

	if (addr == NULL)
		addr = m->dest_host;
	/* Checked when it came in (wk_addr_check); an IPv6 address is bracketed. */
	if (wk_addr_uri_host(addr, uris->host, sizeof(uris->host)) < 0)
		uris->host[0] = '\0'; /* a URI libvirt refuses, never a cut name */
	snprintf(uris->dest, sizeof(uris->dest), "qemu+%s://%s/system",
	    c->libvirt.live_migration_scheme, uris->host);
	snprintf(uris->migrate, sizeof(uris->migrate), "tcp://%s", uris->host);
	memset(p, 0, sizeof(*p));
	p->uuid = m->uuid;
	p->dest_uri = uris->dest;
	p->migrate_uri = uris->migrate;
	mig_speed_params(f, m, p);
	if (m->tuning_resolved) {
		p->compressed = m->tuning.compressed;
		p->parallel_connections = m->tuning.parallel_connections;
		p->zstd = m->tuning.multifd_compression == WK_MULTIFD_COMP_ZSTD;
		p->zstd_level = m->tuning.zstd_level;
		p->zero_copy = m->tuning.zero_copy;
	} else {
		/* A record of a worker before the dial: the one stream it ran with
		 * unless the host asked for XBZRLE. */
		p->compressed = f->d.tuning->compressed;
	}
	p->block_migration = m->block_migration;
	for (int i = 0; m->disks != NULL && i < m->disks->n; i++)
		uris->disks[p->n_migrate_disks++] = m->disks->disk[i].target;
	p->migrate_disks = uris->disks;
	p->disk_incremental = m->disk_copy == WK_DISK_COPY_INCREMENTAL;
	p->persistent = m->persistent;
	p->postcopy = m->policy.permit_post_copy;
	/* Nova: auto-converge only where post-copy is not available. */
	p->auto_converge = m->policy.permit_auto_converge && !p->postcopy;
	/* QEMU checks the destination's certificate against the address it
	 * connects to; a migration network's address is rarely in it, the
	 * host's name is (vdsm does the same). */
	p->tls = f->d.tuning->native_tls;
	if (p->tls && addr != NULL && m->dest_host != NULL && strcmp(addr, m->dest_host) != 0)
		p->tls_destination = m->dest_host;
	return addr;
}

/* Statistics period: the policy decides per memory iteration, and
 * iterations take well under a second on a fast link: sample at 4 Hz (one
 * cheap libvirtd call each), notify every progress_interval. */
unsigned
mig_sample_interval_ms(const wk_flow *f)
{
	unsigned interval_ms = (unsigned)(f->d.conf->notifications.progress_interval * 1000.0);

	return interval_ms > 250 ? 250 : interval_ms;
}

int
mig_adopt_job(wk_flow *f, struct mig *m)
{
	struct wk_hv_migrate_params p;
	struct mig_job_uris uris;

	mig_job_params(f, m, &p, &uris);
	m->job_id = f->next_job_id++;
	/* A fixed cap is what it was started with; a share, or a lifted cap,
	 * is not known after a restart: the next sample sets it again. */
	mig_speed_started(m, &p);
	m->speed_set = f->d.tuning->budget_mib_s == 0 && !m->paused_by_us;
	return wk_migrate_adopt(
	    f->d.migrate, m->job_id, &p, mig_sample_interval_ms(f), m->request_id);
}

static int
start_job(wk_flow *f, struct mig *m, struct wk_err *reterr)
{
	struct wk_hv_migrate_params p;
	struct mig_job_uris uris;
	const char *addr;
	unsigned interval_ms = mig_sample_interval_ms(f);
	char summary[160];

	if (!m->tuning_resolved) /* recovered from a record written before the dial */
		mig_resolve_tuning(f, m, m->policy.data_bytes >> 10);
	/* Before the parameters: the caps depend on the policy's state (a
	 * requested pause runs uncapped). */
	m->started_ms = wk_now_ms();
	wk_policy_init(&m->policy_state, &m->policy, m->started_ms);
	addr = mig_job_params(f, m, &p, &uris);

	m->job_id = f->next_job_id++;
	m->phase = PHASE_RUNNING;
	m->last_notify_ms = 0;
	wk_tuning_mig_summary(summary, sizeof(summary), &m->tuning);
	log_info("Migrating '%s' to '%s' over %s (bandwidth %llu MiB/s, post-copy %llu MiB/s, 0 = "
	         "unlimited; %s%s%s; %s; parallel: %s; "
	         "xbzrle: %s; multifd compression: %s; zero-copy: %s)",
	    m->uuid, m->dest_host, addr, p.bandwidth_mib_s, p.postcopy_bandwidth_mib_s,
	    p.tls ? "native TLS" : "plain stream",
	    p.tls_destination != NULL ? ", certificate name " : "",
	    p.tls_destination != NULL ? p.tls_destination : "", summary, m->tuning.why.parallel,
	    m->tuning.why.compression, m->tuning.why.multifd_compression, m->tuning.why.zero_copy);
	if (wk_migrate_start(f->d.migrate, m->job_id, &p, interval_ms, m->request_id) < 0)
		return wk_err_set(reterr, -ENOMEM, "cannot start the migration thread");
	mig_speed_started(m, &p);
	wk_flow_reshare(f); /* the others make room */
	return 0;
}

static void
on_pre_reply(void *data, int r, json_t *result, const char *error)
{
	struct mig *m = data;
	wk_flow *f = m->flow;
	struct wk_err err = {{0}};
	const char *addr;

	wk_log_set_request_id(m->request_id);
	if (r < 0 && !m->abort_requested && !f->stopping && error != NULL &&
	    strstr(error, NO_INBOUND_SLOT) != NULL) {
		log_info("'%s' has no free inbound slot for '%s'; queued again, retrying in %d s",
		    m->dest_host, m->uuid, INBOUND_RETRY_MS / 1000);
		m->phase = PHASE_QUEUED;
		m->retry_at_ms = wk_now_ms() + INBOUND_RETRY_MS;
		wk_flow_start_queued(f); /* the slot it held may serve another destination */
		return;
	}
	if (r < 0) {
		log_error(
		    "pre_live_migration on '%s' for '%s' failed: %s", m->dest_host, m->uuid, error);
		mig_finish_rollback(f, m, error);
		return;
	}
	if (m->abort_requested) {
		mig_finish_rollback(f, m, "aborted before it started");
		return;
	}
	addr = json_is_object(result) ? wk_flow_obj_str(result, "target_connect_addr") : NULL;
	if (addr != NULL && wk_addr_check(addr, "target_connect_addr", true, &err) < 0) {
		log_error("pre_live_migration on '%s' for '%s' answered an unusable address: %s",
		    m->dest_host, m->uuid, err.msg);
		mig_finish_rollback(f, m, err.msg); /* frees the destination's slot too */
		return;
	}
	if (json_is_object(result))
		m->migrate_data = json_incref(result);
	if (m->disks != NULL && m->disks->n > 0) {
		/* A destination that does not say (not a ferry) gets the full copy. */
		if (wk_disk_copy_parse(wk_flow_obj_str(result, "ferry_disk_copy"), &m->disk_copy) <
		        0 ||
		    m->disk_copy == WK_DISK_COPY_NONE)
			m->disk_copy = WK_DISK_COPY_FULL;
		log_info("Block migration of '%s': %d local disk(s), %s copy (%s)", m->uuid,
		    m->disks->n, wk_disk_copy_name(m->disk_copy),
		    m->disk_copy == WK_DISK_COPY_INCREMENTAL
		        ? "the destination has every backing file"
		        : "the destination has no backing file for them, or they have none");
	}
	if (start_job(f, m, &err) < 0) {
		log_error("Cannot start the migration of '%s': %s", m->uuid, err.msg);
		mig_finish_rollback(f, m, err.msg);
		return;
	}
	mig_journal_save(f, m);
}

/* Outbound migrations holding a slot: every source one past the queue. */
static int
outbound_busy(const wk_flow *f)
{
	int n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_SOURCE && m->phase != PHASE_QUEUED &&
		    m->phase != PHASE_POSTCOPY_FAILED) /* no job left: it waits for an operator */
			n++;
	return n;
}

/* The `disk` argument of pre_live_migration: NULL for a migration that is
 * not a block migration, else nova's JSON text of the local disks (none
 * shared or network volumes).  -errno with reterr. */
static int
disk_arg(wk_flow *f, struct mig *m, json_t **ret, struct wk_err *reterr)
{
	json_t *list;
	char *text;
	int r;

	*ret = NULL;
	if (!m->block_migration)
		return 0;
	free(m->disks);
	m->disks = NULL;
	r = wk_hv_local_disks(
	    f->d.hv, m->uuid, f->d.conf->libvirt.instances_path, &m->disks, reterr);
	if (r < 0)
		return r;
	for (int i = 0; i < m->disks->n; i++)
		log_info(
		    "Block migration of '%s': local disk %s '%s' (%s, %lld bytes, backing '%s')",
		    m->uuid, m->disks->disk[i].target, m->disks->disk[i].path,
		    m->disks->disk[i].type, m->disks->disk[i].virt_disk_size,
		    m->disks->disk[i].backing_file);
	if (m->disks->n == 0)
		log_info("Block migration of '%s': no local disk below '%s'; nothing to copy",
		    m->uuid, f->d.conf->libvirt.instances_path);
	list = wk_disk_list_to_json(m->disks);
	text = list ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	*ret = text ? json_string(text) : NULL;
	free(text);
	return *ret != NULL ? 0 : wk_err_set(reterr, -ENOMEM, "out of memory");
}

/* Takes an outbound slot: asks the destination to reserve its side. */
static void
prepare(wk_flow *f, struct mig *m)
{
	struct wk_err err = {{0}};
	json_t *call_args, *disk = NULL;
	char why[sizeof(err.msg) + 64];
	int r;

	m->phase = PHASE_PREPARING;
	r = disk_arg(f, m, &disk, &err);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot list the local disks: %s", err.msg);
		log_error("Block migration of '%s': %s", m->uuid, why);
		m->phase = PHASE_QUEUED; /* nothing reserved at the destination */
		mig_finish_rollback(f, m, why);
		return;
	}
	call_args = json_pack("{s:O,s:o?,s:O?}", "instance", m->instance, "disk", disk,
	    "migrate_data", m->cast_migrate_data);
	r = call_args ? wk_bus_call(f->d.bus, m->dest_host, "pre_live_migration", RPC_VERSION,
	                    call_args, m->context, f->d.conf->rpc_response_timeout, on_pre_reply, m)
	              : -ENOMEM;
	if (r < 0)
		mig_finish_rollback(f, m, "cannot call pre_live_migration");
}

/* Migrations to one destination leave the queue in the order they came: an
 * older one waiting for that destination's slot (retry_at_ms) holds back
 * the younger ones, which would only take the slot it waits for. */
static bool
waits_behind_older(const wk_flow *f, const struct mig *m)
{
	for (const struct mig *o = f->migs; o != NULL; o = o->next)
		if (o != m && o->role == ROLE_SOURCE && o->phase == PHASE_QUEUED &&
		    o->seq < m->seq && strcmp(o->dest_host, m->dest_host) == 0)
			return true;
	return false;
}

/* Starts queued migrations, oldest first, while outbound slots are free. */
void
wk_flow_start_queued(wk_flow *f)
{
	uint64_t now = wk_now_ms();

	for (;;) {
		struct mig *next = NULL;

		if (f->stopping || (f->d.tuning->max_outbound > 0 &&
		                       outbound_busy(f) >= f->d.tuning->max_outbound))
			return;
		for (struct mig *m = f->migs; m != NULL; m = m->next)
			if (m->role == ROLE_SOURCE && m->phase == PHASE_QUEUED &&
			    m->retry_at_ms <= now && (next == NULL || m->seq < next->seq) &&
			    !waits_behind_older(f, m))
				next = m;
		if (next == NULL)
			return;
		wk_log_set_request_id(next->request_id);
		log_info(
		    "Live migration of '%s' to '%s' leaves the queue", next->uuid, next->dest_host);
		prepare(f, next);
	}
}

static int
queued_count(const wk_flow *f)
{
	int n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_SOURCE && m->phase == PHASE_QUEUED)
			n++;
	return n;
}

/* A migration that would wait joins a queue of at most
 * libvirt.max_queued_live_migrations; beyond it the cast is refused (the
 * dispatcher sends rollback start/end and compute.exception). */
static int
queue_has_room(const wk_flow *f, struct wk_err *reterr)
{
	int max = f->d.conf->libvirt.max_queued_live_migrations, n;

	if (max <= 0 || f->d.tuning->max_outbound <= 0 ||
	    outbound_busy(f) < f->d.tuning->max_outbound)
		return 0; /* unbounded, or it starts at once */
	n = queued_count(f);
	if (n < max)
		return 0;
	return wk_err_set(reterr, -EAGAIN,
	    "live_migration: the outbound queue of '%s' is full: %d migration(s) wait "
	    "(libvirt.max_queued_live_migrations = %d); rolled back",
	    f->d.conf->host, n, max);
}

/* Rolls back the queued migrations that waited for a slot (ours or the
 * destination's) longer than libvirt.live_migration_queue_timeout.  Returns
 * the ms until the next one would expire, or -1. */
int
wk_flow_expire_queued(wk_flow *f, uint64_t now_ms)
{
	uint64_t limit_ms = (uint64_t)f->d.conf->libvirt.live_migration_queue_timeout * 1000ULL;
	uint64_t next = 0;
	struct mig *m;

	if (limit_ms == 0)
		return -1;
again:
	for (m = f->migs; m != NULL; m = m->next) {
		char why[200];

		if (m->role != ROLE_SOURCE || m->phase != PHASE_QUEUED)
			continue;
		/* Unknown (recovered from the journal) or from before a reboot:
		 * the wait counts from now. */
		if (m->queued_since_ms == 0 || m->queued_since_ms > now_ms)
			m->queued_since_ms = now_ms;
		if (now_ms - m->queued_since_ms < limit_ms) {
			if (next == 0 || m->queued_since_ms + limit_ms < next)
				next = m->queued_since_ms + limit_ms;
			continue;
		}
		snprintf(why, sizeof(why),
		    "waited %llu s in the queue for %s (libvirt.live_migration_queue_timeout = "
		    "%d s)",
		    (unsigned long long)((now_ms - m->queued_since_ms) / 1000),
		    m->retry_at_ms != 0 ? "a free inbound slot on the destination"
		                        : "a free outbound slot",
		    f->d.conf->libvirt.live_migration_queue_timeout);
		wk_log_set_request_id(m->request_id);
		mig_finish_rollback(f, m, why);
		goto again; /* the table changed */
	}
	wk_log_set_request_id(NULL);
	return next == 0 ? -1 : (int)(next - now_ms);
}

int
wk_flow_live_migration(wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *args = rpc_msg_args(msg);
	json_t *instance = NULL, *dest = NULL, *block = NULL, *migration = NULL;
	json_t *migrate_data = NULL;
	struct wk_hv_domain_info info;
	const char *uuid = NULL;
	struct mig *m;
	int r;

	r = wk_flow_instance_arg(args, "live_migration", &uuid, &instance, reterr);
	if (r < 0)
		return r;
	if (f->stopping)
		return wk_err_set(reterr, -ESHUTDOWN, "live_migration: the worker is stopping");
	if ((r = wk_flow_arg_get(
	         args, "live_migration", "dest", JSON_STRING, true, &dest, reterr)) < 0 ||
	    (r = wk_flow_arg_get(args, "live_migration", "block_migration", JSON_TRUE, false,
	         &block, reterr)) < 0 ||
	    (r = wk_flow_arg_get(args, "live_migration", "migration", JSON_OBJECT, false,
	         &migration, reterr)) < 0 ||
	    (r = wk_flow_arg_get(args, "live_migration", "migrate_data", JSON_OBJECT, false,
	         &migrate_data, reterr)) < 0)
		return r;
	/* dest names the AMQP routing key and the libvirt URIs: only a host. */
	r = wk_addr_check(json_string_value(dest), "live_migration: dest", true, reterr);
	if (r < 0)
		return r;
	if (strcmp(json_string_value(dest), f->d.conf->host) == 0)
		return wk_err_set(reterr, -EINVAL, "live_migration: destination '%s' is this host",
		    f->d.conf->host);
	m = mig_find(f, uuid, ROLE_SOURCE);
	if (m != NULL && m->request_id != NULL && rpc_msg_request_id(msg) != NULL &&
	    strcmp(m->request_id, rpc_msg_request_id(msg)) == 0) {
		/* Redelivered after a restart that came between journal and ack. */
		log_info(
		    "Live migration of '%s' is already accepted, ignoring the redelivery", uuid);
		*ret_result = NULL;
		return 0;
	}
	if (m != NULL)
		return wk_err_set(reterr, -EBUSY, "instance '%s' is already migrating", uuid);
	r = queue_has_room(f, reterr);
	if (r < 0)
		return r;
	r = wk_hv_domain_info(f->d.hv, uuid, &info, reterr);
	if (r < 0)
		return r;
	if (info.state != WK_HV_STATE_RUNNING && info.state != WK_HV_STATE_PAUSED)
		return wk_err_set(reterr, -EINVAL, "instance '%s' is not running", uuid);

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->flow = f;
	m->role = ROLE_SOURCE;
	m->phase = PHASE_PREPARING;
	m->uuid = strdup(uuid);
	m->dest_host = strdup(json_string_value(dest));
	m->migration_uuid =
	    wk_flow_obj_str(migration, "uuid") ? strdup(wk_flow_obj_str(migration, "uuid")) : NULL;
	m->migration_id = -1;
	wk_progress_init(&m->progress);
	if (migration != NULL) {
		json_t *id = json_object_get(rpc_nova_object_data(migration), "id");

		if (json_is_integer(id))
			m->migration_id = json_integer_value(id);
	}
	m->request_id = rpc_msg_request_id(msg) ? strdup(rpc_msg_request_id(msg)) : NULL;
	m->block_migration = block != NULL && json_is_true(block);
	m->persistent = info.persistent;
	m->instance = json_incref(instance);
	m->context = json_incref(rpc_msg_context(msg));
	if (m->uuid == NULL || m->dest_host == NULL) {
		mig_free(m);
		return -ENOMEM;
	}
	r = mig_resolve_policy(f, m, instance, info.memory_kib, reterr);
	if (r < 0) {
		mig_free(m);
		return r;
	}
	m->cast_migrate_data = json_incref(migrate_data);
	m->seq = f->next_seq++;
	m->queued_since_ms = wk_now_ms();
	m->phase = PHASE_QUEUED;
	m->next = f->migs;
	f->migs = m;
	*ret_result = NULL;
	/* Before the cast is acked: a migration accepted but not on disk would
	 * be forgotten by a restart while nova believes it runs.  On failure
	 * the record leaves the table again (it is at the head, queued: no
	 * slot, no pending call, nothing written to drop) and the cast goes
	 * back to the queue, so its redelivery is accepted afresh. */
	r = mig_journal_save(f, m);
	if (r < 0) {
		f->migs = m->next;
		mig_free(m);
		return wk_err_set(reterr, WK_FLOW_REQUEUE,
		    "live_migration: cannot journal the migration of '%s' (%s)", uuid,
		    strerror(-r));
	}
	if (outbound_busy(f) >= f->d.tuning->max_outbound && f->d.tuning->max_outbound > 0) {
		log_info("Live migration of '%s' to '%s' accepted and queued: %d outbound "
		         "migration(s) at once (libvirt.max_concurrent_live_migrations)",
		    m->uuid, m->dest_host, f->d.tuning->max_outbound);
		return 0;
	}
	log_info("Live migration of '%s' to '%s' accepted", m->uuid, m->dest_host);
	prepare(f, m);
	return 0; /* a failure is reported through the rollback */
}

/* The Instance for an action's notifications: the cast's, as nova sends it,
 * unless the sender (an admin tool such as ferryctl) named little more than
 * the uuid; then the one the migration was started with. */
static json_t *
action_instance(json_t *cast_instance, const struct mig *m)
{
	json_t *data = rpc_nova_object_data(cast_instance);

	return json_object_get(data, "flavor") != NULL ? cast_instance : m->instance;
}

static struct mig *
running_source(wk_flow *f, const rpc_msg *msg, const char *method, json_t **ret_instance,
    struct wk_err *reterr, int *ret_r)
{
	const char *uuid = NULL;
	struct mig *m;

	*ret_r = wk_flow_instance_arg(rpc_msg_args(msg), method, &uuid, ret_instance, reterr);
	if (*ret_r < 0)
		return NULL;
	m = mig_find(f, uuid, ROLE_SOURCE);
	if (m == NULL)
		*ret_r = wk_err_set(
		    reterr, -ENOENT, "%s: no migration in progress for '%s'", method, uuid);
	return m;
}

int
wk_flow_force_complete(wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *instance = NULL;
	struct mig *m;
	int r;

	m = running_source(f, msg, "live_migration_force_complete", &instance, reterr, &r);
	if (m == NULL)
		return r;
	if (m->phase != PHASE_RUNNING)
		return wk_err_set(reterr, -EBUSY, "migration of '%s' is %s, cannot force it now",
		    m->uuid, mig_phase_name(m));
	wk_flow_notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_force_complete", "start");
	/* Post-copy at once; a pause once the first pass is over (the policy
	 * times it, mig_request_pause). */
	r = m->policy.permit_post_copy ? mig_force_complete(f, m, "on request", true, reterr)
	    : m->paused_by_us          ? 0
	                               : mig_request_pause(f, m, reterr);
	if (r == 0)
		mig_journal_save(f, m);
	wk_flow_notify_action(f, action_instance(instance, m), rpc_msg_context(msg),
	    "live_migration_force_complete", "end");
	*ret_result = NULL;
	return r;
}

int
wk_flow_abort(wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *instance = NULL;
	struct mig *m;
	int r;

	m = running_source(f, msg, "live_migration_abort", &instance, reterr, &r);
	if (m == NULL)
		return r;
	wk_flow_notify_action(
	    f, action_instance(instance, m), rpc_msg_context(msg), "live_migration_abort", "start");
	switch (m->phase) {
	case PHASE_QUEUED:
		r = 0;
		break;
	case PHASE_PREPARING:
		m->abort_requested = true; /* on_pre_reply rolls back instead of starting */
		snprintf(m->abort_reason, sizeof(m->abort_reason), "aborted on request");
		r = 0;
		break;
	case PHASE_RUNNING:
		r = wk_hv_abort(f->d.hv, m->uuid, reterr);
		if (r == 0) {
			m->abort_requested = true;
			snprintf(m->abort_reason, sizeof(m->abort_reason), "aborted on request");
		}
		break;
	case PHASE_POSTCOPY_FAILED:
		r = wk_err_set(reterr, -EBUSY,
		    "migration of '%s' failed in post-copy: the guest is split over both hosts and "
		    "cannot be aborted; 'ferryctl recover' resumes it",
		    m->uuid);
		break;
	default:
		r = wk_err_set(reterr, -EBUSY, "migration of '%s' is already completing", m->uuid);
		break;
	}
	wk_flow_notify_action(
	    f, action_instance(instance, m), rpc_msg_context(msg), "live_migration_abort", "end");
	if (r == 0 && m->phase == PHASE_QUEUED)
		mig_finish_rollback(f, m, "aborted on request while queued");
	else if (r == 0) {
		mig_journal_save(f, m);
		log_info("Abort of the migration of '%s' requested", m->uuid);
	}
	*ret_result = NULL;
	return r;
}

/* The job ended; ev->outcome is where the guest runs, read from both hosts. */
static void
on_job_done(wk_flow *f, struct mig *m, const struct wk_mig_event *ev)
{
	switch (ev->outcome) {
	case WK_MIG_MIGRATED:
		if (m->recovering)
			log_info(
			    "Recovered the post-copy migration of '%s' after %d attempt(s): the "
			    "guest runs on '%s'",
			    m->uuid, ev->recovery_attempts, m->dest_host);
		m->recovering = false;
		mig_finish_post(f, m);
		return;
	case WK_MIG_ON_SOURCE:
		m->recovering = false;
		if (m->abort_requested)
			mig_finish_rollback(f, m, m->abort_reason);
		else
			mig_finish_rollback_fault(f, m, ev->msg);
		return;
	case WK_MIG_POSTCOPY_FAILED:
		break;
	case WK_MIG_LOST:
		if (m->recovering || m->postcopy_active)
			break; /* a post-copy guest lost: said as a post-copy failure below */
		/* Neither post nor rollback would be true: say what is. */
		log_error("Migration of '%s' to '%s' ended with the guest on neither host", m->uuid,
		    m->dest_host);
		wk_flow_notify_exception(f, m->context, "live_migration", "MigrationError",
		    "the guest runs on neither host after its migration (destroyed meanwhile?)");
		mig_count_outcome(f, ROLE_SOURCE, OUTCOME_LOST);
		mig_unlink_free(f, m);
		return;
	}
	/* Never a rollback: the guest does not run on the source.  The record
	 * stays (journal, list_migrations) for an operator, unless the guest
	 * runs on neither host any more: then there is nothing left to keep. */
	m->recovering = false;
	m->phase = PHASE_POSTCOPY_FAILED;
	log_error("Post-copy migration of '%s' to '%s' could not be recovered (source %s, "
	          "destination %s): %s; 'ferryctl recover %s %s' retries",
	    m->uuid, m->dest_host, ev->source_state, ev->dest_state, ev->msg, f->d.conf->host,
	    m->uuid);
	mig_notify_postcopy_failed(f, m, ev);
	mig_count_outcome(f, ROLE_SOURCE, OUTCOME_POSTCOPY_FAILED);
	if (strcmp(ev->source_state, "absent") == 0 && strcmp(ev->dest_state, "absent") == 0) {
		log_error("'%s' runs on neither host: its record is dropped", m->uuid);
		mig_unlink_free(f, m);
		return;
	}
	mig_journal_save(f, m);
	wk_flow_start_queued(f); /* its outbound slot is free again */
}

int
wk_flow_recover_migration(
    wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	char uuid[RPC_UUID_DASHED_LEN];
	json_t *uuid_arg = NULL;
	struct mig *m;
	int r;

	r = wk_flow_arg_get(rpc_msg_args(msg), "recover_migration", "instance_uuid", JSON_STRING,
	    true, &uuid_arg, reterr);
	if (r < 0)
		return r;
	r = wk_flow_uuid_arg("recover_migration", json_string_value(uuid_arg), uuid, reterr);
	if (r < 0)
		return r;
	m = mig_find(f, uuid, ROLE_SOURCE);
	if (m == NULL)
		return wk_err_set(
		    reterr, -ENOENT, "recover_migration: no migration of '%s' here", uuid);
	if (m->phase != PHASE_POSTCOPY_FAILED)
		return wk_err_set(reterr, -EBUSY,
		    "recover_migration: the migration of '%s' is %s, not postcopy_failed", m->uuid,
		    mig_phase_name(m));
	wk_log_set_request_id(m->request_id);
	m->phase = PHASE_RUNNING;
	r = mig_adopt_job(f, m);
	if (r < 0) {
		m->phase = PHASE_POSTCOPY_FAILED;
		return wk_err_set(
		    reterr, r, "recover_migration: cannot start the recovery: %s", strerror(-r));
	}
	mig_journal_save(f, m);
	log_warning(
	    "Recovery of the post-copy migration of '%s' requested by an operator", m->uuid);
	*ret_result = json_pack("{s:s,s:s}", "instance_uuid", m->uuid, "status", "recovering");
	return *ret_result != NULL ? 0 : -ENOMEM;
}

void
wk_flow_on_job_event(wk_flow *f, const struct wk_mig_event *ev)
{
	struct mig *m = mig_find_job(f, ev->job_id);

	if (m == NULL || m->phase != PHASE_RUNNING)
		return; /* a late sample of a finished job */
	wk_log_set_request_id(m->request_id);
	if (ev->kind == WK_MIG_SAMPLE) {
		uint64_t interval = (uint64_t)(f->d.conf->notifications.progress_interval * 1000.0);

		/* Setup: nothing measured yet.  A block migration copies its
		 * disks first: progress, but nothing for the memory policy. */
		if (ev->sample.memory_total <= 0 && ev->sample.disk_total <= 0)
			return;
		m->last_sample = ev->sample;
		wk_progress_update(&m->progress, &ev->sample);
		/* While recovering, only libvirt can help: no policy action. */
		if (!m->recovering && ev->sample.memory_total > 0)
			mig_apply_policy(f, m, &ev->sample);
		if (wk_now_ms() - m->last_notify_ms >= interval)
			mig_notify_progress(f, m);
		wk_flow_reshare(f); /* a job libvirt reports for the first time */
		return;
	}
	if (ev->kind == WK_MIG_RECOVERING) {
		m->recovering = true;
		m->postcopy_active = true;
		m->broke_at_wall = (uint64_t)time(NULL);
		mig_journal_save(f, m);
		mig_notify_stream_broken(f, m, ev);
		mig_notify_progress(f, m);
		wk_flow_reshare(f);
		return;
	}
	on_job_done(f, m, ev);
	wk_flow_reshare(f); /* m no longer moves data (m may be gone) */
}

void
wk_flow_cast_failed(wk_flow *f, const rpc_msg *msg, const char *method, const char *text)
{
	json_t *instance = json_object_get(rpc_msg_args(msg), "instance");
	const char *uuid = rpc_nova_instance_uuid(instance);

	wk_flow_notify_exception(f, rpc_msg_context(msg), method, "MigrationError", text);
	/* A refused second cast for a guest that is migrating must not say
	 * "rolled back" about the migration that goes on. */
	if (uuid != NULL && mig_find(f, uuid, ROLE_SOURCE) != NULL)
		return;
	if (strcmp(method, "live_migration") == 0 && uuid != NULL) {
		wk_flow_notify_action(
		    f, instance, rpc_msg_context(msg), "live_migration_rollback", "start");
		wk_flow_notify_action(
		    f, instance, rpc_msg_context(msg), "live_migration_rollback", "end");
		mig_count_outcome(f, ROLE_SOURCE, OUTCOME_ROLLED_BACK);
	}
}
