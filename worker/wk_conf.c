/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_conf.c - libconfig adapter: reads the file, walks every setting against
 * one option table (so unknown names are caught), copies values into
 * struct wk_conf and validates them.  The config_t lives only inside
 * wk_conf_load().  libconfig errors become -EINVAL plus a one-line message here.
 */
#include "wk_conf.h"

#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libconfig.h>

#include "rpc_url.h"
#include "wk_log.h"
#include "wk_metrics.h"
#include "wk_util.h"

enum opt_kind {
	OPT_STR,       /* non-empty string */
	OPT_STR_EMPTY, /* string, "" allowed and kept */
	OPT_STR_OPT,   /* string, "" means unset (NULL) */
	OPT_INT,
	OPT_BOOL,
	OPT_DOUBLE_POS, /* number > 0 */
};

struct opt {
	const char *group; /* NULL: top level */
	const char *name;
	enum opt_kind kind;
	size_t off;
	int min;          /* OPT_INT */
	const char *unit; /* OPT_INT, OPT_DOUBLE_POS: shown in errors */
};

#define TOP(n, k, min, unit)                                        \
	{                                                           \
		NULL, #n, k, offsetof(struct wk_conf, n), min, unit \
	}
#define GRP(g, f, n, k, min, unit)                               \
	{                                                        \
#g, n, k, offsetof(struct wk_conf, f), min, unit \
	}
#define NOTIF(n, k, min, unit)   GRP(notifications, notifications.n, #n, k, min, unit)
#define RABBIT(n, k, min, unit)  GRP(oslo_messaging_rabbit, rabbit.n, #n, k, min, unit)
#define LIBVIRT(n, k, min, unit) GRP(libvirt, libvirt.n, #n, k, min, unit)
#define METRICS(n, k, min, unit) GRP(metrics, metrics.n, #n, k, min, unit)

