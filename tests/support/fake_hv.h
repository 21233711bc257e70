/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_hv: a scripted hypervisor backend (struct wk_hv_ops) for unit tests.
 *
 * One process-wide world of hosts, each named by its URI ("fake://host1"),
 * each holding domains.  A migrate call moves a domain from the host its
 * wk_hv was opened on to p->dest_uri, doing what the test scripted for it:
 * complete (along a recorded trace of job statistics), fail, hang until
 * released or aborted, break in post-copy, or lose the connection.  Every
 * call is counted, so tests assert what the daemon asked of the hypervisor.
 *
 * Thread-safe (one mutex): migrate blocks on a migration thread while the
 * main thread queries and acts, as with libvirt.
 */
#ifndef FAKE_HV_H
#define FAKE_HV_H

#include <stdbool.h>
#include <stddef.h>

#include "wk_hv.h"
#include "wk_hv_backend.h"

extern const struct wk_hv_ops fake_hv_ops;

enum fake_mig_kind {
	FAKE_MIG_COMPLETE,        /* the guest moves; returns r/msg when r != 0 */
	FAKE_MIG_FAIL,            /* returns r/msg; the guest stays on the source */
	FAKE_MIG_HANG,            /* blocks until fake_hv_release() or an abort */
	FAKE_MIG_BREAK_POSTCOPY,  /* both sides end up POSTCOPY_FAILED, returns -EIO */
	FAKE_MIG_LOSE_CONNECTION, /* libvirtd goes away: -ENOTCONN for every call */
};

struct fake_mig_step {
	enum fake_mig_kind kind;
	int r;           /* FAKE_MIG_FAIL, FAKE_MIG_COMPLETE */
	const char *msg; /* with r; copied */
	/* Job statistics while it runs: sample i is served from i * step_ms
	 * after the start, the last one until the step ends (borrowed; must
	 * outlive the migration).  NULL: a fixed small sample. */
	const struct wk_job_sample *trace;
	size_t trace_len;
	unsigned step_ms;
	unsigned duration_ms; /* COMPLETE/FAIL/BREAK: how long the call runs first */
};

/* Forgets every host, domain, script and counter. */
void fake_hv_reset(void);

void fake_hv_add_domain(const char *host_uri, const char *uuid, enum wk_hv_state state,
    unsigned long long memory_kib, bool persistent);
void fake_hv_set_domain(
    const char *host_uri, const char *uuid, enum wk_hv_state state, enum wk_hv_reason reason);
void fake_hv_remove_domain(const char *host_uri, const char *uuid);
/* false when the domain is not on that host. */
bool fake_hv_get_domain(const char *host_uri, const char *uuid, struct wk_hv_domain_info *ret);

/* Appends what a later migrate call of uuid does (FIFO; resume calls with
 * VIR_MIGRATE_POSTCOPY_RESUME take from the same queue).  An empty queue
 * completes at once. */
void fake_hv_script(const char *uuid, const struct fake_mig_step *step);

/* Ends a FAKE_MIG_HANG of uuid by doing then (COMPLETE, FAIL, BREAK...). */
void fake_hv_release(const char *uuid, const struct fake_mig_step *then);

/* The next call of op ("abort", "start_postcopy", "suspend", "resume",
 * "set_max_downtime", "set_max_speed", "domain_info", "job_stats") fails
 * with r and msg. */
void fake_hv_fail_next(const char *op, int r, const char *msg);

/* Every later call of op fails with r and msg (msg NULL: stop failing). */
void fake_hv_fail_always(const char *op, int r, const char *msg);

/* Calls of op ("migrate", "resume_postcopy" for migrate with the resume
 * flag, "abort" ...), for uuid or for any when uuid is NULL. */
int fake_hv_calls(const char *op, const char *uuid);

/* The calls made about uuid, in order, space-separated, without the
 * queries (job_stats, domain_info, remote_domain_info); set_max_speed is
 * written "speed=<MiB/s>" or, for the post-copy cap, "postcopy_speed=<MiB/s>"
 * (0 = unlimited), e.g. "migrate speed=0 suspend".  Cut to size. */
void fake_hv_call_log(const char *uuid, char *buf, size_t size);

/* The last cap set_max_speed gave uuid's migration (postcopy: the
 * post-copy one), or -1 when none was set. */
long long fake_hv_speed(const char *uuid, bool postcopy);

/* Calls of op ("suspend", "domain_info" ...) hang until fake_hv_unblock(),
 * as with a libvirtd stopped by SIGSTOP. */
void fake_hv_block(const char *op);
void fake_hv_unblock(void);

/* libvirtd went away: every call fails -ENOTCONN.  With restart_after_ms,
 * it comes back that long later (ensure_connected then reopens). */
void fake_hv_lose_connection(unsigned restart_after_ms);

/* What "versions" answers until fake_hv_reset(): the rig's QEMU 7.2.0 and
 * libvirt 9.0.0 (Debian 12) by default. */
#define FAKE_HV_QEMU_VERSION    7002000UL
#define FAKE_HV_LIBVIRT_VERSION 9000000UL
void fake_hv_set_versions(unsigned long hypervisor, unsigned long libvirt);

/* The flags of the last migrate call of uuid (false when none). */
bool fake_hv_last_params(const char *uuid, struct wk_hv_migrate_params *ret);

#endif
