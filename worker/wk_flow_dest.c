/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_dest: the destination side.  pre_live_migration reserves an
 * inbound slot and answers with where to connect; post/rollback at
 * destination release it; every reservation holds a lease, renewed while
 * the migration runs here, and is released when it ends.  Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_nova.h"
#include "wk_flow_priv.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

/* A reservation lasts 2 * rpc_response_timeout, at least this long: the
 * source's pre_live_migration call has long expired by then. */
#define LEASE_MIN_MS 20000
/* How often the leases are checked (one domain lookup per reservation). */
#define LEASE_CHECK_MS 5000

uint64_t
wk_flow_lease_ms(const wk_flow *f)
{
	uint64_t ms = 2ULL * (uint64_t)f->d.conf->rpc_response_timeout * 1000ULL;

	return ms < LEASE_MIN_MS ? LEASE_MIN_MS : ms;
}

/* The guest is here because a migration into this host is under way (or
 * its post-copy phase broke and waits for recovery). */
static bool
incoming(const struct wk_hv_domain_info *info)
{
	return info->reason == WK_HV_REASON_MIGRATING || info->reason == WK_HV_REASON_POSTCOPY ||
	       info->reason == WK_HV_REASON_POSTCOPY_FAILED;
}

/* Ends a reservation at its lease end.  Only where nothing arrived is it
 * a rollback at the destination, and said so (rollback_dest start/end, as
 * if the source's rollback had come); a guest that runs here gets no
 * notification that would claim a post or a rollback that did not happen. */
static void
release(wk_flow *f, struct mig *m, const char *why, bool nothing_arrived)
{
	wk_log_set_request_id(m->request_id);
	log_warning("Released the inbound reservation of '%s': %s", m->uuid, why);
	if (nothing_arrived) {
		wk_flow_notify_action(
		    f, m->instance, m->context, "live_migration_rollback_dest", "start");
		wk_flow_notify_action(
		    f, m->instance, m->context, "live_migration_rollback_dest", "end");
	}
	if (nothing_arrived)
		mig_drop_created(f, m, "its reservation was released");
	mig_count_outcome(f, ROLE_DEST, OUTCOME_RELEASED);
	mig_unlink_free(f, m);
}

void
mig_drop_created(wk_flow *f, struct mig *m, const char *why)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	size_t n = json_array_size(m->created);
	int r;

	if (n == 0)
		return;
	r = wk_hv_domain_info(f->d.hv, m->uuid, &info, &err);
	if (r == 0 && info.state != WK_HV_STATE_SHUTOFF) {
		log_warning("Kept the %zu disk image(s) and directories created for '%s' (%s): the "
		            "guest runs here",
		    n, m->uuid, why);
		return;
	}
	if (r < 0 && r != -ENOENT) {
		log_error(
		    "Kept the %zu disk image(s) and directories created for '%s' (%s): cannot "
		    "tell whether the guest runs here: %s",
		    n, m->uuid, why, err.msg);
		return;
	}
	if (wk_disk_remove_created(m->created, &err) < 0)
		log_error("Cannot remove every disk image created for '%s' (%s): %s", m->uuid, why,
		    err.msg);
	else
		log_info("Removed the %zu disk image(s) and directories created for '%s' (%s)", n,
		    m->uuid, why);
	mig_journal_save(f, m);
}

/* Creates the images the `disk` argument names (nova's
 * _create_images_and_backing), recorded in m->created.  An earlier
 * reservation's images (old, being replaced) are taken over when its
 * migration is arriving, else removed first. */
