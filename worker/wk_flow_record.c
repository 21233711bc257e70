/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_flow_record: what a restarted worker needs to carry on.  The journal
 * record of one migration (its format, written and read back here only),
 * when it is saved and dropped, and wk_flow_recover: what happens to each
 * phase when the worker restarts mid-migration.  Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_flow_priv.h"
#include "wk_journal.h"
#include "wk_log.h"

WK_LOG_NAME("worker.flow");

#define RECORD_VERSION 1

static void
journal_key(const struct mig *m, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%s", m->role == ROLE_SOURCE ? "source" : "destination", m->uuid);
}

/* Plain structs (no pointers) travel as hex, with their size as a check. */
static json_t *
hex_of(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	char *text = malloc(2 * n + 1);
	json_t *v;

	if (text == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		text[2 * i] = digits[b[i] >> 4];
		text[2 * i + 1] = digits[b[i] & 15];
	}
	text[2 * n] = '\0';
	v = json_string(text);
	free(text);
	return v;
}

static bool
unhex(json_t *v, void *p, size_t n)
{
	const char *t = json_string_value(v);
	unsigned char *b = p;

	if (t == NULL || strlen(t) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned hi, lo;

		if (sscanf(t + 2 * i, "%1x%1x", &hi, &lo) != 2)
			return false;
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

json_t *
mig_record(const struct mig *m)
{
	return json_pack("{s:i,s:s,s:i,s:s,s:s?,s:s?,s:I,s:s?,s:b,s:b,s:b,s:b,s:b,s:s,s:O?,s:O?,"
	                 "s:O?,s:O?,s:I,s:I,s:I,s:i,s:o,s:o}",
	    "version", RECORD_VERSION, "role", m->role == ROLE_SOURCE ? "source" : "destination",
	    "phase", (int)m->phase, "uuid", m->uuid, "dest_host", m->dest_host, "migration_uuid",
	    m->migration_uuid, "migration_id", (json_int_t)m->migration_id, "request_id",
	    m->request_id, "block_migration", m->block_migration, "persistent", m->persistent,
	    "postcopy_active", m->postcopy_active, "paused_by_us", m->paused_by_us,
	    "abort_requested", m->abort_requested, "abort_reason", m->abort_reason, "instance",
	    m->instance, "context", m->context, "migrate_data", m->migrate_data,
	    "cast_migrate_data", m->cast_migrate_data, "seq", (json_int_t)m->seq, "started_ms",
	    (json_int_t)m->started_ms, "max_downtime_ms", (json_int_t)m->max_downtime_ms,
	    "policy_step", m->policy_step, "policy", hex_of(&m->policy, sizeof(m->policy)),
	    "policy_state", hex_of(&m->policy_state, sizeof(m->policy_state)));
}

/* Records m as it is now.  A failure is logged: the migration goes on, it
 * would only not survive a restart of the worker. */
void
mig_journal_save(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	json_t *rec;
	char key[128];

	if (f->d.journal == NULL)
		return;
	journal_key(m, key, sizeof(key));
	rec = mig_record(m);
	if (rec == NULL || wk_journal_write(f->d.journal, key, rec, &err) < 0)
		log_error("Cannot journal the migration of '%s': %s", m->uuid,
		    rec ? err.msg : "out of memory");
	json_decref(rec);
}

void
mig_journal_drop(wk_flow *f, const struct mig *m)
{
	struct wk_err err = {{0}};
	char key[128];

	if (f->d.journal == NULL)
		return;
	journal_key(m, key, sizeof(key));
	if (wk_journal_remove(f->d.journal, key, &err) < 0)
		log_error("Cannot remove the journal record of '%s': %s", m->uuid, err.msg);
}

/* The inverse of mig_record; NULL when the record does not fit. */
struct mig *
mig_from_record(wk_flow *f, json_t *rec)
{
	json_t *instance = NULL, *context = NULL, *md = NULL, *cmd = NULL, *pol = NULL, *pst = NULL;
	const char *role, *uuid, *dest = NULL, *mig_uuid = NULL, *rid = NULL, *reason = "";
	json_int_t mig_id, seq, started, downtime;
	int version, phase, step;
	int block, persistent, postcopy, paused, aborted;
	struct mig *m;

	if (json_unpack(rec,
	        "{s:i,s:s,s:i,s:s,s?s,s?s,s:I,s?s,s:b,s:b,s:b,s:b,s:b,s?s,s:o,s?o,s?o,s?o,s:I,s:I,"
	        "s:I,s:i,s:o,s:o}",
	        "version", &version, "role", &role, "phase", &phase, "uuid", &uuid, "dest_host",
	        &dest, "migration_uuid", &mig_uuid, "migration_id", &mig_id, "request_id", &rid,
	        "block_migration", &block, "persistent", &persistent, "postcopy_active", &postcopy,
	        "paused_by_us", &paused, "abort_requested", &aborted, "abort_reason", &reason,
	        "instance", &instance, "context", &context, "migrate_data", &md,
	        "cast_migrate_data", &cmd, "seq", &seq, "started_ms", &started, "max_downtime_ms",
	        &downtime, "policy_step", &step, "policy", &pol, "policy_state", &pst) < 0 ||
	    version != RECORD_VERSION || phase < PHASE_QUEUED || phase > PHASE_INBOUND)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->flow = f;
	m->role = strcmp(role, "source") == 0 ? ROLE_SOURCE : ROLE_DEST;
	m->phase = (enum mig_phase)phase;
	m->uuid = strdup(uuid);
	m->dest_host = dest ? strdup(dest) : NULL;
	m->migration_uuid = mig_uuid ? strdup(mig_uuid) : NULL;
	m->migration_id = mig_id;
	m->request_id = rid ? strdup(rid) : NULL;
	m->block_migration = block;
	m->persistent = persistent;
	m->postcopy_active = postcopy;
	m->paused_by_us = paused;
	m->abort_requested = aborted;
	snprintf(m->abort_reason, sizeof(m->abort_reason), "%s", reason ? reason : "");
	m->instance = json_incref(instance);
	m->context = json_is_null(context) ? NULL : json_incref(context);
	m->migrate_data = json_is_null(md) ? NULL : json_incref(md);
	m->cast_migrate_data = json_is_null(cmd) ? NULL : json_incref(cmd);
	m->seq = (uint64_t)seq;
	m->started_ms = (uint64_t)started;
	m->max_downtime_ms = (unsigned long long)downtime;
	m->policy_step = step;
	wk_progress_init(&m->progress);
	if (m->uuid == NULL || (m->role == ROLE_SOURCE && m->dest_host == NULL) ||
	    !unhex(pol, &m->policy, sizeof(m->policy)) ||
	    !unhex(pst, &m->policy_state, sizeof(m->policy_state))) {
		mig_free(m);
		return NULL;
	}
	return m;
}

/* Carries one journalled migration on; false when it cannot be. */
static bool
recover_one(wk_flow *f, struct mig *m)
{
	unsigned interval_ms;

	wk_log_set_request_id(m->request_id);
	m->next = f->migs;
	f->migs = m;
	if (m->seq >= f->next_seq)
		f->next_seq = m->seq + 1;
	switch (m->phase) {
	case PHASE_INBOUND:
		if (m->started_ms > wk_now_ms())
			m->started_ms = wk_now_ms(); /* recorded before a reboot */
		log_info("Recovered the inbound reservation of '%s'", m->uuid);
		return true;
	case PHASE_QUEUED:
	case PHASE_PREPARING:
		/* Nothing reached libvirt yet: start over from the queue. */
		m->phase = PHASE_QUEUED;
		log_info("Recovered the accepted migration of '%s' to '%s'; queued", m->uuid,
		    m->dest_host);
		return true;
	case PHASE_RUNNING:
		interval_ms = (unsigned)(f->d.conf->notifications.progress_interval * 1000.0);
		m->job_id = f->next_job_id++;
		if (wk_migrate_adopt(f->d.migrate, m->job_id, m->uuid,
		        interval_ms > 250 ? 250 : interval_ms, m->request_id) < 0)
			return false;
		log_info("Re-adopted the running migration of '%s' to '%s' (step %d)", m->uuid,
		    m->dest_host, m->policy_step);
		return true;
	case PHASE_COMPLETING:
		log_info("Recovered the completed migration of '%s' to '%s'; finishing it", m->uuid,
		    m->dest_host);
		mig_finish_post(f, m);
		return true;
	}
	return false;
}

int
wk_flow_recover(wk_flow *f, struct wk_err *reterr)
{
	json_t *records = NULL, *rec;
	const char *key;
	int corrupt = 0, n = 0, r;

	if (f->d.journal == NULL)
		return 0;
	r = wk_journal_load(f->d.journal, &records, &corrupt, reterr);
	if (r < 0)
		return r;
	if (corrupt > 0)
		log_error("%d unreadable journal record(s) renamed to *.corrupt; those "
		          "migrations need an operator",
		    corrupt);
	json_object_foreach (records, key, rec) {
		struct mig *m = mig_from_record(f, rec);
		struct wk_err err = {{0}};

		if (m == NULL) {
			char *text = json_dumps(rec, JSON_COMPACT);

			log_error("Journal record '%s' does not fit this worker, dropped: %.2000s",
			    key, text ? text : "?");
			free(text);
			wk_journal_remove(f->d.journal, key, &err);
			continue;
		}
		if (!recover_one(f, m)) {
			log_error("Cannot carry on the migration of '%s'", m->uuid);
			mig_finish_rollback(f, m, "the restarted worker cannot carry it on");
			continue;
		}
		n++;
	}
	wk_log_set_request_id(NULL);
	json_decref(records);
	return n;
}
