/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_dispatch: oslo's endpoint selection.  The precedence copies
 * RPCDispatcher.dispatch(): the method is looked up only in endpoints whose
 * namespace and version are compatible, and NoSuchMethod is raised only when
 * at least one such endpoint exists; otherwise UnsupportedVersion.
 */
#include "rpc_dispatch.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static int
parse_part(const char **pp, int *ret)
{
	const char *p = *pp;
	int v = 0;
	int n = 0;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (++n > 9)
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (n == 0)
		return -EINVAL;
	*pp = p;
	*ret = v;
	return 0;
}

int
rpc_version_parse(const char *version, int *ret_major, int *ret_minor)
{
	const char *p = version;
	int major;
	int minor;

	if (p == NULL || parse_part(&p, &major) < 0 || *p++ != '.' || parse_part(&p, &minor) < 0 ||
	    *p != '\0')
		return -EINVAL;
	*ret_major = major;
	*ret_minor = minor;
	return 0;
}

static bool
same_namespace(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
rpc_dispatch_lookup(const struct rpc_method *table, size_t n, const char *method,
    const char *version, const char *namespace, const struct rpc_method **ret,
    struct rpc_err *reterr)
{
	bool found_compatible = false;
	int major;
	int minor;
	size_t i;

	if (version == NULL)
		version = "1.0";
	if (rpc_version_parse(version, &major, &minor) < 0)
		return rpc_err_set(reterr, -EINVAL, "invalid RPC version \"%.32s\"", version);
	if (method == NULL)
		method = "";

	for (i = 0; i < n; i++) {
		const struct rpc_method *e = &table[i];

		if (!same_namespace(e->namespace, namespace) || e->major != major ||
		    minor > e->minor)
			continue;
		if (e->name != NULL && strcmp(e->name, method) == 0) {
			*ret = e;
			return 0;
		}
		found_compatible = true;
	}
	if (found_compatible)
		return rpc_err_set(
		    reterr, -ENOENT, "Endpoint does not support RPC method %.200s", method);
	if (*method == '\0')
		return rpc_err_set(reterr, -EPROTONOSUPPORT,
		    "Endpoint does not support RPC version %.32s", version);
	return rpc_err_set(reterr, -EPROTONOSUPPORT,
	    "Endpoint does not support RPC version %.32s. Attempted method: %.150s", version,
	    method);
}
