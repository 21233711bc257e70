/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_tuning.c - wk_tuning_derive(): the derivation table from 100M to
 * 100G, nova's defaults without a link speed, explicit options winning (and
 * the derived values adapting to them), bad link speeds, and the printed table.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_conf.h"
#include "wk_tuning.h"

static char speed_buf[32];
static char mc_zstd[] = "zstd", mc_none[] = "none", mc_lz4[] = "lz4";

/* A configuration holding wk_conf's defaults (nova's) and @speed (NULL = unset). */
static struct wk_conf
conf_with(const char *speed)
{
	struct wk_conf c;

	memset(&c, 0, sizeof(c));
	c.libvirt.live_migration_bandwidth = 0;
	c.libvirt.live_migration_downtime = 500;
	c.libvirt.live_migration_downtime_steps = 10;
	c.libvirt.live_migration_downtime_delay = 75;
	c.libvirt.live_migration_completion_timeout = 800;
	c.libvirt.max_concurrent_live_migrations = 1;
	c.libvirt.max_concurrent_inbound_migrations = 1;
	if (speed != NULL) {
		(void)snprintf(speed_buf, sizeof(speed_buf), "%s", speed);
		c.libvirt.link_speed = speed_buf;
	}
	return c;
}

static struct wk_tuning
derive_ok(const struct wk_conf *c, const struct wk_tuning_explicit *x)
{
	struct wk_err err = {{0}};
	struct wk_tuning t;
	int r;

	r = wk_tuning_derive(c, x, &t, &err);
	cr_assert_eq(r, 0, "derive: %d %s", r, err.msg);
	return t;
}

struct row {
	const char *speed;
	uint64_t bps;
	int outbound, inbound;
	unsigned long long bandwidth;
	bool compressed;
	int parallel;
	unsigned downtime, steps, delay, timeout;
	enum wk_multifd_comp mc;
	bool zero_copy;
};

#define ZSTD WK_MULTIFD_COMP_ZSTD
#define NONE WK_MULTIFD_COMP_NONE

/* The table in docs/tuning.md. */
static const struct row table[] = {
    {"100M", 100000000ULL, 1, 1, 9, true, 0, 2000, 40, 25, 1138, NONE, false},
    {"1G", 1000000000ULL, 1, 1, 95, true, 0, 500, 10, 9, 108, NONE, false},
    {"2.5G", 2500000000ULL, 1, 1, 238, false, 2, 500, 10, 3, 44, ZSTD, false},
    {"5G", 5000000000ULL, 1, 1, 476, false, 2, 500, 6, 3, 22, ZSTD, false},
    {"10G", 10000000000ULL, 2, 2, 476, false, 2, 500, 6, 3, 22, NONE, true},
    {"25G", 25000000000ULL, 4, 4, 596, false, 4, 500, 6, 3, 20, NONE, true},
    {"100G", 100000000000ULL, 4, 4, 2384, false, 8, 500, 6, 3, 20, NONE, true},
};

static void
assert_all_src(const struct wk_tuning *t, enum wk_tuning_src s)
{
	cr_assert_eq(t->src.bandwidth, s);
	cr_assert_eq(t->src.compression, s);
	cr_assert_eq(t->src.parallel, s);
	cr_assert_eq(t->src.downtime, s);
	cr_assert_eq(t->src.downtime_steps, s);
	cr_assert_eq(t->src.downtime_delay, s);
	cr_assert_eq(t->src.completion_timeout, s);
	cr_assert_eq(t->src.max_outbound, s);
	cr_assert_eq(t->src.max_inbound, s);
	cr_assert_eq(t->src.multifd_compression, s);
	cr_assert_eq(t->src.zstd_level, s);
	cr_assert_eq(t->src.zero_copy, s);
}

Test(wk_tuning, derivation_table_from_100M_to_100G)
{
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct row *w = &table[i];
		struct wk_conf c = conf_with(w->speed);
		struct wk_tuning t = derive_ok(&c, NULL);

		cr_expect_eq(t.link_bits_per_s, w->bps, "%s", w->speed);
		cr_expect_eq(
		    t.max_outbound, w->outbound, "%s outbound %d", w->speed, t.max_outbound);
		cr_expect_eq(t.max_inbound, w->inbound, "%s inbound %d", w->speed, t.max_inbound);
		cr_expect_eq(t.bandwidth_mib_s, w->bandwidth, "%s bandwidth %llu", w->speed,
		    t.bandwidth_mib_s);
		cr_expect_eq(t.compressed, w->compressed, "%s compressed", w->speed);
		cr_expect_eq(t.parallel_connections, w->parallel, "%s parallel %d", w->speed,
		    t.parallel_connections);
		cr_expect_eq(t.multifd_compression, w->mc, "%s multifd compression", w->speed);
		cr_expect_eq(t.zstd_level, 1, "%s zstd level", w->speed);
		cr_expect_eq(t.zero_copy, w->zero_copy, "%s zero-copy", w->speed);
		cr_expect_eq(t.downtime_ms, w->downtime, "%s downtime %u", w->speed, t.downtime_ms);
		cr_expect_eq(t.downtime_steps, w->steps, "%s steps %u", w->speed, t.downtime_steps);
		cr_expect_eq(
		    t.downtime_delay_s, w->delay, "%s delay %u", w->speed, t.downtime_delay_s);
		cr_expect_eq(t.completion_timeout_s, w->timeout, "%s timeout %u", w->speed,
		    t.completion_timeout_s);
		assert_all_src(&t, WK_SRC_DERIVED);
		/* downtime stepping ends before the completion timeout */
		cr_expect_leq(t.downtime_steps * t.downtime_delay_s,
		    t.completion_timeout_s * 9 / 10, "%s stepping %u x %u", w->speed,
		    t.downtime_steps, t.downtime_delay_s);
		cr_expect_geq(t.downtime_steps, 3u);
		cr_expect_geq(t.downtime_delay_s, 3u);
		/* outbound migrations together stay within 80% of the link */
		cr_expect_leq(
		    t.bandwidth_mib_s * (unsigned long long)t.max_outbound * 8ULL * 1048576ULL,
		    w->bps * 8 / 10, "%s", w->speed);
		/* never XBZRLE and multifd together */
		cr_expect(!(t.compressed && t.parallel_connections > 0), "%s", w->speed);
	}
}

