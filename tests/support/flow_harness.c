/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flow_harness: a worker around a real wk_flow on the fake hypervisor and a
 * tapped bus (see flow_harness.h).
 */
#include "flow_harness.h"

#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc_amqp.h"
#include "rpc_msg.h"
#include "rpc_nova.h"
#include "rpc_reply.h"
#include "trace_sample.h"
#include "wk_bus_priv.h"
#include "wk_log.h"

#define FIXTURE FERRY_SOURCE_DIR "/tests/data/reference/oslo-fixtures/cast_live_migration.json"

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "flow_harness: %s: %s\n", what, why ? why : "failed");
	abort();
}

static json_t *
must(json_t *j, const char *what)
{
	if (j == NULL)
		die(what, "out of memory or bad JSON");
	return j;
}

/* ---- the tap: every message the worker sends ---- */

static void
tap(void *userdata, const char *exchange, const char *routing_key, json_t *inner)
{
	struct fh *h = userdata;
	struct fh_msg *m;

	if (h->nmsgs == h->msgs_cap) {
		h->msgs_cap = h->msgs_cap ? 2 * h->msgs_cap : 64;
		h->msgs = realloc(h->msgs, h->msgs_cap * sizeof(*h->msgs));
		if (h->msgs == NULL)
			die("tap", "out of memory");
	}
	m = &h->msgs[h->nmsgs++];
	memset(m, 0, sizeof(*m));
	snprintf(m->exchange, sizeof(m->exchange), "%s", exchange);
	snprintf(m->routing_key, sizeof(m->routing_key), "%s", routing_key);
	/* A copy: payloads share objects (the Instance) with the flow's records. */
	m->inner = must(json_deep_copy(inner), "tap copy");
	m->process = h->process;
}

/* ---- one worker process ---- */

static void
start_process(struct fh *h)
{
	struct wk_bus_config bc = {"compute", "nova-compute:" FH_HOST, "versioned_notifications",
	    true, h->conf->rpc_response_timeout};
	struct wk_flow_deps deps;
	struct wk_err err = {{0}};

	if (wk_hv_open(&fake_hv_ops, FH_SRC_URI, &h->hv, &err) < 0)
		die("wk_hv_open", err.msg);
	if (wk_migrate_new(h->hv, &h->migrate) < 0)
		die("wk_migrate_new", NULL);
	wk_migrate_set_recovery(
	    h->migrate, (unsigned)h->conf->libvirt.live_migration_postcopy_recovery_timeout, 20);
	if (wk_bus_new(NULL, &bc, &h->bus) < 0)
		die("wk_bus_new", NULL);
	wk_bus_set_tap(h->bus, tap, h);
	if (wk_journal_open(h->dir, &h->journal, &err) < 0)
		die("wk_journal_open", err.msg);
	memset(&deps, 0, sizeof(deps));
	deps.conf = h->conf;
	deps.tuning = &h->tuning;
	deps.bus = h->bus;
	deps.hv = h->hv;
	deps.migrate = h->migrate;
	deps.journal = h->journal;
	if (wk_flow_new(&deps, &h->flow) < 0)
		die("wk_flow_new", NULL);
}

static void
ignore_event(void *userdata, const struct wk_mig_event *ev)
{
	(void)userdata;
	(void)ev;
}

/* Waits for the threads of m to end (they finish in the fake "libvirtd");
 * false when one still runs (a test that failed midway): then m and its
 * connection must stay allocated, the thread still uses them. */
static bool
reap(wk_migrate *m)
{
	uint64_t until = wk_now_ms() + 5000;

	while (wk_migrate_running(m) > 0 && wk_now_ms() < until) {
		usleep(10000);
		wk_migrate_drain(m, ignore_event, NULL);
	}
	wk_migrate_drain(m, ignore_event, NULL);
	if (wk_migrate_running(m) == 0)
		return true;
	fprintf(stderr, "flow_harness: a migration thread is still running at the end\n");
	return false;
}

