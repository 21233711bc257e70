/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp_declare.c: part of the AMQP adapter (see rpc_amqp_priv.h).  The
 * exchanges, queues, bindings and consumers of one connection, declared
 * exactly as oslo.messaging 14 declares them for the same options
 * (oslo-wire.md section 3), in the order it does.
 */
#include <stdio.h>

#include <amqp.h>

#include "rpc_amqp_priv.h"

static void
arg_str(amqp_table_entry_t *e, const char *key, const char *value)
{
	e->key = amqp_cstring_bytes(key);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(value);
}

static void
arg_i32(amqp_table_entry_t *e, const char *key, int32_t value)
{
	e->key = amqp_cstring_bytes(key);
	e->value.kind = AMQP_FIELD_KIND_I32;
	e->value.value.i32 = value;
}

/* Arguments oslo puts on the long-lived topic queues (and notification queues). */
static size_t
topic_queue_args(const rpc_amqp *a, amqp_table_entry_t *e)
{
	size_t n = 0;

	if (a->o.ha)
		arg_str(&e[n++], "x-ha-policy", "all");
	if (a->o.quorum) {
		arg_str(&e[n++], "x-queue-type", "quorum");
		if (a->o.quorum_delivery_limit > 0)
			arg_i32(&e[n++], "x-delivery-limit", a->o.quorum_delivery_limit);
		if (a->o.quorum_max_memory_length > 0)
			arg_i32(&e[n++], "x-max-in-memory-length", a->o.quorum_max_memory_length);
		if (a->o.quorum_max_memory_bytes > 0)
			arg_i32(&e[n++], "x-max-in-memory-bytes", a->o.quorum_max_memory_bytes);
	}
	return n;
}

/* Arguments of the fanout and reply queues: x-expires (+ ha). */
static size_t
transient_queue_args(const rpc_amqp *a, amqp_table_entry_t *e)
{
	size_t n = 0;

	if (a->o.ha)
		arg_str(&e[n++], "x-ha-policy", "all");
	if (a->o.transient_ttl_s > 0)
		arg_i32(&e[n++], "x-expires", a->o.transient_ttl_s * 1000);
	return n;
}

static int
declare_topic_queue(rpc_amqp *a, const char *queue, const char *routing_key, struct rpc_err *reterr)
{
	amqp_table_entry_t e[8];
	amqp_table_t args;
	char what[320];
	int r;

	args.entries = e;
	args.num_entries = (int)topic_queue_args(a, e);
	snprintf(what, sizeof(what), "declare queue '%s'", queue);
	amqp_queue_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), 0,
	    a->o.durable || a->o.quorum, 0, a->o.auto_delete, args);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
	if (r < 0)
		return r;
	snprintf(what, sizeof(what), "bind queue '%s'", queue);
	amqp_queue_bind(a->conn, CH_CONSUME, amqp_cstring_bytes(queue),
	    amqp_cstring_bytes(a->exchange), amqp_cstring_bytes(routing_key), amqp_empty_table);
	return rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

static int
declare_transient_queue(rpc_amqp *a, const char *queue, struct rpc_err *reterr)
{
	amqp_table_entry_t e[4];
	amqp_table_t args;
	char what[320];

	args.entries = e;
	args.num_entries = (int)transient_queue_args(a, e);
	snprintf(what, sizeof(what), "declare queue '%s'", queue);
	amqp_queue_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), 0, 0, 0, 0, args);
	return rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

/* The consumer tag of server queue k (0 topic, 1 topic.<server>, 2 fanout)
 * of topic i.  Tags must be unique on the channel; "reply" marks replies. */
static void
serving_tag(char tag[32], int k, size_t i)
{
	static const char *const kinds[3] = {"topic", "server", "fanout"};

	snprintf(tag, 32, "%s%zu", kinds[k], i);
}

static int
consume(rpc_amqp *a, const char *queue, const char *tag, struct rpc_err *reterr)
{
	char what[340];

	snprintf(what, sizeof(what), "consume '%s'", queue);
	amqp_basic_consume(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag),
	    0, 0, 0, amqp_empty_table);
	return rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

int
rpc_amqp_declare_all(rpc_amqp *a, struct rpc_err *reterr)
{
	static const char *const prios[NOTIFY_PRIORITIES] = {"info", "warn", "error"};
	int r;

	amqp_exchange_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(a->exchange),
	    amqp_cstring_bytes("topic"), 0, a->o.durable || a->o.quorum, a->o.auto_delete, 0,
	    amqp_empty_table);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "declare exchange", reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_topics; i++) {
		char name[320];
		char fanout[160];

		r = declare_topic_queue(a, a->topics[i], a->topics[i], reterr);
		if (r < 0)
			return r;
		snprintf(name, sizeof(name), "%s.%s", a->topics[i], a->server);
		r = declare_topic_queue(a, name, name, reterr);
		if (r < 0)
			return r;
		snprintf(fanout, sizeof(fanout), "%s_fanout", a->topics[i]);
		amqp_exchange_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(fanout),
		    amqp_cstring_bytes("fanout"), 0, 0, 1, 0, amqp_empty_table);
		r = rpc_amqp_reply_check(
		    amqp_get_rpc_reply(a->conn), "declare fanout exchange", reterr);
		if (r < 0)
			return r;
		r = declare_transient_queue(a, a->fanout_queues[i], reterr);
		if (r < 0)
			return r;
		amqp_queue_bind(a->conn, CH_CONSUME, amqp_cstring_bytes(a->fanout_queues[i]),
		    amqp_cstring_bytes(fanout), amqp_cstring_bytes(a->topics[i]), amqp_empty_table);
		r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "bind fanout queue", reterr);
		if (r < 0)
			return r;
	}
	r = declare_transient_queue(a, a->reply_queue, reterr);
	if (r < 0)
		return r;
	/* The notifier declares its queues so notifications wait for a consumer. */
	for (size_t i = 0; i < NOTIFY_PRIORITIES; i++) {
		char rk[128];

		snprintf(rk, sizeof(rk), "%s.%s", a->notify_topic, prios[i]);
		r = declare_topic_queue(a, rk, rk, reterr);
		if (r < 0)
			return r;
	}
	if (a->o.prefetch > 0) {
		amqp_basic_qos(a->conn, CH_CONSUME, 0, (uint16_t)a->o.prefetch, 0);
		r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "basic.qos", reterr);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < a->n_topics && !a->serving_stopped; i++) {
		char name[320], tag[3][32];

		for (int k = 0; k < 3; k++)
			serving_tag(tag[k], k, i);
		r = consume(a, a->topics[i], tag[0], reterr);
		if (r < 0)
			return r;
		snprintf(name, sizeof(name), "%s.%s", a->topics[i], a->server);
		r = consume(a, name, tag[1], reterr);
		if (r < 0)
			return r;
		r = consume(a, a->fanout_queues[i], tag[2], reterr);
		if (r < 0)
			return r;
	}
	return consume(a, a->reply_queue, "reply", reterr);
}

int
rpc_amqp_cancel_serving(rpc_amqp *a, struct rpc_err *reterr)
{
	for (size_t i = 0; i < a->n_topics; i++) {
		for (int k = 0; k < 3; k++) {
			char tag[32], what[64];
			int r;

			serving_tag(tag, k, i);
			snprintf(what, sizeof(what), "cancel consumer '%s'", tag);
			/* Deliveries racing the cancel-ok are queued by the library. */
			amqp_basic_cancel(a->conn, CH_CONSUME, amqp_cstring_bytes(tag));
			r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
			if (r < 0)
				return r;
		}
	}
	return 0;
}
