/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_bus: notifications, replies and our own calls over rpc_amqp.
 * Pending calls are a short list (a handful of migrations at most).
 */
#include "wk_bus.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_notify.h"
#include "rpc_reply.h"
#include "rpc_uuid.h"
#include "wk_bus_priv.h"
#include "wk_log.h"
#include "wk_metrics.h"
#include "wk_util.h"

WK_LOG_NAME("worker.bus");

#define SENT_TYPES_MAX 48

struct pending_call {
	struct pending_call *next;
	char msg_id[RPC_UUID_HEX_LEN];
	char method[64];
	char server[128];
	uint64_t deadline_ms;
	int timeout_ms;
	wk_bus_reply_cb cb;
	void *data;
};

struct wk_bus {
	rpc_amqp *amqp;
	wk_bus_tap_fn tap; /* tests: sees every outgoing message (wk_bus_priv.h) */
	void *tap_data;
	char *topic, *publisher_id, *notify_topic;
	bool notify_enabled;
	int rpc_response_timeout;
	struct pending_call *calls;
	/* Notifications published, by event type (a fixed set in the code;
	 * past SENT_TYPES_MAX they count as "other"). */
	struct sent_count {
		char event_type[96];
		uint64_t n;
	} sent[SENT_TYPES_MAX];
	size_t n_sent;
};

/* Every drop is logged with the running count; overflow once per episode. */
static void
on_outbox(void *userdata, const struct rpc_amqp_outbox_event *ev)
{
	(void)userdata;
	if (ev->dropped > 0)
		log_warning("Outbox over its bound (%zu of %zu bytes held): dropped %" PRIu64
		            " progress notification(s), %" PRIu64 " in total",
		    ev->bytes, ev->max_bytes, ev->dropped, ev->dropped_total);
	if (ev->over_bound)
		log_warning("Outbox over its bound (%zu of %zu bytes held) with nothing left that "
		            "may be dropped: keeping calls, casts, replies and terminal "
		            "notifications anyway (is the broker unreachable?)",
		    ev->bytes, ev->max_bytes);
}

int
wk_bus_new(rpc_amqp *amqp, const struct wk_bus_config *cfg, wk_bus **ret_bus)
{
	wk_bus *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	b->amqp = amqp;
	b->topic = strdup(cfg->topic);
	b->publisher_id = strdup(cfg->publisher_id);
	b->notify_topic = strdup(cfg->notify_topic);
	b->notify_enabled = cfg->notify_enabled;
	b->rpc_response_timeout = cfg->rpc_response_timeout > 0 ? cfg->rpc_response_timeout : 60;
	if (b->topic == NULL || b->publisher_id == NULL || b->notify_topic == NULL) {
		wk_bus_free(b);
		return -ENOMEM;
	}
	if (amqp != NULL) /* a test's bus has no transport (wk_bus_priv.h) */
		rpc_amqp_set_outbox_hook(amqp, on_outbox, b);
	*ret_bus = b;
	return 0;
}

wk_bus *
wk_bus_free(wk_bus *b)
{
	if (b == NULL)
		return NULL;
	if (b->amqp != NULL)
		rpc_amqp_set_outbox_hook(b->amqp, NULL, NULL);
	while (b->calls != NULL) {
		struct pending_call *c = b->calls;

		b->calls = c->next;
		free(c);
	}
	free(b->topic);
	free(b->publisher_id);
	free(b->notify_topic);
	free(b);
	return NULL;
}

void
wk_bus_set_tap(wk_bus *b, wk_bus_tap_fn fn, void *userdata)
{
	b->tap = fn;
	b->tap_data = userdata;
}

/* Every publish goes through here: the tap sees it first; without a
 * transport (a test's bus) that is all.  confirmed false: a reply to a
 * read-only call, sent once without publisher confirms. */
static int
publish(wk_bus *b, const char *exchange, const char *rk, json_t *inner, bool mandatory,
    int expiration_ms, bool confirmed)
{
	if (b->tap != NULL)
		b->tap(b->tap_data, exchange, rk, inner);
	if (b->amqp == NULL)
		return b->tap != NULL ? 0 : -ENOTCONN;
	if (!confirmed)
		return rpc_amqp_publish_unconfirmed(b->amqp, exchange, rk, inner, mandatory);
	return rpc_amqp_publish(b->amqp, exchange, rk, inner, mandatory, expiration_ms);
}

