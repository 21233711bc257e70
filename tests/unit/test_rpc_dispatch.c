/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for rpc_dispatch: oslo's method/version/namespace precedence, with
 * nova-compute's real table shape (ComputeManager 6.1 + _ComputeV5Proxy
 * 5.13) plus a baseapi-namespaced endpoint.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rpc_dispatch.h"
#include "rpc_methods.h"

static const struct rpc_method table[] = {
    {"live_migration", NULL, 6, 1, 1},
    {"live_migration_abort", NULL, 6, 1, 2},
    {"live_migration_force_complete", NULL, 6, 1, 3},
    {"live_migration", NULL, 5, 13, 11},
    {"live_migration_abort", NULL, 5, 13, 12},
    {"ping", "baseapi", 1, 1, 20},
};
#define N (sizeof(table) / sizeof(table[0]))

static int
lookup(const char *method, const char *version, const char *ns, int *ret_id, struct rpc_err *err)
{
	const struct rpc_method *e = NULL;
	int r = rpc_dispatch_lookup(table, N, method, version, ns, &e, err);

	if (r == 0) {
		cr_assert_not_null(e);
		*ret_id = e->id;
	} else {
		cr_assert_null(e, "ret written on failure");
	}
	return r;
}

Test(rpc_dispatch, accepts_6_0_and_6_1)
{
	int id = 0;

	cr_assert_eq(lookup("live_migration", "6.0", NULL, &id, NULL), 0);
	cr_assert_eq(id, 1);
	cr_assert_eq(lookup("live_migration_abort", "6.1", NULL, &id, NULL), 0);
	cr_assert_eq(id, 2);
	cr_assert_eq(lookup("live_migration_force_complete", "6.0", NULL, &id, NULL), 0);
	cr_assert_eq(id, 3);
}

Test(rpc_dispatch, rejects_6_2_as_unsupported_version)
{
	struct rpc_err err = {{0}};
	int id = 0;

	cr_assert_eq(lookup("live_migration", "6.2", NULL, &id, &err), -EPROTONOSUPPORT);
	cr_assert_str_eq(
	    err.msg, "Endpoint does not support RPC version 6.2. Attempted method: live_migration");
}

Test(rpc_dispatch, routes_5_x_to_the_v5_proxy)
{
	int id = 0;

	cr_assert_eq(lookup("live_migration", "5.0", NULL, &id, NULL), 0);
	cr_assert_eq(id, 11);
	cr_assert_eq(lookup("live_migration_abort", "5.13", NULL, &id, NULL), 0);
	cr_assert_eq(id, 12);
	cr_assert_eq(lookup("live_migration", "5.14", NULL, &id, NULL), -EPROTONOSUPPORT);
}

Test(rpc_dispatch, rejects_7_0_as_unsupported_version)
{
	struct rpc_err err = {{0}};
	int id = 0;

	cr_assert_eq(lookup("live_migration", "7.0", NULL, &id, &err), -EPROTONOSUPPORT);
	cr_assert_str_eq(
	    err.msg, "Endpoint does not support RPC version 7.0. Attempted method: live_migration");
	/* oslo: with no compatible endpoint even an unknown method is UnsupportedVersion */
	cr_assert_eq(lookup("no_such_method", "7.0", NULL, &id, NULL), -EPROTONOSUPPORT);
}

Test(rpc_dispatch, unknown_method_is_no_such_method)
{
	struct rpc_err err = {{0}};
	int id = 0;

	cr_assert_eq(lookup("no_such_method", "6.0", NULL, &id, &err), -ENOENT);
	cr_assert_str_eq(err.msg, "Endpoint does not support RPC method no_such_method");
	/* a method only the 6.x endpoint has, asked at 5.x: a 5.x endpoint is
	 * compatible but lacks it, so oslo raises NoSuchMethod */
	cr_assert_eq(lookup("live_migration_force_complete", "5.0", NULL, &id, NULL), -ENOENT);
}

