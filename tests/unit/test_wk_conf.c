/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_conf.c - wk_conf_load(): the example file, defaults, every kind of
 * bad file (one-line errors naming file and option), link-speed parsing and
 * the world-readable check.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_conf.h"

#define CONF_DIR FERRY_SOURCE_DIR "/tests/data/conf/"

static struct wk_conf *
load_ok(const char *path)
{
	struct wk_err err = {{0}};
	struct wk_conf *c = NULL;
	int r;

	r = wk_conf_load(path, &c, &err);
	cr_assert_eq(r, 0, "loading %s: %d %s", path, r, err.msg);
	cr_assert_not_null(c);
	return c;
}

/* Loads a bad file; checks -EINVAL, that c stays untouched and that the
 * message is one line holding every string in @want. */
static void
expect_error(const char *file, const char *want1, const char *want2)
{
	struct wk_err err = {{0}};
	struct wk_conf *c = (struct wk_conf *)0x1;
	char path[512];
	int r;

	snprintf(path, sizeof(path), "%s%s", CONF_DIR, file);
	r = wk_conf_load(path, &c, &err);
	cr_assert_eq(r, -EINVAL, "%s: r=%d msg='%s'", file, r, err.msg);
	cr_assert_eq(c, (struct wk_conf *)0x1, "ret_conf written on failure");
	cr_assert_null(strchr(err.msg, '\n'), "multi-line error: '%s'", err.msg);
	cr_assert_not_null(strstr(err.msg, path), "file not named: '%s'", err.msg);
	if (want1 != NULL)
		cr_assert_not_null(strstr(err.msg, want1), "'%s' not in '%s'", want1, err.msg);
	if (want2 != NULL)
		cr_assert_not_null(strstr(err.msg, want2), "'%s' not in '%s'", want2, err.msg);
}

static void
assert_defaults(const struct wk_conf *c)
{
	char hostname[256] = "";

	cr_assert_eq(gethostname(hostname, sizeof(hostname)), 0);
	cr_assert_str_eq(c->transport_url, "rabbit://guest:guest@127.0.0.1:5672/");
	cr_assert_str_eq(c->host, hostname);
	cr_assert_str_eq(c->state_dir, "/var/lib/ferry");
	cr_assert_str_eq(c->log_level, "info");
	cr_assert_str_eq(c->control_exchange, "nova");
	cr_assert_str_eq(c->topic, "compute");
	cr_assert_str_eq(c->alt_topic, "compute-alt");
	cr_assert_eq(c->rpc_response_timeout, 60);

	cr_assert_str_eq(c->notifications.topic, "versioned_notifications");
	cr_assert_str_eq(c->notifications.publisher, "nova-compute");
	cr_assert_float_eq(c->notifications.progress_interval, 5.0, 1e-9);
	cr_assert(c->notifications.enabled);

	cr_assert_not(c->rabbit.amqp_durable_queues);
	cr_assert_not(c->rabbit.amqp_auto_delete);
	cr_assert_not(c->rabbit.rabbit_ha_queues);
	cr_assert_not(c->rabbit.rabbit_quorum_queue);
	cr_assert_eq(c->rabbit.rabbit_quorum_delivery_limit, 0);
	cr_assert_eq(c->rabbit.rabbit_quorum_max_memory_length, 0);
	cr_assert_eq(c->rabbit.rabbit_quorum_max_memory_bytes, 0);
	cr_assert_eq(c->rabbit.rabbit_transient_queues_ttl, 1800);
	cr_assert_eq(c->rabbit.rabbit_qos_prefetch_count, 0);
	cr_assert_eq(c->rabbit.heartbeat_timeout_threshold, 60);
	cr_assert_null(c->rabbit.ssl_ca_file);
	cr_assert_null(c->rabbit.ssl_cert_file);
	cr_assert_null(c->rabbit.ssl_key_file);
	cr_assert_not(c->rabbit.ssl);
	cr_assert(c->rabbit.ssl_verify);
	cr_assert_eq(c->rabbit.outbox_max_bytes, 16 * 1024 * 1024);

	cr_assert_str_eq(c->libvirt.connection_uri, "qemu:///system");
	cr_assert_str_eq(c->libvirt.live_migration_scheme, "tcp");
	cr_assert_str_eq(c->libvirt.live_migration_inbound_addr, hostname);
	cr_assert_eq(c->libvirt.live_migration_bandwidth, 0);
	cr_assert_eq(c->libvirt.live_migration_downtime, 500);
	cr_assert_eq(c->libvirt.live_migration_downtime_steps, 10);
	cr_assert_eq(c->libvirt.live_migration_downtime_delay, 75);
	cr_assert_eq(c->libvirt.live_migration_completion_timeout, 800);
	cr_assert_str_eq(c->libvirt.live_migration_timeout_action, "abort");
	cr_assert_not(c->libvirt.live_migration_permit_post_copy);
	cr_assert_not(c->libvirt.live_migration_permit_auto_converge);
	cr_assert_null(c->libvirt.link_speed);
	cr_assert_eq(c->libvirt.max_concurrent_live_migrations, 1);
	cr_assert_eq(c->libvirt.max_concurrent_inbound_migrations, 1);
	cr_assert_eq(c->libvirt.live_migration_queue_timeout, 600);
	cr_assert_eq(c->libvirt.max_queued_live_migrations, 64);
	cr_assert_str_eq(c->libvirt.instances_path, "/var/lib/nova/instances");
}

