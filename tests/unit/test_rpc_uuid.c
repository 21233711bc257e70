/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_uuid_canonical: every spelling libvirt resolves to one domain gives
 * one text; anything else is refused. */
#include <sys/wait.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rpc_uuid.h"

#define CANON "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f"

static void
assert_canon(const char *in)
{
	char out[RPC_UUID_DASHED_LEN];

	cr_assert_eq(rpc_uuid_canonical(in, out), 0, "refused '%s'", in);
	cr_assert_str_eq(out, CANON, "'%s'", in);
}

Test(rpc_uuid, the_spellings_libvirt_accepts_are_one_uuid)
{
	assert_canon(CANON);
	assert_canon("6F0C5A7E-8D1B-4C2A-9E3F-0A1B2C3D4E5F");
	assert_canon("6f0c5a7e8d1b4c2a9e3f0a1b2c3d4e5f");
	assert_canon("6F0c5A7e8d1B4c2A9e3F0a1B2c3D4e5F");
	assert_canon("  6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f \t\n");
	assert_canon("6f0c5a7e 8d1b 4c2a 9e3f 0a1b2c3d4e5f");
	assert_canon("6f-0c-5a-7e8d1b4c2a9e3f0a1b2c3d4e5f");
}

Test(rpc_uuid, what_is_not_a_uuid_is_refused)
{
	static const char *bad[] = {
	    "",
	    "not-a-uuid",
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5",   /* 31 digits */
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f0", /* 33 */
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5g",
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f/..",
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f x",
	    "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5-f", /* '-' inside a pair */
	    "{6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f}",
	};
	char out[RPC_UUID_DASHED_LEN] = "untouched";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(rpc_uuid_canonical(bad[i], out), -EINVAL, "accepted '%s'", bad[i]);
	cr_assert_eq(rpc_uuid_canonical(NULL, out), -EINVAL);
	cr_assert_str_eq(out, "untouched");
}

Test(rpc_uuid, a_fresh_uuid_is_canonical)
{
	char a[RPC_UUID_DASHED_LEN], b[RPC_UUID_DASHED_LEN];

	rpc_uuid4_dashed(a);
	cr_assert_eq(rpc_uuid_canonical(a, b), 0);
	cr_assert_str_eq(a, b);
}

/* uuid4s come from a per-thread pool: each is new, with the version and
 * variant bits, also across pool refills, and a forked child does not
 * repeat what its parent hands out next. */
Test(rpc_uuid, fresh_across_refills_and_fork)
{
	static char seen[200][RPC_UUID_HEX_LEN];
	char dashed[RPC_UUID_DASHED_LEN];
	int pfd[2];
	pid_t pid;
	char child[RPC_UUID_HEX_LEN] = "";
	char parent[RPC_UUID_HEX_LEN];

	for (int i = 0; i < 200; i++) {
		rpc_uuid4_hex(seen[i]);
		cr_assert_eq(strlen(seen[i]), 32u);
		cr_assert_eq(seen[i][12], '4', "%s", seen[i]);
		cr_assert(strchr("89ab", seen[i][16]) != NULL, "%s", seen[i]);
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(seen[i], seen[j]);
	}
	rpc_uuid4_dashed(dashed);
	cr_assert_eq(dashed[14], '4');

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char u[RPC_UUID_HEX_LEN];

		rpc_uuid4_hex(u);
		_exit(write(pfd[1], u, sizeof(u)) == (ssize_t)sizeof(u) ? 0 : 1);
	}
	rpc_uuid4_hex(parent);
	cr_assert_eq(read(pfd[0], child, sizeof(child)), (ssize_t)sizeof(child));
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	close(pfd[0]);
	close(pfd[1]);
	cr_assert_str_neq(child, parent, "the child repeated its parent's next uuid %s", parent);
}