Test(wk_tuning, spelling_variants_of_the_same_speed_agree)
{
	struct wk_conf c1 = conf_with("10G");
	struct wk_tuning a = derive_ok(&c1, NULL);
	struct wk_conf c2 = conf_with("10000Mbit/s");
	struct wk_tuning b = derive_ok(&c2, NULL);

	cr_assert_eq(memcmp(&a.bandwidth_mib_s, &b.bandwidth_mib_s, sizeof(a.bandwidth_mib_s)), 0);
	cr_assert_eq(a.completion_timeout_s, b.completion_timeout_s);
	cr_assert_eq(a.parallel_connections, b.parallel_connections);
}

Test(wk_tuning, without_link_speed_gives_nova_defaults)
{
	struct wk_conf c = conf_with(NULL);
	struct wk_tuning t = derive_ok(&c, NULL);

	cr_assert_eq(t.link_bits_per_s, 0);
	cr_assert_eq(t.bandwidth_mib_s, 0);
	cr_assert_eq(t.compressed, false);
	cr_assert_eq(t.parallel_connections, 0);
	cr_assert_eq(t.downtime_ms, 500);
	cr_assert_eq(t.downtime_steps, 10);
	cr_assert_eq(t.downtime_delay_s, 75);
	cr_assert_eq(t.completion_timeout_s, 800);
	cr_assert_eq(t.max_outbound, 1);
	cr_assert_eq(t.max_inbound, 1);
	assert_all_src(&t, WK_SRC_DEFAULT);
	cr_assert_not_null(strstr(t.why.downtime, "nova's default"), "%s", t.why.downtime);

	/* "" is "not set" as well */
	c = conf_with("");
	t = derive_ok(&c, NULL);
	assert_all_src(&t, WK_SRC_DEFAULT);
}

Test(wk_tuning, without_link_speed_explicit_options_are_config)
{
	struct wk_conf c = conf_with(NULL);
	struct wk_tuning_explicit x = {0};
	struct wk_tuning t;

	c.libvirt.live_migration_bandwidth = 300;
	c.libvirt.max_concurrent_inbound_migrations = 3;
	x.bandwidth = true;
	x.max_inbound = true;
	x.compression = true;
	x.compression_value = true;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.bandwidth_mib_s, 300);
	cr_assert_eq(t.src.bandwidth, WK_SRC_CONFIG);
	cr_assert_eq(t.max_inbound, 3);
	cr_assert_eq(t.src.max_inbound, WK_SRC_CONFIG);
	cr_assert_eq(t.compressed, true);
	cr_assert_eq(t.src.compression, WK_SRC_CONFIG);
	cr_assert_eq(t.src.downtime, WK_SRC_DEFAULT);
	cr_assert_eq(t.src.parallel, WK_SRC_DEFAULT);
}

Test(wk_tuning, every_explicit_option_wins)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {
	    .bandwidth = true,
	    .downtime = true,
	    .downtime_steps = true,
	    .downtime_delay = true,
	    .completion_timeout = true,
	    .max_outbound = true,
	    .max_inbound = true,
	    .compression = true,
	    .parallel = true,
	    .compression_value = false,
	    .parallel_value = 3,
	    .zero_copy = true,
	    .multifd_compression = true,
	    .zstd_level = true,
	};
	struct wk_tuning t;

	c.libvirt.live_migration_zero_copy = false;
	c.libvirt.live_migration_multifd_compression = mc_zstd;
	c.libvirt.live_migration_multifd_zstd_level = 5;
	c.libvirt.live_migration_bandwidth = 123;
	c.libvirt.live_migration_downtime = 700;
	c.libvirt.live_migration_downtime_steps = 7;
	c.libvirt.live_migration_downtime_delay = 11;
	c.libvirt.live_migration_completion_timeout = 0;
	c.libvirt.max_concurrent_live_migrations = 5;
	c.libvirt.max_concurrent_inbound_migrations = 0;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.bandwidth_mib_s, 123);
	cr_assert_eq(t.downtime_ms, 700);
	cr_assert_eq(t.downtime_steps, 7);
	cr_assert_eq(t.downtime_delay_s, 11);
	cr_assert_eq(t.completion_timeout_s, 0);
	cr_assert_eq(t.max_outbound, 5);
	cr_assert_eq(t.max_inbound, 0);
	cr_assert_eq(t.compressed, false);
	cr_assert_eq(t.parallel_connections, 3);
	cr_assert_eq(t.zero_copy, false);
	cr_assert_eq(t.multifd_compression, WK_MULTIFD_COMP_ZSTD);
	cr_assert_eq(t.zstd_level, 5);
	assert_all_src(&t, WK_SRC_CONFIG);
	cr_assert_str_eq(t.why.bandwidth, "set in the configuration");
}

