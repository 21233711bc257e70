/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_err: the error-detail buffer every rpc/ function may fill on failure
 * (STYLE.md 3.7).  Written only on failure; callers may pass NULL.
 */
#ifndef RPC_ERR_H
#define RPC_ERR_H

#include <stdarg.h>
#include <stdio.h>

struct rpc_err {
	char msg[256];
};

/* Formats into err->msg when err is non-NULL.  Returns r, so callers write
 * "return rpc_err_set(reterr, -EINVAL, "...", ...);". */
static inline int __attribute__((format(printf, 3, 4)))
rpc_err_set(struct rpc_err *err, int r, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return r;
}

#endif
