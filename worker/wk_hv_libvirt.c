/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv_libvirt: the libvirt backend of wk_hv.  Non-logging: libvirt's own
 * error printing is silenced and its last error (thread-local in libvirt) is
 * turned into -errno plus reterr text at this edge.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "wk_hv.h"
#include "wk_hv_backend.h"

/* One priv per wk_hv.  conn is replaced when libvirtd restarted: every
 * call holds lock for reading while it uses conn, the reconnect holds it
 * for writing. */
struct lv {
	pthread_rwlock_t lock;
	virConnectPtr conn;
	char *uri;
};

static void
silent_error_handler(void *userdata, virErrorPtr err)
{
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init_libvirt(void)
{
	virInitialize();
	virSetErrorFunc(NULL, silent_error_handler);
}

/* Maps libvirt's last error on this thread to -errno and describes it. */
static int
last_error(const char *what, struct wk_err *reterr)
{
	virErrorPtr e = virGetLastError();
	int r;

	if (e == NULL)
		return wk_err_set(reterr, -EIO, "%s failed", what);
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
		r = -ENOENT;
		break;
	case VIR_ERR_OPERATION_INVALID:
		r = -EBUSY;
		break;
	case VIR_ERR_OPERATION_ABORTED:
		r = -ECANCELED;
		break;
	case VIR_ERR_OPERATION_TIMEOUT:
		r = -ETIMEDOUT;
		break;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_OPERATION_UNSUPPORTED:
		r = -EOPNOTSUPP;
		break;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_AUTH_FAILED:
		r = -EHOSTUNREACH;
		break;
	case VIR_ERR_SYSTEM_ERROR:
		r = e->domain == VIR_FROM_RPC ? -EHOSTUNREACH : -EIO;
		break;
	default:
		r = -EIO;
		break;
	}
	wk_err_set(reterr, r, "%s: %s", what, e->message ? e->message : "unknown libvirt error");
	virResetLastError();
	return r;
}

static int
lv_open(const char *uri, void **ret_priv, struct wk_err *reterr)
{
	struct lv *lv;

	pthread_once(&init_once, init_libvirt);
	lv = calloc(1, sizeof(*lv));
	if (lv == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	lv->uri = strdup(uri);
	if (lv->uri == NULL) {
		free(lv);
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	}
	lv->conn = virConnectOpen(uri);
	if (lv->conn == NULL) {
		int r = last_error("connect to libvirt", reterr);

		free(lv->uri);
		free(lv);
		return r;
	}
	pthread_rwlock_init(&lv->lock, NULL);
	*ret_priv = lv;
	return 0;
}

static void
lv_close(void *priv)
{
	struct lv *lv = priv;

	if (lv->conn != NULL)
		virConnectClose(lv->conn);
	pthread_rwlock_destroy(&lv->lock);
	free(lv->uri);
	free(lv);
}

/* libvirt 9.0 reports a dead daemon as "End of file while reading data" or
 * "client socket is closed", with several error codes: the connection's
 * liveness is the reliable sign. */
static int
conn_error(virConnectPtr conn, const char *what, struct wk_err *reterr)
{
	int r = last_error(what, reterr);

	if (virConnectIsAlive(conn) == 0)
		r = -ENOTCONN;
	return r;
}

static int
lv_ensure_connected(void *priv, struct wk_err *reterr)
{
	struct lv *lv = priv;
	virConnectPtr fresh;

	pthread_rwlock_rdlock(&lv->lock);
	if (virConnectIsAlive(lv->conn) == 1) {
		pthread_rwlock_unlock(&lv->lock);
		return 0;
	}
	pthread_rwlock_unlock(&lv->lock);
	fresh = virConnectOpen(lv->uri);
	if (fresh == NULL) {
		int r = last_error("reconnect to libvirt", reterr);

		return r == -EIO ? -ENOTCONN : r;
	}
	pthread_rwlock_wrlock(&lv->lock);
	virConnectClose(lv->conn);
	lv->conn = fresh;
	pthread_rwlock_unlock(&lv->lock);
	return 1;
}

static int
lookup_on(virConnectPtr conn, const char *uuid, virDomainPtr *ret_dom, struct wk_err *reterr)
{
	virDomainPtr dom = virDomainLookupByUUIDString(conn, uuid);

	if (dom == NULL)
		return conn_error(conn, "find domain", reterr);
	*ret_dom = dom;
	return 0;
}

static enum wk_hv_reason
reason_of(int state, int reason)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		switch (reason) {
		case VIR_DOMAIN_RUNNING_MIGRATION_CANCELED:
		case VIR_DOMAIN_RUNNING_MIGRATED:
			return WK_HV_REASON_OTHER;
		case VIR_DOMAIN_RUNNING_POSTCOPY:
			return WK_HV_REASON_POSTCOPY;
		case VIR_DOMAIN_RUNNING_POSTCOPY_FAILED:
			return WK_HV_REASON_POSTCOPY_FAILED;
		}
		return WK_HV_REASON_OTHER;
	case VIR_DOMAIN_PAUSED:
		switch (reason) {
		case VIR_DOMAIN_PAUSED_MIGRATION:
			return WK_HV_REASON_MIGRATING;
		case VIR_DOMAIN_PAUSED_POSTCOPY:
			return WK_HV_REASON_POSTCOPY;
		case VIR_DOMAIN_PAUSED_POSTCOPY_FAILED:
			return WK_HV_REASON_POSTCOPY_FAILED;
		}
		return WK_HV_REASON_OTHER;
	}
	return WK_HV_REASON_OTHER;
}

