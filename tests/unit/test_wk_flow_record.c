/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_flow_record.c - the journal record of a migration, through a real
 * journal in a temporary directory: a source record and a destination
 * reservation (with its null fields) come back as they went in and survive
 * wk_flow_recover; a record of an older version or a broken one is refused
 * with the key named, and kept, never misread or deleted; no token of the
 * request context reaches the file.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tu_tmpdir.h"
#include "wk_flow_priv.h"

static char dir[64];
static wk_journal *journal;
static wk_bus *bus;
static wk_flow *flow;

static void
setup(void)
{
	struct wk_bus_config bc = {
	    "compute", "nova-compute:test", "versioned_notifications", false, 60};
	struct wk_flow_deps deps;
	struct wk_err err = {{0}};

	tu_tmpdir_make(dir, sizeof(dir), "flow-record");
	cr_assert_eq(wk_journal_open(dir, &journal, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_bus_new(NULL, &bc, &bus), 0);
	memset(&deps, 0, sizeof(deps));
	deps.bus = bus;
	deps.journal = journal;
	cr_assert_eq(wk_flow_new(&deps, &flow), 0);
}

static void
teardown(void)
{
	flow = wk_flow_free(flow);
	bus = wk_bus_free(bus);
	journal = wk_journal_free(journal);
	tu_tmpdir_remove(dir);
}

TestSuite(wk_flow_record, .init = setup, .fini = teardown);

static json_t *
instance(const char *uuid)
{
	return json_pack("{s:s,s:s,s:s,s:{s:s,s:s}}", "nova_object.name", "Instance",
	    "nova_object.namespace", "nova", "nova_object.version", "2.7", "nova_object.data",
	    "uuid", uuid, "vm_state", "active");
}

static struct mig *
source_mig(void)
{
	struct mig *m = calloc(1, sizeof(*m));

	cr_assert_not_null(m);
	m->flow = flow;
	m->role = ROLE_SOURCE;
	m->phase = PHASE_RUNNING;
	m->uuid = strdup("11111111-2222-3333-4444-555555555555");
	m->dest_host = strdup("host-b");
	m->migration_uuid = NULL; /* an admin tool's cast names no Migration */
	m->migration_id = -1;
	m->request_id = NULL; /* a cast without a request id */
	m->block_migration = true;
	m->paused_by_us = true;
	m->abort_requested = true;
	snprintf(m->abort_reason, sizeof(m->abort_reason), "aborted on request");
	m->instance = instance(m->uuid);
	m->context = json_pack("{s:s,s:s}", "request_id", "req-1", "user_id", "u1");
	m->migrate_data = json_pack("{s:s}", "nova_object.name", "LibvirtLiveMigrateData");
	m->seq = 7;
	m->started_ms = 123456789;
	m->max_downtime_ms = 750;
	m->policy_step = 3;
	m->policy.max_downtime_ms = 500;
	m->policy.downtime_steps = 10;
	m->policy.downtime_delay_s = 75;
	m->policy.completion_timeout_s = 800;
	m->policy.timeout_action = WK_TIMEOUT_FORCE_COMPLETE;
	m->policy.permit_post_copy = true;
	m->policy.permit_pause = true;
	m->policy.data_bytes = 4ULL << 30;
	m->policy_state.start_ms = 123456789;
	m->policy_state.deadline_ms = -1;
	m->policy_state.step_delay_ms = 150000;
	m->policy_state.step = 3;
	m->policy_state.reported = WK_REASON_DEADLINE_APPROACHING;
	m->policy_state.cur.iteration = 5;
	m->policy_state.cur.rem_min = 1000;
	m->policy_state.cur.proc_first = -1;
	for (int i = 0; i < WK_POLICY_HISTORY; i++) {
		m->policy_state.done[i].iteration = 4 - i;
		m->policy_state.done[i].rem_peak = 1LL << (40 - i);
		m->policy_state.done[i].t_last = 100u + (unsigned)i;
	}
	m->policy_state.last_processed = -1;
	m->policy_state.ladder_acted = true;
	m->policy_state.ladder_t_ms = 99;
	m->policy_state.paused = true;
	/* post-copy refused twice (given up), pause once */
	m->policy_state.failures[WK_ACTION_POST_COPY] = 2;
	m->policy_state.failures[WK_ACTION_PAUSE] = 1;
	m->policy_state.refused = 1u << WK_ACTION_POST_COPY;
	/* the dial's choices for this migration, as wk_tuning_resolve leaves them */
	m->tuning_resolved = true;
	m->tuning.parallel_connections = 4;
	m->tuning.compressed = false;
	m->tuning.multifd_compression = WK_MULTIFD_COMP_ZSTD;
	m->tuning.zstd_level = 3;
	m->tuning.zero_copy = false;
	m->tuning.qemu_version = WK_VERSION(10, 1, 0);
	m->tuning.libvirt_version = WK_VERSION(9, 4, 0);
	m->tuning.tls = true;
	snprintf(m->tuning.why.parallel, sizeof(m->tuning.why.parallel), "set in the config");
	snprintf(m->tuning.why.compression, sizeof(m->tuning.why.compression), "off: multifd");
	snprintf(m->tuning.why.multifd_compression, sizeof(m->tuning.why.multifd_compression),
	    "5G < 10G: zstd");
	snprintf(m->tuning.why.zero_copy, sizeof(m->tuning.why.zero_copy), "off: TLS");
	/* the convergence predictor's state (issue 10) */
	m->policy_state.cur.dirty_set = 7LL << 20;
	m->policy_state.cur.bps_max = 32LL << 20;
	m->policy_state.done[1].dirty_set = 9LL << 20;
	m->policy_state.struggling = true;
	m->policy_state.downtime_raised = true;
	m->policy_state.switch_wait_iter = 5;
	m->policy_state.switch_wait_t_ms = 123457000;
	m->policy_state.prev_iter = 5;
	m->policy_state.prev_rem = 1000;
	m->policy_state.prev_t_ms = 123457250;
	/* a force-complete by pause waiting for the end of a pass */
	m->policy_state.pause_req_iter = 1;
	m->policy_state.pause_req_t_ms = 123456500;
	return m;
}

static struct mig *
dest_reservation(void)
{
	struct mig *m = calloc(1, sizeof(*m));

	/* As wk_flow_pre_live_migration makes it: no dest host, no migration
	 * uuid, no migrate_data. */
	cr_assert_not_null(m);
	m->flow = flow;
	m->role = ROLE_DEST;
	m->phase = PHASE_INBOUND;
	m->uuid = strdup("99999999-8888-7777-6666-555555555555");
	m->migration_id = -1;
	m->instance = instance(m->uuid);
	m->started_ms = 42;
	return m;
}

static json_t *
load(const char *key)
{
	struct wk_err err = {{0}};
	json_t *recs = NULL, *rec;
	int corrupt = -1;

	cr_assert_eq(wk_journal_load(journal, &recs, &corrupt, &err), 0, "%s", err.msg);
	cr_assert_eq(corrupt, 0);
	rec = json_incref(json_object_get(recs, key));
	json_decref(recs);
	return rec;
}

static bool
same_json(json_t *a, json_t *b)
{
	return (a == NULL && b == NULL) || json_equal(a, b);
}

static void
assert_same(const struct mig *a, const struct mig *b)
{
	cr_assert_eq(a->role, b->role);
	cr_assert_eq(a->phase, b->phase);
	cr_assert_str_eq(a->uuid, b->uuid);
	cr_assert_eq(a->dest_host == NULL, b->dest_host == NULL);
	if (a->dest_host != NULL)
		cr_assert_str_eq(a->dest_host, b->dest_host);
	cr_assert_eq(a->migration_uuid == NULL, b->migration_uuid == NULL);
	cr_assert_eq(a->request_id == NULL, b->request_id == NULL);
	cr_assert_eq(a->migration_id, b->migration_id);
	cr_assert_eq(a->block_migration, b->block_migration);
	cr_assert_eq(a->persistent, b->persistent);
	cr_assert_eq(a->postcopy_active, b->postcopy_active);
	cr_assert_eq(a->paused_by_us, b->paused_by_us);
	cr_assert_eq(a->abort_requested, b->abort_requested);
	cr_assert_str_eq(a->abort_reason, b->abort_reason);
	cr_assert(same_json(a->instance, b->instance));
	cr_assert(same_json(a->migrate_data, b->migrate_data));
	cr_assert(same_json(a->cast_migrate_data, b->cast_migrate_data));
	cr_assert_eq(a->seq, b->seq);
	cr_assert_eq(a->started_ms, b->started_ms);
	cr_assert_eq(a->max_downtime_ms, b->max_downtime_ms);
	cr_assert_eq(a->policy_step, b->policy_step);
	/* Both calloc'ed, every field assigned: equal bytes mean equal fields. */
	cr_assert_eq(memcmp(&a->policy, &b->policy, sizeof(a->policy)), 0);
	cr_assert_eq(memcmp(&a->policy_state, &b->policy_state, sizeof(a->policy_state)), 0);
	cr_assert_eq(a->tuning_resolved, b->tuning_resolved);
	cr_assert_eq(memcmp(&a->tuning, &b->tuning, sizeof(a->tuning)), 0);
}

Test(wk_flow_record, source_record_round_trips_through_the_journal)
{
	struct mig *m = source_mig(), *back = NULL;
	struct wk_err err = {{0}};
	json_t *rec, *tuning;

	mig_journal_save(flow, m);
	rec = load("source-11111111-2222-3333-4444-555555555555");
	cr_assert_not_null(rec);
	cr_assert_eq(json_integer_value(json_object_get(rec, "version")), 2);
	cr_assert(json_is_object(json_object_get(rec, "policy")), "policy is named fields");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(rec, "policy"), "timeout_action")),
	    "force_complete");
	tuning = json_object_get(rec, "tuning");
	cr_assert(json_is_object(tuning), "the dial's choices are in the record");
	cr_assert_eq(json_integer_value(json_object_get(tuning, "parallel_connections")), 4);
	cr_assert_str_eq(json_string_value(json_object_get(tuning, "multifd_compression")), "zstd");
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(tuning, "why"), "zero_copy")),
	    "off: TLS");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	assert_same(m, back);
	cr_assert(same_json(m->context, back->context));
	json_decref(rec);
	mig_free(back);

	/* a record of a worker before the dial has no "tuning": left unresolved */
	rec = mig_record(m);
	json_object_del(rec, "tuning");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	cr_assert_eq(back->tuning_resolved, false);
	mig_free(back);
	/* a broken one is refused with the key named */
	json_object_set_new(rec, "tuning", json_pack("{s:i}", "parallel_connections", 4));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "tuning.xbzrle"), "%s", err.msg);
	json_decref(rec);
	mig_free(m);
}

