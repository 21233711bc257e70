/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_loop.c - see wk_loop.h.  A handful of watches and timers, so plain
 * arrays and linear scans; entries removed during a pass are only marked,
 * and compacted once the pass ends, so no callback ever runs on freed
 * memory and no index held by the pass goes stale.
 */
#include "wk_loop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "wk_util.h"

struct watch {
	int id, fd;
	short events;
	bool removed;
	wk_loop_fd_fn fn;
	wk_loop_pending_fn pending;
	void *userdata;
};

struct timer {
	int id;
	bool removed;
	unsigned period_ms;
	uint64_t deadline_ms;
	uint64_t fired_pass; /* a timer fires at most once per pass */
	unsigned updates;    /* wk_loop_timer_update calls, to see one from a callback */
	wk_loop_timer_fn fn;
	void *userdata;
};

struct wk_loop {
	struct watch *watches;
	size_t nwatches, cwatches;
	struct timer *timers;
	size_t ntimers, ctimers;
	/* One pass's poll set: the watch id and fd behind each pollfd. */
	struct pollfd *pfds;
	int *pfd_ids, *pfd_fds;
	bool *pfd_pending;
	size_t cpfds;
	int next_id;
	uint64_t pass;
};

int
wk_loop_new(wk_loop **ret_loop)
{
	wk_loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -ENOMEM;
	l->next_id = 1;
	*ret_loop = l;
	return 0;
}

wk_loop *
wk_loop_free(wk_loop *l)
{
	if (l == NULL)
		return NULL;
	free(l->watches);
	free(l->timers);
	free(l->pfds);
	free(l->pfd_ids);
	free(l->pfd_fds);
	free(l->pfd_pending);
	free(l);
	return NULL;
}

/* Makes room for one more element in *arr (of size elem). */
static int
grow(void **arr, size_t n, size_t *cap, size_t elem)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap == 0 ? 8 : *cap * 2;
	p = realloc(*arr, c * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static struct watch *
find_watch(wk_loop *l, int id)
{
	for (size_t i = 0; i < l->nwatches; i++)
		if (l->watches[i].id == id && !l->watches[i].removed)
			return &l->watches[i];
	return NULL;
}

static struct timer *
find_timer(wk_loop *l, int id)
{
	for (size_t i = 0; i < l->ntimers; i++)
		if (l->timers[i].id == id && !l->timers[i].removed)
			return &l->timers[i];
	return NULL;
}

int
wk_loop_watch_add(wk_loop *l, int fd, short events, wk_loop_fd_fn fn, void *userdata)
{
	struct watch *w;

	if (grow((void **)&l->watches, l->nwatches, &l->cwatches, sizeof(*w)) < 0)
		return -ENOMEM;
	w = &l->watches[l->nwatches++];
	memset(w, 0, sizeof(*w));
	w->id = l->next_id++;
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->userdata = userdata;
	return w->id;
}

int
wk_loop_watch_update(wk_loop *l, int watch, int fd, short events)
{
	struct watch *w = find_watch(l, watch);

	if (w == NULL)
		return -ENOENT;
	w->fd = fd;
	w->events = events;
	return 0;
}

int
wk_loop_watch_pending(wk_loop *l, int watch, wk_loop_pending_fn pending)
{
	struct watch *w = find_watch(l, watch);

	if (w == NULL)
		return -ENOENT;
	w->pending = pending;
	return 0;
}

int
wk_loop_watch_remove(wk_loop *l, int watch)
{
	struct watch *w = find_watch(l, watch);

	if (w == NULL)
		return -ENOENT;
	w->removed = true;
	return 0;
}

int
wk_loop_timer_add(
    wk_loop *l, uint64_t deadline_ms, unsigned period_ms, wk_loop_timer_fn fn, void *userdata)
{
	struct timer *t;

	if (grow((void **)&l->timers, l->ntimers, &l->ctimers, sizeof(*t)) < 0)
		return -ENOMEM;
	t = &l->timers[l->ntimers++];
	memset(t, 0, sizeof(*t));
	t->id = l->next_id++;
	t->deadline_ms = deadline_ms;
	t->period_ms = period_ms;
	t->fn = fn;
	t->userdata = userdata;
	return t->id;
}

int
wk_loop_timer_update(wk_loop *l, int timer, uint64_t deadline_ms, unsigned period_ms)
{
	struct timer *t = find_timer(l, timer);

	if (t == NULL)
		return -ENOENT;
	t->deadline_ms = deadline_ms;
	t->period_ms = period_ms;
	t->updates++;
	return 0;
}

int
wk_loop_timer_remove(wk_loop *l, int timer)
{
	struct timer *t = find_timer(l, timer);

	if (t == NULL)
		return -ENOENT;
	t->removed = true;
	return 0;
}

/* Drops the entries removed during the pass. */
static void
sweep(wk_loop *l)
{
	size_t i, n;

	for (i = n = 0; i < l->nwatches; i++)
		if (!l->watches[i].removed)
			l->watches[n++] = l->watches[i];
	l->nwatches = n;
	for (i = n = 0; i < l->ntimers; i++)
		if (!l->timers[i].removed)
			l->timers[n++] = l->timers[i];
	l->ntimers = n;
}

static int
resize(void **arr, size_t n, size_t elem)
{
	void *p = realloc(*arr, n * elem);

	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	return 0;
}

/* Sizes the per-pass arrays for every watch. */
static int
reserve_pfds(wk_loop *l)
{
	size_t c = l->cwatches;

	if (l->cpfds >= c)
		return 0;
	if (resize((void **)&l->pfds, c, sizeof(*l->pfds)) < 0 ||
	    resize((void **)&l->pfd_ids, c, sizeof(*l->pfd_ids)) < 0 ||
	    resize((void **)&l->pfd_fds, c, sizeof(*l->pfd_fds)) < 0 ||
	    resize((void **)&l->pfd_pending, c, sizeof(*l->pfd_pending)) < 0)
		return -ENOMEM;
	l->cpfds = c;
	return 0;
}

/* Builds the poll set; returns its size, *ret_pending when a watch has
 * buffered input. */
static size_t
poll_set(wk_loop *l, bool *ret_pending)
{
	size_t n = 0;

	*ret_pending = false;
	for (size_t i = 0; i < l->nwatches; i++) {
		struct watch *w = &l->watches[i];
		bool p;

		if (w->removed)
			continue;
		/* Asked with no pointer into the array held: it may add watches. */
		p = w->pending != NULL && w->pending(w->userdata);
		w = &l->watches[i];
		if (w->fd < 0 && !p)
			continue;
		l->pfds[n].fd = w->fd; /* poll ignores a negative fd */
		l->pfds[n].events = w->events;
		l->pfds[n].revents = 0;
		l->pfd_ids[n] = w->id;
		l->pfd_fds[n] = w->fd;
		l->pfd_pending[n] = p;
		*ret_pending |= p;
		n++;
		if (n == l->cpfds)
			break;
	}
	return n;
}

static int
poll_timeout(const wk_loop *l, uint64_t now, int max_wait_ms)
{
	uint64_t nearest = WK_LOOP_NEVER;
	int t = -1;

	for (size_t i = 0; i < l->ntimers; i++)
		if (!l->timers[i].removed && l->timers[i].deadline_ms < nearest)
			nearest = l->timers[i].deadline_ms;
	if (nearest != WK_LOOP_NEVER)
		t = nearest <= now ? 0 : nearest - now > INT_MAX ? INT_MAX : (int)(nearest - now);
	if (max_wait_ms >= 0 && (t < 0 || t > max_wait_ms))
		t = max_wait_ms;
	return t;
}

static void
run_watches(wk_loop *l, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		short revents = l->pfds[k].revents;
		struct watch *w;

		if (l->pfd_pending[k])
			revents |= POLLIN;
		if (revents == 0)
			continue;
		w = find_watch(l, l->pfd_ids[k]);
		/* Removed, or its fd changed since: what poll said is about an old fd. */
		if (w == NULL || w->fd != l->pfd_fds[k])
			continue;
		w->fn(l, w->id, w->fd, revents, w->userdata);
	}
}

