/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_instance_policy.h - per-instance migration policy read from the cast's
 * Instance primitive: flavor extra specs (data.flavor.nova_object.data.extra_specs)
 * and image properties (data.system_metadata "image_<prop>", as nova stores them).
 *
 *   flavor extra spec                          image property
 *   ferry:live_migration_permit_post_copy      ferry_live_migration_permit_post_copy
 *   ferry:live_migration_permit_auto_converge  ferry_live_migration_permit_auto_converge
 *   ferry:live_migration_timeout_action        ferry_live_migration_timeout_action
 *
 * Booleans take oslo's strings (true/false, yes/no, on/off, y/n, t/f, 1/0, any
 * case, blanks trimmed); the action takes "abort" or "force_complete".  When
 * both the flavor and the image set a key, the more restrictive value wins:
 * "false" over "true" (a "never post-copy" anywhere means never), "abort" over
 * "force_complete".  Pure: jansson only, never logs; any thread that owns
 * the json_t.
 */
#ifndef WK_INSTANCE_POLICY_H
#define WK_INSTANCE_POLICY_H

#include <stdbool.h>

#include <jansson.h>

#include "wk_util.h"

enum {
	WK_TIMEOUT_ACTION_ABORT = 0,
	WK_TIMEOUT_ACTION_FORCE_COMPLETE = 1,
};

/* Plain data; the caller owns it. */
struct wk_instance_policy {
	int permit_post_copy;     /* -1 unset, 0 forbidden, 1 permitted */
	int permit_auto_converge; /* -1 unset, 0 forbidden, 1 permitted */
	int timeout_action;       /* -1 unset, WK_TIMEOUT_ACTION_ABORT or _FORCE_COMPLETE */
	/*
	 * The keys that decided, space-separated in the field order above,
	 * e.g. "ferry:live_migration_permit_post_copy ferry_live_migration_timeout_action"
	 * ("ferry:" = flavor extra spec, "ferry_" = image property); "" when
	 * nothing is set.  When flavor and image agree, the flavor key is named.
	 */
	char source[128];
};

/*
 * Reads the policy from @instance (borrowed; an Instance nova_object
 * primitive).  A missing or null flavor, extra_specs or system_metadata
 * means "nothing set".  Returns 0 and fills *ret; -EINVAL when @instance is
 * not a nova_object primitive, when a container has the wrong JSON type, or
 * when a ferry key holds a non-string or an unknown value (reterr names
 * where, the key and the value).  *ret is written only on success.
 */
int wk_instance_policy_read(
    json_t *instance, struct wk_instance_policy *ret, struct wk_err *reterr);

/*
 * Combines one tri-state field of the policy (-1, 0 or 1) with the host's
 * configured default (libvirt.live_migration_permit_post_copy, ...): an
 * instance's explicit value wins, unset falls back to @host_default.
 */
bool wk_instance_policy_permits(int value, bool host_default);

#endif /* WK_INSTANCE_POLICY_H */