Test(wk_flow_record, failed_postcopy_record_keeps_its_phase)
{
	struct mig *m = source_mig(), *back = NULL;
	struct wk_err err = {{0}};
	json_t *rec;

	m->phase = PHASE_POSTCOPY_FAILED;
	m->postcopy_active = true;
	mig_journal_save(flow, m);
	rec = load("source-11111111-2222-3333-4444-555555555555");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "phase")), "postcopy_failed");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	assert_same(m, back);
	json_decref(rec);
	mig_free(back);
	mig_free(m);
}

Test(wk_flow_record, destination_reservation_with_nulls_survives_a_restart)
{
	struct mig *m = dest_reservation(), *back = NULL;
	struct wk_err err = {{0}};
	json_t *rec;

	mig_journal_save(flow, m);
	rec = load("destination-99999999-8888-7777-6666-555555555555");
	cr_assert_not_null(rec);
	cr_assert(json_is_null(json_object_get(rec, "dest_host")));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	assert_same(m, back);
	mig_free(back);

	/* Absent rather than null reads the same. */
	json_object_del(rec, "dest_host");
	json_object_del(rec, "request_id");
	json_object_del(rec, "migrate_data");
	back = NULL;
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	assert_same(m, back);
	mig_free(back);
	json_decref(rec);

	/* The whole restart: the reservation is carried on and still journalled. */
	cr_assert_eq(wk_flow_recover(flow, &err), 1, "%s", err.msg);
	cr_assert_eq(wk_flow_active(flow), 1);
	rec = load("destination-99999999-8888-7777-6666-555555555555");
	cr_assert_not_null(rec, "a recovered reservation must stay in the journal");
	json_decref(rec);
	mig_free(m);
}