int
fh_restart(struct fh *h)
{
	struct wk_err err = {{0}};
	int r;

	/* A crash: no wk_flow_stop, pending calls forgotten, migration threads
	 * left to libvirtd. */
	h->flow = wk_flow_free(h->flow);
	h->bus = wk_bus_free(h->bus);
	h->journal = wk_journal_free(h->journal);
	if (h->ndead == sizeof(h->dead) / sizeof(h->dead[0]))
		die("fh_restart", "too many restarts");
	h->dead[h->ndead].hv = h->hv;
	h->dead[h->ndead].migrate = h->migrate;
	h->ndead++;
	h->hv = NULL;
	h->migrate = NULL;
	h->process++;
	start_process(h);
	r = wk_flow_recover(h->flow, &err);
	if (r < 0)
		fprintf(stderr, "flow_harness: wk_flow_recover: %s\n", err.msg);
	return r;
}

static void
write_conf(struct fh *h, const char *libvirt_opts, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/worker.conf", h->dir);
	f = fopen(path, "w");
	if (f == NULL)
		die(path, "cannot write");
	fprintf(f,
	    "transport_url = \"rabbit://guest:guest@127.0.0.1:5672/\";\n"
	    "host = \"%s\";\n"
	    "state_dir = \"%s\";\n"
	    "notifications = { progress_interval = 0.05; };\n"
	    "libvirt = {\n"
	    "  live_migration_postcopy_recovery_timeout = 5;\n"
	    "  %s\n"
	    "};\n",
	    FH_HOST, h->dir, libvirt_opts ? libvirt_opts : "");
	fclose(f);
}

/* The options the configuration set explicitly win over link_speed, as
 * in ferry-worker (main.c). */
static void
explicit_of(const struct wk_conf *c, struct wk_tuning_explicit *x)
{
#define SET(f) wk_conf_explicit(c, offsetof(struct wk_conf, libvirt.f))
	memset(x, 0, sizeof(*x));
	x->bandwidth = SET(live_migration_bandwidth);
	x->downtime = SET(live_migration_downtime);
	x->downtime_steps = SET(live_migration_downtime_steps);
	x->downtime_delay = SET(live_migration_downtime_delay);
	x->completion_timeout = SET(live_migration_completion_timeout);
	x->max_outbound = SET(max_concurrent_live_migrations);
	x->max_inbound = SET(max_concurrent_inbound_migrations);
	x->compression = SET(live_migration_compression);
	x->compression_value = c->libvirt.live_migration_compression;
	x->parallel = SET(live_migration_parallel_connections);
	x->parallel_value = c->libvirt.live_migration_parallel_connections;
	x->postcopy_bandwidth = SET(live_migration_bandwidth_postcopy);
	x->native_tls = SET(live_migration_with_native_tls);
	x->zero_copy = SET(live_migration_zero_copy);
	x->multifd_compression = SET(live_migration_multifd_compression) &&
	                         c->libvirt.live_migration_multifd_compression != NULL;
	x->zstd_level = SET(live_migration_multifd_zstd_level);
#undef SET
}

