/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_tuning.c - "one dial": the migration knobs derived from the link speed
 * (formulas in wk_tuning.h, reasons in docs/tuning.md).  Pure; any thread.
 */
#include "wk_tuning.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GBIT          1000000000ULL
#define HEADROOM      0.8  /* share of the link migrations may use */
#define PASSES        10.0 /* completion timeout = this many passes over each GiB */
#define TIMEOUT_FLOOR 20u  /* s per GiB: fixed per-migration costs dominate below this */
#define STEP_MS       50u  /* nova's default steps the downtime by about 50 ms */
#define DOWNTIME_NOVA 500u /* ms, nova's live_migration_downtime default */
#define DOWNTIME_CAP  2000u
#define MIN_STEPS     3u /* wk_conf's (nova's) minimum */
#define MIN_DELAY     3u /* wk_conf's (nova's) minimum, s per GiB */

static void __attribute__((format(printf, 2, 3))) why(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, WK_TUNING_WHY_MAX, fmt, ap);
	va_end(ap);
}

/* An explicit option wins: its source and its reason, in one step. */
static void
configured(enum wk_tuning_src *src, char *why_buf)
{
	*src = WK_SRC_CONFIG;
	why(why_buf, "set in the configuration");
}

/* A derived value: its source and why, in one step. */
static void __attribute__((format(printf, 3, 4)))
derived(enum wk_tuning_src *src, char *why_buf, const char *fmt, ...)
{
	va_list ap;

	*src = WK_SRC_DERIVED;
	va_start(ap, fmt);
	(void)vsnprintf(why_buf, WK_TUNING_WHY_MAX, fmt, ap);
	va_end(ap);
}

/* "10G", "2.5G", "100M": the link speed as an operator writes it. */
static void
fmt_speed(char *buf, size_t n, uint64_t bps)
{
	static const struct {
		uint64_t mult;
		const char *suffix;
	} units[] = {
	    {1000000000000ULL, "T"}, {1000000000ULL, "G"}, {1000000ULL, "M"}, {1000ULL, "K"}};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (bps >= units[i].mult) {
			(void)snprintf(
			    buf, n, "%g%s", (double)bps / (double)units[i].mult, units[i].suffix);
			return;
		}
	}
	(void)snprintf(buf, n, "%" PRIu64 "bit/s", bps);
}

/* The concurrency step for @bps: 1 below 10G, 2 below 25G, 4 from 25G. */
static int
concurrency_for(uint64_t bps)
{
	if (bps >= 25 * GBIT)
		return 4;
	if (bps >= 10 * GBIT)
		return 2;
	return 1;
}

/* multifd channels for @bps: 0 below 10G, 2, 4 from 25G, 8 from 100G. */
static int
parallel_for(uint64_t bps)
{
	if (bps >= 100 * GBIT)
		return 8;
	if (bps >= 25 * GBIT)
		return 4;
	if (bps >= 10 * GBIT)
		return 2;
	return 0;
}

/* nova: live_migration_parallel_connections = 1 is one stream (no PARALLEL). */
static int
channels(int v)
{
	return v <= 1 ? 0 : v;
}

/* The explicit multifd compression (check_explicit validated it). */
static enum wk_multifd_comp
explicit_mc(const struct wk_conf *c)
{
	enum wk_multifd_comp mc = WK_MULTIFD_COMP_NONE;

	(void)wk_multifd_comp_parse(c->libvirt.live_migration_multifd_compression, &mc);
	return mc;
}

static int
check_explicit(const struct wk_conf *c, const struct wk_tuning_explicit *x, struct wk_err *reterr)
{
	const char *opt = NULL;
	enum wk_multifd_comp mc;
	int v = 0;

	if (x->bandwidth && c->libvirt.live_migration_bandwidth < 0) {
		opt = "live_migration_bandwidth";
		v = c->libvirt.live_migration_bandwidth;
	} else if (x->downtime && c->libvirt.live_migration_downtime < 100) {
		opt = "live_migration_downtime";
		v = c->libvirt.live_migration_downtime;
	} else if (x->downtime_steps && c->libvirt.live_migration_downtime_steps < (int)MIN_STEPS) {
		opt = "live_migration_downtime_steps";
		v = c->libvirt.live_migration_downtime_steps;
	} else if (x->downtime_delay && c->libvirt.live_migration_downtime_delay < (int)MIN_DELAY) {
		opt = "live_migration_downtime_delay";
		v = c->libvirt.live_migration_downtime_delay;
	} else if (x->completion_timeout && c->libvirt.live_migration_completion_timeout < 0) {
		opt = "live_migration_completion_timeout";
		v = c->libvirt.live_migration_completion_timeout;
	} else if (x->max_outbound && c->libvirt.max_concurrent_live_migrations < 0) {
		opt = "max_concurrent_live_migrations";
		v = c->libvirt.max_concurrent_live_migrations;
	} else if (x->max_inbound && c->libvirt.max_concurrent_inbound_migrations < 0) {
		opt = "max_concurrent_inbound_migrations";
		v = c->libvirt.max_concurrent_inbound_migrations;
	} else if (x->postcopy_bandwidth && c->libvirt.live_migration_bandwidth_postcopy < 0) {
		opt = "live_migration_bandwidth_postcopy";
		v = c->libvirt.live_migration_bandwidth_postcopy;
	} else if (x->parallel && (x->parallel_value < 0 || x->parallel_value > 255)) {
		opt = "live_migration_parallel_connections";
		v = x->parallel_value;
	} else if (x->zstd_level &&
	           (c->libvirt.live_migration_multifd_zstd_level < WK_ZSTD_LEVEL_MIN ||
	               c->libvirt.live_migration_multifd_zstd_level > WK_ZSTD_LEVEL_MAX)) {
		opt = "live_migration_multifd_zstd_level";
		v = c->libvirt.live_migration_multifd_zstd_level;
	}
	if (opt != NULL)
		return wk_err_set(reterr, -EINVAL, "libvirt.%s: %d is out of range", opt, v);
	if (x->multifd_compression &&
	    wk_multifd_comp_parse(c->libvirt.live_migration_multifd_compression, &mc) < 0)
		return wk_err_set(reterr, -EINVAL,
		    "libvirt.live_migration_multifd_compression: \"%.32s\" is not \"none\" or "
		    "\"zstd\"",
		    c->libvirt.live_migration_multifd_compression
		        ? c->libvirt.live_migration_multifd_compression
		        : "");
	return 0;
}