static const struct opt opts[] = {
    TOP(transport_url, OPT_STR, 0, NULL),
    TOP(host, OPT_STR, 0, NULL),
    TOP(state_dir, OPT_STR, 0, NULL),
    TOP(log_level, OPT_STR, 0, NULL),
    TOP(control_exchange, OPT_STR, 0, NULL),
    TOP(topic, OPT_STR, 0, NULL),
    TOP(alt_topic, OPT_STR_EMPTY, 0, NULL),
    TOP(rpc_response_timeout, OPT_INT, 1, "s"),

    NOTIF(topic, OPT_STR, 0, NULL),
    NOTIF(publisher, OPT_STR, 0, NULL),
    NOTIF(progress_interval, OPT_DOUBLE_POS, 0, "s"),
    NOTIF(enabled, OPT_BOOL, 0, NULL),

    RABBIT(amqp_durable_queues, OPT_BOOL, 0, NULL),
    RABBIT(amqp_auto_delete, OPT_BOOL, 0, NULL),
    RABBIT(rabbit_ha_queues, OPT_BOOL, 0, NULL),
    RABBIT(rabbit_quorum_queue, OPT_BOOL, 0, NULL),
    RABBIT(rabbit_quorum_delivery_limit, OPT_INT, 0, NULL),
    /* oslo.messaging 14 spells these "quroum"; later releases accept both */
    GRP(oslo_messaging_rabbit, rabbit.rabbit_quorum_max_memory_length,
        "rabbit_quroum_max_memory_length", OPT_INT, 0, "messages"),
    RABBIT(rabbit_quorum_max_memory_length, OPT_INT, 0, "messages"),
    GRP(oslo_messaging_rabbit, rabbit.rabbit_quorum_max_memory_bytes,
        "rabbit_quroum_max_memory_bytes", OPT_INT, 0, "bytes"),
    RABBIT(rabbit_quorum_max_memory_bytes, OPT_INT, 0, "bytes"),
    RABBIT(rabbit_transient_queues_ttl, OPT_INT, 1, "s"),
    RABBIT(rabbit_qos_prefetch_count, OPT_INT, 0, NULL),
    RABBIT(heartbeat_timeout_threshold, OPT_INT, 0, "s"),
    RABBIT(ssl, OPT_BOOL, 0, NULL),
    RABBIT(ssl_ca_file, OPT_STR_OPT, 0, NULL),
    RABBIT(ssl_cert_file, OPT_STR_OPT, 0, NULL),
    RABBIT(ssl_key_file, OPT_STR_OPT, 0, NULL),
    RABBIT(ssl_verify, OPT_BOOL, 0, NULL),
    RABBIT(outbox_max_bytes, OPT_INT, 65536, "bytes"),

    LIBVIRT(connection_uri, OPT_STR, 0, NULL),
    LIBVIRT(live_migration_scheme, OPT_STR, 0, NULL),
    LIBVIRT(live_migration_inbound_addr, OPT_STR_OPT, 0, NULL),
    LIBVIRT(instances_path, OPT_STR, 0, NULL),
    LIBVIRT(live_migration_bandwidth, OPT_INT, 0, "MiB/s"),
    LIBVIRT(live_migration_downtime, OPT_INT, 100, "ms"),
    LIBVIRT(live_migration_downtime_steps, OPT_INT, 3, NULL),
    LIBVIRT(live_migration_downtime_delay, OPT_INT, 3, "s"),
    LIBVIRT(live_migration_completion_timeout, OPT_INT, 0, "s"),
    LIBVIRT(live_migration_timeout_action, OPT_STR, 0, NULL),
    LIBVIRT(live_migration_permit_post_copy, OPT_BOOL, 0, NULL),
    LIBVIRT(live_migration_permit_auto_converge, OPT_BOOL, 0, NULL),
    LIBVIRT(link_speed, OPT_STR_OPT, 0, NULL),
    LIBVIRT(max_concurrent_live_migrations, OPT_INT, 0, NULL),
    LIBVIRT(max_concurrent_inbound_migrations, OPT_INT, 0, NULL),
    LIBVIRT(live_migration_permit_pause, OPT_BOOL, 0, NULL),
    LIBVIRT(live_migration_compression, OPT_BOOL, 0, NULL),
    LIBVIRT(live_migration_parallel_connections, OPT_INT, 0, NULL),
    LIBVIRT(live_migration_zero_copy, OPT_BOOL, 0, NULL),
    LIBVIRT(live_migration_multifd_compression, OPT_STR_OPT, 0, NULL),
    LIBVIRT(live_migration_multifd_zstd_level, OPT_INT, 0, NULL),
    LIBVIRT(live_migration_with_native_tls, OPT_BOOL, 0, NULL),
    LIBVIRT(live_migration_postcopy_recovery_timeout, OPT_INT, 1, "s"),
    LIBVIRT(live_migration_queue_timeout, OPT_INT, 0, "s"),
    LIBVIRT(max_queued_live_migrations, OPT_INT, 0, NULL),
    LIBVIRT(live_migration_bandwidth_postcopy, OPT_INT, 0, "MiB/s"),

    METRICS(listen, OPT_STR_OPT, 0, NULL),
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const groups[] = {
    "notifications", "oslo_messaging_rabbit", "libvirt", "metrics"};

/* The struct field under @o. */
static void *
field(struct wk_conf *c, const struct opt *o)
{
	return (char *)c + o->off;
}

/* Writes "<path>: <option>: <msg>" into reterr; returns -EINVAL. */
static int __attribute__((format(printf, 4, 5)))
opt_err(struct wk_err *reterr, const char *path, const char *option, const char *fmt, ...)
{
	char msg[sizeof(reterr->msg)];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return wk_err_set(reterr, -EINVAL, "%s: %s: %s", path, option, msg);
}

struct wk_conf *
wk_conf_free(struct wk_conf *c)
{
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < N_OPTS; i++) {
		if (opts[i].kind == OPT_STR || opts[i].kind == OPT_STR_EMPTY ||
		    opts[i].kind == OPT_STR_OPT) {
			char **s = field(c, &opts[i]);

			free(*s);
			*s = NULL;
		}
	}
	free(c->path);
	free(c);
	return NULL;
}