struct fh *
fh_new(const char *libvirt_opts)
{
	struct fh *h = calloc(1, sizeof(*h));
	struct wk_tuning_explicit x;
	struct wk_err err = {{0}};
	json_error_t jerr;
	json_t *fixture, *body;
	struct rpc_err rerr = {{0}};
	char path[128];

	if (h == NULL)
		die("fh_new", "out of memory");
	if (getenv("FH_VERBOSE") == NULL)
		wk_log_set_level(WK_LOG_ERROR);
	fake_hv_reset();
	snprintf(h->dir, sizeof(h->dir), "/tmp/ferry-flow-XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		die("mkdtemp", NULL);
	write_conf(h, libvirt_opts, path, sizeof(path));
	if (wk_conf_load(path, &h->conf, &err) < 0)
		die("wk_conf_load", err.msg);
	explicit_of(h->conf, &x);
	if (wk_tuning_derive(h->conf, &x, &h->tuning, &err) < 0)
		die("wk_tuning_derive", err.msg);

	fixture = json_load_file(FIXTURE, 0, &jerr);
	if (fixture == NULL)
		die(FIXTURE, jerr.text);
	body = json_object_get(fixture, "body_raw");
	if (!json_is_string(body) || rpc_envelope_decode(json_string_value(body),
	                                 json_string_length(body), &h->cast_inner, &rerr) < 0)
		die(FIXTURE, rerr.msg);
	json_decref(fixture);
	start_process(h);
	return h;
}

void
fh_free(struct fh *h)
{
	char cmd[128];

	if (h == NULL)
		return;
	h->flow = wk_flow_free(h->flow);
	if (reap(h->migrate)) {
		h->migrate = wk_migrate_free(h->migrate);
		h->hv = wk_hv_close(h->hv);
	}
	h->bus = wk_bus_free(h->bus);
	h->journal = wk_journal_free(h->journal);
	for (size_t i = 0; i < h->ndead; i++) {
		if (!reap(h->dead[i].migrate))
			continue;
		wk_migrate_free(h->dead[i].migrate);
		wk_hv_close(h->dead[i].hv);
	}
	for (size_t i = 0; i < h->nmsgs; i++)
		json_decref(h->msgs[i].inner);
	free(h->msgs);
	json_decref(h->cast_inner);
	wk_conf_free(h->conf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "flow_harness: cannot remove %s\n", h->dir);
	free(h);
}

static struct fh *suite_h;

struct fh *
fh_suite_start(const char *libvirt_opts)
{
	suite_h = fh_new(libvirt_opts);
	fh_add_guest(FH_A);
	fh_add_guest(FH_B);
	return suite_h;
}

void
fh_suite_fini(void)
{
	fh_free(suite_h);
	suite_h = NULL;
}

void
fh_add_guest(const char *uuid)
{
	fake_hv_add_domain(FH_SRC_URI, uuid, WK_HV_STATE_RUNNING, 262144, true);
}

/* ---- requests ---- */

json_t *
fh_instance(const struct fh *h, const char *uuid)
{
	json_t *inst = must(
	    json_deep_copy(json_object_get(json_object_get(h->cast_inner, "args"), "instance")),
	    "instance");

	json_object_set_new(rpc_nova_object_data(inst), "uuid", json_string(uuid));
	return inst;
}

int
fh_request(struct fh *h, wk_flow_handler handler, const char *method, json_t *args, bool call,
    const char *request_id, json_t **ret_result, struct wk_err *err)
{
	static unsigned long calls;
	json_t *inner = must(json_deep_copy(h->cast_inner), "request");
	json_t *result = NULL;
	struct rpc_err rerr = {{0}};
	rpc_msg *msg = NULL;
	char *text, msg_id[64];
	size_t len;
	int r;

	json_object_set_new(inner, "method", json_string(method));
	json_object_set_new(inner, "args", args);
	json_object_del(inner, "_unique_id");
	if (request_id != NULL)
		json_object_set_new(inner, "_context_request_id", json_string(request_id));
	if (call) {
		snprintf(msg_id, sizeof(msg_id), "fh-call-%lu", ++calls);
		json_object_set_new(inner, "_msg_id", json_string(msg_id));
		json_object_set_new(inner, "_reply_q", json_string("reply_nova"));
	}
	/* Through the wire format, as the worker receives it. */
	text = rpc_envelope_encode(inner, &len);
	json_decref(inner);
	if (text == NULL)
		die("rpc_envelope_encode", NULL);
	if (rpc_msg_parse(text, len, &msg, &rerr) < 0)
		die("rpc_msg_parse", rerr.msg);
	free(text);
	r = handler(h->flow, msg, &result, err);
	rpc_msg_free(msg);
	if (ret_result != NULL)
		*ret_result = result;
	else
		json_decref(result);
	return r;
}

static void
request_id_of(const char *uuid, char *buf, size_t size)
{
	snprintf(buf, size, "req-%s", uuid);
}

int
fh_live_migration(struct fh *h, const char *uuid, struct wk_err *err)
{
	json_t *args = must(json_deep_copy(json_object_get(h->cast_inner, "args")), "args");
	char rid[96];

	json_object_set_new(args, "instance", fh_instance(h, uuid));
	json_object_set_new(args, "dest", json_string(FH_DEST));
	request_id_of(uuid, rid, sizeof(rid));
	return fh_request(h, wk_flow_live_migration, "live_migration", args, false, rid, NULL, err);
}

static int
instance_request(
    struct fh *h, wk_flow_handler fn, const char *method, const char *uuid, struct wk_err *err)
{
	char rid[96];

	snprintf(rid, sizeof(rid), "req-%s-%s", method, uuid);
	return fh_request(h, fn, method, json_pack("{s:o}", "instance", fh_instance(h, uuid)),
	    false, rid, NULL, err);
}

int
fh_abort(struct fh *h, const char *uuid, struct wk_err *err)
{
	return instance_request(h, wk_flow_abort, "live_migration_abort", uuid, err);
}

int
fh_force_complete(struct fh *h, const char *uuid, struct wk_err *err)
{
	return instance_request(
	    h, wk_flow_force_complete, "live_migration_force_complete", uuid, err);
}

int
fh_recover_migration(struct fh *h, const char *uuid, json_t **ret_result, struct wk_err *err)
{
	return fh_request(h, wk_flow_recover_migration, "recover_migration",
	    json_pack("{s:s}", "instance_uuid", uuid), true, NULL, ret_result, err);
}

json_t *
fh_list(struct fh *h)
{
	struct wk_err err = {{0}};
	json_t *list = NULL;

	if (fh_request(h, wk_flow_list_migrations, "list_migrations", json_object(), true, NULL,
	        &list, &err) < 0)
		die("list_migrations", err.msg);
	return list;
}

const char *
fh_phase(struct fh *h, const char *uuid, const char *role)
{
	static char phase[64];
	json_t *list = fh_list(h), *e;
	size_t i;

	phase[0] = '\0';
	json_array_foreach (list, i, e) {
		const char *u = json_string_value(json_object_get(e, "instance_uuid"));
		const char *r = json_string_value(json_object_get(e, "role"));

		if (u != NULL && r != NULL && strcmp(u, uuid) == 0 && strcmp(r, role) == 0)
			snprintf(phase, sizeof(phase), "%s",
			    json_string_value(json_object_get(e, "phase")));
	}
	json_decref(list);
	return phase;
}

/* ---- the main loop ---- */

static void
on_event(void *userdata, const struct wk_mig_event *ev)
{
	struct fh *h = userdata;

	wk_flow_on_job_event(h->flow, ev);
}

void
fh_turn(struct fh *h)
{
	struct pollfd p = {.fd = wk_migrate_fd(h->migrate), .events = POLLIN};
	uint64_t now;

	poll(&p, 1, 10);
	wk_migrate_drain(h->migrate, on_event, h);
	now = wk_now_ms();
	wk_flow_tick(h->flow, now);
	wk_bus_tick(h->bus, now);
}

void
fh_pump(struct fh *h, unsigned ms)
{
	uint64_t until = wk_now_ms() + ms;

	while (wk_now_ms() < until)
		fh_turn(h);
}

bool
fh_pump_until(
    struct fh *h, bool (*pred)(struct fh *h, const void *arg), const void *arg, unsigned timeout_ms)
{
	uint64_t until = wk_now_ms() + timeout_ms;

	for (;;) {
		if (pred(h, arg))
			return true;
		if (wk_now_ms() >= until)
			return false;
		fh_turn(h);
	}
}

struct phase_want {
	const char *uuid, *role, *phase;
};

static bool
phase_is(struct fh *h, const void *arg)
{
	const struct phase_want *w = arg;

	return strcmp(fh_phase(h, w->uuid, w->role), w->phase) == 0;
}

bool
fh_wait_phase(
    struct fh *h, const char *uuid, const char *role, const char *phase, unsigned timeout_ms)
{
	struct phase_want w = {uuid, role, phase};

	return fh_pump_until(h, phase_is, &w, timeout_ms);
}

struct event_want {
	const char *event_type, *uuid;
	size_t n;
};

static bool
event_seen(struct fh *h, const void *arg)
{
	const struct event_want *w = arg;

	return fh_count(h, w->event_type, w->uuid) >= w->n;
}

bool
fh_wait_event(struct fh *h, const char *event_type, const char *uuid, size_t n, unsigned timeout_ms)
{
	struct event_want w = {event_type, uuid, n};

	return fh_pump_until(h, event_seen, &w, timeout_ms);
}

void
fh_expire_calls(struct fh *h)
{
	wk_bus_tick(h->bus, wk_now_ms() + 3600 * 1000);
}

/* ---- what the worker sent ---- */

/* The instance a message is about: a notification's payload (uuid or
 * instance_uuid) or a request's Instance argument. */
static const char *
msg_uuid(json_t *inner)
{
	json_t *data = rpc_nova_object_data(json_object_get(inner, "payload"));
	const char *u;

	if (data != NULL) {
		u = json_string_value(json_object_get(data, "uuid"));
		return u ? u : json_string_value(json_object_get(data, "instance_uuid"));
	}
	return rpc_nova_instance_uuid(json_object_get(json_object_get(inner, "args"), "instance"));
}

static bool
is_event(const struct fh_msg *m, const char *event_type, const char *uuid)
{
	const char *et = json_string_value(json_object_get(m->inner, "event_type"));
	const char *u;

	if (et == NULL || strcmp(et, event_type) != 0)
		return false;
	u = msg_uuid(m->inner);
	return uuid == NULL || (u != NULL && strcmp(u, uuid) == 0);
}

size_t
fh_count(const struct fh *h, const char *event_type, const char *uuid)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nmsgs; i++)
		n += is_event(&h->msgs[i], event_type, uuid);
	return n;
}