static int
create_disks(wk_flow *f, struct mig *m, struct mig *old, json_t *disk, struct wk_err *reterr)
{
	struct wk_disk_list *l;
	struct wk_err err = {{0}};
	int r;

	m->created = json_array();
	l = calloc(1, sizeof(*l));
	if (m->created == NULL || l == NULL) {
		free(l);
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	}
	r = wk_disk_list_from_arg(disk, f->d.conf->libvirt.instances_path, l, &err);
	if (r < 0) {
		free(l);
		return wk_err_set(
		    reterr, r, "pre_live_migration: argument 'disk' of '%s': %s", m->uuid, err.msg);
	}
	if (old != NULL && json_array_size(old->created) > 0) {
		struct wk_hv_domain_info info;

		if (wk_hv_domain_info(f->d.hv, m->uuid, &info, &err) == 0 && incoming(&info)) {
			json_array_extend(m->created, old->created);
			json_array_clear(old->created);
			m->disk_copy = old->disk_copy;
			free(l);
			log_info("pre_live_migration for '%s': its migration is arriving; the %zu "
			         "image(s) "
			         "of the earlier request are kept",
			    m->uuid, json_array_size(m->created));
			return 0;
		}
		mig_drop_created(f, old, "replaced by a new pre_live_migration");
	}
	r = wk_disk_create_all(f->d.conf->libvirt.instances_path, WK_DISK_QEMU_IMG, l, m->created,
	    &m->disk_copy, &err);
	if (r < 0) {
		free(l);
		return wk_err_set(reterr, r,
		    "pre_live_migration: cannot create the disks of '%s': %s", m->uuid, err.msg);
	}
	for (int i = 0; i < l->n; i++)
		log_info(
		    "Created disk image '%s' (%s, %lld bytes%s%s) for the block migration of '%s'",
		    l->disk[i].path, l->disk[i].type, l->disk[i].virt_disk_size,
		    m->disk_copy == WK_DISK_COPY_INCREMENTAL ? ", backing " : "",
		    m->disk_copy == WK_DISK_COPY_INCREMENTAL ? l->disk[i].backing_file : "",
		    m->uuid);
	free(l);
	return 0;
}

/* One reservation's lease: renewed while the migration runs here; at its
 * end the slot is freed whatever libvirt says, so neither a source that
 * vanished nor a post_live_migration_at_destination lost with the broker
 * can close this host to inbound migrations for good. */
static void
check_lease(wk_flow *f, struct mig *m, uint64_t now_ms, uint64_t lease_ms)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	char why[sizeof(err.msg) + 160];
	int r = wk_hv_domain_info(f->d.hv, m->uuid, &info, &err);

	if (m->lease_until_ms == 0)
		m->lease_until_ms = m->started_ms + lease_ms;
	if (r == 0 && incoming(&info)) {
		m->lease_until_ms = now_ms + lease_ms;
		return;
	}
	if (now_ms < m->lease_until_ms)
		return;
	if (r == -ENOENT)
		snprintf(why, sizeof(why),
		    "no migration arrived within its %llu s lease and no rollback came",
		    (unsigned long long)(lease_ms / 1000));
	else if (r == 0)
		snprintf(why, sizeof(why),
		    "the guest runs here and no migration is active for it, but "
		    "post_live_migration_at_destination did not come within %llu s; the guest "
		    "stays",
		    (unsigned long long)(lease_ms / 1000));
	else
		snprintf(why, sizeof(why),
		    "its %llu s lease ended and libvirt cannot say whether a migration runs "
		    "(%s)",
		    (unsigned long long)(lease_ms / 1000), err.msg);
	release(f, m, why, r == -ENOENT);
}

int
wk_flow_check_leases(wk_flow *f, uint64_t now_ms)
{
	uint64_t lease_ms = wk_flow_lease_ms(f);
	struct mig *m, *next;
	bool any = false;

	if (now_ms >= f->next_lease_check_ms) {
		f->next_lease_check_ms = now_ms + LEASE_CHECK_MS;
		for (m = f->migs; m != NULL; m = next) {
			next = m->next;
			if (m->role == ROLE_DEST)
				check_lease(f, m, now_ms, lease_ms);
		}
		wk_log_set_request_id(NULL);
	}
	for (m = f->migs; m != NULL; m = m->next)
		any = any || m->role == ROLE_DEST;
	return any ? (int)(f->next_lease_check_ms - now_ms) : -1;
}

static int
inbound_reserved(const wk_flow *f)
{
	int n = 0;

	for (const struct mig *m = f->migs; m != NULL; m = m->next)
		if (m->role == ROLE_DEST)
			n++;
	return n;
}