Test(rpc_dispatch, namespace_must_match)
{
	struct rpc_err err = {{0}};
	int id = 0;

	cr_assert_eq(lookup("live_migration", "6.0", "baseapi", &id, &err), -EPROTONOSUPPORT);
	cr_assert_str_eq(
	    err.msg, "Endpoint does not support RPC version 6.0. Attempted method: live_migration");
	cr_assert_eq(lookup("ping", "1.0", NULL, &id, NULL), -EPROTONOSUPPORT);
	cr_assert_eq(lookup("ping", "1.1", "baseapi", &id, NULL), 0);
	cr_assert_eq(id, 20);
	cr_assert_eq(lookup("ping", "1.1", "other", &id, NULL), -EPROTONOSUPPORT);
	cr_assert_eq(lookup("get_backdoor_port", "1.0", "baseapi", &id, NULL), -ENOENT);
}

Test(rpc_dispatch, default_version_is_1_0)
{
	int id = 0;

	cr_assert_eq(lookup("live_migration", NULL, NULL, &id, NULL), -EPROTONOSUPPORT);
	cr_assert_eq(lookup("ping", NULL, "baseapi", &id, NULL), 0);
}

Test(rpc_dispatch, bad_version_syntax_is_einval)
{
	static const char *const bad[] = {
	    "", "6", "6.", ".1", "a.b", "6.0.1", "6,0", " 6.0", "6.0 ", "-6.0", "1234567890.0"};
	size_t i;
	int id = 0;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(
		    lookup("live_migration", bad[i], NULL, &id, NULL), -EINVAL, "%s", bad[i]);
}

Test(rpc_dispatch, empty_table_is_unsupported_version)
{
	const struct rpc_method *e = NULL;

	cr_assert_eq(rpc_dispatch_lookup(NULL, 0, "x", "6.0", NULL, &e, NULL), -EPROTONOSUPPORT);
}

Test(rpc_dispatch, version_parse)
{
	int major = -1;
	int minor = -1;

	cr_assert_eq(rpc_version_parse("6.13", &major, &minor), 0);
	cr_assert_eq(major, 6);
	cr_assert_eq(minor, 13);
	cr_assert_eq(rpc_version_parse(NULL, &major, &minor), -EINVAL);
	cr_assert_eq(rpc_version_parse("6", &major, &minor), -EINVAL);
	cr_assert_eq(major, 6);
}

/* ferry's served endpoint is 1.1 (list_migrations' prediction, additive),
 * one endpoint for both its methods; a caller still asking 1.0 (ferryctl,
 * older tools) is served too, 1.2 is not served. */
Test(rpc_dispatch, ferry_methods_are_served_at_1_0_and_1_1_not_1_2)
{
	const char *methods[] = {"list_migrations", "recover_migration"};
	const int ids[] = {RPC_M_LIST_MIGRATIONS, RPC_M_RECOVER_MIGRATION};

	for (size_t i = 0; i < 2; i++) {
		const struct rpc_method *e = NULL;

		cr_assert_eq(rpc_dispatch_lookup(rpc_methods, rpc_methods_count, methods[i], "1.0",
		                 "ferry", &e, NULL),
		    0, "%s 1.0", methods[i]);
		cr_assert_eq(e->id, ids[i]);
		e = NULL;
		cr_assert_eq(rpc_dispatch_lookup(rpc_methods, rpc_methods_count, methods[i], "1.1",
		                 "ferry", &e, NULL),
		    0, "%s 1.1", methods[i]);
		cr_assert_eq(e->id, ids[i]);
		cr_assert_eq(rpc_dispatch_lookup(rpc_methods, rpc_methods_count, methods[i], "1.2",
		                 "ferry", &e, NULL),
		    -EPROTONOSUPPORT, "%s 1.2", methods[i]);
	}
}

/* Only replies of methods that change nothing may go unconfirmed: every
 * nova method and recover_migration keep confirmed replies. */
Test(rpc_methods, only_list_migrations_is_read_only)
{
	size_t n_read_only = 0;

	for (size_t i = 0; i < rpc_methods_count; i++) {
		bool ro = rpc_method_read_only(rpc_methods[i].id);

		cr_assert_eq(ro, strcmp(rpc_methods[i].name, "list_migrations") == 0, "%s",
		    rpc_methods[i].name);
		n_read_only += ro;
	}
	cr_assert_eq(n_read_only, 1u);
	cr_assert_not(rpc_method_read_only(-1));
	cr_assert_not(rpc_method_read_only(_RPC_M_MAX));
}