Test(wk_conf, example_file_loads_and_states_the_defaults)
{
	struct wk_conf *c = load_ok(FERRY_SOURCE_DIR "/worker.conf.example");

	cr_assert_str_eq(c->path, FERRY_SOURCE_DIR "/worker.conf.example");
	assert_defaults(c);
	/* The example turns the metrics endpoint on, on loopback. */
	cr_assert_str_eq(c->metrics.listen, "127.0.0.1:9178");
	cr_assert_null(wk_conf_free(c));
}

Test(wk_conf, minimal_file_gets_every_default)
{
	struct wk_conf *c = load_ok(CONF_DIR "good_minimal.conf");

	assert_defaults(c);
	cr_assert_null(c->metrics.listen, "metrics are off unless asked for");
	wk_conf_free(c);
}

Test(wk_conf, custom_values_are_copied)
{
	WK_CLEANUP(wk_conf_freep) struct wk_conf *c = load_ok(CONF_DIR "good_custom.conf");

	cr_assert_str_eq(
	    c->transport_url, "rabbit://u1:p1@127.0.0.1:5672,u2:p2@127.0.0.2:5672/nova");
	cr_assert_str_eq(c->host, "compute-7");
	cr_assert_str_eq(c->state_dir, "/tmp/ferry-state");
	cr_assert_str_eq(c->log_level, "DEBUG");
	cr_assert_str_eq(c->alt_topic, "");
	cr_assert_eq(c->rpc_response_timeout, 30);
	cr_assert_not(c->notifications.enabled);
	cr_assert_str_eq(c->notifications.publisher, "ferry");
	cr_assert_float_eq(c->notifications.progress_interval, 2.0, 1e-9);
	cr_assert(c->rabbit.rabbit_quorum_queue);
	cr_assert_eq(c->rabbit.rabbit_quorum_delivery_limit, 5);
	cr_assert_eq(c->rabbit.rabbit_quorum_max_memory_length, 100);
	cr_assert_eq(c->rabbit.rabbit_quorum_max_memory_bytes, 1048576);
	cr_assert_eq(c->rabbit.rabbit_transient_queues_ttl, 60);
	cr_assert(c->rabbit.ssl);
	cr_assert_str_eq(c->rabbit.ssl_ca_file, "/etc/ssl/ca.pem");
	cr_assert_null(c->rabbit.ssl_cert_file);
	cr_assert_str_eq(c->libvirt.live_migration_scheme, "tls");
	cr_assert_str_eq(c->libvirt.live_migration_inbound_addr, "127.0.0.3");
	cr_assert_eq(c->libvirt.live_migration_bandwidth, 100);
	cr_assert_eq(c->libvirt.live_migration_downtime, 100);
	cr_assert_eq(c->libvirt.live_migration_downtime_steps, 3);
	cr_assert_eq(c->libvirt.live_migration_downtime_delay, 3);
	cr_assert_eq(c->libvirt.live_migration_completion_timeout, 0);
	cr_assert_str_eq(c->libvirt.live_migration_timeout_action, "force_complete");
	cr_assert(c->libvirt.live_migration_permit_post_copy);
	cr_assert(c->libvirt.live_migration_permit_auto_converge);
	cr_assert_str_eq(c->libvirt.link_speed, "2.5G");
	cr_assert_eq(c->libvirt.max_concurrent_live_migrations, 0);
	cr_assert_eq(c->libvirt.max_concurrent_inbound_migrations, 4);
}

