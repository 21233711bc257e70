/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_metrics.c - the Prometheus exposition: the text builder (HELP and
 * TYPE lines, label escaping, numbers), metrics.listen parsing, the HTTP
 * endpoint on loopback (200 with the format's Content-Type, 404, 405, 503
 * before the first render, a scrape asking for a fresh render and serving
 * the last one when nobody answers), and the flow's and bus's series over a real
 * wk_flow on the fake hypervisor (tests/support/flow_harness.h): one phase
 * series per phase, the migration's figures, and the outcome counters.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "flow_harness.h"
#include "wk_bus.h"
#include "wk_flow.h"
#include "wk_metrics.h"

#define A "6a2a5c86-6f50-4e44-9c4b-0e3c2b0b7f21"

#define WAIT_MS 3000

/* ---- the text builder ---- */

Test(wk_metrics, family_has_help_and_type_then_samples)
{
	struct wk_metrics_text t = {0};
	struct wk_metrics_label l[] = {{"role", "source"}, {"outcome", "completed"}};

	wk_metrics_family(&t, "ferry_migrations_total", "counter", "Migrations that ended.");
	wk_metrics_sample(&t, "ferry_migrations_total", l, 2, 3);
	wk_metrics_sample(&t, "ferry_outbox_bytes", NULL, 0, 0);
	cr_assert_not(t.oom);
	cr_assert_str_eq(t.buf, "# HELP ferry_migrations_total Migrations that ended.\n"
	                        "# TYPE ferry_migrations_total counter\n"
	                        "ferry_migrations_total{role=\"source\",outcome=\"completed\"} 3\n"
	                        "ferry_outbox_bytes 0\n");
	cr_assert_eq(t.len, strlen(t.buf));
	wk_metrics_text_done(&t);
}

Test(wk_metrics, label_values_are_escaped)
{
	struct wk_metrics_text t = {0};
	struct wk_metrics_label l[] = {{"a", "back\\slash \"quoted\"\nnext"}, {"b", NULL}};

	wk_metrics_sample(&t, "m", l, 2, 1);
	cr_assert_str_eq(t.buf, "m{a=\"back\\\\slash \\\"quoted\\\"\\nnext\",b=\"\"} 1\n");
	wk_metrics_text_done(&t);
}

Test(wk_metrics, help_escapes_backslash_and_newline_but_keeps_quotes)
{
	struct wk_metrics_text t = {0};

	wk_metrics_family(&t, "m", "gauge", "a \"b\" c\\d\ne");
	cr_assert_str_eq(t.buf, "# HELP m a \"b\" c\\\\d\\ne\n# TYPE m gauge\n");
	wk_metrics_text_done(&t);
}

Test(wk_metrics, numbers)
{
	struct wk_metrics_text t = {0};

	wk_metrics_sample(&t, "a", NULL, 0, 0);
	wk_metrics_sample(&t, "b", NULL, 0, 1234567890123.0);
	wk_metrics_sample(&t, "c", NULL, 0, -5);
	wk_metrics_sample(&t, "d", NULL, 0, 0.5);
	wk_metrics_sample(&t, "e", NULL, 0, INFINITY);
	wk_metrics_sample(&t, "f", NULL, 0, -INFINITY);
	wk_metrics_sample(&t, "g", NULL, 0, NAN);
	wk_metrics_sample(&t, "h", NULL, 0, 1764842400.123);
	cr_assert_str_eq(t.buf, "a 0\nb 1234567890123\nc -5\nd 0.5\ne +Inf\nf -Inf\ng NaN\n"
	                        "h 1764842400.1229999\n");
	wk_metrics_text_done(&t);
}

Test(wk_metrics, reset_keeps_the_buffer)
{
	struct wk_metrics_text t = {0};
	char *buf;

	wk_metrics_sample(&t, "a", NULL, 0, 1);
	buf = t.buf;
	wk_metrics_text_reset(&t);
	cr_assert_eq(t.len, 0);
	cr_assert_str_eq(t.buf, "");
	wk_metrics_sample(&t, "b", NULL, 0, 2);
	cr_assert_eq(t.buf, buf);
	cr_assert_str_eq(t.buf, "b 2\n");
	wk_metrics_text_done(&t);
	cr_assert_null(t.buf);
}