/* A guest that already runs here cannot migrate in: libvirt would refuse
 * the migration, and the slot would wait for a migration that never comes.
 * One that is arriving (a source that restarted between starting libvirt's
 * migration and journalling it asks again) is not refused. */
static int
refuse_running_here(wk_flow *f, const char *uuid, struct wk_err *reterr)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	int r = wk_hv_domain_info(f->d.hv, uuid, &info, &err);

	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		log_warning("pre_live_migration: cannot check whether '%s' already runs here: %s",
		    uuid, err.msg);
		return 0; /* libvirt decides when the migration comes */
	}
	if ((info.state == WK_HV_STATE_RUNNING || info.state == WK_HV_STATE_PAUSED) &&
	    !incoming(&info))
		return wk_err_set(reterr, -EEXIST,
		    "pre_live_migration: instance '%s' already runs on '%s'; nothing to migrate "
		    "here",
		    uuid, f->d.conf->host);
	return 0;
}

int
wk_flow_pre_live_migration(
    wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	json_t *args = rpc_msg_args(msg);
	json_t *instance = NULL, *migrate_data = NULL, *result, *data, *changes;
	json_t *disk = json_object_get(args, "disk");
	const char *uuid = NULL;
	struct mig *m, *old;
	int r;

	r = wk_flow_instance_arg(args, "pre_live_migration", &uuid, &instance, reterr);
	if (r < 0)
		return r;
	r = wk_flow_arg_get(
	    args, "pre_live_migration", "migrate_data", JSON_OBJECT, false, &migrate_data, reterr);
	if (r < 0)
		return r;
	r = refuse_running_here(f, uuid, reterr);
	if (r < 0)
		return r;
	if (disk != NULL && !json_is_null(disk) && !json_is_string(disk) && !json_is_array(disk))
		return wk_err_set(reterr, -EINVAL,
		    "pre_live_migration: argument 'disk' is not a JSON text, a list or null");
	old = mig_find(f, uuid, ROLE_DEST);
	if (f->d.tuning->max_inbound > 0 &&
	    inbound_reserved(f) - (old != NULL) >= f->d.tuning->max_inbound)
		return wk_err_set(reterr, -EAGAIN,
		    NO_INBOUND_SLOT " on '%s' for '%s': %d reserved "
		                    "(libvirt.max_concurrent_inbound_migrations)",
		    f->d.conf->host, uuid, f->d.tuning->max_inbound);
	wk_flow_notify_action(f, instance, rpc_msg_context(msg), "live_migration_pre", "start");

	/* Answer with the caller's migrate_data plus where to connect (as nova's
	 * libvirt driver does in pre_live_migration). */
	result = migrate_data
	             ? json_deep_copy(migrate_data)
	             : rpc_nova_object("LibvirtLiveMigrateData", "nova", "1.10", json_object());
	if (result == NULL)
		return -ENOMEM;
	data = rpc_nova_object_data(result);
	if (data == NULL) {
		json_decref(result);
		return wk_err_set(reterr, -EINVAL,
		    "pre_live_migration: argument 'migrate_data' is not a nova object");
	}
	json_object_set_new(data, "target_connect_addr",
	    json_string(f->d.conf->libvirt.live_migration_inbound_addr));
	changes = json_object_get(result, "nova_object.changes");
	if (!json_is_array(changes)) {
		changes = json_array();
		json_object_set_new(result, "nova_object.changes", changes);
	}
	json_array_append_new(changes, json_string("target_connect_addr"));

	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->uuid = strdup(uuid)) == NULL) {
		free(m);
		json_decref(result);
		return -ENOMEM;
	}
	m->flow = f;
	m->role = ROLE_DEST;
	m->phase = PHASE_INBOUND;
	m->migration_id = -1;
	wk_progress_init(&m->progress);
	m->instance = json_incref(instance);
	m->context = json_incref(rpc_msg_context(msg));
	m->request_id = rpc_msg_request_id(msg) ? strdup(rpc_msg_request_id(msg)) : NULL;
	m->started_ms = wk_now_ms();
	m->lease_until_ms = m->started_ms + wk_flow_lease_ms(f);
	r = create_disks(f, m, old, disk, reterr);
	if (r < 0) {
		mig_free(m);
		json_decref(result);
		return r;
	}
	if (old != NULL) {
		/* The source asks again only after it restarted: the new request
		 * takes over the reservation. */
		log_info("pre_live_migration for '%s' again: the new request replaces the "
		         "reservation",
		    uuid);
		mig_unlink_free(f, old);
	}
	if (m->disk_copy != WK_DISK_COPY_NONE)
		json_object_set_new(
		    data, "ferry_disk_copy", json_string(wk_disk_copy_name(m->disk_copy)));
	m->next = f->migs;
	f->migs = m;
	mig_journal_save(f, m);
	wk_flow_notify_action(f, instance, rpc_msg_context(msg), "live_migration_pre", "end");
	log_info("Inbound migration of '%s' prepared, connect to '%s' (slot held for %llu s "
	         "unless the migration starts)",
	    uuid, f->d.conf->libvirt.live_migration_inbound_addr,
	    (unsigned long long)(wk_flow_lease_ms(f) / 1000));
	*ret_result = result;
	return 0;
}

