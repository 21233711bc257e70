/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for rpc_outbox, the pure outbox: the bound in bytes, progress
 * (droppable) dropped first and oldest first, must-keep never dropped,
 * the over-bound episode, counters, and confirm/nack/restart numbering. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rpc_outbox.h"

#define KiB 1024u

/* Pushes a message of len body bytes whose body starts with tag. */
static int
push(rpc_outbox *ob, const char *tag, size_t len, enum rpc_outbox_class cls)
{
	struct rpc_outbox_msg m;

	memset(&m, 0, sizeof(m));
	m.exchange = "nova";
	m.routing_key = "versioned_notifications.info";
	m.body = calloc(1, len);
	cr_assert_not_null(m.body);
	strncpy(m.body, tag, len);
	m.len = len;
	m.cls = cls;
	return rpc_outbox_push(ob, &m);
}

/* Records the tags sent, in order, into a string. */
struct sent {
	char tags[2048];
	int fail_after; /* fail the send after this many, -1 never */
};

static int
record(void *userdata, const struct rpc_outbox_msg *m)
{
	struct sent *s = userdata;

	if (s->fail_after == 0)
		return -ECONNRESET;
	if (s->fail_after > 0)
		s->fail_after--;
	strcat(s->tags, m->body);
	strcat(s->tags, " ");
	return 0;
}

static const char *
flush(rpc_outbox *ob)
{
	static struct sent s;

	memset(&s, 0, sizeof(s));
	s.fail_after = -1;
	cr_assert_eq(rpc_outbox_flush(ob, record, &s), 0);
	return s.tags;
}

static struct rpc_outbox_stats
stats(const rpc_outbox *ob)
{
	struct rpc_outbox_stats st;

	rpc_outbox_get_stats(ob, &st);
	return st;
}

Test(rpc_outbox, bound_is_in_bytes)
{
	rpc_outbox *ob = NULL;

	cr_assert_eq(rpc_outbox_new(100 * KiB, &ob), 0);
	/* Ten 9 KiB casts fit; the eleventh (must-keep) exceeds the bound. */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(push(ob, "cast", 9 * KiB, RPC_OUTBOX_KEEP), 0, "push %d", i);
	cr_assert_eq(stats(ob).len, 10);
	cr_assert_geq(stats(ob).bytes, 90 * KiB);
	cr_assert_leq(stats(ob).bytes, 100 * KiB);
	cr_assert_eq(push(ob, "cast", 9 * KiB, RPC_OUTBOX_KEEP), RPC_OUTBOX_OVER);
	cr_assert_eq(stats(ob).len, 11);
	cr_assert_eq(stats(ob).dropped, 0);
	rpc_outbox_free(ob);
}

Test(rpc_outbox, default_bound_is_16_mib)
{
	rpc_outbox *ob = NULL;

	cr_assert_eq(rpc_outbox_new(0, &ob), 0);
	cr_assert_eq(stats(ob).max_bytes, 16u * 1024u * 1024u);
	/* The case: 1 MiB messages, 16 fit at most, not 4096. */
	for (int i = 0; i < 20; i++)
		push(ob, "p", 1024 * KiB, RPC_OUTBOX_DROPPABLE);
	cr_assert_leq(stats(ob).bytes, 16u * 1024u * 1024u);
	cr_assert_eq(stats(ob).len, 15);
	cr_assert_eq(stats(ob).dropped, 5);
	rpc_outbox_free(ob);
}

Test(rpc_outbox, progress_is_dropped_first_oldest_first)
{
	rpc_outbox *ob = NULL;

	cr_assert_eq(rpc_outbox_new(40 * KiB, &ob), 0);
	cr_assert_eq(push(ob, "p1", 8 * KiB, RPC_OUTBOX_DROPPABLE), 0);
	cr_assert_eq(push(ob, "rollback", 8 * KiB, RPC_OUTBOX_KEEP), 0);
	cr_assert_eq(push(ob, "p2", 8 * KiB, RPC_OUTBOX_DROPPABLE), 0);
	cr_assert_eq(push(ob, "p3", 8 * KiB, RPC_OUTBOX_DROPPABLE), 0);
	/* A must-keep message that needs room: the two oldest progress go. */
	cr_assert_eq(push(ob, "post", 16 * KiB, RPC_OUTBOX_KEEP), RPC_OUTBOX_DROPPED);
	cr_assert_eq(stats(ob).last_drops, 2);
	cr_assert_eq(stats(ob).dropped, 2);
	cr_assert_not(stats(ob).over);
	cr_assert_str_eq(flush(ob), "rollback p3 post ");
	rpc_outbox_free(ob);
}

