/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_outbox: a singly linked FIFO with a tail pointer.  seq is the
 * delivery tag a message was sent under on the current channel, 0 while it
 * is unsent.  Making room walks the list from the head; it only runs when
 * over the bound, which is rare, so no separate list of droppables.
 */
#include "rpc_outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	uint64_t seq;
	struct rpc_outbox_msg m; /* its strings point to the copies below */
	char *exchange, *routing_key;
	size_t size; /* what it counts against the bound */
};

struct rpc_outbox {
	struct entry *head, *tail;
	size_t len, bytes, max_bytes;
	uint64_t next_seq;
	uint64_t dropped, last_drops;
	bool over; /* in an episode over the bound */
};

static void
entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->exchange);
	free(e->routing_key);
	free(e->m.body);
	free(e);
}

int
rpc_outbox_new(size_t max_bytes, rpc_outbox **ret_outbox)
{
	rpc_outbox *ob = calloc(1, sizeof(*ob));

	if (ob == NULL)
		return -ENOMEM;
	ob->max_bytes = max_bytes > 0 ? max_bytes : RPC_OUTBOX_DEFAULT_MAX_BYTES;
	ob->next_seq = 1;
	*ret_outbox = ob;
	return 0;
}

rpc_outbox *
rpc_outbox_free(rpc_outbox *ob)
{
	if (ob == NULL)
		return NULL;
	while (ob->head != NULL) {
		struct entry *e = ob->head;

		ob->head = e->next;
		entry_free(e);
	}
	free(ob);
	return NULL;
}

/* Unlinks e, whose predecessor is prev (NULL for the head), and frees it. */
static void
unlink_entry(rpc_outbox *ob, struct entry *prev, struct entry *e)
{
	if (prev != NULL)
		prev->next = e->next;
	else
		ob->head = e->next;
	if (ob->tail == e)
		ob->tail = prev;
	ob->len--;
	ob->bytes -= e->size;
	entry_free(e);
}

/* Drops droppable messages, oldest first, until need more bytes fit. */
static void
make_room(rpc_outbox *ob, size_t need)
{
	struct entry *prev = NULL, *e = ob->head;

	while (e != NULL && ob->bytes + need > ob->max_bytes) {
		struct entry *next = e->next;

		if (e->m.cls == RPC_OUTBOX_DROPPABLE) {
			unlink_entry(ob, prev, e);
			ob->dropped++;
			ob->last_drops++;
		} else {
			prev = e;
		}
		e = next;
	}
}

/* An episode over the bound ends once everything fits again. */
static void
update_over(rpc_outbox *ob)
{
	if (ob->over && ob->bytes <= ob->max_bytes)
		ob->over = false;
}

int
rpc_outbox_push(rpc_outbox *ob, const struct rpc_outbox_msg *m)
{
	struct entry *e = calloc(1, sizeof(*e));
	int r = 0;

	if (e == NULL) {
		free(m->body);
		return -ENOMEM;
	}
	/* The body is taken over: an envelope can be megabytes, never copy it. */
	e->m = *m;
	e->exchange = strdup(m->exchange);
	e->routing_key = strdup(m->routing_key);
	e->m.exchange = e->exchange;
	e->m.routing_key = e->routing_key;
	if (e->exchange == NULL || e->routing_key == NULL) {
		entry_free(e);
		return -ENOMEM;
	}
	e->size = sizeof(*e) + m->len + strlen(m->exchange) + strlen(m->routing_key) + 2;
	ob->last_drops = 0;
	make_room(ob, e->size);
	if (ob->bytes + e->size > ob->max_bytes && m->cls == RPC_OUTBOX_DROPPABLE) {
		/* No older droppable message left to make room: this one goes. */
		entry_free(e);
		ob->dropped++;
		ob->last_drops++;
		return RPC_OUTBOX_DROPPED;
	}
	if (ob->tail != NULL)
		ob->tail->next = e;
	else
		ob->head = e;
	ob->tail = e;
	ob->len++;
	ob->bytes += e->size;
	r = ob->last_drops > 0 ? RPC_OUTBOX_DROPPED : 0;
	update_over(ob);
	if (!ob->over && ob->bytes > ob->max_bytes) {
		ob->over = true;
		r |= RPC_OUTBOX_OVER;
	}
	return r;
}

int
rpc_outbox_flush(rpc_outbox *ob, rpc_outbox_send_fn send, void *userdata)
{
	for (struct entry *e = ob->head; e != NULL; e = e->next) {
		int r;

		if (e->seq != 0)
			continue;
		r = send(userdata, &e->m);
		if (r < 0)
			return r;
		e->seq = ob->next_seq++;
	}
	return 0;
}

void
rpc_outbox_restart(rpc_outbox *ob)
{
	for (struct entry *e = ob->head; e != NULL; e = e->next)
		e->seq = 0;
	ob->next_seq = 1;
}

static bool
matches(const struct entry *e, uint64_t tag, bool multiple)
{
	return e->seq != 0 && (multiple ? e->seq <= tag : e->seq == tag);
}

size_t
rpc_outbox_ack(rpc_outbox *ob, uint64_t tag, bool multiple)
{
	struct entry *prev = NULL, *e = ob->head;
	size_t n = 0;

	while (e != NULL) {
		struct entry *next = e->next;

		if (matches(e, tag, multiple)) {
			unlink_entry(ob, prev, e);
			n++;
		} else {
			prev = e;
		}
		e = next;
	}
	update_over(ob);
	return n;
}

size_t
rpc_outbox_nack(rpc_outbox *ob, uint64_t tag, bool multiple)
{
	size_t n = 0;

	for (struct entry *e = ob->head; e != NULL; e = e->next) {
		if (matches(e, tag, multiple)) {
			e->seq = 0;
			n++;
		}
	}
	return n;
}

void
rpc_outbox_get_stats(const rpc_outbox *ob, struct rpc_outbox_stats *ret_stats)
{
	ret_stats->len = ob->len;
	ret_stats->bytes = ob->bytes;
	ret_stats->max_bytes = ob->max_bytes;
	ret_stats->dropped = ob->dropped;
	ret_stats->last_drops = ob->last_drops;
	ret_stats->over = ob->over;
}
