/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_dispatch: the method table and the decode/ack/answer rules.
 * Acknowledgement: a request is acked once its handler has run (the
 * handlers only record state and publish, they never block), so a crash
 * before that redelivers it and _unique_id de-duplication drops the copy.
 * Undecodable messages are rejected without requeue; a call among them is
 * still answered with a failure when its top level says where to, and an
 * invalid cast naming an instance gets a compute.exception notification.
 * The one requeue: a handler that could not keep the request durably
 * (WK_FLOW_REQUEUE, a journal write failed) leaves it unacknowledged and
 * rejects it with requeue, so the broker hands it over again.
 */
#include "wk_dispatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc_dispatch.h"
#include "rpc_error.h"
#include "rpc_methods.h"
#include "rpc_nova.h"
#include "rpc_reply.h"
#include "wk_log.h"

WK_LOG_NAME("worker.dispatch");

#define DEDUP_SLOTS 64 /* oslo remembers 16 */
/*
 * A requeued message comes straight back (the broker puts it at the head
 * of the queue), and while the disk stays full its journal write fails
 * again at once.  A redelivery that is requeued again therefore waits
 * this long first, blocking the main loop: it bounds that loop to two
 * tries a second, one log line each, and stays far below the heartbeat
 * interval.  The first requeue is immediate (a passing error costs
 * nothing).  A quorum queue with a delivery limit drops the message after
 * that many tries; that limit is the operator's choice.
 */
#define REQUEUE_PAUSE_MS 500

/* Handlers by method id: the methods themselves (names, namespaces,
 * versions) are rpc/rpc_methods.c's one table. */
static const wk_flow_handler handlers[_RPC_M_MAX] = {
    [RPC_M_LIVE_MIGRATION] = wk_flow_live_migration,
    [RPC_M_LIVE_MIGRATION_FORCE_COMPLETE] = wk_flow_force_complete,
    [RPC_M_LIVE_MIGRATION_ABORT] = wk_flow_abort,
    [RPC_M_PRE_LIVE_MIGRATION] = wk_flow_pre_live_migration,
    [RPC_M_POST_LIVE_MIGRATION_AT_DESTINATION] = wk_flow_post_at_destination,
    [RPC_M_ROLLBACK_LIVE_MIGRATION_AT_DESTINATION] = wk_flow_rollback_at_destination,
    [RPC_M_LIST_MIGRATIONS] = wk_flow_list_migrations,
    [RPC_M_RECOVER_MIGRATION] = wk_flow_recover_migration,
};

struct wk_dispatch {
	rpc_amqp *amqp;
	wk_bus *bus;
	wk_flow *flow;
	char seen[DEDUP_SLOTS][64];
	size_t seen_next;
};

wk_flow_handler
wk_dispatch_handler(int id)
{
	return id >= 0 && id < _RPC_M_MAX ? handlers[id] : NULL;
}

int
wk_dispatch_new(rpc_amqp *amqp, wk_bus *bus, wk_flow *flow, wk_dispatch **ret_dispatch)
{
	wk_dispatch *d;

	/* A method added to rpc_methods.c without its handler here is a bug. */
	for (size_t i = 0; i < rpc_methods_count; i++)
		if (wk_dispatch_handler(rpc_methods[i].id) == NULL)
			return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->amqp = amqp;
	d->bus = bus;
	d->flow = flow;
	*ret_dispatch = d;
	return 0;
}

wk_dispatch *
wk_dispatch_free(wk_dispatch *d)
{
	free(d);
	return NULL;
}

/* Remembers unique_id; true when it was seen already.  An empty id (the
 * value of every free slot) or one too long to keep is never a duplicate:
 * oslo's are 32 hex digits. */