Test(wk_flow_record, version_1_record_is_refused_and_kept)
{
	struct wk_err err = {{0}};
	struct mig *back = NULL;
	json_t *rec;

	/* What ferry wrote before: raw struct bytes as hex, phase as a number. */
	rec = json_pack("{s:i,s:s,s:i,s:s,s:n,s:n,s:I,s:n,s:b,s:b,s:b,s:b,s:b,s:s,s:o,s:n,s:n,"
	                "s:n,s:I,s:I,s:I,s:i,s:s,s:s}",
	    "version", 1, "role", "destination", "phase", 4, "uuid", "u-old", "dest_host",
	    "migration_uuid", "migration_id", (json_int_t)-1, "request_id", "block_migration", 0,
	    "persistent", 0, "postcopy_active", 0, "paused_by_us", 0, "abort_requested", 0,
	    "abort_reason", "", "instance", instance("u-old"), "context", "migrate_data",
	    "cast_migrate_data", "seq", (json_int_t)0, "started_ms", (json_int_t)42,
	    "max_downtime_ms", (json_int_t)0, "policy_step", 0, "policy", "00ff00ff",
	    "policy_state", "abcdef");
	cr_assert_not_null(rec);
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EPROTONOSUPPORT);
	cr_assert_null(back);
	cr_assert_not_null(strstr(err.msg, "'version'"), "%s", err.msg);
	cr_assert_not_null(
	    strstr(err.msg, "written by an older ferry (record version 1)"), "%s", err.msg);

	cr_assert_eq(wk_journal_write(journal, "destination-u-old", rec, &err), 0, "%s", err.msg);
	json_decref(rec);
	cr_assert_eq(wk_flow_recover(flow, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_flow_active(flow), 0, "an old record must not be misread");
	rec = load("destination-u-old");
	cr_assert_not_null(rec, "an old record must be kept, not deleted");
	json_decref(rec);
}

