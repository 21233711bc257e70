/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_migrate: job threads and their hand-off to the main thread.
 * Invariant: a job stays in the table until its WK_MIG_DONE event has been
 * drained; then both of its threads have ended and are joined.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wk_log.h"
#include "wk_migrate.h"

WK_LOG_NAME("worker.migrate");

struct event_node {
	struct event_node *next;
	struct wk_mig_event ev;
};

struct job {
	struct job *next;
	struct wk_migrate *owner;
	uint64_t id;
	/* owned copies of the borrowed strings in params */
	char *uuid, *dest_uri, *migrate_uri, *request_id;
	struct wk_hv_migrate_params params;
	unsigned interval_ms;
	pthread_t run_thread, watch_thread;
	bool adopted; /* no run thread: the watcher also notices the end */
	bool watch_started;
	pthread_mutex_t lock; /* guards done, with cond: wakes the watcher early */
	pthread_cond_t cond;
	bool done;
};

struct wk_migrate {
	wk_hv *hv;
	int efd;
	struct job *jobs; /* main thread only */
	size_t running;   /* main thread only */
	pthread_mutex_t lock; /* guards head and tail */
	struct event_node *head, *tail;
};

static void
push_event(wk_migrate *m, const struct wk_mig_event *ev)
{
	struct event_node *n = malloc(sizeof(*n));
	uint64_t one = 1;

	if (n == NULL) {
		log_critical("Out of memory handing a migration event to the main thread");
		abort();
	}
	n->next = NULL;
	n->ev = *ev;
	pthread_mutex_lock(&m->lock);
	if (m->tail != NULL)
		m->tail->next = n;
	else
		m->head = n;
	m->tail = n;
	pthread_mutex_unlock(&m->lock);
	/* A full eventfd counter still wakes the reader; nothing to handle. */
	(void)!write(m->efd, &one, sizeof(one));
}

static void *
run_thread(void *arg)
{
	struct job *j = arg;
	struct wk_mig_event ev;
	struct wk_err err = {{0}};

	wk_log_set_request_id(j->request_id);
	log_info("Migration of '%s' started", j->uuid);
	memset(&ev, 0, sizeof(ev));
	ev.job_id = j->id;
	ev.kind = WK_MIG_DONE;
	ev.r = wk_hv_migrate(j->owner->hv, &j->params, &err);
	if (ev.r < 0) {
		snprintf(ev.msg, sizeof(ev.msg), "%s", err.msg);
		log_error("Migration of '%s' failed: %s", j->uuid, err.msg);
	} else {
		log_info("Migration of '%s' completed", j->uuid);
	}
	pthread_mutex_lock(&j->lock);
	j->done = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	push_event(j->owner, &ev);
	return NULL;
}

/* An adopted job (started by an earlier worker process) has no migrate call
 * to return: it has ended when libvirt no longer reports an active job.  The
 * outcome follows from where the domain is: gone from this host means it
 * migrated (Nova's flags undefine the source), still here means it failed.
 * Fills *done_ev and pushes it when the job ended. */
static bool
adopted_job_ended(struct job *j, int stats_r, const struct wk_job_sample *s,
    struct wk_mig_event *done_ev)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	int r;

	if (stats_r == 0 && (s->type == WK_JOB_BOUNDED || s->type == WK_JOB_UNBOUNDED))
		return false;
	if (stats_r < 0 && stats_r != -ENOENT && stats_r != -EBUSY)
		return false; /* a passing libvirt error: ask again */
	r = wk_hv_domain_info(j->owner->hv, j->uuid, &info, &err);
	if (r < 0 && r != -ENOENT)
		return false;
	memset(done_ev, 0, sizeof(*done_ev));
	done_ev->job_id = j->id;
	done_ev->kind = WK_MIG_DONE;
	if (r == -ENOENT) {
		log_info("Adopted migration of '%s' completed", j->uuid);
	} else {
		done_ev->r = -EIO;
		snprintf(done_ev->msg, sizeof(done_ev->msg),
		    "the migration ended while no worker watched it and '%s' is still on this "
		    "host",
		    j->uuid);
		log_error("Adopted migration of '%s' failed: %s", j->uuid, done_ev->msg);
	}
	pthread_mutex_lock(&j->lock);
	j->done = true;
	pthread_mutex_unlock(&j->lock);
	push_event(j->owner, done_ev);
	return true;
}

static void *
watch_thread(void *arg)
{
	struct job *j = arg;
	struct wk_mig_event ev;

	wk_log_set_request_id(j->request_id);
	for (;;) {
		struct timespec ts;
		struct wk_err err = {{0}};
		bool done;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += j->interval_ms / 1000;
		ts.tv_nsec += (long)(j->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&j->lock);
		while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT)
			;
		done = j->done;
		pthread_mutex_unlock(&j->lock);
		if (done)
			break;
		memset(&ev, 0, sizeof(ev));
		ev.job_id = j->id;
		ev.kind = WK_MIG_SAMPLE;
		/* Stats fail once the source domain is gone at the very end: not news. */
		r = wk_hv_job_stats(j->owner->hv, j->uuid, &ev.sample, &err);
		if (j->adopted && adopted_job_ended(j, r, &ev.sample, &ev))
			break;
		if (r == 0)
			push_event(j->owner, &ev);
		else
			log_debug("No job statistics for '%s': %s", j->uuid, err.msg);
	}
	return NULL;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j->uuid);
	free(j->dest_uri);
	free(j->migrate_uri);
	free(j->request_id);
	free(j);
}