Test(wk_tuning, derived_values_follow_explicit_concurrency)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.max_outbound = true};
	struct wk_tuning t;

	/* one outbound slot on 10G: the whole 80% for it */
	c.libvirt.max_concurrent_live_migrations = 1;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.max_outbound, 1);
	cr_assert_eq(t.src.max_outbound, WK_SRC_CONFIG);
	cr_assert_eq(t.bandwidth_mib_s, 953);
	cr_assert_eq(t.src.bandwidth, WK_SRC_DERIVED);
	cr_assert_eq(t.max_inbound, 2);
	cr_assert_eq(t.src.max_inbound, WK_SRC_DERIVED);

	/* unlimited outbound: nothing to share by, still 80% per migration */
	c.libvirt.max_concurrent_live_migrations = 0;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.max_outbound, 0);
	cr_assert_eq(t.bandwidth_mib_s, 953);
	cr_assert_not_null(strstr(t.why.bandwidth, "unlimited"), "%s", t.why.bandwidth);

	/* eight slots on 100G */
	c = conf_with("100G");
	c.libvirt.max_concurrent_live_migrations = 8;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.bandwidth_mib_s, 1192);
}

Test(wk_tuning, derived_timing_follows_explicit_bandwidth_and_timeout)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.bandwidth = true};
	struct wk_tuning t;

	/* 100 MiB/s: a GiB in 10.24 s, ten passes -> 103 s/GiB */
	c.libvirt.live_migration_bandwidth = 100;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.bandwidth_mib_s, 100);
	cr_assert_eq(t.completion_timeout_s, 103);
	cr_assert_eq(t.src.completion_timeout, WK_SRC_DERIVED);
	cr_assert_eq(t.downtime_steps, 10);
	cr_assert_eq(t.downtime_delay_s, 9);

	/* a bandwidth above the link is timed at the link's speed (1192 MiB/s) */
	c.libvirt.live_migration_bandwidth = 100000;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.completion_timeout_s, 20);

	/* unlimited bandwidth: timed at the derived share */
	c.libvirt.live_migration_bandwidth = 0;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.bandwidth_mib_s, 0);
	cr_assert_eq(t.completion_timeout_s, 22);

	/* timeout off: stepping still fits the formula's 108 s on 1G */
	c = conf_with("1G");
	x = (struct wk_tuning_explicit){.completion_timeout = true};
	c.libvirt.live_migration_completion_timeout = 0;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.completion_timeout_s, 0);
	cr_assert_eq(t.src.completion_timeout, WK_SRC_CONFIG);
	cr_assert_eq(t.downtime_steps, 10);
	cr_assert_eq(t.downtime_delay_s, 9);

	/* an explicit long timeout stretches the stepping */
	c.libvirt.live_migration_completion_timeout = 800;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.downtime_steps, 10);
	cr_assert_eq(t.downtime_delay_s, 72);
}

Test(wk_tuning, derived_stepping_follows_explicit_downtime_steps_and_delay)
{
	struct wk_conf c = conf_with("1G");
	struct wk_tuning_explicit x = {.downtime = true};
	struct wk_tuning t;

	/* 1000 ms: 20 steps of 50 ms; 0.9 * 108 / 20 -> 4 s */
	c.libvirt.live_migration_downtime = 1000;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.downtime_ms, 1000);
	cr_assert_eq(t.downtime_steps, 20);
	cr_assert_eq(t.downtime_delay_s, 4);

	/* nova's 75 s delay on 1G: only 3 steps fit into 0.9 * 108 s (the minimum) */
	c = conf_with("1G");
	x = (struct wk_tuning_explicit){.downtime_delay = true};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.downtime_delay_s, 75);
	cr_assert_eq(t.src.downtime_delay, WK_SRC_CONFIG);
	cr_assert_eq(t.downtime_steps, 3);
	cr_assert_eq(t.src.downtime_steps, WK_SRC_DERIVED);

	/* explicit steps on 1G: the delay divides 0.9 * 108 by them */
	c = conf_with("1G");
	c.libvirt.live_migration_downtime_steps = 4;
	x = (struct wk_tuning_explicit){.downtime_steps = true};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.downtime_steps, 4);
	cr_assert_eq(t.downtime_delay_s, 24);

	/* explicit steps are kept even when they overrun (delay floor 3 s) */
	c = conf_with("100G");
	c.libvirt.live_migration_downtime_steps = 30;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.downtime_steps, 30);
	cr_assert_eq(t.downtime_delay_s, 3);
}

