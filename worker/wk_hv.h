/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv: the hypervisor facade.  A backend table (wk_hv_backend.h) does the
 * work: libvirt in wk_hv_libvirt.c (the only file that includes
 * <libvirt/libvirt.h>), a scripted fake in tests/support/fake_hv.c.
 *
 * One wk_hv wraps one hypervisor connection, shared by the main thread and
 * the watch threads; every call here is safe from any thread.
 * wk_hv_migrate, which blocks for a whole migration, opens a connection of
 * its own for each call.  Domains are named by UUID, because Nova creates
 * each domain with libvirt UUID = instance uuid.
 * libvirt errors become -errno here: -ENOENT no such domain, -EBUSY another
 * job is running, -ECANCELED aborted, -EHOSTUNREACH cannot reach the
 * destination, -EOPNOTSUPP unsupported, -ETIMEDOUT no answer in time (a
 * bounded call, see wk_hv_bound_calls), -ENOTCONN the connection to the
 * hypervisor is lost (libvirtd restarted), -EIO anything else; the libvirt
 * message goes into reterr.
 */
#ifndef WK_HV_H
#define WK_HV_H

#include <stdbool.h>
#include <stdint.h>

#include "wk_disk.h"
#include "wk_progress.h"
#include "wk_util.h"

typedef struct wk_hv wk_hv;
struct wk_hv_ops;

enum wk_hv_state {
	WK_HV_STATE_OTHER,
	WK_HV_STATE_RUNNING,
	WK_HV_STATE_PAUSED,
	WK_HV_STATE_SHUTOFF,
};

/* Why the domain is in its state, where it matters to a migration. */
enum wk_hv_reason {
	WK_HV_REASON_OTHER,
	WK_HV_REASON_MIGRATING,       /* paused or running for an ongoing migration */
	WK_HV_REASON_POSTCOPY,        /* running or paused in the post-copy phase */
	WK_HV_REASON_POSTCOPY_FAILED, /* post-copy stream broke: memory split over two hosts */
};

struct wk_hv_domain_info {
	enum wk_hv_state state;
	enum wk_hv_reason reason;
	bool persistent;
	unsigned long long memory_kib;
	/* wk_hv_remote_domain_info: the connection kept to the other host was
	 * dead (its libvirtd restarted), so this was read on a fresh one */
	bool reconnected;
};

/* Everything one migration needs; strings borrowed for the call. */
struct wk_hv_migrate_params {
	const char *uuid;
	const char *dest_uri;    /* libvirt URI of the destination, qemu+tcp://addr/system */
	const char *migrate_uri; /* QEMU stream target, tcp://addr; NULL = libvirt picks */
	unsigned long long bandwidth_mib_s; /* 0 = unlimited */
	/* post-copy's own cap (VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY), passed
	 * with postcopy only; 0 = not passed: QEMU's default, unlimited */
	unsigned long long postcopy_bandwidth_mib_s;
	bool block_migration;             /* copy the local disks below: */
	const char *const *migrate_disks; /* their target devs (VIR_MIGRATE_PARAM_MIGRATE_DISKS) */
	int n_migrate_disks;              /* 0: no local disk, nothing copied */
	bool disk_incremental; /* NON_SHARED_INC (destination has the backing files), else _DISK */
	bool persistent;       /* define on destination, undefine on source (Nova) */
	bool postcopy;         /* allow a later switch to post-copy */
	bool auto_converge;
	bool compressed;          /* XBZRLE (libvirt's default method) */
	int parallel_connections; /* 0 = off */
	bool zstd;                /* multifd compression zstd (needs parallel_connections) */
	int zstd_level;           /* with zstd; < 0 = QEMU's default */
	bool zero_copy;           /* VIR_MIGRATE_ZEROCOPY (needs parallel_connections) */
	bool postcopy_resume;     /* recover a broken post-copy migration */
	bool tls;                 /* VIR_MIGRATE_TLS: QEMU's native TLS on the stream */
	/* VIR_MIGRATE_PARAM_TLS_DESTINATION: the name the destination's
	 * certificate carries when migrate_uri's address is not it; NULL = that
	 * address */
	const char *tls_destination;
};

/* Opens uri (e.g. qemu:///system) with backend ops (borrowed, static).
 * Returns 0 or -errno with reterr. */
int wk_hv_open(const struct wk_hv_ops *ops, const char *uri, wk_hv **ret_hv, struct wk_err *reterr);