static int
set_str(char **dst, const char *v)
{
	char *copy = NULL;

	if (v != NULL) {
		copy = strdup(v);
		if (copy == NULL)
			return -ENOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static int
conf_defaults(struct wk_conf *c)
{
	static const struct {
		size_t off;
		const char *v;
	} strs[] = {
	    {offsetof(struct wk_conf, state_dir), "/var/lib/ferry"},
	    {offsetof(struct wk_conf, log_level), "info"},
	    {offsetof(struct wk_conf, control_exchange), "nova"},
	    {offsetof(struct wk_conf, topic), "compute"},
	    {offsetof(struct wk_conf, alt_topic), "compute-alt"},
	    {offsetof(struct wk_conf, notifications.topic), "versioned_notifications"},
	    {offsetof(struct wk_conf, notifications.publisher), "nova-compute"},
	    {offsetof(struct wk_conf, libvirt.connection_uri), "qemu:///system"},
	    {offsetof(struct wk_conf, libvirt.live_migration_scheme), "tcp"},
	    {offsetof(struct wk_conf, libvirt.instances_path), "/var/lib/nova/instances"},
	    {offsetof(struct wk_conf, libvirt.live_migration_timeout_action), "abort"},
	};
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (set_str((char **)(void *)((char *)c + strs[i].off), strs[i].v) < 0)
			return -ENOMEM;
	}
	c->rpc_response_timeout = 60;
	c->notifications.progress_interval = 5.0;
	c->notifications.enabled = true;
	c->rabbit.rabbit_transient_queues_ttl = 1800;
	c->rabbit.heartbeat_timeout_threshold = 60;
	c->rabbit.outbox_max_bytes = 16 * 1024 * 1024;
	c->rabbit.ssl_verify = true;
	c->libvirt.live_migration_bandwidth = 0;
	c->libvirt.live_migration_downtime = 500;
	c->libvirt.live_migration_downtime_steps = 10;
	c->libvirt.live_migration_downtime_delay = 75;
	c->libvirt.live_migration_completion_timeout = 800;
	c->libvirt.max_concurrent_live_migrations = 1;
	c->libvirt.max_concurrent_inbound_migrations = 1;
	c->libvirt.live_migration_postcopy_recovery_timeout = 600;
	c->libvirt.live_migration_queue_timeout = 600;
	c->libvirt.max_queued_live_migrations = 64;
	c->libvirt.live_migration_multifd_zstd_level = 1;
	return 0;
}

static const char *
int_expectation(const struct opt *o, char *buf, size_t size)
{
	if (o->min == 0)
		(void)snprintf(buf, size, "expected a non-negative integer");
	else if (o->min == 1)
		(void)snprintf(buf, size, "expected a positive integer");
	else
		(void)snprintf(buf, size, "expected an integer >= %d", o->min);
	return buf;
}

/* Copies the value of setting @s into the field of option @o. */
static int
apply(struct wk_conf *c, const struct opt *o, const config_setting_t *s, const char *display,
    struct wk_err *reterr)
{
	int type = config_setting_type(s);
	char exp[64];
	const char *str;
	long long ll;
	double d;

	switch (o->kind) {
	case OPT_STR:
	case OPT_STR_EMPTY:
	case OPT_STR_OPT:
		if (type != CONFIG_TYPE_STRING)
			return opt_err(
			    reterr, c->path, display, "expected a string in double quotes");
		str = config_setting_get_string(s);
		if (str == NULL)
			str = "";
		if (o->kind == OPT_STR && *str == '\0')
			return opt_err(reterr, c->path, display, "expected a non-empty string");
		if (o->kind == OPT_STR_OPT && *str == '\0')
			str = NULL;
		return set_str(field(c, o), str);
	case OPT_INT:
		ll = -1;
		if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
			ll = config_setting_get_int64(s);
		if ((type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) || ll < o->min ||
		    ll > INT_MAX)
			return opt_err(reterr, c->path, display, "%s%s%s%s",
			    int_expectation(o, exp, sizeof(exp)), o->unit ? " (" : "",
			    o->unit ? o->unit : "", o->unit ? ")" : "");
		*(int *)field(c, o) = (int)ll;
		return 0;
	case OPT_BOOL:
		if (type != CONFIG_TYPE_BOOL)
			return opt_err(reterr, c->path, display, "expected true or false");
		*(bool *)field(c, o) = config_setting_get_bool(s) != 0;
		return 0;
	case OPT_DOUBLE_POS:
		if (type == CONFIG_TYPE_FLOAT)
			d = config_setting_get_float(s);
		else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
			d = (double)config_setting_get_int64(s);
		else
			d = -1.0;
		if (!(d > 0.0) || !isfinite(d))
			return opt_err(reterr, c->path, display, "expected a number > 0%s%s%s",
			    o->unit ? " (" : "", o->unit ? o->unit : "", o->unit ? ")" : "");
		*(double *)field(c, o) = d;
		return 0;
	}
	return -EINVAL;
}

static const struct opt *
find_opt(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++) {
		if (strcmp(opts[i].name, name) != 0)
			continue;
		if (group == NULL ? opts[i].group == NULL
		                  : opts[i].group != NULL && strcmp(opts[i].group, group) == 0)
			return &opts[i];
	}
	return NULL;
}

