/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_loop.h - the worker's event loop: fd watches and timers over poll(2),
 * in the spirit of Redis ae and of libvirt's virEvent API (add, update and
 * remove a handle; add, update and remove a timeout), so that
 * virEventRegisterImpl() stays possible later.
 *
 * - A watch is an fd, the poll events wanted and a callback.  Its fd may
 *   change (a broker socket after a reconnect) or be -1 (not polled).  A
 *   watch may also have a "pending" test for input the kernel cannot see
 *   (frames a library already buffered): while it says true, the pass does
 *   not block and the callback runs as if the fd were readable.
 * - A timer has a deadline (CLOCK_MONOTONIC ms, as wk_now_ms()) and an
 *   optional period: a periodic timer is re-armed to now + period when its
 *   callback returns (unless the callback updated it), a one-shot one is
 *   disarmed (WK_LOOP_NEVER).  Due timers fire in
 *   deadline order, after the fd callbacks of the same pass; a timer fires
 *   at most once per pass, so re-arming it to "now" runs it on the next one.
 * - poll()'s timeout is the nearest deadline.
 *
 * Watches and timers are named by ids (> 0, never reused), so removing one
 * from inside any callback, its own included, is safe: a removed entry
 * never runs again, and is freed after the pass.
 *
 * Main thread only; never logs.
 */
#ifndef WK_LOOP_H
#define WK_LOOP_H

#include <stdbool.h>
#include <stdint.h>

/* A deadline that never comes: the timer is disarmed. */
#define WK_LOOP_NEVER UINT64_MAX

typedef struct wk_loop wk_loop;

/* revents as poll(2) reported them (POLLIN added for a pending watch). */
typedef void (*wk_loop_fd_fn)(wk_loop *l, int watch, int fd, short revents, void *userdata);
typedef bool (*wk_loop_pending_fn)(void *userdata);
typedef void (*wk_loop_timer_fn)(wk_loop *l, int timer, void *userdata);

/* Returns 0 and an empty loop, or -ENOMEM. */
int wk_loop_new(wk_loop **ret_loop);

/* Frees the loop (not the fds it watched).  NULL-safe; returns NULL. */
wk_loop *wk_loop_free(wk_loop *l);

/* Watches fd (-1: none yet) for events (POLLIN, POLLOUT).  Returns the
 * watch id (> 0) or -ENOMEM. */
int wk_loop_watch_add(wk_loop *l, int fd, short events, wk_loop_fd_fn fn, void *userdata);

/* Changes the fd (-1: none) and events of a watch.  Returns 0 or -ENOENT. */
int wk_loop_watch_update(wk_loop *l, int watch, int fd, short events);

/* Sets (or with NULL clears) the watch's pending test, asked before each
 * poll with the watch's userdata.  Returns 0 or -ENOENT. */
int wk_loop_watch_pending(wk_loop *l, int watch, wk_loop_pending_fn pending);

/* Returns 0 or -ENOENT. */
int wk_loop_watch_remove(wk_loop *l, int watch);

/* Adds a timer due at deadline_ms (WK_LOOP_NEVER: disarmed), then every
 * period_ms when period_ms > 0.  Returns the timer id (> 0) or -ENOMEM. */
int wk_loop_timer_add(
    wk_loop *l, uint64_t deadline_ms, unsigned period_ms, wk_loop_timer_fn fn, void *userdata);

/* Re-arms a timer (see wk_loop_timer_add).  Returns 0 or -ENOENT. */
int wk_loop_timer_update(wk_loop *l, int timer, uint64_t deadline_ms, unsigned period_ms);

/* Returns 0 or -ENOENT. */
int wk_loop_timer_remove(wk_loop *l, int timer);

/* One pass: polls every watch with an fd for at most the time to the
 * nearest deadline (0 when a watch is pending; max_wait_ms caps it, -1 for
 * no cap), runs the callbacks of ready watches in the order they were
 * added, then those of due timers.  Returns 0 (also when poll was
 * interrupted by a signal) or -errno from poll. */
int wk_loop_run_once(wk_loop *l, int max_wait_ms);

#endif /* WK_LOOP_H */
