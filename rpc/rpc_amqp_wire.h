/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp_wire: AMQP 0-9-1 frames encoded into one growing buffer, so the
 * replies, acks and rejects of a whole pass leave in one send(2) instead
 * of rabbitmq-c's one write per frame (rpc_amqp.c).  Only the few client
 * methods of the hot path: basic.publish with its header and body frames,
 * basic.ack and basic.reject.  The bytes are what rabbitmq-c's
 * amqp_basic_publish, amqp_basic_ack and amqp_basic_reject write
 * (tests/unit/test_rpc_amqp_wire.c compares them).
 *
 * Pure: no globals, never logs; any thread, one buffer per thread.
 */
#ifndef RPC_AMQP_WIRE_H
#define RPC_AMQP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_wire {
	unsigned char *buf;
	size_t len; /* encoded, not yet sent */
	size_t off; /* of those, already sent (a partial send) */
	size_t cap;
};

/* The properties of every message ferry publishes (oslo's, as kombu sends
 * them): content type and encoding, persistent, priority 0, no headers,
 * and a per-message TTL when expiration_ms > 0. */
struct rpc_wire_publish {
	uint16_t channel;
	const char *exchange;
	const char *routing_key;
	bool mandatory;
	int expiration_ms;
	const void *body;
	size_t len;
	size_t frame_max; /* the connection's negotiated frame size */
};

/* Appends basic.publish, its content header and body frames.  Returns 0,
 * -EINVAL (a name over 255 bytes, frame_max too small) or -ENOMEM; the
 * buffer is unchanged on error. */
int rpc_wire_publish(struct rpc_wire *w, const struct rpc_wire_publish *p);

/* Appends basic.ack of one delivery (not multiple).  0 or -ENOMEM. */
int rpc_wire_ack(struct rpc_wire *w, uint16_t channel, uint64_t tag);

/* Appends basic.reject.  0 or -ENOMEM. */
int rpc_wire_reject(struct rpc_wire *w, uint16_t channel, uint64_t tag, bool requeue);

/* Forgets what is buffered (a lost connection), keeping the memory. */
void rpc_wire_clear(struct rpc_wire *w);

/* Frees the buffer; the struct is then empty and reusable. */
void rpc_wire_free(struct rpc_wire *w);

#endif
