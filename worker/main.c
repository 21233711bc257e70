/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ferry-worker: options, wiring of the modules, and the event loop.
 *
 * One thread (this one) owns the loop, the AMQP connection and every json_t.
 * Each source of work owns a watch or a timer of the wk_loop: the signalfd,
 * the migration hand-off eventfd, the broker socket (plus its heartbeat
 * timer, every heartbeat/4, and its reconnect timer), the systemd watchdog
 * ping, the flow's retries, the bus's call deadlines and the metrics
 * endpoint's requests for a fresh text.
 */
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc_amqp.h"
#include "rpc_url.h"
#include "wk_bus.h"
#include "wk_conf.h"
#include "wk_dispatch.h"
#include "wk_flow.h"
#include "wk_hv.h"
#include "wk_hv_backend.h"
#include "wk_log.h"
#include "wk_loop.h"
#include "wk_metrics.h"
#include "wk_migrate.h"
#include "wk_sdnotify.h"
#include "wk_statelock.h"
#include "wk_tuning.h"

WK_LOG_NAME("worker.main");

#define DEFAULT_CONFIG   "/etc/ferry/worker.conf"
#define RECONNECT_MAX_MS 30000
/* The stop sequence (stop_done): migrations get SHUTDOWN_WAIT_MS to end,
 * then the broker CONFIRM_WAIT_MS to confirm what we published; the unit's
 * TimeoutStopSec leaves room for both. */
#define SHUTDOWN_WAIT_MS 30000
#define CONFIRM_WAIT_MS  5000
/* The flow is ticked at least this often: it also releases stale inbound
 * reservations (every 5 s) and retries it schedules from its callbacks. */
#define FLOW_TICK_MAX_MS 1000

struct worker {
	struct wk_conf *conf;
	struct wk_tuning tuning;
	rpc_amqp *amqp;
	wk_hv *hv;
	wk_migrate *migrate;
	wk_bus *bus;
	wk_flow *flow;
	wk_statelock *lock;
	wk_journal *journal;
	wk_dispatch *dispatch;
	wk_metrics *metrics;          /* NULL: metrics.listen unset */
	struct wk_metrics_text mtext; /* rendered here, swapped into metrics */
	int sfd;
	uint64_t reconnect_at_ms;
	unsigned backoff_ms;
	bool stopping;
	uint64_t stop_deadline_ms;    /* migrations may run until then */
	uint64_t confirm_deadline_ms; /* then confirms may come until this; 0 = not yet */
	uint64_t watchdog_ms;         /* systemd WatchdogSec; 0 = off */
	wk_loop *loop;
	int signal_watch, migrate_watch, broker_watch, metrics_watch; /* wk_loop ids */
	int watchdog_timer, flow_timer, bus_timer, reconnect_timer, heartbeat_timer, stop_timer;
	/* The connection the broker watch follows: its socket and connect count. */
	int broker_fd;
	uint64_t broker_connects;
};

static void
usage(FILE *f)
{
	fprintf(f, "Usage: ferry-worker [--config PATH] [--check-config] [--show-tuning]\n"
	           "  -c, --config PATH    configuration file (default " DEFAULT_CONFIG ")\n"
	           "  -n, --check-config   load and validate the configuration, then exit\n"
	           "  -t, --show-tuning    print the migration tuning derived from the\n"
	           "                       configuration (link_speed) and where each value\n"
	           "                       comes from, then exit\n"
	           "  -h, --help           this text\n");
}

/* Which tuning knobs the operator set explicitly: those win over link_speed. */
static int
derive_tuning(const struct wk_conf *c, struct wk_tuning *ret, struct wk_err *reterr)
{
	struct wk_tuning_explicit x;

#define SET(f) wk_conf_explicit(c, offsetof(struct wk_conf, libvirt.f))
	memset(&x, 0, sizeof(x));
	x.bandwidth = SET(live_migration_bandwidth);
	x.downtime = SET(live_migration_downtime);
	x.downtime_steps = SET(live_migration_downtime_steps);
	x.downtime_delay = SET(live_migration_downtime_delay);
	x.completion_timeout = SET(live_migration_completion_timeout);
	x.max_outbound = SET(max_concurrent_live_migrations);
	x.max_inbound = SET(max_concurrent_inbound_migrations);
	x.compression = SET(live_migration_compression);
	x.compression_value = c->libvirt.live_migration_compression;
	x.parallel = SET(live_migration_parallel_connections);
	x.parallel_value = c->libvirt.live_migration_parallel_connections;
	x.postcopy_bandwidth = SET(live_migration_bandwidth_postcopy);
	x.zero_copy = SET(live_migration_zero_copy);
	x.multifd_compression = SET(live_migration_multifd_compression) &&
	                        c->libvirt.live_migration_multifd_compression != NULL;
	x.zstd_level = SET(live_migration_multifd_zstd_level);
	x.native_tls = SET(live_migration_with_native_tls);
#undef SET
	return wk_tuning_derive(c, &x, ret, reterr);
}

