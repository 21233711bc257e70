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
#include "wk_hv_libvirt_priv.h"

/* Connections to other hosts' libvirtd kept open (by URI) for the next
 * remote_domain_info: opening one cost 7-72 ms at every migration's end
 * (measured on the rig).  A rig or a cell migrates to a few destinations
 * at a time; a URI beyond these is opened and closed per call as before. */
#define REMOTE_KEPT_MAX 8

struct remote {
	char *uri;
	virConnectPtr conn;
};

/* One priv per wk_hv.  conn is replaced when libvirtd restarted: every
 * call holds lock for reading while it uses conn, the reconnect holds it
 * for writing.  remote_lock guards remote[]; a call takes its connection
 * out of remote[] and puts it back after, so no two threads ever share
 * one (see lv_migrate's comment for why) and the lock is never held over
 * a call to the other host. */
struct lv {
	pthread_rwlock_t lock;
	virConnectPtr conn;
	char *uri;
	pthread_mutex_t remote_lock;
	struct remote remote[REMOTE_KEPT_MAX];
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
	pthread_mutex_init(&lv->remote_lock, NULL);
	*ret_priv = lv;
	return 0;
}

static void
lv_close(void *priv)
{
	struct lv *lv = priv;

	for (int i = 0; i < REMOTE_KEPT_MAX; i++) {
		if (lv->remote[i].conn != NULL)
			virConnectClose(lv->remote[i].conn);
		free(lv->remote[i].uri);
	}
	pthread_mutex_destroy(&lv->remote_lock);
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

bool
wk_hv_libvirt_conn_dead(int code, int domain, const char *message, int alive)
{
	/* The other daemon answered: the connection works. */
	if (code == VIR_ERR_NO_DOMAIN)
		return false;
	if (alive == 0)
		return true;
	/* Errors of libvirt's RPC layer are the client's own: the socket or the
	 * stream under the call failed, not the daemon's handling of it. */
	if (domain == VIR_FROM_RPC || code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_NO_CONNECT ||
	    code == VIR_ERR_INVALID_CONN)
		return true;
	return message != NULL && (strstr(message, "client socket is closed") != NULL ||
	                              strstr(message, "End of file") != NULL);
}

/* conn_error, and whether the connection is dead (wk_hv_libvirt_conn_dead)
 * into *ret_dead when ret_dead is not NULL.  The error is read before
 * virConnectIsAlive, which resets it. */
static int
conn_error_dead(virConnectPtr conn, const char *what, bool *ret_dead, struct wk_err *reterr)
{
	virErrorPtr e = virGetLastError();
	int code = e != NULL ? e->code : VIR_ERR_OK;
	int domain = e != NULL ? e->domain : VIR_FROM_NONE;
	char message[160] = "";
	int alive;
	int r;

	if (e != NULL && e->message != NULL)
		snprintf(message, sizeof(message), "%s", e->message);
	r = last_error(what, reterr);
	alive = virConnectIsAlive(conn);
	if (alive == 0)
		r = -ENOTCONN;
	if (ret_dead != NULL)
		*ret_dead = wk_hv_libvirt_conn_dead(code, domain, message, alive);
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

/* ret_dead: see conn_error_dead; may be NULL. */
static int
lookup_dead(virConnectPtr conn, const char *uuid, virDomainPtr *ret_dom, bool *ret_dead,
    struct wk_err *reterr)
{
	virDomainPtr dom = virDomainLookupByUUIDString(conn, uuid);

	if (dom == NULL)
		return conn_error_dead(conn, "find domain", ret_dead, reterr);
	*ret_dom = dom;
	return 0;
}

static int
lookup_on(virConnectPtr conn, const char *uuid, virDomainPtr *ret_dom, struct wk_err *reterr)
{
	return lookup_dead(conn, uuid, ret_dom, NULL, reterr);
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

/* ret_dead: on failure, whether conn is dead (conn_error_dead); may be NULL. */
static int
info_on(virConnectPtr conn, const char *uuid, struct wk_hv_domain_info *ret_info, bool *ret_dead,
    struct wk_err *reterr)
{
	virDomainPtr dom = NULL;
	virDomainInfo info;
	int persistent, state = 0, reason = 0;
	int r;

	r = lookup_dead(conn, uuid, &dom, ret_dead, reterr);
	if (r < 0)
		return r;
	if (virDomainGetInfo(dom, &info) < 0 || virDomainGetState(dom, &state, &reason, 0) < 0) {
		r = conn_error_dead(conn, "get domain info", ret_dead, reterr);
		goto out;
	}
	persistent = virDomainIsPersistent(dom);
	if (persistent < 0) {
		r = conn_error_dead(conn, "get domain persistence", ret_dead, reterr);
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
	ret_info->reconnected = false;
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
	r = info_on(lv->conn, uuid, ret_info, NULL, reterr);
	pthread_rwlock_unlock(&lv->lock);
	return r;
}

/* Takes the kept connection to uri out of lv->remote, or returns NULL. */
static virConnectPtr
remote_take(struct lv *lv, const char *uri)
{
	virConnectPtr conn = NULL;

	pthread_mutex_lock(&lv->remote_lock);
	for (int i = 0; i < REMOTE_KEPT_MAX; i++)
		if (lv->remote[i].conn != NULL && strcmp(lv->remote[i].uri, uri) == 0) {
			conn = lv->remote[i].conn;
			lv->remote[i].conn = NULL;
			break;
		}
	pthread_mutex_unlock(&lv->remote_lock);
	return conn;
}

/* Keeps conn (owned) for the next call to uri, in a free slot, else in
 * uri's own slot (another thread kept one meanwhile), else closes it. */
static void
remote_put(struct lv *lv, const char *uri, virConnectPtr conn)
{
	struct remote *free_slot = NULL, *same = NULL;
	char *copy = NULL;

	pthread_mutex_lock(&lv->remote_lock);
	for (int i = 0; i < REMOTE_KEPT_MAX; i++) {
		struct remote *s = &lv->remote[i];

		if (s->uri != NULL && strcmp(s->uri, uri) == 0) {
			same = s;
			break;
		}
		if (s->uri == NULL && free_slot == NULL)
			free_slot = s;
	}
	if (same != NULL && same->conn == NULL) {
		same->conn = conn;
		conn = NULL;
	} else if (same == NULL && free_slot != NULL && (copy = strdup(uri)) != NULL) {
		free_slot->uri = copy;
		free_slot->conn = conn;
		conn = NULL;
	}
	pthread_mutex_unlock(&lv->remote_lock);
	if (conn != NULL)
		virConnectClose(conn);
}

int
wk_hv_libvirt_remote_kept(void *priv)
{
	struct lv *lv = priv;
	int n = 0;

	pthread_mutex_lock(&lv->remote_lock);
	for (int i = 0; i < REMOTE_KEPT_MAX; i++)
		n += lv->remote[i].conn != NULL;
	pthread_mutex_unlock(&lv->remote_lock);
	return n;
}

/* Reads the domain on the other host on the connection kept for
 * remote_uri.  libvirt 9.0's client runs no keepalive without an event
 * loop (see lv_migrate), so a kept connection whose daemon restarted is
 * only found dead by the call that uses it: that call is made once more on
 * a fresh connection, and the outcome is read from what the other host
 * runs, never from the dead connection's error.  A definite answer
 * (-ENOENT: not there) keeps the connection and is not asked again. */
static int
lv_remote_domain_info(void *priv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	struct lv *lv = priv;
	struct wk_err first = {{0}};
	virConnectPtr conn = remote_take(lv, remote_uri);
	bool kept = conn != NULL, dead = false;
	int r;

	if (conn == NULL) {
		conn = virConnectOpen(remote_uri);
		if (conn == NULL)
			return last_error("connect to the other host's libvirt", reterr);
	}
	r = info_on(conn, uuid, ret_info, &dead, &first);
	if (r < 0 && dead && kept) {
		virConnectClose(conn);
		conn = virConnectOpen(remote_uri);
		if (conn == NULL) {
			r = last_error("reconnect to the other host's libvirt", reterr);
			goto dead;
		}
		r = info_on(conn, uuid, ret_info, &dead, reterr);
		if (r == 0)
			ret_info->reconnected = true;
		else if (reterr != NULL) {
			struct wk_err second = *reterr;

			wk_err_set(reterr, r,
			    "on a fresh connection (the kept one was dead: %.80s): %s", first.msg,
			    second.msg);
		}
	} else if (r < 0 && reterr != NULL) {
		*reterr = first;
	}
	if (r < 0 && dead) {
		virConnectClose(conn);
		goto dead;
	}
	remote_put(lv, remote_uri, conn);
	return r;
dead:
	/* -ENOTCONN names this host's own libvirtd (wk_hv.h). */
	return r == -ENOTCONN ? -EHOSTUNREACH : r;
}

static int
lv_remote_forget(void *priv, const char *remote_uri)
{
	virConnectPtr conn = remote_take(priv, remote_uri);

	if (conn == NULL)
		return 0;
	virConnectClose(conn);
	return 1;
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
    .remote_forget = lv_remote_forget,
    .ensure_connected = lv_ensure_connected,
    .versions = lv_versions,
    .local_disks = lv_local_disks,
};