static bool
is_group_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		if (strcmp(groups[i], name) == 0)
			return true;
	}
	return false;
}

/* Applies every child of @parent (group @group, NULL for the root). */
static int
walk(struct wk_conf *c, const config_setting_t *parent, const char *group, size_t *seen_offs,
    size_t *n_seen, struct wk_err *reterr)
{
	char display[160];
	int i, n = config_setting_length(parent);
	size_t k;
	int r;

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(parent, (unsigned int)i);
		const char *name = config_setting_name(s);
		const struct opt *o;

		if (name == NULL)
			name = "?";
		if (group != NULL)
			(void)snprintf(display, sizeof(display), "%s.%s", group, name);
		else
			(void)snprintf(display, sizeof(display), "%s", name);

		if (group == NULL && is_group_name(name)) {
			if (config_setting_type(s) != CONFIG_TYPE_GROUP)
				return opt_err(reterr, c->path, display,
				    "expected a group: %s = { ... };", name);
			r = walk(c, s, name, seen_offs, n_seen, reterr);
			if (r < 0)
				return r;
			continue;
		}

		o = find_opt(group, name);
		if (o == NULL)
			return opt_err(reterr, c->path, display, "unknown option (line %d)",
			    (int)config_setting_source_line(s));

		for (k = 0; k < *n_seen; k++) {
			if (seen_offs[k] == o->off)
				return opt_err(reterr, c->path, display,
				    "given twice, under two spellings (line %d)",
				    (int)config_setting_source_line(s));
		}
		seen_offs[(*n_seen)++] = o->off;

		r = apply(c, o, s, display, reterr);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool
str_in(const char *s, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(s, set[i]) == 0)
			return true;
	}
	return false;
}

/* Checks values whose validity is more than a type and a minimum, and fills
 * in the defaults that depend on other options. */