static void
on_job_event(void *userdata, const struct wk_mig_event *ev)
{
	struct worker *w = userdata;

	wk_flow_on_job_event(w->flow, ev);
}

/* Keeps the broker watch and timers in step with the connection, however
 * it changed: connected, lost in rpc_amqp_process, or dropped by a publish
 * (then reconnect_at_ms is in the past: reconnect at once, as before). */
static void
broker_follow(struct worker *w)
{
	struct rpc_amqp_stats st;
	int fd = rpc_amqp_fd(w->amqp);

	rpc_amqp_get_stats(w->amqp, &st);
	if (fd == w->broker_fd && st.connects == w->broker_connects)
		return;
	w->broker_fd = fd;
	w->broker_connects = st.connects;
	wk_loop_watch_update(w->loop, w->broker_watch, fd, POLLIN);
	if (fd >= 0) {
		/* The library sends heartbeats only from inside its reads. */
		int hb = rpc_amqp_timeout_ms(w->amqp);

		wk_loop_timer_update(w->loop, w->heartbeat_timer, wk_now_ms() + hb, (unsigned)hb);
		wk_loop_timer_update(w->loop, w->reconnect_timer, WK_LOOP_NEVER, 0);
	} else {
		wk_loop_timer_update(w->loop, w->heartbeat_timer, WK_LOOP_NEVER, 0);
		wk_loop_timer_update(w->loop, w->reconnect_timer, w->reconnect_at_ms, 0);
	}
}

static void
try_connect(struct worker *w)
{
	struct rpc_err err = {{0}};
	int r = rpc_amqp_connect(w->amqp, &err);

	if (r == 0) {
		if (err.msg[0] != '\0')
			log_warning("Failing over: %s", err.msg);
		log_info("Connected to the broker %s, consuming '%s' and '%s.%s'",
		    rpc_amqp_broker(w->amqp), w->conf->topic, w->conf->topic, w->conf->host);
		w->backoff_ms = 0;
		broker_follow(w);
		return;
	}
	w->backoff_ms = w->backoff_ms == 0 ? 1000 : w->backoff_ms * 2;
	if (w->backoff_ms > RECONNECT_MAX_MS)
		w->backoff_ms = RECONNECT_MAX_MS;
	w->reconnect_at_ms = wk_now_ms() + w->backoff_ms;
	log_error("Cannot connect to the broker: %s, retrying in %us", err.msg,
	    (w->backoff_ms + 999) / 1000);
	broker_follow(w);
	wk_loop_timer_update(w->loop, w->reconnect_timer, w->reconnect_at_ms, 0);
}

/* Bound on one libvirt call from the main thread, well under WatchdogSec. */
#define HV_CALL_TIMEOUT_MS 2000

static void
on_journal_skip(void *userdata, const char *dir, const char *name, const char *kind)
{
	(void)userdata;
	log_warning("Journal entry '%s/%s' is %s, not a record, ignoring", dir, name, kind);
}