int
wk_migrate_new(wk_hv *hv, wk_migrate **ret_migrate)
{
	wk_migrate *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return -ENOMEM;
	m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->efd < 0) {
		int r = -errno;

		free(m);
		return r;
	}
	m->hv = hv;
	pthread_mutex_init(&m->lock, NULL);
	*ret_migrate = m;
	return 0;
}

wk_migrate *
wk_migrate_free(wk_migrate *m)
{
	if (m == NULL)
		return NULL;
	while (m->jobs != NULL) {
		struct job *j = m->jobs;

		m->jobs = j->next;
		pthread_mutex_lock(&j->lock);
		bool done = j->done;
		pthread_mutex_unlock(&j->lock);
		if (done) {
			if (!j->adopted)
				pthread_join(j->run_thread, NULL);
			if (j->watch_started)
				pthread_join(j->watch_thread, NULL);
			job_free(j);
		} else {
			/* Still inside libvirt: the threads own j now and the process is exiting. */
			if (!j->adopted)
				pthread_detach(j->run_thread);
			if (j->watch_started)
				pthread_detach(j->watch_thread);
		}
	}
	while (m->head != NULL) {
		struct event_node *n = m->head;

		m->head = n->next;
		free(n);
	}
	close(m->efd);
	/* m->lock may still be used by a detached job thread at exit: keep m alive then. */
	if (m->running == 0) {
		pthread_mutex_destroy(&m->lock);
		free(m);
	}
	return NULL;
}

int
wk_migrate_fd(const wk_migrate *m)
{
	return m->efd;
}

size_t
wk_migrate_running(const wk_migrate *m)
{
	return m->running;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* A job record with its owned copies, not yet running; NULL on ENOMEM. */
static struct job *
job_new(wk_migrate *m, uint64_t job_id, const char *uuid, unsigned interval_ms,
    const char *request_id)
{
	struct job *j = calloc(1, sizeof(*j));
	pthread_condattr_t ca;

	if (j == NULL)
		return NULL;
	j->owner = m;
	j->id = job_id;
	j->uuid = dup_or_null(uuid);
	j->request_id = dup_or_null(request_id);
	j->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (j->uuid == NULL || (request_id && !j->request_id)) {
		job_free(j);
		return NULL;
	}
	j->params.uuid = j->uuid;
	return j;
}

static void
job_link(wk_migrate *m, struct job *j)
{
	j->next = m->jobs;
	m->jobs = j;
	m->running++;
}

int
wk_migrate_start(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id)
{
	struct job *j = job_new(m, job_id, p->uuid, interval_ms, request_id);
	int r;

	if (j == NULL)
		return -ENOMEM;
	j->params = *p;
	j->params.uuid = j->uuid;
	j->dest_uri = dup_or_null(p->dest_uri);
	j->migrate_uri = dup_or_null(p->migrate_uri);
	if (j->dest_uri == NULL || (p->migrate_uri && !j->migrate_uri)) {
		job_free(j);
		return -ENOMEM;
	}
	j->params.dest_uri = j->dest_uri;
	j->params.migrate_uri = j->migrate_uri;
	r = -pthread_create(&j->run_thread, NULL, run_thread, j);
	if (r < 0) {
		job_free(j);
		return r;
	}
	/* Without a watcher the migration still runs; only progress is lost. */
	j->watch_started = pthread_create(&j->watch_thread, NULL, watch_thread, j) == 0;
	if (!j->watch_started)
		log_warning("Cannot start the statistics thread for '%s', no progress will be reported",
		    j->uuid);
	job_link(m, j);
	return 0;
}

static void
reap(wk_migrate *m, uint64_t job_id)
{
	for (struct job **pp = &m->jobs; *pp != NULL; pp = &(*pp)->next) {
		struct job *j = *pp;

		if (j->id != job_id)
			continue;
		*pp = j->next;
		if (!j->adopted)
			pthread_join(j->run_thread, NULL);
		if (j->watch_started)
			pthread_join(j->watch_thread, NULL);
		job_free(j);
		m->running--;
		return;
	}
}

size_t
wk_migrate_drain(wk_migrate *m, wk_migrate_on_event on_event, void *userdata)
{
	struct event_node *list;
	uint64_t count;
	size_t n = 0;

	(void)!read(m->efd, &count, sizeof(count));
	pthread_mutex_lock(&m->lock);
	list = m->head;
	m->head = m->tail = NULL;
	pthread_mutex_unlock(&m->lock);
	while (list != NULL) {
		struct event_node *e = list;

		list = e->next;
		if (e->ev.kind == WK_MIG_DONE)
			reap(m, e->ev.job_id);
		on_event(userdata, &e->ev);
		free(e);
		n++;
	}
	return n;
}

int
wk_migrate_adopt(wk_migrate *m, uint64_t job_id, const char *uuid, unsigned interval_ms,
    const char *request_id)
{
	struct job *j = job_new(m, job_id, uuid, interval_ms, request_id);

	if (j == NULL)
		return -ENOMEM;
	j->adopted = true;
	/* Here the watcher is the only way to learn the end: no thread, no job. */
	if (pthread_create(&j->watch_thread, NULL, watch_thread, j) != 0) {
		job_free(j);
		return -EAGAIN;
	}
	j->watch_started = true;
	job_link(m, j);
	return 0;
}
