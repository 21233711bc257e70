/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_bus_priv.h - test-only access to wk_bus (libvirt's _priv.h habit): a
 * tap that sees every message the bus sends.  A bus made with a NULL
 * transport and a tap publishes to the tap only, so the whole flow runs in
 * a unit test without a broker.  Main thread only.
 */
#ifndef WK_BUS_PRIV_H
#define WK_BUS_PRIV_H

#include <jansson.h>

#include "wk_bus.h"

/* exchange ("" = default), routing key, the inner oslo message (borrowed). */
typedef void (*wk_bus_tap_fn)(
    void *userdata, const char *exchange, const char *routing_key, json_t *inner);

void wk_bus_set_tap(wk_bus *bus, wk_bus_tap_fn fn, void *userdata);

#endif /* WK_BUS_PRIV_H */