static int
setup(struct worker *w)
{
	const struct wk_conf *c = w->conf;
	struct rpc_url *url = NULL;
	struct rpc_amqp_options o;
	struct wk_bus_config bc;
	struct wk_flow_deps fd;
	struct rpc_err rerr = {{0}};
	struct wk_err err = {{0}};
	char publisher_id[256], conn_name[256];
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Before any thread starts, so every thread inherits the mask. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	w->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w->sfd < 0)
		return log_error_errno(-errno, "Cannot create signalfd: %s", strerror(errno));

	/* Before the journal is read: a second worker on this state_dir would
	 * recover and drive the same migrations. */
	r = wk_statelock_take(c->state_dir, &w->lock, &err);
	if (r == -EBUSY)
		return log_error_errno(r, "Another ferry-worker uses state_dir: %s", err.msg);
	if (r < 0)
		return log_error_errno(r, "%s: state_dir: %s", c->path, err.msg);

	r = rpc_url_parse(c->transport_url, &url, &rerr);
	if (r < 0)
		return log_error_errno(r, "%s: transport_url: %s", c->path, rerr.msg);
	r = wk_hv_open(&wk_hv_libvirt_ops, c->libvirt.connection_uri, &w->hv, &err);
	if (r < 0) {
		rpc_url_free(url);
		return log_error_errno(
		    r, "Cannot open libvirt '%s': %s", c->libvirt.connection_uri, err.msg);
	}
	/* No libvirt call may hold the event loop: a stopped libvirtd costs the
	 * main thread at most this long, once (wk_hv.h). */
	r = wk_hv_bound_calls(w->hv, HV_CALL_TIMEOUT_MS);
	if (r < 0)
		return log_error_errno(r, "Cannot start the libvirt call thread: %s", strerror(-r));
	memset(&o, 0, sizeof(o));
	snprintf(conn_name, sizeof(conn_name), "ferry-worker:%d:%s", (int)getpid(), c->host);
	o.url = url;
	o.exchange = c->control_exchange;
	o.topics[0] = c->topic;
	o.topics[1] = c->alt_topic;
	o.server = c->host;
	o.connection_name = conn_name;
	o.notify_topic = c->notifications.topic;
	o.durable = c->rabbit.amqp_durable_queues;
	o.auto_delete = c->rabbit.amqp_auto_delete;
	o.ha = c->rabbit.rabbit_ha_queues;
	o.quorum = c->rabbit.rabbit_quorum_queue;
	o.quorum_delivery_limit = c->rabbit.rabbit_quorum_delivery_limit;
	o.quorum_max_memory_length = c->rabbit.rabbit_quorum_max_memory_length;
	o.quorum_max_memory_bytes = c->rabbit.rabbit_quorum_max_memory_bytes;
	o.transient_ttl_s = c->rabbit.rabbit_transient_queues_ttl;
	o.prefetch = c->rabbit.rabbit_qos_prefetch_count;
	o.heartbeat_s = c->rabbit.heartbeat_timeout_threshold;
	o.ssl = c->rabbit.ssl;
	o.ssl_ca_file = c->rabbit.ssl_ca_file;
	o.ssl_cert_file = c->rabbit.ssl_cert_file;
	o.ssl_key_file = c->rabbit.ssl_key_file;
	o.ssl_no_verify = !c->rabbit.ssl_verify;
	o.outbox_max_bytes = (size_t)c->rabbit.outbox_max_bytes;
	if ((url->ssl || c->rabbit.ssl) && !c->rabbit.ssl_verify)
		log_warning("ssl_verify = false: the broker's TLS certificate is not verified; "
		            "anyone on the path can pose as the broker");
	r = rpc_amqp_new(&o, &w->amqp);
	rpc_url_free(url);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the AMQP transport: %s", strerror(-r));

	snprintf(publisher_id, sizeof(publisher_id), "%s:%s", c->notifications.publisher, c->host);
	bc.topic = c->topic;
	bc.publisher_id = publisher_id;
	bc.notify_topic = c->notifications.topic;
	bc.notify_enabled = c->notifications.enabled;
	bc.rpc_response_timeout = c->rpc_response_timeout;
	r = wk_bus_new(w->amqp, &bc, &w->bus);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the bus: %s", strerror(-r));
	r = wk_migrate_new(w->hv, &w->migrate);
	if (r < 0)
		return log_error_errno(r, "Cannot set up migration jobs: %s", strerror(-r));
	wk_migrate_set_recovery(
	    w->migrate, (unsigned)c->libvirt.live_migration_postcopy_recovery_timeout, 500);
	r = wk_journal_open(c->state_dir, &w->journal, &err);
	if (r < 0)
		return log_error_errno(r, "%s: state_dir: %s", c->path, err.msg);
	wk_journal_set_skip_fn(w->journal, on_journal_skip, NULL);
	fd.conf = c;
	fd.journal = w->journal;
	fd.tuning = &w->tuning;
	fd.bus = w->bus;
	fd.hv = w->hv;
	fd.migrate = w->migrate;
	r = wk_flow_new(&fd, &w->flow);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the migration flow: %s", strerror(-r));
	r = wk_flow_recover(w->flow, &err);
	if (r < 0)
		return log_error_errno(r, "Cannot read the journal: %s", err.msg);
	if (r > 0)
		log_info("Carrying on %d migration(s) from the journal", r);
	r = wk_dispatch_new(w->amqp, w->bus, w->flow, &w->dispatch);
	if (r < 0)
		return log_error_errno(r, "Cannot set up dispatch: %s", strerror(-r));
	if (c->metrics.listen != NULL) {
		r = wk_metrics_start(c->metrics.listen, &w->metrics, &err);
		if (r < 0)
			return log_error_errno(r, "%s: metrics.listen: %s", c->path, err.msg);
		log_info("Serving Prometheus metrics on http://%s/metrics", c->metrics.listen);
	}
	return 0;
}

