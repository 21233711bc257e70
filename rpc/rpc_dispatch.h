/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_dispatch: method + version negotiation with oslo's dispatcher rules
 * (oslo_messaging/rpc/dispatcher.py, utils.version_is_compatible) over a
 * caller-owned constant table.  Pure, no globals, never logs; any thread.
 */
#ifndef RPC_DISPATCH_H
#define RPC_DISPATCH_H

#include <stddef.h>

#include "rpc_err.h"

/* One exposed method of one endpoint.  All of the table is borrowed. */
struct rpc_method {
	const char *name;
	const char *namespace; /* NULL = the default namespace */
	int major;             /* endpoint target version major, e.g. 6 */
	int minor;             /* endpoint's highest minor, e.g. 1 for 6.1; 13 for 5.13 */
	int id;                /* opaque to rpc/, the caller's handler index */
};

/*
 * Parses an RPC version "M.m" (decimal digits only, each part at most 9
 * digits).  Returns 0 and writes both parts, or -EINVAL.
 */
int rpc_version_parse(const char *version, int *ret_major, int *ret_minor);

/*
 * Finds the entry for @method at @version (NULL = "1.0", as oslo) in
 * @namespace (NULL = default).  Entries with equal (namespace, major, minor)
 * form one oslo endpoint.  An entry is compatible when its namespace equals
 * @namespace, its major equals the requested major and the requested minor
 * is <= its minor.  The first compatible entry named @method wins.  Failing
 * that, exactly as oslo decides:
 *   - some entry (of any name) is compatible -> -ENOENT, NoSuchMethod
 *     (also when @method exists, but only in endpoints of another version);
 *   - no entry at all is compatible           -> -EPROTONOSUPPORT,
 *     UnsupportedVersion (also for an unknown method at such a version);
 *   - @version is not "M.m"                    -> -EINVAL.
 * @reterr then holds oslo's own exception message.  On success *ret points
 * into @table.  Returns 0 or -errno.
 */
int rpc_dispatch_lookup(const struct rpc_method *table, size_t n, const char *method,
    const char *version, const char *namespace, const struct rpc_method **ret,
    struct rpc_err *reterr);

#endif /* RPC_DISPATCH_H */
