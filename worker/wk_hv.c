/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv: the facade over a backend table (wk_hv_backend.h).  It only
 * forwards; every backend keeps its own state in priv.
 */
#include "wk_hv.h"

#include <errno.h>
#include <stdlib.h>

#include "wk_hv_backend.h"

struct wk_hv {
	const struct wk_hv_ops *ops;
	void *priv;
};

int
wk_hv_open(const struct wk_hv_ops *ops, const char *uri, wk_hv **ret_hv, struct wk_err *reterr)
{
	wk_hv *hv = calloc(1, sizeof(*hv));
	int r;

	if (hv == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	hv->ops = ops;
	r = ops->open(uri, &hv->priv, reterr);
	if (r < 0) {
		free(hv);
		return r;
	}
	*ret_hv = hv;
	return 0;
}

wk_hv *
wk_hv_close(wk_hv *hv)
{
	if (hv == NULL)
		return NULL;
	hv->ops->close(hv->priv);
	free(hv);
	return NULL;
}

const char *
wk_hv_backend_name(const wk_hv *hv)
{
	return hv->ops->name;
}

int
wk_hv_domain_info(
    wk_hv *hv, const char *uuid, struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	return hv->ops->domain_info(hv->priv, uuid, ret_info, reterr);
}

int
wk_hv_remote_domain_info(wk_hv *hv, const char *remote_uri, const char *uuid,
    struct wk_hv_domain_info *ret_info, struct wk_err *reterr)
{
	if (hv->ops->remote_domain_info == NULL)
		return wk_err_set(
		    reterr, -EOPNOTSUPP, "%s: no remote domain lookup", hv->ops->name);
	return hv->ops->remote_domain_info(hv->priv, remote_uri, uuid, ret_info, reterr);
}

int
wk_hv_ensure_connected(wk_hv *hv, struct wk_err *reterr)
{
	if (hv->ops->ensure_connected == NULL)
		return 0;
	return hv->ops->ensure_connected(hv->priv, reterr);
}

int
wk_hv_migrate(wk_hv *hv, const struct wk_hv_migrate_params *p, struct wk_err *reterr)
{
	return hv->ops->migrate(hv->priv, p, reterr);
}

int
wk_hv_job_stats(
    wk_hv *hv, const char *uuid, struct wk_job_sample *ret_sample, struct wk_err *reterr)
{
	return hv->ops->job_stats(hv->priv, uuid, ret_sample, reterr);
}

int
wk_hv_abort(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return hv->ops->abort(hv->priv, uuid, reterr);
}

int
wk_hv_start_postcopy(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return hv->ops->start_postcopy(hv->priv, uuid, reterr);
}

int
wk_hv_suspend(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return hv->ops->suspend(hv->priv, uuid, reterr);
}

int
wk_hv_resume(wk_hv *hv, const char *uuid, struct wk_err *reterr)
{
	return hv->ops->resume(hv->priv, uuid, reterr);
}

int
wk_hv_set_max_downtime(wk_hv *hv, const char *uuid, unsigned long long ms, struct wk_err *reterr)
{
	return hv->ops->set_max_downtime(hv->priv, uuid, ms, reterr);
}

int
wk_hv_set_max_speed(wk_hv *hv, const char *uuid, unsigned long long mib_s, struct wk_err *reterr)
{
	return hv->ops->set_max_speed(hv->priv, uuid, mib_s, reterr);
}
