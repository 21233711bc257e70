/* SPDX-License-Identifier: Apache-2.0 */
/* wk_bus chooses the outbox class: progress notifications are the only
 * droppable ones, terminal notifications are kept (disconnected transport,
 * so everything stays in the outbox). */
#include <string.h>

#include <criterion/criterion.h>

#include "rpc_amqp.h"
#include "rpc_url.h"
#include "wk_bus.h"

Test(wk_bus, only_progress_notifications_are_dropped)
{
	struct rpc_amqp_options o;
	struct wk_bus_config bc;
	struct rpc_err err = {{0}};
	struct rpc_amqp_stats st;
	struct rpc_url *u = NULL;
	rpc_amqp *a = NULL;
	wk_bus *b = NULL;
	char pad[4001];

	/* Port 1 on loopback: never connected to here. */
	cr_assert_eq(rpc_url_parse("rabbit://nova:nova@127.0.0.1:1/", &u, &err), 0);
	memset(&o, 0, sizeof(o));
	o.url = u;
	o.exchange = "nova";
	o.topics[0] = "compute";
	o.server = "unit-host";
	o.outbox_max_bytes = 64 * 1024;
	cr_assert_eq(rpc_amqp_new(&o, &a), 0);
	rpc_url_free(u);
	memset(&bc, 0, sizeof(bc));
	bc.topic = "compute";
	bc.publisher_id = "nova-compute:unit-host";
	bc.notify_topic = "versioned_notifications";
	bc.notify_enabled = true;
	cr_assert_eq(wk_bus_new(a, &bc, &b), 0);
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < 40; i++) {
		const char *ev =
		    i % 2 == 0 ? WK_BUS_PROGRESS_EVENT : "instance.live_migration_abort.end";

		cr_assert_eq(wk_bus_notify(b, ev, "INFO", json_pack("{s:s}", "pad", pad), NULL), 0);
	}
	rpc_amqp_get_stats(a, &st);
	/* 40 x ~5 KiB do not fit in 64 KiB: all 20 terminal ones are kept, the
	 * progress reports made room for them. */
	cr_assert_geq(st.outbox_len, 20);
	cr_assert_eq(st.outbox_len + st.dropped, 40);
	cr_assert_eq(st.dropped, 20);
	wk_bus_free(b);
	rpc_amqp_free(a);
}