/* Everything as configured: no link speed.  Explicit options are CONFIG,
 * the rest DEFAULT (wk_conf holds the default for an option not set). */
static void
as_configured(const struct wk_conf *c, const struct wk_tuning_explicit *x, struct wk_tuning *t)
{
	const char *set = "set in the configuration";
	const char *unset = "nova's default (libvirt.link_speed not set)";

#define TAKE(field, src_field, value)                                             \
	do {                                                                      \
		t->field = (value);                                               \
		t->src.src_field = x->src_field ? WK_SRC_CONFIG : WK_SRC_DEFAULT; \
		why(t->why.src_field, "%s", x->src_field ? set : unset);          \
	} while (0)

	TAKE(bandwidth_mib_s, bandwidth, (unsigned long long)c->libvirt.live_migration_bandwidth);
	TAKE(downtime_ms, downtime, (unsigned)c->libvirt.live_migration_downtime);
	TAKE(downtime_steps, downtime_steps, (unsigned)c->libvirt.live_migration_downtime_steps);
	TAKE(downtime_delay_s, downtime_delay, (unsigned)c->libvirt.live_migration_downtime_delay);
	TAKE(completion_timeout_s, completion_timeout,
	    (unsigned)c->libvirt.live_migration_completion_timeout);
	TAKE(max_outbound, max_outbound, c->libvirt.max_concurrent_live_migrations);
	TAKE(max_inbound, max_inbound, c->libvirt.max_concurrent_inbound_migrations);
	TAKE(compressed, compression, x->compression ? x->compression_value : false);
	TAKE(parallel_connections, parallel, x->parallel ? channels(x->parallel_value) : 0);
	TAKE(multifd_compression, multifd_compression,
	    x->multifd_compression ? explicit_mc(c) : WK_MULTIFD_COMP_NONE);
	TAKE(zstd_level, zstd_level,
	    x->zstd_level ? c->libvirt.live_migration_multifd_zstd_level : WK_ZSTD_LEVEL_DEFAULT);
	TAKE(zero_copy, zero_copy, x->zero_copy ? c->libvirt.live_migration_zero_copy : false);
	TAKE(postcopy_bandwidth_mib_s, postcopy_bandwidth,
	    (unsigned long long)(x->postcopy_bandwidth
	                             ? c->libvirt.live_migration_bandwidth_postcopy
	                             : 0));
#undef TAKE
	if (!x->postcopy_bandwidth)
		why(t->why.postcopy_bandwidth,
		    "unlimited: nova sets none, QEMU's default (libvirt.link_speed not set)");
	if (!x->compression)
		why(t->why.compression, "off by default (libvirt.link_speed not set)");
	if (!x->parallel)
		why(t->why.parallel, "one stream by default (libvirt.link_speed not set)");
	if (!x->multifd_compression)
		why(t->why.multifd_compression, "none by default (libvirt.link_speed not set)");
	if (!x->zstd_level)
		why(t->why.zstd_level, "QEMU's default");
	if (!x->zero_copy)
		why(t->why.zero_copy, "off by default (libvirt.link_speed not set)");
}

static void
derive_concurrency(const struct wk_conf *c, const struct wk_tuning_explicit *x, const char *speed,
    struct wk_tuning *t)
{
	int n = concurrency_for(t->link_bits_per_s);
	const char *band = "< 10G";

	if (n == 4)
		band = ">= 25G";
	else if (n == 2)
		band = "10G..25G";

	if (x->max_outbound) {
		t->max_outbound = c->libvirt.max_concurrent_live_migrations;
		configured(&t->src.max_outbound, t->why.max_outbound);
	} else {
		t->max_outbound = n;
		derived(&t->src.max_outbound, t->why.max_outbound,
		    "%s (%s): %d at once, each keeping a useful share", speed, band, n);
	}
	if (x->max_inbound) {
		t->max_inbound = c->libvirt.max_concurrent_inbound_migrations;
		configured(&t->src.max_inbound, t->why.max_inbound);
	} else {
		t->max_inbound = n;
		derived(&t->src.max_inbound, t->why.max_inbound,
		    "%s (%s): the same step as outbound", speed, band);
	}
}

