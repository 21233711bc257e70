/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv: the facade over a backend table (wk_hv_backend.h).  It forwards
 * every call, and bounds the calls of one thread (the main thread, see
 * wk_hv_bound_calls): those run on an executor thread and are given up
 * after a timeout, so a libvirtd that stopped answering (SIGSTOP, a hung
 * QEMU monitor) cannot stop the event loop.  While a given-up call is
 * still stuck in the backend, the next bounded calls fail at once.
 */
#include "wk_hv.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wk_hv_backend.h"

enum verb {
	V_DOMAIN_INFO,
	V_REMOTE_INFO,
	V_REMOTE_FORGET,
	V_JOB_STATS,
	V_ABORT,
	V_START_POSTCOPY,
	V_SUSPEND,
	V_RESUME,
	V_MAX_DOWNTIME,
	V_MAX_SPEED,
	V_ENSURE,
	V_VERSIONS,
	V_LOCAL_DISKS,
};

/* One call handed to the executor.  Owned by the caller until it gives up
 * (abandoned), then by the executor, which frees it. */
struct call {
	enum verb verb;
	char uuid[80], uri[512];
	unsigned long long value;
	bool flag;                             /* V_MAX_SPEED: the post-copy cap */
	unsigned long hv_version, lib_version; /* V_VERSIONS */
	int r;
	struct wk_err err;
	struct wk_hv_domain_info info;
	struct wk_job_sample sample;
	struct wk_disk_list *disks; /* V_LOCAL_DISKS: new, the executor frees it if abandoned */
	bool done, abandoned;
};

struct wk_hv {
	const struct wk_hv_ops *ops;
	void *priv;
	/* bounded calls; lock guards pending, busy, quit and each call's done/abandoned */
	bool bounded;
	pthread_t owner, executor;
	unsigned timeout_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct call *pending;
	bool busy, quit;
};

