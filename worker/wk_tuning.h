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
 *   compression      XBZRLE on when L <= 1G, unless multifd is explicitly on (> 1)
 *   parallel         0 (one stream) up to 1G, 2 above 1G (for zstd) and from 10G,
 *                    4 from 25G, 8 from 100G; 0 when compression (XBZRLE) is
 *                    explicitly on, 2 when multifd compression is explicitly on
 *   multifd comp.    zstd when 1G < L < 10G (the link, not the CPU, is the limit),
 *                    else none; level 1 (QEMU's default, the fastest)
 *   zero-copy        on with multifd channels and no compression (from 10G)
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
 * These host-level choices are then resolved for each migration
 * (wk_tuning_resolve) against what libvirt and QEMU refuse, from the
 * instance's policy and the hypervisor's versions:
 *
 *   multifd + post-copy  an instance that permits post-copy gets one stream
 *                        when QEMU < 10.1 (and so no multifd compression or
 *                        zero-copy); post-copy is what guarantees the end
 *   XBZRLE vs multifd    multifd channels bypass XBZRLE: XBZRLE off
 *   multifd compression  needs multifd and libvirt >= 9.4.0, else none
 *   zero-copy            needs multifd, libvirt >= 8.5.0, no TLS, no
 *                        compression (XBZRLE or multifd), and a host where
 *                        libvirt may let QEMU lock the guest's RAM; derived
 *                        back on where only zstd kept it off and zstd was
 *                        dropped
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

/* Versions as libvirt encodes them: major * 1000000 + minor * 1000 + micro. */
#define WK_VERSION(maj, min, mic) ((unsigned long)(maj)*1000000UL + (min)*1000UL + (mic))
#define WK_QEMU_MULTIFD_POSTCOPY  WK_VERSION(10, 1, 0) /* first QEMU with both at once */
#define WK_LIBVIRT_ZEROCOPY       WK_VERSION(8, 5, 0)  /* VIR_MIGRATE_ZEROCOPY */
#define WK_LIBVIRT_MULTIFD_COMP   WK_VERSION(9, 4, 0)  /* compression "zstd" with PARALLEL */

/* libvirt.live_migration_multifd_compression */
enum wk_multifd_comp {
	WK_MULTIFD_COMP_NONE = 0,
	WK_MULTIFD_COMP_ZSTD = 1,
};

/* QEMU's multifd-zstd-level range and default. */
#define WK_ZSTD_LEVEL_MIN     0
#define WK_ZSTD_LEVEL_MAX     20
#define WK_ZSTD_LEVEL_DEFAULT 1

/*
 * Which options the operator set explicitly (filled by the caller from the
 * configuration file, wk_conf_explicit).  An explicit option's value is taken
 * from struct wk_conf, except compression and parallel, whose values are
 * compression_value/parallel_value here.  A parallel_value of 1 is one
 * stream, as nova's live_migration_parallel_connections = 1.
 */
struct wk_tuning_explicit {
	bool bandwidth;           /* libvirt.live_migration_bandwidth */
	bool downtime;            /* libvirt.live_migration_downtime */
	bool downtime_steps;      /* libvirt.live_migration_downtime_steps */
	bool downtime_delay;      /* libvirt.live_migration_downtime_delay */
	bool completion_timeout;  /* libvirt.live_migration_completion_timeout */
	bool max_outbound;        /* libvirt.max_concurrent_live_migrations */
	bool max_inbound;         /* libvirt.max_concurrent_inbound_migrations */
	bool compression;         /* libvirt.live_migration_compression */
	bool parallel;            /* libvirt.live_migration_parallel_connections */
	bool compression_value;   /* its value, read only when compression is true */
	int parallel_value;       /* its value (>= 0, 0 or 1 = one stream), when parallel is true */
	bool zero_copy;           /* libvirt.live_migration_zero_copy */
	bool multifd_compression; /* libvirt.live_migration_multifd_compression */
	bool zstd_level;          /* libvirt.live_migration_multifd_zstd_level */
	bool postcopy_bandwidth;  /* libvirt.live_migration_bandwidth_postcopy */
	bool native_tls;          /* libvirt.live_migration_with_native_tls */
};

/* Longest "why" text per option, including the NUL. */
#define WK_TUNING_WHY_MAX 200

/* The effective knobs.  Plain data; the caller owns it (usually on the stack). */
struct wk_tuning {
	uint64_t link_bits_per_s;           /* 0 = link_speed not set */
	unsigned long long bandwidth_mib_s; /* per migration, 0 = unlimited */
	bool compressed;                    /* VIR_MIGRATE_COMPRESSED (XBZRLE) */
	int parallel_connections;           /* multifd channels, 0 = one stream (no PARALLEL) */
	enum wk_multifd_comp multifd_compression; /* on the multifd channels */
	int zstd_level;                           /* with WK_MULTIFD_COMP_ZSTD */
	bool zero_copy;                           /* VIR_MIGRATE_ZEROCOPY */
	unsigned downtime_ms;                     /* max downtime, the last step */
	unsigned downtime_steps;                  /* nova's live_migration_downtime_steps */
	unsigned downtime_delay_s;                /* s per GiB between steps (nova) */
	unsigned completion_timeout_s;            /* s per GiB (nova), 0 = off */
	int max_outbound;                         /* 0 = unlimited */
	int max_inbound;                          /* 0 = unlimited */
	/* post-copy's own cap (VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY), 0 = unlimited */
	unsigned long long postcopy_bandwidth_mib_s;
	/* the link budget the running outbound migrations re-share at run time;
	 * 0 = none: the bandwidth is fixed per migration */
	unsigned long long budget_mib_s;
	struct {
		enum wk_tuning_src bandwidth, compression, parallel, downtime, downtime_steps,
		    downtime_delay, completion_timeout, max_outbound, max_inbound,
		    multifd_compression, zstd_level, zero_copy;
		enum wk_tuning_src postcopy_bandwidth;
	} src;
	struct { /* one line each, no newline: why the value is what it is */
		char bandwidth[WK_TUNING_WHY_MAX], compression[WK_TUNING_WHY_MAX],
		    parallel[WK_TUNING_WHY_MAX], downtime[WK_TUNING_WHY_MAX],
		    downtime_steps[WK_TUNING_WHY_MAX], downtime_delay[WK_TUNING_WHY_MAX],
		    completion_timeout[WK_TUNING_WHY_MAX], max_outbound[WK_TUNING_WHY_MAX],
		    max_inbound[WK_TUNING_WHY_MAX], multifd_compression[WK_TUNING_WHY_MAX],
		    zstd_level[WK_TUNING_WHY_MAX], zero_copy[WK_TUNING_WHY_MAX];
		char postcopy_bandwidth[WK_TUNING_WHY_MAX];
	} why;
	/* VIR_MIGRATE_TLS: never derived from the link speed, only configured;
	 * its source is CONFIG when set explicitly, else DEFAULT. */
	bool native_tls;
	enum wk_tuning_src native_tls_src;
};

/* What one migration's resolution depends on besides the host's tuning. */
struct wk_tuning_env {
	unsigned long qemu_version;    /* WK_VERSION encoding; 0 = unknown (taken as old) */
	unsigned long libvirt_version; /* the daemon's; 0 = unknown (taken as old) */
	bool permit_post_copy;         /* this instance may switch to post-copy */
	bool tls;                      /* the stream is encrypted (VIR_MIGRATE_TLS) */
	/* Whether libvirt can let QEMU lock this guest's RAM (zero-copy):
	 * 1 yes, 0 no (memlock_why says why), -1 unknown (taken as yes). */
	int memlock;
	char memlock_why[WK_TUNING_WHY_MAX];
};

/* One migration's resolved stream knobs.  Plain data. */
struct wk_tuning_mig {
	int parallel_connections; /* 0 = one stream */
	bool compressed;          /* XBZRLE */
	enum wk_multifd_comp multifd_compression;
	int zstd_level;
	bool zero_copy;
	unsigned long qemu_version, libvirt_version; /* what it was resolved against */
	bool tls;
	struct { /* one line each: why the value is what it is for this migration */
		char parallel[WK_TUNING_WHY_MAX], compression[WK_TUNING_WHY_MAX],
		    multifd_compression[WK_TUNING_WHY_MAX], zero_copy[WK_TUNING_WHY_MAX];
	} why;
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

/*
 * Resolves the host's choices @t for one migration in @env (both borrowed):
 * drops what libvirt or this QEMU would refuse (the rules above), each with
 * its reason.  Never fails; fills *ret.
 */
void wk_tuning_resolve(
    const struct wk_tuning *t, const struct wk_tuning_env *env, struct wk_tuning_mig *ret);

/* "none" or "zstd"; NULL for anything else.  Static string. */
const char *wk_multifd_comp_name(enum wk_multifd_comp c);

/* Parses "none" or "zstd"; 0 or -EINVAL. */
int wk_multifd_comp_parse(const char *s, enum wk_multifd_comp *ret);

/* "1.2.3" from a WK_VERSION value ("unknown" for 0). */
void wk_version_format(char *buf, size_t n, unsigned long v);

/* One line: "parallel 2, xbzrle off, multifd compression zstd (level 1), zero-copy off". */
void wk_tuning_mig_summary(char *buf, size_t n, const struct wk_tuning_mig *m);

/*
 * Whether libvirt on this host can let QEMU lock @need_bytes of guest RAM,
 * as VIR_MIGRATE_ZEROCOPY needs (libvirt raises the QEMU process's
 * RLIMIT_MEMLOCK to the guest's RAM; raising a hard limit needs
 * CAP_SYS_RESOURCE).  Reads @proc_dir/1/status (CapBnd: no process on the
 * host holds a capability PID 1's bounding set lacks) and @proc_dir/self/limits
 * (the "Max locked memory" hard limit this process inherited, as libvirtd
 * inherits its own: without the capability neither can raise it).  Returns 1 (CAP_SYS_RESOURCE is
 * in the bounding set, or the hard limit covers @need_bytes), 0 (neither; @why says so precisely)
 * or -1 (the files cannot be read; @why says so).  The one function here that reads files; any
 * thread.
 */
int wk_tuning_memlock(const char *proc_dir, unsigned long long need_bytes, char *why, size_t n);

/* "default", "derived" or "config"; "?" for anything else.  Static string. */
const char *wk_tuning_src_name(enum wk_tuning_src s);

#endif /* WK_TUNING_H */