/* The derived per-migration share in MiB/s (>= 1): 80% of the link, which is
 * bps / 8 / 2^20 * 0.8 = bps / (10 * 2^20), divided among the outbound slots. */
static unsigned long long
share_mib_s(const struct wk_tuning *t)
{
	uint64_t div = t->max_outbound > 0 ? (uint64_t)t->max_outbound : 1;
	uint64_t v = t->link_bits_per_s / (10ULL * 1048576ULL * div);

	return v < 1 ? 1ULL : (unsigned long long)v;
}

static void
derive_bandwidth(const struct wk_conf *c, const struct wk_tuning_explicit *x, const char *speed,
    double link_mib, struct wk_tuning *t)
{
	unsigned long long share = share_mib_s(t);

	if (x->bandwidth) {
		t->bandwidth_mib_s = (unsigned long long)c->libvirt.live_migration_bandwidth;
		configured(&t->src.bandwidth, t->why.bandwidth);
		return;
	}
	t->bandwidth_mib_s = share;
	t->src.bandwidth = WK_SRC_DERIVED;
	if (t->max_outbound > 0)
		why(t->why.bandwidth, "80%% of %s (%.0f MiB/s) / %d outbound migration%s", speed,
		    link_mib, t->max_outbound, t->max_outbound == 1 ? "" : "s");
	else
		why(t->why.bandwidth, "80%% of %s (%.0f MiB/s); outbound unlimited, so not shared",
		    speed, link_mib);
}

/* Post-copy's own cap and the budget re-shared at run time.  After
 * derive_bandwidth. */
static void
derive_postcopy(const struct wk_conf *c, const struct wk_tuning_explicit *x, const char *speed,
    struct wk_tuning *t)
{
	unsigned long long slots = t->max_outbound > 0 ? (unsigned long long)t->max_outbound : 1;

	t->budget_mib_s = t->src.bandwidth == WK_SRC_DERIVED ? t->bandwidth_mib_s * slots : 0;
	if (x->postcopy_bandwidth) {
		t->postcopy_bandwidth_mib_s =
		    (unsigned long long)c->libvirt.live_migration_bandwidth_postcopy;
		configured(&t->src.postcopy_bandwidth, t->why.postcopy_bandwidth);
		return;
	}
	t->src.postcopy_bandwidth = WK_SRC_DERIVED;
	if (t->budget_mib_s == 0) {
		t->postcopy_bandwidth_mib_s = t->bandwidth_mib_s;
		why(t->why.postcopy_bandwidth,
		    "live_migration_bandwidth is set: that per-migration cap holds in post-copy "
		    "too");
		return;
	}
	t->postcopy_bandwidth_mib_s = t->budget_mib_s;
	why(t->why.postcopy_bandwidth,
	    "the whole budget (80%% of %s): a page not yet sent stalls the running guest; "
	    "shared while others run",
	    speed);
}

/* Whether the link's band calls for zstd on multifd channels: above 1G
 * (XBZRLE's band) and below 10G, where the link, not the CPU, is the limit. */
static bool
zstd_band(uint64_t bps)
{
	return bps > GBIT && bps < 10 * GBIT;
}

static void
derive_streams(const struct wk_conf *c, const struct wk_tuning_explicit *x, const char *speed,
    struct wk_tuning *t)
{
	uint64_t bps = t->link_bits_per_s;
	int n = parallel_for(bps);
	bool mc_set = x->multifd_compression;
	enum wk_multifd_comp mc = mc_set ? explicit_mc(c) : WK_MULTIFD_COMP_NONE;
	bool xbzrle_set = x->compression && x->compression_value;
	bool want_zstd;

	if (x->compression) {
		t->compressed = x->compression_value;
		configured(&t->src.compression, t->why.compression);
	} else if (x->parallel && channels(x->parallel_value) > 0) {
		t->compressed = false;
		derived(&t->src.compression, t->why.compression,
		    "off: multifd is set, and QEMU's multifd path bypasses XBZRLE");
	} else if (mc_set && mc != WK_MULTIFD_COMP_NONE) {
		t->compressed = false;
		derived(&t->src.compression, t->why.compression,
		    "off: multifd compression is set, on multifd channels");
	} else {
		t->compressed = bps <= GBIT;
		t->src.compression = WK_SRC_DERIVED;
		if (t->compressed)
			why(t->why.compression,
			    "%s <= 1G: XBZRLE resends only changed bytes, worth its CPU on a slow "
			    "link",
			    speed);
		else
			why(t->why.compression,
			    "%s > 1G: XBZRLE's CPU cost outweighs the bytes it saves", speed);
	}

