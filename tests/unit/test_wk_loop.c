/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_loop.c - the event loop: due timers fire in deadline order and
 * poll waits for the nearest one, periodic timers re-arm, one-shot ones do
 * not, pipe readiness reaches the watch, a timer or watch removed from a
 * callback (its own or another's) never runs again, a watch's fd can
 * change, and a pending watch makes the pass not block.
 */
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_loop.h"
#include "wk_util.h"

struct rec {
	wk_loop *l;
	int order[16];
	uint64_t at[16];
	int n;
	int remove_timer, remove_watch; /* removed by the next callback */
	int update_watch, update_fd;
	int pending_left;
	int last_fd;
	short last_revents;
};

static void
on_timer(wk_loop *l, int timer, void *userdata)
{
	struct rec *r = userdata;

	if (r->n < 16) {
		r->order[r->n] = timer;
		r->at[r->n] = wk_now_ms();
	}
	r->n++;
	if (r->remove_timer > 0) {
		cr_assert_eq(wk_loop_timer_remove(l, r->remove_timer), 0);
		r->remove_timer = 0;
	}
}

static void
on_fd(wk_loop *l, int watch, int fd, short revents, void *userdata)
{
	struct rec *r = userdata;
	char c;

	if (r->n < 16)
		r->order[r->n] = watch;
	r->n++;
	r->last_fd = fd;
	r->last_revents = revents;
	if (fd >= 0 && (revents & POLLIN))
		(void)!read(fd, &c, 1);
	if (r->remove_watch > 0) {
		cr_assert_eq(wk_loop_watch_remove(l, r->remove_watch), 0);
		r->remove_watch = 0;
	}
	if (r->update_watch > 0) {
		cr_assert_eq(wk_loop_watch_update(l, r->update_watch, r->update_fd, POLLIN), 0);
		r->update_watch = 0;
	}
}

static bool
is_pending(void *userdata)
{
	struct rec *r = userdata;

	return r->pending_left-- > 0;
}

static wk_loop *
new_loop(void)
{
	wk_loop *l = NULL;

	cr_assert_eq(wk_loop_new(&l), 0);
	return l;
}

static void
new_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_NONBLOCK), 0); /* a pending watch reads an empty one */
}

Test(wk_loop, due_timers_fire_in_deadline_order_not_insertion_order)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	uint64_t now = wk_now_ms();
	int a = wk_loop_timer_add(l, now - 1, 0, on_timer, &r);
	int b = wk_loop_timer_add(l, now - 3, 0, on_timer, &r);
	int c = wk_loop_timer_add(l, now - 2, 0, on_timer, &r);

	cr_assert(a > 0 && b > 0 && c > 0 && a != b && b != c);
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 3);
	cr_assert_eq(r.order[0], b);
	cr_assert_eq(r.order[1], c);
	cr_assert_eq(r.order[2], a);
	/* One-shot: disarmed once fired, so nothing more within 30 ms. */
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 3);
	wk_loop_free(l);
}

Test(wk_loop, poll_waits_for_the_nearest_deadline)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	uint64_t t0 = wk_now_ms();
	int late = wk_loop_timer_add(l, t0 + 120, 0, on_timer, &r);
	int early = wk_loop_timer_add(l, t0 + 40, 0, on_timer, &r);

	/* No cap: the first pass blocks until the early timer, not forever. */
	cr_assert_eq(wk_loop_run_once(l, -1), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.order[0], early);
	cr_assert_geq(r.at[0], t0 + 40);
	cr_assert_lt(r.at[0], t0 + 120);
	cr_assert_eq(wk_loop_run_once(l, -1), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.order[1], late);
	cr_assert_geq(r.at[1], t0 + 120);
	wk_loop_free(l);
}

Test(wk_loop, periodic_timer_rearms_and_update_disarms_it)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	uint64_t t0 = wk_now_ms();
	int t = wk_loop_timer_add(l, t0, 20, on_timer, &r);

	for (int i = 0; i < 20 && r.n < 4; i++)
		cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 4);
	for (int i = 1; i < 4; i++)
		cr_assert_geq(r.at[i], r.at[i - 1] + 20, "fire %d came %llu ms after the last", i,
		    (unsigned long long)(r.at[i] - r.at[i - 1]));
	cr_assert_eq(wk_loop_timer_update(l, t, WK_LOOP_NEVER, 0), 0);
	cr_assert_eq(wk_loop_run_once(l, 50), 0);
	cr_assert_eq(r.n, 4);
	/* Re-armed to now: fires on the next pass, once. */
	cr_assert_eq(wk_loop_timer_update(l, t, wk_now_ms(), 0), 0);
	cr_assert_eq(wk_loop_run_once(l, 50), 0);
	cr_assert_eq(wk_loop_run_once(l, 20), 0);
	cr_assert_eq(r.n, 5);
	wk_loop_free(l);
}

Test(wk_loop, pipe_readiness_reaches_the_watch)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	int p[2], w;

	new_pipe(p);
	w = wk_loop_watch_add(l, p[0], POLLIN, on_fd, &r);
	cr_assert(w > 0);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 0, "an empty pipe is not readable");
	cr_assert_eq(write(p[1], "x", 1), 1);
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.order[0], w);
	cr_assert_eq(r.last_fd, p[0]);
	cr_assert(r.last_revents & POLLIN);
	/* The byte was read by the callback: not readable any more. */
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 1);
	close(p[0]);
	close(p[1]);
	wk_loop_free(l);
}