static int
info_on(
    virConnectPtr conn, const char *uuid, struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	virDomainPtr dom = NULL;
	virDomainInfo info;
	int persistent, state = 0, reason = 0;
	int r;

	r = lookup_on(conn, uuid, &dom, reterr);
	if (r < 0)
		return r;
	if (virDomainGetInfo(dom, &info) < 0 || virDomainGetState(dom, &state, &reason, 0) < 0) {
		r = conn_error(conn, "get domain info", reterr);
		goto out;
	}
	persistent = virDomainIsPersistent(dom);
	if (persistent < 0) {
		r = conn_error(conn, "get domain persistence", reterr);
		goto out;
	}
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		ret_info->state = WK_HV_STATE_RUNNING;
		break;
	case VIR_DOMAIN_PAUSED:
		ret_info->state = WK_HV_STATE_PAUSED;
		break;
	case VIR_DOMAIN_SHUTOFF:
		ret_info->state = WK_HV_STATE_SHUTOFF;
		break;
	default:
		ret_info->state = WK_HV_STATE_OTHER;
		break;
	}
	ret_info->reason = reason_of(state, reason);
	ret_info->persistent = persistent == 1;
	ret_info->memory_kib = info.memory;
out:
	virDomainFree(dom);
	return r;
}

static int
lv_domain_info(
    void *priv, const char *uuid, struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	struct lv *lv = priv;
	int r;

	pthread_rwlock_rdlock(&lv->lock);
	r = info_on(lv->conn, uuid, ret_info, reterr);
	pthread_rwlock_unlock(&lv->lock);
	return r;
}

static int
lv_remote_domain_info(void *priv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	virConnectPtr conn = virConnectOpen(remote_uri);
	int r;

	(void)priv;
	if (conn == NULL)
		return last_error("connect to the other host's libvirt", reterr);
	r = info_on(conn, uuid, ret_info, reterr);
	virConnectClose(conn);
	return r;
}

/* VIR_MIGRATE_PARAM_COMPRESSION_ZSTD_LEVEL, since libvirt 9.4.0; the name
 * is spelt out so this builds against 9.0's headers (ferry only passes it
 * where the daemon is >= 9.4.0, wk_tuning_resolve). */
#ifdef VIR_MIGRATE_PARAM_COMPRESSION_ZSTD_LEVEL
#define PARAM_ZSTD_LEVEL VIR_MIGRATE_PARAM_COMPRESSION_ZSTD_LEVEL
#else
#define PARAM_ZSTD_LEVEL "compression.zstd.level"
#endif

static int
lv_versions(
    void *priv, unsigned long *ret_hypervisor, unsigned long *ret_libvirt, struct wk_err *reterr)
{
	struct lv *lv = priv;
	unsigned long hv = 0, lib = 0;
	int r = 0;

	pthread_rwlock_rdlock(&lv->lock);
	if (virConnectGetVersion(lv->conn, &hv) < 0)
		r = conn_error(lv->conn, "get the hypervisor version", reterr);
	else if (virConnectGetLibVersion(lv->conn, &lib) < 0)
		r = conn_error(lv->conn, "get the libvirt version", reterr);
	pthread_rwlock_unlock(&lv->lock);
	if (r < 0)
		return r;
	*ret_hypervisor = hv;
	*ret_libvirt = lib;
	return 0;
}