	/* zstd in its band unless the operator chose XBZRLE or no multifd compression */
	want_zstd = mc_set ? mc != WK_MULTIFD_COMP_NONE : zstd_band(bps) && !xbzrle_set;
	if (x->parallel) {
		t->parallel_connections = channels(x->parallel_value);
		configured(&t->src.parallel, t->why.parallel);
	} else if (xbzrle_set) {
		t->parallel_connections = 0;
		derived(&t->src.parallel, t->why.parallel,
		    "one stream: compression is set, and multifd bypasses XBZRLE");
	} else if (want_zstd && n == 0) {
		t->parallel_connections = 2;
		t->src.parallel = WK_SRC_DERIVED;
		if (mc_set)
			why(t->why.parallel,
			    "2 multifd channels: multifd compression is set, and needs them");
		else
			why(t->why.parallel,
			    "%s: 2 multifd channels to carry zstd (one compressing thread each)",
			    speed);
	} else {
		t->parallel_connections = n;
		t->src.parallel = WK_SRC_DERIVED;
		if (n == 0)
			why(t->why.parallel, "%s < 10G: one stream fills the link", speed);
		else
			why(t->why.parallel,
			    "%s: one stream (one QEMU thread) cannot fill it; %d multifd channels",
			    speed, n);
	}

	if (mc_set) {
		t->multifd_compression = mc;
		configured(&t->src.multifd_compression, t->why.multifd_compression);
	} else {
		t->src.multifd_compression = WK_SRC_DERIVED;
		t->multifd_compression = WK_MULTIFD_COMP_NONE;
		if (t->parallel_connections == 0)
			why(t->why.multifd_compression, "none: one stream (no multifd channels)");
		else if (want_zstd)
			t->multifd_compression = WK_MULTIFD_COMP_ZSTD;
		if (t->multifd_compression == WK_MULTIFD_COMP_ZSTD)
			why(t->why.multifd_compression,
			    "%s < 10G: the link, not the CPU, is the limit; zstd level 1 "
			    "compresses "
			    "faster than it carries",
			    speed);
		else if (t->parallel_connections > 0)
			why(t->why.multifd_compression,
			    "none: at %s zstd (about 0.5 GB/s a channel) would be slower than the "
			    "link",
			    speed);
	}

	if (x->zstd_level) {
		t->zstd_level = c->libvirt.live_migration_multifd_zstd_level;
		configured(&t->src.zstd_level, t->why.zstd_level);
	} else {
		t->zstd_level = WK_ZSTD_LEVEL_DEFAULT;
		derived(&t->src.zstd_level, t->why.zstd_level,
		    "QEMU's default, the fastest: the aim is to beat the link");
	}

	if (x->zero_copy) {
		t->zero_copy = c->libvirt.live_migration_zero_copy;
		configured(&t->src.zero_copy, t->why.zero_copy);
		return;
	}
	t->src.zero_copy = WK_SRC_DERIVED;
	t->zero_copy = false;
	if (t->parallel_connections == 0)
		why(t->why.zero_copy, "off: one stream (zero-copy needs multifd channels)");
	else if (c->libvirt.live_migration_with_native_tls)
		why(t->why.zero_copy,
		    "off: the stream is TLS-encrypted (live_migration_with_native_tls), sent from "
		    "a buffer");
	else if (t->multifd_compression != WK_MULTIFD_COMP_NONE || t->compressed)
		why(t->why.zero_copy, "off: compressed pages are sent from a buffer, not copied");
	else {
		t->zero_copy = true;
		why(t->why.zero_copy,
		    "%d multifd channels: saves the copy of each page sent (QEMU: -10 to -66 %% "
		    "time with 8 channels)",
		    t->parallel_connections);
	}
}

static void
derive_downtime(const struct wk_conf *c, const struct wk_tuning_explicit *x, const char *speed,
    struct wk_tuning *t)
{
	uint64_t bps = t->link_bits_per_s;
	uint64_t v;

	if (x->downtime) {
		t->downtime_ms = (unsigned)c->libvirt.live_migration_downtime;
		configured(&t->src.downtime, t->why.downtime);
		return;
	}
	t->src.downtime = WK_SRC_DERIVED;
	if (bps >= GBIT) {
		t->downtime_ms = DOWNTIME_NOVA;
		why(t->why.downtime, "%s >= 1G: nova's 500 ms switch-over carries >= 60 MiB",
		    speed);
		return;
	}
	v = (DOWNTIME_NOVA * GBIT + bps - 1) / bps;
	t->downtime_ms = v > DOWNTIME_CAP ? DOWNTIME_CAP : (unsigned)v;
	why(t->why.downtime, "%s < 1G: 500 ms * 1G / %s = %" PRIu64 " ms (cap %u ms)", speed, speed,
	    v, DOWNTIME_CAP);
}

/* Completion timeout, then the downtime stepping that fits inside it. */
static void
derive_timing(const struct wk_conf *c, const struct wk_tuning_explicit *x, double link_mib,
    struct wk_tuning *t)
{
	double basis, t_gib, raw;
	unsigned formula, basis_t, steps, delay, fit;

	basis = t->bandwidth_mib_s > 0 ? (double)t->bandwidth_mib_s : (double)share_mib_s(t);
	if (basis > link_mib)
		basis = link_mib;
	t_gib = 1024.0 / basis;
	raw = ceil(PASSES * t_gib);
	formula = raw < (double)TIMEOUT_FLOOR ? TIMEOUT_FLOOR : (unsigned)raw;

