/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_dispatch: one delivery from the broker -> decode, de-duplicate, find
 * the method (oslo's name + version rules), run its handler, answer.  The
 * logging layer for the bus: every bad input ends here in one log line with
 * the request id, an oslo failure reply for calls, a notification for casts,
 * and an ack or a reject without requeue, never a redelivery loop.  Only a
 * request a handler could not make durable (WK_FLOW_REQUEUE) is rejected
 * with requeue, redeliveries of it after a pause.
 *
 * Thread: main thread only.
 */
#ifndef WK_DISPATCH_H
#define WK_DISPATCH_H

#include "rpc_amqp.h"
#include "wk_bus.h"
#include "wk_flow.h"

typedef struct wk_dispatch wk_dispatch;

/* All borrowed; must outlive the dispatcher. */
int wk_dispatch_new(rpc_amqp *amqp, wk_bus *bus, wk_flow *flow, wk_dispatch **ret_dispatch);
wk_dispatch *wk_dispatch_free(wk_dispatch *d);

/* The rpc_amqp_on_delivery callback; userdata is the wk_dispatch. */
void wk_dispatch_delivery(void *userdata, const struct rpc_delivery *delivery);

/* The handler of method id (enum rpc_method_id of rpc/rpc_methods.h), or
 * NULL for an id out of range: the binding wk_dispatch uses, for the fuzz
 * target too.  Any thread. */
wk_flow_handler wk_dispatch_handler(int id);

#endif