json_t *
fh_event(const struct fh *h, const char *event_type, const char *uuid, size_t n)
{
	for (size_t i = 0; i < h->nmsgs; i++)
		if (is_event(&h->msgs[i], event_type, uuid) && n-- == 0)
			return h->msgs[i].inner;
	return NULL;
}

json_t *
fh_event_data(const struct fh *h, const char *event_type, const char *uuid, size_t n)
{
	json_t *inner = fh_event(h, event_type, uuid, n);

	return inner ? rpc_nova_object_data(json_object_get(inner, "payload")) : NULL;
}

size_t
fh_source_terminals(const struct fh *h, const char *uuid)
{
	return fh_count(h, "instance.live_migration_post.end", uuid) +
	       fh_count(h, "instance.live_migration_rollback.end", uuid) +
	       fh_count(h, "instance.live_migration_postcopy_failed", uuid);
}

static bool
is_request(const struct fh_msg *m, const char *method, const char *uuid)
{
	const char *me = json_string_value(json_object_get(m->inner, "method"));
	const char *u;

	if (me == NULL || strcmp(me, method) != 0 ||
	    strcmp(m->routing_key, "compute." FH_DEST) != 0)
		return false;
	u = msg_uuid(m->inner);
	return uuid == NULL || (u != NULL && strcmp(u, uuid) == 0);
}

