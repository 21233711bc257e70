/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_conf.h - the worker's configuration: a libconfig file (worker.conf.example
 * documents every option) loaded into plain data.  Option names and defaults
 * follow nova ([DEFAULT], [libvirt], [notifications]) and oslo.messaging 14
 * ([oslo_messaging_rabbit]).  Unknown options, wrong types and out-of-range
 * values are errors.  The only module that includes <libconfig.h>; no libconfig
 * state outlives wk_conf_load().  Any thread; never logs.
 */
#ifndef WK_CONF_H
#define WK_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "wk_util.h"

/*
 * Every char * is owned by the struct (freed by wk_conf_free()).  Optional
 * strings documented "default NULL" are NULL when unset or set to "".
 */
struct wk_conf {
	char *path;             /* the file this was loaded from */
	char *transport_url;    /* required, oslo syntax: rabbit://user:pass@h:5672,.../vhost
	                         * (checked with rpc_url_parse, as the transport parses it) */
	char *host;             /* default: gethostname() */
	char *state_dir;        /* default "/var/lib/ferry" */
	char *log_level;        /* default "info"; one of debug|info|warning|error|critical */
	char *control_exchange; /* default "nova" */
	char *topic;            /* default "compute" */
	char
	    *alt_topic; /* default "compute-alt" (newer nova's live_migration topic); "" disables */
	int rpc_response_timeout; /* s, default 60, >= 1 */
	struct {
		char *topic;     /* default "versioned_notifications" */
		char *publisher; /* default "nova-compute" -> publisher_id "<publisher>:<host>" */
		double progress_interval; /* s, default 5.0, > 0 */
		bool enabled;             /* default true */
	} notifications;
	struct { /* group oslo_messaging_rabbit, same names and defaults as oslo.messaging 14 */
		bool amqp_durable_queues, amqp_auto_delete, rabbit_ha_queues, rabbit_quorum_queue;
		/* file names: rabbit_quorum_delivery_limit, rabbit_quroum_max_memory_length and
		 * rabbit_quroum_max_memory_bytes (oslo 14's spelling, sic; the corrected
		 * spelling rabbit_quorum_max_memory_* is accepted too); all default 0, >= 0 */
		int rabbit_quorum_delivery_limit, rabbit_quorum_max_memory_length,
		    rabbit_quorum_max_memory_bytes;
		int rabbit_transient_queues_ttl; /* s, 1800, >= 1 */
		int rabbit_qos_prefetch_count;   /* 0, >= 0 */
		int heartbeat_timeout_threshold; /* s, 60, >= 0 (0 disables heartbeats) */
		char *ssl_ca_file, *ssl_cert_file, *ssl_key_file; /* default NULL */
		bool ssl;                                         /* default false */
		/* ferry: verify the broker's certificate (chain against ssl_ca_file or
		 * the system CA store, and its name); default true */
		bool ssl_verify;
		/* ferry: bound of the outbox of unconfirmed publishes; bytes, default
		 * 16 MiB, >= 65536.  Over it only progress notifications are dropped. */
		int outbox_max_bytes;
	} rabbit;
	struct {                      /* group libvirt, Nova's names and defaults */
		char *connection_uri; /* default "qemu:///system" */
		char
		    *live_migration_scheme; /* default "tcp" -> dest URI qemu+tcp://<addr>/system */
		char *live_migration_inbound_addr; /* default: the host option */
		/* where instance disk images live; block migration creates images
		 * only below it.  Default "/var/lib/nova/instances" (Nova) */
		char *instances_path;
		int live_migration_bandwidth;      /* MiB/s, default 0 = unlimited/derived, >= 0 */
		int live_migration_downtime;       /* ms, default 500, min 100 */
		int live_migration_downtime_steps; /* default 10, min 3 */
		int live_migration_downtime_delay; /* s per GiB (nova), default 75, min 3 */
		int live_migration_completion_timeout; /* s per GiB (nova), default 800, 0 = off */
		char *live_migration_timeout_action;   /* "abort" (default) | "force_complete" */
		bool live_migration_permit_post_copy;  /* default false */
		bool live_migration_permit_auto_converge; /* default false */
		char *link_speed; /* e.g. "10G", "1G", "100M"; default NULL (not set) */
		int max_concurrent_live_migrations; /* outbound, default 1 (nova), 0 = unlimited */
		int max_concurrent_inbound_migrations; /* default 1, 0 = unlimited */
		bool live_migration_permit_pause; /* ferry: pause as the last resort; default false
		                                   */
		bool live_migration_compression;  /* ferry: XBZRLE; default false (or derived) */
		/* multifd streams (nova 2026.1's name); 0 or 1 = one stream; default
		 * derived from link_speed, else one */
		int live_migration_parallel_connections;
		/* ferry: VIR_MIGRATE_ZEROCOPY; default derived from link_speed, else false */
		bool live_migration_zero_copy;
		/* ferry: "none" | "zstd" on the multifd channels; default NULL = derived */
		char *live_migration_multifd_compression;
		/* ferry: 0..20, default 1 (QEMU's) */
		int live_migration_multifd_zstd_level;
		/* VIR_MIGRATE_TLS: QEMU's own TLS on the stream; default false (nova) */
		bool live_migration_with_native_tls;
		/* ferry: s to retry resuming a broken post-copy migration, default 600 */
		int live_migration_postcopy_recovery_timeout;
		/* ferry: s a source migration may wait for a slot (its own outbound
		 * one or the destination's inbound one) before it is rolled back;
		 * default 600, 0 = no limit */
		int live_migration_queue_timeout;
		/* ferry: outbound migrations waiting in the queue; a live_migration
		 * beyond it is rolled back; default 64, 0 = unlimited */
		int max_queued_live_migrations;
		/* ferry: post-copy's own bandwidth, MiB/s, >= 0, 0 = unlimited;
		 * default 0 (or derived from link_speed) */
		int live_migration_bandwidth_postcopy;
	} libvirt;
	struct { /* group metrics (ferry) */
		/* the Prometheus endpoint: "127.0.0.1:9178" or "[::1]:9178"
		 * (numeric address and port); default NULL = off */
		char *listen;
	} metrics;

