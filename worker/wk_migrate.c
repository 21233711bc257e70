/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_migrate: job threads and their hand-off to the main thread.
 * Invariant: a job stays in the table until its WK_MIG_DONE event has been
 * drained; then both of its threads have ended and are joined.
 */
#include "wk_migrate.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wk_log.h"

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
	char disk_names[WK_DISK_MAX][sizeof(((struct wk_disk *)0)->target)];
	const char *disk_ptrs[WK_DISK_MAX];
	struct wk_hv_migrate_params params;
	unsigned base_interval_ms; /* the period the job started with (immutable) */
	pthread_t run_thread, watch_thread;
	bool adopted; /* no migrate call of ours: the run thread waits for libvirt's job */
	bool watch_started;
	pthread_mutex_t lock; /* guards done and the period, with cond: wakes the watcher early */
	pthread_cond_t cond;
	bool done;
	unsigned interval_ms; /* the watcher's period now (wk_migrate_set_interval) */
	bool rearm;           /* the period changed: the watcher starts a new wait */
};

struct wk_migrate {
	wk_hv *hv;
	unsigned recovery_timeout_s, recovery_backoff_ms; /* set before any job starts */
	int efd;
	struct job *jobs;     /* main thread only */
	size_t running;       /* main thread only */
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

/* How long after a post-copy break a destination without the domain is
 * taken as gone for good (its QEMU died), not as not shown yet. */
#define DEST_GONE_MS 3000
/* How long an in-between state of the two hosts is read again. */
#define UNSURE_MS 30000

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *
wk_migrate_state_text(int r, const struct wk_hv_domain_info *info, char *buf, size_t size)
{
	static const char *const states[] = {"other", "running", "paused", "shut off"};
	static const char *const reasons[] = {
	    "", " (migrating)", " (postcopy)", " (postcopy_failed)"};

	if (r == -ENOENT)
		snprintf(buf, size, "absent");
	else if (r < 0)
		snprintf(buf, size, "unknown (%s)", strerror(-r));
	else
		snprintf(buf, size, "%s%s", states[info->state], reasons[info->reason]);
	return buf;
}

/* What both hosts run for this job's domain, as read now. */
struct both_hosts {
	int src_r, dst_r; /* 0, -ENOENT (not there) or another -errno (cannot tell) */
	struct wk_hv_domain_info src, dst;
	bool src_job_active; /* libvirt still runs a migration job for it here */
};

static bool
present(int r, const struct wk_hv_domain_info *info)
{
	return r == 0 && info->state != WK_HV_STATE_SHUTOFF;
}

/* The guest's memory is split over both hosts and no job moves it: the
 * post-copy stream broke (libvirt marks it failed; a post-copy state with
 * no job left is the same thing seen a moment earlier). */
static bool
postcopy_broken(const struct both_hosts *h)
{
	return (h->src_r == 0 && h->src.reason == WK_HV_REASON_POSTCOPY_FAILED) ||
	       (h->dst_r == 0 && h->dst.reason == WK_HV_REASON_POSTCOPY_FAILED) ||
	       (h->src_r == 0 && h->src.reason == WK_HV_REASON_POSTCOPY && !h->src_job_active);
}

/* Reads both hosts.  The local connection is reopened when libvirtd went
 * away (a restart): the truth is only ever read, never assumed.  fresh:
 * the migrate call failed, and the destination may have gone with it: its
 * kept connection is dropped and it is read on a new one, whose connect
 * fails within the kernel's SYN retries (~2 min) where a read on a kept
 * connection to a host that vanished without closing it would wait out
 * TCP's retransmissions (~15 min; libvirt's client has no keepalive here,
 * see lv_migrate).  A call that just succeeded shows the destination
 * answers, so its end is read on the kept connection. */
static void
read_both_hosts(struct job *j, struct both_hosts *h, bool fresh)
{
	wk_hv *hv = j->owner->hv;
	struct wk_job_sample s;
	struct wk_err err = {{0}};
	unsigned wait_ms = 500;

	memset(h, 0, sizeof(*h));
	for (;;) {
		h->src_r = wk_hv_domain_info(hv, j->uuid, &h->src, &err);
		if (h->src_r != -ENOTCONN)
			break;
		if (wk_hv_ensure_connected(hv, &err) == 1) {
			log_warning("Reconnected to libvirt, which had gone away, to read the end "
			            "of the migration of '%s'",
			    j->uuid);
			continue;
		}
		log_warning("libvirt is not reachable (%s); asking again in %u ms for '%s'",
		    err.msg, wait_ms, j->uuid);
		sleep_ms(wait_ms);
		if (wait_ms < 5000)
			wait_ms *= 2;
	}
	if (fresh)
		log_info("The migrate call of '%s' failed: reading the destination on a fresh "
		         "connection%s",
		    j->uuid, wk_hv_remote_forget(hv, j->dest_uri) == 1 ? ", not the one kept" : "");
	h->dst_r = wk_hv_remote_domain_info(hv, j->dest_uri, j->uuid, &h->dst, &err);
	if (h->dst_r < 0 && h->dst_r != -ENOENT)
		log_warning("Cannot read '%s' on the destination: %s", j->uuid, err.msg);
	else if (h->dst_r == 0 && h->dst.reconnected)
		log_info("The connection kept to the destination's libvirt was dead (restarted?): "
		         "read '%s' there again on a fresh connection",
		    j->uuid);
	/* A post-copy that broke still shows a libvirt job on the source: it is
	 * what recovery is for, not something to wait out. */
	h->src_job_active = h->src_r == 0 && h->src.reason != WK_HV_REASON_POSTCOPY_FAILED &&
	                    wk_hv_job_stats(hv, j->uuid, &s, &err) == 0 &&
	                    (s.type == WK_JOB_BOUNDED || s.type == WK_JOB_UNBOUNDED);
}

static void
fill_states(struct wk_mig_event *ev, const struct both_hosts *h)
{
	wk_migrate_state_text(h->src_r, &h->src, ev->source_state, sizeof(ev->source_state));
	wk_migrate_state_text(h->dst_r, &h->dst, ev->dest_state, sizeof(ev->dest_state));
}

/* Waits while libvirt still runs a migration job for the domain here (an
 * adopted job, or a migrate call that returned because its connection
 * died while libvirtd kept migrating). */
static void
wait_job_end(struct job *j)
{
	wk_hv *hv = j->owner->hv;

	for (;;) {
		struct wk_hv_domain_info info;
		struct wk_job_sample s;
		struct wk_err err = {{0}};
		int r = wk_hv_job_stats(hv, j->uuid, &s, &err);

		if (r == -ENOTCONN) {
			if (wk_hv_ensure_connected(hv, &err) < 0)
				sleep_ms(1000);
			continue;
		}
		if (r < 0 || (s.type != WK_JOB_BOUNDED && s.type != WK_JOB_UNBOUNDED))
			return;
		/* The job of a broken post-copy never ends by itself. */
		if (wk_hv_domain_info(hv, j->uuid, &info, &err) == 0 &&
		    info.reason == WK_HV_REASON_POSTCOPY_FAILED)
			return;
		sleep_ms(j->base_interval_ms);
	}
}

/* How the job ended, from both hosts; recovers a broken post-copy on the
 * way.  r and msg are the migrate call's result.  Fills the DONE event. */
static void
settle(struct job *j, int r, const char *msg, struct wk_mig_event *ev)
{
	wk_migrate *owner = j->owner;
	struct both_hosts h;
	uint64_t deadline_ms = 0, unsure_until_ms = wk_now_ms() + UNSURE_MS;
	unsigned backoff_ms = owner->recovery_backoff_ms;
	char first_error[128] = "";

	ev->r = r;
	snprintf(ev->msg, sizeof(ev->msg), "%s", msg);
	for (;;) {
		read_both_hosts(j, &h, ev->r < 0);
		fill_states(ev, &h);
		if (h.src_job_active) {
			wait_job_end(j);
			continue;
		}
		if (postcopy_broken(&h)) {
			struct wk_hv_migrate_params rp = j->params;
			struct wk_err err = {{0}};

			if (ev->broke_at_ms == 0) {
				struct wk_mig_event rec = *ev;

				ev->broke_at_ms = wk_now_ms();
				deadline_ms = ev->broke_at_ms + owner->recovery_timeout_s * 1000ULL;
				snprintf(first_error, sizeof(first_error), "%.120s", msg);
				rec.kind = WK_MIG_RECOVERING;
				rec.broke_at_ms = ev->broke_at_ms;
				log_warning("Post-copy migration of '%s' broke (%s; source %s, "
				            "destination %s): recovering",
				    j->uuid, msg[0] ? msg : "no error returned", ev->source_state,
				    ev->dest_state);
				push_event(owner, &rec);
			}
			/* Without the guest's QEMU on the destination its newest pages
			 * are gone: nothing can resume it.  Right after a break the
			 * destination's libvirt may not show its domain for a moment
			 * (seen on the rig: "absent" 4 ms after the break, then
			 * running (postcopy_failed)): only a destination still absent
			 * after a failed resume, DEST_GONE_MS after the break, is. */
			bool dest_gone =
			    (h.dst_r == -ENOENT ||
			        (h.dst_r == 0 && h.dst.state == WK_HV_STATE_SHUTOFF)) &&
			    ev->recovery_attempts > 0 &&
			    wk_now_ms() >= ev->broke_at_ms + DEST_GONE_MS;

			if (dest_gone || wk_now_ms() >= deadline_ms) {
				ev->outcome = WK_MIG_POSTCOPY_FAILED;
				if (first_error[0] != '\0' && strcmp(first_error, ev->msg) != 0) {
					char last[112];

					snprintf(last, sizeof(last), "%.110s", ev->msg);
					snprintf(ev->msg, sizeof(ev->msg), "%.120s; then: %.110s",
					    first_error, last);
				}
				return;
			}
			sleep_ms(backoff_ms);
			if (backoff_ms < 4000)
				backoff_ms *= 2;
			rp.postcopy_resume = true;
			ev->recovery_attempts++;
			log_info("Resuming the broken post-copy migration of '%s' (attempt %d)",
			    j->uuid, ev->recovery_attempts);
			ev->r = wk_hv_migrate(owner->hv, &rp, &err);
			if (ev->r < 0) {
				snprintf(ev->msg, sizeof(ev->msg), "%s", err.msg);
				log_warning(
				    "Resuming the migration of '%s' failed: %s", j->uuid, err.msg);
			} else {
				log_info("Resumed post-copy migration of '%s' completed", j->uuid);
			}
			continue;
		}
		if (present(h.dst_r, &h.dst) && !present(h.src_r, &h.src)) {
			ev->outcome = WK_MIG_MIGRATED;
			return;
		}
		if (present(h.src_r, &h.src) && (h.dst_r == -ENOENT || !present(h.dst_r, &h.dst))) {
			ev->outcome = WK_MIG_ON_SOURCE;
			return;
		}
		/* Gone from here and the destination cannot be read (no access to
		 * its libvirt): libvirt undefines the source only after the
		 * destination confirmed it runs the guest. */
		if (!present(h.src_r, &h.src) && h.src_r != -ENOTCONN && h.dst_r < 0 &&
		    h.dst_r != -ENOENT) {
			ev->outcome = WK_MIG_MIGRATED;
			log_warning("Outcome of '%s' read from this host only (destination %s)",
			    j->uuid, ev->dest_state);
			return;
		}
		/* In between (libvirt finishing on both sides), or on neither host:
		 * read again; what is still true after that is reported. */
		if (wk_now_ms() >= unsure_until_ms) {
			ev->outcome = present(h.src_r, &h.src)   ? WK_MIG_ON_SOURCE
			              : present(h.dst_r, &h.dst) ? WK_MIG_MIGRATED
			                                         : WK_MIG_LOST;
			log_warning(
			    "Outcome of '%s' after 30 s of asking: source %s, destination %s",
			    j->uuid, ev->source_state, ev->dest_state);
			return;
		}
		sleep_ms(500);
	}
}

static const char *
outcome_text(enum wk_mig_outcome o)
{
	switch (o) {
	case WK_MIG_MIGRATED:
		return "the guest runs on the destination";
	case WK_MIG_ON_SOURCE:
		return "the guest is on the source";
	case WK_MIG_POSTCOPY_FAILED:
		return "post-copy failed, the guest is split over both hosts";
	case WK_MIG_LOST:
		return "the guest runs on neither host";
	}
	return "?";
}

static void *
run_thread(void *arg)
{
	struct job *j = arg;
	struct wk_mig_event ev;
	struct wk_err err = {{0}};
	int r = 0;

	wk_log_set_request_id(j->request_id);
	memset(&ev, 0, sizeof(ev));
	ev.job_id = j->id;
	ev.kind = WK_MIG_DONE;
	if (j->adopted) {
		wait_job_end(j);
	} else {
		log_info("Migration of '%s' started", j->uuid);
		r = wk_hv_migrate(j->owner->hv, &j->params, &err);
		if (r < 0)
			log_error("Migration of '%s' failed: %s", j->uuid, err.msg);
	}
	settle(j, r, r < 0 ? err.msg : "", &ev);
	log_info("Migration of '%s' ended: %s (source %s, destination %s)", j->uuid,
	    outcome_text(ev.outcome), ev.source_state, ev.dest_state);
	pthread_mutex_lock(&j->lock);
	j->done = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	push_event(j->owner, &ev);
	return NULL;
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
		bool done, rearmed;
		int r;

		pthread_mutex_lock(&j->lock);
		ts = wk_timespec_in(CLOCK_MONOTONIC, j->interval_ms);
		while (!j->done && !j->rearm &&
		       pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT)
			;
		done = j->done;
		rearmed = j->rearm;
		j->rearm = false;
		pthread_mutex_unlock(&j->lock);
		if (done)
			break;
		if (rearmed)
			continue; /* the next sample is one new period from now */
		memset(&ev, 0, sizeof(ev));
		ev.job_id = j->id;
		ev.kind = WK_MIG_SAMPLE;
		/* Stats fail once the source domain is gone at the very end: not news. */
		r = wk_hv_job_stats(j->owner->hv, j->uuid, &ev.sample, &err);
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
	m->recovery_timeout_s = 600;
	m->recovery_backoff_ms = 500;
	pthread_mutex_init(&m->lock, NULL);
	*ret_migrate = m;
	return 0;
}

void
wk_migrate_set_recovery(wk_migrate *m, unsigned timeout_s, unsigned backoff_ms)
{
	m->recovery_timeout_s = timeout_s;
	m->recovery_backoff_ms = backoff_ms > 0 ? backoff_ms : 1;
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
			pthread_join(j->run_thread, NULL);
			if (j->watch_started)
				pthread_join(j->watch_thread, NULL);
			job_free(j);
		} else {
			/* Still inside libvirt: the threads own j now and the process is exiting.
			 */
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

void
wk_migrate_set_interval(wk_migrate *m, uint64_t job_id, unsigned interval_ms)
{
	for (struct job *j = m->jobs; j != NULL; j = j->next) {
		if (j->id != job_id)
			continue;
		if (interval_ms == 0)
			interval_ms = j->base_interval_ms;
		pthread_mutex_lock(&j->lock);
		if (j->interval_ms != interval_ms) {
			j->interval_ms = interval_ms;
			j->rearm = true;
			pthread_cond_signal(&j->cond);
		}
		pthread_mutex_unlock(&j->lock);
		return;
	}
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* A job record with its owned copies, not yet running; NULL on ENOMEM. */
static struct job *
job_new(
    wk_migrate *m, uint64_t job_id, const char *uuid, unsigned interval_ms, const char *request_id)
{
	struct job *j = calloc(1, sizeof(*j));
	pthread_condattr_t ca;

	if (j == NULL)
		return NULL;
	j->owner = m;
	j->id = job_id;
	j->uuid = dup_or_null(uuid);
	j->request_id = dup_or_null(request_id);
	j->base_interval_ms = interval_ms > 0 ? interval_ms : 1000;
	j->interval_ms = j->base_interval_ms;
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

/* Copies p into the job and starts both threads. */
static int
job_launch(wk_migrate *m, struct job *j, const struct wk_hv_migrate_params *p)
{
	int r;

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
	j->params.n_migrate_disks =
	    p->n_migrate_disks < WK_DISK_MAX ? p->n_migrate_disks : WK_DISK_MAX;
	for (int i = 0; i < j->params.n_migrate_disks; i++) {
		snprintf(j->disk_names[i], sizeof(j->disk_names[i]), "%s", p->migrate_disks[i]);
		j->disk_ptrs[i] = j->disk_names[i];
	}
	j->params.migrate_disks = j->disk_ptrs;
	r = -pthread_create(&j->run_thread, NULL, run_thread, j);
	if (r < 0) {
		job_free(j);
		return r;
	}
	/* Without a watcher the migration still runs; only progress is lost. */
	j->watch_started = pthread_create(&j->watch_thread, NULL, watch_thread, j) == 0;
	if (!j->watch_started)
		log_warning(
		    "Cannot start the statistics thread for '%s', no progress will be reported",
		    j->uuid);
	job_link(m, j);
	return 0;
}

/* A job that starts the migration, or (adopted) waits for the one libvirtd
 * already runs. */
static int
job_start(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id, bool adopted)
{
	struct job *j = job_new(m, job_id, p->uuid, interval_ms, request_id);

	if (j == NULL)
		return -ENOMEM;
	j->adopted = adopted;
	return job_launch(m, j, p);
}

int
wk_migrate_start(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id)
{
	return job_start(m, job_id, p, interval_ms, request_id, false);
}

int
wk_migrate_adopt(wk_migrate *m, uint64_t job_id, const struct wk_hv_migrate_params *p,
    unsigned interval_ms, const char *request_id)
{
	return job_start(m, job_id, p, interval_ms, request_id, true);
}

static void
reap(wk_migrate *m, uint64_t job_id)
{
	for (struct job **pp = &m->jobs; *pp != NULL; pp = &(*pp)->next) {
		struct job *j = *pp;

		if (j->id != job_id)
			continue;
		*pp = j->next;
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