	if (x->completion_timeout) {
		t->completion_timeout_s = (unsigned)c->libvirt.live_migration_completion_timeout;
		configured(&t->src.completion_timeout, t->why.completion_timeout);
	} else {
		t->completion_timeout_s = formula;
		derived(&t->src.completion_timeout, t->why.completion_timeout,
		    "a GiB takes %.1f s at %.0f MiB/s; 10 passes = %.0f s (floor %u s)", t_gib,
		    basis, raw, TIMEOUT_FLOOR);
	}
	basis_t = t->completion_timeout_s > 0 ? t->completion_timeout_s : formula;

	if (x->downtime_steps)
		steps = (unsigned)c->libvirt.live_migration_downtime_steps;
	else
		steps = (t->downtime_ms + STEP_MS / 2) / STEP_MS;
	if (steps < MIN_STEPS)
		steps = MIN_STEPS;

	if (x->downtime_delay) {
		delay = (unsigned)c->libvirt.live_migration_downtime_delay;
	} else {
		delay = (unsigned)((9ULL * basis_t) / (10ULL * steps));
		if (delay < MIN_DELAY)
			delay = MIN_DELAY;
	}
	if (!x->downtime_steps) {
		fit = (unsigned)((9ULL * basis_t) / (10ULL * delay));
		if (fit < MIN_STEPS)
			fit = MIN_STEPS;
		if (steps > fit)
			steps = fit;
	}

	t->downtime_steps = steps;
	if (x->downtime_steps) {
		configured(&t->src.downtime_steps, t->why.downtime_steps);
	} else {
		derived(&t->src.downtime_steps, t->why.downtime_steps,
		    "%u ms / %u ms a step, capped so steps x %u s fit 90%% of %u s/GiB",
		    t->downtime_ms, STEP_MS, delay, basis_t);
	}
	t->downtime_delay_s = delay;
	if (x->downtime_delay) {
		configured(&t->src.downtime_delay, t->why.downtime_delay);
	} else {
		derived(&t->src.downtime_delay, t->why.downtime_delay,
		    "stepping ends at 90%% of the %u s/GiB timeout: 0.9 * %u / %u steps (min %u)",
		    basis_t, basis_t, steps, MIN_DELAY);
	}
}

int
wk_tuning_derive(const struct wk_conf *c, const struct wk_tuning_explicit *x, struct wk_tuning *ret,
    struct wk_err *reterr)
{
	static const struct wk_tuning_explicit none;
	struct wk_tuning t;
	char speed[32];
	uint64_t bps;
	double link_mib;
	int r;

	if (c == NULL || ret == NULL)
		return wk_err_set(reterr, -EINVAL, "wk_tuning_derive: no configuration");
	if (x == NULL)
		x = &none;
	r = check_explicit(c, x, reterr);
	if (r < 0)
		return r;

	memset(&t, 0, sizeof(t));
	t.native_tls = c->libvirt.live_migration_with_native_tls;
	t.native_tls_src = x->native_tls ? WK_SRC_CONFIG : WK_SRC_DEFAULT;
	if (c->libvirt.link_speed == NULL || c->libvirt.link_speed[0] == '\0') {
		as_configured(c, x, &t);
		*ret = t;
		return 0;
	}
	if (wk_conf_parse_link_speed(c->libvirt.link_speed, &bps) < 0)
		return wk_err_set(reterr, -EINVAL,
		    "libvirt.link_speed: \"%.64s\" is not a speed in bits/s such as \"10G\", "
		    "\"2.5G\" or \"100M\"",
		    c->libvirt.link_speed);
	if (bps < WK_TUNING_LINK_MIN || bps > WK_TUNING_LINK_MAX)
		return wk_err_set(reterr, -EINVAL,
		    "libvirt.link_speed: \"%.64s\" is outside 10M..1T (bits/s)",
		    c->libvirt.link_speed);

	t.link_bits_per_s = bps;
	link_mib = (double)bps / 8.0 / 1048576.0;
	fmt_speed(speed, sizeof(speed), bps);

	/* Order matters: bandwidth divides by concurrency, timing uses bandwidth
	 * and downtime. */
	derive_concurrency(c, x, speed, &t);
	derive_bandwidth(c, x, speed, link_mib, &t);
	derive_postcopy(c, x, speed, &t);
	derive_streams(c, x, speed, &t);
	derive_downtime(c, x, speed, &t);
	derive_timing(c, x, link_mib, &t);
	*ret = t;
	return 0;
}

const char *
wk_tuning_src_name(enum wk_tuning_src s)
{
	switch (s) {
	case WK_SRC_DEFAULT:
		return "default";
	case WK_SRC_DERIVED:
		return "derived";
	case WK_SRC_CONFIG:
		return "config";
	}
	return "?";
}

static void
row(FILE *f, const char *option, const char *value, enum wk_tuning_src src, const char *reason)
{
	fprintf(f, "%-44s %-12s %-8s %s\n", option, value, wk_tuning_src_name(src), reason);
}

static void
count_or(char *buf, size_t n, long long v, const char *unit, const char *zero)
{
	if (v == 0 && zero != NULL)
		(void)snprintf(buf, n, "%s", zero);
	else
		(void)snprintf(buf, n, "%lld%s", v, unit);
}

