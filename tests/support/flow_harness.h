/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flow_harness: one ferry worker ("host1") around a real wk_flow, for unit
 * tests of the whole migration flow without root, libvirtd or a broker.
 *
 * The worker process is the flow with its real collaborators: wk_migrate
 * threads over the scripted fake hypervisor (fake_hv.h, host URIs
 * FH_SRC_URI and FH_DST_URI), a journal in a temporary state directory, and
 * a wk_bus without a transport whose tap records every message the worker
 * sends (notifications, its calls and casts to "host2", replies).  The test
 * plays nova and the destination: it hands requests to the flow's handlers
 * (built from nova's real live_migration cast, tests/data/reference/
 * oslo-fixtures), answers the worker's calls through wk_bus_on_delivery as
 * the reply queue would, and pumps the main loop (job events, flow and bus
 * ticks).  fh_restart() kills the worker the hard way (no wk_flow_stop) and
 * starts a new one on the same state directory, as a crash and a restart
 * would: the old process's migration threads finish inside the "libvirtd"
 * and their events go nowhere.
 *
 * Main thread only (the fake's migrations run on wk_migrate's threads).
 * Setup failures abort(): they are bugs of the test, not of the flow.
 */
#ifndef FLOW_HARNESS_H
#define FLOW_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "fake_hv.h"
#include "wk_flow.h"

#define FH_HOST    "host1" /* the worker under test */
#define FH_DEST    "host2" /* the other compute host */
#define FH_SRC_URI "fake://host1"
/* Where the source migrates to: qemu+<scheme>://<target_connect_addr>/system,
 * with the address fh_answer_pre gives. */
#define FH_DST_URI "qemu+tcp://host2/system"

/* One message the worker sent. */
struct fh_msg {
	char exchange[64], routing_key[256];
	json_t *inner; /* the inner oslo message (owned) */
	int process;   /* which worker process sent it (0, then 1 after a restart ...) */
	bool answered; /* a call the test replied to */
};

struct fh_dead_process {
	wk_hv *hv;
	wk_migrate *migrate;
};

struct fh {
	char dir[64]; /* state_dir (journal) and the configuration file */
	struct wk_conf *conf;
	struct wk_tuning tuning;
	json_t *cast_inner; /* nova's live_migration cast, as captured */
	/* the running worker process */
	wk_hv *hv;
	wk_migrate *migrate;
	wk_bus *bus;
	wk_journal *journal;
	wk_flow *flow;
	int process;
	/* crashed processes whose migration threads may still run */
	struct fh_dead_process dead[8];
	size_t ndead;
	/* everything sent, in order */
	struct fh_msg *msgs;
	size_t nmsgs, msgs_cap;
};

/* A fresh fake world and a worker whose configuration is good_minimal plus
 * libvirt_opts (libconfig settings inside the libvirt group, e.g.
 * "max_concurrent_live_migrations = 1;"; NULL for none).  Progress is
 * sampled every 50 ms; broken post-copy is retried every 20 ms. */
struct fh *fh_new(const char *libvirt_opts);
/* Waits (up to 5 s) for every migration thread to end, then frees all. */
void fh_free(struct fh *h);

/* Two guests on the source host, for suites that migrate one or both. */
#define FH_A "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21"
#define FH_B "7b3b6d97-7061-4f55-8d5c-1f4d3c1c8032"

/* A suite's one harness (Criterion runs each test in a process of its own):
 * fh_suite_start() is fh_new(libvirt_opts) with guests FH_A and FH_B added;
 * fh_suite_fini, the suite's .fini, frees it. */
struct fh *fh_suite_start(const char *libvirt_opts);
void fh_suite_fini(void);

/* A suite's prologue: declares the file's harness `h`, the Criterion suite
 * @name that frees it after each test, and start(libvirt_opts), which makes
 * it (fh_suite_start).  Each test calls start() first. */
#define FH_SUITE(name)                                                       \
	static struct fh *h;                                                 \
	TestSuite(name, .fini = fh_suite_fini, .timeout = 30);               \
	static void start(const char *libvirt_opts) __attribute__((unused)); \
	static void start(const char *libvirt_opts)                          \
	{                                                                    \
		h = fh_suite_start(libvirt_opts);                            \
	}                                                                    \
	struct fh_suite_semicolon_

/* Kills the worker without wk_flow_stop and starts a new one on the same
 * state directory; returns what wk_flow_recover returned. */
int fh_restart(struct fh *h);

/* Puts a running guest of uuid on this host (the fake's FH_SRC_URI). */
void fh_add_guest(const char *uuid);

/* ---- requests to the worker; each returns the handler's result code ---- */

