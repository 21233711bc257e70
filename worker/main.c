/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ferry-worker: options, wiring of the modules, and the event loop.
 *
 * One thread (this one) owns the loop, the AMQP connection and every json_t;
 * it polls the broker socket, the migration hand-off eventfd and a signalfd.
 * The loop wakes at least every heartbeat/4 to service AMQP heartbeats.
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
#include "wk_migrate.h"
#include "wk_sdnotify.h"
#include "wk_statelock.h"
#include "wk_tuning.h"

WK_LOG_NAME("worker.main");

#define DEFAULT_CONFIG   "/etc/ferry/worker.conf"
#define RECONNECT_MAX_MS 30000
#define SHUTDOWN_WAIT_MS 30000

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
	int sfd;
	uint64_t reconnect_at_ms;
	unsigned backoff_ms;
	bool stopping;
	uint64_t stop_deadline_ms;
	uint64_t watchdog_ms, watchdog_next_ms; /* systemd WatchdogSec; 0 = off */
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
#undef SET
	return wk_tuning_derive(c, &x, ret, reterr);
}

static void
on_job_event(void *userdata, const struct wk_mig_event *ev)
{
	struct worker *w = userdata;

	wk_flow_on_job_event(w->flow, ev);
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
		return;
	}
	w->backoff_ms = w->backoff_ms == 0 ? 1000 : w->backoff_ms * 2;
	if (w->backoff_ms > RECONNECT_MAX_MS)
		w->backoff_ms = RECONNECT_MAX_MS;
	w->reconnect_at_ms = wk_now_ms() + w->backoff_ms;
	log_error("Cannot connect to the broker: %s, retrying in %us", err.msg,
	    (w->backoff_ms + 999) / 1000);
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
	wk_migrate_set_recovery(w->migrate,
	    (unsigned)c->libvirt.live_migration_postcopy_recovery_timeout, 500);
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
	return 0;
}

static void
teardown(struct worker *w)
{
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
	if (w->sfd >= 0)
		close(w->sfd);
}

static void
handle_signal(struct worker *w)
{
	struct signalfd_siginfo si;

	while (read(w->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info(
			    "SIGHUP received; the configuration is read at start only, ignoring");
			continue;
		}
		if (!w->stopping) {
			log_info(
			    "Signal %u received, stopping once %zu migration(s) end (at most %ds)",
			    si.ssi_signo, wk_migrate_running(w->migrate), SHUTDOWN_WAIT_MS / 1000);
			w->stopping = true;
			w->stop_deadline_ms = wk_now_ms() + SHUTDOWN_WAIT_MS;
			wk_sd_notify("STOPPING=1");
			wk_flow_stop(w->flow);
		}
	}
}

static int
next_timeout(struct worker *w, uint64_t now)
{
	int t = rpc_amqp_connected(w->amqp) ? rpc_amqp_timeout_ms(w->amqp) : 1000;
	int b = wk_bus_tick(w->bus, now);
	int q = wk_flow_tick(w->flow, now);

	if (w->watchdog_ms > 0) {
		/* Pinged from the loop itself: a stuck loop lets systemd restart us. */
		if (now >= w->watchdog_next_ms) {
			wk_sd_notify("WATCHDOG=1");
			w->watchdog_next_ms = now + w->watchdog_ms / 2;
		}
		if ((int)(w->watchdog_next_ms - now) < t)
			t = (int)(w->watchdog_next_ms - now);
	}

	if (!rpc_amqp_connected(w->amqp) && w->reconnect_at_ms > now &&
	    (int)(w->reconnect_at_ms - now) < t)
		t = (int)(w->reconnect_at_ms - now);
	if (b >= 0 && b < t)
		t = b;
	if (q >= 0 && q < t)
		t = q;
	return t;
}

static int
run(struct worker *w)
{
	for (;;) {
		struct pollfd p[3];
		uint64_t now = wk_now_ms();
		struct rpc_err err = {{0}};
		int n, r;

		wk_log_set_request_id(NULL);
		if (w->stopping &&
		    (wk_migrate_running(w->migrate) == 0 || now >= w->stop_deadline_ms))
			break;
		if (!rpc_amqp_connected(w->amqp) && now >= w->reconnect_at_ms)
			try_connect(w);
		p[0].fd = w->sfd;
		p[0].events = POLLIN;
		p[1].fd = wk_migrate_fd(w->migrate);
		p[1].events = POLLIN;
		p[2].fd = rpc_amqp_fd(w->amqp);
		p[2].events = POLLIN;
		p[0].revents = p[1].revents = p[2].revents = 0;
		n = rpc_amqp_pending(w->amqp) ? 0 : next_timeout(w, now);
		if (poll(p, 3, n) < 0 && errno != EINTR)
			return log_error_errno(-errno, "poll failed: %s", strerror(errno));
		if (p[0].revents & POLLIN)
			handle_signal(w);
		if (p[1].revents & POLLIN)
			wk_migrate_drain(w->migrate, on_job_event, w);
		if (rpc_amqp_connected(w->amqp)) {
			/* Also on timeout: the library sends heartbeats from inside its reads. */
			r = rpc_amqp_process(w->amqp, wk_dispatch_delivery, w->dispatch, &err);
			if (r < 0) {
				log_error("Broker connection lost: %s, reconnecting", err.msg);
				w->backoff_ms = 0;
				w->reconnect_at_ms = wk_now_ms() + 500;
			}
		}
		wk_bus_tick(w->bus, wk_now_ms());
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
		try_connect(&w);
		r = run(&w);
		log_info("ferry-worker stopped");
	}
	teardown(&w);
	wk_conf_free(w.conf);
	return r < 0 ? 1 : 0;
}