/* The migrate call blocks for the whole migration, so it gets a connection
 * of its own: libvirt 9.0's client, with no event loop registered, can leave
 * another thread's call on a shared connection unsent until the blocking
 * call returns (measured: job stats stalled for minutes).  A fresh one per
 * call also means a post-copy recovery never reuses a connection the
 * broken stream took down. */
static int
lv_migrate(void *priv, const struct wk_hv_migrate_params *p, struct wk_err *reterr)
{
	struct lv *lv = priv;
	virTypedParameterPtr params = NULL;
	virConnectPtr conn;
	virDomainPtr dom = NULL;
	int nparams = 0, maxparams = 0;
	unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
	int r;

	conn = virConnectOpen(lv->uri);
	if (conn == NULL)
		return last_error("connect to libvirt for the migration", reterr);
	r = lookup_on(conn, p->uuid, &dom, reterr);
	if (r < 0) {
		virConnectClose(conn);
		return r;
	}
	/* The flags Nova's libvirt driver uses (live_migration_flag defaults). */
	if (p->persistent)
		flags |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
	/* Only the local disks are copied, never a shared or network volume;
	 * incrementally when the destination has their backing files. */
	if (p->block_migration && p->n_migrate_disks > 0)
		flags |=
		    p->disk_incremental ? VIR_MIGRATE_NON_SHARED_INC : VIR_MIGRATE_NON_SHARED_DISK;
	if (p->postcopy)
		flags |= VIR_MIGRATE_POSTCOPY;
	if (p->auto_converge)
		flags |= VIR_MIGRATE_AUTO_CONVERGE;
	if (p->compressed)
		flags |= VIR_MIGRATE_COMPRESSED;
	if (p->parallel_connections > 0)
		flags |= VIR_MIGRATE_PARALLEL;
	if (p->zstd && p->parallel_connections > 0)
		flags |= VIR_MIGRATE_COMPRESSED;
	if (p->zero_copy)
		flags |= VIR_MIGRATE_ZEROCOPY;
	if (p->postcopy_resume)
		flags |= VIR_MIGRATE_POSTCOPY_RESUME;
	if (p->tls)
		flags |= VIR_MIGRATE_TLS;

	if ((p->migrate_uri != NULL && virTypedParamsAddString(&params, &nparams, &maxparams,
	                                   VIR_MIGRATE_PARAM_URI, p->migrate_uri) < 0) ||
	    (p->bandwidth_mib_s > 0 && virTypedParamsAddULLong(&params, &nparams, &maxparams,
	                                   VIR_MIGRATE_PARAM_BANDWIDTH, p->bandwidth_mib_s) < 0) ||
	    (p->postcopy && p->postcopy_bandwidth_mib_s > 0 &&
	        virTypedParamsAddULLong(&params, &nparams, &maxparams,
	            VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY, p->postcopy_bandwidth_mib_s) < 0) ||
	    (p->parallel_connections > 0 &&
	        virTypedParamsAddInt(&params, &nparams, &maxparams,
	            VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, p->parallel_connections) < 0) ||
	    (p->zstd && p->parallel_connections > 0 &&
	        virTypedParamsAddString(
	            &params, &nparams, &maxparams, VIR_MIGRATE_PARAM_COMPRESSION, "zstd") < 0) ||
	    (p->zstd && p->parallel_connections > 0 && p->zstd_level >= 0 &&
	        virTypedParamsAddInt(
	            &params, &nparams, &maxparams, PARAM_ZSTD_LEVEL, p->zstd_level) < 0) ||
	    (p->tls && p->tls_destination != NULL &&
	        virTypedParamsAddString(&params, &nparams, &maxparams,
	            VIR_MIGRATE_PARAM_TLS_DESTINATION, p->tls_destination) < 0)) {
		r = last_error("build migration parameters", reterr);
		goto out;
	}
	for (int i = 0; p->block_migration && i < p->n_migrate_disks; i++)
		if (virTypedParamsAddString(&params, &nparams, &maxparams,
		        VIR_MIGRATE_PARAM_MIGRATE_DISKS, p->migrate_disks[i]) < 0) {
			r = last_error("build migration parameters", reterr);
			goto out;
		}
	if (virDomainMigrateToURI3(dom, p->dest_uri, params, (unsigned int)nparams, flags) < 0)
		r = last_error("migrate", reterr);
out:
	virTypedParamsFree(params, nparams);
	virDomainFree(dom);
	virConnectClose(conn);
	return r;
}

