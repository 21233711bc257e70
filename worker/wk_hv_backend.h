/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv_backend: the table a hypervisor backend implements behind wk_hv.h
 * (as libvirt's own drivers and rabbitmq-c's socket classes are built).
 * For backend implementers and tests only; the daemon calls wk_hv_*().
 *
 * Implemented by wk_hv_libvirt.c (the only file with <libvirt/libvirt.h>)
 * and tests/support/fake_hv.c (scripted, for unit tests).  Every callback
 * returns 0 or -errno with reterr, with the errno meanings of wk_hv.h, and
 * must be safe to call from any thread on the same priv.
 */
#ifndef WK_HV_BACKEND_H
#define WK_HV_BACKEND_H

#include "wk_hv.h"

struct wk_hv_ops {
	const char *name; /* "libvirt", "fake" */

	/* Mandatory. */
	int (*open)(const char *uri, void **ret_priv, struct wk_err *reterr);
	void (*close)(void *priv);
	int (*domain_info)(void *priv, const char *uuid, struct wk_hv_domain_info *ret_info,
	    struct wk_err *reterr);
	/* Blocks for the whole migration; called on a migration's own thread. */
	int (*migrate)(void *priv, const struct wk_hv_migrate_params *p, struct wk_err *reterr);
	int (*job_stats)(
	    void *priv, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr);
	int (*abort)(void *priv, const char *uuid, struct wk_err *reterr);
	int (*start_postcopy)(void *priv, const char *uuid, struct wk_err *reterr);
	int (*suspend)(void *priv, const char *uuid, struct wk_err *reterr);
	int (*resume)(void *priv, const char *uuid, struct wk_err *reterr);
	int (*set_max_downtime)(
	    void *priv, const char *uuid, unsigned long long ms, struct wk_err *reterr);
	/* mib_s 0 = unlimited; postcopy: the post-copy cap (see wk_hv_set_max_speed) */
	int (*set_max_speed)(void *priv, const char *uuid, unsigned long long mib_s, bool postcopy,
	    struct wk_err *reterr);

	/* Optional: NULL makes the wk_hv_* wrapper return -EOPNOTSUPP. */
	int (*remote_domain_info)(void *priv, const char *remote_uri, const char *uuid,
	    struct wk_hv_domain_info *ret_info, struct wk_err *reterr);
	/* Optional: closes the connection kept to remote_uri
	 * (wk_hv_remote_forget): 1 when one was kept, else 0. */
	int (*remote_forget)(void *priv, const char *remote_uri);
	/* Whether the connection still works; reopens it when it does not
	 * (libvirtd restarted).  Returns 0 when usable, 1 when it was reopened. */
	int (*ensure_connected)(void *priv, struct wk_err *reterr);
	/* QEMU's and the libvirt daemon's versions (wk_hv_versions). */
	int (*versions)(void *priv, unsigned long *ret_hypervisor, unsigned long *ret_libvirt,
	    struct wk_err *reterr);
	/* The domain's local disks (see wk_hv_local_disks); *ret_list is new. */
	int (*local_disks)(void *priv, const char *uuid, const char *instances_path,
	    struct wk_disk_list **ret_list, struct wk_err *reterr);
};

extern const struct wk_hv_ops wk_hv_libvirt_ops;

#endif /* WK_HV_BACKEND_H */