/* What happens to the bandwidth while migrations run (docs/tuning.md,
 * "Bandwidth at run time"). */
static void
print_run_time(FILE *f, const struct wk_tuning *t)
{
	if (t->budget_mib_s > 0)
		fprintf(f,
		    "at run time: the running outbound migrations share %llu MiB/s "
		    "(%llu MiB/s x %d): each gets %llu / n, re-shared as one starts or ends\n",
		    t->budget_mib_s, t->bandwidth_mib_s, t->max_outbound > 0 ? t->max_outbound : 1,
		    t->budget_mib_s);
	else
		fprintf(f,
		    "at run time: the bandwidth is fixed per migration, not re-shared "
		    "(%s)\n",
		    t->link_bits_per_s > 0 ? "live_migration_bandwidth is set"
		                           : "libvirt.link_speed not set");
	fprintf(f, "at run time: when ferry pauses a guest to end its migration (force-complete "
	           "without post-copy, the pause rung), its last pass goes unlimited\n");
}

void
wk_tuning_print(FILE *f, const struct wk_tuning *t)
{
	char speed[32], v[32];

	if (t->link_bits_per_s > 0) {
		fmt_speed(speed, sizeof(speed), t->link_bits_per_s);
		fprintf(f, "libvirt.link_speed = %s (%" PRIu64 " bit/s, %.0f MiB/s)\n", speed,
		    t->link_bits_per_s, (double)t->link_bits_per_s / 8.0 / 1048576.0);
	} else {
		fprintf(f, "libvirt.link_speed not set: nova's defaults unless set\n");
	}
	fprintf(f, "%-44s %-12s %-8s %s\n", "option", "value", "source", "why");

	count_or(v, sizeof(v), (long long)t->bandwidth_mib_s, " MiB/s", "unlimited");
	row(f, "libvirt.live_migration_bandwidth", v, t->src.bandwidth, t->why.bandwidth);
	count_or(v, sizeof(v), (long long)t->postcopy_bandwidth_mib_s, " MiB/s", "unlimited");
	row(f, "libvirt.live_migration_bandwidth_postcopy", v, t->src.postcopy_bandwidth,
	    t->why.postcopy_bandwidth);
	row(f, "libvirt.live_migration_compression", t->compressed ? "xbzrle" : "off",
	    t->src.compression, t->why.compression);
	count_or(v, sizeof(v), t->parallel_connections, "", "off");
	row(f, "libvirt.live_migration_parallel_connections", v, t->src.parallel, t->why.parallel);
	row(f, "libvirt.live_migration_multifd_compression",
	    wk_multifd_comp_name(t->multifd_compression), t->src.multifd_compression,
	    t->why.multifd_compression);
	count_or(v, sizeof(v), t->zstd_level, "", NULL);
	row(f, "libvirt.live_migration_multifd_zstd_level", v, t->src.zstd_level,
	    t->why.zstd_level);
	row(f, "libvirt.live_migration_zero_copy", t->zero_copy ? "on" : "off", t->src.zero_copy,
	    t->why.zero_copy);
	count_or(v, sizeof(v), t->downtime_ms, " ms", NULL);
	row(f, "libvirt.live_migration_downtime", v, t->src.downtime, t->why.downtime);
	count_or(v, sizeof(v), t->downtime_steps, "", NULL);
	row(f, "libvirt.live_migration_downtime_steps", v, t->src.downtime_steps,
	    t->why.downtime_steps);
	count_or(v, sizeof(v), t->downtime_delay_s, " s/GiB", NULL);
	row(f, "libvirt.live_migration_downtime_delay", v, t->src.downtime_delay,
	    t->why.downtime_delay);
	count_or(v, sizeof(v), t->completion_timeout_s, " s/GiB", "off");
	row(f, "libvirt.live_migration_completion_timeout", v, t->src.completion_timeout,
	    t->why.completion_timeout);
	count_or(v, sizeof(v), t->max_outbound, "", "unlimited");
	row(f, "libvirt.max_concurrent_live_migrations", v, t->src.max_outbound,
	    t->why.max_outbound);
	count_or(v, sizeof(v), t->max_inbound, "", "unlimited");
	row(f, "libvirt.max_concurrent_inbound_migrations", v, t->src.max_inbound,
	    t->why.max_inbound);
	row(f, "libvirt.live_migration_with_native_tls", t->native_tls ? "on" : "off",
	    t->native_tls_src,
	    t->native_tls
	        ? "QEMU encrypts the stream (VIR_MIGRATE_TLS); certificates in libvirt's "
	          "migrate_tls_x509_cert_dir (/etc/pki/qemu)"
	        : (t->native_tls_src == WK_SRC_CONFIG ? "set in the configuration"
	                                              : "plain stream by default (nova)"));
	fprintf(f,
	    "\nEach migration then resolves the stream options above against what libvirt "
	    "and QEMU refuse\n"
	    "(its journal record and start log line say what ran and why):\n"
	    "  - multifd + post-copy: an instance that permits post-copy gets one stream while "
	    "QEMU < 10.1\n"
	    "    (and so no multifd compression or zero-copy); post-copy guarantees the end\n"
	    "  - XBZRLE vs multifd: multifd channels bypass XBZRLE, so XBZRLE is turned off\n"
	    "  - multifd compression: needs multifd channels and libvirt >= 9.4.0\n"
	    "  - zero-copy: needs multifd channels, libvirt >= 8.5.0, no TLS, no compression "
	    "(XBZRLE or\n"
	    "    multifd), and a host where libvirt may raise QEMU's locked-memory limit to the "
	    "guest's RAM\n"
	    "    (CAP_SYS_RESOURCE in the capability bounding set, or a memlock hard limit "
	    "that covers it)\n");
	print_run_time(f, t);
}