/* ---- metrics.listen ---- */

Test(wk_metrics, listen_addresses)
{
	static const char *const good[] = {
	    "127.0.0.1:9178", "0.0.0.0:1", "[::1]:9178", "[::]:65535", "[fe80::1]:80"};
	static const struct {
		const char *s, *why;
	} bad[] = {
	    {"", "address:port"},
	    {"127.0.0.1", "no port"},
	    {"127.0.0.1:", "port number"},
	    {"127.0.0.1:0", "port number"},
	    {"127.0.0.1:65536", "port number"},
	    {"127.0.0.1:91x", "port number"},
	    {"127.0.0.1:-1", "port number"},
	    {"localhost:9178", "not an IPv4 address"},
	    {"::1:9178", "in brackets"},
	    {"[::1]9178", "[IPv6 address]:port"},
	    {"[::1:9178", "[IPv6 address]:port"},
	    {"[127.0.0.1]:9178", "not an IPv6 address"},
	    {":9178", "numeric IP address"},
	};
	struct wk_err err = {{0}};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(wk_metrics_check_listen(good[i], &err), 0, "%s: %s", good[i], err.msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		cr_assert_eq(wk_metrics_check_listen(bad[i].s, &err), -EINVAL, "%s", bad[i].s);
		cr_assert_not_null(strstr(err.msg, bad[i].why), "%s: '%s'", bad[i].s, err.msg);
	}
	cr_assert_eq(wk_metrics_check_listen(NULL, NULL), -EINVAL);
}

/* ---- the endpoint ---- */

static int
free_port(int family)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int fd = socket(family, SOCK_STREAM, 0), port;

	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof(sa));
	if (family == AF_INET6) {
		((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&sa)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&sa)->sin_family = AF_INET;
		((struct sockaddr_in *)&sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	}
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		close(fd);
		return -1;
	}
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
	                                : ((struct sockaddr_in *)&sa)->sin_port);
	close(fd);
	return port;
}

/* Sends one HTTP/1.0 request and returns the whole answer (malloc'd). */
static char *
http(int family, int port, const char *method, const char *path)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char req[256], *out = NULL;
	size_t n = 0;
	int fd = socket(family, SOCK_STREAM, 0);
	ssize_t k;

	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof(sa));
	if (family == AF_INET6) {
		((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&sa)->sin6_addr = in6addr_loopback;
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&sa)->sin_family = AF_INET;
		((struct sockaddr_in *)&sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	}
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, len), 0, "connect: %s", strerror(errno));
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n", method,
	    path);
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		out = realloc(out, n + 4097);
		cr_assert_not_null(out);
		k = read(fd, out + n, 4096);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	close(fd);
	return out;
}

static void
assert_status(char *resp, const char *status_line)
{
	cr_assert_eq(strncmp(resp, status_line, strlen(status_line)), 0, "got '%.80s'", resp);
	free(resp);
}

