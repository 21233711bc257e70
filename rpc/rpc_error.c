/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_error: -errno -> nova exception class, the only such table. */
#include "rpc_error.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rpc_reply.h"

static const struct {
	int r;
	const char *cls;
	int code;
} table[] = {
    {-ENOENT, "NotFound", 404},
    {-EINVAL, "InvalidInput", 400},
    {-EBUSY, "InstanceInvalidState", 400},
    {-EEXIST, "InstanceExists", 409},
    {-EAGAIN, "MigrationPreCheckError", 400},
    {-EHOSTUNREACH, "MigrationPreCheckError", 400},
    {-ETIMEDOUT, "MigrationError", 500},
    {-EOPNOTSUPP, "MigrationError", 500},
};

static size_t
find(int r)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].r == r)
			return i;
	return (size_t)-1;
}

const char *
rpc_error_class(int r)
{
	size_t i = find(r);

	return i != (size_t)-1 ? table[i].cls : "MigrationError";
}

char *
rpc_error_failure(int r, const char *message)
{
	size_t i = find(r);
	int code = i != (size_t)-1 ? table[i].code : 500;
	char *clean = NULL;
	json_t *kwargs;
	char *text;

	if (message == NULL)
		message = "";
	kwargs = json_pack("{s:i,s:s}", "code", code, "reason", message);
	if (kwargs == NULL) {
		/* not UTF-8 (a text cut mid-sequence): non-ASCII bytes as '?' */
		clean = strdup(message);
		if (clean == NULL)
			return NULL;
		for (char *p = clean; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		message = clean;
		kwargs = json_pack("{s:i,s:s}", "code", code, "reason", message);
	}
	text = kwargs ? rpc_failure_build(rpc_error_class(r), "nova.exception", message, kwargs)
	              : NULL;
	free(clean);
	return text;
}