Test(rpc_outbox, progress_that_does_not_fit_is_dropped_itself)
{
	rpc_outbox *ob = NULL;

	cr_assert_eq(rpc_outbox_new(20 * KiB, &ob), 0);
	cr_assert_eq(push(ob, "terminal", 15 * KiB, RPC_OUTBOX_KEEP), 0);
	cr_assert_eq(push(ob, "p1", 8 * KiB, RPC_OUTBOX_DROPPABLE), RPC_OUTBOX_DROPPED);
	cr_assert_eq(stats(ob).len, 1);
	cr_assert_eq(stats(ob).dropped, 1);
	cr_assert_str_eq(flush(ob), "terminal ");
	rpc_outbox_free(ob);
}

Test(rpc_outbox, must_keep_is_never_dropped_and_over_is_reported_once)
{
	rpc_outbox *ob = NULL;
	int r;

	cr_assert_eq(rpc_outbox_new(64 * KiB, &ob), 0);
	cr_assert_eq(push(ob, "p", 4 * KiB, RPC_OUTBOX_DROPPABLE), 0);
	/* 200 casts of 4 KiB while the broker is away: 800 KiB, 12x the bound. */
	for (int i = 0; i < 200; i++) {
		r = push(ob, "cast", 4 * KiB, RPC_OUTBOX_KEEP);
		if (i < 14)
			cr_assert_eq(r, 0, "push %d: %d", i, r);
		else if (i == 14) /* room is made from the progress report first */
			cr_assert_eq(r, RPC_OUTBOX_DROPPED, "push %d: %d", i, r);
		else if (i == 15) /* then nothing may go: over, reported once */
			cr_assert_eq(r, RPC_OUTBOX_OVER, "push %d: %d", i, r);
		else
			cr_assert_eq(r, 0, "push %d: %d", i, r);
	}
	cr_assert_eq(stats(ob).len, 200);
	cr_assert_eq(stats(ob).dropped, 1);
	cr_assert(stats(ob).over);
	/* Everything goes out and is confirmed: the episode ends ... */
	flush(ob);
	cr_assert_eq(rpc_outbox_ack(ob, 200, true), 200);
	cr_assert_not(stats(ob).over);
	cr_assert_eq(stats(ob).bytes, 0);
	/* ... and a new one is reported again, once. */
	int overs = 0;

	for (int i = 0; i < 30; i++)
		overs += push(ob, "cast", 5 * KiB, RPC_OUTBOX_KEEP) == RPC_OUTBOX_OVER;
	cr_assert_eq(overs, 1);
	cr_assert_eq(stats(ob).len, 30);
	rpc_outbox_free(ob);
}

Test(rpc_outbox, confirms_nacks_and_restart)
{
	rpc_outbox *ob = NULL;
	struct sent s;

	cr_assert_eq(rpc_outbox_new(0, &ob), 0);
	push(ob, "a", 8, RPC_OUTBOX_KEEP);
	push(ob, "b", 8, RPC_OUTBOX_KEEP);
	push(ob, "c", 8, RPC_OUTBOX_DROPPABLE);
	push(ob, "d", 8, RPC_OUTBOX_KEEP);
	/* The connection breaks after two sends: c and d stay unsent. */
	memset(&s, 0, sizeof(s));
	s.fail_after = 2;
	cr_assert_eq(rpc_outbox_flush(ob, record, &s), -ECONNRESET);
	cr_assert_str_eq(s.tags, "a b ");
	/* Reconnected: everything unconfirmed goes again, numbered from 1. */
	rpc_outbox_restart(ob);
	cr_assert_str_eq(flush(ob), "a b c d ");
	cr_assert_str_eq(flush(ob), "");
	cr_assert_eq(rpc_outbox_ack(ob, 2, true), 2);   /* a, b */
	cr_assert_eq(rpc_outbox_nack(ob, 3, false), 1); /* c again */
	cr_assert_eq(rpc_outbox_ack(ob, 3, false), 0);  /* c is unsent now */
	cr_assert_str_eq(flush(ob), "c ");              /* as tag 5 */
	cr_assert_eq(rpc_outbox_ack(ob, 4, false), 1);  /* d */
	cr_assert_eq(rpc_outbox_ack(ob, 5, false), 1);  /* c */
	cr_assert_eq(stats(ob).len, 0);
	cr_assert_eq(stats(ob).bytes, 0);
	rpc_outbox_free(ob);
}