Test(wk_flow_record, broken_record_names_the_key_not_the_value)
{
	struct mig *m = source_mig(), *back = NULL;
	struct wk_err err = {{0}};
	json_t *rec = mig_record(m);

	cr_assert_not_null(rec);
	json_object_set_new(
	    json_object_get(rec, "policy"), "timeout_action", json_string("s3cr3t-value"));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "'policy.timeout_action'"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "s3cr3t"), "%s", err.msg);

	json_object_del(json_object_get(rec, "policy"), "timeout_action");
	json_object_set_new(json_object_get(rec, "policy_state"), "step", json_string("3"));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "policy"), "%s", err.msg);

	json_object_set_new(rec, "dest_host", json_null()); /* a source needs one */
	json_object_set_new(json_object_get(rec, "policy"), "timeout_action", json_string("abort"));
	json_object_set_new(json_object_get(rec, "policy_state"), "step", json_integer(3));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "'dest_host'"), "%s", err.msg);
	json_decref(rec);
	mig_free(m);
}

/* An oslo context as nova sends it, with everything secret it carries. */
static json_t *
full_context(void)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s,s],s:b,s:s,s:s,s:s,s:[{s:s}],s:s,"
	                 "s:s,s:s,s:{s:s}}",
	    "request_id", "req-1", "global_request_id", "req-g", "user", "u1", "user_id", "u1",
	    "project_id", "p1", "tenant", "p1", "user_name", "alice", "roles", "admin", "member",
	    "is_admin", 1, "auth_token", "gAAAAA-the-token", "auth_token_info", "tok-info",
	    "service_token", "svc-token", "service_catalog", "type", "compute", "db_password",
	    "pw-1", "app_secret", "sec-1", "X-Subject-Token", "hdr-token", "user_auth_plugin",
	    "plugin-token", "plugin-state");
}