size_t
fh_requests(const struct fh *h, const char *method, const char *uuid)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nmsgs; i++)
		n += is_request(&h->msgs[i], method, uuid);
	return n;
}

long
fh_pending_call(const struct fh *h, const char *method, const char *uuid)
{
	for (size_t i = 0; i < h->nmsgs; i++) {
		const struct fh_msg *m = &h->msgs[i];

		/* Only the living process's bus waits for an answer. */
		if (is_request(m, method, uuid) && !m->answered && m->process == h->process &&
		    json_is_string(json_object_get(m->inner, "_msg_id")))
			return (long)i;
	}
	return -1;
}

struct call_want {
	const char *method, *uuid;
};

static bool
call_pending(struct fh *h, const void *arg)
{
	const struct call_want *w = arg;

	return fh_pending_call(h, w->method, w->uuid) >= 0;
}

long
fh_wait_call(struct fh *h, const char *method, const char *uuid, unsigned timeout_ms)
{
	struct call_want w = {method, uuid};

	if (!fh_pump_until(h, call_pending, &w, timeout_ms))
		return -1;
	return fh_pending_call(h, method, uuid);
}

/* ---- answers ---- */

static void
deliver_reply(struct fh *h, long idx, json_t *result, const char *failure)
{
	struct fh_msg *m = &h->msgs[idx];
	const char *msg_id = json_string_value(json_object_get(m->inner, "_msg_id"));
	struct rpc_delivery d;
	json_t *inner;
	char *body;
	size_t len;

	if (msg_id == NULL)
		die("fh_reply", "not a call");
	inner = rpc_reply_build(msg_id, result, failure, true);
	if (inner == NULL)
		die("rpc_reply_build", NULL);
	body = rpc_envelope_encode(inner, &len);
	json_decref(inner);
	if (body == NULL)
		die("rpc_envelope_encode", NULL);
	memset(&d, 0, sizeof(d));
	d.kind = RPC_DELIVERY_REPLY;
	d.body = body;
	d.len = len;
	d.routing_key = "reply_test";
	m->answered = true;
	wk_bus_on_delivery(h->bus, &d);
	free(body);
}