Test(wk_metrics, endpoint_serves_the_last_published_text)
{
	struct wk_metrics_text t = {0};
	struct wk_err err = {{0}};
	wk_metrics *m = NULL;
	char listen[64], *resp;
	int port = free_port(AF_INET);

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	cr_assert_eq(wk_metrics_start(listen, &m, &err), 0, "%s", err.msg);
	assert_status(http(AF_INET, port, "GET", "/metrics"), "HTTP/1.1 503");

	wk_metrics_family(&t, "ferry_up", "gauge", "Up.");
	wk_metrics_sample(&t, "ferry_up", NULL, 0, 1);
	wk_metrics_publish(m, &t);
	cr_assert_eq(t.len, 0, "publish hands back an empty text");
	resp = http(AF_INET, port, "GET", "/metrics");
	cr_assert_eq(strncmp(resp, "HTTP/1.1 200", 12), 0, "%s", resp);
	cr_assert_not_null(
	    strstr(resp, "Content-Type: " WK_METRICS_CONTENT_TYPE "\r\n"), "%s", resp);
	cr_assert_not_null(strstr(resp, "\r\n\r\n# HELP ferry_up Up.\n# TYPE ferry_up gauge\n"
	                                "ferry_up 1\n"),
	    "%s", resp);
	free(resp);

	/* A newer render replaces it; the old buffer comes back for reuse. */
	wk_metrics_sample(&t, "ferry_up", NULL, 0, 0);
	wk_metrics_publish(m, &t);
	resp = http(AF_INET, port, "GET", "/metrics");
	cr_assert_not_null(strstr(resp, "\r\n\r\nferry_up 0\n"), "%s", resp);
	free(resp);
	cr_assert_eq(wk_metrics_scrapes(m), 2);

	assert_status(http(AF_INET, port, "GET", "/"), "HTTP/1.1 404");
	assert_status(http(AF_INET, port, "GET", "/metrics/x"), "HTTP/1.1 404");
	resp = http(AF_INET, port, "POST", "/metrics");
	cr_assert_not_null(strstr(resp, "Allow: GET, HEAD\r\n"), "%s", resp);
	assert_status(resp, "HTTP/1.1 405");
	assert_status(http(AF_INET, port, "DELETE", "/metrics"), "HTTP/1.1 405");
	cr_assert_eq(wk_metrics_scrapes(m), 2);

	/* The port is taken now: a second server says so. */
	cr_assert_eq(wk_metrics_start(listen, &(wk_metrics *){NULL}, &err), -EADDRINUSE);
	cr_assert_not_null(strstr(err.msg, "Address already in use"), "%s", err.msg);

	m = wk_metrics_stop(m);
	cr_assert_null(m);
	wk_metrics_text_done(&t);
	cr_assert_null(wk_metrics_stop(NULL));
}

/* The main loop's part, on a thread: waits for a scrape's request, renders
 * "ferry_renders N" (N counts the renders) and publishes it, n times.
 * What went wrong, if anything, is left in failed (asserted by the test's
 * own thread). */
struct renderer {
	wk_metrics *m;
	int n;
	const char *failed;
};

static void *
render_on_request(void *arg)
{
	struct renderer *rd = arg;
	struct wk_metrics_text t = {0};

	for (int i = 1; i <= rd->n && rd->failed == NULL; i++) {
		struct pollfd p = {.fd = wk_metrics_request_fd(rd->m), .events = POLLIN};

		if (poll(&p, 1, WAIT_MS) != 1)
			rd->failed = "no request came";
		else if (!wk_metrics_take_request(rd->m))
			rd->failed = "a readable request fd had no request";
		else if (wk_metrics_take_request(rd->m))
			rd->failed = "a request was taken twice";
		wk_metrics_sample(&t, "ferry_renders", NULL, 0, i);
		wk_metrics_publish(rd->m, &t);
	}
	wk_metrics_text_done(&t);
	return NULL;
}

Test(wk_metrics, scrape_asks_for_a_fresh_render)
{
	struct wk_metrics_text t = {0};
	struct wk_err err = {{0}};
	struct renderer rd;
	wk_metrics *m = NULL;
	pthread_t th;
	char listen[64], *resp;
	int port = free_port(AF_INET);

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	cr_assert_eq(wk_metrics_start(listen, &m, &err), 0, "%s", err.msg);
	wk_metrics_sample(&t, "ferry_renders", NULL, 0, 0);
	wk_metrics_publish(m, &t);
	cr_assert_not(wk_metrics_take_request(m), "nothing asked before a scrape");

	/* Each scrape gets the render it asked for, not the one before. */
	rd.m = m;
	rd.n = 3;
	rd.failed = NULL;
	cr_assert_eq(pthread_create(&th, NULL, render_on_request, &rd), 0);
	for (int i = 1; i <= rd.n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "\r\n\r\nferry_renders %d\n", i);
		resp = http(AF_INET, port, "GET", "/metrics");
		cr_assert_not_null(strstr(resp, want), "scrape %d: %s", i, resp);
		free(resp);
	}
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_null(rd.failed, "%s", rd.failed);

	/* Nobody renders: after its wait the scrape serves the last text. */
	resp = http(AF_INET, port, "GET", "/metrics");
	cr_assert_not_null(strstr(resp, "\r\n\r\nferry_renders 3\n"), "%s", resp);
	free(resp);
	cr_assert(wk_metrics_take_request(m), "the unanswered scrape asked");
	cr_assert_eq(wk_metrics_scrapes(m), 4);

	m = wk_metrics_stop(m);
	wk_metrics_text_done(&t);
}

