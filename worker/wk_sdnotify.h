/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_sdnotify.h - systemd's service notification protocol (sd_notify(3)),
 * spoken directly so the worker needs no libsystemd: a datagram with
 * "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or "@name" for the abstract namespace).  Without $NOTIFY_SOCKET (not run
 * by systemd with Type=notify) every call is a no-op.  Any thread; never logs.
 */
#ifndef WK_SDNOTIFY_H
#define WK_SDNOTIFY_H

#include <stdint.h>

/* Sends state, e.g. "READY=1\nSTATUS=consuming".  Returns 1 when sent, 0
 * when there is no $NOTIFY_SOCKET, -errno on failure. */
int wk_sd_notify(const char *state);

/* The watchdog period systemd expects pings within ($WATCHDOG_USEC, for this
 * process per $WATCHDOG_PID), in ms; 0 when the watchdog is off. */
uint64_t wk_sd_watchdog_ms(void);

#endif /* WK_SDNOTIFY_H */