Test(wk_conf, inbound_addr_defaults_to_the_host_option)
{
	char path[] = "/tmp/test_wk_conf_XXXXXX";
	static const char text[] = "transport_url = \"rabbit://127.0.0.1/\";\nhost = \"node-9\";\n";
	struct wk_conf *c;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	c = load_ok(path);
	unlink(path);
	cr_assert_str_eq(c->host, "node-9");
	cr_assert_str_eq(c->libvirt.live_migration_inbound_addr, "node-9");
	wk_conf_free(c);
}

Test(wk_conf, missing_file_is_enoent)
{
	struct wk_err err = {{0}};
	struct wk_conf *c = NULL;

	cr_assert_eq(wk_conf_load(CONF_DIR "does-not-exist.conf", &c, &err), -ENOENT);
	cr_assert_null(c);
	cr_assert_not_null(strstr(err.msg, "does-not-exist.conf"));
}

Test(wk_conf, null_reterr_is_accepted)
{
	struct wk_conf *c = NULL;

	cr_assert_eq(wk_conf_load(CONF_DIR "bad_type.conf", &c, NULL), -EINVAL);
	cr_assert_null(c);
}

Test(wk_conf, syntax_error_names_file_and_line)
{
	/* a setting without a value on line 3 */
	expect_error("bad_syntax.conf", "bad_syntax.conf:3: syntax error", NULL);
	expect_error("bad_duplicate.conf", "bad_duplicate.conf:4: duplicate setting name", NULL);
}

Test(wk_conf, wrong_type_names_the_option)
{
	char want[512];

	snprintf(want, sizeof(want),
	    "%sbad_type.conf: libvirt.live_migration_bandwidth: expected a non-negative integer "
	    "(MiB/s)",
	    CONF_DIR);
	expect_error("bad_type.conf", want, NULL);
	expect_error("bad_negative.conf",
	    "libvirt.live_migration_bandwidth: expected a non-negative integer (MiB/s)", NULL);
	expect_error("bad_bool.conf", "notifications.enabled: expected true or false", NULL);
	expect_error("bad_group_type.conf", "libvirt: expected a group", NULL);
}

Test(wk_conf, out_of_range_uses_novas_minimum)
{
	expect_error("bad_range.conf",
	    "libvirt.live_migration_downtime: expected an integer >= 100 (ms)", NULL);
	expect_error("bad_interval.conf",
	    "notifications.progress_interval: expected a number > 0 (s)", NULL);
}

Test(wk_conf, unknown_option_is_named_with_its_line)
{
	expect_error(
	    "bad_unknown.conf", "libvirt.live_migraton_bandwidth: unknown option (line 4)", NULL);
	expect_error("bad_unknown_group.conf", "DEFAULT: unknown option (line 2)", NULL);
}