static int
conf_finish(struct wk_conf *c, struct wk_err *reterr)
{
	static const char *const actions[] = {"abort", "force_complete"};
	struct rpc_url *url = NULL;
	struct rpc_err uerr = {{0}};
	struct wk_err lerr = {{0}};
	char hostname[256];
	uint64_t bps;
	const char *p;
	int r;

	if (c->transport_url == NULL)
		return opt_err(reterr, c->path, "transport_url",
		    "missing (e.g. transport_url = \"rabbit://user:pass@127.0.0.1:5672/\";)");
	p = strstr(c->transport_url, "://");
	if (p == NULL || p == c->transport_url)
		return opt_err(reterr, c->path, "transport_url",
		    "expected a URL such as \"rabbit://user:pass@host:5672/\"");
	if (strncasecmp(c->transport_url, "rabbit://", 9) != 0 &&
	    strncasecmp(c->transport_url, "amqp://", 7) != 0 &&
	    strncasecmp(c->transport_url, "amqps://", 8) != 0)
		return opt_err(reterr, c->path, "transport_url",
		    "unsupported scheme, expected rabbit://, amqp:// or amqps://");
	/* The parser the transport uses, so --check-config refuses what start would. */
	r = rpc_url_parse(c->transport_url, &url, &uerr);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return opt_err(reterr, c->path, "transport_url", "%s", uerr.msg);
	url = rpc_url_free(url);

	if (wk_log_parse_level(c->log_level) < 0)
		return opt_err(reterr, c->path, "log_level",
		    "expected one of \"debug\", \"info\", \"warning\", \"error\", \"critical\"");

	if (!str_in(c->libvirt.live_migration_timeout_action, actions,
	        sizeof(actions) / sizeof(actions[0])))
		return opt_err(reterr, c->path, "libvirt.live_migration_timeout_action",
		    "expected \"abort\" or \"force_complete\"");

	for (p = c->libvirt.live_migration_scheme; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' ||
		        *p == '-' || *p == '.'))
			return opt_err(reterr, c->path, "libvirt.live_migration_scheme",
			    "expected a libvirt transport such as \"tcp\", \"tls\" or \"ssh\"");
	}

	/* Block migration creates disk images only below it (wk_disk.c). */
	if (c->libvirt.instances_path[0] != '/' || strstr(c->libvirt.instances_path, "/../") ||
	    strstr(c->libvirt.instances_path, "/./") ||
	    strcmp(c->libvirt.instances_path, "/") == 0 || strlen(c->libvirt.instances_path) >= 500)
		return opt_err(reterr, c->path, "libvirt.instances_path",
		    "expected an absolute directory path below / without \".\" or \"..\" "
		    "components (Nova's default is \"/var/lib/nova/instances\")");

	if (c->libvirt.link_speed != NULL &&
	    wk_conf_parse_link_speed(c->libvirt.link_speed, &bps) < 0)
		return opt_err(reterr, c->path, "libvirt.link_speed",
		    "expected a speed in bits/s such as \"10G\", \"2.5G\" or \"100M\"");

	if (c->libvirt.live_migration_multifd_compression != NULL &&
	    strcmp(c->libvirt.live_migration_multifd_compression, "none") != 0 &&
	    strcmp(c->libvirt.live_migration_multifd_compression, "zstd") != 0)
		return opt_err(reterr, c->path, "libvirt.live_migration_multifd_compression",
		    "expected \"none\" or \"zstd\"");
	if (c->libvirt.live_migration_multifd_zstd_level > 20)
		return opt_err(reterr, c->path, "libvirt.live_migration_multifd_zstd_level",
		    "expected an integer from 0 to 20 (QEMU's zstd levels)");
	if (c->libvirt.live_migration_parallel_connections > 255)
		return opt_err(reterr, c->path, "libvirt.live_migration_parallel_connections",
		    "expected an integer from 0 to 255 (0 or 1: one stream)");

	if (c->metrics.listen != NULL && wk_metrics_check_listen(c->metrics.listen, &lerr) < 0)
		return opt_err(reterr, c->path, "metrics.listen", "%s", lerr.msg);

	if (c->rabbit.rabbit_ha_queues && c->rabbit.rabbit_quorum_queue)
		return opt_err(reterr, c->path, "oslo_messaging_rabbit.rabbit_quorum_queue",
		    "cannot be combined with rabbit_ha_queues (queues are quorum or HA, not both)");

	if (c->host == NULL) {
		if (gethostname(hostname, sizeof(hostname)) < 0 || hostname[0] == '\0')
			return opt_err(reterr, c->path, "host",
			    "not set and gethostname() failed; set host = \"...\";");
		hostname[sizeof(hostname) - 1] = '\0';
		r = set_str(&c->host, hostname);
		if (r < 0)
			return r;
	}
	if (c->libvirt.live_migration_inbound_addr == NULL) {
		r = set_str(&c->libvirt.live_migration_inbound_addr, c->host);
		if (r < 0)
			return r;
	}
	return 0;
}