Test(wk_metrics, endpoint_on_ipv6_loopback)
{
	struct wk_metrics_text t = {0};
	struct wk_err err = {{0}};
	wk_metrics *m = NULL;
	char listen[64];
	int port = free_port(AF_INET6);

	if (port < 0)
		cr_skip_test("no IPv6 loopback here");
	snprintf(listen, sizeof(listen), "[::1]:%d", port);
	cr_assert_eq(wk_metrics_start(listen, &m, &err), 0, "%s", err.msg);
	wk_metrics_sample(&t, "ferry_up", NULL, 0, 1);
	wk_metrics_publish(m, &t);
	assert_status(http(AF_INET6, port, "GET", "/metrics"), "HTTP/1.1 200");
	wk_metrics_stop(m);
	wk_metrics_text_done(&t);
}

/* ---- the flow's and the bus's series ---- */

static struct fh *h;

static void
teardown(void)
{
	fh_free(h);
	h = NULL;
}

/* The flow's and the bus's exposition now (static buffer). */
static const char *
render(void)
{
	static struct wk_metrics_text t;

	wk_metrics_text_reset(&t);
	wk_flow_metrics(h->flow, &t, 1764842400.0);
	wk_bus_metrics(h->bus, &t);
	cr_assert_not(t.oom);
	return t.buf;
}

static void
assert_has(const char *text, const char *line)
{
	char want[600];

	snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert_not_null(strstr(text, want), "'%s' not in:\n%s", line, text);
}

/* Every family is announced once, before its samples, with HELP then TYPE. */
static void
assert_well_formed(const char *text)
{
	const char *p = text;
	char current[128] = "";

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		char name[128];
		size_t n;

		cr_assert_not_null(nl, "unterminated line");
		if (strncmp(p, "# HELP ", 7) == 0) {
			cr_assert_eq(sscanf(p + 7, "%127s", name), 1);
			snprintf(current, sizeof(current), "%s", name);
			cr_assert_eq(
			    strncmp(nl + 1, "# TYPE ", 7), 0, "HELP without TYPE: %s", name);
		} else if (strncmp(p, "# TYPE ", 7) == 0) {
			cr_assert_eq(sscanf(p + 7, "%127s", name), 1);
			cr_assert_str_eq(name, current);
		} else {
			n = strcspn(p, "{ ");
			cr_assert_eq(strlen(current), n, "sample outside its family: %.*s",
			    (int)(nl - p), p);
			cr_assert_eq(strncmp(p, current, n), 0, "sample outside its family: %.*s",
			    (int)(nl - p), p);
		}
		p = nl + 1;
	}
}