Test(wk_tuning, explicit_compression_and_multifd_exclude_the_derived_other)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.compression = true, .compression_value = true};
	struct wk_tuning t;

	t = derive_ok(&c, &x);
	cr_assert_eq(t.compressed, true);
	cr_assert_eq(t.src.compression, WK_SRC_CONFIG);
	cr_assert_eq(t.parallel_connections, 0);
	cr_assert_eq(t.src.parallel, WK_SRC_DERIVED);

	/* explicit "compression off" leaves multifd derived */
	x.compression_value = false;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.compressed, false);
	cr_assert_eq(t.parallel_connections, 2);

	/* multifd on a 1G link: no XBZRLE */
	c = conf_with("1G");
	x = (struct wk_tuning_explicit){.parallel = true, .parallel_value = 4};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.parallel_connections, 4);
	cr_assert_eq(t.src.parallel, WK_SRC_CONFIG);
	cr_assert_eq(t.compressed, false);
	cr_assert_eq(t.src.compression, WK_SRC_DERIVED);

	/* parallel explicitly 0 on 1G: compression derived as usual */
	x.parallel_value = 0;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.compressed, true);
}

static void
expect_bad(const char *speed, const char *want)
{
	struct wk_conf c = conf_with(speed);
	struct wk_err err = {{0}};
	struct wk_tuning t;
	int r;

	memset(&t, 0xa5, sizeof(t));
	r = wk_tuning_derive(&c, NULL, &t, &err);
	cr_assert_eq(r, -EINVAL, "'%s': r=%d", speed, r);
	cr_assert_not_null(strstr(err.msg, "libvirt.link_speed"), "'%s': %s", speed, err.msg);
	cr_assert_not_null(strstr(err.msg, want), "'%s': '%s' not in '%s'", speed, want, err.msg);
	cr_assert_eq(t.link_bits_per_s, 0xa5a5a5a5a5a5a5a5ULL, "ret written on failure");
}

Test(wk_tuning, bad_link_speeds_are_refused)
{
	expect_bad("fast", "\"fast\"");
	expect_bad("10GB", "\"10GB\"");
	expect_bad("10", "\"10\"");
	expect_bad("0G", "\"0G\"");
	expect_bad("-1G", "\"-1G\"");
	expect_bad("10G ", "\"10G \"");
	expect_bad("5M", "outside 10M..1T");
	expect_bad("9999999", "\"9999999\"");
	expect_bad("800K", "outside 10M..1T");
	expect_bad("2T", "outside 10M..1T");
	expect_bad("1000.5G", "outside 10M..1T");
}

Test(wk_tuning, link_speed_edges_are_accepted)
{
	struct wk_conf c = conf_with("10M");
	struct wk_tuning t = derive_ok(&c, NULL);

	cr_assert_eq(t.bandwidth_mib_s, 1);
	cr_assert_eq(t.downtime_ms, 2000);
	cr_assert_eq(t.completion_timeout_s, 10240);
	c = conf_with("1T");
	t = derive_ok(&c, NULL);
	cr_assert_eq(t.parallel_connections, 8);
	cr_assert_eq(t.max_outbound, 4);
	/* between the steps: 500M gets 1000 ms, 40G the 25G step */
	c = conf_with("500M");
	t = derive_ok(&c, NULL);
	cr_assert_eq(t.downtime_ms, 1000);
	cr_assert_eq(t.downtime_steps, 20);
	c = conf_with("40G");
	t = derive_ok(&c, NULL);
	cr_assert_eq(t.parallel_connections, 4);
	cr_assert_eq(t.bandwidth_mib_s, 953);
}

Test(wk_tuning, out_of_range_explicit_values_are_refused)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.parallel = true, .parallel_value = 256};
	struct wk_err err = {{0}};
	struct wk_tuning t;

	cr_assert_eq(wk_tuning_derive(&c, &x, &t, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "live_migration_parallel_connections"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "256"), "%s", err.msg);

	x = (struct wk_tuning_explicit){.downtime = true};
	c.libvirt.live_migration_downtime = 50;
	cr_assert_eq(wk_tuning_derive(&c, &x, &t, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "libvirt.live_migration_downtime"), "%s", err.msg);

	/* a bad value that is not explicit is not looked at */
	x.downtime = false;
	cr_assert_eq(wk_tuning_derive(&c, &x, &t, NULL), 0);
	cr_assert_eq(wk_tuning_derive(NULL, &x, &t, NULL), -EINVAL);
}