/* A nova Instance primitive for uuid (new reference), from the fixture. */
json_t *fh_instance(const struct fh *h, const char *uuid);
/* Runs handler on a request built as nova would send it: method, args
 * (STOLEN), context and request id "req-<uuid>" from the fixture; a call
 * when call is true.  *ret_result (may be NULL) gets the result, err the
 * handler's reason. */
int fh_request(struct fh *h, wk_flow_handler handler, const char *method, json_t *args, bool call,
    const char *request_id, json_t **ret_result, struct wk_err *err);
/* nova's live_migration cast of uuid to FH_DEST. */
int fh_live_migration(struct fh *h, const char *uuid, struct wk_err *err);
/* live_migration_abort / live_migration_force_complete of uuid. */
int fh_abort(struct fh *h, const char *uuid, struct wk_err *err);
int fh_force_complete(struct fh *h, const char *uuid, struct wk_err *err);
/* ferry's recover_migration call. */
int fh_recover_migration(struct fh *h, const char *uuid, json_t **ret_result, struct wk_err *err);
/* list_migrations (new reference). */
json_t *fh_list(struct fh *h);

/* The journal record of uuid's migration in @role ("source" or
 * "destination"), new reference; NULL when there is none. */
json_t *fh_journal_record(struct fh *h, const char *role, const char *uuid);
/* The phase list_migrations shows for uuid's record of role ("source",
 * "destination"), or "" when there is none (copied into a static buffer). */
const char *fh_phase(struct fh *h, const char *uuid, const char *role);

/* ---- the main loop ---- */

/* One turn: waits up to 10 ms for job events, feeds them to the flow, then
 * ticks the flow and the bus at the real time. */
void fh_turn(struct fh *h);
/* Turns for ms milliseconds. */
void fh_pump(struct fh *h, unsigned ms);
/* Turns until pred(h, arg) holds (true) or timeout_ms passed (false). */
bool fh_pump_until(struct fh *h, bool (*pred)(struct fh *h, const void *arg), const void *arg,
    unsigned timeout_ms);
/* Turns until uuid's record of role shows phase ("" = no record left). */
bool fh_wait_phase(
    struct fh *h, const char *uuid, const char *role, const char *phase, unsigned timeout_ms);
/* Turns until at least n notifications of event_type about uuid were sent. */
bool fh_wait_event(
    struct fh *h, const char *event_type, const char *uuid, size_t n, unsigned timeout_ms);
/* Fails every pending call of ours as its timeout would (wk_bus_tick an hour
 * ahead). */
void fh_expire_calls(struct fh *h);

/* ---- what the worker sent ---- */

/* Notifications of event_type about uuid (NULL: any instance). */
size_t fh_count(const struct fh *h, const char *event_type, const char *uuid);
/* The n-th (from 0) such notification (the inner message), or NULL
 * (borrowed). */
json_t *fh_event(const struct fh *h, const char *event_type, const char *uuid, size_t n);
/* Its payload's nova_object.data, or NULL (borrowed). */
json_t *fh_event_data(const struct fh *h, const char *event_type, const char *uuid, size_t n);
/* Source terminal notifications of uuid: post.end + rollback.end +
 * postcopy_failed. */
size_t fh_source_terminals(const struct fh *h, const char *uuid);
/* Requests (calls and casts) of method about uuid sent to FH_DEST. */
size_t fh_requests(const struct fh *h, const char *method, const char *uuid);
/* Index of the oldest unanswered call of method about uuid, or -1. */
long fh_pending_call(const struct fh *h, const char *method, const char *uuid);
/* Turns until such a call exists; its index or -1 after timeout_ms. */
long fh_wait_call(struct fh *h, const char *method, const char *uuid, unsigned timeout_ms);

/* ---- answering the worker's calls, as the reply queue delivers ---- */

/* Replies to call idx with result (STOLEN, NULL for None). */
void fh_reply(struct fh *h, long idx, json_t *result);
/* Replies to call idx with a remote exception. */
void fh_reply_failure(struct fh *h, long idx, const char *cls, const char *message);
/* Waits for uuid's pre_live_migration call and answers as the destination
 * does (migrate_data with target_connect_addr FH_DEST); false if none came. */
bool fh_answer_pre(struct fh *h, const char *uuid);
/* Waits for uuid's post_live_migration_at_destination call and answers it. */
bool fh_answer_post(struct fh *h, const char *uuid);

/* ---- recorded job statistics (tests/data/traces/<name>.jsonl) ---- */

/* Reads the samples of trace name into out (at most max; event lines are
 * skipped); returns how many.  Absent fields are -1, as libvirt's. */
size_t fh_load_trace(const char *name, struct wk_job_sample *out, size_t max);

#endif /* FLOW_HARNESS_H */