static size_t
count_lines_with(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ferry_migration_phase samples whose value is 1. */
static size_t
phases_at_one(const char *text)
{
	size_t n = 0;

	for (const char *p = strstr(text, "\nferry_migration_phase{"); p != NULL;
	     p = strstr(p + 1, "\nferry_migration_phase{")) {
		const char *nl = strchr(p + 1, '\n');

		if (nl != NULL && nl - p > 2 && strncmp(nl - 2, " 1", 2) == 0)
			n++;
	}
	return n;
}

static bool
has_sample_series(struct fh *hh, const void *arg)
{
	(void)hh;
	(void)arg;
	return strstr(render(), "ferry_migration_data_remaining_bytes{") != NULL;
}

Test(wk_metrics, flow_series_of_a_running_migration, .fini = teardown, .timeout = 30)
{
	struct fake_mig_step hang = {.kind = FAKE_MIG_HANG}, done = {.kind = FAKE_MIG_COMPLETE};
	struct wk_err err = {{0}};
	const char *text;

	h = fh_new("max_concurrent_live_migrations = 1;");
	fh_add_guest(A);
	text = render();
	assert_well_formed(text);
	assert_has(text, "ferry_migrations_total{role=\"source\",outcome=\"completed\"} 0");
	assert_has(text, "ferry_migrations_total{role=\"destination\",outcome=\"released\"} 0");
	assert_has(text, "ferry_policy_actions_total{action=\"raise_downtime\"} 0");
	assert_has(text, "ferry_outbound_slots 1");
	assert_has(text, "ferry_inbound_slots 1");
	assert_has(text, "ferry_broker_connected 0");
	cr_assert_null(strstr(text, "ferry_migration_phase{"), "%s", text);

	fake_hv_script(A, &hang);
	cr_assert_eq(fh_live_migration(h, A, &err), 0, "%s", err.msg);
	text = render();
	assert_has(
	    text, "ferry_migration_phase{instance=\"" A "\",dest=\"host2\",phase=\"preparing\"} 1");
	assert_has(text, "ferry_outbound_slots_in_use 1");
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_phase(h, A, "source", "precopy", WAIT_MS));
	cr_assert(fh_pump_until(h, has_sample_series, NULL, WAIT_MS), "%s", render());

	text = render();
	assert_well_formed(text);
	/* One series per phase, 1 for the current one only. */
	cr_assert_eq(
	    count_lines_with(text, "ferry_migration_phase{instance=\"" A "\""), 9, "%s", text);
	assert_has(
	    text, "ferry_migration_phase{instance=\"" A "\",dest=\"host2\",phase=\"precopy\"} 1");
	assert_has(
	    text, "ferry_migration_phase{instance=\"" A "\",dest=\"host2\",phase=\"queued\"} 0");
	assert_has(
	    text, "ferry_migration_phase{instance=\"" A "\",dest=\"host2\",phase=\"postcopy\"} 0");
	cr_assert_eq(phases_at_one(text), 1, "%s", text);
	assert_has(text, "ferry_migration_struggling{instance=\"" A "\",dest=\"host2\"} 0");
	cr_assert_not_null(strstr(text, "\nferry_migration_start_time_seconds{instance=\"" A
	                                "\",dest=\"host2\"} 1764842"),
	    "%s", text);
	cr_assert_not_null(
	    strstr(text, "\nferry_migration_data_total_bytes{instance=\"" A "\",dest=\"host2\"} "),
	    "%s", text);
	cr_assert_not_null(
	    strstr(text, "\nferry_migration_iteration{instance=\"" A "\",dest=\"host2\"} "), "%s",
	    text);

	/* It completes: counted once, as the source, and its series go. */
	fake_hv_release(A, &done);
	cr_assert(fh_answer_post(h, A));
	cr_assert(fh_wait_event(h, "instance.live_migration_post.end", A, 1, WAIT_MS));
	text = render();
	assert_well_formed(text);
	assert_has(text, "ferry_migrations_total{role=\"source\",outcome=\"completed\"} 1");
	assert_has(text, "ferry_migrations_total{role=\"source\",outcome=\"rolled_back\"} 0");
	assert_has(text,
	    "ferry_notifications_sent_total{event_type=\"instance.live_migration_post.end\"} 1");
	assert_has(text, "ferry_outbound_slots_in_use 0");
	cr_assert_null(strstr(text, A), "%s", text);
}

Test(wk_metrics, aborted_migration_is_counted_as_aborted, .fini = teardown, .timeout = 30)
{
	struct fake_mig_step hang = {.kind = FAKE_MIG_HANG};
	struct wk_err err = {{0}};

	h = fh_new(NULL);
	fh_add_guest(A);
	fake_hv_script(A, &hang);
	cr_assert_eq(fh_live_migration(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_wait_phase(h, A, "source", "precopy", WAIT_MS));
	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_wait_event(h, "instance.live_migration_rollback.end", A, 1, WAIT_MS));
	assert_has(render(), "ferry_migrations_total{role=\"source\",outcome=\"aborted\"} 1");
	assert_has(render(), "ferry_migrations_total{role=\"source\",outcome=\"rolled_back\"} 0");
	assert_has(render(), "ferry_migrations_total{role=\"source\",outcome=\"completed\"} 0");
}