static bool
seen_before(wk_dispatch *d, const char *unique_id)
{
	if (unique_id == NULL || unique_id[0] == '\0' || strlen(unique_id) >= sizeof(d->seen[0]))
		return false;
	for (size_t i = 0; i < DEDUP_SLOTS; i++)
		if (strcmp(d->seen[i], unique_id) == 0)
			return true;
	snprintf(d->seen[d->seen_next], sizeof(d->seen[0]), "%s", unique_id);
	d->seen_next = (d->seen_next + 1) % DEDUP_SLOTS;
	return false;
}

/* Forgets unique_id, so its redelivery is handled rather than dropped as a
 * duplicate. */
static void
forget(wk_dispatch *d, const char *unique_id)
{
	if (unique_id == NULL || unique_id[0] == '\0')
		return;
	for (size_t i = 0; i < DEDUP_SLOTS; i++)
		if (strcmp(d->seen[i], unique_id) == 0)
			d->seen[i][0] = '\0';
}

/* Puts a request the handler could not keep back on the queue. */
static void
requeue(wk_dispatch *d, const struct rpc_delivery *dl, const rpc_msg *msg)
{
	struct timespec pause = {REQUEUE_PAUSE_MS / 1000, (REQUEUE_PAUSE_MS % 1000) * 1000000L};

	forget(d, rpc_msg_unique_id(msg));
	if (dl->redelivered)
		while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
			;
	if (rpc_amqp_reject(d->amqp, dl->tag, true) < 0)
		log_warning("Cannot requeue message %llu: broker connection lost, it will be "
		            "redelivered",
		    (unsigned long long)dl->tag);
}

/* Answers a call that could not even be parsed, when it says where to. */
static void
reply_raw_failure(wk_dispatch *d, json_t *inner, const char *failure)
{
	const char *msg_id = json_string_value(json_object_get(inner, "_msg_id"));
	const char *reply_q = json_string_value(json_object_get(inner, "_reply_q"));
	json_t *reply;

	if (msg_id == NULL || reply_q == NULL || failure == NULL)
		return;
	reply = rpc_reply_build(msg_id, NULL, failure, true);
	if (reply != NULL)
		rpc_amqp_publish(d->amqp, "", reply_q, reply, true, 0);
	json_decref(reply);
}

static void
finish(wk_dispatch *d, const struct rpc_delivery *dl, bool ok)
{
	int r = ok ? rpc_amqp_ack(d->amqp, dl->tag) : rpc_amqp_reject(d->amqp, dl->tag, false);

	if (r < 0)
		log_warning(
		    "Cannot %s message %llu: broker connection lost, it will be redelivered",
		    ok ? "ack" : "reject", (unsigned long long)dl->tag);
}

/*
 * A body rpc_envelope_decode() refused: one log line (with the request id
 * when its top level shows one), a failure reply when it shows where to
 * answer, then rejected without requeue.
 */
static void
undecodable(wk_dispatch *d, const struct rpc_delivery *dl, const char *why)
{
	char *msg_id = NULL, *reply_q = NULL, *rid = NULL;
	char text[sizeof(((struct rpc_err *)0)->msg) + 32];
	bool call;

	if (rpc_reply_peek_target(dl->body, dl->len, &msg_id, &reply_q, &rid) < 0)
		msg_id = reply_q = rid = NULL;
	call = msg_id != NULL;

	wk_log_set_request_id(rid);
	log_error("Undecodable message on '%s' (%zu bytes): %s, rejected%s", dl->routing_key,
	    dl->len, why, call ? "; failure sent to the caller" : "");
	if (call) {
		char *failure;
		json_t *reply;

		snprintf(text, sizeof(text), "undecodable message: %s", why);
		failure = rpc_error_failure(-EINVAL, text);
		reply = failure ? rpc_reply_build(msg_id, NULL, failure, true) : NULL;
		if (reply != NULL)
			rpc_amqp_publish(d->amqp, "", reply_q, reply, true, 0);
		json_decref(reply);
		free(failure);
	}
	free(msg_id);
	free(reply_q);
	free(rid);
	finish(d, dl, false);
	wk_log_set_request_id(NULL);
}

