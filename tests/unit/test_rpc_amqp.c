/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for rpc_amqp without a broker: the outbox bound as the transport
 * applies it (classes, drop counter, the owner's hook), and failover across brokers that refuse
 * connections (loopback ports nobody listens on). */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rpc_amqp.h"
#include "rpc_url.h"

/* A loopback port nothing listens on: bound, then closed. */
static int
dead_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static rpc_amqp *
make(const char *url, size_t outbox_max_bytes)
{
	struct rpc_amqp_options o;
	struct rpc_err err = {{0}};
	struct rpc_url *u = NULL;
	rpc_amqp *a = NULL;

	cr_assert_eq(rpc_url_parse(url, &u, &err), 0, "%s", err.msg);
	memset(&o, 0, sizeof(o));
	o.url = u;
	o.exchange = "nova";
	o.topics[0] = "compute";
	o.server = "unit-host";
	o.outbox_max_bytes = outbox_max_bytes;
	o.connect_timeout_ms = 1000;
	cr_assert_eq(rpc_amqp_new(&o, &a), 0);
	rpc_url_free(u);
	return a;
}

static json_t *
msg(int i)
{
	return json_pack("{s:s,s:i}", "event_type", "test.event", "i", i);
}

/* What the owner's hook saw. */
struct seen {
	int calls, overs;
	uint64_t dropped, dropped_total;
};

static void
hook(void *userdata, const struct rpc_amqp_outbox_event *ev)
{
	struct seen *s = userdata;

	s->calls++;
	s->overs += ev->over_bound;
	s->dropped += ev->dropped;
	s->dropped_total = ev->dropped_total;
	cr_assert_str_eq(ev->routing_key, "versioned_notifications.info");
}

/* A notification of about len bytes once encoded. */
static json_t *
big(int i, size_t len)
{
	char *pad = malloc(len + 1);
	json_t *m;

	cr_assert_not_null(pad);
	memset(pad, 'x', len);
	pad[len] = '\0';
	m = json_pack("{s:s,s:i,s:s}", "event_type", "test.event", "i", i, "pad", pad);
	free(pad);
	return m;
}

Test(rpc_amqp, outbox_drops_only_droppable_and_tells_the_hook)
{
	char url[128];
	struct rpc_amqp_stats st;
	struct seen seen = {0};
	rpc_amqp *a;

	snprintf(url, sizeof(url), "rabbit://nova:nova@127.0.0.1:%d/", dead_port());
	a = make(url, 64 * 1024);
	rpc_amqp_set_outbox_hook(a, hook, &seen);
	/* Disconnected: 10 progress reports of ~4 KiB, then 20 terminal ones. */
	for (int i = 0; i < 30; i++) {
		json_t *m = big(i, 4000);

		cr_assert_eq(rpc_amqp_notify(a, "versioned_notifications.info", m,
		                 i < 10 ? RPC_OUTBOX_DROPPABLE : RPC_OUTBOX_KEEP),
		    0);
		json_decref(m);
	}
	rpc_amqp_get_stats(a, &st);
	/* Every progress report made room for terminal ones; none of those went. */
	cr_assert_eq(st.dropped, 10);
	cr_assert_eq(st.outbox_len, 20);
	cr_assert_gt(st.outbox_bytes, 64 * 1024);
	cr_assert_eq(seen.dropped, 10);
	cr_assert_eq(seen.dropped_total, 10);
	cr_assert_eq(seen.overs, 1);
	cr_assert_eq(st.published, 0);
	rpc_amqp_free(a); /* frees what is still queued (LeakSanitizer checks) */
}

/* A read-only call's reply is never queued: disconnected, it is lost and
 * counted, while a confirmed publish waits in the outbox. */
Test(rpc_amqp, unconfirmed_reply_is_not_queued_while_disconnected)
{
	char url[128];
	struct rpc_amqp_stats st;
	json_t *m = msg(1);
	rpc_amqp *a;

	snprintf(url, sizeof(url), "rabbit://nova:nova@127.0.0.1:%d/", dead_port());
	a = make(url, 0);
	cr_assert_eq(rpc_amqp_publish_unconfirmed(a, "", "reply_x", m, true), -ENOTCONN);
	rpc_amqp_get_stats(a, &st);
	cr_assert_eq(st.outbox_len, 0);
	cr_assert_eq(st.unconfirmed_lost, 1);
	cr_assert_eq(st.published_unconfirmed, 0);
	cr_assert_eq(rpc_amqp_publish(a, "", "reply_x", m, true, 0), 0);
	rpc_amqp_get_stats(a, &st);
	cr_assert_eq(st.outbox_len, 1);
	json_decref(m);
	rpc_amqp_free(a);
}

Test(rpc_amqp, connect_tries_every_broker_and_keeps_the_outbox)
{
	char url[160], b1[128], b2[128];
	struct rpc_err err = {{0}};
	struct rpc_amqp_stats st;
	int p1 = dead_port(), p2 = dead_port();
	json_t *m = msg(1);
	rpc_amqp *a;
	int r;

	snprintf(
	    url, sizeof(url), "rabbit://nova:nova@127.0.0.1:%d,nova:nova@127.0.0.1:%d/", p1, p2);
	a = make(url, 0);
	cr_assert_eq(rpc_amqp_notify(a, "versioned_notifications.info", m, RPC_OUTBOX_KEEP), 0);
	json_decref(m);
	r = rpc_amqp_connect(a, &err);
	cr_assert_lt(r, 0);
	snprintf(b1, sizeof(b1),
	    "broker 127.0.0.1:%d: cannot open a TCP connection (refused or unreachable)", p1);
	snprintf(b2, sizeof(b2),
	    "; broker 127.0.0.1:%d: cannot open a TCP connection (refused or unreachable)", p2);
	cr_assert_not_null(strstr(err.msg, b1), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, b2), "%s", err.msg);
	cr_assert_not(rpc_amqp_connected(a));
	cr_assert_eq(rpc_amqp_fd(a), -1);
	cr_assert_str_eq(rpc_amqp_broker(a), "");
	rpc_amqp_get_stats(a, &st);
	cr_assert_eq(st.connect_failures, 2);
	cr_assert_eq(st.connects, 0);
	cr_assert_eq(st.outbox_len, 1);
	/* A second attempt starts over and fails the same way, still bounded. */
	r = rpc_amqp_connect(a, &err);
	cr_assert_lt(r, 0);
	rpc_amqp_get_stats(a, &st);
	cr_assert_eq(st.connect_failures, 4);
	cr_assert_eq(rpc_amqp_process(a, NULL, NULL, &err), -ENOTCONN);
	rpc_amqp_free(a);
}