/* Prints @t into a string the caller frees. */
static char *
print_to_string(const struct wk_tuning *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	wk_tuning_print(f, t);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

Test(wk_tuning, print_shows_every_option_value_source_and_why)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.max_inbound = true};
	struct wk_tuning t;
	char *out;

	c.libvirt.max_concurrent_inbound_migrations = 0;
	t = derive_ok(&c, &x);
	out = print_to_string(&t);
	cr_assert_eq(count_lines(out), 28, "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_zero_copy             on           derived"), "%s",
	    out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_multifd_compression   none         derived"), "%s",
	    out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_multifd_zstd_level    1"), "%s", out);
	cr_assert_not_null(strstr(out, "multifd + post-copy: an instance that permits post-copy "
	                               "gets one stream while QEMU < 10.1"),
	    "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.link_speed = 10G (10000000000 bit/s, 1192 MiB/s)"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_bandwidth_postcopy    952 MiB/s    derived  the "
	                "whole budget (80% of 10G)"),
	    "%s", out);
	cr_assert_not_null(strstr(out, "share 952 MiB/s (476 MiB/s x 2)"), "%s", out);
	cr_assert_not_null(strstr(out, "its last pass goes unlimited"), "%s", out);
	cr_assert_not_null(strstr(out, "option"), "%s", out);
	cr_assert_not_null(strstr(out, "source"), "%s", out);
	cr_assert_not_null(strstr(out, "why"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_bandwidth             476 MiB/s"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "80% of 10G (1192 MiB/s) / 2 outbound migrations"), "%s", out);
	cr_assert_not_null(strstr(out, "libvirt.live_migration_compression"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_parallel_connections  2"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_downtime              500 ms"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_downtime_steps        6"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_downtime_delay        3 s/GiB"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_completion_timeout    22 s/GiB"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.max_concurrent_live_migrations       2"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "libvirt.max_concurrent_inbound_migrations    unlimited    config   set in "
	                "the configuration"),
	    "%s", out);
	cr_assert_not_null(strstr(out, "derived"), "%s", out);
	free(out);
}

Test(wk_tuning, print_without_link_speed_says_so)
{
	struct wk_conf c = conf_with(NULL);
	struct wk_tuning t = derive_ok(&c, NULL);
	char *out = print_to_string(&t);

	cr_assert_eq(count_lines(out), 28, "%s", out);
	cr_assert_not_null(strstr(out, "libvirt.link_speed not set"), "%s", out);
	cr_assert_not_null(strstr(out, "fixed per migration, not re-shared"), "%s", out);
	cr_assert_not_null(strstr(out, "unlimited    default"), "%s", out);
	cr_assert_not_null(strstr(out, "800 s/GiB"), "%s", out);
	cr_assert_null(strstr(out, "derived"), "%s", out);
	free(out);
	cr_assert_str_eq(wk_tuning_src_name(WK_SRC_CONFIG), "config");
	cr_assert_str_eq(wk_tuning_src_name(WK_SRC_DEFAULT), "default");
	cr_assert_str_eq(wk_tuning_src_name(WK_SRC_DERIVED), "derived");
	cr_assert_str_eq(wk_tuning_src_name((enum wk_tuning_src)42), "?");
}

/* Post-copy's own bandwidth: the whole link budget when the bandwidth is
 * derived (the budget the running migrations re-share), the operator's
 * per-migration cap when that is explicit, its own explicit value above
 * both, and nova's unlimited without a link speed. */
Test(wk_tuning, postcopy_bandwidth_is_the_link_budget_unless_set)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {0};
	struct wk_err err = {{0}};
	struct wk_tuning t = derive_ok(&c, NULL);

	cr_assert_eq(t.bandwidth_mib_s, 476);
	cr_assert_eq(t.budget_mib_s, 952);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 952);
	cr_assert_eq(t.src.postcopy_bandwidth, WK_SRC_DERIVED);

	/* 1G, one outbound slot: the budget is the one share */
	c = conf_with("1G");
	t = derive_ok(&c, NULL);
	cr_assert_eq(t.budget_mib_s, 95);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 95);

	/* explicit per-migration bandwidth: fixed, nothing to re-share */
	c = conf_with("10G");
	c.libvirt.live_migration_bandwidth = 300;
	x.bandwidth = true;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.budget_mib_s, 0);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 300);
	cr_assert_not_null(strstr(t.why.postcopy_bandwidth, "live_migration_bandwidth is set"));

	/* its own option wins over both */
	c.libvirt.live_migration_bandwidth_postcopy = 700;
	x.postcopy_bandwidth = true;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 700);
	cr_assert_eq(t.src.postcopy_bandwidth, WK_SRC_CONFIG);
	x.bandwidth = false;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.budget_mib_s, 952);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 700);

	/* no link speed: nova sets none, QEMU's unlimited */
	c = conf_with(NULL);
	t = derive_ok(&c, NULL);
	cr_assert_eq(t.postcopy_bandwidth_mib_s, 0);
	cr_assert_eq(t.budget_mib_s, 0);
	cr_assert_eq(t.src.postcopy_bandwidth, WK_SRC_DEFAULT);

	c = conf_with("10G");
	c.libvirt.live_migration_bandwidth_postcopy = -1;
	x.postcopy_bandwidth = true;
	cr_assert_eq(wk_tuning_derive(&c, &x, &t, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "live_migration_bandwidth_postcopy"), "%s", err.msg);
}