Test(wk_conf, missing_transport_url)
{
	expect_error("bad_missing_url.conf", "transport_url: missing", NULL);
}

Test(wk_conf, transport_url_is_parsed_as_the_transport_will)
{
	struct wk_err err = {{0}};
	struct wk_conf *c = NULL;

	expect_error("bad_transport_url.conf",
	    "bad_transport_url.conf: transport_url: ", "invalid port in host entry");
	cr_assert_eq(wk_conf_load(CONF_DIR "bad_transport_url.conf", &c, &err), -EINVAL);
	cr_assert_null(strstr(err.msg, "secret"), "the password leaked: %s", err.msg);
}

Test(wk_conf, world_readable_file_is_reported_with_its_mode)
{
	char path[] = "/tmp/ferry-conf-XXXXXX";
	unsigned mode = 0;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(wk_conf_world_readable(path, &mode), 1);
	cr_assert_eq(mode, 0644, "%o", mode);
	cr_assert_eq(chmod(path, 0640), 0);
	cr_assert_eq(wk_conf_world_readable(path, &mode), 0);
	cr_assert_eq(mode, 0640, "%o", mode);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(wk_conf_world_readable(path, &mode), -ENOENT);
}

Test(wk_conf, invalid_values_of_enums_and_strings)
{
	expect_error("bad_enum.conf", "libvirt.live_migration_timeout_action",
	    "\"abort\" or \"force_complete\"");
	expect_error("bad_log_level.conf", "log_level: expected one of", NULL);
	expect_error("bad_link_speed.conf", "libvirt.link_speed", "10G");
	expect_error("bad_instances_path.conf", "libvirt.instances_path", "\"..\"");
	expect_error("bad_scheme.conf", "transport_url: unsupported scheme", NULL);
	expect_error("bad_empty_string.conf", "topic: expected a non-empty string", NULL);
}

Test(wk_conf, inconsistent_rabbit_options)
{
	expect_error(
	    "bad_ha_quorum.conf", "oslo_messaging_rabbit.rabbit_quorum_queue", "rabbit_ha_queues");
	expect_error("bad_two_spellings.conf",
	    "oslo_messaging_rabbit.rabbit_quorum_max_memory_length: given twice", NULL);
}

Test(wk_conf, free_is_null_safe)
{
	cr_assert_null(wk_conf_free(NULL));
}