int
wk_hv_open(const struct wk_hv_ops *ops, const char *uri, wk_hv **ret_hv, struct wk_err *reterr)
{
	wk_hv *hv = calloc(1, sizeof(*hv));
	int r;

	if (hv == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	hv->ops = ops;
	r = ops->open(uri, &hv->priv, reterr);
	if (r < 0) {
		free(hv);
		return r;
	}
	pthread_mutex_init(&hv->lock, NULL);
	pthread_cond_init(&hv->cond, NULL);
	*ret_hv = hv;
	return 0;
}

wk_hv *
wk_hv_close(wk_hv *hv)
{
	bool stuck;

	if (hv == NULL)
		return NULL;
	if (hv->bounded) {
		pthread_mutex_lock(&hv->lock);
		hv->quit = true;
		stuck = hv->busy;
		pthread_cond_broadcast(&hv->cond);
		pthread_mutex_unlock(&hv->lock);
		if (stuck) {
			/* Still inside the backend: the process is exiting; leave it. */
			pthread_detach(hv->executor);
			return NULL;
		}
		pthread_join(hv->executor, NULL);
	}
	hv->ops->close(hv->priv);
	pthread_mutex_destroy(&hv->lock);
	pthread_cond_destroy(&hv->cond);
	free(hv);
	return NULL;
}

const char *
wk_hv_backend_name(const wk_hv *hv)
{
	return hv->ops->name;
}

static void run_once(wk_hv *hv, struct call *c);

/* Runs c against the backend, on whichever thread calls it.  A call that
 * found the connection dead (libvirtd restarted) reopens it and is made
 * once more: the daemon's restart is not the caller's concern. */
static void
run_call(wk_hv *hv, struct call *c)
{
	struct wk_err err;

	run_once(hv, c);
	if (c->r == -ENOTCONN && c->verb != V_ENSURE && hv->ops->ensure_connected != NULL &&
	    hv->ops->ensure_connected(hv->priv, &err) == 1)
		run_once(hv, c);
}

static void
run_once(wk_hv *hv, struct call *c)
{
	const struct wk_hv_ops *o = hv->ops;
	void *p = hv->priv;

	switch (c->verb) {
	case V_DOMAIN_INFO:
		c->r = o->domain_info(p, c->uuid, &c->info, &c->err);
		break;
	case V_REMOTE_INFO:
		c->r =
		    o->remote_domain_info == NULL
		        ? wk_err_set(&c->err, -EOPNOTSUPP, "%s: no remote domain lookup", o->name)
		        : o->remote_domain_info(p, c->uri, c->uuid, &c->info, &c->err);
		break;
	case V_REMOTE_FORGET:
		c->r = o->remote_forget == NULL ? 0 : o->remote_forget(p, c->uri);
		break;
	case V_JOB_STATS:
		c->r = o->job_stats(p, c->uuid, &c->sample, &c->err);
		break;
	case V_ABORT:
		c->r = o->abort(p, c->uuid, &c->err);
		break;
	case V_START_POSTCOPY:
		c->r = o->start_postcopy(p, c->uuid, &c->err);
		break;
	case V_SUSPEND:
		c->r = o->suspend(p, c->uuid, &c->err);
		break;
	case V_RESUME:
		c->r = o->resume(p, c->uuid, &c->err);
		break;
	case V_MAX_DOWNTIME:
		c->r = o->set_max_downtime(p, c->uuid, c->value, &c->err);
		break;
	case V_MAX_SPEED:
		c->r = o->set_max_speed(p, c->uuid, c->value, c->flag, &c->err);
		break;
	case V_ENSURE:
		c->r = o->ensure_connected == NULL ? 0 : o->ensure_connected(p, &c->err);
		break;
	case V_VERSIONS:
		c->r = o->versions == NULL
		           ? wk_err_set(&c->err, -EOPNOTSUPP, "%s: no version query", o->name)
		           : o->versions(p, &c->hv_version, &c->lib_version, &c->err);
		break;
	case V_LOCAL_DISKS:
		free(c->disks);
		c->disks = NULL;
		c->r = o->local_disks == NULL
		           ? wk_err_set(&c->err, -EOPNOTSUPP, "%s: no disk listing", o->name)
		           : o->local_disks(p, c->uuid, c->uri, &c->disks, &c->err);
		break;
	}
}

static void *
executor_main(void *arg)
{
	wk_hv *hv = arg;

	pthread_mutex_lock(&hv->lock);
	for (;;) {
		struct call *c;

		while (hv->pending == NULL && !hv->quit)
			pthread_cond_wait(&hv->cond, &hv->lock);
		if (hv->pending == NULL)
			break;
		c = hv->pending;
		hv->pending = NULL;
		pthread_mutex_unlock(&hv->lock);
		run_call(hv, c);
		pthread_mutex_lock(&hv->lock);
		c->done = true;
		hv->busy = false;
		if (c->abandoned) {
			free(c->disks);
			free(c);
		}
		pthread_cond_broadcast(&hv->cond);
	}
	pthread_mutex_unlock(&hv->lock);
	return NULL;
}

int
wk_hv_bound_calls(wk_hv *hv, unsigned timeout_ms)
{
	if (hv->bounded)
		return 0;
	hv->owner = pthread_self();
	hv->timeout_ms = timeout_ms;
	if (pthread_create(&hv->executor, NULL, executor_main, hv) != 0)
		return -EAGAIN;
	hv->bounded = true;
	return 0;
}

/* Runs c directly, or, from the bounded thread, on the executor within the
 * timeout.  The results are in c unless -ETIMEDOUT. */
static int
dispatch(wk_hv *hv, struct call *c)
{
	struct call *h;
	struct timespec ts;
	int r;

	if (!hv->bounded || !pthread_equal(hv->owner, pthread_self())) {
		run_call(hv, c);
		return c->r;
	}
	pthread_mutex_lock(&hv->lock);
	if (hv->busy) {
		pthread_mutex_unlock(&hv->lock);
		return wk_err_set(&c->err, -ETIMEDOUT,
		    "libvirt has not answered an earlier call in %u ms (is libvirtd stopped?)",
		    hv->timeout_ms);
	}
	h = malloc(sizeof(*h));
	if (h == NULL) {
		pthread_mutex_unlock(&hv->lock);
		return wk_err_set(&c->err, -ENOMEM, "out of memory");
	}
	*h = *c;
	hv->pending = h;
	hv->busy = true;
	pthread_cond_broadcast(&hv->cond);
	ts = wk_timespec_in(CLOCK_REALTIME, hv->timeout_ms);
	while (!h->done && pthread_cond_timedwait(&hv->cond, &hv->lock, &ts) != ETIMEDOUT)
		;
	if (!h->done) {
		h->abandoned = true; /* the executor frees it when the backend returns */
		pthread_mutex_unlock(&hv->lock);
		return wk_err_set(&c->err, -ETIMEDOUT,
		    "libvirt did not answer within %u ms (is libvirtd stopped?)", hv->timeout_ms);
	}
	*c = *h;
	free(h);
	r = c->r;
	pthread_mutex_unlock(&hv->lock);
	return r;
}

/* Prepares a call on uuid; NULL uuid for connection-wide verbs. */
static struct call
call_of(enum verb v, const char *uuid)
{
	struct call c;

	memset(&c, 0, sizeof(c));
	c.verb = v;
	if (uuid != NULL)
		snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
	return c;
}

/* Copies the failure text out; the result is the call's. */
static int
finish(const struct call *c, int r, struct wk_err *reterr)
{
	if (r < 0 && reterr != NULL)
		*reterr = c->err;
	return r;
}

int
wk_hv_domain_info(
    wk_hv *hv, const char *uuid, struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	struct call c = call_of(V_DOMAIN_INFO, uuid);
	int r = dispatch(hv, &c);

	if (r == 0)
		*ret_info = c.info;
	return finish(&c, r, reterr);
}

int
wk_hv_remote_domain_info(wk_hv *hv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	struct call c = call_of(V_REMOTE_INFO, uuid);
	int r;

	snprintf(c.uri, sizeof(c.uri), "%s", remote_uri);
	r = dispatch(hv, &c);
	if (r == 0)
		*ret_info = c.info;
	return finish(&c, r, reterr);
}

int
wk_hv_remote_forget(wk_hv *hv, const char *remote_uri)
{
	struct call c = call_of(V_REMOTE_FORGET, NULL);

	snprintf(c.uri, sizeof(c.uri), "%s", remote_uri);
	return finish(&c, dispatch(hv, &c), NULL);
}

int
wk_hv_versions(
    wk_hv *hv, unsigned long *ret_hypervisor, unsigned long *ret_libvirt, struct wk_err *reterr)
{
	struct call c = call_of(V_VERSIONS, NULL);
	int r = dispatch(hv, &c);

	if (r == 0) {
		*ret_hypervisor = c.hv_version;
		*ret_libvirt = c.lib_version;
	}
	return finish(&c, r, reterr);
}

int
wk_hv_ensure_connected(wk_hv *hv, struct wk_err *reterr)
{
	struct call c = call_of(V_ENSURE, NULL);

	return finish(&c, dispatch(hv, &c), reterr);
}

int
wk_hv_local_disks(wk_hv *hv, const char *uuid, const char *instances_path,
    struct wk_disk_list **ret_list, struct wk_err *reterr)
{
	struct call c = call_of(V_LOCAL_DISKS, uuid);
	int r;

	if (strlen(instances_path) >= sizeof(c.uri))
		return wk_err_set(reterr, -ENAMETOOLONG, "libvirt.instances_path is too long");
	snprintf(c.uri, sizeof(c.uri), "%s", instances_path);
	r = dispatch(hv, &c);
	if (r == 0)
		*ret_list = c.disks;
	else
		free(c.disks);
	return finish(&c, r, reterr);
}

int
wk_hv_migrate(wk_hv *hv, const struct wk_hv_migrate_params *p, struct wk_err *reterr)
{
	/* Only ever on a migration's own thread: it blocks by design. */
	return hv->ops->migrate(hv->priv, p, reterr);
}

int
wk_hv_job_stats(
    wk_hv *hv, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr)
{
	struct call c = call_of(V_JOB_STATS, uuid);
	int r = dispatch(hv, &c);

	if (r == 0)
		*ret_sample = c.sample;
	return finish(&c, r, reterr);
}

static int
simple(wk_hv *hv, enum verb v, const char *uuid, unsigned long long value, struct wk_err *reterr)
{
	struct call c = call_of(v, uuid);

	c.value = value;
	return finish(&c, dispatch(hv, &c), reterr);
}

int
wk_hv_abort(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return simple(hv, V_ABORT, uuid, 0, reterr);
}

int
wk_hv_start_postcopy(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return simple(hv, V_START_POSTCOPY, uuid, 0, reterr);
}

int
wk_hv_suspend(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return simple(hv, V_SUSPEND, uuid, 0, reterr);
}

int
wk_hv_resume(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return simple(hv, V_RESUME, uuid, 0, reterr);
}

int
wk_hv_set_max_downtime(wk_hv *hv, const char *uuid, unsigned long long ms, struct wk_err *reterr)
{
	return simple(hv, V_MAX_DOWNTIME, uuid, ms, reterr);
}

int
wk_hv_set_max_speed(
    wk_hv *hv, const char *uuid, unsigned long long mib_s, bool postcopy, struct wk_err *reterr)
{
	struct call c = call_of(V_MAX_SPEED, uuid);

	c.value = mib_s;
	c.flag = postcopy;
	return finish(&c, dispatch(hv, &c), reterr);
}