void
fh_reply(struct fh *h, long idx, json_t *result)
{
	deliver_reply(h, idx, result, NULL);
}

void
fh_reply_failure(struct fh *h, long idx, const char *cls, const char *message)
{
	char *failure = rpc_failure_build(cls, "nova.exception", message, NULL);

	if (failure == NULL)
		die("rpc_failure_build", NULL);
	deliver_reply(h, idx, NULL, failure);
	free(failure);
}

bool
fh_answer_pre(struct fh *h, const char *uuid)
{
	long idx = fh_wait_call(h, "pre_live_migration", uuid, 3000);
	json_t *md, *data;

	if (idx < 0)
		return false;
	/* As nova's libvirt driver: the caller's migrate_data plus where to
	 * connect. */
	md = json_object_get(json_object_get(h->msgs[idx].inner, "args"), "migrate_data");
	md = json_is_object(md)
	         ? must(json_deep_copy(md), "migrate_data")
	         : must(rpc_nova_object("LibvirtLiveMigrateData", "nova", "1.10", json_object()),
	               "migrate_data");
	data = rpc_nova_object_data(md);
	json_object_set_new(data, "target_connect_addr", json_string(FH_DEST));
	fh_reply(h, idx, md);
	return true;
}

bool
fh_answer_post(struct fh *h, const char *uuid)
{
	long idx = fh_wait_call(h, "post_live_migration_at_destination", uuid, 3000);

	if (idx < 0)
		return false;
	fh_reply(h, idx, NULL);
	return true;
}

/* ---- traces ---- */

size_t
fh_load_trace(const char *name, struct wk_job_sample *out, size_t max)
{
	char path[512], line[8192];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/traces/%s.jsonl", FERRY_SOURCE_DIR, name);
	f = fopen(path, "r");
	if (f == NULL)
		die(path, "cannot open");
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		json_t *o = must(json_loads(line, 0, NULL), path);

		if (trace_sample_from_json(o, &out[n]))
			n++;
		json_decref(o);
	}
	fclose(f);
	return n;
}

json_t *
fh_journal_record(struct fh *h, const char *role, const char *uuid)
{
	struct wk_err err = {{0}};
	json_t *recs = NULL, *rec;
	char key[128];
	int corrupt = 0;

	if (wk_journal_load(h->journal, &recs, &corrupt, &err) < 0)
		return NULL;
	snprintf(key, sizeof(key), "%s-%s", role, uuid);
	rec = json_incref(json_object_get(recs, key));
	json_decref(recs);
	return rec;
}
