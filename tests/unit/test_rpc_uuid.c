/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_uuid_canonical: every spelling libvirt resolves to one domain gives
 * one text; anything else is refused. */
#include <errno.h>
#include <string.h>

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