const char *
wk_multifd_comp_name(enum wk_multifd_comp c)
{
	switch (c) {
	case WK_MULTIFD_COMP_NONE:
		return "none";
	case WK_MULTIFD_COMP_ZSTD:
		return "zstd";
	}
	return NULL;
}

int
wk_multifd_comp_parse(const char *s, enum wk_multifd_comp *ret)
{
	if (s == NULL)
		return -EINVAL;
	if (strcmp(s, "none") == 0)
		*ret = WK_MULTIFD_COMP_NONE;
	else if (strcmp(s, "zstd") == 0)
		*ret = WK_MULTIFD_COMP_ZSTD;
	else
		return -EINVAL;
	return 0;
}

void
wk_version_format(char *buf, size_t n, unsigned long v)
{
	if (v == 0)
		(void)snprintf(buf, n, "unknown");
	else
		(void)snprintf(
		    buf, n, "%lu.%lu.%lu", v / 1000000UL, v / 1000UL % 1000UL, v % 1000UL);
}

void
wk_tuning_mig_summary(char *buf, size_t n, const struct wk_tuning_mig *m)
{
	char par[32], mc[48];

	if (m->parallel_connections > 0)
		(void)snprintf(par, sizeof(par), "parallel %d", m->parallel_connections);
	else
		(void)snprintf(par, sizeof(par), "one stream");
	if (m->multifd_compression == WK_MULTIFD_COMP_ZSTD)
		(void)snprintf(mc, sizeof(mc), "zstd (level %d)", m->zstd_level);
	else
		(void)snprintf(mc, sizeof(mc), "none");
	(void)snprintf(buf, n, "%s, xbzrle %s, multifd compression %s, zero-copy %s", par,
	    m->compressed ? "on" : "off", mc, m->zero_copy ? "on" : "off");
}

/* Zero-copy for one migration (the other knobs already resolved in @m).
 * Where the host derived it off only because of zstd and this migration
 * cannot use zstd, its channels run uncompressed and zero-copy is derived
 * back on; an explicit "off" always holds. */
static void
resolve_zero_copy(
    const struct wk_tuning *t, const struct wk_tuning_env *env, struct wk_tuning_mig *m)
{
	bool set = t->src.zero_copy == WK_SRC_CONFIG;
	bool back = !m->zero_copy && !set && t->multifd_compression != WK_MULTIFD_COMP_NONE &&
	            m->multifd_compression == WK_MULTIFD_COMP_NONE && m->parallel_connections > 0;
	const char *off = NULL;

	if (m->parallel_connections == 0)
		off = "one stream (zero-copy needs multifd channels)";
	else if (env->libvirt_version < WK_LIBVIRT_ZEROCOPY)
		off = "libvirt older than 8.5.0 has no VIR_MIGRATE_ZEROCOPY";
	else if (env->tls)
		off = "the stream is TLS-encrypted, sent from a buffer (QEMU refuses both)";
	else if (m->compressed)
		off = "XBZRLE compresses into a buffer (QEMU refuses both)";
	else if (m->multifd_compression != WK_MULTIFD_COMP_NONE)
		off = "zstd compresses into a buffer (QEMU refuses both)";
	else if (env->memlock == 0)
		off = env->memlock_why;

	if (!m->zero_copy && !back) {
		/* off already: say this migration's own reason where it has one */
		if (!set && off != NULL)
			why(m->why.zero_copy, "off: %s", off);
		return;
	}
	if (off != NULL) {
		m->zero_copy = false;
		why(m->why.zero_copy, "off: %s", off);
	} else if (back) {
		m->zero_copy = true;
		why(m->why.zero_copy,
		    "on: this migration's %d channels run without zstd, and zero-copy saves the "
		    "copy of each page",
		    m->parallel_connections);
	}
}