int
wk_conf_load(const char *path, struct wk_conf **ret_conf, struct wk_err *reterr)
{
	size_t seen_offs[N_OPTS];
	size_t n_seen = 0;
	struct wk_conf *c;
	config_t cfg;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (f == NULL) {
		r = -errno;
		return wk_err_set(reterr, r, "%s: cannot open: %s", path, strerror(-r));
	}

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	if (set_str(&c->path, path) < 0 || conf_defaults(c) < 0) {
		fclose(f);
		wk_conf_free(c);
		return -ENOMEM;
	}

	config_init(&cfg);
	if (config_read(&cfg, f) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			r = wk_err_set(reterr, -EIO, "%s: read error", path);
		else
			r = wk_err_set(reterr, -EINVAL, "%s:%d: %s",
			    config_error_file(&cfg) ? config_error_file(&cfg) : path,
			    config_error_line(&cfg),
			    config_error_text(&cfg) ? config_error_text(&cfg) : "syntax error");
		goto out;
	}

	r = walk(c, config_root_setting(&cfg), NULL, seen_offs, &n_seen, reterr);
	if (r < 0)
		goto out;
	r = conf_finish(c, reterr);
	if (r < 0)
		goto out;

	_Static_assert(N_OPTS <= sizeof(c->explicit_offs) / sizeof(c->explicit_offs[0]),
	    "explicit_offs too small");
	memcpy(c->explicit_offs, seen_offs, n_seen * sizeof(seen_offs[0]));
	c->n_explicit = n_seen;
	*ret_conf = c;
	c = NULL;
	r = 0;
out:
	config_destroy(&cfg);
	fclose(f);
	wk_conf_free(c);
	return r;
}

bool
wk_conf_explicit(const struct wk_conf *conf, size_t off)
{
	for (size_t i = 0; i < conf->n_explicit; i++)
		if (conf->explicit_offs[i] == off)
			return true;
	return false;
}

int
wk_conf_parse_link_speed(const char *s, uint64_t *ret_bits_per_s)
{
	static const char *const tails[] = {"", "bit", "bps", "bit/s"};
	unsigned long long whole = 0, frac = 0, frac_div = 1, mult;
	const char *p = s;
	double v;
	size_t i;

	if (s == NULL || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > 1000000000ULL)
			return -EINVAL;
		whole = whole * 10 + (unsigned long long)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_div >= 1000000000ULL)
				return -EINVAL;
			frac = frac * 10 + (unsigned long long)(*p - '0');
			frac_div *= 10;
		}
	}
	switch (*p) {
	case 'k':
	case 'K':
		mult = 1000ULL;
		break;
	case 'm':
	case 'M':
		mult = 1000000ULL;
		break;
	case 'g':
	case 'G':
		mult = 1000000000ULL;
		break;
	case 't':
	case 'T':
		mult = 1000000000000ULL;
		break;
	default:
		return -EINVAL;
	}
	p++;
	for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		if (strcasecmp(p, tails[i]) == 0)
			break;
	}
	if (i == sizeof(tails) / sizeof(tails[0]))
		return -EINVAL;

	v = ((double)whole + (double)frac / (double)frac_div) * (double)mult;
	if (!(v >= 1.0) || v > 1e18)
		return -EINVAL;
	*ret_bits_per_s = (uint64_t)(v + 0.5);
	return 0;
}

int
wk_conf_world_readable(const char *path, unsigned *ret_mode)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*ret_mode = (unsigned)(st.st_mode & 07777);
	return (st.st_mode & S_IROTH) != 0;
}
