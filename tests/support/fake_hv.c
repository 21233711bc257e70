/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_hv: the scripted backend (see fake_hv.h).  Fixed-size tables: a unit
 * test needs a handful of domains and steps.  Error texts are libvirt's,
 * as seen on the rig (../shared/reference/libvirt-lab.md), so the daemon's
 * handling of them is exercised.
 */
#include "fake_hv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DOMS   32
#define MAX_STEPS  32
#define MAX_CALLS  4096
#define MAX_FAILS  16
#define MAX_ACTIVE 16

struct fdom {
	bool used;
	char host[64], uuid[64];
	struct wk_hv_domain_info info;
};

struct fstep {
	bool used;
	char uuid[64], msg[256];
	struct fake_mig_step step;
};

struct fcall {
	char op[32], uuid[64];
	unsigned long long value; /* set_max_speed: MiB/s */
	bool postcopy;            /* set_max_speed: the post-copy cap */
};

struct ffail {
	bool used, always;
	char op[32], msg[256];
	int r;
};

struct factive {
	bool used;
	char uuid[64], src[64], dst[64];
	struct wk_hv_migrate_params params;
	struct fake_mig_step step;
	char msg[256];
	uint64_t start_ms;
	bool postcopy_started, aborted, released;
};

struct fconn {
	char uri[64];
	unsigned gen;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fdom doms[MAX_DOMS];
	struct fstep steps[MAX_STEPS];
	struct fcall calls[MAX_CALLS];
	size_t ncalls;
	struct ffail fails[MAX_FAILS];
	struct factive active[MAX_ACTIVE];
	struct {
		bool used;
		char uuid[64];
		char tls_destination[256];
		struct wk_hv_migrate_params p;
	} last[MAX_DOMS];
	char blocked_op[32];                   /* calls of this op hang until fake_hv_unblock() */
	unsigned gen;                          /* bumped when libvirtd "restarts" */
	bool down;                             /* libvirtd is not answering */
	uint64_t back_at_ms;                   /* when it comes back; 0 = not by itself */
	unsigned long hv_version, lib_version; /* what versions answers */
} w = {.lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .hv_version = FAKE_HV_QEMU_VERSION,
    .lib_version = FAKE_HV_LIBVIRT_VERSION};

/* Bounded string copy; memmove because both sides may live in w. */
static void
copy(char *dst, size_t size, const char *src)
{
	size_t n = src != NULL ? strnlen(src, size - 1) : 0;

	if (n > 0)
		memmove(dst, src, n);
	dst[n] = '\0';
}

static void
note_call(const char *op, const char *uuid)
{
	if (w.ncalls < MAX_CALLS) {
		memset(&w.calls[w.ncalls], 0, sizeof(w.calls[0]));
		copy(w.calls[w.ncalls].op, sizeof(w.calls[0].op), op);
		copy(w.calls[w.ncalls].uuid, sizeof(w.calls[0].uuid), uuid);
		w.ncalls++;
	}
}

static struct fdom *
dom_find(const char *host, const char *uuid)
{
	for (int i = 0; i < MAX_DOMS; i++)
		if (w.doms[i].used && strcmp(w.doms[i].host, host) == 0 &&
		    strcmp(w.doms[i].uuid, uuid) == 0)
			return &w.doms[i];
	return NULL;
}

static struct fdom *
dom_put(const char *host, const char *uuid)
{
	struct fdom *d = dom_find(host, uuid);

	for (int i = 0; d == NULL && i < MAX_DOMS; i++)
		if (!w.doms[i].used) {
			d = &w.doms[i];
			memset(d, 0, sizeof(*d));
			d->used = true;
			copy(d->host, sizeof(d->host), host);
			copy(d->uuid, sizeof(d->uuid), uuid);
		}
	if (d == NULL)
		abort();
	return d;
}

static struct factive *
active_find(const char *uuid)
{
	for (int i = 0; i < MAX_ACTIVE; i++)
		if (w.active[i].used && strcmp(w.active[i].uuid, uuid) == 0)
			return &w.active[i];
	return NULL;
}

static void
daemon_tick(void)
{
	if (w.down && w.back_at_ms != 0 && wk_now_ms() >= w.back_at_ms)
		w.down = false;
}