static int
publish_notification(wk_bus *b, const char *rk, json_t *inner, enum rpc_outbox_class cls)
{
	if (b->tap != NULL)
		b->tap(b->tap_data, "", rk, inner);
	if (b->amqp == NULL)
		return b->tap != NULL ? 0 : -ENOTCONN;
	return rpc_amqp_notify(b->amqp, rk, inner, cls);
}

/* One more notification of event_type handed to the transport. */
static void
count_sent(wk_bus *b, const char *event_type)
{
	size_t i;

	if (strlen(event_type) >= sizeof(b->sent[0].event_type))
		event_type = "other";
	for (i = 0; i < b->n_sent; i++)
		if (strcmp(b->sent[i].event_type, event_type) == 0)
			break;
	if (i == b->n_sent) {
		if (b->n_sent == SENT_TYPES_MAX - 1 && strcmp(event_type, "other") != 0) {
			count_sent(b, "other");
			return;
		}
		snprintf(b->sent[i].event_type, sizeof(b->sent[i].event_type), "%s", event_type);
		b->n_sent++;
	}
	b->sent[i].n++;
}

int
wk_bus_notify(
    wk_bus *b, const char *event_type, const char *priority, json_t *payload, json_t *context)
{
	json_auto_t *inner = NULL;
	char rk[256];
	int r;

	if (!b->notify_enabled) {
		json_decref(payload);
		return 0;
	}
	inner = rpc_notify_build(b->publisher_id, event_type, priority, payload, context);
	if (inner == NULL)
		return -ENOMEM;
	r = rpc_notify_routing_key(b->notify_topic, priority, rk, sizeof(rk));
	if (r < 0)
		return r;
	/* Progress is superseded by the next report: the only class the
	 * outbox may drop.  Terminal notifications must reach nova. */
	r = publish_notification(b, rk, inner,
	    strcmp(event_type, WK_BUS_PROGRESS_EVENT) == 0 ? RPC_OUTBOX_DROPPABLE
	                                                   : RPC_OUTBOX_KEEP);
	if (r >= 0)
		count_sent(b, event_type);
	log_debug("Notification '%s' queued", event_type);
	return r;
}

static int
send_reply(
    wk_bus *b, const rpc_msg *req, json_t *result, const char *failure, bool ending, bool confirmed)
{
	json_auto_t *inner = NULL;
	int r;

	if (!rpc_msg_is_call(req)) {
		json_decref(result);
		return 0;
	}
	inner = rpc_reply_build(rpc_msg_msg_id(req), result, failure, ending);
	if (inner == NULL)
		return -ENOMEM;
	/* oslo replies through the default exchange, mandatory, to _reply_q. */
	r = publish(b, "", rpc_msg_reply_q(req), inner, true, 0, confirmed);
	if (r < 0 && !confirmed)
		log_warning("Reply to '%s' lost (%s): the caller times out and may call again",
		    rpc_msg_method(req), strerror(-r));
	return r;
}

int
wk_bus_reply(wk_bus *b, const rpc_msg *req, json_t *result, const char *failure)
{
	return send_reply(b, req, result, failure, true, true);
}

int
wk_bus_reply_read_only(wk_bus *b, const rpc_msg *req, json_t *result, const char *failure)
{
	return send_reply(b, req, result, failure, true, false);
}

int
wk_bus_reply_heartbeat(wk_bus *b, const rpc_msg *req)
{
	return send_reply(b, req, NULL, NULL, false, true);
}

