/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp: the AMQP transport; its files rpc_amqp*.c are the only code that
 * includes <amqp.h> (rpc_amqp_priv.h says which does what).
 *
 * Owns one broker connection with three channels: channel 1 consumes the
 * server queues (topic, topic.<host>, the fanout queue) and our own reply
 * queue; channel 2 publishes in publisher-confirm mode; channel 3 is never
 * in confirm mode and carries only replies to read-only calls.  Entities
 * are declared exactly as oslo.messaging 14 declares them for the given
 * options (oslo-wire.md section 3).
 *
 * Non-blocking by design: the owner polls rpc_amqp_fd() and calls
 * rpc_amqp_process() whenever it is readable and at least every
 * rpc_amqp_timeout_ms(); that also sends AMQP heartbeats.  Every publish
 * except rpc_amqp_publish_unconfirmed goes through an outbox (rpc_outbox.h)
 * and leaves it only when the broker confirms it, so a message produced
 * while disconnected, or lost with a connection, is sent again after
 * reconnect.  The outbox is bounded in bytes; only messages published as
 * droppable (progress notifications) are ever dropped to stay within it,
 * and each drop is counted and reported.  A reply published unconfirmed
 * (a read-only call's, rpc_methods.h) is sent once: if the connection is
 * lost with it, it is gone, and the caller's timeout and retry recover, as
 * with oslo's own servers (kombu publishes replies unconfirmed).  That
 * saves the wake-up per call that reading the broker's confirm costs.
 *
 * Message bodies larger than RPC_AMQP_MAX_BODY are never buffered: their
 * frames are skipped and the delivery is handed over empty with
 * `oversized` set, so the owner can reject it.
 *
 * Thread: everything here runs on the one thread that owns the handle.
 */
#ifndef RPC_AMQP_H
#define RPC_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rpc_err.h"
#include "rpc_outbox.h"
#include "rpc_url.h"

typedef struct rpc_amqp rpc_amqp;

/* The CA store a TLS broker is verified against without ssl_ca_file
 * (Debian's ca-certificates bundle). */
#define RPC_AMQP_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* Largest message body buffered (the envelope codec's own limit). */
#define RPC_AMQP_MAX_BODY (8u * 1024u * 1024u)

/* oslo.messaging's declaration options (group oslo_messaging_rabbit). */
struct rpc_amqp_options {
	const struct rpc_url *url; /* borrowed; copied by rpc_amqp_new */
	const char *exchange;      /* control_exchange, e.g. "nova" */
	const char *topics[4]; /* server topics, e.g. "compute", "compute-alt"; NULL-terminated */
	const char *server;    /* this host's name: queue <topic>.<server> */
	const char *connection_name;
	const char *notify_topic; /* e.g. "versioned_notifications"; its queues are declared */
	bool durable;             /* amqp_durable_queues */
	bool auto_delete;         /* amqp_auto_delete */
	bool ha;                  /* rabbit_ha_queues */
	bool quorum;              /* rabbit_quorum_queue */
	int quorum_delivery_limit, quorum_max_memory_length, quorum_max_memory_bytes;
	int transient_ttl_s;     /* rabbit_transient_queues_ttl */
	int prefetch;            /* rabbit_qos_prefetch_count, 0 = unlimited */
	int heartbeat_s;         /* heartbeat_timeout_threshold, 0 = off */
	size_t outbox_max_bytes; /* bound of the outbox; 0 = RPC_OUTBOX_DEFAULT_MAX_BYTES */
	/* TLS ([oslo_messaging_rabbit] ssl*): TLS is on when this or the URL
	 * says so; each non-NULL file overrides the URL's ssl_*_file query
	 * option.  The broker's certificate chain is verified against the CA
	 * file, or the system CA store (RPC_AMQP_SYSTEM_CA_FILE) without one, and
	 * so is its name when the URL's host is a DNS name (rabbitmq-c cannot
	 * match IP addresses).  ssl_no_verify (ssl_verify = false) verifies
	 * nothing; the owner warns about it. */
	bool ssl;
	bool ssl_no_verify;
	const char *ssl_ca_file, *ssl_cert_file, *ssl_key_file;
	int connect_timeout_ms; /* per broker (TCP+TLS); 0 = 5000 */
};

enum rpc_delivery_kind {
	RPC_DELIVERY_REQUEST, /* from a server queue: a cast or call for us */
	RPC_DELIVERY_REPLY,   /* from our reply queue: an answer to our own call */
	RPC_DELIVERY_RETURNED /* our own mandatory publish came back unroutable; nothing to ack */
};

/* One received message; every pointer is borrowed for the callback only. */
struct rpc_delivery {
	enum rpc_delivery_kind kind;
	uint64_t tag;     /* for rpc_amqp_ack / rpc_amqp_reject */
	const void *body; /* not NUL-terminated */
	size_t len;
	const char *routing_key; /* NUL-terminated copy */
	bool redelivered;
	bool compressed;    /* kombu_compression header present: body is not JSON */
	bool oversized;     /* body_size > RPC_AMQP_MAX_BODY: discarded, body "" and len 0 */
	uint64_t body_size; /* size the broker announced */
};

typedef void (*rpc_amqp_on_delivery)(void *userdata, const struct rpc_delivery *d);

/* Counters for metrics and tests. */
struct rpc_amqp_stats {
	uint64_t connects, disconnects, published, confirmed, returned, dropped;
	uint64_t nacked;                /* publishes the broker nacked (each is sent again) */
	uint64_t oversized;             /* deliveries discarded for exceeding RPC_AMQP_MAX_BODY */
	uint64_t connect_failures;      /* failed attempts, one per broker tried */
	uint64_t requeued;              /* requests given back after rpc_amqp_stop_serving */
	uint64_t writes;                /* send(2)s of buffered frames (plain TCP): one per pass */
	uint64_t published_unconfirmed; /* rpc_amqp_publish_unconfirmed handed over */
	uint64_t unconfirmed_lost;      /* ... and not: disconnected, or the connection failed */
	size_t outbox_len, outbox_bytes;
};

/* What a publish did to the outbox besides queuing, for the owner to log. */
struct rpc_amqp_outbox_event {
	uint64_t dropped;       /* droppable messages this publish dropped (maybe itself) */
	uint64_t dropped_total; /* == rpc_amqp_stats.dropped */
	bool over_bound;        /* an episode over the bound with must-keep messages only
	                         * has begun: reported once until it fits again */
	size_t bytes, max_bytes;
	const char *routing_key; /* of the message published; borrowed */
};

typedef void (*rpc_amqp_on_outbox)(void *userdata, const struct rpc_amqp_outbox_event *ev);

/* Creates a disconnected transport.  Copies everything it needs from opts.
 * Returns 0 or -ENOMEM / -EINVAL. */
int rpc_amqp_new(const struct rpc_amqp_options *opts, rpc_amqp **ret_amqp);

/* Closes the connection (after cancelling consumers and deleting the fanout
 * queue, as oslo does on a clean stop) and frees.  NULL-safe, returns NULL. */
rpc_amqp *rpc_amqp_free(rpc_amqp *a);

/* Connects to a broker of the URL, logs in, declares everything, starts
 * consuming and resends the outbox.  Failover: the brokers are tried in URL
 * order, starting after the one used last, each at most once per call, so
 * one dead broker never delays the next; the call fails only when every
 * broker failed.  Returns 0, or -errno with reterr naming each broker tried
 * and its reason (the last one's errno).  On success reterr->msg names the
 * brokers skipped before the one connected ("" when none was). */
int rpc_amqp_connect(rpc_amqp *a, struct rpc_err *reterr);

/* "host:port" of the broker connected to (or last connected to); "" before
 * the first connection.  Borrowed. */
const char *rpc_amqp_broker(const rpc_amqp *a);

bool rpc_amqp_connected(const rpc_amqp *a);

/* The socket to poll for POLLIN, or -1 while disconnected. */
int rpc_amqp_fd(const rpc_amqp *a);

/* True when frames are already buffered: process before polling. */
bool rpc_amqp_pending(const rpc_amqp *a);

/* Handles every frame available without blocking, calling on_delivery for
 * each complete message, and services heartbeats.  Returns 0, or a negative
 * errno when the connection was lost (the handle is then disconnected and
 * rpc_amqp_connect may be called again); reterr says why. */
int rpc_amqp_process(
    rpc_amqp *a, rpc_amqp_on_delivery on_delivery, void *userdata, struct rpc_err *reterr);

/* Milliseconds until rpc_amqp_process must run again (heartbeat/4). */
int rpc_amqp_timeout_ms(const rpc_amqp *a);

int rpc_amqp_ack(rpc_amqp *a, uint64_t tag);
int rpc_amqp_reject(rpc_amqp *a, uint64_t tag, bool requeue);

/* Queues a must-keep message for publishing with oslo's properties and the
 * 2.0 envelope around inner (borrowed).  exchange "" is the default
 * exchange.  expiration_ms > 0 sets the expiration property (calls).  Sent
 * now when connected, else after reconnect.  Returns 0 or -ENOMEM; what the
 * outbox had to do (drops, over its bound) goes to the outbox hook. */
int rpc_amqp_publish(rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner,
    bool mandatory, int expiration_ms);

/* Publishes a reply to a read-only call (rpc_method_read_only) on the
 * channel without publisher confirms, as rpc_amqp_publish would otherwise
 * (oslo's properties, the 2.0 envelope around inner, borrowed; no
 * expiration).  It never enters the outbox: sent now (in the pass's one
 * send(2) inside rpc_amqp_process), never resent.  Returns 0, or -ENOTCONN
 * while disconnected, -ENOMEM, or -errno when the connection failed taking
 * it (then dropped, for the owner to reconnect); the reply is then lost and
 * counted in unconfirmed_lost.  A mandatory reply the broker cannot route
 * still comes back as RPC_DELIVERY_RETURNED. */
int rpc_amqp_publish_unconfirmed(
    rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner, bool mandatory);

/* Publishes a notification on the control exchange as oslo's messagingv2
 * notifier does (the queues were declared at connect).  inner borrowed.
 * cls RPC_OUTBOX_DROPPABLE for notifications a later one supersedes
 * (progress): only those are ever dropped to bound the outbox. */
int rpc_amqp_notify(rpc_amqp *a, const char *routing_key, json_t *inner, enum rpc_outbox_class cls);

/* Sets the function told about outbox drops and overflow (NULL: nobody).
 * It runs inside rpc_amqp_publish/notify and must not publish. */
void rpc_amqp_set_outbox_hook(rpc_amqp *a, rpc_amqp_on_outbox cb, void *userdata);

/* The name of our reply queue (reply_<uuid>), for outgoing calls. Borrowed. */
const char *rpc_amqp_reply_queue(const rpc_amqp *a);

/* The control exchange name.  Borrowed. */
const char *rpc_amqp_exchange(const rpc_amqp *a);

void rpc_amqp_get_stats(const rpc_amqp *a, struct rpc_amqp_stats *ret_stats);

/* Stops serving, for a clean stop: cancels the consumers of the server
 * queues (basic.cancel on topic, topic.<server> and fanout), so requests
 * stay queued in the broker for the next start, while replies to our own
 * calls and publisher confirms still arrive.  Requests the broker sent
 * before the cancel took effect are given back to their queue unprocessed
 * (basic.reject with requeue) and never reach on_delivery; a reconnect
 * after this does not consume them again.  Returns 0 (also while
 * disconnected), or -errno with reterr when the connection was lost doing
 * it (as in rpc_amqp_process). */
int rpc_amqp_stop_serving(rpc_amqp *a, struct rpc_err *reterr);

#endif