static int
end_inbound(
    wk_flow *f, const rpc_msg *msg, const char *method, const char *action, struct wk_err *reterr)
{
	json_t *instance = NULL;
	const char *uuid = NULL;
	struct mig *m;
	int r;

	r = wk_flow_instance_arg(rpc_msg_args(msg), method, &uuid, &instance, reterr);
	if (r < 0)
		return r;
	wk_flow_notify_action(f, instance, rpc_msg_context(msg), action, "start");
	m = mig_find(f, uuid, ROLE_DEST);
	if (m != NULL && strcmp(action, "live_migration_rollback_dest") == 0)
		mig_drop_created(f, m, method);
	if (m != NULL)
		mig_unlink_free(f, m);
	wk_flow_notify_action(f, instance, rpc_msg_context(msg), action, "end");
	mig_count_outcome(f, ROLE_DEST,
	    strcmp(action, "live_migration_post_dest") == 0 ? OUTCOME_COMPLETED
	                                                    : OUTCOME_ROLLED_BACK);
	log_info("Inbound migration of '%s' ended (%s)", uuid, method);
	return 0;
}

/* A guest the source paused to force completion arrives paused; nova's
 * instance state says whether it should run (a paused instance stays so). */
static void
resume_if_should_run(wk_flow *f, const rpc_msg *msg)
{
	json_t *instance = json_object_get(rpc_msg_args(msg), "instance");
	const char *uuid = rpc_nova_instance_uuid(instance);
	const char *vm_state = wk_flow_obj_str(instance, "vm_state");
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	if (uuid == NULL || vm_state == NULL || strcmp(vm_state, "active") != 0)
		return;
	if (wk_hv_domain_info(f->d.hv, uuid, &info, &err) < 0) {
		log_warning(
		    "Cannot check the state of '%s' after its migration: %s", uuid, err.msg);
		return;
	}
	if (info.state != WK_HV_STATE_PAUSED)
		return;
	if (wk_hv_resume(f->d.hv, uuid, &err) < 0)
		log_error("Cannot resume '%s' after its migration: %s", uuid, err.msg);
	else
		log_info("Resumed '%s', which arrived paused but should be running", uuid);
}

int
wk_flow_post_at_destination(
    wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	*ret_result = NULL;
	resume_if_should_run(f, msg);
	return end_inbound(
	    f, msg, "post_live_migration_at_destination", "live_migration_post_dest", reterr);
}

int
wk_flow_rollback_at_destination(
    wk_flow *f, const rpc_msg *msg, json_t **ret_result, struct wk_err *reterr)
{
	*ret_result = NULL;
	return end_inbound(f, msg, "rollback_live_migration_at_destination",
	    "live_migration_rollback_dest", reterr);
}