Test(wk_flow_record, journal_context_keeps_identity_and_drops_secrets)
{
	json_t *ctx = full_context();
	json_t *kept = wk_flow_journal_context(ctx);
	const char *key;
	json_t *v;
	char *text;

	cr_assert_not_null(kept);
	cr_assert_str_eq(json_string_value(json_object_get(kept, "request_id")), "req-1");
	cr_assert_str_eq(json_string_value(json_object_get(kept, "global_request_id")), "req-g");
	cr_assert_str_eq(json_string_value(json_object_get(kept, "user_id")), "u1");
	cr_assert_str_eq(json_string_value(json_object_get(kept, "project_id")), "p1");
	cr_assert_str_eq(json_string_value(json_object_get(kept, "tenant")), "p1");
	cr_assert_str_eq(json_string_value(json_object_get(kept, "user_name")), "alice");
	cr_assert_eq(json_array_size(json_object_get(kept, "roles")), 2);
	cr_assert(json_is_true(json_object_get(kept, "is_admin")));
	json_object_foreach (kept, key, v) {
		cr_assert_null(strcasestr(key, "token"), "%s kept", key);
		cr_assert_null(strcasestr(key, "secret"), "%s kept", key);
		cr_assert_null(strcasestr(key, "password"), "%s kept", key);
		cr_assert_null(strcasestr(key, "catalog"), "%s kept", key);
	}
	text = json_dumps(kept, JSON_COMPACT);
	cr_assert_null(strstr(text, "token"), "%s", text);
	cr_assert_null(strstr(text, "pw-1"), "%s", text);
	cr_assert_null(strstr(text, "sec-1"), "%s", text);
	free(text);
	json_decref(kept);
	json_decref(ctx);
	cr_assert_null(wk_flow_journal_context(NULL));
}

/* Every byte the journal directory holds, concatenated. */
static char *
journal_bytes(void)
{
	char path[512], *all = calloc(1, 1);
	size_t len = 0;
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/migrations", dir);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		char buf[4096];
		size_t n;
		FILE *fp;

		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || e->d_name[1] == '.'))
			continue;
		snprintf(path, sizeof(path), "%s/migrations/%s", dir, e->d_name);
		fp = fopen(path, "r");
		cr_assert_not_null(fp, "%s", path);
		while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
			all = realloc(all, len + n + 1);
			cr_assert_not_null(all);
			memcpy(all + len, buf, n);
			len += n;
			all[len] = '\0';
		}
		fclose(fp);
	}
	closedir(d);
	return all;
}

Test(wk_flow_record, no_token_reaches_the_journal_file)
{
	struct mig *m = source_mig(), *back = NULL;
	struct wk_err err = {{0}};
	char *bytes;
	json_t *rec;

	json_decref(m->context);
	m->context = full_context();
	mig_journal_save(flow, m);
	bytes = journal_bytes();
	cr_assert_not_null(strstr(bytes, "req-1"), "the record must be on disk");
	cr_assert_null(strstr(bytes, "auth_token"));
	cr_assert_null(strstr(bytes, "gAAAAA-the-token"));
	cr_assert_null(strstr(bytes, "svc-token"));
	cr_assert_null(strstr(bytes, "service_catalog"));
	cr_assert_null(strstr(bytes, "pw-1"));
	cr_assert_null(strstr(bytes, "sec-1"));
	free(bytes);

	rec = load("source-11111111-2222-3333-4444-555555555555");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	cr_assert_str_eq(json_string_value(json_object_get(back->context, "user_id")), "u1");
	cr_assert_null(json_object_get(back->context, "auth_token"));
	json_decref(rec);
	mig_free(back);
	mig_free(m);
}

