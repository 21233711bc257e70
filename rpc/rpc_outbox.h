/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_outbox: the bounded queue of encoded messages waiting for a publisher
 * confirm.  A message stays here from publish until the broker acks it; a
 * nack, or a new connection, marks it unsent so it is sent again.  It also
 * numbers what it sends as the broker numbers confirms on a channel
 * (1, 2, ...; restarted on each new channel).
 *
 * Pure data structure: no I/O and no <amqp.h>; the transport hands it a
 * send function.  Thread: one owner thread.  Never logs.
 */
#ifndef RPC_OUTBOX_H
#define RPC_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_outbox rpc_outbox;

/* One queued message, as the send function sees it (read-only). */
struct rpc_outbox_msg {
	const char *exchange;
	const char *routing_key;
	char *body; /* encoded envelope, not NUL-terminated */
	size_t len;
	bool mandatory;
	int expiration_ms; /* > 0 sets the expiration property */
};

/* Sends m on the current channel: 0 or -errno (the flush stops there). */
typedef int (*rpc_outbox_send_fn)(void *userdata, const struct rpc_outbox_msg *m);

struct rpc_outbox_stats {
	size_t len;       /* messages held (sent or not) */
	uint64_t dropped; /* messages evicted to stay within the bound */
};

/* max_msgs: messages held at most; 0 means 4096.  Returns 0 or -ENOMEM. */
int rpc_outbox_new(size_t max_msgs, rpc_outbox **ret_outbox);

/* Frees every message still held.  NULL-safe, returns NULL. */
rpc_outbox *rpc_outbox_free(rpc_outbox *ob);

/* Queues the message as unsent: exchange and routing_key are copied,
 * m->body (malloc'd) is STOLEN, also on failure.  Returns 0, -ENOMEM
 * (nothing queued), or -ENOBUFS when the outbox was full: the oldest
 * message was dropped and counted, this one is queued. */
int rpc_outbox_push(rpc_outbox *ob, const struct rpc_outbox_msg *m);

/* Sends every unsent message in order through send, numbering each one
 * that send accepted.  Returns 0, or the first error of send. */
int rpc_outbox_flush(rpc_outbox *ob, rpc_outbox_send_fn send, void *userdata);

/* A new channel: every message is unsent again and numbering restarts. */
void rpc_outbox_restart(rpc_outbox *ob);

/* The broker confirmed delivery tag (and every lower one when multiple):
 * those messages leave.  Returns how many left. */
size_t rpc_outbox_ack(rpc_outbox *ob, uint64_t tag, bool multiple);

/* The broker refused tag (or up to it): those messages become unsent, to be
 * flushed again.  Returns how many. */
size_t rpc_outbox_nack(rpc_outbox *ob, uint64_t tag, bool multiple);

void rpc_outbox_get_stats(const rpc_outbox *ob, struct rpc_outbox_stats *ret_stats);

#endif