/*
 * An invalid cast that still names an instance: tell whoever watches that
 * instance, as nova's wrap_exception would (compute.exception, ERROR).
 */
static void
notify_invalid_cast(wk_dispatch *d, json_t *inner, const char *why)
{
	json_t *args = json_object_get(inner, "args");
	const char *method = json_string_value(json_object_get(inner, "method"));
	json_t *context, *payload, *value;
	const char *key;

	if (json_is_string(json_object_get(inner, "_msg_id")) ||
	    rpc_nova_instance_uuid(json_object_get(args, "instance")) == NULL)
		return;
	context = json_object();
	if (context == NULL)
		return;
	json_object_foreach (inner, key, value)
		if (strncmp(key, "_context_", 9) == 0)
			json_object_set(context, key + 9, value);
	payload = rpc_nova_exception_payload(
	    "ferry.worker", method ? method : "unknown", rpc_error_class(-EINVAL), why);
	if (payload == NULL ||
	    wk_bus_notify(d->bus, "compute.exception", "ERROR", payload, context) < 0)
		log_error("Cannot queue notification 'compute.exception'");
	json_decref(context);
}

/*
 * Error texts are cut at a fixed size, which can split a UTF-8 sequence of
 * a name the sender chose; JSON (failure replies, notifications) refuses
 * such text.  Drops an incomplete sequence at the end of @s.  (Not
 * wk_utf8_prefix: that one decides from the byte after the cut, and here the
 * cut has already happened.)
 */
static void
trim_cut_utf8(char *s)
{
	size_t n = strlen(s), lead = n, need;

	while (lead > 0 && n - lead < 3 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0 || ((unsigned char)s[lead - 1] & 0x80) == 0)
		return;
	lead--; /* s[lead] is where the last multi-byte sequence starts */
	if (((unsigned char)s[lead] & 0xe0) == 0xc0)
		need = 2;
	else if (((unsigned char)s[lead] & 0xf0) == 0xe0)
		need = 3;
	else if (((unsigned char)s[lead] & 0xf8) == 0xf0)
		need = 4;
	else
		need = 0; /* not a lead byte: invalid anyway, leave it */
	if (need != 0 && n - lead < need)
		s[lead] = '\0';
}

/* The one reply to a call: unconfirmed when its method changes no state
 * (rpc_method_read_only: calling again is as good as a resend). */
static void
reply(wk_dispatch *d, const rpc_msg *msg, const struct rpc_method *m, json_t *result,
    const char *failure)
{
	if (m != NULL && rpc_method_read_only(m->id))
		wk_bus_reply_read_only(d->bus, msg, result, failure);
	else
		wk_bus_reply(d->bus, msg, result, failure);
}

/* A failed call gets its failure; never a null result in its place. */
static void
reply_failure(wk_dispatch *d, const rpc_msg *msg, const struct rpc_method *m, const char *failure)
{
	if (failure == NULL) {
		log_error("Out of memory building the failure reply to '%s': not answered",
		    rpc_msg_method(msg));
		return;
	}
	reply(d, msg, m, NULL, failure);
}