Test(wk_conf, link_speed_parsing)
{
	uint64_t v = 7;

	cr_assert_eq(wk_conf_parse_link_speed("10G", &v), 0);
	cr_assert_eq(v, 10000000000ULL);
	cr_assert_eq(wk_conf_parse_link_speed("2.5G", &v), 0);
	cr_assert_eq(v, 2500000000ULL);
	cr_assert_eq(wk_conf_parse_link_speed("100M", &v), 0);
	cr_assert_eq(v, 100000000ULL);
	cr_assert_eq(wk_conf_parse_link_speed("1gbit", &v), 0);
	cr_assert_eq(v, 1000000000ULL);
	cr_assert_eq(wk_conf_parse_link_speed("800Kbps", &v), 0);
	cr_assert_eq(v, 800000ULL);
	cr_assert_eq(wk_conf_parse_link_speed("1T", &v), 0);
	cr_assert_eq(v, 1000000000000ULL);

	v = 7;
	cr_assert_eq(wk_conf_parse_link_speed("10", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("G", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("10X", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("10GB", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("1.G", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("0G", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("-1G", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed("", &v), -EINVAL);
	cr_assert_eq(wk_conf_parse_link_speed(NULL, &v), -EINVAL);
	cr_assert_eq(v, 7, "ret value written on failure");
}

Test(wk_conf, records_which_options_were_set_explicitly)
{
	char path[] = "/tmp/ferry-conf-explicit-XXXXXX";
	struct wk_conf *c = NULL;
	struct wk_err err = {{0}};
	int fd = mkstemp(path);
	const char text[] =
	    "transport_url = \"rabbit://h/\";\n"
	    "libvirt = { live_migration_bandwidth = 0; live_migration_permit_pause = true; };\n";

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	cr_assert_eq(wk_conf_load(path, &c, &err), 0, "%s", err.msg);
	unlink(path);
	cr_assert(wk_conf_explicit(c, offsetof(struct wk_conf, libvirt.live_migration_bandwidth)));
	cr_assert(wk_conf_explicit(c, offsetof(struct wk_conf, transport_url)));
	cr_assert_not(
	    wk_conf_explicit(c, offsetof(struct wk_conf, libvirt.live_migration_downtime)));
	cr_assert(c->libvirt.live_migration_permit_pause);
	wk_conf_free(c);
}

/* Loads transport_url plus text from a temporary file: the loader's result,
 * with *ret_conf and err filled as wk_conf_load fills them. */
static int
load_text(const char *text, struct wk_conf **ret_conf, struct wk_err *err)
{
	char path[] = "/tmp/ferry-conf-metrics-XXXXXX";
	char buf[512];
	int fd = mkstemp(path), r;
	size_t n;

	cr_assert_geq(fd, 0);
	n = (size_t)snprintf(buf, sizeof(buf), "transport_url = \"rabbit://h/\";\n%s\n", text);
	cr_assert_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
	r = wk_conf_load(path, ret_conf, err);
	unlink(path);
	return r;
}

Test(wk_conf, metrics_listen)
{
	static const struct {
		const char *text, *want;
	} good[] = {
	    {"metrics = { listen = \"127.0.0.1:9178\"; };", "127.0.0.1:9178"},
	    {"metrics = { listen = \"[::1]:9178\"; };", "[::1]:9178"},
	    {"metrics = { listen = \"0.0.0.0:80\"; };", "0.0.0.0:80"},
	    {"metrics = { listen = \"\"; };", NULL},
	    {"metrics = { };", NULL},
	};
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"metrics = { listen = \"localhost:9178\"; };", "not an IPv4 address"},
	    {"metrics = { listen = \"127.0.0.1\"; };", "no port"},
	    {"metrics = { listen = \"127.0.0.1:70000\"; };", "port number 1-65535"},
	    {"metrics = { listen = \"::1:9178\"; };", "in brackets"},
	    {"metrics = { listen = \"[::1]\"; };", "[IPv6 address]:port"},
	    {"metrics = { listen = \"[::g]:9178\"; };", "not an IPv6 address"},
	    {"metrics = { listen = 9178; };", "expected a string"},
	    {"metrics = { port = 9178; };", "metrics.port: unknown option"},
	    {"metrics = \"127.0.0.1:9178\";", "expected a group"},
	};
	struct wk_conf *c;
	struct wk_err err;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		c = NULL;
		memset(&err, 0, sizeof(err));
		cr_assert_eq(load_text(good[i].text, &c, &err), 0, "%s: %s", good[i].text, err.msg);
		if (good[i].want == NULL)
			cr_assert_null(c->metrics.listen, "%s", good[i].text);
		else
			cr_assert_str_eq(c->metrics.listen, good[i].want);
		wk_conf_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = NULL;
		memset(&err, 0, sizeof(err));
		cr_assert_eq(load_text(bad[i].text, &c, &err), -EINVAL, "%s", bad[i].text);
		cr_assert_null(c);
		cr_assert_not_null(strstr(err.msg, "metrics"), "%s: '%s'", bad[i].text, err.msg);
		cr_assert_not_null(strstr(err.msg, bad[i].why), "%s: '%s'", bad[i].text, err.msg);
	}
	expect_error("bad_metrics_listen.conf", "metrics.listen: ", "'localhost' is not an IPv4");
}