Test(wk_metrics, destination_side_series, .fini = teardown, .timeout = 30)
{
	struct wk_err err = {{0}};
	json_t *md, *result = NULL;
	const char *text;

	h = fh_new(NULL);
	/* The guest is elsewhere until it arrives. */
	md =
	    json_deep_copy(json_object_get(json_object_get(h->cast_inner, "args"), "migrate_data"));
	cr_assert_eq(fh_request(h, wk_flow_pre_live_migration, "pre_live_migration",
	                 json_pack("{s:o,s:n,s:o}", "instance", fh_instance(h, A), "disk",
	                     "migrate_data", md),
	                 true, "req-src", &result, &err),
	    0, "%s", err.msg);
	json_decref(result);
	text = render();
	assert_well_formed(text);
	cr_assert_not_null(
	    strstr(text, "\nferry_migration_phase{instance=\"" A "\",source=\""), "%s", text);
	cr_assert_not_null(strstr(text, "\",phase=\"inbound\"} 1\n"), "%s", text);
	cr_assert_eq(phases_at_one(text), 1, "%s", text);
	assert_has(text, "ferry_inbound_slots_in_use 1");
	/* No job statistics on this side. */
	cr_assert_null(strstr(text, "ferry_migration_data_remaining_bytes{"), "%s", text);
	assert_has(text,
	    "ferry_notifications_sent_total{event_type=\"instance.live_migration_pre.end\"} 1");

	fh_add_guest(A); /* it arrived */
	cr_assert_eq(
	    fh_request(h, wk_flow_post_at_destination, "post_live_migration_at_destination",
	        json_pack("{s:o,s:b}", "instance", fh_instance(h, A), "block_migration", 0), true,
	        "req-src", NULL, &err),
	    0, "%s", err.msg);
	text = render();
	assert_has(text, "ferry_migrations_total{role=\"destination\",outcome=\"completed\"} 1");
	assert_has(text, "ferry_inbound_slots_in_use 0");
	cr_assert_null(strstr(text, A), "%s", text);
}

static bool
renders(struct fh *hh, const void *line)
{
	char want[600];

	(void)hh;
	snprintf(want, sizeof(want), "\n%s\n", (const char *)line);
	return strstr(render(), want) != NULL;
}

/* A migration that cannot converge (the nonconverging trace, in fast
 * motion): the struggling gauge turns 1 and the policy's downtime steps
 * are counted. */
Test(wk_metrics, struggling_migration_and_policy_actions, .fini = teardown, .timeout = 30)
{
	static struct wk_job_sample trace[128];
	struct fake_mig_step step = {.kind = FAKE_MIG_HANG, .step_ms = 50};
	struct wk_err err = {{0}};
	const char *text;

	step.trace_len = fh_load_trace("nonconverging", trace, 128);
	step.trace = trace;
	cr_assert_gt(step.trace_len, 10);
	h = fh_new("live_migration_completion_timeout = 0;");
	fh_add_guest(A);
	fake_hv_script(A, &step);
	cr_assert_eq(fh_live_migration(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_answer_pre(h, A));
	cr_assert(fh_pump_until(h, renders,
	              "ferry_migration_struggling{instance=\"" A "\",dest=\"host2\"} 1", 8000),
	    "%s", render());
	text = render();
	assert_well_formed(text);
	cr_assert_null(
	    strstr(text, "ferry_policy_actions_total{action=\"raise_downtime\"} 0\n"), "%s", text);
	cr_assert_gt(fh_count(h, "instance.live_migration_struggling", A), 0);
	cr_assert_eq(fh_abort(h, A, &err), 0, "%s", err.msg);
	cr_assert(fh_wait_event(h, "instance.live_migration_rollback.end", A, 1, WAIT_MS));
	assert_has(render(), "ferry_migrations_total{role=\"source\",outcome=\"aborted\"} 1");
}