/* The scripted failure for op, if any (consumed unless "always"). */
static int
scripted_failure(const char *op, struct wk_err *reterr)
{
	for (int i = 0; i < MAX_FAILS; i++) {
		struct ffail *f = &w.fails[i];

		if (f->used && strcmp(f->op, op) == 0) {
			int r = f->r;

			wk_err_set(reterr, r, "%s", f->msg);
			if (!f->always)
				f->used = false;
			return r;
		}
	}
	return 0;
}

/* Common entry of every call on a connection: counts it, checks that the
 * connection works and the scripted failures.  Called with the lock held. */
static int
enter(struct fconn *c, const char *op, const char *uuid, struct wk_err *reterr)
{
	note_call(op, uuid);
	while (strcmp(w.blocked_op, op) == 0) /* libvirtd stopped (SIGSTOP) */
		pthread_cond_wait(&w.cond, &w.lock);
	daemon_tick();
	if (w.down || c->gen != w.gen)
		return wk_err_set(reterr, -ENOTCONN, "%s: End of file while reading data", op);
	return scripted_failure(op, reterr);
}

void
fake_hv_reset(void)
{
	pthread_mutex_lock(&w.lock);
	memset(w.doms, 0, sizeof(w.doms));
	memset(w.steps, 0, sizeof(w.steps));
	memset(w.fails, 0, sizeof(w.fails));
	memset(w.active, 0, sizeof(w.active));
	memset(w.last, 0, sizeof(w.last));
	w.ncalls = 0;
	w.blocked_op[0] = '\0';
	w.down = false;
	w.back_at_ms = 0;
	w.hv_version = FAKE_HV_QEMU_VERSION;
	w.lib_version = FAKE_HV_LIBVIRT_VERSION;
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_set_versions(unsigned long hypervisor, unsigned long libvirt)
{
	pthread_mutex_lock(&w.lock);
	w.hv_version = hypervisor;
	w.lib_version = libvirt;
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_add_domain(const char *host_uri, const char *uuid, enum wk_hv_state state,
    unsigned long long memory_kib, bool persistent)
{
	struct fdom *d;

	pthread_mutex_lock(&w.lock);
	d = dom_put(host_uri, uuid);
	d->info.state = state;
	d->info.reason = WK_HV_REASON_OTHER;
	d->info.memory_kib = memory_kib;
	d->info.persistent = persistent;
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_set_domain(
    const char *host_uri, const char *uuid, enum wk_hv_state state, enum wk_hv_reason reason)
{
	struct fdom *d;

	pthread_mutex_lock(&w.lock);
	d = dom_put(host_uri, uuid);
	d->info.state = state;
	d->info.reason = reason;
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_remove_domain(const char *host_uri, const char *uuid)
{
	struct fdom *d;

	pthread_mutex_lock(&w.lock);
	d = dom_find(host_uri, uuid);
	if (d != NULL)
		d->used = false;
	pthread_mutex_unlock(&w.lock);
}

bool
fake_hv_get_domain(const char *host_uri, const char *uuid, struct wk_hv_domain_info *ret)
{
	struct fdom *d;

	pthread_mutex_lock(&w.lock);
	d = dom_find(host_uri, uuid);
	if (d != NULL && ret != NULL)
		*ret = d->info;
	pthread_mutex_unlock(&w.lock);
	return d != NULL;
}

void
fake_hv_script(const char *uuid, const struct fake_mig_step *step)
{
	pthread_mutex_lock(&w.lock);
	for (int i = 0; i < MAX_STEPS; i++) {
		struct fstep *s = &w.steps[i];

		if (s->used)
			continue;
		s->used = true;
		copy(s->uuid, sizeof(s->uuid), uuid);
		copy(s->msg, sizeof(s->msg), step->msg);
		s->step = *step;
		break;
	}
	pthread_mutex_unlock(&w.lock);
}

/* Takes the oldest scripted step of uuid; COMPLETE when none. */
static struct fake_mig_step
next_step(const char *uuid, char *msg, size_t size)
{
	struct fake_mig_step step = {.kind = FAKE_MIG_COMPLETE};

	msg[0] = '\0';
	for (int i = 0; i < MAX_STEPS; i++) {
		struct fstep *s = &w.steps[i];

		if (!s->used || strcmp(s->uuid, uuid) != 0)
			continue;
		step = s->step;
		copy(msg, size, s->msg);
		memmove(&w.steps[i], &w.steps[i + 1], (MAX_STEPS - i - 1) * sizeof(w.steps[0]));
		w.steps[MAX_STEPS - 1].used = false;
		break;
	}
	step.msg = NULL;
	return step;
}

void
fake_hv_release(const char *uuid, const struct fake_mig_step *then)
{
	struct factive *a;

	pthread_mutex_lock(&w.lock);
	a = active_find(uuid);
	if (a != NULL) {
		a->step = *then;
		copy(a->msg, sizeof(a->msg), then->msg);
		a->step.msg = NULL;
		a->released = true;
		a->start_ms = wk_now_ms();
		pthread_cond_broadcast(&w.cond);
	}
	pthread_mutex_unlock(&w.lock);
}

static void
set_fail(const char *op, int r, const char *msg, bool always)
{
	pthread_mutex_lock(&w.lock);
	for (int i = 0; i < MAX_FAILS; i++)
		if (w.fails[i].used && strcmp(w.fails[i].op, op) == 0)
			w.fails[i].used = false;
	for (int i = 0; msg != NULL && i < MAX_FAILS; i++) {
		struct ffail *f = &w.fails[i];

		if (f->used)
			continue;
		f->used = true;
		f->always = always;
		f->r = r;
		copy(f->op, sizeof(f->op), op);
		copy(f->msg, sizeof(f->msg), msg);
		break;
	}
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_fail_next(const char *op, int r, const char *msg)
{
	set_fail(op, r, msg, false);
}

void
fake_hv_fail_always(const char *op, int r, const char *msg)
{
	set_fail(op, r, msg, true);
}

int
fake_hv_calls(const char *op, const char *uuid)
{
	int n = 0;

	pthread_mutex_lock(&w.lock);
	for (size_t i = 0; i < w.ncalls; i++)
		if (strcmp(w.calls[i].op, op) == 0 &&
		    (uuid == NULL || strcmp(w.calls[i].uuid, uuid) == 0))
			n++;
	pthread_mutex_unlock(&w.lock);
	return n;
}

void
fake_hv_call_log(const char *uuid, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	pthread_mutex_lock(&w.lock);
	for (size_t i = 0; i < w.ncalls && n < size; i++) {
		const struct fcall *c = &w.calls[i];
		int k;

		if (strcmp(c->uuid, uuid) != 0 || strcmp(c->op, "job_stats") == 0 ||
		    strcmp(c->op, "domain_info") == 0 || strcmp(c->op, "remote_domain_info") == 0)
			continue;
		if (strcmp(c->op, "set_max_speed") == 0)
			k = snprintf(buf + n, size - n, "%s%s=%llu", n > 0 ? " " : "",
			    c->postcopy ? "postcopy_speed" : "speed", c->value);
		else
			k = snprintf(buf + n, size - n, "%s%s", n > 0 ? " " : "", c->op);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	pthread_mutex_unlock(&w.lock);
}

long long
fake_hv_speed(const char *uuid, bool postcopy)
{
	long long v = -1;

	pthread_mutex_lock(&w.lock);
	for (size_t i = 0; i < w.ncalls; i++)
		if (strcmp(w.calls[i].op, "set_max_speed") == 0 &&
		    strcmp(w.calls[i].uuid, uuid) == 0 && w.calls[i].postcopy == postcopy)
			v = (long long)w.calls[i].value;
	pthread_mutex_unlock(&w.lock);
	return v;
}

void
fake_hv_block(const char *op)
{
	pthread_mutex_lock(&w.lock);
	copy(w.blocked_op, sizeof(w.blocked_op), op);
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_unblock(void)
{
	pthread_mutex_lock(&w.lock);
	w.blocked_op[0] = '\0';
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
}

void
fake_hv_lose_connection(unsigned restart_after_ms)
{
	pthread_mutex_lock(&w.lock);
	w.gen++;
	w.down = true;
	w.back_at_ms = restart_after_ms > 0 ? wk_now_ms() + restart_after_ms : 0;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
}

bool
fake_hv_last_params(const char *uuid, struct wk_hv_migrate_params *ret)
{
	bool found = false;

	pthread_mutex_lock(&w.lock);
	for (int i = 0; i < MAX_DOMS; i++)
		if (w.last[i].used && strcmp(w.last[i].uuid, uuid) == 0) {
			*ret = w.last[i].p;
			found = true;
		}
	pthread_mutex_unlock(&w.lock);
	return found;
}

/* ---- the backend table ---- */

static int
f_open(const char *uri, void **ret_priv, struct wk_err *reterr)
{
	struct fconn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	copy(c->uri, sizeof(c->uri), uri);
	pthread_mutex_lock(&w.lock);
	daemon_tick();
	c->gen = w.gen;
	if (w.down) {
		pthread_mutex_unlock(&w.lock);
		free(c);
		return wk_err_set(
		    reterr, -ENOTCONN, "Failed to connect socket: Connection refused");
	}
	pthread_mutex_unlock(&w.lock);
	*ret_priv = c;
	return 0;
}

static void
f_close(void *priv)
{
	free(priv);
}

static int
info_locked(
    const char *host, const char *uuid, struct wk_hv_domain_info *ret, struct wk_err *reterr)
{
	struct fdom *d = dom_find(host, uuid);

	if (d == NULL)
		return wk_err_set(reterr, -ENOENT,
		    "find domain: Domain not found: no domain with matching uuid '%s'", uuid);
	*ret = d->info;
	return 0;
}

static int
f_domain_info(void *priv, const char *uuid, struct wk_hv_domain_info *ret, struct wk_err *reterr)
{
	struct fconn *c = priv;
	int r;

	pthread_mutex_lock(&w.lock);
	r = enter(c, "domain_info", uuid, reterr);
	if (r == 0)
		r = info_locked(c->uri, uuid, ret, reterr);
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_remote_domain_info(void *priv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret, struct wk_err *reterr)
{
	int r;

	(void)priv;
	pthread_mutex_lock(&w.lock);
	note_call("remote_domain_info", uuid);
	r = scripted_failure("remote_domain_info", reterr);
	if (r == 0)
		r = info_locked(remote_uri, uuid, ret, reterr);
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_ensure_connected(void *priv, struct wk_err *reterr)
{
	struct fconn *c = priv;
	int r = 0;

	pthread_mutex_lock(&w.lock);
	daemon_tick();
	if (w.down)
		r = wk_err_set(reterr, -ENOTCONN, "reconnect to libvirt: Connection refused");
	else if (c->gen != w.gen) {
		c->gen = w.gen;
		r = 1;
	}
	pthread_mutex_unlock(&w.lock);
	return r;
}

/* Applies how a migration step ends to both hosts and returns its result. */
static int
finish_step(struct factive *a, struct wk_err *reterr)
{
	struct fdom *src = dom_find(a->src, a->uuid), *dst;

	switch (a->step.kind) {
	case FAKE_MIG_COMPLETE:
		dst = dom_put(a->dst, a->uuid);
		dst->info = src ? src->info : dst->info;
		dst->info.state = WK_HV_STATE_RUNNING;
		dst->info.reason = WK_HV_REASON_OTHER;
		dst->info.persistent = a->params.persistent;
		if (src != NULL)
			src->used = false;
		/* libvirtd finished it, but the caller heard only an error. */
		if (a->step.r != 0)
			return wk_err_set(reterr, a->step.r, "migrate: %s", a->msg);
		return 0;
	case FAKE_MIG_FAIL:
		if (src != NULL && src->info.reason == WK_HV_REASON_MIGRATING)
			src->info.reason = WK_HV_REASON_OTHER;
		/* A failed resume leaves both halves failed again, as libvirt does. */
		if (a->postcopy_started && src != NULL) {
			dst = dom_put(a->dst, a->uuid);
			src->info.state = WK_HV_STATE_PAUSED;
			src->info.reason = WK_HV_REASON_POSTCOPY_FAILED;
			dst->info.reason = WK_HV_REASON_POSTCOPY_FAILED;
		}
		return wk_err_set(reterr, a->step.r ? a->step.r : -EIO, "migrate: %s", a->msg);
	case FAKE_MIG_BREAK_POSTCOPY:
		if (src != NULL) {
			src->info.state = WK_HV_STATE_PAUSED;
			src->info.reason = WK_HV_REASON_POSTCOPY_FAILED;
		}
		dst = dom_put(a->dst, a->uuid);
		dst->info.state = WK_HV_STATE_RUNNING;
		dst->info.reason = WK_HV_REASON_POSTCOPY_FAILED;
		return wk_err_set(reterr, -EIO,
		    "migrate: operation failed: job 'migration in' failed in post-copy phase");
	case FAKE_MIG_LOSE_CONNECTION:
		w.gen++;
		w.down = true;
		return wk_err_set(reterr, -ENOTCONN, "migrate: End of file while reading data");
	case FAKE_MIG_HANG:
		break;
	}
	return -EIO;
}

static int
f_migrate(void *priv, const struct wk_hv_migrate_params *p, struct wk_err *reterr)
{
	struct fconn *c = priv;
	struct factive *a = NULL;
	struct fdom *src;
	int r;

	pthread_mutex_lock(&w.lock);
	note_call(p->postcopy_resume ? "resume_postcopy" : "migrate", p->uuid);
	for (int i = 0; i < MAX_DOMS; i++)
		if (!w.last[i].used || strcmp(w.last[i].uuid, p->uuid) == 0) {
			w.last[i].used = true;
			copy(w.last[i].uuid, sizeof(w.last[i].uuid), p->uuid);
			w.last[i].p = *p;
			w.last[i].p.uuid = w.last[i].p.dest_uri = w.last[i].p.migrate_uri = NULL;
			copy(w.last[i].tls_destination, sizeof(w.last[i].tls_destination),
			    p->tls_destination != NULL ? p->tls_destination : "");
			w.last[i].p.tls_destination =
			    p->tls_destination != NULL ? w.last[i].tls_destination : NULL;
			break;
		}
	daemon_tick();
	/* A migration opens a connection of its own: only the daemon must be up. */
	if (w.down) {
		pthread_mutex_unlock(&w.lock);
		return wk_err_set(
		    reterr, -EIO, "connect to libvirt for the migration: Failed to connect socket");
	}
	src = dom_find(c->uri, p->uuid);
	if (src == NULL) {
		pthread_mutex_unlock(&w.lock);
		return wk_err_set(reterr, -ENOENT, "find domain: Domain not found");
	}
	if (active_find(p->uuid) != NULL) {
		pthread_mutex_unlock(&w.lock);
		return wk_err_set(reterr, -EBUSY,
		    "migrate: Requested operation is not valid: another migration job is already "
		    "running for domain");
	}
	if (p->postcopy_resume && src->info.reason != WK_HV_REASON_POSTCOPY_FAILED) {
		pthread_mutex_unlock(&w.lock);
		return wk_err_set(reterr, -EBUSY,
		    "migrate: Requested operation is not valid: resuming failed post-copy "
		    "migration requires post-copy to be failed");
	}
	if (p->postcopy_resume && dom_find(p->dest_uri, p->uuid) == NULL) {
		pthread_mutex_unlock(&w.lock);
		return wk_err_set(reterr, -EIO,
		    "migrate: operation failed: migration of domain on the destination is gone");
	}
	for (int i = 0; a == NULL && i < MAX_ACTIVE; i++)
		if (!w.active[i].used)
			a = &w.active[i];
	if (a == NULL)
		abort(); /* more migrations at once than a unit test needs */
	memset(a, 0, sizeof(*a));
	a->used = true;
	copy(a->uuid, sizeof(a->uuid), p->uuid);
	copy(a->src, sizeof(a->src), c->uri);
	copy(a->dst, sizeof(a->dst), p->dest_uri);
	a->params = *p;
	a->start_ms = wk_now_ms();
	a->step = next_step(p->uuid, a->msg, sizeof(a->msg));
	if (p->postcopy_resume) {
		struct fdom *dst = dom_put(a->dst, a->uuid);

		a->postcopy_started = true;
		src->info.reason = WK_HV_REASON_POSTCOPY;
		dst->info.state = WK_HV_STATE_RUNNING;
		dst->info.reason = WK_HV_REASON_POSTCOPY;
	}
	for (;;) {
		uint64_t now = wk_now_ms();
		struct timespec ts;

		if (w.gen != c->gen || w.down) {
			/* libvirtd died under the call: the migration is cancelled. */
			r = wk_err_set(
			    reterr, -ENOTCONN, "migrate: End of file while reading data");
			break;
		}
		if (a->aborted) {
			r = wk_err_set(reterr, -ECANCELED,
			    "migrate: operation aborted: migration out: canceled by client");
			break;
		}
		if (a->step.kind != FAKE_MIG_HANG && now >= a->start_ms + a->step.duration_ms) {
			r = finish_step(a, reterr);
			break;
		}
		ts = wk_timespec_in(CLOCK_REALTIME, 10);
		pthread_cond_timedwait(&w.cond, &w.lock, &ts);
	}
	a->used = false;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_job_stats(void *priv, const char *uuid, struct wk_job_sample *ret, struct wk_err *reterr)
{
	struct fconn *c = priv;
	struct factive *a;
	struct fdom *d;
	struct wk_job_sample s;
	int r;

	pthread_mutex_lock(&w.lock);
	r = enter(c, "job_stats", uuid, reterr);
	if (r == 0 && dom_find(c->uri, uuid) == NULL)
		r = wk_err_set(reterr, -ENOENT, "find domain: Domain not found");
	if (r < 0) {
		pthread_mutex_unlock(&w.lock);
		return r;
	}
	memset(&s, 0, sizeof(s));
	a = active_find(uuid);
	if (a != NULL && a->step.trace != NULL && a->step.trace_len > 0) {
		size_t i = a->step.step_ms ? (wk_now_ms() - a->start_ms) / a->step.step_ms : 0;

		s = a->step.trace[i < a->step.trace_len ? i : a->step.trace_len - 1];
	} else if (a != NULL) {
		s.memory_total = 256LL << 20;
		s.data_total = 256LL << 20;
		s.data_processed = s.memory_processed = 64LL << 20;
		s.data_remaining = s.memory_remaining = 192LL << 20;
		s.memory_iteration = 1;
		s.memory_bps = 100LL << 20;
	}
	/* libvirt keeps the job of a post-copy migration that broke (seen on
	 * the rig): it ends only with a resume, never by itself. */
	d = dom_find(c->uri, uuid);
	s.type = a != NULL || (d != NULL && d->info.reason == WK_HV_REASON_POSTCOPY_FAILED)
	             ? WK_JOB_UNBOUNDED
	             : WK_JOB_NONE;
	s.t_ms = wk_now_ms();
	*ret = s;
	pthread_mutex_unlock(&w.lock);
	return 0;
}

/* A domain operation: the connection, the scripted failure, the domain. */
static int
op_begin(
    struct fconn *c, const char *op, const char *uuid, struct fdom **ret_dom, struct wk_err *reterr)
{
	int r = enter(c, op, uuid, reterr);

	if (r < 0)
		return r;
	*ret_dom = dom_find(c->uri, uuid);
	if (*ret_dom == NULL)
		return wk_err_set(reterr, -ENOENT, "%s: Domain not found", op);
	return 0;
}

static int
f_abort(void *priv, const char *uuid, struct wk_err *reterr)
{
	struct fdom *d = NULL;
	struct factive *a;
	int r;

	pthread_mutex_lock(&w.lock);
	r = op_begin(priv, "abort", uuid, &d, reterr);
	a = r == 0 ? active_find(uuid) : NULL;
	if (r == 0 && a == NULL)
		r = wk_err_set(reterr, -EBUSY,
		    "abort migration: Requested operation is not valid: no job is active on the "
		    "domain");
	else if (r == 0 && a->postcopy_started)
		r = wk_err_set(reterr, -EBUSY,
		    "abort migration: Requested operation is not valid: cannot abort migration in "
		    "post-copy mode");
	else if (r == 0) {
		a->aborted = true;
		pthread_cond_broadcast(&w.cond);
	}
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_start_postcopy(void *priv, const char *uuid, struct wk_err *reterr)
{
	struct fdom *d = NULL;
	struct factive *a;
	int r;

	pthread_mutex_lock(&w.lock);
	r = op_begin(priv, "start_postcopy", uuid, &d, reterr);
	a = r == 0 ? active_find(uuid) : NULL;
	if (r == 0 && (a == NULL || !a->params.postcopy))
		r = wk_err_set(reterr, -EBUSY,
		    "switch to post-copy: Requested operation is not valid: switching to post-copy "
		    "requires migration to be started with VIR_MIGRATE_POSTCOPY flag");
	else if (r == 0 && d != NULL) {
		struct fdom *dst = dom_put(a->dst, uuid);

		a->postcopy_started = true;
		d->info.state = WK_HV_STATE_PAUSED;
		d->info.reason = WK_HV_REASON_POSTCOPY;
		dst->info.state = WK_HV_STATE_RUNNING;
		dst->info.reason = WK_HV_REASON_POSTCOPY;
	}
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
set_state(
    void *priv, const char *op, const char *uuid, enum wk_hv_state state, struct wk_err *reterr)
{
	struct fdom *d = NULL;
	int r;

	pthread_mutex_lock(&w.lock);
	r = op_begin(priv, op, uuid, &d, reterr);
	if (r == 0 && d != NULL && d->info.reason == WK_HV_REASON_POSTCOPY_FAILED)
		r = wk_err_set(reterr, -EBUSY,
		    "%s: Requested operation is not valid: post-copy "
		    "failed",
		    op);
	else if (r == 0 && d != NULL)
		d->info.state = state;
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_suspend(void *priv, const char *uuid, struct wk_err *reterr)
{
	return set_state(priv, "suspend", uuid, WK_HV_STATE_PAUSED, reterr);
}

static int
f_resume(void *priv, const char *uuid, struct wk_err *reterr)
{
	return set_state(priv, "resume", uuid, WK_HV_STATE_RUNNING, reterr);
}

static int
simple_op(void *priv, const char *op, const char *uuid, struct wk_err *reterr)
{
	struct fdom *d;
	int r;

	pthread_mutex_lock(&w.lock);
	r = op_begin(priv, op, uuid, &d, reterr);
	if (r == 0 && active_find(uuid) == NULL)
		r = wk_err_set(reterr, -EBUSY,
		    "%s: Requested operation is not valid: no job is "
		    "active on the domain",
		    op);
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_set_max_downtime(void *priv, const char *uuid, unsigned long long ms, struct wk_err *reterr)
{
	(void)ms;
	return simple_op(priv, "set_max_downtime", uuid, reterr);
}

static int
f_set_max_speed(
    void *priv, const char *uuid, unsigned long long mib_s, bool postcopy, struct wk_err *reterr)
{
	struct fdom *d;
	size_t idx;
	int r;

	pthread_mutex_lock(&w.lock);
	idx = w.ncalls;
	r = op_begin(priv, "set_max_speed", uuid, &d, reterr);
	/* Recorded whatever the outcome, as the call was made. */
	if (idx < w.ncalls) {
		w.calls[idx].value = mib_s;
		w.calls[idx].postcopy = postcopy;
	}
	if (r == 0 && active_find(uuid) == NULL)
		r = wk_err_set(reterr, -EBUSY,
		    "set max speed: Requested operation is not valid: no job is active on the "
		    "domain");
	pthread_mutex_unlock(&w.lock);
	return r;
}

static int
f_versions(
    void *priv, unsigned long *ret_hypervisor, unsigned long *ret_libvirt, struct wk_err *reterr)
{
	int r;

	(void)priv;
	pthread_mutex_lock(&w.lock);
	note_call("versions", NULL);
	r = scripted_failure("versions", reterr);
	if (r == 0) {
		*ret_hypervisor = w.hv_version;
		*ret_libvirt = w.lib_version;
	}
	pthread_mutex_unlock(&w.lock);
	return r;
}

const struct wk_hv_ops fake_hv_ops = {
    .name = "fake",
    .open = f_open,
    .close = f_close,
    .domain_info = f_domain_info,
    .migrate = f_migrate,
    .job_stats = f_job_stats,
    .abort = f_abort,
    .start_postcopy = f_start_postcopy,
    .suspend = f_suspend,
    .resume = f_resume,
    .set_max_downtime = f_set_max_downtime,
    .set_max_speed = f_set_max_speed,
    .remote_domain_info = f_remote_domain_info,
    .ensure_connected = f_ensure_connected,
    .versions = f_versions,
};
