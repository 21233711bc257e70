/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the inbound side of the bus: every AMQP body ferry
 * consumes goes through rpc_envelope_decode() and then either
 * rpc_msg_from_inner() (requests) or rpc_reply_parse() (replies to the
 * calls ferry makes).  After a successful decode it does what wk_dispatch
 * and wk_flow do with a request: the getters, the method lookup, the nova
 * argument accessors and the payload builders that copy the caller's
 * Instance.  It also checks one property: a decoded inner object survives
 * rpc_envelope_encode() and a second decode unchanged.
 *
 * Then each request goes where wk_dispatch sends it: the worker's handler
 * for its method id (rpc_methods.c), on one wk_flow built on first use over
 * the scripted fake hypervisor (tests/support/fake_hv.c), a bus without a
 * transport (its tap drops what the worker sends) and a journal in a
 * temporary directory.  Between inputs the migration events are drained and
 * the flow and bus ticked, as the main loop does; every FLOW_RESET_EVERY
 * inputs the flow is rebuilt from scratch so the records it keeps (pending
 * calls, reservations, journal files) stay bounded.
 */
#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fake_hv.h"
#include "rpc_dispatch.h"
#include "rpc_error.h"
#include "rpc_methods.h"
#include "rpc_msg.h"
#include "rpc_nova.h"
#include "rpc_reply.h"
#include "wk_bus_priv.h"
#include "wk_dispatch.h"
#include "wk_flow.h"
#include "wk_log.h"
#include "wk_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

/* Touches every byte of a string the way a logger or strdup would. */
static void
use_str(const char *s)
{
	if (s != NULL)
		sink += strlen(s);
}

/* Serializes a builder's result, then drops it. */
static void
use_json(json_t *j)
{
	char *text;

	if (j == NULL)
		return;
	text = rpc_json_dumps(j, JSON_COMPACT);
	use_str(text);
	free(text);
	json_decref(j);
}

/* Every refusal says why, in printable ASCII: the text goes to the log. */
static void
check_err(int r, const struct rpc_err *err)
{
	const unsigned char *p;

	if (r == -ENOMEM)
		return;
	if (err->msg[0] == '\0')
		abort();
	for (p = (const unsigned char *)err->msg; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			abort();
}

static void
round_trip(json_t *inner)
{
	json_t *again = NULL;
	size_t len = 0;
	char *body;

	body = rpc_envelope_encode(inner, &len);
	if (body == NULL)
		return;
	if (strlen(body) != len || rpc_envelope_decode(body, len, &again, NULL) != 0 ||
	    !json_equal(inner, again))
		abort();
	json_decref(again);
	free(body);
}

static void
use_request(const rpc_msg *msg)
{
	static const char *const actions[] = {"live_migration_pre", "live_migration_post_dest",
	    "live_migration_rollback", "live_migration_abort"};
	const struct rpc_method *m = NULL;
	struct rpc_err err = {{0}};
	json_t *args = rpc_msg_args(msg);
	json_t *context = rpc_msg_context(msg);
	json_t *instance = json_object_get(args, "instance");
	size_t i;

	use_str(rpc_msg_method(msg));
	use_str(rpc_msg_version(msg));
	use_str(rpc_msg_namespace(msg));
	use_str(rpc_msg_request_id(msg));
	use_str(rpc_msg_msg_id(msg));
	use_str(rpc_msg_reply_q(msg));
	use_str(rpc_msg_unique_id(msg));
	sink += (size_t)(rpc_msg_timeout(msg) > 0) + rpc_msg_is_call(msg);
	if (!json_is_object(args) || !json_is_object(context) || rpc_msg_inner(msg) == NULL)
		abort();

	if (rpc_dispatch_lookup(rpc_methods, rpc_methods_count, rpc_msg_method(msg),
	        rpc_msg_version(msg), rpc_msg_namespace(msg), &m, &err) == 0)
		sink += (size_t)m->id;
	else
		use_str(err.msg);

	/* wk_dispatch's failure texts quote the caller's method and version */
	{
		char *f =
		    rpc_failure_unsupported_version(rpc_msg_version(msg), rpc_msg_method(msg));
		char *g = rpc_failure_no_such_method(rpc_msg_method(msg));

		use_str(f);
		use_str(g);
		free(f);
		free(g);
		f = rpc_error_failure(-EINVAL, err.msg);
		use_str(f);
		free(f);
	}

	/* wk_flow's argument accessors */
	use_str(rpc_nova_instance_uuid(instance));
	sink += rpc_nova_object_data(instance) != NULL;
	sink += rpc_nova_object_data(json_object_get(args, "migration")) != NULL;
	sink += rpc_nova_object_data(json_object_get(args, "migrate_data")) != NULL;

	/* notifications copy what the caller sent */
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		use_json(rpc_nova_live_migration_payload(
		    instance, actions[i], i % 2 ? "end" : "start", "fuzz-host", context));
	use_json(rpc_nova_instance_action_payload(
	    instance, NULL, NULL, context, json_object_get(args, "fault")));

	/* a call is answered */
	if (rpc_msg_is_call(msg)) {
		json_t *reply = rpc_reply_build(rpc_msg_msg_id(msg), json_incref(args), NULL, true);
		size_t len = 0;
		char *body = reply ? rpc_envelope_encode(reply, &len) : NULL;

		sink += len;
		free(body);
		json_decref(reply);
	}
}

static void
use_reply(json_t *inner)
{
	struct rpc_reply_in rep;
	char *cls = NULL, *module = NULL, *message = NULL;

	if (rpc_reply_parse(inner, &rep, NULL) < 0)
		return;
	use_str(rep.msg_id);
	if (rep.failure != NULL && rpc_failure_parse(rep.failure, &cls, &module, &message) == 0) {
		use_str(cls);
		use_str(module);
		use_str(message);
		free(cls);
		free(module);
		free(message);
	}
}

/* ---- the worker's handlers, on a flow without a broker ---- */

#define FLOW_HOST "host1"
#define FLOW_URI  "fake://host1"
/* The instance in nova's captured casts (the seeds): a guest of this host,
 * so a live_migration seed gets past the hypervisor lookup. */
#define FLOW_GUEST "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21"
/* Requests between two rebuilds of the flow: pending calls to a peer that
 * never answers and reservations nobody releases would pile up otherwise. */
#define FLOW_RESET_EVERY 512

static struct {
	char dir[64];
	char journal_dir[96];
	struct wk_conf *conf;
	struct wk_tuning tuning;
	wk_hv *hv;
	wk_migrate *migrate;
	wk_bus *bus;
	wk_journal *journal;
	wk_flow *flow;
	unsigned long inputs;
} fw;

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "fuzz_rpc_msg: %s: %s\n", what, why ? why : "failed");
	abort();
}