/* From now on, calls made by the calling thread (the main thread) run on
 * an executor thread and fail with -ETIMEDOUT when the backend has not
 * answered within timeout_ms; while such a call is still stuck, the next
 * ones fail at once.  Other threads' calls are not bounded.  0 or -errno. */
int wk_hv_bound_calls(wk_hv *hv, unsigned timeout_ms);

/* "libvirt", "fake". */
const char *wk_hv_backend_name(const wk_hv *hv);

/* Closes; NULL-safe, returns NULL.  No call may be in flight. */
wk_hv *wk_hv_close(wk_hv *hv);

/* Looks up the domain; -ENOENT when it does not exist on this host. */
int wk_hv_domain_info(
    wk_hv *hv, const char *uuid, struct wk_hv_domain_info *ret_info, struct wk_err *reterr);

/* Looks the domain up on another host's hypervisor (remote_uri, the
 * destination URI the migration uses): how an outcome is read from both
 * hosts.  -ENOENT: not there.  The connection is kept open for the next
 * call (closed by wk_hv_close); when the kept one turns out dead (the
 * other libvirtd restarted), the call is made once more on a fresh one and
 * ret_info->reconnected says so.  Any thread. */
int wk_hv_remote_domain_info(wk_hv *hv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret_info, struct wk_err *reterr);

/* Closes the connection kept to another host's hypervisor (remote_uri, as
 * for wk_hv_remote_domain_info), so the next call opens a fresh one.
 * Returns 1 when one was kept, 0 when none was (or the backend keeps none). */
int wk_hv_remote_forget(wk_hv *hv, const char *remote_uri);

/* The hypervisor's version (QEMU's, virConnectGetVersion) and the libvirt
 * daemon's (virConnectGetLibVersion), both major * 1000000 + minor * 1000 +
 * micro.  -EOPNOTSUPP when the backend cannot tell. */
int wk_hv_versions(
    wk_hv *hv, unsigned long *ret_hypervisor, unsigned long *ret_libvirt, struct wk_err *reterr);

/* Checks the connection and reopens it when it was lost (libvirtd
 * restarted).  Returns 0 when it works, 1 when it was reopened, -errno
 * when it cannot be reopened now. */
int wk_hv_ensure_connected(wk_hv *hv, struct wk_err *reterr);

/* The local disks of the domain (wk_disk_from_domain_xml on its live XML)
 * with their sizes (capacity and allocation from libvirt's block info), as
 * a new list the caller frees.  -EOPNOTSUPP when the backend cannot say. */
int wk_hv_local_disks(wk_hv *hv, const char *uuid, const char *instances_path,
    struct wk_disk_list **ret_list, struct wk_err *reterr);

/* Runs the whole migration (virDomainMigrateToURI3, peer-to-peer) and
 * blocks until it ends.  Call it on a migration's own thread. */
int wk_hv_migrate(wk_hv *hv, const struct wk_hv_migrate_params *p, struct wk_err *reterr);

/* Current job statistics of the domain's outgoing migration. */
int wk_hv_job_stats(
    wk_hv *hv, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr);

int wk_hv_abort(wk_hv *hv, const char *uuid, struct wk_err *reterr);
int wk_hv_start_postcopy(wk_hv *hv, const char *uuid, struct wk_err *reterr);
int wk_hv_suspend(wk_hv *hv, const char *uuid, struct wk_err *reterr);
int wk_hv_resume(wk_hv *hv, const char *uuid, struct wk_err *reterr);
int wk_hv_set_max_downtime(
    wk_hv *hv, const char *uuid, unsigned long long ms, struct wk_err *reterr);
/* Caps the running migration of uuid at mib_s MiB/s, 0 = unlimited
 * (virDomainMigrateSetMaxSpeed; libvirt's own "unlimited" is its maximum,
 * INT64_MAX bytes/s in MiB/s, what virsh migrate-getspeed shows for a
 * domain never capped).  postcopy: the post-copy phase's cap instead
 * (VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY; QEMU's max-postcopy-bandwidth,
 * where 0 is unlimited).  Either may be set in either phase; QEMU applies
 * the one of the phase it is in. */
int wk_hv_set_max_speed(
    wk_hv *hv, const char *uuid, unsigned long long mib_s, bool postcopy, struct wk_err *reterr);

#endif