/* Renders every family into w->mtext and hands it to the endpoint.  Only
 * this thread reads the flow and the bus; the endpoint's thread only
 * copies the text. */
static void
metrics_render(struct worker *w)
{
	struct timespec ts;

	if (w->metrics == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	wk_metrics_text_reset(&w->mtext);
	wk_flow_metrics(w->flow, &w->mtext, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	wk_bus_metrics(w->bus, &w->mtext);
	if (w->mtext.oom)
		log_warning("Out of memory rendering the metrics; the endpoint serves older ones");
	wk_metrics_publish(w->metrics, &w->mtext);
}

static void
teardown(struct worker *w)
{
	w->metrics = wk_metrics_stop(w->metrics);
	wk_metrics_text_done(&w->mtext);
	w->dispatch = wk_dispatch_free(w->dispatch);
	w->flow = wk_flow_free(w->flow);
	w->journal = wk_journal_free(w->journal);
	w->bus = wk_bus_free(w->bus);
	w->amqp = rpc_amqp_free(w->amqp);
	/* Threads still inside libvirt keep using the connection until exit. */
	if (w->migrate == NULL || wk_migrate_running(w->migrate) == 0)
		w->hv = wk_hv_close(w->hv);
	w->migrate = wk_migrate_free(w->migrate);
	w->lock = wk_statelock_free(w->lock);
	w->loop = wk_loop_free(w->loop);
	if (w->sfd >= 0)
		close(w->sfd);
}

/* Work arrived that may have queued migrations or sent calls: the flow and
 * the bus look at their deadlines on the next pass. */
static void
kick(struct worker *w)
{
	uint64_t now = wk_now_ms();

	wk_loop_timer_update(w->loop, w->flow_timer, now, 0);
	wk_loop_timer_update(w->loop, w->bus_timer, now, 0);
}

static void
on_signal(wk_loop *l, int watch, int fd, short revents, void *userdata)
{
	struct worker *w = userdata;
	struct signalfd_siginfo si;

	(void)watch;
	(void)revents;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info(
			    "SIGHUP received; the configuration is read at start only, ignoring");
			continue;
		}
		if (!w->stopping) {
			struct rpc_err err = {{0}};

			log_info("Signal %u received: no new requests are taken, they stay queued "
			         "in the broker; stopping once %zu migration(s) end (at most %ds) "
			         "and the broker confirmed what was sent (at most %ds more)",
			    si.ssi_signo, wk_migrate_running(w->migrate), SHUTDOWN_WAIT_MS / 1000,
			    CONFIRM_WAIT_MS / 1000);
			w->stopping = true;
			w->stop_deadline_ms = wk_now_ms() + SHUTDOWN_WAIT_MS;
			wk_loop_timer_update(l, w->stop_timer, w->stop_deadline_ms, 0);
			wk_sd_notify("STOPPING=1");
			/* First, so no request is taken only to be refused. */
			if (rpc_amqp_stop_serving(w->amqp, &err) < 0) {
				log_error("Broker connection lost: %s, reconnecting", err.msg);
				w->backoff_ms = 0;
				w->reconnect_at_ms = wk_now_ms() + 500;
				broker_follow(w);
			}
			wk_flow_stop(w->flow);
			kick(w);
		}
	}
}

static void
on_migrate(wk_loop *l, int watch, int fd, short revents, void *userdata)
{
	struct worker *w = userdata;

	(void)l;
	(void)watch;
	(void)fd;
	if (revents & POLLIN) {
		wk_migrate_drain(w->migrate, on_job_event, w);
		kick(w);
	}
}

static void
broker_process(struct worker *w)
{
	struct rpc_err err = {{0}};

	if (!rpc_amqp_connected(w->amqp))
		return;
	if (rpc_amqp_process(w->amqp, wk_dispatch_delivery, w->dispatch, &err) < 0) {
		log_error("Broker connection lost: %s, reconnecting", err.msg);
		w->backoff_ms = 0;
		w->reconnect_at_ms = wk_now_ms() + 500;
	}
	broker_follow(w);
	kick(w);
}

