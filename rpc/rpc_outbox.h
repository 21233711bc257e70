/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_outbox: the bounded queue of encoded messages waiting for a publisher
 * confirm.  A message stays here from publish until the broker acks it; a
 * nack, or a new connection, marks it unsent so it is sent again.  It also
 * numbers what it sends as the broker numbers confirms on a channel
 * (1, 2, ...; restarted on each new channel).
 *
 * The bound is in bytes, because one message can be megabytes (a cast with
 * large metadata).  Each message has a class chosen by its publisher: over
 * the bound, droppable messages go first, oldest first; a must-keep message
 * (a call, cast, reply or terminal notification) is never dropped: when
 * only those remain, the outbox stays over its bound instead.
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

enum rpc_outbox_class {
	RPC_OUTBOX_KEEP,     /* never dropped */
	RPC_OUTBOX_DROPPABLE /* superseded by a later one anyway (progress) */
};

/* One queued message, as the send function sees it (read-only). */
struct rpc_outbox_msg {
	const char *exchange;
	const char *routing_key;
	char *body; /* encoded envelope, not NUL-terminated */
	size_t len;
	bool mandatory;
	int expiration_ms; /* > 0 sets the expiration property */
	enum rpc_outbox_class cls;
};

/* What rpc_outbox_push did besides queuing (a bit set, never negative). */
#define RPC_OUTBOX_DROPPED 1 /* droppable messages dropped (maybe this one) */
#define RPC_OUTBOX_OVER                                   \
	2 /* over the bound with must-keep messages only: \
	   * set by the first push of such an episode */

/* Sends m on the current channel: 0 or -errno (the flush stops there). */
typedef int (*rpc_outbox_send_fn)(void *userdata, const struct rpc_outbox_msg *m);

struct rpc_outbox_stats {
	size_t len;          /* messages held (sent or not) */
	size_t bytes;        /* their size: bodies, names and bookkeeping */
	size_t max_bytes;    /* the bound */
	uint64_t dropped;    /* droppable messages dropped to stay within it */
	uint64_t last_drops; /* how many the last push dropped */
	bool over;           /* over the bound now (must-keep messages only) */
};

/* Default bound: 16 MiB, room for thousands of ordinary messages. */
#define RPC_OUTBOX_DEFAULT_MAX_BYTES (16u * 1024u * 1024u)

/* max_bytes: the bound; 0 means RPC_OUTBOX_DEFAULT_MAX_BYTES.  Returns 0 or
 * -ENOMEM. */
int rpc_outbox_new(size_t max_bytes, rpc_outbox **ret_outbox);

/* Frees every message still held.  NULL-safe, returns NULL. */
rpc_outbox *rpc_outbox_free(rpc_outbox *ob);

/* Queues the message as unsent: exchange and routing_key are copied,
 * m->body (malloc'd) is STOLEN, also on failure.  Makes room by dropping
 * droppable messages, oldest first; a droppable message that still does not
 * fit is itself dropped; a must-keep one is always queued.  Returns
 * -ENOMEM (nothing queued), or 0 plus the RPC_OUTBOX_DROPPED and
 * RPC_OUTBOX_OVER bits (stats say how many were dropped). */
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
