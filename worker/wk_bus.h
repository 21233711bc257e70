/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_bus: what the worker says on the bus, over rpc_amqp: notifications,
 * replies to calls we serve, and our own calls and casts to other compute
 * hosts (pre_live_migration and friends), with their pending-reply table and
 * call-monitor timeouts.  The worker never builds wire envelopes itself.
 *
 * Thread: main thread only (it owns the AMQP connection).
 */
#ifndef WK_BUS_H
#define WK_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rpc_amqp.h"
#include "rpc_msg.h"

typedef struct wk_bus wk_bus;
struct wk_metrics_text;

/* Outcome of one of our calls: r == 0 with result (borrowed, may be JSON
 * null), or r < 0 with error text: -EREMOTEIO the peer raised (error holds
 * "<class>: <message>"), -ETIMEDOUT no answer in time, -EHOSTUNREACH nobody
 * consumes the destination's queue. */
typedef void (*wk_bus_reply_cb)(void *data, int r, json_t *result, const char *error);

struct wk_bus_config {
	const char *topic;        /* e.g. "compute": calls go to <topic>.<server> */
	const char *publisher_id; /* e.g. "nova-compute:host1" */
	const char *notify_topic; /* e.g. "versioned_notifications" */
	bool notify_enabled;
	int rpc_response_timeout; /* s, the expiration of our calls */
};

/* amqp borrowed, must outlive the bus; cfg strings copied. */
int wk_bus_new(rpc_amqp *amqp, const struct wk_bus_config *cfg, wk_bus **ret_bus);

/* Fails nothing, frees the pending table.  NULL-safe, returns NULL. */
wk_bus *wk_bus_free(wk_bus *bus);

/* The one event type the outbox may drop when over its bound: a later
 * progress report supersedes it.  Everything else is must-keep. */
#define WK_BUS_PROGRESS_EVENT "instance.live_migration_progress"

/* Publishes a versioned notification: payload STOLEN, context borrowed
 * (the request context it belongs to, may be NULL).  Progress
 * (WK_BUS_PROGRESS_EVENT) is published droppable, the rest must-keep. */
int wk_bus_notify(
    wk_bus *bus, const char *event_type, const char *priority, json_t *payload, json_t *context);

/* Sends the one final reply to the call req: result STOLEN (NULL -> null),
 * failure is oslo failure text or NULL.  A cast (no _msg_id) gets nothing. */
int wk_bus_reply(wk_bus *bus, const rpc_msg *req, json_t *result, const char *failure);

/* As wk_bus_reply, for a read-only method (rpc_method_read_only): published
 * once without publisher confirms and not resent after a lost connection,
 * where the caller's timeout and retry recover it.  A loss is logged. */
int wk_bus_reply_read_only(wk_bus *bus, const rpc_msg *req, json_t *result, const char *failure);

/* Sends a call-monitor heartbeat for a call that is still busy.  No caller
 * today: every call ferry serves is answered within its dispatch, before
 * the next delivery is read (see tests/interop/test_calls.py); a handler
 * that ever defers its answer must send these every _timeout/2 s. */
int wk_bus_reply_heartbeat(wk_bus *bus, const rpc_msg *req);

/* Calls method on <topic>.<server>: args STOLEN, context borrowed.  cb runs
 * exactly once (from wk_bus_on_delivery or wk_bus_tick) unless the call is
 * cancelled with wk_bus_cancel.  timeout_s is the call-monitor timeout: no
 * reply and no heartbeat within it fails the call. */
int wk_bus_call(wk_bus *bus, const char *server, const char *method, const char *version,
    json_t *args, json_t *context, int timeout_s, wk_bus_reply_cb cb, void *data);

/* Casts method to <topic>.<server>; args STOLEN, context borrowed. */
int wk_bus_cast(wk_bus *bus, const char *server, const char *method, const char *version,
    json_t *args, json_t *context);

/* Feeds a reply-queue or returned delivery; other kinds are ignored. */
void wk_bus_on_delivery(wk_bus *bus, const struct rpc_delivery *d);

/* Fails expired calls.  Returns ms until the next deadline, or -1. */
int wk_bus_tick(wk_bus *bus, uint64_t now_ms);

/* Forgets every pending call whose data is data; their callbacks never run. */
void wk_bus_cancel(wk_bus *bus, void *data);

/* Appends the bus's Prometheus families to t (wk_metrics.h): notifications
 * sent by event type, and the broker connection and its outbox. */
void wk_bus_metrics(const wk_bus *bus, struct wk_metrics_text *t);

#endif
