/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_error: the one table from -errno to the exception a nova client
 * rebuilds (STYLE.md 3.7).  Pure; any thread.
 */
#ifndef RPC_ERROR_H
#define RPC_ERROR_H

/* The nova.exception class name for r (e.g. -ENOENT -> "NotFound"). */
const char *rpc_error_class(int r);

/* oslo failure text for r with message (borrowed): class from the table,
 * module nova.exception, kwargs {"code": <http code>, "reason": message}.
 * Caller frees; NULL on ENOMEM. */
char *rpc_error_failure(int r, const char *message);

#endif