static void
on_broker(wk_loop *l, int watch, int fd, short revents, void *userdata)
{
	(void)l;
	(void)watch;
	(void)fd;
	(void)revents;
	broker_process(userdata);
}

static bool
broker_pending(void *userdata)
{
	struct worker *w = userdata;

	return rpc_amqp_pending(w->amqp);
}

static void
on_heartbeat(wk_loop *l, int timer, void *userdata)
{
	(void)l;
	(void)timer;
	broker_process(userdata);
}

static void
on_reconnect(wk_loop *l, int timer, void *userdata)
{
	struct worker *w = userdata;

	(void)l;
	(void)timer;
	if (!rpc_amqp_connected(w->amqp))
		try_connect(w);
}

static void
on_watchdog(wk_loop *l, int timer, void *userdata)
{
	(void)l;
	(void)timer;
	(void)userdata;
	/* Pinged from the loop itself: a stuck loop lets systemd restart us. */
	wk_sd_notify("WATCHDOG=1");
}

static void
on_flow_tick(wk_loop *l, int timer, void *userdata)
{
	struct worker *w = userdata;
	uint64_t now = wk_now_ms();
	int next = wk_flow_tick(w->flow, now);

	if (next < 0 || next > FLOW_TICK_MAX_MS)
		next = FLOW_TICK_MAX_MS;
	wk_loop_timer_update(l, timer, now + (uint64_t)next, 0);
	/* A migration leaving the queue calls pre_live_migration. */
	wk_loop_timer_update(l, w->bus_timer, now, 0);
}

static void
on_bus_tick(wk_loop *l, int timer, void *userdata)
{
	struct worker *w = userdata;
	uint64_t now = wk_now_ms();
	int next = wk_bus_tick(w->bus, now);

	wk_loop_timer_update(l, timer, next < 0 ? WK_LOOP_NEVER : now + (uint64_t)next, 0);
}

/* A scrape waits for a fresh text (wk_metrics.h): render it now.  Nothing
 * is rendered while nobody scrapes. */
static void
on_metrics_request(wk_loop *l, int watch, int fd, short revents, void *userdata)
{
	struct worker *w = userdata;

	(void)l;
	(void)watch;
	(void)fd;
	(void)revents;
	if (wk_metrics_take_request(w->metrics))
		metrics_render(w);
}

/* Only wakes the loop: stop_done() compares the deadlines. */
static void
on_stop_deadline(wk_loop *l, int timer, void *userdata)
{
	(void)l;
	(void)timer;
	(void)userdata;
}

/* After SIGTERM: true once the running migrations ended (or had their
 * time) and the broker confirmed every publish (or had its time). */
static bool
stop_done(struct worker *w)
{
	struct rpc_amqp_stats st;
	uint64_t now = wk_now_ms();

	if (!w->stopping)
		return false;
	if (w->confirm_deadline_ms == 0) {
		if (wk_migrate_running(w->migrate) > 0 && now < w->stop_deadline_ms)
			return false;
		w->confirm_deadline_ms = now + CONFIRM_WAIT_MS;
		wk_loop_timer_update(w->loop, w->stop_timer, w->confirm_deadline_ms, 0);
	}
	rpc_amqp_get_stats(w->amqp, &st);
	if (st.outbox_len == 0)
		return true;
	if (now < w->confirm_deadline_ms)
		return false;
	log_warning("Stopping with %zu message(s) the broker has not confirmed", st.outbox_len);
	return true;
}

