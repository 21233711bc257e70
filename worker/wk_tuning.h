/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_tuning.h - "one dial": derives every migration knob (bandwidth,
 * compression, parallel connections, max downtime and its stepping,
 * completion timeout, concurrency) from libvirt.link_speed, letting every
 * option the operator set explicitly win.  Without a link speed the result is
 * the configuration as loaded (nova's defaults where unset).  Pure: no I/O
 * except wk_tuning_print(), no globals, never logs; any thread.
 *
 * The formulas (docs/tuning.md explains each "why"), with L the link speed in
 * bit/s, L_mib = L / 8 / 2^20 (MiB/s) and G = 10^9:
 *
 *   max_outbound     1 when L < 10G, 2 when 10G <= L < 25G, 4 when L >= 25G
 *   max_inbound      the same steps as max_outbound
 *   bandwidth        floor(0.8 * L_mib / max_outbound) MiB/s, at least 1; an
 *                    unlimited (0) max_outbound divides by 1
 *   compression      XBZRLE on when L <= 1G, unless multifd is explicitly on (> 0)
 *   parallel         0 (one stream) below 10G, 2 from 10G, 4 from 25G, 8 from 100G;
 *                    0 when compression is explicitly on
 *   downtime         500 ms (nova) when L >= 1G, else min(2000, ceil(500 * 1G / L)) ms
 *   t_gib            1024 / min(bandwidth, L_mib) s: one pass over 1 GiB
 *                    (the derived bandwidth stands in when bandwidth is 0)
 *   completion       max(20, ceil(10 * t_gib)) s per GiB (ten passes)
 *   T                the completion timeout when > 0, else the formula above
 *   downtime_steps   max(3, round(downtime / 50)), then lowered (not below 3) so
 *                    that steps * downtime_delay <= 0.9 * T
 *   downtime_delay   max(3, floor(0.9 * T / downtime_steps)) s per GiB
 *   budget           bandwidth * max(1, max_outbound) MiB/s when the bandwidth is
 *                    derived, else 0 (none): what the running outbound
 *                    migrations share at run time (wk_flow_bandwidth.c)
 *   postcopy_bw      the budget when the bandwidth is derived; the explicit
 *                    bandwidth when that is set; 0 (unlimited, nova) without a
 *                    link speed
 *
 * Links below 10M or above 1T are refused (-EINVAL).
 *
 * libvirt.live_migration_with_native_tls is carried through as configured
 * (native_tls, never derived) so that --show-tuning lists it.
 */
#ifndef WK_TUNING_H
#define WK_TUNING_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "wk_conf.h"
#include "wk_util.h"

/* Lowest and highest link speed wk_tuning_derive() accepts, bit/s. */
#define WK_TUNING_LINK_MIN 10000000ULL      /* 10M */
#define WK_TUNING_LINK_MAX 1000000000000ULL /* 1T */

/* Where a value came from. */
enum wk_tuning_src {
	WK_SRC_DEFAULT, /* no link speed, not set: the configuration's (nova's) default */
	WK_SRC_DERIVED, /* computed from libvirt.link_speed */
	WK_SRC_CONFIG,  /* set explicitly by the operator */
};

/*
 * Which options the operator set explicitly (filled by the caller from the
 * configuration file; wk_conf does not record it yet).  An explicit option's
 * value is taken from struct wk_conf, except compression and parallel, whose
 * values are compression_value/parallel_value here because wk_conf has no
 * such options yet (libvirt.live_migration_compression, bool, and
 * libvirt.live_migration_parallel_connections, int >= 0, are proposed).
 */
struct wk_tuning_explicit {
	bool bandwidth;          /* libvirt.live_migration_bandwidth */
	bool downtime;           /* libvirt.live_migration_downtime */
	bool downtime_steps;     /* libvirt.live_migration_downtime_steps */
	bool downtime_delay;     /* libvirt.live_migration_downtime_delay */
	bool completion_timeout; /* libvirt.live_migration_completion_timeout */
	bool max_outbound;       /* libvirt.max_concurrent_live_migrations */
	bool max_inbound;        /* libvirt.max_concurrent_inbound_migrations */
	bool compression;        /* libvirt.live_migration_compression (proposed) */
	bool parallel;           /* libvirt.live_migration_parallel_connections (proposed) */
	bool compression_value;  /* its value, read only when compression is true */
	int parallel_value;      /* its value (>= 0, 0 = one stream), when parallel is true */
	bool postcopy_bandwidth; /* libvirt.live_migration_bandwidth_postcopy */
	bool native_tls;         /* libvirt.live_migration_with_native_tls */
};

/* Longest "why" text per option, including the NUL. */
#define WK_TUNING_WHY_MAX 160

/* The effective knobs.  Plain data; the caller owns it (usually on the stack). */
struct wk_tuning {
	uint64_t link_bits_per_s;           /* 0 = link_speed not set */
	unsigned long long bandwidth_mib_s; /* per migration, 0 = unlimited */
	bool compressed;                    /* VIR_MIGRATE_COMPRESSED (XBZRLE) */
	int parallel_connections;           /* multifd channels, 0 = one stream (no PARALLEL) */
	unsigned downtime_ms;               /* max downtime, the last step */
	unsigned downtime_steps;            /* nova's live_migration_downtime_steps */
	unsigned downtime_delay_s;          /* s per GiB between steps (nova) */
	unsigned completion_timeout_s;      /* s per GiB (nova), 0 = off */
	int max_outbound;                   /* 0 = unlimited */
	int max_inbound;                    /* 0 = unlimited */
	/* post-copy's own cap (VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY), 0 = unlimited */
	unsigned long long postcopy_bandwidth_mib_s;
	/* the link budget the running outbound migrations re-share at run time;
	 * 0 = none: the bandwidth is fixed per migration */
	unsigned long long budget_mib_s;
	struct {
		enum wk_tuning_src bandwidth, compression, parallel, downtime, downtime_steps,
		    downtime_delay, completion_timeout, max_outbound, max_inbound;
		enum wk_tuning_src postcopy_bandwidth;
	} src;
	struct { /* one line each, no newline: why the value is what it is */
		char bandwidth[WK_TUNING_WHY_MAX], compression[WK_TUNING_WHY_MAX],
		    parallel[WK_TUNING_WHY_MAX], downtime[WK_TUNING_WHY_MAX],
		    downtime_steps[WK_TUNING_WHY_MAX], downtime_delay[WK_TUNING_WHY_MAX],
		    completion_timeout[WK_TUNING_WHY_MAX], max_outbound[WK_TUNING_WHY_MAX],
		    max_inbound[WK_TUNING_WHY_MAX];
		char postcopy_bandwidth[WK_TUNING_WHY_MAX];
	} why;
	/* VIR_MIGRATE_TLS: never derived from the link speed, only configured;
	 * its source is CONFIG when set explicitly, else DEFAULT. */
	bool native_tls;
	enum wk_tuning_src native_tls_src;
};

/*
 * Computes the effective knobs from @c (borrowed) and @x (borrowed; NULL means
 * "nothing set explicitly").  Returns 0 and fills *ret; -EINVAL when
 * libvirt.link_speed does not parse or lies outside [10M, 1T], or when an
 * explicit value is out of range (reterr names the option and the value).
 * *ret is written only on success.
 */
int wk_tuning_derive(const struct wk_conf *c, const struct wk_tuning_explicit *x,
    struct wk_tuning *ret, struct wk_err *reterr);

/*
 * Writes a readable table to @f: a "link_speed" line, then one row per option
 * with its config name, value (with unit), source (default|derived|config)
 * and why, then how bandwidth changes at run time (re-sharing, the paused
 * switch-over).  For --show-tuning and the startup log.
 */
void wk_tuning_print(FILE *f, const struct wk_tuning *t);

/* "default", "derived" or "config"; "?" for anything else.  Static string. */
const char *wk_tuning_src_name(enum wk_tuning_src s);

#endif /* WK_TUNING_H */