static int
send_request(wk_bus *b, const char *server, const char *method, const char *version, json_t *args,
    json_t *context, const char *msg_id, int timeout_s)
{
	json_auto_t *inner = NULL;
	char rk[256];

	inner = rpc_request_build(method, args, version, context, msg_id,
	    msg_id ? (b->amqp ? rpc_amqp_reply_queue(b->amqp) : "reply_test") : NULL, timeout_s);
	if (inner == NULL)
		return -ENOMEM;
	if ((size_t)snprintf(rk, sizeof(rk), "%s.%s", b->topic, server) >= sizeof(rk))
		return -ENAMETOOLONG;
	/* Calls are mandatory so an absent destination fails now, not at timeout. */
	return publish(b, b->amqp ? rpc_amqp_exchange(b->amqp) : "nova", rk, inner, msg_id != NULL,
	    msg_id ? b->rpc_response_timeout * 1000 : 0, true);
}

int
wk_bus_call(wk_bus *b, const char *server, const char *method, const char *version, json_t *args,
    json_t *context, int timeout_s, wk_bus_reply_cb cb, void *data)
{
	struct pending_call *c = calloc(1, sizeof(*c));
	int r;

	if (c == NULL) {
		json_decref(args);
		return -ENOMEM;
	}
	rpc_uuid4_hex(c->msg_id);
	snprintf(c->method, sizeof(c->method), "%s", method);
	snprintf(c->server, sizeof(c->server), "%s", server);
	c->timeout_ms = (timeout_s > 0 ? timeout_s : b->rpc_response_timeout) * 1000;
	c->deadline_ms = wk_now_ms() + (uint64_t)c->timeout_ms;
	c->cb = cb;
	c->data = data;
	r = send_request(b, server, method, version, args, context, c->msg_id, timeout_s);
	if (r < 0 && r != -ENOBUFS) {
		free(c);
		return r;
	}
	c->next = b->calls;
	b->calls = c;
	return 0;
}

int
wk_bus_cast(wk_bus *b, const char *server, const char *method, const char *version, json_t *args,
    json_t *context)
{
	int r = send_request(b, server, method, version, args, context, NULL, 0);

	return r == -ENOBUFS ? 0 : r;
}

static struct pending_call *
take_call(wk_bus *b, const char *msg_id)
{
	for (struct pending_call **pp = &b->calls; *pp != NULL; pp = &(*pp)->next) {
		struct pending_call *c = *pp;

		if (strcmp(c->msg_id, msg_id) == 0) {
			*pp = c->next;
			return c;
		}
	}
	return NULL;
}

static struct pending_call *
find_call(wk_bus *b, const char *msg_id)
{
	for (struct pending_call *c = b->calls; c != NULL; c = c->next)
		if (strcmp(c->msg_id, msg_id) == 0)
			return c;
	return NULL;
}

static void
on_reply(wk_bus *b, json_t *inner)
{
	struct rpc_reply_in rep;
	struct rpc_err err = {{0}};
	struct pending_call *c;

	if (rpc_reply_parse(inner, &rep, &err) < 0) {
		log_warning("Malformed reply on our reply queue: %s, ignoring", err.msg);
		return;
	}
	c = find_call(b, rep.msg_id);
	if (c == NULL) {
		log_debug("Reply for unknown or finished call '%s', ignoring", rep.msg_id);
		return;
	}
	if (!rep.ending && rep.failure == NULL &&
	    (rep.result == NULL || json_is_null(rep.result))) {
		/* A call-monitor heartbeat: the peer is alive and busy. */
		c->deadline_ms = wk_now_ms() + (uint64_t)c->timeout_ms;
		return;
	}
	c = take_call(b, rep.msg_id);
	if (rep.failure != NULL) {
		char *cls = NULL, *module = NULL, *message = NULL;
		char text[512];

		if (rpc_failure_parse(rep.failure, &cls, &module, &message) == 0)
			snprintf(text, sizeof(text), "%s: %s", cls, message);
		else
			snprintf(text, sizeof(text), "unparseable remote failure");
		free(cls);
		free(module);
		free(message);
		c->cb(c->data, -EREMOTEIO, NULL, text);
	} else {
		c->cb(c->data, 0, rep.result != NULL ? rep.result : json_null(), NULL);
	}
	free(c);
}

static void
on_returned(wk_bus *b, json_t *inner, const char *routing_key)
{
	json_t *id = json_object_get(inner, "_msg_id");
	struct pending_call *c;
	char text[512];

	if (!json_is_string(id))
		return;
	c = take_call(b, json_string_value(id));
	if (c == NULL)
		return;
	snprintf(text, sizeof(text), "no compute service consumes '%s'", routing_key);
	c->cb(c->data, -EHOSTUNREACH, NULL, text);
	free(c);
}