/* What the worker sends goes nowhere; each message is still built. */
static void
tap(void *userdata, const char *exchange, const char *routing_key, json_t *inner)
{
	(void)userdata;
	(void)exchange;
	(void)routing_key;
	sink += inner != NULL;
}

static void
on_event(void *userdata, const struct wk_mig_event *ev)
{
	wk_flow_on_job_event(userdata, ev);
}

static void
ignore_event(void *userdata, const struct wk_mig_event *ev)
{
	(void)userdata;
	(void)ev;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
worker_start(void)
{
	struct wk_bus_config bc = {"compute", "nova-compute:" FLOW_HOST, "versioned_notifications",
	    true, fw.conf->rpc_response_timeout};
	struct wk_flow_deps deps;
	struct wk_err err = {{0}};

	fake_hv_reset();
	fake_hv_add_domain(FLOW_URI, FLOW_GUEST, WK_HV_STATE_RUNNING, 262144, true);
	if (wk_hv_open(&fake_hv_ops, FLOW_URI, &fw.hv, &err) < 0)
		die("wk_hv_open", err.msg);
	if (wk_migrate_new(fw.hv, &fw.migrate) < 0)
		die("wk_migrate_new", NULL);
	wk_migrate_set_recovery(
	    fw.migrate, (unsigned)fw.conf->libvirt.live_migration_postcopy_recovery_timeout, 20);
	if (wk_bus_new(NULL, &bc, &fw.bus) < 0)
		die("wk_bus_new", NULL);
	wk_bus_set_tap(fw.bus, tap, NULL);
	if (wk_journal_open(fw.dir, &fw.journal, &err) < 0)
		die("wk_journal_open", err.msg);
	memset(&deps, 0, sizeof(deps));
	deps.conf = fw.conf;
	deps.tuning = &fw.tuning;
	deps.bus = fw.bus;
	deps.hv = fw.hv;
	deps.migrate = fw.migrate;
	deps.journal = fw.journal;
	if (wk_flow_new(&deps, &fw.flow) < 0)
		die("wk_flow_new", NULL);
}

/* Stops the flow, waits for its migration threads (the fake hypervisor
 * ends them at once), frees everything and empties the journal. */
static void
worker_stop(void)
{
	uint64_t until = wk_now_ms() + 5000;

	wk_flow_stop(fw.flow);
	fw.flow = wk_flow_free(fw.flow);
	while (wk_migrate_running(fw.migrate) > 0 && wk_now_ms() < until) {
		usleep(1000);
		wk_migrate_drain(fw.migrate, ignore_event, NULL);
	}
	wk_migrate_drain(fw.migrate, ignore_event, NULL);
	if (wk_migrate_running(fw.migrate) > 0)
		die("worker_stop", "a migration thread still runs after 5 s");
	fw.migrate = wk_migrate_free(fw.migrate);
	fw.hv = wk_hv_close(fw.hv);
	fw.bus = wk_bus_free(fw.bus);
	fw.journal = wk_journal_free(fw.journal);
	nftw(fw.journal_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
worker_exit(void)
{
	if (fw.flow == NULL)
		return;
	worker_stop();
	fw.conf = wk_conf_free(fw.conf);
	nftw(fw.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
worker_init(void)
{
	struct wk_err err = {{0}};
	char path[128];
	FILE *f;

	/* The handlers log every refusal at error level. */
	wk_log_set_level(getenv("FUZZ_VERBOSE") ? WK_LOG_DEBUG : WK_LOG_CRITICAL);
	for (size_t i = 0; i < rpc_methods_count; i++)
		if (wk_dispatch_handler(rpc_methods[i].id) == NULL)
			die(rpc_methods[i].name, "method without a handler");
	/* tmpfs when there is one: the journal fsyncs every record */
	snprintf(fw.dir, sizeof(fw.dir), "%s/ferry-fuzz-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(fw.dir) == NULL)
		die("mkdtemp", fw.dir);
	snprintf(fw.journal_dir, sizeof(fw.journal_dir), "%s/migrations", fw.dir);
	snprintf(path, sizeof(path), "%s/worker.conf", fw.dir);
	f = fopen(path, "w");
	if (f == NULL)
		die(path, "cannot write");
	/* A one-second call timeout: the pre_live_migration calls nobody
	 * answers fail within the run and their rollbacks are fuzzed too. */
	fprintf(f,
	    "transport_url = \"rabbit://guest:guest@127.0.0.1:5672/\";\n"
	    "host = \"" FLOW_HOST "\";\n"
	    "state_dir = \"%s\";\n"
	    "rpc_response_timeout = 1;\n"
	    "libvirt = { live_migration_postcopy_recovery_timeout = 5; };\n",
	    fw.dir);
	fclose(f);
	if (wk_conf_load(path, &fw.conf, &err) < 0)
		die("wk_conf_load", err.msg);
	if (wk_tuning_derive(fw.conf, NULL, &fw.tuning, &err) < 0)
		die("wk_tuning_derive", err.msg);
	worker_start();
	atexit(worker_exit);
}

/* Refusal texts are cut at a fixed size, possibly inside a UTF-8 sequence
 * of a name the sender chose: wk_dispatch trims them the same way before
 * they reach JSON. */
static void
trim_utf8(char *s)
{
	s[wk_utf8_prefix(s, strlen(s))] = '\0';
}

/* What wk_dispatch's handle() does with a request, minus the broker. */
static void
use_handler(const rpc_msg *msg)
{
	const char *method = rpc_msg_method(msg);
	const struct rpc_method *m = NULL;
	struct rpc_err rerr = {{0}};
	struct wk_err err = {{0}};
	json_t *result = NULL;
	char *failure;
	uint64_t now;
	int r;

	if (fw.flow == NULL) {
		worker_init();
	} else if (++fw.inputs % FLOW_RESET_EVERY == 0) {
		worker_stop();
		worker_start();
	}
	wk_log_set_request_id(rpc_msg_request_id(msg));
	r = rpc_dispatch_lookup(rpc_methods, rpc_methods_count, method, rpc_msg_version(msg),
	    rpc_msg_namespace(msg), &m, &rerr);
	if (r < 0) {
		trim_utf8(rerr.msg);
		if (!rpc_msg_is_call(msg))
			wk_flow_cast_failed(fw.flow, msg, method, rerr.msg);
	} else {
		r = wk_dispatch_handler(m->id)(fw.flow, msg, &result, &err);
		if (r == 0) {
			wk_bus_reply(fw.bus, msg, result, NULL);
		} else if (r == WK_FLOW_REQUEUE || r < 0) {
			json_decref(result);
			trim_utf8(err.msg);
			if (r < 0 && rpc_msg_is_call(msg)) {
				failure = rpc_error_failure(r, err.msg);
				if (failure != NULL)
					wk_bus_reply(fw.bus, msg, NULL, failure);
				free(failure);
			} else if (r < 0) {
				wk_flow_cast_failed(fw.flow, msg, method, err.msg);
			}
		} else {
			die(method, "handler returned neither 0, -errno nor WK_FLOW_REQUEUE");
		}
	}
	wk_log_set_request_id(NULL);

	/* the main loop's turn */
	wk_migrate_drain(fw.migrate, on_event, fw.flow);
	now = wk_now_ms();
	wk_flow_tick(fw.flow, now);
	wk_bus_tick(fw.bus, now);
	sink += wk_flow_active(fw.flow);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_err err = {{0}};
	json_t *inner = NULL;
	rpc_msg *msg = NULL;
	int r;

	r = rpc_envelope_decode(data, size, &inner, &err);
	if (r < 0) {
		check_err(r, &err);
		return 0;
	}
	if (!json_is_object(inner))
		abort();
	round_trip(inner);
	use_reply(inner);
	sink += rpc_msg_peek_request_id(inner) != NULL;

	json_incref(inner);
	r = rpc_msg_from_inner(inner, &msg, &err);
	if (r == 0) {
		use_request(msg);
		use_handler(msg);
		rpc_msg_free(msg);
	} else {
		check_err(r, &err);
	}
	json_decref(inner);
	return 0;
}