Test(wk_tuning, explicit_stream_options_win_and_the_rest_adapts)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.zero_copy = true, .multifd_compression = true};
	struct wk_tuning t;

	/* zstd asked for at 10G: zero-copy derived off, multifd kept */
	c.libvirt.live_migration_multifd_compression = mc_zstd;
	x.zero_copy = false;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.multifd_compression, WK_MULTIFD_COMP_ZSTD);
	cr_assert_eq(t.src.multifd_compression, WK_SRC_CONFIG);
	cr_assert_eq(t.parallel_connections, 2);
	cr_assert_eq(t.zero_copy, false);
	cr_assert_eq(t.src.zero_copy, WK_SRC_DERIVED);

	/* zstd asked for on 1G: XBZRLE off, 2 channels to carry it */
	c = conf_with("1G");
	c.libvirt.live_migration_multifd_compression = mc_zstd;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.compressed, false);
	cr_assert_eq(t.parallel_connections, 2);
	cr_assert_not_null(
	    strstr(t.why.parallel, "multifd compression is set"), "%s", t.why.parallel);

	/* "none" on 2.5G: no zstd, and then one stream fills the link */
	c = conf_with("2.5G");
	c.libvirt.live_migration_multifd_compression = mc_none;
	t = derive_ok(&c, &x);
	cr_assert_eq(t.multifd_compression, WK_MULTIFD_COMP_NONE);
	cr_assert_eq(t.parallel_connections, 0);

	/* zero-copy off explicitly at 100G; level explicit */
	c = conf_with("100G");
	c.libvirt.live_migration_zero_copy = false;
	c.libvirt.live_migration_multifd_zstd_level = 3;
	x = (struct wk_tuning_explicit){.zero_copy = true, .zstd_level = true};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.zero_copy, false);
	cr_assert_eq(t.src.zero_copy, WK_SRC_CONFIG);
	cr_assert_eq(t.zstd_level, 3);
	cr_assert_eq(t.parallel_connections, 8);

	/* nova's parallel_connections = 1 is one stream */
	x = (struct wk_tuning_explicit){.parallel = true, .parallel_value = 1};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.parallel_connections, 0);
	cr_assert_eq(t.zero_copy, false);

	/* without a link speed, explicit values are taken as they are */
	c = conf_with(NULL);
	c.libvirt.live_migration_zero_copy = true;
	c.libvirt.live_migration_multifd_compression = mc_zstd;
	x = (struct wk_tuning_explicit){.zero_copy = true, .multifd_compression = true};
	t = derive_ok(&c, &x);
	cr_assert_eq(t.zero_copy, true);
	cr_assert_eq(t.multifd_compression, WK_MULTIFD_COMP_ZSTD);
	cr_assert_eq(t.src.zero_copy, WK_SRC_CONFIG);
}

Test(wk_tuning, bad_stream_options_are_refused_naming_the_option)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {.zstd_level = true};
	struct wk_err err = {{0}};
	struct wk_tuning t;

	c.libvirt.live_migration_multifd_zstd_level = 21;
	cr_assert_eq(wk_tuning_derive(&c, &x, &t, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "live_migration_multifd_zstd_level"), "%s", err.msg);
	c.libvirt.live_migration_multifd_zstd_level = 1;
	c.libvirt.live_migration_multifd_compression = mc_lz4;
	x = (struct wk_tuning_explicit){.multifd_compression = true};
	cr_assert_eq(wk_tuning_derive(&c, &x, &t, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "live_migration_multifd_compression"), "%s", err.msg);
}

/* ---- per-migration resolution ---- */

#define Q72  WK_VERSION(7, 2, 0)
#define Q101 WK_VERSION(10, 1, 0)
#define L90  WK_VERSION(9, 0, 0)
#define L94  WK_VERSION(9, 4, 0)
#define L80  WK_VERSION(8, 0, 0)

struct rrow {
	const char *speed;
	bool post_copy; /* the instance permits it */
	unsigned long qemu, libvirt;
	bool tls;
	int memlock;
	/* expected */
	int parallel;
	bool xbzrle;
	enum wk_multifd_comp mc;
	bool zero_copy;
	const char *why_part; /* in one of the four reasons; NULL = none checked */
};

static const struct rrow rtable[] = {
    /* slow links: one stream with XBZRLE whatever the instance and versions */
    {"100M", false, Q72, L90, false, 1, 0, true, NONE, false, "one stream"},
    {"1G", true, Q72, L90, true, 1, 0, true, NONE, false, NULL},
    {"1G", true, Q101, L94, false, 1, 0, true, NONE, false, NULL},
    /* 2.5G: zstd on 2 channels needs libvirt 9.4; post-copy before QEMU 10.1: one stream */
    {"2.5G", false, Q72, L94, false, 1, 2, false, ZSTD, false, NULL},
    {"2.5G", false, Q72, L90, false, 1, 2, false, NONE, true, "needs 9.4.0"},
    /* ... and without zstd its channels get zero-copy back, where memory locks */
    {"2.5G", false, Q72, L90, false, 0, 2, false, NONE, false, "memlock-test-reason"},
    {"5G", false, Q72, L90, false, 1, 2, false, NONE, true, "run without zstd"},
    {"2.5G", true, Q72, L94, false, 1, 0, false, NONE, false, "needs 10.1"},
    {"2.5G", true, Q101, L94, true, 1, 2, false, ZSTD, false, NULL},
    {"5G", true, Q72, L90, false, 0, 0, false, NONE, false, "cannot run multifd"},
    /* 10G and up: zero-copy unless TLS, old libvirt, locked memory, or post-copy */
    {"10G", false, Q72, L90, false, 1, 2, false, NONE, true, NULL},
    {"10G", false, Q72, L90, false, -1, 2, false, NONE, true, NULL},
    {"10G", false, Q72, L90, true, 1, 2, false, NONE, false, "TLS"},
    {"10G", false, Q72, L80, false, 1, 2, false, NONE, false, "8.5.0"},
    {"10G", false, Q72, L90, false, 0, 2, false, NONE, false, "memlock-test-reason"},
    {"10G", true, Q72, L90, false, 1, 0, false, NONE, false, "needs multifd channels"},
    {"25G", true, Q101, L90, false, 1, 4, false, NONE, true, NULL},
    {"25G", true, Q101, L90, true, 1, 4, false, NONE, false, "TLS"},
    {"100G", false, 0, 0, false, 1, 8, false, NONE, false, "8.5.0"},
    {"100G", true, 0, 0, false, 1, 0, false, NONE, false, "QEMU unknown"},
    {"100G", true, Q101, L94, false, 1, 8, false, NONE, true, NULL},
};