void
wk_bus_on_delivery(wk_bus *b, const struct rpc_delivery *d)
{
	json_auto_t *inner = NULL;
	struct rpc_err err = {{0}};

	if (d->kind == RPC_DELIVERY_REQUEST)
		return;
	if (rpc_envelope_decode(d->body, d->len, &inner, &err) < 0) {
		log_warning("Undecodable message on our reply queue: %s, ignoring", err.msg);
		return;
	}
	if (d->kind == RPC_DELIVERY_REPLY)
		on_reply(b, inner);
	else
		on_returned(b, inner, d->routing_key);
}

int
wk_bus_tick(wk_bus *b, uint64_t now_ms)
{
	int next = -1;

	for (;;) {
		struct pending_call *expired = NULL;

		for (struct pending_call *c = b->calls; c != NULL; c = c->next) {
			if (c->deadline_ms <= now_ms) {
				expired = c;
				break;
			}
		}
		if (expired == NULL)
			break;
		expired = take_call(b, expired->msg_id);
		if (expired == NULL)
			break;
		{
			char text[512];

			snprintf(text, sizeof(text), "no reply to '%s' from '%s' within %d s",
			    expired->method, expired->server, expired->timeout_ms / 1000);
			expired->cb(expired->data, -ETIMEDOUT, NULL, text);
		}
		free(expired);
	}
	for (struct pending_call *c = b->calls; c != NULL; c = c->next) {
		int left = (int)(c->deadline_ms - now_ms);

		if (next < 0 || left < next)
			next = left;
	}
	return next;
}

void
wk_bus_cancel(wk_bus *b, void *data)
{
	struct pending_call **pp = &b->calls;

	while (*pp != NULL) {
		struct pending_call *c = *pp;

		if (c->data == data) {
			*pp = c->next;
			free(c);
		} else {
			pp = &c->next;
		}
	}
}

void
wk_bus_metrics(const wk_bus *b, struct wk_metrics_text *t)
{
	struct rpc_amqp_stats st;
	struct wk_metrics_label l;
	size_t i;

	wk_metrics_family(t, "ferry_notifications_sent_total", "counter",
	    "Versioned notifications handed to the broker connection, by event type.");
	l.name = "event_type";
	for (i = 0; i < b->n_sent; i++) {
		l.value = b->sent[i].event_type;
		wk_metrics_sample(t, "ferry_notifications_sent_total", &l, 1, (double)b->sent[i].n);
	}

	memset(&st, 0, sizeof(st));
	if (b->amqp != NULL) /* tests run buses without a transport */
		rpc_amqp_get_stats(b->amqp, &st);
	wk_metrics_family(t, "ferry_outbox_messages", "gauge",
	    "Messages published and not yet confirmed by the broker (or waiting for it).");
	wk_metrics_sample(t, "ferry_outbox_messages", NULL, 0, (double)st.outbox_len);
	wk_metrics_family(t, "ferry_outbox_bytes", "gauge", "Bytes held in the outbox.");
	wk_metrics_sample(t, "ferry_outbox_bytes", NULL, 0, (double)st.outbox_bytes);
	wk_metrics_family(t, "ferry_outbox_dropped_total", "counter",
	    "Progress notifications dropped because the outbox was over its bound.");
	wk_metrics_sample(t, "ferry_outbox_dropped_total", NULL, 0, (double)st.dropped);
	wk_metrics_family(t, "ferry_broker_connected", "gauge",
	    "1 while the worker is connected to the broker, else 0.");
	wk_metrics_sample(t, "ferry_broker_connected", NULL, 0,
	    b->amqp != NULL && rpc_amqp_connected(b->amqp) ? 1 : 0);
	wk_metrics_family(t, "ferry_broker_reconnects_total", "counter",
	    "Connections to the broker made after the first one.");
	wk_metrics_sample(t, "ferry_broker_reconnects_total", NULL, 0,
	    st.connects > 0 ? (double)(st.connects - 1) : 0);
}