static void
handle(wk_dispatch *d, const struct rpc_delivery *dl, rpc_msg *msg)
{
	const char *method = rpc_msg_method(msg);
	const struct rpc_method *m = NULL;
	struct rpc_err rerr = {{0}};
	struct wk_err err = {{0}};
	json_t *result = NULL;
	char *failure = NULL;
	int r;

	r = rpc_dispatch_lookup(rpc_methods, rpc_methods_count, method, rpc_msg_version(msg),
	    rpc_msg_namespace(msg), &m, &rerr);
	if (r < 0) {
		trim_cut_utf8(rerr.msg);
		log_error("Cannot dispatch '%s' version '%s': %s", method, rpc_msg_version(msg),
		    rerr.msg);
		if (r == -ENOENT)
			failure = rpc_failure_no_such_method(method);
		else
			failure = rpc_failure_unsupported_version(rpc_msg_version(msg), method);
		if (rpc_msg_is_call(msg))
			reply_failure(d, msg, NULL, failure);
		else
			wk_flow_cast_failed(d->flow, msg, method, rerr.msg);
		free(failure);
		finish(d, dl, true);
		return;
	}
	log_debug("Dispatching '%s' version '%s'", method, rpc_msg_version(msg));
	r = handlers[m->id](d->flow, msg, &result, &err);
	if (r == WK_FLOW_REQUEUE) {
		trim_cut_utf8(err.msg);
		log_warning("%s; not acknowledged, requeued to be handled again%s", err.msg,
		    dl->redelivered ? " (after a pause)" : "");
		json_decref(result);
		requeue(d, dl, msg);
		return;
	}
	if (r < 0) {
		if (err.msg[0] == '\0')
			snprintf(err.msg, sizeof(err.msg), "%s failed: %s", method, strerror(-r));
		trim_cut_utf8(err.msg);
		if (strncmp(err.msg, method, strlen(method)) == 0 && err.msg[strlen(method)] == ':')
			log_error("%s", err.msg); /* the text names the method already */
		else
			log_error("%s: %s", method, err.msg);
		if (rpc_msg_is_call(msg)) {
			failure = rpc_error_failure(r, err.msg);
			reply_failure(d, msg, m, failure);
			free(failure);
		} else {
			wk_flow_cast_failed(d->flow, msg, method, err.msg);
		}
	} else {
		reply(d, msg, m, result, NULL); /* casts: result freed, nothing sent */
	}
	finish(d, dl, true);
}

void
wk_dispatch_delivery(void *userdata, const struct rpc_delivery *dl)
{
	wk_dispatch *d = userdata;
	json_t *inner = NULL;
	rpc_msg *msg = NULL;
	struct rpc_err err = {{0}};
	const char *rid;
	int r;

	if (dl->kind != RPC_DELIVERY_REQUEST) {
		wk_bus_on_delivery(d->bus, dl);
		if (dl->kind == RPC_DELIVERY_REPLY)
			finish(d, dl, true);
		return;
	}
	wk_log_set_request_id(NULL);
	if (dl->oversized) {
		log_error("Message on '%s' is %llu bytes, above the %u-byte limit: rejected",
		    dl->routing_key, (unsigned long long)dl->body_size, RPC_AMQP_MAX_BODY);
		finish(d, dl, false);
		return;
	}
	if (dl->compressed) {
		log_error(
		    "Message on '%s' is compressed (kombu_compression), unsupported: rejected",
		    dl->routing_key);
		finish(d, dl, false);
		return;
	}
	r = rpc_envelope_decode(dl->body, dl->len, &inner, &err);
	if (r < 0) {
		undecodable(d, dl, err.msg);
		return;
	}
	rid = rpc_msg_peek_request_id(inner);
	wk_log_set_request_id(rid);
	json_incref(inner); /* kept for a failure reply if the message is invalid */
	r = rpc_msg_from_inner(inner, &msg, &err);
	if (r < 0) {
		char *failure;

		trim_cut_utf8(err.msg);
		failure = rpc_error_failure(-EINVAL, err.msg);
		log_error("Invalid RPC message on '%s': %s, rejected", dl->routing_key, err.msg);
		reply_raw_failure(d, inner, failure);
		free(failure);
		notify_invalid_cast(d, inner, err.msg);
		json_decref(inner);
		finish(d, dl, false);
		return;
	}
	json_decref(inner);
	if (seen_before(d, rpc_msg_unique_id(msg))) {
		log_info("Duplicate message '%s' ('%s'), ignoring", rpc_msg_unique_id(msg),
		    rpc_msg_method(msg));
		finish(d, dl, true);
	} else {
		handle(d, dl, msg);
	}
	rpc_msg_free(msg);
	wk_log_set_request_id(NULL);
}