void
wk_tuning_resolve(
    const struct wk_tuning *t, const struct wk_tuning_env *env, struct wk_tuning_mig *ret)
{
	struct wk_tuning_mig m;
	char qv[32], lv[32];

	memset(&m, 0, sizeof(m));
	m.parallel_connections = t->parallel_connections;
	m.compressed = t->compressed;
	m.multifd_compression = t->multifd_compression;
	m.zstd_level = t->zstd_level;
	m.zero_copy = t->zero_copy;
	m.qemu_version = env->qemu_version;
	m.libvirt_version = env->libvirt_version;
	m.tls = env->tls;
	why(m.why.parallel, "%s (%s)", t->why.parallel, wk_tuning_src_name(t->src.parallel));
	why(m.why.compression, "%s (%s)", t->why.compression,
	    wk_tuning_src_name(t->src.compression));
	why(m.why.multifd_compression, "%s (%s)", t->why.multifd_compression,
	    wk_tuning_src_name(t->src.multifd_compression));
	why(m.why.zero_copy, "%s (%s)", t->why.zero_copy, wk_tuning_src_name(t->src.zero_copy));
	wk_version_format(qv, sizeof(qv), env->qemu_version);
	wk_version_format(lv, sizeof(lv), env->libvirt_version);

	/* Post-copy over multifd: refused or unsafe before QEMU 10.1.  Post-copy
	 * wins: it is what guarantees the migration ends. */
	if (m.parallel_connections > 0 && env->permit_post_copy &&
	    env->qemu_version < WK_QEMU_MULTIFD_POSTCOPY) {
		m.parallel_connections = 0;
		why(m.why.parallel,
		    "one stream: the instance permits post-copy, and QEMU %s cannot run multifd "
		    "with post-copy (needs 10.1)",
		    qv);
	}
	if (m.compressed && m.parallel_connections > 0) {
		m.compressed = false;
		why(m.why.compression, "off: %d multifd channels bypass XBZRLE",
		    m.parallel_connections);
	}
	if (m.multifd_compression != WK_MULTIFD_COMP_NONE) {
		if (m.parallel_connections == 0) {
			m.multifd_compression = WK_MULTIFD_COMP_NONE;
			why(m.why.multifd_compression, "none: one stream (no multifd channels)");
		} else if (env->libvirt_version < WK_LIBVIRT_MULTIFD_COMP) {
			m.multifd_compression = WK_MULTIFD_COMP_NONE;
			why(m.why.multifd_compression,
			    "none: libvirt %s refuses multifd compression (\"Unsupported "
			    "compression "
			    "method\"; needs 9.4.0)",
			    lv);
		}
	}
	resolve_zero_copy(t, env, &m);
	*ret = m;
}

/* The first line of @path starting with @key, copied into @buf; 0 or -errno. */
static int
proc_line(const char *path, const char *key, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	int r = -ENOENT;

	if (f == NULL)
		return -errno;
	while (fgets(buf, (int)n, f) != NULL) {
		if (strncmp(buf, key, strlen(key)) == 0) {
			r = 0;
			break;
		}
	}
	(void)fclose(f);
	return r;
}

#define CAP_SYS_RESOURCE_BIT 24 /* linux/capability.h */

int
wk_tuning_memlock(const char *proc_dir, unsigned long long need_bytes, char *out, size_t n)
{
	char path[256], line[256], soft[32], hardtok[32];
	unsigned long long bnd, hard;
	char *end;
	int r;

	(void)snprintf(path, sizeof(path), "%s/1/status", proc_dir);
	r = proc_line(path, "CapBnd:", line, sizeof(line));
	if (r < 0) {
		(void)snprintf(out, n, "cannot read CapBnd from %s: %s", path, strerror(-r));
		return -1;
	}
	errno = 0;
	bnd = strtoull(line + strlen("CapBnd:"), &end, 16);
	if (errno != 0 || end == line + strlen("CapBnd:")) {
		(void)snprintf(out, n, "%s: CapBnd does not parse", path);
		return -1;
	}
	if (bnd & (1ULL << CAP_SYS_RESOURCE_BIT)) {
		(void)snprintf(out, n,
		    "CAP_SYS_RESOURCE is in the bounding set: libvirt may raise QEMU's memlock "
		    "limit");
		return 1;
	}
	/* Not PID 1's limit: an init may keep "unlimited" for itself and hand its
	 * children less (the rig's gives 8 MiB).  Without CAP_SYS_RESOURCE no
	 * process can raise what it inherited, so this worker's own hard limit
	 * stands for libvirtd's, a sibling under the same init. */
	(void)snprintf(path, sizeof(path), "%s/self/limits", proc_dir);
	r = proc_line(path, "Max locked memory", line, sizeof(line));
	if (r < 0) {
		(void)snprintf(
		    out, n, "cannot read the memlock limit from %s: %s", path, strerror(-r));
		return -1;
	}
	/* "Max locked memory   <soft>   <hard>   bytes" */
	if (sscanf(line + strlen("Max locked memory"), "%31s %31s", soft, hardtok) != 2) {
		(void)snprintf(out, n, "%s: the memlock limit does not parse", path);
		return -1;
	}
	if (strcmp(hardtok, "unlimited") == 0) {
		(void)snprintf(out, n, "the memlock hard limit is unlimited");
		return 1;
	}
	errno = 0;
	hard = strtoull(hardtok, &end, 10);
	if (errno != 0 || *end != '\0') {
		(void)snprintf(out, n, "%s: the memlock limit does not parse", path);
		return -1;
	}
	if (hard >= need_bytes) {
		(void)snprintf(out, n,
		    "the memlock hard limit (%llu KiB) covers the guest's %llu KiB", hard >> 10,
		    need_bytes >> 10);
		return 1;
	}
	(void)snprintf(out, n,
	    "libvirt cannot raise QEMU's memlock limit to the guest's %llu MiB: no "
	    "CAP_SYS_RESOURCE (CapBnd %llx), hard limit %llu KiB",
	    need_bytes >> 20, bnd, hard >> 10);
	return 0;
}