Test(wk_loop, timer_removed_inside_a_callback_never_fires)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	uint64_t now = wk_now_ms();
	int first = wk_loop_timer_add(l, now - 2, 0, on_timer, &r);
	int second = wk_loop_timer_add(l, now - 1, 50, on_timer, &r);
	int self;

	cr_assert(first > 0 && second > 0);
	r.remove_timer = second; /* both due; the first removes the second */
	cr_assert_eq(wk_loop_run_once(l, 100), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.order[0], first);
	cr_assert_eq(wk_loop_timer_update(l, second, now, 0), -ENOENT);
	cr_assert_eq(wk_loop_run_once(l, 80), 0);
	cr_assert_eq(r.n, 1);

	/* A periodic timer removing itself. */
	self = wk_loop_timer_add(l, wk_now_ms(), 10, on_timer, &r);
	r.remove_timer = self;
	cr_assert_eq(wk_loop_run_once(l, 100), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(wk_loop_run_once(l, 40), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(wk_loop_timer_remove(l, self), -ENOENT);
	wk_loop_free(l);
}

Test(wk_loop, watch_removed_inside_a_callback_never_runs)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	int a[2], b[2], wa, wb;

	new_pipe(a);
	new_pipe(b);
	wa = wk_loop_watch_add(l, a[0], POLLIN, on_fd, &r);
	wb = wk_loop_watch_add(l, b[0], POLLIN, on_fd, &r);
	cr_assert_eq(write(a[1], "x", 1), 1);
	cr_assert_eq(write(b[1], "xx", 2), 2);
	r.remove_watch = wb; /* both readable in this pass; a's callback removes b */
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.order[0], wa);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 1, "b is still readable but removed");

	/* A watch removing itself. */
	cr_assert_eq(write(a[1], "yy", 2), 2);
	r.remove_watch = wa;
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 2, "a still holds a byte but its watch is gone");
	cr_assert_eq(wk_loop_watch_update(l, wa, a[0], POLLIN), -ENOENT);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	wk_loop_free(l);
}

Test(wk_loop, watch_fd_changes)
{
	wk_loop *l = new_loop();
	struct rec r = {0};
	int a[2], b[2], c[2], w, w2;

	new_pipe(a);
	new_pipe(b);
	new_pipe(c);
	/* Not polled at first (a socket not connected yet). */
	w = wk_loop_watch_add(l, -1, POLLIN, on_fd, &r);
	cr_assert_eq(write(a[1], "x", 1), 1);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 0);
	cr_assert_eq(wk_loop_watch_update(l, w, a[0], POLLIN), 0);
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.last_fd, a[0]);
	/* Moved to b: a readable a is ignored, b is heard. */
	cr_assert_eq(wk_loop_watch_update(l, w, b[0], POLLIN), 0);
	cr_assert_eq(write(a[1], "x", 1), 1);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(write(b[1], "x", 1), 1);
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.last_fd, b[0]);

	/* Changed by another callback in the same pass, after poll saw the old
	 * fd ready: that readiness is not delivered for the new fd. */
	cr_assert_eq(wk_loop_watch_remove(l, w), 0);
	w2 = wk_loop_watch_add(l, c[0], POLLIN, on_fd, &r); /* runs first */
	w = wk_loop_watch_add(l, a[0], POLLIN, on_fd, &r);  /* a holds a byte */
	cr_assert_eq(write(c[1], "x", 1), 1);
	r.update_watch = w;
	r.update_fd = b[0]; /* empty */
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 3, "only c's watch ran: a's readiness is stale once w moved to b");
	cr_assert_eq(r.order[2], w2);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 3, "b is empty");
	cr_assert_eq(write(b[1], "x", 1), 1);
	cr_assert_eq(wk_loop_run_once(l, 1000), 0);
	cr_assert_eq(r.n, 4);
	cr_assert_eq(r.order[3], w);
	cr_assert_eq(r.last_fd, b[0]);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(c[i]);
	}
	wk_loop_free(l);
}

Test(wk_loop, pending_watch_makes_the_pass_not_block)
{
	wk_loop *l = new_loop();
	struct rec r = {.pending_left = 2};
	uint64_t t0 = wk_now_ms();
	int p[2], w;

	new_pipe(p);
	(void)wk_loop_timer_add(l, t0 + 10000, 0, on_timer, &r);
	w = wk_loop_watch_add(l, p[0], POLLIN, on_fd, &r);
	cr_assert_eq(wk_loop_watch_pending(l, w, is_pending), 0);
	/* Nothing in the pipe, but the watch says it holds input: two passes
	 * run it at once, then the loop waits again. */
	cr_assert_eq(wk_loop_run_once(l, -1), 0);
	cr_assert_eq(wk_loop_run_once(l, -1), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.last_fd, p[0]);
	cr_assert(r.last_revents & POLLIN);
	cr_assert_lt(wk_now_ms() - t0, 1000);
	cr_assert_eq(wk_loop_run_once(l, 30), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_geq(wk_now_ms() - t0, 30);
	close(p[0]);
	close(p[1]);
	wk_loop_free(l);
}