static long long
param_ull(virTypedParameterPtr params, int n, const char *name)
{
	unsigned long long v;

	if (virTypedParamsGetULLong(params, n, name, &v) == 1)
		return (long long)v;
	return -1;
}

static int
stats_on(
    virConnectPtr conn, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr)
{
	virTypedParameterPtr params = NULL;
	virDomainPtr dom = NULL;
	struct wk_job_sample s;
	int n = 0, type = 0, iv;
	int r;

	r = lookup_on(conn, uuid, &dom, reterr);
	if (r < 0)
		return r;
	if (virDomainGetJobStats(dom, &type, &params, &n, 0) < 0) {
		r = conn_error(conn, "get job stats", reterr);
		goto out;
	}
	memset(&s, 0, sizeof(s));
	s.t_ms = wk_now_ms();
	s.type = type;
	s.memory_total = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_TOTAL);
	s.memory_processed = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED);
	s.memory_remaining = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_REMAINING);
	s.data_total = param_ull(params, n, VIR_DOMAIN_JOB_DATA_TOTAL);
	s.data_processed = param_ull(params, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
	s.data_remaining = param_ull(params, n, VIR_DOMAIN_JOB_DATA_REMAINING);
	s.disk_total = param_ull(params, n, VIR_DOMAIN_JOB_DISK_TOTAL);
	s.disk_processed = param_ull(params, n, VIR_DOMAIN_JOB_DISK_PROCESSED);
	s.disk_remaining = param_ull(params, n, VIR_DOMAIN_JOB_DISK_REMAINING);
	s.memory_dirty_rate = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE);
	s.memory_page_size = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
	s.memory_bps = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_BPS);
	s.memory_iteration = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
	s.time_elapsed_ms = param_ull(params, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
	s.downtime_ms = param_ull(params, n, VIR_DOMAIN_JOB_DOWNTIME);
	s.setup_time_ms = param_ull(params, n, VIR_DOMAIN_JOB_SETUP_TIME);
	s.memory_postcopy_requests = param_ull(params, n, VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS);
	s.auto_converge_throttle = -1;
	if (virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE, &iv) == 1)
		s.auto_converge_throttle = iv;
	*ret_sample = s;
out:
	virTypedParamsFree(params, n);
	virDomainFree(dom);
	return r;
}

static int
lv_job_stats(void *priv, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr)
{
	struct lv *lv = priv;
	int r;

	pthread_rwlock_rdlock(&lv->lock);
	r = stats_on(lv->conn, uuid, ret_sample, reterr);
	pthread_rwlock_unlock(&lv->lock);
	return r;
}

/* One domain operation on the shared connection, with the lookup and the
 * error mapping around it. */
#define DOMAIN_OP(what, call)                                           \
	do {                                                            \
		struct lv *lv = priv;                                   \
		virDomainPtr dom = NULL;                                \
		int r;                                                  \
		pthread_rwlock_rdlock(&lv->lock);                       \
		r = lookup_on(lv->conn, uuid, &dom, reterr);            \
		if (r == 0) {                                           \
			if ((call) < 0)                                 \
				r = conn_error(lv->conn, what, reterr); \
			virDomainFree(dom);                             \
		}                                                       \
		pthread_rwlock_unlock(&lv->lock);                       \
		return r;                                               \
	} while (0)

static int
lv_abort(void *priv, const char *uuid, struct wk_err *reterr)
{
	DOMAIN_OP("abort migration", virDomainAbortJob(dom));
}

static int
lv_start_postcopy(void *priv, const char *uuid, struct wk_err *reterr)
{
	DOMAIN_OP("switch to post-copy", virDomainMigrateStartPostCopy(dom, 0));
}

static int
lv_suspend(void *priv, const char *uuid, struct wk_err *reterr)
{
	DOMAIN_OP("pause domain", virDomainSuspend(dom));
}