Test(wk_flow_record, failed_journal_write_is_returned)
{
	struct mig *m = dest_reservation();
	char path[128];

	/* Root ignores permissions: take the directory away under the open
	 * journal instead, so the write fails as on a lost disk. */
	snprintf(path, sizeof(path), "%s/migrations", dir);
	cr_assert_eq(rmdir(path), 0);
	cr_assert_lt(mig_journal_save(flow, m), 0, "live_migration must not ack this");
	mig_free(m);
}

Test(wk_flow_record, block_migration_disks_survive_a_restart)
{
	struct mig *m = source_mig(), *d = dest_reservation(), *back = NULL;
	struct wk_err err = {{0}};
	json_t *rec;

	m->disks = calloc(1, sizeof(*m->disks));
	m->disks->n = 1;
	snprintf(m->disks->disk[0].target, sizeof(m->disks->disk[0].target), "vda");
	snprintf(m->disks->disk[0].path, sizeof(m->disks->disk[0].path),
	    "/var/lib/nova/instances/u/disk");
	snprintf(m->disks->disk[0].type, sizeof(m->disks->disk[0].type), "qcow2");
	m->disks->disk[0].virt_disk_size = 1 << 30;
	m->disk_copy = WK_DISK_COPY_INCREMENTAL;
	mig_journal_save(flow, m);
	rec = load("source-11111111-2222-3333-4444-555555555555");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	assert_same(m, back);
	cr_assert_not_null(back->disks);
	cr_assert_eq(back->disks->n, 1);
	cr_assert_str_eq(back->disks->disk[0].target, "vda");
	cr_assert_str_eq(back->disks->disk[0].path, "/var/lib/nova/instances/u/disk");
	cr_assert_eq(back->disks->disk[0].virt_disk_size, 1 << 30);
	cr_assert_eq(back->disk_copy, WK_DISK_COPY_INCREMENTAL);
	cr_assert(!back->disks_removed);
	mig_free(back);
	back = NULL;
	json_decref(rec);
	/* the source's cleanup after the migration is not done twice */
	m->disks_removed = true;
	mig_journal_save(flow, m);
	rec = load("source-11111111-2222-3333-4444-555555555555");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	cr_assert(back->disks_removed);
	mig_free(back);
	back = NULL;
	json_object_set_new(rec, "disks_removed", json_string("yes"));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert(strstr(err.msg, "disks_removed") != NULL, "%s", err.msg);
	json_object_del(rec, "disks_removed");
	/* a bad copy mode is named */
	json_object_set_new(rec, "disk_copy", json_string("sideways"));
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), -EINVAL);
	cr_assert(strstr(err.msg, "disk_copy") != NULL, "%s", err.msg);
	json_decref(rec);

	d->created = json_pack("[{s:s,s:s},{s:s,s:s}]", "path", "/var/lib/nova/instances/u", "kind",
	    "dir", "path", "/var/lib/nova/instances/u/disk", "kind", "file");
	d->disk_copy = WK_DISK_COPY_FULL;
	mig_journal_save(flow, d);
	rec = load("destination-99999999-8888-7777-6666-555555555555");
	cr_assert_eq(mig_from_record(flow, rec, &back, &err), 0, "%s", err.msg);
	cr_assert(json_equal(back->created, d->created));
	cr_assert_eq(back->disk_copy, WK_DISK_COPY_FULL);
	cr_assert_null(back->disks);
	json_decref(rec);
	mig_free(back);
	mig_free(d);
	mig_free(m);
}