static void
run_timers(wk_loop *l)
{
	uint64_t now = wk_now_ms();

	for (;;) {
		struct timer *t = NULL;
		wk_loop_timer_fn fn;
		void *userdata;
		unsigned updates;
		int id;

		for (size_t i = 0; i < l->ntimers; i++) {
			struct timer *c = &l->timers[i];

			if (c->removed || c->deadline_ms > now || c->fired_pass == l->pass)
				continue;
			if (t == NULL || c->deadline_ms < t->deadline_ms)
				t = c;
		}
		if (t == NULL)
			return;
		t->fired_pass = l->pass;
		t->deadline_ms = WK_LOOP_NEVER;
		fn = t->fn;
		userdata = t->userdata;
		id = t->id;
		updates = t->updates;
		fn(l, id, userdata); /* may add, so t is looked up again */
		/* A period runs from the end of the callback, so a slow callback
		 * or a descheduled process never brings the next fire closer than
		 * one period; unless the callback re-armed or removed it. */
		t = find_timer(l, id);
		if (t != NULL && t->updates == updates && t->period_ms > 0)
			t->deadline_ms = wk_now_ms() + t->period_ms;
	}
}

int
wk_loop_run_once(wk_loop *l, int max_wait_ms)
{
	bool pending;
	size_t n;
	int r;

	if (reserve_pfds(l) < 0)
		return -ENOMEM;
	l->pass++;
	n = poll_set(l, &pending);
	r = poll(l->pfds, n, pending ? 0 : poll_timeout(l, wk_now_ms(), max_wait_ms));
	if (r < 0) {
		if (errno != EINTR)
			return -errno;
		for (size_t k = 0; k < n; k++)
			l->pfds[k].revents = 0;
	}
	run_watches(l, n);
	run_timers(l);
	sweep(l);
	return 0;
}
