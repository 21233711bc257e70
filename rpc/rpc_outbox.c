/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_outbox: a singly linked FIFO with a tail pointer.  seq is the
 * delivery tag a message was sent under on the current channel, 0 while it
 * is unsent.
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
};

struct rpc_outbox {
	struct entry *head, *tail;
	size_t len, max;
	uint64_t next_seq;
	uint64_t dropped;
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
rpc_outbox_new(size_t max_msgs, rpc_outbox **ret_outbox)
{
	rpc_outbox *ob = calloc(1, sizeof(*ob));

	if (ob == NULL)
		return -ENOMEM;
	ob->max = max_msgs > 0 ? max_msgs : 4096;
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
	entry_free(e);
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
	if (ob->len >= ob->max) {
		unlink_entry(ob, NULL, ob->head);
		ob->dropped++;
		r = -ENOBUFS;
	}
	if (ob->tail != NULL)
		ob->tail->next = e;
	else
		ob->head = e;
	ob->tail = e;
	ob->len++;
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
	ret_stats->dropped = ob->dropped;
}