static bool
why_has(const struct wk_tuning_mig *m, const char *part)
{
	return strstr(m->why.parallel, part) || strstr(m->why.compression, part) ||
	       strstr(m->why.multifd_compression, part) || strstr(m->why.zero_copy, part);
}

Test(wk_tuning, resolve_table_speeds_policy_versions_tls)
{
	size_t i;

	for (i = 0; i < sizeof(rtable) / sizeof(rtable[0]); i++) {
		const struct rrow *w = &rtable[i];
		struct wk_conf c = conf_with(w->speed);
		struct wk_tuning t = derive_ok(&c, NULL);
		struct wk_tuning_env env = {.qemu_version = w->qemu,
		    .libvirt_version = w->libvirt,
		    .permit_post_copy = w->post_copy,
		    .tls = w->tls,
		    .memlock = w->memlock};
		struct wk_tuning_mig m;

		snprintf(env.memlock_why, sizeof(env.memlock_why), "memlock-test-reason");
		wk_tuning_resolve(&t, &env, &m);
		cr_expect_eq(m.parallel_connections, w->parallel, "row %zu (%s): parallel %d", i,
		    w->speed, m.parallel_connections);
		cr_expect_eq(m.compressed, w->xbzrle, "row %zu (%s): xbzrle", i, w->speed);
		cr_expect_eq(
		    m.multifd_compression, w->mc, "row %zu (%s): multifd compression", i, w->speed);
		cr_expect_eq(m.zero_copy, w->zero_copy, "row %zu (%s): zero-copy (%s)", i, w->speed,
		    m.why.zero_copy);
		cr_expect_eq(m.qemu_version, w->qemu);
		cr_expect_eq(m.libvirt_version, w->libvirt);
		cr_expect_eq(m.tls, w->tls);
		if (w->why_part != NULL)
			cr_expect(why_has(&m, w->why_part),
			    "row %zu (%s): no '%s' in: %s | %s | %s | %s", i, w->speed, w->why_part,
			    m.why.parallel, m.why.compression, m.why.multifd_compression,
			    m.why.zero_copy);
		/* invariants: nothing libvirt or this QEMU refuses is left */
		cr_expect(!(m.zero_copy && (m.parallel_connections == 0 || m.tls || m.compressed ||
		                               m.multifd_compression != NONE)),
		    "row %zu", i);
		cr_expect(!(m.compressed && m.parallel_connections > 0), "row %zu", i);
		cr_expect(!(m.multifd_compression != NONE &&
		              (m.parallel_connections == 0 || w->libvirt < L94)),
		    "row %zu", i);
		cr_expect(
		    !(w->post_copy && m.parallel_connections > 0 && w->qemu < Q101), "row %zu", i);
		cr_expect_neq(m.why.parallel[0], '\0', "row %zu", i);
		cr_expect_neq(m.why.zero_copy[0], '\0', "row %zu", i);
	}
}

Test(wk_tuning, resolve_both_explicit_xbzrle_and_multifd_keeps_multifd)
{
	struct wk_conf c = conf_with("10G");
	struct wk_tuning_explicit x = {
	    .compression = true, .compression_value = true, .parallel = true, .parallel_value = 4};
	struct wk_tuning t = derive_ok(&c, &x);
	struct wk_tuning_env env = {.qemu_version = Q72, .libvirt_version = L90, .memlock = 1};
	struct wk_tuning_mig m;

	cr_assert(t.compressed && t.parallel_connections == 4);
	wk_tuning_resolve(&t, &env, &m);
	cr_assert_eq(m.parallel_connections, 4);
	cr_assert_eq(m.compressed, false);
	cr_assert_not_null(strstr(m.why.compression, "bypass XBZRLE"), "%s", m.why.compression);
	/* the same instance permitting post-copy: one stream, and XBZRLE stays */
	env.permit_post_copy = true;
	wk_tuning_resolve(&t, &env, &m);
	cr_assert_eq(m.parallel_connections, 0);
	cr_assert_eq(m.compressed, true);
}

