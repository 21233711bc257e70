/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_methods: the one table of RPC methods ferry serves (name, namespace,
 * endpoint versions), for rpc_dispatch_lookup.  Each entry's id is an
 * enum rpc_method_id; the worker binds ids to handlers (wk_dispatch.c) and
 * the fuzz target dispatches over the same table.  Pure constant data.
 */
#ifndef RPC_METHODS_H
#define RPC_METHODS_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc_dispatch.h"

enum rpc_method_id {
	RPC_M_LIVE_MIGRATION,
	RPC_M_LIVE_MIGRATION_FORCE_COMPLETE,
	RPC_M_LIVE_MIGRATION_ABORT,
	RPC_M_PRE_LIVE_MIGRATION,
	RPC_M_POST_LIVE_MIGRATION_AT_DESTINATION,
	RPC_M_ROLLBACK_LIVE_MIGRATION_AT_DESTINATION,
	RPC_M_LIST_MIGRATIONS,   /* ferry's admin query, namespace "ferry" */
	RPC_M_RECOVER_MIGRATION, /* ferry: retry a failed post-copy recovery */
	_RPC_M_MAX,
};

/* nova-compute 26's endpoints (6.1, and 5.13 through its proxy) for nova's
 * methods; 1.1 in namespace "ferry" for ferry's own (one endpoint, as an oslo
 * API: 1.1 added list_migrations' prediction, additively, so 1.0 callers are
 * served the same replies). */
extern const struct rpc_method rpc_methods[];
extern const size_t rpc_methods_count;

/* True for a method whose handler changes no state, so its reply (result or
 * failure) tells the caller nothing it could not learn by calling again:
 * such replies are published without publisher confirms and are not resent
 * after a lost connection (rpc_amqp_publish_unconfirmed); the caller's
 * timeout and retry cover that loss, as with oslo's own servers.  Today
 * only list_migrations; every nova method and recover_migration change
 * state and keep confirmed replies.  False for an id out of range. */
bool rpc_method_read_only(int id);

#endif /* RPC_METHODS_H */