	/* Internal: offsets of the options the file set explicitly (wk_conf_explicit). */
	size_t explicit_offs[96];
	size_t n_explicit;
};

/*
 * Reads @path, applies defaults and validates every option.  On success
 * *ret_conf is a new struct the caller frees with wk_conf_free().
 * Returns 0, -ENOENT/-EACCES/... when the file cannot be opened, -EINVAL for
 * a syntax error, an unknown option, a wrong type or an out-of-range value,
 * -ENOMEM.  On failure reterr holds one line naming the file and the option
 * (or the line, for syntax errors), e.g.
 * "/etc/ferry/worker.conf: libvirt.live_migration_downtime: expected an integer >= 100 (ms)".
 */
int wk_conf_load(const char *path, struct wk_conf **ret_conf, struct wk_err *reterr);

/* Frees @conf and every string in it.  NULL-safe; returns NULL. */
struct wk_conf *wk_conf_free(struct wk_conf *conf);

WK_DEFINE_CLEANUP(struct wk_conf *, wk_conf_free)

/*
 * Parses a link speed such as "10G", "2.5G", "100M" or "800K": decimal
 * bits per second, suffix K/M/G/T (case-insensitive), optionally followed
 * by "bit", "bps" or "bit/s"; "10GB" is refused as ambiguous.  Returns 0
 * and sets *ret_bits_per_s (>= 1), or -EINVAL.
 */
/* True when the file set the option at byte offset @off of struct wk_conf,
 * e.g. offsetof(struct wk_conf, libvirt.live_migration_bandwidth): explicit
 * options win over values derived from libvirt.link_speed. */
bool wk_conf_explicit(const struct wk_conf *conf, size_t off);

int wk_conf_parse_link_speed(const char *s, uint64_t *ret_bits_per_s);

/* The file holds the broker password: returns 1 when @path is readable by
 * every user (mode o+r), 0 when not, with *ret_mode its permission bits
 * (e.g. 0644) either way; -errno when it cannot be stat'ed.  The caller warns. */
int wk_conf_world_readable(const char *path, unsigned *ret_mode);

#endif /* WK_CONF_H */