Test(wk_tuning, mig_summary_and_version_format)
{
	struct wk_tuning_mig m = {.parallel_connections = 2,
	    .multifd_compression = WK_MULTIFD_COMP_ZSTD,
	    .zstd_level = 3};
	char buf[160];

	wk_tuning_mig_summary(buf, sizeof(buf), &m);
	cr_assert_str_eq(buf, "parallel 2, xbzrle off, multifd compression zstd (level 3), "
	                      "zero-copy off");
	wk_version_format(buf, sizeof(buf), WK_VERSION(7, 2, 22));
	cr_assert_str_eq(buf, "7.2.22");
	wk_version_format(buf, sizeof(buf), 0);
	cr_assert_str_eq(buf, "unknown");
}

/* A fake /proc with PID 1's status and this process's limits. */
static void
fake_proc(char *dir, size_t n, const char *capbnd, const char *memlock_hard)
{
	char path[512];
	FILE *f;

	snprintf(dir, n, "/tmp/test_wk_tuning.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/1", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/1/status", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "Name:\tinit\nCapInh:\t0000000000000000\nCapBnd:\t%s\nNoNewPrivs:\t0\n", capbnd);
	fclose(f);
	snprintf(path, sizeof(path), "%s/self", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/self/limits", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
	    "Limit                     Soft Limit           Hard Limit           Units     \n"
	    "Max processes             63448                63448                processes \n"
	    "Max locked memory         8388608              %-20s bytes     \n",
	    memlock_hard);
	fclose(f);
}

static void
rm_proc(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/1/status", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/self/limits", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/1", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/self", dir);
	rmdir(path);
	rmdir(dir);
}

Test(wk_tuning, memlock_from_pid1_bounding_set_and_limit)
{
	char dir[64], why[WK_TUNING_WHY_MAX];

	/* the rig: CAP_SYS_RESOURCE (bit 24) not in the bounding set, 8 MiB hard limit */
	fake_proc(dir, sizeof(dir), "000001fffeffffff", "8388608");
	cr_assert_eq(wk_tuning_memlock(dir, 128ULL << 20, why, sizeof(why)), 0);
	cr_assert_not_null(
	    strstr(why, "no CAP_SYS_RESOURCE (CapBnd 1fffeffffff), hard limit 8192 KiB"), "%s",
	    why);
	cr_assert_not_null(strstr(why, "128 MiB"), "%s", why);
	/* a guest that fits under the limit */
	cr_assert_eq(wk_tuning_memlock(dir, 4ULL << 20, why, sizeof(why)), 1);
	rm_proc(dir);

	fake_proc(dir, sizeof(dir), "000001ffffffffff", "8388608");
	cr_assert_eq(wk_tuning_memlock(dir, 128ULL << 30, why, sizeof(why)), 1);
	cr_assert_not_null(strstr(why, "CAP_SYS_RESOURCE is in the bounding set"), "%s", why);
	rm_proc(dir);

	fake_proc(dir, sizeof(dir), "000001fffeffffff", "unlimited");
	cr_assert_eq(wk_tuning_memlock(dir, 128ULL << 30, why, sizeof(why)), 1);
	rm_proc(dir);

	cr_assert_eq(wk_tuning_memlock("/nonexistent-proc", 1, why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "cannot read"), "%s", why);
}

Test(wk_tuning, native_tls_is_configured_never_derived)
{
	struct wk_conf c = conf_with("100G");
	struct wk_tuning_explicit x = {.native_tls = true};
	struct wk_tuning t = derive_ok(&c, NULL);
	char *out = print_to_string(&t);

	/* Nova's default, whatever the link. */
	cr_assert_not(t.native_tls);
	cr_assert_eq(t.native_tls_src, WK_SRC_DEFAULT);
	cr_assert_not_null(strstr(out, "libvirt.live_migration_with_native_tls       off          "
	                               "default  plain stream by default (nova)"),
	    "%s", out);
	free(out);

	c.libvirt.live_migration_with_native_tls = true;
	t = derive_ok(&c, &x);
	cr_assert(t.native_tls);
	cr_assert_eq(t.native_tls_src, WK_SRC_CONFIG);
	/* It changes nothing else the dial derives, except zero-copy, which
	 * QEMU refuses with TLS. */
	cr_assert_eq(t.parallel_connections, 8);
	cr_assert_not(t.zero_copy);
	cr_assert_not_null(strstr(t.why.zero_copy, "TLS"), "%s", t.why.zero_copy);
	out = print_to_string(&t);
	cr_assert_not_null(
	    strstr(out, "libvirt.live_migration_with_native_tls       on           config   QEMU "
	                "encrypts the stream (VIR_MIGRATE_TLS)"),
	    "%s", out);
	free(out);

	/* Set to false explicitly: config, and says so. */
	c = conf_with(NULL);
	t = derive_ok(&c, &x);
	cr_assert_not(t.native_tls);
	cr_assert_eq(t.native_tls_src, WK_SRC_CONFIG);
	out = print_to_string(&t);
	cr_assert_not_null(
	    strstr(out, "off          config   set in the configuration"), "%s", out);
	free(out);
}