/* Gives each source of work its watch or timer. */
static int
loop_setup(struct worker *w)
{
	uint64_t now = wk_now_ms();
	int r;

	r = wk_loop_new(&w->loop);
	if (r < 0)
		return r;
	w->broker_fd = -1;
	/* Added in this order, so a pass reads signals, then migration events,
	 * then the broker, as the loop always did. */
	w->signal_watch = wk_loop_watch_add(w->loop, w->sfd, POLLIN, on_signal, w);
	w->migrate_watch =
	    wk_loop_watch_add(w->loop, wk_migrate_fd(w->migrate), POLLIN, on_migrate, w);
	w->broker_watch = wk_loop_watch_add(w->loop, -1, POLLIN, on_broker, w);
	w->heartbeat_timer = wk_loop_timer_add(w->loop, WK_LOOP_NEVER, 0, on_heartbeat, w);
	w->reconnect_timer = wk_loop_timer_add(w->loop, WK_LOOP_NEVER, 0, on_reconnect, w);
	w->flow_timer = wk_loop_timer_add(w->loop, now, 0, on_flow_tick, w);
	w->bus_timer = wk_loop_timer_add(w->loop, now, 0, on_bus_tick, w);
	w->stop_timer = wk_loop_timer_add(w->loop, WK_LOOP_NEVER, 0, on_stop_deadline, w);
	if (w->signal_watch < 0 || w->migrate_watch < 0 || w->broker_watch < 0 ||
	    w->heartbeat_timer < 0 || w->reconnect_timer < 0 || w->flow_timer < 0 ||
	    w->bus_timer < 0 || w->stop_timer < 0)
		return -ENOMEM;
	(void)wk_loop_watch_pending(w->loop, w->broker_watch, broker_pending);
	if (w->metrics != NULL) {
		metrics_render(w); /* served as is should the loop be busy at a scrape */
		w->metrics_watch = wk_loop_watch_add(
		    w->loop, wk_metrics_request_fd(w->metrics), POLLIN, on_metrics_request, w);
		if (w->metrics_watch < 0)
			return -ENOMEM;
	}
	if (w->watchdog_ms > 0) {
		w->watchdog_timer =
		    wk_loop_timer_add(w->loop, now, (unsigned)(w->watchdog_ms / 2), on_watchdog, w);
		if (w->watchdog_timer < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
run(struct worker *w)
{
	for (;;) {
		int r;

		wk_log_set_request_id(NULL);
		if (stop_done(w))
			break;
		/* A publish from any callback may have dropped the connection. */
		broker_follow(w);
		r = wk_loop_run_once(w->loop, -1);
		if (r < 0)
			return log_error_errno(r, "poll failed: %s", strerror(-r));
	}
	if (wk_migrate_running(w->migrate) > 0)
		log_warning("Stopping with %zu migration(s) still running inside libvirtd",
		    wk_migrate_running(w->migrate));
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'n'},
	    {"show-tuning", no_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = DEFAULT_CONFIG;
	struct worker w;
	struct wk_err err = {{0}};
	bool check_only = false, show_tuning = false;
	unsigned mode = 0;
	int c, r;

	/* Journal records and the lock file are ours alone (the modes given at
	 * creation are narrowed by this, never widened). */
	umask(077);
	while ((c = getopt_long(argc, argv, "c:nth", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 't':
			show_tuning = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	memset(&w, 0, sizeof(w));
	w.sfd = -1;
	r = wk_conf_load(config, &w.conf, &err);
	if (r < 0) {
		fprintf(stderr, "ferry-worker: %s\n", err.msg);
		return 1;
	}
	r = derive_tuning(w.conf, &w.tuning, &err);
	if (r < 0) {
		fprintf(stderr, "ferry-worker: %s\n", err.msg);
		wk_conf_free(w.conf);
		return 1;
	}
	if (wk_conf_world_readable(config, &mode) > 0) {
		/* Not fatal (an upgrade must not stop the worker), but said at every start. */
		if (check_only || show_tuning)
			fprintf(stderr,
			    "ferry-worker: warning: %s: readable by all users (mode %04o) but "
			    "holds the broker password; chmod o-r it\n",
			    config, mode);
		else
			log_warning("Configuration file '%s' is readable by all users (mode %04o) "
			            "but holds the broker password; chmod o-r it",
			    config, mode);
	}
	if (check_only || show_tuning) {
		if (show_tuning)
			wk_tuning_print(stdout, &w.tuning);
		else
			printf("configuration OK\n");
		wk_conf_free(w.conf);
		return 0;
	}
	wk_log_set_level(wk_log_parse_level(w.conf->log_level));
	r = setup(&w);
	if (r == 0) {
		log_info("ferry-worker started on host '%s' (libvirt '%s')", w.conf->host,
		    w.conf->libvirt.connection_uri);
		w.watchdog_ms = wk_sd_watchdog_ms();
		/* Ready once the journal is recovered; the broker may come later. */
		if (wk_sd_notify("READY=1\nSTATUS=started") < 0)
			log_warning("Cannot notify systemd through $NOTIFY_SOCKET");
		r = loop_setup(&w);
		if (r < 0) {
			log_error_errno(r, "Cannot set up the event loop: %s", strerror(-r));
		} else {
			try_connect(&w);
			r = run(&w);
		}
		log_info("ferry-worker stopped");
	}
	teardown(&w);
	wk_conf_free(w.conf);
	return r < 0 ? 1 : 0;
}
