/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_methods: the served-method table (see rpc_methods.h). */
#include "rpc_methods.h"

/* clang-format off */
#define NOVA_METHOD(id, name) {name, NULL, 6, 1, id}, {name, NULL, 5, 13, id}
const struct rpc_method rpc_methods[] = {
    NOVA_METHOD(RPC_M_LIVE_MIGRATION, "live_migration"),
    NOVA_METHOD(RPC_M_LIVE_MIGRATION_FORCE_COMPLETE, "live_migration_force_complete"),
    NOVA_METHOD(RPC_M_LIVE_MIGRATION_ABORT, "live_migration_abort"),
    NOVA_METHOD(RPC_M_PRE_LIVE_MIGRATION, "pre_live_migration"),
    NOVA_METHOD(RPC_M_POST_LIVE_MIGRATION_AT_DESTINATION, "post_live_migration_at_destination"),
    NOVA_METHOD(RPC_M_ROLLBACK_LIVE_MIGRATION_AT_DESTINATION,
                "rollback_live_migration_at_destination"),
    {"list_migrations", "ferry", 1, 1, RPC_M_LIST_MIGRATIONS},
    {"recover_migration", "ferry", 1, 1, RPC_M_RECOVER_MIGRATION},
};
/* clang-format on */

const size_t rpc_methods_count = sizeof(rpc_methods) / sizeof(rpc_methods[0]);

bool
rpc_method_read_only(int id)
{
	switch (id) {
	case RPC_M_LIST_MIGRATIONS:
		return true; /* reads the migration table and the clock */
	default:
		return false;
	}
}