static int
lv_resume(void *priv, const char *uuid, struct wk_err *reterr)
{
	DOMAIN_OP("resume domain", virDomainResume(dom));
}

static int
lv_set_max_downtime(void *priv, const char *uuid, unsigned long long ms, struct wk_err *reterr)
{
	DOMAIN_OP("set max downtime", virDomainMigrateSetMaxDowntime(dom, ms, 0));
}

/* libvirt's "unlimited" pre-copy speed: the largest it accepts, INT64_MAX
 * bytes/s in MiB/s (QEMU_DOMAIN_MIG_BANDWIDTH_MAX; ULONG_MAX where long is
 * 32 bits).  libvirt starts every domain with it, and virsh migrate-getspeed
 * shows it (8796093022207) for a domain never capped.  0 is not used: QEMU
 * 7.2 would take max-bandwidth 0 as "no rate limit" too, but libvirt's
 * value is what its own default means. */
#if ULONG_MAX < INT64_MAX / 1048576
#define LV_SPEED_UNLIMITED ULONG_MAX
#else
#define LV_SPEED_UNLIMITED ((unsigned long)(INT64_MAX / 1048576))
#endif

static int
lv_set_max_speed(
    void *priv, const char *uuid, unsigned long long mib_s, bool postcopy, struct wk_err *reterr)
{
	unsigned long v = mib_s > ULONG_MAX ? ULONG_MAX : (unsigned long)mib_s;

	/* Post-copy keeps 0: QEMU documents max-postcopy-bandwidth 0 as unlimited. */
	if (mib_s == 0 && !postcopy)
		v = LV_SPEED_UNLIMITED;
	DOMAIN_OP(postcopy ? "set post-copy max speed" : "set max speed",
	    virDomainMigrateSetMaxSpeed(
	        dom, v, postcopy ? VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY : 0));
}

static int
local_disks_on(virConnectPtr conn, const char *uuid, const char *instances_path,
    struct wk_disk_list **ret_list, struct wk_err *reterr)
{
	struct wk_disk_list *l = NULL;
	virDomainPtr dom = NULL;
	char *xml = NULL;
	int r;

	r = lookup_on(conn, uuid, &dom, reterr);
	if (r < 0)
		return r;
	xml = virDomainGetXMLDesc(dom, 0);
	if (xml == NULL) {
		r = conn_error(conn, "get the domain XML", reterr);
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		r = wk_err_set(reterr, -ENOMEM, "out of memory");
		goto out;
	}
	r = wk_disk_from_domain_xml(xml, instances_path, l, reterr);
	for (int i = 0; r == 0 && i < l->n; i++) {
		virDomainBlockInfo bi;

		if (virDomainGetBlockInfo(dom, l->disk[i].target, &bi, 0) < 0) {
			r = conn_error(conn, "get block info", reterr);
			break;
		}
		l->disk[i].virt_disk_size = (long long)bi.capacity;
		l->disk[i].disk_size = (long long)bi.allocation;
	}
	if (r == 0) {
		*ret_list = l;
		l = NULL;
	}
out:
	free(l);
	free(xml);
	virDomainFree(dom);
	return r;
}

static int
lv_local_disks(void *priv, const char *uuid, const char *instances_path,
    struct wk_disk_list **ret_list, struct wk_err *reterr)
{
	struct lv *lv = priv;
	int r;

	pthread_rwlock_rdlock(&lv->lock);
	r = local_disks_on(lv->conn, uuid, instances_path, ret_list, reterr);
	pthread_rwlock_unlock(&lv->lock);
	return r;
}

const struct wk_hv_ops wk_hv_libvirt_ops = {
    .name = "libvirt",
    .open = lv_open,
    .close = lv_close,
    .domain_info = lv_domain_info,
    .migrate = lv_migrate,
    .job_stats = lv_job_stats,
    .abort = lv_abort,
    .start_postcopy = lv_start_postcopy,
    .suspend = lv_suspend,
    .resume = lv_resume,
    .set_max_downtime = lv_set_max_downtime,
    .set_max_speed = lv_set_max_speed,
    .remote_domain_info = lv_remote_domain_info,
    .ensure_connected = lv_ensure_connected,
    .versions = lv_versions,
    .local_disks = lv_local_disks,
};
